#!/usr/bin/env bash
# scripts/gpu-check.sh: the GPU figures of issues 12 (speed against PyTorch, MFU, memory), 11
# (a world-size-1 run under torchrun's variables) and 22 (bertfit's own peak probe, MFU, op profile
# and --precision auto on the device; every family on the GPU), for a machine with one NVIDIA GPU
# and PyTorch 2.11 with transformers. It builds nothing: build the release binary elsewhere and
# carry it.
#
#   scripts/gpu-check.sh BERTFIT_BINARY VOCAB_TXT [STEPS=300]
#
# A random-init BERT-base (config written here: weights over 64 MiB cannot travel, and the compute
# is the same) is trained for STEPS steps, bf16, on synthetic texts of widely varied lengths (word
# counts log-uniform in 4..160 at sequence 128, 20..600 at 512, so padding is a large share of a
# padded batch), in these cases, the least needed last:
#   seq 128 batch 64 bf16:  PyTorch, bertfit padded, bertfit --unpadded
#   seq 512 batch 16 bf16:  the same three
#   issue 22:               `bertfit bench-peak` (fp32, bf16, fp16), then a 12-step run with
#                            --precision auto and --profile-ops (its MFU against that peak)
#   seq 128 bf16, bertfit padded under RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 MASTER_ADDR/PORT (issue 11),
#                            with --ddp-backend nccl (gloo on the CPU) when the binary has that flag
#   seq 128 batch 64 fp16:  PyTorch, bertfit padded, bertfit --unpadded
# PyTorch is eager HF BERT with SDPA attention, fused AdamW and torch.autocast (GradScaler in fp16),
# TF32 for fp32 matmuls as bertfit's --tf32. Both sides train on the same rows in the same order
# (file order: bertfit --no-shuffle; its step records' rows are checked), each batch padded to its
# own longest (--padding longest), lr 5e-5, AdamW without weight decay. The bertfit cases name
# their layout explicitly (--unpadded false / true), since the default differs by device.
#
# Writes one JSON line per case to $OUT/gpu-check/results.jsonl (/tmp/gpu-check without OUT),
# each run's log and metrics.jsonl under logs/ there, then a summary: samples/s over the steps
# after a warm-up (32 steps on CUDA, 1 on the CPU) and the ratio to PyTorch over the same steps, MFU (model FLOPs of the real tokens,
# (6·N + 12·L·d·s) per token with N all parameters and s the example's own length, over the
# seconds, against GPU_CHECK_PEAK_TFLOPS, default 790: the H200's measured bf16 rate), peak GPU
# memory and the loss at steps 1, 100 and the last (it must be finite, and fall over >= 50 steps);
# bertfit's own MFU (its metrics.jsonl: FLOPs of src/model/flops.rs against the peak it measured
# on the device) beside each bertfit case; which layout was faster per case (CUDA's default layout
# is chosen from that line).
# Exit status 1 when a case failed or a check did not hold.
#
# Time on an H200 at STEPS=300 (an estimate, not yet measured): each step is 8192 padded tokens,
# about 5.5-6 TFLOP, ~25 ms at 30% MFU, so ~8 s of training per run; plus ~5-10 s per run of start-up
# (PyTorch's imports and tokenizing, bertfit loading and saving 440 MB) for 10 runs, and ~20 s to
# write the model and data: about 3-4 minutes, well inside 8.
#
# Environment:
#   PYTHON                 a python with torch and transformers (default: python3 when it has
#                          torch, else this project's venv, ~/.cache/bertfit/venv/bin/python)
#   GPU_CHECK_DEVICE=cpu   run every case on the CPU (no nvidia-smi; gloo instead of nccl): a smoke
#   GPU_CHECK_TINY=1       a 2-layer, hidden-64 model instead of BERT-base. The CPU smoke test:
#       GPU_CHECK_DEVICE=cpu GPU_CHECK_TINY=1 scripts/gpu-check.sh BIN VOCAB 3    (about 2 minutes)
#   GPU_CHECK_PEAK_TFLOPS  the peak that MFU divides by (default 790)
#   GPU_CHECK_TESTS        the integration-test binary (tests/main.rs, built with the binary): its
#                          `cuda_` tests run first, with BERTFIT_REQUIRE_CUDA=1 on CUDA (varlen.rs:
#                          the varlen kernels against per-sequence SDPA, the varlen model against
#                          the padded one in fp32 and bf16, 30 Adam steps; cuda_families.rs: every
#                          family's logits and gradients on the GPU against the CPU's, padded and
#                          packed, fp32, bf16 and fp16, and 30 bf16 Adam steps that fit a batch);
#                          a failure fails the check
#
# scripts/gpu-pack.sh builds both binaries, strips them into .device/ (ignored by git, 53 MB:
# inside the device tool's 64 MiB) and prints the device command.
set -euo pipefail
usage="usage: gpu-check.sh BERTFIT_BINARY VOCAB_TXT [STEPS]"
BIN="${1:?$usage}"
VOCAB="${2:?$usage}"
STEPS="${3:-300}"
DEVICE="${GPU_CHECK_DEVICE:-cuda}"
TINY="${GPU_CHECK_TINY:-0}"
PEAK_TFLOPS="${GPU_CHECK_PEAK_TFLOPS:-790}"
HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
[[ $DEVICE == cuda || $DEVICE == cpu ]] || { echo "GPU_CHECK_DEVICE: cuda or cpu, not $DEVICE" >&2; exit 2; }
[[ $STEPS =~ ^[1-9][0-9]*$ ]] || { echo "$usage (STEPS: a positive whole number)" >&2; exit 2; }

