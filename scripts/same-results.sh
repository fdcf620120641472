#!/usr/bin/env bash
# Same results before and after a change that should not change them (a refactor):
#   scripts/same-results.sh OLD_BIN NEW_BIN
# runs a fixed matrix of seeded runs and refused command lines with both binaries and compares
# every output file byte for byte: trained weights, checkpoints, predictions, results JSON,
# metrics.jsonl, stdout and stderr. Only wall-clock figures differ between two runs of the same
# binary, so those keys (runtime, per-second rates, seconds, bytes) are dropped before comparing,
# and temp paths are replaced by a placeholder. Prints one line per case and exits 1 on any
# difference (with a diff of the first differing file).
set -euo pipefail
OLD=$(realpath "$1")
NEW=$(realpath "$2")
here=$(cd "$(dirname "$0")" && pwd)
source "$here/env.sh" >/dev/null
PY=$BERTFIT_CACHE/venv/bin/python
MINILM=$BERTFIT_CACHE/assets/all-MiniLM-L6-v2
TREC=$BERTFIT_CACHE/assets/data/trec.csv
work=$(mktemp -d /tmp/same-results.XXXXXX)
[[ -n "${KEEP:-}" ]] || trap 'rm -rf "$work"' EXIT
cd "$work"

# Fixtures: a tiny random BERT with MiniLM's vocabulary (6 classes, 1 output, 3 multi-label
# classes) and small slices of the TREC questions.
for spec in "m6 6" "m1 1" "m3 3"; do
  set -- $spec
  "$PY" "$here/parity/make_model.py" --random --vocab-from "$MINILM" --layers 2 --hidden 32 \
    --heads 2 --intermediate 48 --out "$1" --num-labels "$2" --seed 5 >/dev/null 2>&1
done
awk -F, 'NR == 1 || ($NF == "train" && t++ < 64) || ($NF == "val" && v++ < 16) ||
  ($NF == "test" && s++ < 16)' "$TREC" > single.csv
# Regression: the label is the question's length in words; multi-label: two labels per row.
"$PY" - <<'EOF'
import csv
rows = list(csv.DictReader(open("single.csv")))
with open("reg.csv", "w", newline="") as f:
    w = csv.writer(f); w.writerow(["text", "label", "split"])
    for r in rows: w.writerow([r["text"], f'{len(r["text"].split()) / 4:.2f}', r["split"]])
names = ["a", "b", "c"]
with open("multi.csv", "w", newline="") as f:
    w = csv.writer(f); w.writerow(["text", "label", "split"])
    for i, r in enumerate(rows):
        w.writerow([r["text"], "|".join(n for j, n in enumerate(names) if (i >> j) & 1 or j == i % 3), r["split"]])
EOF

common=(--device cpu --max-length 32 --seed 3 --threads 1 --learning-rate 2e-3)
# name | arguments (OUT is replaced by the case's output folder)
cases=(
  "seed-defaults|train --model m6 --data single.csv --output-dir OUT --epochs 2 ${common[*]}"
  "hf-do-all|train --model m6 --data single.csv --output-dir OUT --epochs 2 --do-train --do-eval --do-predict ${common[*]}"
  "padded-maxlen|train --model m6 --data single.csv --output-dir OUT --epochs 1 --padding max-length --unpadded false ${common[*]}"
  "unpadded|train --model m6 --data single.csv --output-dir OUT --epochs 1 --unpadded true --do-train --do-eval --do-predict ${common[*]}"
  "recipe|train --model m6 --data single.csv --output-dir OUT --epochs 2 --optim adamw_torch --weight-decay 0.01 --lr-scheduler-type linear --warmup-ratio 0.1 --max-grad-norm 1.0 --gradient-accumulation-steps 3 --label-smoothing-factor 0.1 ${common[*]}"
  "cosine-steps|train --model m6 --data single.csv --output-dir OUT --epochs 3 --lr-scheduler-type cosine --eval-steps 3 --save-strategy steps --save-steps 4 --save-total-limit 2 --load-best-model-at-end --metric-for-best-model accuracy ${common[*]}"
  "early-stop|train --model m6 --data single.csv --output-dir OUT --epochs 6 --eval-steps 2 --early-stopping-patience 2 --load-best-model-at-end ${common[*]}"
  "max-steps|train --model m6 --data single.csv --output-dir OUT --epochs 5 --max-steps 7 --save-strategy epoch ${common[*]}"
  "bf16|train --model m6 --data single.csv --output-dir OUT --epochs 1 --bf16 ${common[*]}"
  "group-length|train --model m6 --data single.csv --output-dir OUT --epochs 1 --group-by-length ${common[*]}"
  "streaming|train --model m6 --data single.csv --output-dir OUT --epochs 2 --streaming --shuffle-buffer 20 ${common[*]}"
  "reproduce|train --model m6 --data single.csv --output-dir OUT --epochs 1 --reproduce-pytorch --device cpu --max-length 32 --seed 3 --threads 1"
  "regression|train --model m1 --data reg.csv --output-dir OUT --epochs 2 --problem-type regression --do-train --do-eval --do-predict ${common[*]}"
  "multi-label|train --model m3 --data multi.csv --output-dir OUT --epochs 2 --problem-type multi_label_classification --do-train --do-eval --do-predict ${common[*]}"
  "resume|RESUME"
  "predict|PREDICT"
  "evaluate|EVALUATE"
  "bad-lr|train --model m6 --data single.csv --output-dir OUT --learning-rate nope --device cpu"
  "bad-optim|train --model m6 --data single.csv --output-dir OUT --optim sgd --device cpu"
  "bad-sched|train --model m6 --data single.csv --output-dir OUT --lr-scheduler-type wavy --device cpu"
  "bad-precision|train --model m6 --data single.csv --output-dir OUT --bf16 --fp16 --device cpu"
  "bad-repro|train --model m6 --data single.csv --output-dir OUT --reproduce-pytorch --bf16 --device cpu"
  "bad-column|train --model m6 --data single.csv --output-dir OUT --text-column body --device cpu"
  "bad-maxlen|train --model m6 --data single.csv --output-dir OUT --max-length 100000 --device cpu"
  "bad-threads|train --model m6 --data single.csv --output-dir OUT --threads 0 --device cpu"
  "bad-model|train --model nowhere --data single.csv --output-dir OUT --device cpu"
  "bad-device|train --model m6 --data single.csv --output-dir OUT --device tpu"
  "bad-predict|predict --model m6 --data nowhere.csv --output OUT/p.csv --device cpu"
)

