#!/usr/bin/env bash
# bf16 against fp32 on the CPU (issue 22): bertfit fp32, bertfit --precision bf16, PyTorch eager
# fp32 and PyTorch under torch.autocast bf16 on the same batches in one run, alternating, 3 repeats,
# MiniLM, batch 16, max length 128 (movie snippets) and 512 (long texts); samples/s, medians,
# bf16/fp32 ratios, validation accuracy and the load average. Sets up and builds first. Extra
# flags go to bench_precision.py (--help), e.g. --rows-128 2000 --epochs 3 for the accuracy target,
# or --geometry bert-base for a random-weight model of bert-base-uncased's shape.
# A figure, not a test: run it on an otherwise idle machine and record it in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh >&2
cargo build --release --locked --bin bertfit >&2
python scripts/bench_precision.py "$@"
