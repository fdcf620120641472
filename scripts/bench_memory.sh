#!/usr/bin/env bash
# Peak resident memory and wall time of bertfit on a 200k-row and a 2M-row Parquet file, in one run:
#   (a) bertfit check-data --max-length 128                (reads and tokenizes every row)
#   (b) bertfit train --streaming --shuffle-buffer 10000 --max-steps 3 --max-length 64 --threads 2
#       (skipped, with a message, when this bertfit has no --streaming)
#   (c) the in-memory anchor: pyarrow.parquet.read_table(F) and its columns as Python lists of str,
#       what a loader that holds every row (the seed script's pandas.read_csv and lists of texts)
#       needs before it tokenizes anything
# and the RSS ratio 2M / 200k of each (a streaming reader should stay flat; (c) grows with the file).
# The files are made once by scripts/make_big_parquet.py and kept in $BERTFIT_CACHE/bench/.
# BENCH_MEMORY_ROWS="20000 200000" picks other sizes. Note: training validates on the 1% val
# split, so (b)'s wall time grows with the file even when its memory does not.
# A figure, not a test. Run after scripts/setup.sh and `cargo build --release --bins`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

bertfit="${BERTFIT_BIN:-$CARGO_TARGET_DIR/release/bertfit}"
model="$BERTFIT_ASSETS/all-MiniLM-L6-v2"
cache="$BERTFIT_CACHE/bench"
read -r -a sizes <<<"${BENCH_MEMORY_ROWS:-200000 2000000}"  # a smaller and a larger file
[[ -x "$bertfit" ]] || { echo "no bertfit binary at $bertfit: cargo build --release --bins" >&2; exit 1; }
mkdir -p "$cache"
work="$(mktemp -d -t bertfit-bench-memory.XXXXXX)"
trap 'rm -rf "$work"' EXIT

# measure NAME CMD...: runs CMD (its output to $work/NAME.log) and sets PEAK_MB and SECONDS_TAKEN.
# GNU time when there is one; otherwise Python's getrusage of the child (Linux: ru_maxrss in KB).
measure() {
    local name="$1"; shift
    local stats="$work/$name.stats"
    if /usr/bin/time -f "%M %e" -o /dev/null true 2>/dev/null; then
        if ! /usr/bin/time -f "%M %e" -o "$stats" "$@" >"$work/$name.log" 2>&1; then
            echo "$name failed:" >&2; tail -n 20 "$work/$name.log" >&2; exit 1
        fi
    else
        if ! "$BERTFIT_PYTHON" - "$stats" "$@" >"$work/$name.log" 2>&1 <<'PY'
import resource, subprocess, sys, time
t = time.perf_counter()
rc = subprocess.run(sys.argv[2:]).returncode
s = time.perf_counter() - t
open(sys.argv[1], "w").write(f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss} {s:.2f}\n")
sys.exit(rc)
PY
        then
            echo "$name failed:" >&2; tail -n 20 "$work/$name.log" >&2; exit 1
        fi
    fi
    read -r kb SECONDS_TAKEN < <(tail -n 1 "$stats")
    PEAK_MB="$(awk -v kb="$kb" 'BEGIN { printf "%.0f", kb / 1024 }')"
}

streaming=1
if ! "$bertfit" train --help | grep -q -- '--streaming'; then
    streaming=0
    echo "note: this bertfit train has no --streaming flag yet: skipping (b) train --streaming"
fi

echo "load before: $(uptime)"
declare -A mb secs
for n in "${sizes[@]}"; do
    f="$cache/synthetic-$n.parquet"
    [[ -f "$f" ]] || "$BERTFIT_PYTHON" scripts/make_big_parquet.py --rows "$n" --out "$f"

    measure "check-$n" "$bertfit" check-data --model "$model" --data "$f" --max-length 128
    mb[check,$n]="$PEAK_MB"; secs[check,$n]="$SECONDS_TAKEN"
    echo "  check-data $n rows: ${PEAK_MB} MB, ${SECONDS_TAKEN} s"

    if (( streaming )); then
        measure "train-$n" "$bertfit" train --model "$model" --data "$f" --output-dir "$work/out-$n" --overwrite \
            --max-steps 3 --max-length 64 --streaming --shuffle-buffer 10000 --threads 2 --device cpu
        mb[train,$n]="$PEAK_MB"; secs[train,$n]="$SECONDS_TAKEN"
        echo "  train --streaming $n rows: ${PEAK_MB} MB, ${SECONDS_TAKEN} s"
    fi

    measure "inmem-$n" "$BERTFIT_PYTHON" -c 'import sys, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
cols = [t.column(c).to_pylist() for c in ("text", "label", "split")]
print(len(cols[0]))' "$f"
    mb[inmem,$n]="$PEAK_MB"; secs[inmem,$n]="$SECONDS_TAKEN"
    echo "  in-memory anchor (pyarrow -> Python lists) $n rows: ${PEAK_MB} MB, ${SECONDS_TAKEN} s"
done

small="${sizes[0]}"; big="${sizes[1]}"
echo
printf '%-34s %10s %12s %9s\n' "" rows "peak RSS MB" seconds
row() {  # row KEY LABEL
    for n in "${sizes[@]}"; do
        printf '%-34s %10s %12s %9s\n' "$2" "$n" "${mb[$1,$n]}" "${secs[$1,$n]}"
    done
}
ratio() {  # ratio KEY LABEL TARGET
    awk -v a="${mb[$1,$big]}" -v b="${mb[$1,$small]}" -v l="$2" -v t="$3" -v s="$small" -v g="$big" \
        'BEGIN { printf "RSS ratio %s, %d / %d rows: %.2f%s\n", l, g, s, a / b, t }'
}
row check "bertfit check-data"
if (( streaming )); then row train "bertfit train --streaming"; fi
row inmem "anchor: pyarrow -> Python lists"
ratio check "check-data" " (target: flat, ~1)"
if (( streaming )); then ratio train "train --streaming" " (target: flat, ~1)"; fi
ratio inmem "in-memory anchor" " (grows with the rows)"
echo "load after: $(uptime)"
