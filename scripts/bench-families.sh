#!/usr/bin/env bash
# Training speed per encoder family (issue 21): bertfit default against PyTorch eager
# (AutoModelForSequenceClassification) on the same batches, one random base model of MiniLM's size
# per family, lengths 128 and 512, batch 16. One JSON line per family and case. Sets up and builds
# first; extra flags go to bench_families.py (--help). A figure, not a test: record it in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh >&2
cargo build --release --locked --bin bertfit >&2
python scripts/bench_families.py "$@"
