#!/usr/bin/env python3
"""What `bertfit evaluate` should report for a saved model folder and a labelled file, computed with
transformers and scikit-learn, for tests/predict.rs. Prints one JSON object with the keys bertfit
writes to eval_results.json, for the model's problem_type (config.json; without one, a model with
one output is a regression, as HF's forward assumes):

single_label_classification:
  eval_accuracy, eval_loss, eval_runtime, eval_samples, eval_samples_per_second,
  eval_precision_macro, eval_recall_macro, eval_f1_macro,
  eval_precision_weighted, eval_recall_weighted, eval_f1_weighted, eval_support,
  eval_per_class: [{label, precision, recall, f1, support} per class in id order],
  eval_confusion_matrix: [[count per predicted class] per true class]
multi_label_classification (a label predicted where its logit is above 0, sigmoid above 0.5):
  eval_accuracy and eval_subset_accuracy (sklearn's accuracy_score on indicator rows),
  eval_hamming_loss, eval_precision/recall/f1_micro and _macro, eval_support (rows),
  eval_per_label: [{label, precision, recall, f1, support} per label in id order], eval_loss
  (torch's BCEWithLogitsLoss(), the mean over every output, in float64), and the timings.
regression:
  eval_mse, eval_rmse, eval_mae, eval_r2 (sklearn), eval_pearson, eval_spearman (scipy; null where
  scipy gives NaN, i.e. constant input), eval_support, eval_loss (torch's MSELoss() of the
  squeezed output, in float64), and the timings; no eval_accuracy.

Rows: every row of --data, or with --split-column only those whose split is val/validation/dev.
Tokenization as bertfit's: the folder's BertTokenizer, truncation=True, max_length=--max-length,
padding to the longest in each batch. A label cell maps through the model's label2id, else as an
integer class id. Metrics are scikit-learn's over labels=range(num_labels) with zero_division=0 (the
value sklearn's default "warn" also gives, without the warning); the loss is the mean cross-entropy
of the fp32 logits computed in float64. eval_runtime and eval_samples_per_second are this script's
own timings (only their presence and sign are comparable).
"""
import argparse
import json
import time

import math

import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    hamming_loss,
    mean_absolute_error,
    mean_squared_error,
    precision_recall_fscore_support,
    r2_score,
    root_mean_squared_error,
)
from transformers import AutoModelForSequenceClassification, BertTokenizer

from saved_model_rows import gold_ids, logits_of, multi_hot, read_rows, validation_rows, values


def problem_type(config):
    if config.problem_type:
        return config.problem_type
    return "regression" if config.num_labels == 1 else "single_label_classification"


def timings(rows, seconds):
    return {"eval_runtime": seconds, "eval_samples": len(rows), "eval_samples_per_second": len(rows) / seconds}


def prf(y, pred, average, labels=None):
    return precision_recall_fscore_support(y, pred, labels=labels, average=average, zero_division=0)


def multi_label(rows, logits, args, config, names, started):
    y = np.array(multi_hot(rows, args.label_column, config.label2id, config.num_labels, args.label_separator))
    pred = (logits > 0).numpy().astype(int)
    loss = torch.nn.BCEWithLogitsLoss()(logits.double(), torch.tensor(y, dtype=torch.float64)).item()
    out = {"eval_accuracy": accuracy_score(y, pred), "eval_loss": loss, **timings(rows, time.perf_counter() - started)}
    out["eval_subset_accuracy"] = accuracy_score(y, pred)
    out["eval_hamming_loss"] = hamming_loss(y, pred)
    for average in ("micro", "macro"):
        pr, rc, f1, _ = prf(y, pred, average)
        out[f"eval_precision_{average}"] = pr
        out[f"eval_recall_{average}"] = rc
        out[f"eval_f1_{average}"] = f1
    out["eval_support"] = len(rows)
    pr, rc, f1, support = prf(y, pred, None)
    out["eval_per_label"] = [
        {"label": names[c], "precision": pr[c], "recall": rc[c], "f1": f1[c], "support": int(support[c])}
        for c in range(len(names))
    ]
    return out


def regression(rows, logits, args, started):
    y32 = values(rows, args.label_column)
    p = logits.squeeze(-1).double()
    loss = torch.nn.MSELoss()(p, torch.from_numpy(y32).double()).item()
    out = {"eval_loss": loss, **timings(rows, time.perf_counter() - started)}
    p, y = p.numpy(), y32.astype(np.float64)

    def finite(v):
        v = float(v)
        return None if math.isnan(v) else v

    few = len(p) < 2  # scipy refuses, sklearn's r2 is NaN
    out["eval_mse"] = mean_squared_error(y, p)
    out["eval_rmse"] = root_mean_squared_error(y, p)
    out["eval_mae"] = mean_absolute_error(y, p)
    out["eval_pearson"] = None if few else finite(pearsonr(p, y).statistic)
    out["eval_spearman"] = None if few else finite(spearmanr(p, y).statistic)
    out["eval_r2"] = None if few else finite(r2_score(y, p))
    out["eval_support"] = len(rows)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--text-column", default="text")
    p.add_argument("--text-pair-column")
    p.add_argument("--label-column", default="label")
    p.add_argument("--split-column")
    p.add_argument("--label-separator", default="|")
    args = p.parse_args()

    torch.set_num_threads(2)
    started = time.perf_counter()
    rows = read_rows(args.data)
    if args.split_column:
        rows = validation_rows(rows, args.split_column)

    tok = BertTokenizer.from_pretrained(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(args.model, dtype=torch.float32).eval()
    num_labels = model.config.num_labels
    names = [model.config.id2label[i] for i in range(num_labels)]
    logits = logits_of(model, tok, rows, args.text_column, args.text_pair_column, args.max_length, args.batch_size)
    problem = problem_type(model.config)
    if problem == "multi_label_classification":
        print(json.dumps(multi_label(rows, logits, args, model.config, names, started), default=float))
        return
    if problem == "regression":
        print(json.dumps(regression(rows, logits, args, started), default=float))
        return
    gold = gold_ids(rows, args.label_column, model.config.label2id)
    y = np.array(gold)
    pred = logits.argmax(-1).numpy()
    loss = torch.nn.functional.cross_entropy(logits.double(), torch.tensor(gold)).item()
    seconds = time.perf_counter() - started

    classes = list(range(num_labels))
    out = {
        "eval_accuracy": accuracy_score(y, pred),
        "eval_loss": loss,
        "eval_runtime": seconds,
        "eval_samples": len(rows),
        "eval_samples_per_second": len(rows) / seconds,
    }
    for average in ("macro", "weighted"):
        pr, rc, f1, _ = precision_recall_fscore_support(y, pred, labels=classes, average=average, zero_division=0)
        out[f"eval_precision_{average}"] = pr
        out[f"eval_recall_{average}"] = rc
        out[f"eval_f1_{average}"] = f1
    out["eval_support"] = len(rows)
    pr, rc, f1, support = precision_recall_fscore_support(y, pred, labels=classes, average=None, zero_division=0)
    out["eval_per_class"] = [
        {"label": names[c], "precision": pr[c], "recall": rc[c], "f1": f1[c], "support": int(support[c])}
        for c in classes
    ]
    out["eval_confusion_matrix"] = confusion_matrix(y, pred, labels=classes).tolist()
    print(json.dumps(out, default=float))


if __name__ == "__main__":
    main()
