#!/usr/bin/env python3
"""What transformers predicts for each row of a data file, for tests/predict.rs.

Reads a .csv/.tsv (csv module; an empty field is an empty text) or .parquet (pyarrow) file, tokenizes
the text column (and --text-pair-column) with the model folder's BertTokenizer (truncation=True,
max_length=--max-length, padded to the longest in each batch), runs
AutoModelForSequenceClassification in eval mode under no_grad, and writes JSON:

  {"labels": [id2label names in id order],
   "probs": [[softmax(logits) per class] per row, in file order],
   "predicted": [id2label name of the argmax per row],
   "accuracy": fraction, "loss": mean cross-entropy, "rows": N}   (the last three with --label-column)

With --label-column, only rows whose --split-column (if given) says val/validation/dev are used, and
a label maps through the model's label2id, else as an integer class id (what `bertfit evaluate` does).
"""
import argparse
import json

import torch
from transformers import AutoModelForSequenceClassification, BertTokenizer

from saved_model_rows import gold_ids, logits_of, read_rows, validation_rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--text-column", default="text")
    p.add_argument("--text-pair-column")
    p.add_argument("--label-column")
    p.add_argument("--split-column")
    args = p.parse_args()

    torch.set_num_threads(2)
    rows = read_rows(args.data)
    if args.label_column and args.split_column:
        rows = validation_rows(rows, args.split_column)

    tok = BertTokenizer.from_pretrained(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(args.model, dtype=torch.float32)
    model.eval()
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    logits = logits_of(model, tok, rows, args.text_column, args.text_pair_column, args.max_length, args.batch_size)
    probs = torch.softmax(logits, dim=-1)
    out = {
        "labels": labels,
        "probs": probs.tolist(),
        "predicted": [labels[i] for i in logits.argmax(-1).tolist()],
    }
    if args.label_column:
        gold = gold_ids(rows, args.label_column, model.config.label2id)
        gold = torch.tensor(gold, dtype=torch.long)
        out["accuracy"] = (logits.argmax(-1) == gold).double().mean().item()
        out["loss"] = torch.nn.functional.cross_entropy(logits, gold).item()
        out["rows"] = len(rows)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