# Drops wall-clock figures from JSON and JSON-lines files; leaves other files as they are.
normalize() {
  "$PY" - "$1" "$2" <<'EOF'
import json, re, sys
src, dst = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
timed = re.compile(r"(runtime|per_second|seconds|bytes|_at$|time|elapsed|phases)")
# trainer_state.json's log_history holds eval_runtime: its hash in a checkpoint's manifest varies.
def clean(v):
    if isinstance(v, dict):
        return {k: clean(x) for k, x in v.items()
                if not timed.search(k) and k != "trainer_state.json" and x != "trainer_state.json"}
    if isinstance(v, list):
        return [clean(x) for x in v
                if not (isinstance(x, dict) and "trainer_state.json" in x.values())]
    return v
if src.endswith((".json", ".jsonl")):
    try:
        text = data.decode()
        if src.endswith(".jsonl"):
            out = "\n".join(json.dumps(clean(json.loads(l))) for l in text.splitlines() if l.strip())
        else:
            out = json.dumps(clean(json.loads(text)), indent=1)
        data = out.encode()
    except Exception:
        pass
# Console text: figures with units of time vary run to run.
if src.endswith((".out", ".err")):
    data = re.sub(rb"[0-9.]+ ?(s|ms|it/s|rows/s|samples/s|examples/s)\b", b"<t>", data)
    data = re.sub(rb"(runtime|per_second) *= [0-9.e+-]+", rb"\1 = <t>", data)
open(dst, "wb").write(data)
EOF
}

run_case() { # BIN NAME ARGS DIR
  local bin=$1 name=$2 args=$3 dir=$4
  mkdir -p "$dir"
  local out=$dir/out
  case "$args" in
    RESUME)
      "$bin" train --model m6 --data single.csv --output-dir "$out" --epochs 3 --save-strategy steps \
        --save-steps 5 --max-steps 5 "${common[@]}" >"$dir/1.out" 2>"$dir/1.err" || true
      "$bin" train --model m6 --data single.csv --output-dir "$out" --epochs 3 --save-strategy steps \
        --save-steps 5 --resume-from-checkpoint latest "${common[@]}" >"$dir/2.out" 2>"$dir/2.err" || echo "rc=$?" >>"$dir/2.err"
      ;;
    PREDICT)
      "$bin" train --model m6 --data single.csv --output-dir "$dir/model" --epochs 1 "${common[@]}" >/dev/null 2>&1
      "$bin" predict --model "$dir/model" --data single.csv --output "$dir/pred.csv" --device cpu \
        --threads 1 >"$dir/p.out" 2>"$dir/p.err" || echo "rc=$?" >>"$dir/p.err"
      rm -rf "$dir/model"
      ;;
    EVALUATE)
      "$bin" train --model m6 --data single.csv --output-dir "$dir/model" --epochs 1 "${common[@]}" >/dev/null 2>&1
      "$bin" evaluate --model "$dir/model" --data single.csv --output-dir "$dir/eval" --device cpu \
        --threads 1 >"$dir/e.out" 2>"$dir/e.err" || echo "rc=$?" >>"$dir/e.err"
      rm -rf "$dir/model"
      ;;
    *)
      # shellcheck disable=SC2086
      "$bin" ${args//OUT/$out} >"$dir/run.out" 2>"$dir/run.err" || echo "rc=$?" >>"$dir/run.err"
      ;;
  esac
  # Paths name the case's folder: the same placeholder for both binaries.
  find "$dir" -type f | while read -r f; do
    sed -i "s#$dir#<DIR>#g" "$f" 2>/dev/null || true
  done
}

failed=0
for entry in "${cases[@]}"; do
  name=${entry%%|*}
  args=${entry#*|}
  for side in old new; do
    bin=$OLD; [[ $side == new ]] && bin=$NEW
    # The same folder for both sides: paths written into files (training_args.json) and hashed
    # into manifests are then the same.
    rm -rf "$work/run"
    run_case "$bin" "$name" "$args" "$work/run"
    mkdir -p "$work/$side"
    mv "$work/run" "$work/$side/$name"
    # The binary's own name appears in clap's usage lines.
    find "$work/$side/$name" -type f | while read -r f; do
      sed -i "s#$(basename "$bin")#bertfit#g" "$f" 2>/dev/null || true
      normalize "$f" "$f.norm" && mv "$f.norm" "$f"
    done
  done
  if diff -r -q "$work/old/$name" "$work/new/$name" >/dev/null; then
    echo "same       $name ($(find "$work/new/$name" -type f | wc -l) files)"
  else
    echo "DIFFERENT  $name"
    diff -r "$work/old/$name" "$work/new/$name" | head -20 || true
    failed=1
  fi
done
exit $failed
