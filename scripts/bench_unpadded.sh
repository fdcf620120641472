#!/usr/bin/env bash
# Forward + backward time per batch, padded against unpadded, on the CPU: `cargo bench --bench
# unpadded` (benches/unpadded.rs), MiniLM, batch 32, movie snippets at max length 128 and long
# joined snippets at max length 512, and mixed short and long texts (scripts/make_long_texts.py) at 512. A figure, not a test. Needs scripts/setup.sh to have run.
# Environment: BENCH_THREADS (2), BENCH_BATCHES (6 per case), BENCH_REPEATS (5), BENCH_CASE (short,
# long, mixed, or unset for all). Run it on an idle machine: under load the 2 libtorch threads contend.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

export BERTFIT_LONG_DATA="${BERTFIT_LONG_DATA:-$(mktemp -d)/long.csv}"
[[ -f $BERTFIT_LONG_DATA ]] || python scripts/make_long_texts.py --data "$BERTFIT_ASSETS/data/movies.csv" --out "$BERTFIT_LONG_DATA"
echo "load before: $(uptime)"
cargo bench --locked --bench unpadded
echo "load after: $(uptime)"
