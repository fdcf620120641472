#!/usr/bin/env bash
# Sets up what the tests need (idempotent: Python venv, MiniLM, datasets, all in ~/.cache/bertfit),
# builds bertfit and runs every test: Rust unit tests and the integration tests, which run PyTorch
# and transformers for real on the parity side.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh
# Three test threads on two cores: many tests spend much of their time waiting (SLURM jobs, signals,
# timeouts, a killed peer), which a third thread fills. The whole suite passed so (2026-12-07).
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-3}"
# Three tests' libtorch thread pools then share two cores: OpenMP threads that spin while waiting
# for work take the cores from the others. Sleeping waits made the integration tests 14-23% faster
# here (BENCHMARKS.md, "Test suite time"); no result depends on it.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
# What this script starts it stops when it exits, however it exits.
stop_cluster=false zygote_pid="" scratch_dir=""
cleanup() {
    [[ -z "$zygote_pid" ]] || kill "$zygote_pid" 2>/dev/null || true
    [[ -z "$scratch_dir" ]] || rm -rf "$scratch_dir"
    if $stop_cluster; then bash scripts/slurm/cluster.sh stop; fi
}
trap cleanup EXIT
# tests/slurm.rs submits jobs to a real one-node SLURM: started once here (installed with apt-get
# when missing); one already running (started by hand with the same script) is used and left
# running.
if slurm_env=$(bash scripts/slurm/cluster.sh env 2>/dev/null); then
    echo "scripts/test.sh: using the running test cluster ($slurm_env)"
else
    stop_cluster=true
    slurm_env=$(bash scripts/slurm/cluster.sh start)
fi
eval "$slurm_env"
# The parity scripts run through a fork server that has imported torch and transformers once
# (scripts/parity/zygote.py; tests/common/zygote.rs is its client): the suite's ~100 script runs
# each skip 2-4.5 CPU seconds of imports. Without it (plain `cargo test`) they start Python.
scratch_dir=$(mktemp -d /tmp/bertfit-test.XXXXXX)
export BERTFIT_ZYGOTE="$scratch_dir/socket"
# The GEMM peaks the tests' training runs probe are taken beside other tests: they go to this
# run's own file, not to the user's cache (~/.cache/bertfit/peak.json), which every later run's
# MFU is measured against.
export BERTFIT_PEAK_FILE="$scratch_dir/peak.json"
HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false "$BERTFIT_PYTHON" scripts/parity/zygote.py "$BERTFIT_ZYGOTE" &
zygote_pid=$!
started=$(date +%s)
cargo build --release --locked --bins
# The benches are built, not run (figures come from scripts/bench-*.sh): unbuilt, two of them
# went on naming a tokenizer type that had been renamed.
cargo bench --locked --no-run
# The server imported while cargo built (a test finding no socket would start Python itself).
for _ in $(seq 60); do [[ -S "$BERTFIT_ZYGOTE" ]] && break; sleep 1; done
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
