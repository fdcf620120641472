#!/usr/bin/env python3
"""bf16 against fp32 on the CPU, bertfit and PyTorch, on the same batches in one run.

Issue 22's target: `bertfit train --precision bf16` at >= 1.5x bertfit fp32's samples/s, with the
validation accuracy within 1 point after the same epochs. For each case (max length 128 on the
movie snippets, 512 on the long texts of make_long_texts.py), four trainers train MiniLM on the same
training rows with the same seed, learning rate, batch size and threads, each batch padded to its
longest row:
  bertfit-fp32   bertfit train (its CPU default: unpadded)
  bertfit-bf16   bertfit train --precision bf16 (autocast, fp32 master weights)
  pytorch-fp32   scripts/reference_train.py --padding longest: PyTorch eager, the seed loop
  pytorch-bf16   the same under torch.autocast("cpu", dtype=torch.bfloat16) (its --precision bf16)
All four take the same batches in the same order (the same DataLoader draws). Each repeat runs the
four once, the order rotated by one each repeat, so that a change in the machine's load falls on
all of them; medians are over the repeats. samples/s is training rows over training seconds
(loading and validation excluded); val_accuracy is the last epoch's, in percent. Where bertfit's
epoch records carry `flops_per_second` / `mfu`, they are printed too.

Prints JSON lines: `machine` (load average before), `peak` (the GEMM peak per dtype, measured by
`bertfit bench-peak` first: the trainers' MFU is against it), one `run` per trainer and repeat, one `median`
per trainer and case, one `ratio` per case (bf16 / fp32 for bertfit and for PyTorch, bertfit against
PyTorch in each precision), one `target` per case, `peak_after` (the peak measured again at the end, not cached: how far the machine moved) and
`machine_after` (load average after). A
figure, not a test: run it through scripts/bench-precision.sh on an otherwise idle machine.

`--geometry bert-base` trains, instead of MiniLM, a BertModel of bert-base-uncased's shape (hidden
768, 12 layers of 12 heads, BertConfig's defaults: the model the PyTorch script users replace
fine-tunes) with random weights drawn by transformers from seed 0 and MiniLM's vocabulary (the same
as bert-base-uncased's). No pretrained BERT-base can be fetched here, and speed does not depend on
the weights' values; accuracy does, so the accuracy half of the target is read on MiniLM's runs.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bench_common import records, subset

HERE = os.path.dirname(os.path.abspath(__file__))
TRAINERS = ["bertfit-fp32", "bertfit-bf16", "pytorch-fp32", "pytorch-bf16"]
# Per-epoch fields of bertfit's metrics.jsonl printed when present (the FLOP accounting's).
FLOP_FIELDS = ["flops_per_second", "mfu"]


def load():
    return [round(x, 2) for x in os.getloadavg()]


def peak(args, cache):
    """`bertfit bench-peak` on the CPU with the trainers' threads: {dtype: TFLOP/s}. With `cache`,
    it replaces the cached peak the trainers then report their MFU against, so that MFU is against
    a peak measured in this run, under this run's load."""
    cmd = [args.bertfit, "bench-peak", "--device", "cpu", "--threads", str(args.threads), "--dtypes", "fp32,bf16"]
    out = subprocess.run(cmd + ([] if cache else ["--no-cache"]), check=True, stdout=subprocess.PIPE,
                         text=True).stdout
    figures = {}
    for line in out.splitlines():
        words = line.split()
        if len(words) >= 4 and words[1] == "GEMM" and words[-1] == "TFLOP/s":
            figures[words[0]] = float(words[-2])
    return figures


def random_bert_base(tokenizer_dir, folder):
    """A BertModel of bert-base-uncased's shape with random weights (seed 0) and the vocabulary
    of `tokenizer_dir`, saved as Hugging Face saves it to `folder`."""
    import torch
    import transformers

    torch.manual_seed(0)
    vocab = os.path.join(tokenizer_dir, "vocab.txt")
    config = transformers.BertConfig(vocab_size=sum(1 for _ in open(vocab, encoding="utf-8")))
    transformers.BertModel(config).save_pretrained(folder)
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        if os.path.exists(os.path.join(tokenizer_dir, name)):
            shutil.copy(os.path.join(tokenizer_dir, name), folder)
    return folder


