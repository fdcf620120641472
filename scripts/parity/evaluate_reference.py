#!/usr/bin/env python3
"""What `bertfit evaluate` should report for a saved model folder and a labelled file, computed with
transformers and scikit-learn, for tests/predict.rs. Prints one JSON object with the keys bertfit
writes to eval_results.json:

  eval_accuracy, eval_loss, eval_runtime, eval_samples, eval_samples_per_second,
  eval_precision_macro, eval_recall_macro, eval_f1_macro,
  eval_precision_weighted, eval_recall_weighted, eval_f1_weighted, eval_support,
  eval_per_class: [{label, precision, recall, f1, support} per class in id order],
  eval_confusion_matrix: [[count per predicted class] per true class]

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

import numpy as np
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support
from transformers import AutoModelForSequenceClassification, BertTokenizer

from saved_model_rows import gold_ids, logits_of, read_rows, validation_rows


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
    gold = gold_ids(rows, args.label_column, model.config.label2id)
    logits = logits_of(model, tok, rows, args.text_column, args.text_pair_column, args.max_length, args.batch_size)
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
