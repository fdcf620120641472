#!/usr/bin/env bash
# scripts/bench_checkpoint.sh: how long a MiniLM checkpoint takes to write and to load, and its size.
#
#     scripts/bench_checkpoint.sh [STEPS] [SAVE_STEPS]      (defaults 6 and 2)
#
# Trains all-MiniLM-L6-v2 (from scripts/setup.sh's assets) on the movie snippets for STEPS steps on
# the CPU, writing a checkpoint every SAVE_STEPS steps; each write is a `{"kind":"checkpoint",
# "seconds":..,"bytes":..}` line in metrics.jsonl (staging, fsync, swap). Then resumes a second run
# from the first checkpoint, whose `{"kind":"checkpoint_load",...}` line times the load (weights,
# optimizer and generator state). Prints one JSON line:
#     {"write_s": mean write, "write_s_each": [...], "load_s": .., "bytes": .., "checkpoints": N}
# Uses the release binary in $CARGO_TARGET_DIR (build it first). Timings include fsync, so they
# depend on the disk and on what else the machine is doing.
set -euo pipefail
source "$(dirname -- "${BASH_SOURCE[0]}")/env.sh"
steps="${1:-6}"
save_steps="${2:-2}"
bin="$CARGO_TARGET_DIR/release/bertfit"
[ -x "$bin" ] || { echo "no $bin: cargo build --release first" >&2; exit 1; }
model="$BERTFIT_ASSETS/all-MiniLM-L6-v2"
data="$BERTFIT_ASSETS/data/movies.csv"
work="$(mktemp -d "${TMPDIR:-/tmp}/bertfit-bench-checkpoint.XXXXXX")"
trap 'rm -rf "$work"' EXIT

common=(--model "$model" --data "$data" --device cpu --batch-size 16 --max-length 64
        --max-steps "$steps" --save-strategy steps --save-steps "$save_steps" --max-train-samples 2000 --max-eval-samples 64)
"$bin" train "${common[@]}" --output-dir "$work/run" >"$work/train.log" 2>&1 ||
    { cat "$work/train.log" >&2; exit 1; }
cp "$work/run/metrics.jsonl" "$work/write.jsonl"
first="$work/run/checkpoint-$save_steps"
"$bin" train "${common[@]}" --output-dir "$work/run" --resume-from-checkpoint "$first" \
    >"$work/resume.log" 2>&1 || { cat "$work/resume.log" >&2; exit 1; }

"$BERTFIT_PYTHON" - "$work/write.jsonl" "$work/run/metrics.jsonl" <<'PY'
import json, sys
writes = [r for r in map(json.loads, open(sys.argv[1])) if r.get("kind") == "checkpoint"]
loads = [r for r in map(json.loads, open(sys.argv[2])) if r.get("kind") == "checkpoint_load"]
if not writes or not loads:
    sys.exit("metrics.jsonl has no checkpoint records")
print(json.dumps({
    "write_s": round(sum(r["seconds"] for r in writes) / len(writes), 4),
    "write_s_each": [round(r["seconds"], 4) for r in writes],
    "load_s": round(loads[0]["seconds"], 4),
    "bytes": writes[0]["bytes"],
    "checkpoints": len(writes),
}))
PY
