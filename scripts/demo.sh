#!/usr/bin/env bash
# Sets up (idempotent), builds bertfit and fine-tunes all-MiniLM-L6-v2 on the movie-review snippets
# (positive / negative), printing the seed script's two lines per epoch. The fine-tuned model lands
# in ~/.cache/bertfit/demo-model (an HF folder transformers can load). Extra flags go to `bertfit train`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
t0=$(date +%s)
bash scripts/setup.sh
cargo build --release --locked --bin bertfit
t1=$(date +%s)
echo "demo: set-up and build took $(( t1 - t0 )) s"
"$CARGO_TARGET_DIR/release/bertfit" train \
    --model "$BERTFIT_ASSETS/all-MiniLM-L6-v2" \
    --data "$BERTFIT_ASSETS/data/movies.csv" \
    --output-dir "$BERTFIT_CACHE/demo-model" --overwrite \
    --epochs 1 --batch-size 16 --learning-rate 5e-5 --max-length 64 \
    "$@"
echo "demo: training took $(( $(date +%s) - t1 )) s"
