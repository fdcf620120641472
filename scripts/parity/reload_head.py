#!/usr/bin/env python3
"""Loads a bertfit output folder with transformers and runs its head's own loss on the data's first
rows: proves config.json's problem_type and id2label give transformers the same head.

    reload_head.py MODEL_DIR DATA_CSV PROBLEM_TYPE
"""
import csv
import sys

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer


def main():
    folder, data, problem = sys.argv[1:4]
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    assert model.config.problem_type == problem, model.config.problem_type
    with open(data, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:8]
    enc = tok([r["text"] for r in rows], truncation=True, max_length=48, padding=True, return_tensors="pt")
    if problem == "regression":
        labels = torch.tensor([float(r["label"]) for r in rows])
    else:
        names = [model.config.id2label[i] for i in range(model.config.num_labels)]
        labels = torch.zeros(len(rows), len(names))
        for i, r in enumerate(rows):
            for n in filter(None, r["label"].split("|")):
                labels[i, names.index(n)] = 1.0
    with torch.no_grad():
        out = model(**enc, labels=labels)
    assert torch.isfinite(out.loss), out.loss
    print(f"problem_type {model.config.problem_type} num_labels {model.config.num_labels} loss {out.loss.item():.6f}")


if __name__ == "__main__":
    main()
