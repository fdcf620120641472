#!/usr/bin/env python3
"""Writes tiny data sets for run_classification.py parity cases into OUT (one folder per case).

Usage: make_rc_data.py OUT [--data DIR] [--train N] [--eval N] [--test N]

The .json files hold JSON lines (one object a line): run_classification.py accepts only the
extensions .csv and .json (`.jsonl` fails its assertion "`train_file` should be a csv or a json file.").

Made from DIR/{trec,sms}.csv (default $BERTFIT_ASSETS/data; columns text,label,split; the first N
rows of each split, in file order, so the output is the same on every run):

  trec/           train.csv validation.csv test.csv          sentence,label  (6 string labels)
  regression/     train.csv validation.csv test.csv          sentence,label  (label 1.0..5.0, a float:
                                                             1 + number of words mod 5)
  multilabel/     train.json validation.json test.json    {"sentence": str, "label": [str, ...]}
                  (the trec class plus "short" or "long" (more than 8 words), plus "wh" when the
                  question starts with a wh-word: 2 or 3 labels per row)
  jsonl/          train.json validation.json test.json    {"sentence": str, "label": str} (trec)
  two_columns/    train.csv validation.csv test.csv          title,body,label (sms: the first three
                  words and the rest; ham/spam); for --text_column_names title,body
  missing_label/  train.csv validation.csv test.csv          trec, train without "ABBR" rows,
                  validation and test keep them (the "not in training set" warning)
  unseen_subset/  train.csv validation.csv                   trec, train sorted so that its first
                  N/2 rows have no "ABBR" (for --max_train_samples N/2: a label in the file but
                  not in the selected subset)
"""
import argparse
import csv
import json
import os

import pandas as pd

SPLITS = {"train": "train", "validation": "val", "test": "test"}
WH = ("what", "which", "who", "whom", "whose", "when", "where", "why", "how")


def read(data_dir, name, sizes):
    frame = pd.read_csv(os.path.join(data_dir, f"{name}.csv"), keep_default_na=False, dtype=str)
    return {ours: frame[frame["split"] == theirs].head(sizes[ours]) for ours, theirs in SPLITS.items()}


def write_csv(path, rows, columns):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(columns)
        w.writerows(rows)


def write_jsonl(path, records):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def multi_labels(text, label):
    words = text.split()
    labels = [label, "long" if len(words) > 8 else "short"]
    if words and words[0].lower() in WH:
        labels.append("wh")
    return labels


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--data", default=os.path.join(os.environ.get("BERTFIT_ASSETS", ""), "data"))
    p.add_argument("--train", type=int, default=256)
    p.add_argument("--eval", type=int, default=64)
    p.add_argument("--test", type=int, default=32)
    a = p.parse_args()
    sizes = {"train": a.train, "validation": a.eval, "test": a.test}
    trec = read(a.data, "trec", sizes)
    sms = read(a.data, "sms", sizes)
    out = a.out

    for split, df in trec.items():
        rows = list(zip(df["text"], df["label"]))
        write_csv(f"{out}/trec/{split}.csv", rows, ["sentence", "label"])
        reg = [(t, f"{1 + len(t.split()) % 5:.1f}") for t, _ in rows]
        write_csv(f"{out}/regression/{split}.csv", reg, ["sentence", "label"])
        write_jsonl(f"{out}/multilabel/{split}.json",
                    [{"sentence": t, "label": multi_labels(t, l)} for t, l in rows])
        write_jsonl(f"{out}/jsonl/{split}.json", [{"sentence": t, "label": l} for t, l in rows])
        kept = [r for r in rows if split != "train" or r[1] != "ABBR"]
        write_csv(f"{out}/missing_label/{split}.csv", kept, ["sentence", "label"])
    for split, df in sms.items():
        rows = []
        for text, label in zip(df["text"], df["label"]):
            words = text.split()
            # both cells non-empty: an empty CSV cell reads as None and the script's join fails on it
            cut = max(1, min(3, len(words) - 1))
            rows.append((" ".join(words[:cut]), " ".join(words[cut:] or words), label))
        write_csv(f"{out}/two_columns/{split}.csv", rows, ["title", "body", "label"])

    train = list(zip(trec["train"]["text"], trec["train"]["label"]))
    # stable sort: ABBR rows last, so the first half of the file has none of them
    train.sort(key=lambda r: r[1] == "ABBR")
    write_csv(f"{out}/unseen_subset/train.csv", train, ["sentence", "label"])
    write_csv(f"{out}/unseen_subset/validation.csv",
              list(zip(trec["validation"]["text"], trec["validation"]["label"])), ["sentence", "label"])


if __name__ == "__main__":
    main()