if [[ -n ${PYTHON:-} ]]; then
    PY=$PYTHON
elif python3 -c 'import torch' 2>/dev/null; then
    PY=python3
else
    PY="$HOME/.cache/bertfit/venv/bin/python"
fi
TORCH_LIB="$("$PY" -c 'import os, torch; print(os.path.dirname(torch.__file__))')/lib"
# Overrides the binary's RUNPATH, which names the build machine's torch.
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

RESULTS="${OUT:-/tmp}/gpu-check"
rm -rf "$RESULTS"
mkdir -p "$RESULTS/logs"
# Model, data and the runs' output folders (440 MB models) stay out of $OUT, which travels back.
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu-check-work.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

if [[ $DEVICE == cuda ]]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    # Steps left out of the steady rate. bertfit's timed range starts at the first step from
    # there whose end its log times exactly (gpu_check.py bertfit_warm_end: 32 unless its first
    # step took over 5 s); PyTorch's rate over the same steps is what bertfit's is compared with.
    WARM=$((STEPS >= 64 ? 32 : 0))
    DDP_BACKEND=nccl
    DEVICE_FLAGS=(--tf32)
else
    WARM=$((STEPS >= 2 ? 1 : 0))
    DDP_BACKEND=gloo
    DEVICE_FLAGS=(--threads "$(nproc)")
fi
# Another engineer is adding --ddp-backend: pass it only when this binary has it (without it, the
# binary picks NCCL on CUDA and Gloo on the CPU by itself).
# (The help is captured first: `| grep -q` could close the pipe early and fail under pipefail.)
TRAIN_HELP="$("$BIN" train --help 2>&1 || true)"
if [[ $TRAIN_HELP == *--ddp-backend* ]]; then
    DDP_FLAGS=(--ddp-backend "$DDP_BACKEND")
else
    DDP_BACKEND=""
    DDP_FLAGS=()
fi
FAILED=0

"$PY" "$HERE/gpu_check.py" prepare "$WORK" "$VOCAB" "$STEPS" "$TINY" > "$RESULTS/logs/prepare.log" 2>&1 ||
    { tail -20 "$RESULTS/logs/prepare.log"; exit 1; }

