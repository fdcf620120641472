#!/usr/bin/env python3
"""Training samples/s of bertfit's default pipeline against the seed script's pad-to-512 one, in one run.

Three `bertfit train` runs on the same rows (a shuffled subset of the movie snippets), the same seed,
model (MiniLM), batch 16, max_length 512 and threads, for the same number of steps:
  - default:        --padding longest (each batch padded to its longest example)
  - group-by-length: --padding longest --group-by-length (batches of similar length)
  - pad512:         --padding max-length --max-length 512 (the seed script's padding)
It prints samples/s of each, the speed-up over pad512, validation accuracy (on the same validation
rows) and the share of training time spent waiting for data, read from each run's metrics.jsonl.
Pad-to-512 is slow on a CPU (about 1 sample/s on 2 cores), hence --max-steps and a validation
subset. Run after `source scripts/env.sh` and `cargo build --release --bins`.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

from bench_common import records, subset


def summary(epochs):
    """Samples/s over all epochs of the run, the last validation accuracy, data wait / train time."""
    train_s = sum(e["train_seconds"] for e in epochs)
    wait_s = sum(e["data_wait_seconds"] for e in epochs)
    samples = sum(e["train_samples_per_second"] * e["train_seconds"] for e in epochs)
    return {"samples_per_s": samples / train_s, "val_accuracy": epochs[-1]["val_accuracy"],
            "wait_fraction": wait_s / train_s, "train_s": train_s}


def main():
    assets = os.environ.get("BERTFIT_ASSETS", "")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=os.path.join(assets, "all-MiniLM-L6-v2"))
    p.add_argument("--data", default=os.path.join(assets, "data", "movies.csv"))
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--val-rows", type=int, default=200)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--subset-seed", type=int, default=0)
    p.add_argument("--bertfit", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "bertfit"))
    args = p.parse_args()

    work = tempfile.mkdtemp(prefix="bertfit-bench-padding-")
    data = os.path.join(work, "data.csv")
    n_train = args.steps * args.batch_size
    subset(args.data, data, n_train, args.val_rows, args.subset_seed)
    common = ["--model", args.model, "--data", data, "--epochs", "1", "--max-steps", str(args.steps),
              "--batch-size", str(args.batch_size), "--max-length", str(args.max_length),
              "--threads", str(args.threads), "--seed", str(args.seed), "--device", "cpu", "--overwrite"]
    runs = [("default (longest)", ["--padding", "longest"]),
            ("group-by-length", ["--padding", "longest", "--group-by-length"]),
            ("pad512 (seed)", ["--padding", "max-length"])]
    print(f"work: {n_train} train rows ({args.steps} steps of {args.batch_size}), {args.val_rows} val rows, "
          f"max_length {args.max_length}, {args.threads} threads, seed {args.seed}, model {args.model}", flush=True)
    print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min)",
          flush=True)

    results, steps = {}, {}
    for name, flags in runs:
        out = os.path.join(work, name.split()[0])
        t = time.perf_counter()
        run = subprocess.run([args.bertfit, "train", *common, *flags, "--output-dir", out],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if run.returncode != 0:
            sys.exit(f"bertfit train ({name}) failed with exit code {run.returncode}:\n{run.stderr[-4000:]}")
        epochs, steps[name] = records(os.path.join(out, "metrics.jsonl"))
        results[name] = summary(epochs)
        r = results[name]
        print(f"  {name}: {r['samples_per_s']:.2f} samples/s, {time.perf_counter() - t:.0f} s wall (with validation)",
              flush=True)

    base = results["pad512 (seed)"]
    print()
    print(f"{'':20} {'samples/s':>10} {'x pad512':>9} {'val acc %':>10} {'data wait %':>12}")
    for name, _ in runs:
        r = results[name]
        print(f"{name:20} {r['samples_per_s']:10.2f} {r['samples_per_s'] / base['samples_per_s']:9.1f} "
              f"{r['val_accuracy']:10.2f} {100 * r['wait_fraction']:12.3f}")
    d = results["default (longest)"]
    same = [s["rows"] for s in steps["default (longest)"]] == [s["rows"] for s in steps["pad512 (seed)"]]
    print(f"ratio default / pad512: {d['samples_per_s'] / base['samples_per_s']:.1f}x (target >= 10x)")
    print(f"val accuracy default - pad512: {d['val_accuracy'] - base['val_accuracy']:+.2f} points "
          f"(target within 1); same batches, same order: {'yes' if same else 'NO'}")
    worst = max(r["wait_fraction"] for r in results.values())
    print(f"data wait, worst run: {100 * worst:.3f}% of training time (target < 1%)")
    print(f"load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min)")


if __name__ == "__main__":
    main()
