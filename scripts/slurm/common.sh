# shellcheck shell=bash
# Shared by train.sbatch, sweep.sbatch and scripts/launch-local.sh: the binary, SLURM host lists,
# each task's command, and stopping a job step so that bertfit saves.

# The bertfit binary: BERTFIT_BIN, else the one the README's set-up built
# ($CARGO_TARGET_DIR/release/bertfit, CARGO_TARGET_DIR defaulting as scripts/env.sh sets it), else
# `bertfit` on PATH. Fails naming BERTFIT_BIN when there is none (a dry run prints `bertfit`).
find_bertfit() {
    if [[ -n ${BERTFIT_BIN:-} ]]; then
        if [[ -n ${BERTFIT_DRY_RUN:-} ]] || command -v -- "$BERTFIT_BIN" >/dev/null 2>&1; then
            echo "$BERTFIT_BIN"
            return
        fi
        echo "bertfit: BERTFIT_BIN=$BERTFIT_BIN is not an executable file" >&2
        return 1
    fi
    local target=${CARGO_TARGET_DIR:-${BERTFIT_CACHE:-$HOME/.cache/bertfit}/target}
    if [[ -x $target/release/bertfit ]]; then
        echo "$target/release/bertfit"
    elif command -v bertfit >/dev/null 2>&1; then
        command -v bertfit
    elif [[ -n ${BERTFIT_DRY_RUN:-} ]]; then
        echo "bertfit: note: no binary at $target/release/bertfit nor on PATH (set BERTFIT_BIN)" >&2
        echo bertfit
    else
        echo "bertfit: no binary at $target/release/bertfit (CARGO_TARGET_DIR) nor bertfit on PATH:" \
            "build it (scripts/setup.sh, cargo build --release) or set BERTFIT_BIN=/path/to/bertfit" >&2
        return 1
    fi
}

