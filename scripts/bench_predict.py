#!/usr/bin/env python3
"""Prediction throughput: `bertfit predict` against transformers' pipeline("text-classification")
on the same rows, the same fine-tuned folder and the same settings, in one run; prints rows/s of
each and the ratio.

Both are timed end to end as a user meets them: bertfit as one process (start, model load, read
the CSV, predict, write the output CSV); the pipeline from its construction (model load) through
scoring every text with all class scores (top_k=None, truncation at --max-length, --batch-size).
Runs alternate (--repeats each); the best of each is reported, as the machine is shared and noisy.

Without --model, a MiniLM classifier is made with scripts/parity/make_model.py (a random head:
the compute is that of any fine-tuned MiniLM). Run after `source scripts/env.sh`.
"""
import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time


def rows_of(path, n):
    """`n` texts taken evenly through the file (it is grouped by label)."""
    rows = list(csv.DictReader(open(path, newline="", encoding="utf-8")))
    if len(rows) < n:
        raise SystemExit(f"{path} has {len(rows)} rows; asked for {n}")
    stride = len(rows) // n
    return [r["text"] for r in rows[::stride][:n]]


def run_bertfit(args, model, data, out):
    cmd = [args.bertfit, "predict", "--model", model, "--data", data, "--output", out, "--overwrite",
           "--max-length", str(args.max_length), "--batch-size", str(args.batch_size), "--device", args.device]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"bertfit predict failed:\n{done.stderr}")
    return seconds


def run_pipeline(args, model, texts):
    import torch
    from transformers import pipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    t = time.perf_counter()
    clf = pipeline("text-classification", model=model, tokenizer=model, device=args.device, dtype=torch.float32)
    out = clf(texts, batch_size=args.batch_size, truncation=True, max_length=args.max_length, top_k=None)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    best = [max(scores, key=lambda s: s["score"])["label"] for scores in out]
    return seconds, best


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    assets = os.environ.get("BERTFIT_ASSETS", os.path.expanduser("~/.cache/bertfit/assets"))
    here = os.path.dirname(os.path.abspath(__file__))
    p.add_argument("--model", help="a fine-tuned model folder (default: MiniLM with a new head)")
    p.add_argument("--data", default=os.path.join(assets, "data", "movies.csv"))
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="CPU threads of both (default: each one's own default)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--bertfit", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "bertfit"))
    args = p.parse_args()

    work = tempfile.mkdtemp(prefix="bertfit-bench-predict-")
    model = args.model
    if model is None:
        model = os.path.join(work, "model")
        subprocess.run([sys.executable, os.path.join(here, "parity", "make_model.py"), "--from",
                        os.path.join(assets, "all-MiniLM-L6-v2"), "--out", model, "--num-labels", "2",
                        "--seed", "0"], check=True)
    texts = rows_of(args.data, args.rows)
    data = os.path.join(work, "rows.csv")
    with open(data, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text"])
        w.writerows([t] for t in texts)
    out = os.path.join(work, "predicted.csv")

    ours, theirs, labels = [], [], None
    for _ in range(args.repeats):
        ours.append(run_bertfit(args, model, data, out))
        seconds, labels = run_pipeline(args, model, texts)
        theirs.append(seconds)
    predicted = [r["predicted_label"] for r in csv.DictReader(open(out, newline="", encoding="utf-8"))]
    agree = sum(a == b for a, b in zip(predicted, labels)) / len(texts)

    n = len(texts)
    ours_rate, theirs_rate = n / min(ours), n / min(theirs)
    print(f"rows {n}, max_length {args.max_length}, batch {args.batch_size}, device {args.device}, "
          f"threads {args.threads or 'default'}, best of {args.repeats}")
    print(f"bertfit predict                      {ours_rate:8.1f} rows/s  ({min(ours):.2f} s, runs {', '.join(f'{s:.2f}' for s in ours)})")
    print(f"transformers pipeline(text-class.)   {theirs_rate:8.1f} rows/s  ({min(theirs):.2f} s, runs {', '.join(f'{s:.2f}' for s in theirs)})")
    print(f"ratio bertfit / transformers         {ours_rate / theirs_rate:8.2f}x")
    print(f"predicted labels agree on {100 * agree:.2f}% of rows")


if __name__ == "__main__":
    main()
