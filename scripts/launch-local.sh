#!/usr/bin/env bash
# scripts/launch-local.sh N [--] <bertfit train flags...>
#
# Runs N bertfit processes on this machine as `torchrun --standalone --nproc_per_node N` would:
# RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1 and a free MASTER_PORT.
# The flags are `bertfit train`'s; if the first one is a subcommand (it does not start with '-'),
# it is run as given (e.g. `scripts/launch-local.sh 2 -- dist-selftest`).
#
# Ctrl-C / SIGTERM to this script are passed to every rank once (the ranks run in a session of
# their own, so a terminal's Ctrl-C reaches them only through here): bertfit stops after its current
# step on every rank, saves and exits 130, and so does this script. A rank's exit 130 is such a clean
# stop, never a failure: nothing more is sent (a second signal makes bertfit quit without saving).
# A second Ctrl-C / SIGTERM to this script is passed on too (bertfit then quits at once, 131).
# When a rank fails (any other non-zero status), the others are sent SIGTERM (then SIGKILL after
# BERTFIT_KILL_GRACE seconds, default 30), and the script exits with the failed rank's status.
#
#   BERTFIT_BIN   the binary (default: $CARGO_TARGET_DIR/release/bertfit, CARGO_TARGET_DIR as
#                 scripts/env.sh sets it up, else bertfit on PATH)
#   MASTER_PORT   a fixed port instead of a free one
set -euo pipefail

usage() { echo "usage: $0 N [--] <bertfit train flags...>" >&2; exit 2; }
[[ $# -ge 1 && $1 =~ ^[1-9][0-9]*$ ]] || usage
nproc=$1
shift
[[ ${1:-} == -- ]] && shift

root="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
# shellcheck source=scripts/slurm/common.sh
source "$root/scripts/slurm/common.sh"
bin=$(find_bertfit)

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
    # setsid: a session of its own, out of the terminal's process group (see the header).
    RANK=$rank LOCAL_RANK=$rank WORLD_SIZE=$nproc LOCAL_WORLD_SIZE=$nproc \
        MASTER_ADDR=127.0.0.1 MASTER_PORT=$port setsid "$bin" "${args[@]}" &
    pids+=($!)
done

signal_all() {
    local sig=$1 pid
    for pid in "${pids[@]}"; do
        kill "-$sig" "$pid" 2>/dev/null || true
    done
}

# Signals this script received; the first is a stop, a second one means "quit now".
received=0
# shellcheck disable=SC2317  # invoked by the traps
on_signal() {
    received=$((received + 1))
    if ((received == 1)); then
        echo "launch-local: SIG$1: stopping every rank after its step (they save, then exit 130)" >&2
    else
        echo "launch-local: SIG$1 again: the ranks quit at once without saving" >&2
    fi
    signal_all "$1"
}
trap 'on_signal TERM' TERM
trap 'on_signal INT' INT

status=0
stopped=
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
    if ((code == 130)); then
        # Stopped on a signal after saving (whoever sent it): the others stop at the same step.
        stopped=1
    elif ((code != 0 && status == 0)); then
        status=$code
        if ((received == 0)); then
            echo "launch-local: a rank exited with status $code; stopping the others" >&2
            signal_all TERM
            (sleep "${BERTFIT_KILL_GRACE:-30}" && signal_all KILL) </dev/null >/dev/null 2>&1 &
            killer=$!
        fi
    fi
done
[[ -n $killer ]] && kill "$killer" 2>/dev/null
if ((status == 0)) && [[ -n $stopped ]]; then
    status=130
fi
exit "$status"