# Whether flag $1 (`--device`) is among the remaining arguments, as `--device X`, `--device=X`, or
# with underscores for dashes (bertfit takes both spellings and refuses a flag given twice).
has_flag() {
    local want=${1//_/-} arg
    shift
    for arg in "$@"; do
        arg=${arg%%=*}
        [[ $arg == --* && ${arg//_/-} == "$want" ]] && return 0
    done
    return 1
}

# The rendezvous port of a job step when MASTER_PORT is not set; the same rule as bertfit's own
# (src/dist/env.rs, for bertfit started straight under srun): below Linux's ephemeral range
# (32768+), distinct for 1200 consecutive job ids and for steps 0-9 of one job.
derived_port() {
    local job=$1 step=$2
    echo $((20000 + (job * 10 + step % 10) % 12000))
}

# Expands a SLURM host list (`node[01-04,07],gpu5`) into one host per line, keeping zero padding.
# Uses scontrol when it is there; the bash fallback handles one bracket group per entry.
expand_nodelist() {
    local list=$1
    if [[ -z ${BERTFIT_DRY_RUN:-} ]] && command -v scontrol >/dev/null 2>&1; then
        scontrol show hostnames "$list"
        return
    fi
    local entry entries=() depth=0 cur="" c i
    for ((i = 0; i < ${#list}; i++)); do
        c=${list:i:1}
        case $c in
            '[') depth=$((depth + 1)); cur+=$c ;;
            ']') depth=$((depth - 1)); cur+=$c ;;
            ',') if ((depth == 0)); then entries+=("$cur"); cur=""; else cur+=$c; fi ;;
            *) cur+=$c ;;
        esac
    done
    entries+=("$cur")
    for entry in "${entries[@]}"; do
        if [[ $entry =~ ^([^[]*)\[([^]]*)\](.*)$ ]]; then
            local prefix=${BASH_REMATCH[1]} ranges=${BASH_REMATCH[2]} suffix=${BASH_REMATCH[3]} r lo hi n
            IFS=, read -ra parts <<<"$ranges"
            for r in "${parts[@]}"; do
                lo=${r%-*}
                hi=${r#*-}
                for ((n = 10#$lo; n <= 10#$hi; n++)); do
                    printf '%s%0*d%s\n' "$prefix" "${#lo}" "$n" "$suffix"
                done
            done
        else
            echo "$entry"
        fi
    done
}

dry_run_note() { echo "dry run: $1 is not set; assuming $2" >&2; }

# A dry run outside an allocation: the variables a job would have, from those given, each default
# said on stderr (SLURM_JOB_NODELIST: this host; SLURM_NNODES: the list's hosts; SLURM_NTASKS:
# nodes x SLURM_NTASKS_PER_NODE, or one per node; SLURM_JOB_ID: 0).
dry_run_defaults() {
    local hosts
    if [[ -z ${SLURM_JOB_NODELIST:-} ]]; then
        SLURM_JOB_NODELIST=$(hostname -s)
        dry_run_note SLURM_JOB_NODELIST "$SLURM_JOB_NODELIST (this host)"
    fi
    if [[ -z ${SLURM_NNODES:-} ]]; then
        hosts=$(expand_nodelist "$SLURM_JOB_NODELIST" | wc -l)
        SLURM_NNODES=$hosts
        [[ -n ${SLURM_NTASKS:-} ]] || dry_run_note SLURM_NNODES "$hosts (the hosts of SLURM_JOB_NODELIST)"
    fi
    if [[ -z ${SLURM_NTASKS:-} ]]; then
        local per
        per=$(SLURM_NTASKS_PER_NODE=${SLURM_NTASKS_PER_NODE:-1} tasks_per_node)
        SLURM_NTASKS=$((SLURM_NNODES * per))
        dry_run_note SLURM_NTASKS "$SLURM_NTASKS (SLURM_NNODES=$SLURM_NNODES x SLURM_NTASKS_PER_NODE=$per)"
    fi
    if [[ -z ${SLURM_JOB_ID:-} ]]; then
        SLURM_JOB_ID=0
        dry_run_note SLURM_JOB_ID 0
    fi
}

# Tasks per node from SLURM_NTASKS_PER_NODE (`4` or `4(x2)`) or SLURM_NTASKS / SLURM_NNODES.
tasks_per_node() {
    local t=${SLURM_NTASKS_PER_NODE:-}
    if [[ -n $t ]]; then
        echo "${t%%(*}"
    else
        echo $((SLURM_NTASKS / ${SLURM_NNODES:-1}))
    fi
}

# How many GPUs this task may use, from what SLURM allocated: CUDA_VISIBLE_DEVICES (set by
# SLURM's gres plugin for the task), else SLURM_GPUS_ON_NODE, else SLURM_JOB_GPUS; 0 for none.
visible_gpus() {
    local list=${CUDA_VISIBLE_DEVICES:-}
    if [[ -n $list && $list != NoDevFiles ]]; then
        local gpu_ids
        IFS=, read -ra gpu_ids <<<"$list"
        echo "${#gpu_ids[@]}"
    elif [[ ${SLURM_GPUS_ON_NODE:-0} =~ ^[1-9][0-9]*$ ]]; then
        echo "$SLURM_GPUS_ON_NODE"
    elif [[ -n ${SLURM_JOB_GPUS:-} ]]; then
        local gpu_ids
        IFS=, read -ra gpu_ids <<<"$SLURM_JOB_GPUS"
        echo "${#gpu_ids[@]}"
    else
        echo 0
    fi
}

# The device of the task with local id $1: its GPU when GPUs are allocated (cuda:<local id>, or
# modulo the visible GPUs when each task sees fewer, e.g. --gpus-per-task=1), else the CPU.
task_device() {
    local localid=$1 n
    n=$(visible_gpus)
    if ((n > 0)); then
        echo "cuda:$((localid % n))"
    else
        echo cpu
    fi
}

# The variables and command of task $1 (its SLURM_PROCID) running on node $2 with local id $3:
# prints them (dry run) or execs them. The remaining arguments are bertfit's; a --device among them
# wins over the allocation's.
run_task() {
    local procid=$1 node=$2 localid=$3
    shift 3
    # Found once per script (a dry run prints every task).
    [[ -n ${bertfit_bin:-} ]] || bertfit_bin=$(find_bertfit)
    local port=${MASTER_PORT:-$(derived_port "${SLURM_JOB_ID:-0}" "${SLURM_STEP_ID:-0}")}
    local env=(
        RANK="$procid" LOCAL_RANK="$localid" WORLD_SIZE="$SLURM_NTASKS"
        LOCAL_WORLD_SIZE="$(tasks_per_node)" MASTER_ADDR="$MASTER_ADDR" MASTER_PORT="$port"
    )
    local cmd=("$bertfit_bin" "$@")
    has_flag --device "$@" || cmd+=(--device "$(task_device "$localid")")
    if [[ -n ${BERTFIT_DRY_RUN:-} ]]; then
        printf 'task %s on %s:' "$procid" "$node"
        printf ' %q' "${env[@]}" "${cmd[@]}"
        printf '\n'
    else
        exec env "${env[@]}" "${cmd[@]}"
    fi
}

# Dry run: what every task of the allocation would run, from the SLURM variables given.
dry_run_all() {
    local per hosts procid
    per=$(tasks_per_node)
    mapfile -t hosts < <(expand_nodelist "$SLURM_JOB_NODELIST")
    for ((procid = 0; procid < SLURM_NTASKS; procid++)); do
        run_task "$procid" "${hosts[procid / per]}" $((procid % per)) "$@"
    done
}

# Why SLURM is ending this job itself (its state, when that is not a running one, or `preempted`
# within a preemption's grace time), or nothing when it is not. Nothing too when slurmctld does
# not answer. SIGNALING is a running job whose --signal warning is being delivered: the time limit's
# B:TERM finds the job in it (seen on 22.05), or already back to RUNNING.
slurm_ending_job() {
    local line state=
    line=$(scontrol show job -o "$SLURM_JOB_ID" 2>/dev/null) || return 0
    [[ $line =~ JobState=([A-Z_]+) ]] && state=${BASH_REMATCH[1]}
    case $state in
        '' | RUNNING | SIGNALING | CONFIGURING | RESIZING) ;;
        *) echo "$state"; return 0 ;;
    esac
    if [[ $line =~ PreemptTime=([^[:space:]]+) && ${BASH_REMATCH[1]} != None && ${BASH_REMATCH[1]} != Unknown ]]; then
        echo preempted
    fi
}

# Whether a SIGTERM the batch shell got is a stop this script must pass on. SLURM delivers it
# itself to every task when it ends the job (scontrol requeue, preemption, scancel, the time
# limit), and a second SIGTERM from us would make bertfit quit at once without saving. Only a
# signal meant for the batch shell alone (`--signal=B:TERM@N`, `scancel --batch`) finds the job
# running. (Preemption is read from PreemptTime; the tests have no preemption to exercise it.)
stop_is_ours() {
    local ending
    ending=$(slurm_ending_job)
    [[ -z $ending ]] && return 0
    echo "bertfit job: SIGTERM while the job is $ending: SLURM signals the tasks itself" >&2
    return 1
}

# Sends SIGTERM to the tasks of this job's steps (never the batch step, never srun: srun answers
# SIGTERM by SIGKILLing its tasks). Each real step id from squeue; the whole job's steps (which is
# what `scancel --signal=TERM JOBID` signals) when squeue lists none.
forward_stop_to_steps() {
    local steps
    steps=$(squeue -h --steps --jobs "$SLURM_JOB_ID" -o %i 2>/dev/null | grep -E "^${SLURM_JOB_ID}\.[0-9]+$" || true)
    [[ -n $steps ]] || steps=$SLURM_JOB_ID
    echo "bertfit job: SIGTERM for job step(s) $(echo "$steps" | tr '\n' ' ')so every rank stops after its step and saves" >&2
    local s
    for s in $steps; do
        scancel --signal=TERM "$s" || true
    done
}