# Largest GPU memory of process PID, polled every 0.5 s until it exits, written to FILE as
# `MiB how`. nvidia-smi shows what the CUDA caching allocator has RESERVED plus the CUDA context,
# not what is allocated, so for bertfit this is an upper bound; PyTorch's runs are polled the same
# way (and also report torch.cuda.max_memory_allocated/reserved), so the smi figures compare. When
# no line has the pid (a container's PID namespace can hide it), every compute process's memory is
# summed: this script runs one at a time on a GPU of its own.
poll_memory() {
    local pid=$1 file=$2 max=0 how=none p m total seen
    while kill -0 "$pid" 2>/dev/null; do
        total=0 seen=""
        while IFS=', ' read -r p m; do
            [[ $m =~ ^[0-9]+$ ]] || continue
            if [[ $p == "$pid" ]]; then seen=$m; fi
            total=$((total + m))
        done < <(nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits 2>/dev/null || true)
        if [[ -n $seen ]]; then
            ((seen > max)) && max=$seen
            how=pid
        elif ((total > 0)); then
            ((total > max)) && max=$total
            [[ $how == pid ]] || how=all
        fi
        sleep 0.5
    done
    echo "$max $how" > "$file"
}

# launch NAME STDOUT_FILE COMMAND...: runs it, stderr (and stdout unless given) to logs/NAME.log,
# with the memory poller on CUDA. Returns the command's status.
launch() {
    local name=$1 out=$2 rc=0 poller=""
    shift 2
    if [[ $out == - ]]; then
        "$@" > "$RESULTS/logs/$name.log" 2>&1 &
    else
        "$@" > "$out" 2> "$RESULTS/logs/$name.log" &
    fi
    local pid=$!
    if [[ $DEVICE == cuda ]]; then
        poll_memory "$pid" "$WORK/$name.peak" &
        poller=$!
    fi
    wait "$pid" || rc=$?
    if [[ -n $poller ]]; then wait "$poller" || true; fi
    return "$rc"
}

# record NAME JSON_FILE: the run's line, with its peak memory, into results.jsonl and the terminal.
record() {
    "$PY" "$HERE/gpu_check.py" peak "$2" "$WORK/$1.peak" | tee -a "$RESULTS/results.jsonl"
}

failed() {  # NAME STATUS
    echo "{\"case\": \"$1\", \"error\": \"exit status $2, see logs/$1.log\"}" | tee -a "$RESULTS/results.jsonl"
    tail -15 "$RESULTS/logs/$1.log" >&2 || true
    FAILED=1
}

run_pytorch() {  # SEQ BATCH PRECISION
    local name="pytorch-$3-$1" rc=0
    launch "$name" "$WORK/$name.json" "$PY" "$HERE/gpu_check.py" pytorch "$WORK" "$name" "$1" "$2" "$3" \
        "$STEPS" "$WARM" "$DEVICE" || rc=$?
    if ((rc == 0)); then record "$name" "$WORK/$name.json"; else failed "$name" "$rc"; fi
}

# bertfit_train NAME SEQ BATCH STEPS PRECISION: the training command every bertfit run here shares
# (the PyTorch side's rows, order, optimizer and learning rate), into the array TRAIN; callers add
# their layout and other flags.
bertfit_train() {
    TRAIN=("$BIN" train --model "$WORK/model" --data "$WORK/data$2.csv" --output-dir "$WORK/$1"
        --overwrite --device "$DEVICE" --epochs 1 --max-steps "$4" --batch-size "$3"
        --max-length "$2" --padding longest --no-shuffle --optim adamw --learning-rate 5e-5
        --save-strategy no --do-train --precision "$5" --logging-steps 1 "${DEVICE_FLAGS[@]}")
}

