#!/usr/bin/env bash
# Sets up what the tests need (idempotent: Python venv, MiniLM, datasets, all in ~/.cache/bertfit),
# builds bertfit and runs every test: Rust unit tests and the integration tests, which run PyTorch
# and transformers for real on the parity side.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh
# tests/slurm.rs submits jobs to a real one-node SLURM: started once here (installed with apt-get
# when missing) and stopped when this script exits, however it exits; one already running (started
# by hand with the same script) is used and left running.
if slurm_env=$(bash scripts/slurm/cluster.sh env 2>/dev/null); then
    echo "scripts/test.sh: using the running test cluster ($slurm_env)"
else
    slurm_env=$(bash scripts/slurm/cluster.sh start)
    trap 'bash scripts/slurm/cluster.sh stop' EXIT
fi
eval "$slurm_env"
started=$(date +%s)
# Three test threads on two cores: many tests spend much of their time waiting (SLURM jobs, signals,
# timeouts, a killed peer), which a third thread fills. The whole suite passed so (2026-12-07).
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-3}"
cargo build --release --locked --bins
# The benches are built, not run (figures come from scripts/bench-*.sh): unbuilt, two of them
# went on naming a tokenizer type that had been renamed.
cargo bench --locked --no-run
cargo test --release --locked "$@"
# The fuzz targets' bodies run over their seeds in the tests above (tests/fuzz_seeds.rs); fuzzing
# is `scripts/fuzz.sh SECONDS`. BERTFIT_FUZZ_SECONDS=N also builds the fuzz targets (nightly,
# minutes on a fresh clone) and runs each over its seeds and for N seconds more.
if [[ -n "${BERTFIT_FUZZ_SECONDS:-}" ]]; then
    command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz@0.13.2
    rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
    bash scripts/fuzz.sh --ci "$BERTFIT_FUZZ_SECONDS"
fi
echo "scripts/test.sh: tests finished in $(( $(date +%s) - started )) s"