def command(trainer, common, work, case, args):
    """(command line, metrics.jsonl path) of one trainer."""
    precision = trainer.split("-")[1]
    if trainer.startswith("pytorch"):
        metrics = os.path.join(work, f"{case}-{trainer}.jsonl")
        cmd = [sys.executable, os.path.join(HERE, "reference_train.py"), *common, "--precision", precision,
               "--metrics-out", metrics]
        return cmd, metrics
    out_dir = os.path.join(work, f"{case}-{trainer}")
    cmd = [args.bertfit, "train", *common, "--precision", precision, "--output-dir", out_dir, "--device", "cpu",
           "--save-strategy", "no", "--overwrite"]
    return cmd, os.path.join(out_dir, "metrics.jsonl")


def run_one(trainer, common, work, case, args):
    """Runs one trainer; its figures from the last epoch record."""
    cmd, metrics = command(trainer, common, work, case, args)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit(f"{trainer}: {' '.join(cmd)}\nfailed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    epochs, _ = records(metrics)
    last = epochs[-1]
    seconds = sum(e["train_seconds"] for e in epochs)
    rows = sum(e["train_samples_per_second"] * e["train_seconds"] for e in epochs)
    out = {"samples_per_second": round(rows / seconds, 3), "val_accuracy": last.get("val_accuracy"),
           "train_seconds": seconds}
    for f in FLOP_FIELDS:
        if f in last:
            out[f] = last[f]
    if "flops" in last:
        out["flops"] = sum(e["flops"] for e in epochs)
        peaks = [json.loads(line) for line in open(metrics) if '"kind":"peak"' in line]
        out["peak_flops_per_second"] = peaks[0]["flops_per_second"] if peaks else None
    return out


def pytorch_mfu(run, bertfit_run):
    """PyTorch's FLOP/s and MFU on the same rows: bertfit's count of the useful FLOPs (the same
    batches: the model's matmuls over the real tokens, whatever the padding) over PyTorch's
    training seconds, against bertfit's measured peak in the same dtype."""
    flops, peak = bertfit_run.get("flops"), bertfit_run.get("peak_flops_per_second")
    if flops and peak and "flops_per_second" not in run:
        run["flops_per_second"] = flops / run["train_seconds"]
        run["mfu"] = run["flops_per_second"] / peak


def ratio(a, b):
    return round(a / b, 3) if a and b else None


def run_case(length, data, rows, args, work):
    case = f"len{length}_batch{args.batch_size}"
    common = ["--model", args.model, "--data", data, "--epochs", str(args.epochs), "--batch-size",
              str(args.batch_size), "--max-length", str(length), "--padding", "longest", "--threads",
              str(args.threads), "--learning-rate", str(args.learning_rate), "--seed", str(args.seed)]
    runs = {t: [] for t in TRAINERS}
    for repeat in range(1, args.repeats + 1):
        shift = (repeat - 1) % len(TRAINERS)
        for trainer in TRAINERS[shift:] + TRAINERS[:shift]:
            r = run_one(trainer, common, work, case, args)
            runs[trainer].append(r)
        for precision in ("fp32", "bf16"):
            pytorch_mfu(runs[f"pytorch-{precision}"][-1], runs[f"bertfit-{precision}"][-1])
        for trainer in TRAINERS:
            r = runs[trainer][-1]
            print(json.dumps({"kind": "run", "case": case, "trainer": trainer, "repeat": repeat, "rows": rows,
                              **r, "load_1": load()[0]}), flush=True)
    medians = {}
    for trainer, rs in runs.items():
        med = {"samples_per_second": statistics.median(r["samples_per_second"] for r in rs)}
        accuracies = [r["val_accuracy"] for r in rs if r["val_accuracy"] is not None]
        med["val_accuracy"] = statistics.median(accuracies) if accuracies else None
        for f in FLOP_FIELDS:
            values = [r[f] for r in rs if r.get(f) is not None]
            if values:
                med[f] = statistics.median(values)
        medians[trainer] = med
        print(json.dumps({"kind": "median", "case": case, "trainer": trainer, **med,
                          "all_samples_per_second": [r["samples_per_second"] for r in rs]}), flush=True)
    rate = {t: m["samples_per_second"] for t, m in medians.items()}
    print(json.dumps({"kind": "ratio", "case": case,
                      "bertfit_bf16_vs_fp32": ratio(rate["bertfit-bf16"], rate["bertfit-fp32"]),
                      "pytorch_bf16_vs_fp32": ratio(rate["pytorch-bf16"], rate["pytorch-fp32"]),
                      "bertfit_vs_pytorch_fp32": ratio(rate["bertfit-fp32"], rate["pytorch-fp32"]),
                      "bertfit_vs_pytorch_bf16": ratio(rate["bertfit-bf16"], rate["pytorch-bf16"])}), flush=True)
    acc32, acc16 = medians["bertfit-fp32"]["val_accuracy"], medians["bertfit-bf16"]["val_accuracy"]
    speedup = ratio(rate["bertfit-bf16"], rate["bertfit-fp32"])
    gap = round(abs(acc16 - acc32), 3) if acc16 is not None and acc32 is not None else None
    print(json.dumps({"kind": "target", "case": case, "bertfit_bf16_vs_fp32": speedup, "target": 1.5,
                      "val_accuracy_gap_points": gap, "gap_limit": 1.0,
                      "met": bool(speedup and speedup >= 1.5 and gap is not None and gap <= 1.0)}), flush=True)


def main():
    assets = os.environ.get("BERTFIT_ASSETS", "")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=os.path.join(assets, "all-MiniLM-L6-v2"))
    p.add_argument("--geometry", choices=["model", "bert-base"], default="model",
                   help="bert-base: a random-weight BertModel of bert-base-uncased's shape with --model's "
                        "vocabulary instead of --model itself (see above)")
    p.add_argument("--movies", default=os.path.join(assets, "data", "movies.csv"))
    p.add_argument("--rows-128", type=int, default=160, help="training rows of the max-length-128 case")
    p.add_argument("--rows-512", type=int, default=48, help="training rows of the max-length-512 case")
    p.add_argument("--val-rows", type=int, default=64, help="validation rows of each case")
    p.add_argument("--lengths", default="128,512")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--learning-rate", type=float, default=2e-5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bertfit", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "bertfit"))
    args = p.parse_args()

    work = tempfile.mkdtemp(prefix="bertfit-bench-precision-")
    if args.geometry == "bert-base":
        args.model = random_bert_base(args.model, os.path.join(work, "bert-base"))
    lengths = [int(x) for x in args.lengths.split(",")]
    long_csv = os.path.join(work, "long.csv")
    if any(n > 128 for n in lengths):
        subprocess.run([sys.executable, os.path.join(HERE, "make_long_texts.py"), "--data", args.movies, "--out",
                        long_csv], check=True)
    print(json.dumps({"kind": "machine", "cpus": os.cpu_count(), "threads": args.threads, "load_1_5_15": load(),
                      "model": args.model if args.geometry == "model" else "random bert-base geometry",
                      "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}), flush=True)
    if os.getloadavg()[0] > (os.cpu_count() or 1) / 2:
        # Seen on the 2-core machine at load 7-9: libtorch's 2 threads then wait on each other in
        # every parallel op, and one trainer's samples/s varied 4x between repeats.
        print(json.dumps({"kind": "warning", "msg": "the machine is busy (load above half its CPUs): "
                          "the figures measure contention, not the trainers"}), flush=True)
    print(json.dumps({"kind": "peak", "tflops": peak(args, cache=True), "load_1": load()[0]}), flush=True)
    for length in lengths:
        source, rows = (args.movies, args.rows_128) if length <= 128 else (long_csv, args.rows_512)
        data = os.path.join(work, f"data{length}.csv")
        subset(source, data, rows, args.val_rows)
        run_case(length, data, rows, args, work)
    print(json.dumps({"kind": "peak_after", "tflops": peak(args, cache=False), "load_1": load()[0]}), flush=True)
    print(json.dumps({"kind": "machine_after", "load_1_5_15": load()}), flush=True)


if __name__ == "__main__":
    main()
