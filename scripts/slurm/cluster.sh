#!/usr/bin/env bash
# scripts/slurm/cluster.sh start|stop|env|status: a real one-node SLURM on this machine, for the
# tests (tests/slurm.rs) and for trying the job scripts by hand.
#
#     eval "$(scripts/slurm/cluster.sh start)"   # prints `export SLURM_CONF=...`
#     sbatch --gpus-per-node=0 --nodes=1 --ntasks-per-node=1 scripts/slurm/train.sbatch ...
#     scripts/slurm/cluster.sh stop
#
# `start` installs Debian's slurm-wlm and munge with apt-get when they are missing (root), makes a
# munge key and socket in a folder of its own, writes a minimal slurm.conf there (one node named by
# `hostname -s`, no cgroups, requeue allowed, its own ports and state/spool/log folders), starts
# munged, `slurmctld -D` and `slurmd -D` in the background and waits until the node is idle. It is
# idempotent: a running cluster is left as it is and its variables printed again. `env` prints the
# variables of the running cluster; `stop` stops the daemons and removes the folder.
#
#   BERTFIT_CLUSTER_DIR    the cluster's folder (default /tmp/bertfit-slurm-$UID)
#   BERTFIT_CLUSTER_CPUS   CPUs the node declares (default 8, whatever the machine has, so two
#                          2-task jobs really run at once; slurmd is told to trust the declaration)
#   BERTFIT_CLUSTER_PORT   slurmctld's port; slurmd takes the next one (default 16817)
set -euo pipefail

dir=${BERTFIT_CLUSTER_DIR:-/tmp/bertfit-slurm-$(id -u)}
cpus=${BERTFIT_CLUSTER_CPUS:-8}
ctld_port=${BERTFIT_CLUSTER_PORT:-16817}
slurmd_port=$((ctld_port + 1))
node=$(hostname -s)

say() { echo "cluster.sh: $*" >&2; }
die() { say "$*"; exit 1; }

# apt-get once, only for what is missing (the test suite calls this on every run).
install_packages() {
    local missing=()
    command -v slurmctld >/dev/null 2>&1 || missing+=(slurm-wlm)
    command -v munged >/dev/null 2>&1 || missing+=(munge)
    ((${#missing[@]} == 0)) && return
    [[ $(id -u) == 0 ]] || die "${missing[*]} missing and not root: apt-get install ${missing[*]}"
    say "installing ${missing[*]} with apt-get"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

write_conf() {
    mkdir -p "$dir"/{state,spool,log}
    cat >"$dir/slurm.conf" <<EOF
# Written by scripts/slurm/cluster.sh: a one-node test cluster.
ClusterName=bertfit-test
# Addresses given, so the cluster does not depend on how this host's name resolves.
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=$(id -un)
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
# No cgroups: processes are tracked by their parentage.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
JobRequeue=1
ReturnToService=2
# The node declares BERTFIT_CLUSTER_CPUS; slurmd reports the declaration instead of the hardware.
SlurmdParameters=config_overrides
# Quick scheduling and a short grace after SIGTERM (bertfit saves within a step).
SchedulerParameters=sched_interval=2
KillWait=30
MinJobAge=600
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

start_munge() {
    if [[ ! -f $dir/munge.key ]]; then
        dd if=/dev/urandom of="$dir/munge.key" bs=1024 count=1 status=none
        chmod 600 "$dir/munge.key"
    fi
    munged --force --socket="$dir/munge.socket" --key-file="$dir/munge.key" \
        --pid-file="$dir/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munged.seed"
}

# Daemons in the foreground (-D), in the background of this script, detached from its terminal.
start_daemon() {
    local name=$1
    shift
    setsid "$@" >>"$dir/log/$name.out" 2>&1 </dev/null &
    echo $! >"$dir/$name.daemon-pid"
}

wait_idle() {
    local i state
    for ((i = 0; i < 60; i++)); do
        state=$(SLURM_CONF=$dir/slurm.conf sinfo -h -n "$node" -o %T 2>/dev/null || true)
        [[ $state == idle* ]] && return 0
        sleep 1
    done
    say "the node did not become idle within 60 s (state: ${state:-none}); logs in $dir/log:"
    tail -n 20 "$dir"/log/*.log >&2 || true
    return 1
}

print_env() {
    echo "export SLURM_CONF=$dir/slurm.conf"
}

running() {
    [[ -f $dir/slurm.conf ]] && SLURM_CONF=$dir/slurm.conf sinfo -h -n "$node" -o %T >/dev/null 2>&1
}

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
    install_packages
    if running; then
        print_env
        return
    fi
    stop_daemons
    rm -rf "$dir"
    for p in "$ctld_port" "$slurmd_port"; do
        port_free "$p" || die "port $p is in use: set BERTFIT_CLUSTER_PORT to another one"
    done
    write_conf
    start_munge
    start_daemon slurmctld slurmctld -D -f "$dir/slurm.conf"
    start_daemon slurmd slurmd -D -f "$dir/slurm.conf"
    wait_idle || { stop_daemons; exit 1; }
    # Written for `env` and the tests: the variables of this cluster.
    print_env >"$dir/env.sh"
    say "one-node cluster '$node' ($cpus CPUs) up; config $dir/slurm.conf"
    print_env
}

# Only the daemons this script started (their pid files), never by name.
stop_daemons() {
    local f pid
    for f in "$dir"/slurmd.daemon-pid "$dir"/slurmctld.daemon-pid "$dir"/munged.pid; do
        [[ -f $f ]] || continue
        pid=$(<"$f")
        kill -TERM "$pid" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "$f"
    done
}

stop() {
    [[ -d $dir ]] || return 0
    # Jobs still running belong to this cluster: cancel them before the daemons go.
    if running; then
        SLURM_CONF=$dir/slurm.conf scancel --full --signal=KILL --user="$(id -un)" 2>/dev/null || true
        SLURM_CONF=$dir/slurm.conf scancel --user="$(id -un)" 2>/dev/null || true
    fi
    stop_daemons
    rm -rf "$dir"
    say "stopped; removed $dir"
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    env) running || die "no cluster running in $dir: run scripts/slurm/cluster.sh start"; print_env ;;
    status) running && SLURM_CONF=$dir/slurm.conf sinfo ;;
    *) echo "usage: $0 start|stop|env|status" >&2; exit 2 ;;
esac
