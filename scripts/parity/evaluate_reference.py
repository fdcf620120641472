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
integer class id. The metrics are metrics_reference.py's (scikit-learn and scipy over
labels=range(num_labels); a zero division gives 0.0); the single-label loss is the mean
cross-entropy of the fp32 logits computed in float64. eval_runtime and eval_samples_per_second are this script's
own timings (only their presence and sign are comparable).
"""
import argparse
import json
import time
import warnings

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, BertTokenizer

# The metrics themselves as tests/metrics.rs checks them against scikit-learn and scipy.
from metrics_reference import classification, multilabel, regression
from saved_model_rows import gold_ids, logits_of, multi_hot, read_rows, validation_rows, values


def problem_type(config):
    if config.problem_type:
        return config.problem_type
    return "regression" if config.num_labels == 1 else "single_label_classification"


def eval_keys(metrics):
    return {f"eval_{k}": v for k, v in metrics.items()}


def single_label(rows, logits, args, config, names):
    gold = gold_ids(rows, args.label_column, config.label2id)
    loss = torch.nn.functional.cross_entropy(logits.double(), torch.tensor(gold)).item()
    case = {"predictions": logits.argmax(-1).tolist(), "labels": gold, "num_labels": len(names), "names": names}
    return {"eval_loss": loss, **eval_keys(classification(case)["metrics"])}


def multi_label(rows, logits, args, config, names):
    y = np.array(multi_hot(rows, args.label_column, config.label2id, config.num_labels, args.label_separator))
    loss = torch.nn.BCEWithLogitsLoss()(logits.double(), torch.tensor(y, dtype=torch.float64)).item()
    predicted = (logits > 0).numpy().astype(int)
    case = {"predicted": predicted.ravel().tolist(), "truth": y.ravel().tolist(), "num_labels": len(names), "names": names}
    metrics = eval_keys(multilabel(case)["metrics"])
    return {"eval_accuracy": metrics["eval_subset_accuracy"], "eval_loss": loss, **metrics}


def regression_metrics(rows, logits, args):
    y32 = values(rows, args.label_column)
    p = logits.squeeze(-1).double()
    loss = torch.nn.MSELoss()(p, torch.from_numpy(y32).double()).item()
    case = {"predictions": p.tolist(), "targets": y32.astype(np.float64).tolist()}
    return {"eval_loss": loss, **eval_keys(regression(case)["metrics"])}


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
    # sklearn's zero-division and scipy's constant-input warnings are expected here (0.0 / null).
    warnings.simplefilter("ignore")
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
        out = multi_label(rows, logits, args, model.config, names)
    elif problem == "regression":
        out = regression_metrics(rows, logits, args)
    else:
        out = single_label(rows, logits, args, model.config, names)
    seconds = time.perf_counter() - started
    out.update({"eval_runtime": seconds, "eval_samples": len(rows), "eval_samples_per_second": len(rows) / seconds})
    print(json.dumps(out, default=float))


if __name__ == "__main__":
    main()