run_bertfit() {  # SEQ BATCH PRECISION LAYOUT(padded|unpadded|ws1)
    local seq=$1 batch=$2 precision=$3 layout=$4 rc=0
    local name="bertfit-$precision-$seq-$layout"
    bertfit_train "$name" "$seq" "$batch" "$STEPS" "$precision"
    local cmd=("${TRAIN[@]}")
    local extra=()
    case $layout in
        padded) cmd+=(--unpadded false) ;;
        unpadded) cmd+=(--unpadded true) ;;
        ws1)
            # The plain padded run under torchrun's variables, a port that is free now.
            local port
            port="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
            cmd=(env RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT="$port"
                "${cmd[@]}" --unpadded false "${DDP_FLAGS[@]}")
            extra=("$DDP_BACKEND")
            ;;
    esac
    launch "$name" - "${cmd[@]}" || rc=$?
    if ((rc != 0)); then
        failed "$name" "$rc"
        return
    fi
    cp "$WORK/$name/metrics.jsonl" "$RESULTS/logs/$name.metrics.jsonl"
    if "$PY" "$HERE/gpu_check.py" bertfit "$WORK" "$name" "$seq" "$batch" "$precision" "$STEPS" "$WARM" \
        "$WORK/$name/metrics.jsonl" "$RESULTS/logs/$name.log" "${extra[@]}" > "$WORK/$name.json"; then
        record "$name" "$WORK/$name.json"
    else
        failed "$name" "$?"
    fi
    rm -rf "${WORK:?}/$name"
}

run_cases() {  # SEQ BATCH PRECISION
    run_pytorch "$@"
    run_bertfit "$@" padded
    run_bertfit "$@" unpadded
}

if [[ -n ${GPU_CHECK_TESTS:-} ]]; then
    require=0
    [[ $DEVICE == cuda ]] && require=1
    if BERTFIT_REQUIRE_CUDA=$require "$GPU_CHECK_TESTS" cuda_ --test-threads 1 --nocapture \
        > "$RESULTS/logs/cuda-tests.log" 2>&1; then
        echo '{"case": "cuda-tests", "passed": true}' | tee -a "$RESULTS/results.jsonl"
        grep -E '^(Efficient|Flash|None|Some|30 steps)| on Cuda|padded attention instead' "$RESULTS/logs/cuda-tests.log" || true
    else
        failed cuda-tests "$?"
    fi
fi

# Issue 22 on the device: bertfit's GEMM peak probe (square products doubling up to 8192³ on
# CUDA), then one short run (12 steps of 16 rows: the data has at least 3 x 64) that reports its
# own MFU against it, profiles 8 steps by op (the table must have CUDA kernel rows) and picks its
# precision with --precision auto (bf16 where its GEMM is at least 1.3x fp32's).
run_machine_limit() {
    local rc=0 name=machine-limit
    if ! "$BIN" bench-peak --device "$DEVICE" --dtypes fp32,bf16,fp16 > "$RESULTS/logs/bench-peak.log" 2>&1; then
        failed bench-peak "$?"
        return
    fi
    cat "$RESULTS/logs/bench-peak.log"
    bertfit_train "$name" 128 16 12 auto
    local cmd=("${TRAIN[@]}" --unpadded true --profile-ops "$RESULTS/profile" --profile-steps 8)
    launch "$name" - "${cmd[@]}" || rc=$?
    if ((rc != 0)); then
        failed "$name" "$rc"
        return
    fi
    cp "$WORK/$name/metrics.jsonl" "$RESULTS/logs/$name.metrics.jsonl"
    "$PY" "$HERE/gpu_check.py" machine-limit "$DEVICE" "$RESULTS/logs/bench-peak.log" \
        "$RESULTS/logs/$name.metrics.jsonl" "$RESULTS/logs/$name.log" "$RESULTS/profile/ops.txt" |
        tee -a "$RESULTS/results.jsonl"
    rm -rf "${WORK:?}/$name"
}

run_cases 128 64 bf16
run_cases 512 16 bf16
run_machine_limit
run_bertfit 128 64 bf16 ws1
run_cases 128 64 fp16

"$PY" "$HERE/gpu_check.py" summary "$RESULTS/results.jsonl" "$PEAK_TFLOPS" | tee "$RESULTS/summary.txt" || FAILED=1
exit "$FAILED"
