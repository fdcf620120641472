"""Helpers shared by the figure scripts (bench_vs_pytorch.py, bench_padding.py)."""
import csv
import json
import random


def subset(src, dst, n_train, n_val, seed=0):
    """Writes `n_train` shuffled train rows and `n_val` shuffled val rows of `src` to `dst`."""
    rows = list(csv.DictReader(open(src, newline="", encoding="utf-8")))
    rng = random.Random(seed)
    train = [r for r in rows if r["split"] == "train"]
    val = [r for r in rows if r["split"] == "val"]
    rng.shuffle(train)
    rng.shuffle(val)
    if len(train) < n_train or len(val) < n_val:
        raise SystemExit(f"{src} has {len(train)} train and {len(val)} val rows; asked for {n_train} and {n_val}")
    with open(dst, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["text", "label", "split"])
        w.writeheader()
        for r in train[:n_train] + val[:n_val]:
            w.writerow({"text": r["text"], "label": r["label"], "split": r["split"]})


def records(path):
    """(epoch records, step records) of a metrics.jsonl written by bertfit or reference_train.py."""
    lines = [json.loads(l) for l in open(path) if l.strip()]
    return [r for r in lines if r.get("kind") == "epoch"], [r for r in lines if r.get("kind") == "step"]
