#!/usr/bin/env python3
"""Training throughput of bertfit against the PyTorch reference on identical work, in one run.

Both train the same model on the same rows with the same flags (batch 16, inputs padded the same
way, the same number of threads) and record samples/s of each epoch in their metrics; this prints
both and the ratio. Run through scripts/bench.sh (which sets up and builds) or directly after
`source scripts/env.sh`.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

from bench_common import records, subset


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=os.path.join(os.environ.get("BERTFIT_ASSETS", ""), "all-MiniLM-L6-v2"))
    p.add_argument("--data", default=os.path.join(os.environ.get("BERTFIT_ASSETS", ""), "data", "movies.csv"))
    p.add_argument("--train-rows", type=int, default=320)
    p.add_argument("--val-rows", type=int, default=16)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--padding", default="max-length", choices=["max-length", "longest"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2, help="alternating runs of each (the machine is noisy)")
    p.add_argument("--both", default="", help="extra flags for both sides, e.g. '--optim adamw --precision bf16'")
    p.add_argument("--bertfit-only", default="", help="extra flags for bertfit alone, e.g. '--no-fused'")
    p.add_argument("--reference-only", default="", help="extra flags for the reference alone, e.g. '--fused'")
    p.add_argument("--bertfit", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "bertfit"))
    args = p.parse_args()

    work = tempfile.mkdtemp(prefix="bertfit-bench-")
    data = os.path.join(work, "data.csv")
    subset(args.data, data, args.train_rows, args.val_rows)
    flags = ["--model", args.model, "--data", data, "--epochs", str(args.epochs), "--batch-size", "16",
             "--max-length", str(args.max_length), "--padding", args.padding, "--threads", str(args.threads),
             "--learning-rate", "1e-5", "--seed", "0", *args.both.split()]
    here = os.path.dirname(os.path.abspath(__file__))
    print(f"work: {args.train_rows} rows, batch 16, max_length {args.max_length}, padding {args.padding}, "
          f"{args.threads} threads, model {args.model}, {args.repeats} alternating runs each; both: '{args.both}', "
          f"bertfit: '{args.bertfit_only}', reference: '{args.reference_only}'", flush=True)
    ref_rates, our_rates = [], []
    for k in range(args.repeats):
        ref_metrics = os.path.join(work, f"reference{k}.jsonl")
        subprocess.run([sys.executable, os.path.join(here, "reference_train.py"), *flags, *args.reference_only.split(),
                        "--metrics-out", ref_metrics],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out = os.path.join(work, f"bertfit{k}")
        subprocess.run([args.bertfit, "train", *flags, *args.bertfit_only.split(), "--output-dir", out, "--device", "cpu",
                        "--save-strategy", "no"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        a = sum(r["train_samples_per_second"] for r in records(ref_metrics)[0]) / args.epochs
        b = sum(r["train_samples_per_second"] for r in records(os.path.join(out, "metrics.jsonl"))[0]) / args.epochs
        ref_rates.append(a)
        our_rates.append(b)
        print(f"run {k + 1}: pytorch {a:.2f} samples/s, bertfit {b:.2f} samples/s, ratio {b / a:.2f}", flush=True)
    a, b = statistics.median(ref_rates), statistics.median(our_rates)
    print(f"median: pytorch {a:.2f} samples/s, bertfit {b:.2f} samples/s, ratio {b / a:.2f}")


if __name__ == "__main__":
    main()
