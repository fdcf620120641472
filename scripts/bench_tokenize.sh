#!/usr/bin/env bash
# Tokenizer throughput, bertfit against HF's BertTokenizerFast on the same texts, in one run:
# `cargo bench --bench tokenize` (criterion: encode on one thread, encode_batch on all cores, the
# movie snippets, max_length 512), then scripts/bench_tokenize_hf.py, which times HF and prints
# texts/s, MB/s and the ratios. Extra arguments go to criterion, e.g. `--measurement-time 20`.
# A figure, not a test. Needs scripts/setup.sh to have run (assets and venv).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

criterion_args=(--warm-up-time 1 --measurement-time 5 "$@")
log="$(mktemp -t bertfit-bench-tokenize.XXXXXX)"
trap 'rm -f "$log"' EXIT
echo "load before: $(uptime)"
cargo bench --locked --bench tokenize -- "${criterion_args[@]}" 2>&1 | tee "$log"

# Criterion's estimate of one iteration (one pass over every text), in ns.
mean_ns() {
    local f="$CARGO_TARGET_DIR/criterion/tokenize/$1/new/estimates.json"
    [[ -f "$f" ]] || { echo "no criterion estimates at $f" >&2; exit 1; }
    "$BERTFIT_PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["mean"]["point_estimate"])' "$f"
}
encode_ns="$(mean_ns encode_1_thread)"
batch_ns="$(mean_ns encode_batch_all_cores)"
texts="$(sed -n 's/^tokenize: \([0-9]*\) texts.*/\1/p' "$log" | head -n1)"

echo
"$BERTFIT_PYTHON" scripts/bench_tokenize_hf.py --bertfit-encode-ns "$encode_ns" --bertfit-batch-ns "$batch_ns" \
    ${texts:+--bertfit-texts "$texts"}
echo "load after: $(uptime)"
