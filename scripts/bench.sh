#!/usr/bin/env bash
# Sets up, builds and runs the benchmark scripts that print figures (not tests): training
# throughput against PyTorch on identical work. Extra flags go to bench_vs_pytorch.py.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh
cargo build --release --locked --bin bertfit
python scripts/bench_vs_pytorch.py "$@"
