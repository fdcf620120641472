#!/usr/bin/env bash
# scripts/launch-local.sh N [--] <bertfit train flags...>
#
# Runs N bertfit processes on this machine as `torchrun --standalone --nproc_per_node N` would:
# RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1 and a free MASTER_PORT.
# The flags are `bertfit train`'s; if the first one is a subcommand (it does not start with '-'),
# it is run as given (e.g. `scripts/launch-local.sh 2 -- dist-selftest`).
#
# Ctrl-C / SIGTERM are forwarded to every rank (bertfit then stops after its current step and
# saves). When a rank fails, the others are sent SIGTERM (then SIGKILL after
# BERTFIT_KILL_GRACE seconds, default 30), and the script exits with the failed rank's status.
#
#   BERTFIT_BIN   the binary (default: $CARGO_TARGET_DIR/release/bertfit if built, else bertfit)
#   MASTER_PORT   a fixed port instead of a free one
set -euo pipefail

usage() { echo "usage: $0 N [--] <bertfit train flags...>" >&2; exit 2; }
[[ $# -ge 1 && $1 =~ ^[1-9][0-9]*$ ]] || usage
nproc=$1
shift
[[ ${1:-} == -- ]] && shift

root="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
bin=${BERTFIT_BIN:-}
if [[ -z $bin ]]; then
    if [[ -n ${CARGO_TARGET_DIR:-} && -x $CARGO_TARGET_DIR/release/bertfit ]]; then
        bin=$CARGO_TARGET_DIR/release/bertfit
    elif [[ -x $root/target/release/bertfit ]]; then
        bin=$root/target/release/bertfit
    else
        bin=bertfit
    fi
fi

args=("$@")
if [[ ${#args[@]} -eq 0 || ${args[0]} == -* ]]; then
    args=(train "${args[@]}")
fi

# A port the OS says is free now (torchrun --standalone does the same).
free_port() {
    local p
    for py in python3 python; do
        if p=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null); then
            echo "$p"
            return
        fi
    done
    echo $((20000 + RANDOM % 20000))
}
port=${MASTER_PORT:-$(free_port)}

pids=()
for ((rank = 0; rank < nproc; rank++)); do
    RANK=$rank LOCAL_RANK=$rank WORLD_SIZE=$nproc LOCAL_WORLD_SIZE=$nproc \
        MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$bin" "${args[@]}" &
    pids+=($!)
done

signal_all() {
    local sig=$1 pid
    for pid in "${pids[@]}"; do
        kill "-$sig" "$pid" 2>/dev/null || true
    done
}
trap 'signal_all TERM' TERM
trap 'signal_all INT' INT

status=0
killer=
live=("${pids[@]}")
while ((${#live[@]} > 0)); do
    code=0
    wait -n "${live[@]}" || code=$?
    still=()
    for pid in "${live[@]}"; do
        kill -0 "$pid" 2>/dev/null && still+=("$pid")
    done
    # A trapped signal interrupts `wait` with 128+signal while every rank still runs: wait again.
    ((${#still[@]} == ${#live[@]})) && continue
    live=("${still[@]}")
    if ((code != 0 && status == 0)); then
        status=$code
        echo "launch-local: a rank exited with status $code; stopping the others" >&2
        signal_all TERM
        (sleep "${BERTFIT_KILL_GRACE:-30}" && signal_all KILL) </dev/null >/dev/null 2>&1 &
        killer=$!
    fi
done
[[ -n $killer ]] && kill "$killer" 2>/dev/null
exit "$status"
