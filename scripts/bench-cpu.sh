#!/usr/bin/env bash
# CPU training benchmark (issue: faster than PyTorch): bertfit default, bertfit --reproduce-pytorch,
# PyTorch eager (reference_train.py) and the HF Trainer on identical rows, MiniLM, batch 16 and 32,
# max length 128 (movie snippets) and 512 (long texts), one JSON line per case with samples/s, peak
# RSS and the ratio to PyTorch. Sets up and builds first. Extra flags go to bench_cpu.py (--help).
# A figure, not a test: run it on an otherwise idle machine and record it in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh >&2
cargo build --release --locked --bin bertfit >&2
python scripts/bench_cpu.py "$@"
