#!/usr/bin/env bash
# Fuzzes every reader of a file bertfit takes (CSV, Parquet, pickle, safetensors, config.json,
# vocab.txt + tokenizer_config.json, token-cache entries, the metrics.jsonl `plot` reads) with
# cargo-fuzz (libFuzzer).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   each target for SECONDS (default 60), all by default
#   scripts/fuzz.sh --seeds                 regenerate fuzz/seeds/ from the test inputs (Python)
#   scripts/fuzz.sh --ci [SECONDS]          build, then run each target over its seeds and for
#                                           SECONDS (default 10) more (`BERTFIT_FUZZ_SECONDS=N
#                                           scripts/test.sh` runs it after the tests)
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`). Builds with
# `--sanitizer none` (libFuzzer's coverage and Rust's checks, debug assertions on: overflow is a
# crash): AddressSanitizer adds nothing to safe Rust and libtorch is not built with it. Its own
# target folder, $BERTFIT_CACHE/target-fuzz, so the release build stays warm.
#
# The targets' bodies are fuzz/fuzz_targets/bodies.rs, which tests/fuzz_seeds.rs runs in the
# ordinary test build over the seeds, fuzz/known/ and whatever corpus and artifacts are here.
# The corpus grows in fuzz/corpus/<target>/ (not committed); the checked-in seeds are read too.
# A crash is saved in fuzz/artifacts/<target>/; reproduce it with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file> --sanitizer none -a
# and turn it into a regression test (tests/hardening.rs or the reader's own tests).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
export CARGO_TARGET_DIR="${BERTFIT_FUZZ_TARGET_DIR:-$BERTFIT_CACHE/target-fuzz}"
TARGETS=(csv parquet pickle safetensors config tokenizer token_cache checkpoint metrics)
FLAGS=(--sanitizer none -a --target-dir "$CARGO_TARGET_DIR")
# bertfit's build.rs gives its own binaries an rpath to libtorch; the fuzz binaries need the path.
torch_lib="$("$BERTFIT_PYTHON" -c 'import os, torch; print(os.path.dirname(torch.__file__))')/lib"
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

if [[ "${1:-}" == "--seeds" ]]; then
    rm -rf fuzz/seeds
    "$BERTFIT_PYTHON" scripts/parity/make_fuzz_seeds.py fuzz/seeds "$BERTFIT_ASSETS"
    exit 0
fi
ci=0
if [[ "${1:-}" == "--ci" ]]; then
    ci=1
    shift
fi
seconds="${1:-$([[ $ci == 1 ]] && echo 10 || echo 60)}"
shift || true
(( $# )) && TARGETS=("$@")

cd fuzz
cargo +nightly fuzz build "${FLAGS[@]}" 2>&1 | tail -n 3
failed=()
for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "== $t: ${seconds}s"
    # -max_len 65536: seeds are whole files up to 64 KB. -rss_limit_mb: a reader that tries to
    # allocate what a corrupt size says is a crash, not a slow run. -timeout 60: one input taking
    # that long is reported (fuzz/known/ has a Parquet footer that takes 0.3 s, 28 s under load).
    if ! cargo +nightly fuzz run "${FLAGS[@]}" "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=4096 -timeout=60 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 2>&1 | tail -n 12; then
        failed+=("$t")
    fi
done
if (( ${#failed[@]} )); then
    echo "scripts/fuzz.sh: crashes in: ${failed[*]} (see fuzz/artifacts/)"
    exit 1
fi
echo "scripts/fuzz.sh: no crash in ${TARGETS[*]} (${seconds}s each)"
