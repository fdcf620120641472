#!/usr/bin/env python3
"""CPU training throughput and peak memory: bertfit against PyTorch eager and the HF Trainer, in one run.

For each case (max length 128 on the movie snippets, 512 on long texts made by make_long_texts.py;
batch 16 and 32), four trainers train MiniLM for one epoch on the same training rows with the same
seed, learning rate and thread count, each batch padded to its longest row:
  bertfit            bertfit's default (on the CPU: unpadded, the per-token layers on real tokens)
  bertfit-reproduce  bertfit --reproduce-pytorch --padding longest: PyTorch's exact run and layout
  pytorch            scripts/reference_train.py --padding longest: PyTorch eager, the seed loop
  hf-trainer         scripts/bench_hf_trainer.py: transformers.Trainer, random sampling (no length grouping)
bertfit, bertfit-reproduce and pytorch take the same batches in the same order (the same
DataLoader draws); the HF Trainer draws its own shuffle (same rows, another order).
samples/s is training rows over training seconds (model loading and validation excluded, the same
definition in every record); peak RSS is the process's maximum resident set (os.wait4). Prints one
JSON line per trainer and case, with the ratio to pytorch's samples/s, then the targets. Run through
scripts/bench-cpu.sh (sets up and builds) or after `source scripts/env.sh`.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from bench_common import records, subset

HERE = os.path.dirname(os.path.abspath(__file__))


def run_measured(cmd):
    """Runs cmd; returns (stdout, peak RSS in MiB) or exits with its stderr."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # wait4 gives this child's own rusage (ru_maxrss in KiB on Linux), not the maximum over all children.
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:3])} ... failed ({proc.returncode}):\n{err[-3000:]}")
    return out, usage.ru_maxrss / 1024


def epoch_rate(metrics):
    epochs, _ = records(metrics)
    return epochs[0]["train_samples_per_second"]


def main():
    assets = os.environ.get("BERTFIT_ASSETS", "")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=os.path.join(assets, "all-MiniLM-L6-v2"))
    p.add_argument("--movies", default=os.path.join(assets, "data", "movies.csv"))
    p.add_argument("--rows-128", type=int, default=320, help="training rows of the max-length-128 cases")
    p.add_argument("--rows-512", type=int, default=160, help="training rows of the max-length-512 cases")
    p.add_argument("--batch-sizes", default="16,32")
    p.add_argument("--lengths", default="128,512")
    p.add_argument("--trainers", default="pytorch,bertfit,bertfit-reproduce,hf-trainer")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--bertfit", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "bertfit"))
    args = p.parse_args()

    work = tempfile.mkdtemp(prefix="bertfit-bench-cpu-")
    long_csv = os.path.join(work, "long.csv")
    subprocess.run([sys.executable, os.path.join(HERE, "make_long_texts.py"), "--data", args.movies, "--out", long_csv],
                   check=True)
    print(json.dumps({"kind": "machine", "cpus": os.cpu_count(), "threads": args.threads,
                      "load_1_5_15": [round(x, 2) for x in os.getloadavg()],
                      "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}), flush=True)
    ratios = {}
    for length in [int(x) for x in args.lengths.split(",")]:
        source, rows = (args.movies, args.rows_128) if length <= 128 else (long_csv, args.rows_512)
        data = os.path.join(work, f"data{length}.csv")
        subset(source, data, rows, 16)
        for batch in [int(x) for x in args.batch_sizes.split(",")]:
            case = f"len{length}_batch{batch}"
            common = ["--model", args.model, "--data", data, "--epochs", "1", "--batch-size", str(batch),
                      "--max-length", str(length), "--padding", "longest", "--threads", str(args.threads),
                      "--learning-rate", "1e-5", "--seed", "0"]
            results = {}
            for trainer in args.trainers.split(","):
                metrics = os.path.join(work, f"{case}-{trainer}.jsonl")
                out_dir = os.path.join(work, f"{case}-{trainer}")
                if trainer == "pytorch":
                    cmd = [sys.executable, os.path.join(HERE, "reference_train.py"), *common, "--metrics-out", metrics]
                elif trainer.startswith("bertfit"):
                    extra = ["--reproduce-pytorch"] if trainer == "bertfit-reproduce" else []
                    cmd = [args.bertfit, "train", *common, *extra, "--output-dir", out_dir, "--device", "cpu",
                           "--save-strategy", "no", "--overwrite"]
                    metrics = os.path.join(out_dir, "metrics.jsonl")
                elif trainer == "hf-trainer":
                    cmd = [sys.executable, os.path.join(HERE, "bench_hf_trainer.py"), "--model", args.model, "--data",
                           data, "--batch-size", str(batch), "--max-length", str(length), "--threads",
                           str(args.threads), "--seed", "0"]
                else:
                    sys.exit(f"unknown trainer {trainer!r}")
                out, rss = run_measured(cmd)
                rate = (json.loads(out.strip().splitlines()[-1])["train_samples_per_second"]
                        if trainer == "hf-trainer" else epoch_rate(metrics))
                results[trainer] = rate
                base = results.get("pytorch")
                print(json.dumps({"kind": "case", "case": case, "trainer": trainer, "max_length": length,
                                  "batch_size": batch, "rows": rows, "samples_per_second": round(rate, 3),
                                  "peak_rss_mib": round(rss, 1),
                                  "ratio_vs_pytorch": round(rate / base, 3) if base else None}), flush=True)
            if "pytorch" in results and "bertfit" in results:
                ratios[case] = results["bertfit"] / results["pytorch"]
    targets = {"len128_batch32": 1.4, "len512_batch16": 2.0, "len512_batch32": 2.0}
    for case, target in targets.items():
        if case in ratios:
            print(json.dumps({"kind": "target", "case": case, "bertfit_vs_pytorch": round(ratios[case], 3),
                              "target": target, "met": ratios[case] >= target}))
    print(json.dumps({"kind": "machine_after", "load_1_5_15": [round(x, 2) for x in os.getloadavg()]}))


if __name__ == "__main__":
    main()
