#!/usr/bin/env bash
# Sets up what the tests need (idempotent: Python venv, MiniLM, datasets, all in ~/.cache/bertfit),
# builds bertfit and runs every test: Rust unit tests and the integration tests, which run PyTorch
# and transformers for real on the parity side.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh
started=$(date +%s)
cargo build --release --locked --bins
cargo test --release --locked "$@"
echo "scripts/test.sh: tests finished in $(( $(date +%s) - started )) s"
