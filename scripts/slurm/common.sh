# shellcheck shell=bash
# Shared by train.sbatch and sweep.sbatch: SLURM host lists and each task's command.

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

# Tasks per node from SLURM_NTASKS_PER_NODE (`4` or `4(x2)`) or SLURM_NTASKS / SLURM_NNODES.
tasks_per_node() {
    local t=${SLURM_NTASKS_PER_NODE:-}
    if [[ -n $t ]]; then
        echo "${t%%(*}"
    else
        echo $((SLURM_NTASKS / SLURM_NNODES))
    fi
}

# The variables and command of task $1 (its SLURM_PROCID) running on node $2 with local id $3:
# prints them (dry run) or execs them. The remaining arguments are bertfit's.
run_task() {
    local procid=$1 node=$2 localid=$3
    shift 3
    local env=(
        RANK="$procid" LOCAL_RANK="$localid" WORLD_SIZE="$SLURM_NTASKS"
        LOCAL_WORLD_SIZE="$(tasks_per_node)" MASTER_ADDR="$MASTER_ADDR" MASTER_PORT="$MASTER_PORT"
    )
    local cmd=("${BERTFIT_BIN:-bertfit}" "$@" --device "cuda:$localid")
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
