#!/usr/bin/env bash
# CPU scaling of data-parallel training: all-MiniLM-L6-v2 on the movie snippets, global batch 16,
# every example padded to 128 tokens (so both cases compute the same tokens per example), one
# libtorch thread per process (OMP_NUM_THREADS=1, --threads 1):
#   1 process  x batch 16
#   2 processes x batch 8 (scripts/launch-local.sh 2, Gloo on 127.0.0.1)
# Prints one JSON line per case: global samples/s over the timed steps, and for 2 processes the
# efficiency (speedup / 2) and the mean seconds per optimizer step spent averaging gradients
# (bertfit's `allreduce_seconds` in the epoch record, waiting for the slower rank included).
# A figure, not a test; needs scripts/setup.sh and a release build. Run it on an idle machine
# with at least 2 cores: the load average is printed with each line.
#
#   BENCH_STEPS   optimizer steps per case (default 30)
#   BERTFIT_BIN   the binary (default: $CARGO_TARGET_DIR/release/bertfit)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

bin=${BERTFIT_BIN:-$CARGO_TARGET_DIR/release/bertfit}
[[ -x $bin ]] || { echo "bench_ddp: $bin not found: cargo build --release --bin bertfit" >&2; exit 1; }
steps=${BENCH_STEPS:-30}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1 BERTFIT_BIN=$bin

flags=(--model "$BERTFIT_ASSETS/all-MiniLM-L6-v2" --data "$BERTFIT_ASSETS/data/movies.csv"
    --device cpu --threads 1 --max-length 128 --padding max-length --learning-rate 2e-5
    --epochs 1 --max-steps "$steps" --do-train --save-strategy no --ddp-timeout 600)

# One JSON line from a run's epoch record (rank 0's timing; every rank does the same steps).
report() {
    local name=$1 procs=$2 batch=$3 dir=$4 base=${5:-}
    "$BERTFIT_PYTHON" - "$name" "$procs" "$batch" "$dir/metrics.jsonl" "$steps" "$base" <<'EOF'
import json, os, sys
name, procs, batch, path, steps, base = sys.argv[1:]
procs, batch, steps = int(procs), int(batch), int(steps)
records = [json.loads(l) for l in open(path)]
epoch = [r for r in records if r["kind"] == "epoch"][-1]
done = len([r for r in records if r["kind"] == "step"])
sps = done * batch * procs / epoch["train_seconds"]
line = {
    "case": name, "processes": procs, "threads_per_process": 1, "per_rank_batch": batch,
    "global_batch": batch * procs, "max_length": 128, "steps": done,
    "seconds": round(epoch["train_seconds"], 2), "samples_per_second": round(sps, 2),
}
if epoch.get("allreduce_seconds") is not None:
    line["allreduce_seconds_per_step"] = round(epoch["allreduce_seconds"] / done, 4)
if base:
    line["speedup"] = round(sps / float(base), 3)
    line["efficiency"] = round(sps / float(base) / procs, 3)
line["load_average"] = os.getloadavg()[0]
print(json.dumps(line))
EOF
}

"$bin" train "${flags[@]}" --batch-size 16 --output-dir "$work/one" >"$work/one.log" 2>&1 \
    || { cat "$work/one.log" >&2; exit 1; }
one=$(report "1 process x 1 thread" 1 16 "$work/one")
echo "$one"
base=$("$BERTFIT_PYTHON" -c 'import json, sys; print(json.loads(sys.argv[1])["samples_per_second"])' "$one")

bash scripts/launch-local.sh 2 -- "${flags[@]}" --batch-size 8 --output-dir "$work/two" >"$work/two.log" 2>&1 \
    || { cat "$work/two.log" >&2; exit 1; }
report "2 processes x 1 thread" 2 8 "$work/two" "$base"
