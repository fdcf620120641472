#!/usr/bin/env bash
# scripts/netns.sh: two "hosts" on this machine, for the multi-host tests (tests/multihost.rs).
#
#   netns.sh up NAME [loopback|veth]   network namespaces NAMEa and NAMEb joined by a veth pair
#                                      (NAMEva 198.18.0.1/24 in NAMEa, NAMEvb 198.18.0.2/24 in
#                                      NAMEb), each with its own /etc/netns/NAMEx/hosts naming it
#                                      host-a / host-b: at 127.0.1.1 (loopback, Debian's default
#                                      entry, the case where Gloo binds to loopback) or at its veth
#                                      address (veth). Default: loopback.
#   netns.sh exec NAME a|b CMD...      runs CMD in host a or b, in a UTS namespace of its own whose
#                                      hostname is host-a / host-b (exec: CMD gets this process id)
#   netns.sh cut NAME                  takes the link down on both sides: a partition (no RST, no
#                                      FIN; the peers' packets are dropped)
#   netns.sh down NAME                 removes everything `up` made; safe to run twice or after a
#                                      failed `up`
#
# Root only. The addresses are from the benchmarking range 198.18.0.0/15 and exist only inside the
# two namespaces, which have no route anywhere else: no packet leaves them. NAME must be unique per
# run (tests use their process id) and at most 12 characters (interface names are 15 at most).
set -euo pipefail

usage() {
    sed -n '2,18p' "$0" >&2
    exit 2
}

need_ip() {
    command -v ip >/dev/null 2>&1 && return 0
    # Idempotent: installs only when missing.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q iproute2 >/dev/null
}

check_name() {
    [[ "$1" =~ ^[A-Za-z0-9]{1,12}$ ]] || { echo "netns.sh: bad NAME '$1' (1-12 letters/digits)" >&2; exit 2; }
}

addr_of() { [ "$1" = a ] && echo 198.18.0.1 || echo 198.18.0.2; }

up() {
    local name=$1 mode=${2:-loopback}
    case "$mode" in loopback|veth) ;; *) usage ;; esac
    need_ip
    trap 'down "$name" >/dev/null 2>&1' ERR
    ip netns add "${name}a"
    ip netns add "${name}b"
    # Created inside the namespaces: nothing of the pair is ever in this machine's own namespace.
    ip link add "${name}va" netns "${name}a" type veth peer name "${name}vb" netns "${name}b"
    for h in a b; do
        local ns="${name}$h" dev="${name}v$h" addr
        addr=$(addr_of "$h")
        ip -n "$ns" link set lo up
        ip -n "$ns" addr add "$addr/24" dev "$dev"
        ip -n "$ns" link set "$dev" up
        mkdir -p "/etc/netns/$ns"
        local at=$addr
        [ "$mode" = loopback ] && at=127.0.1.1
        printf '127.0.0.1\tlocalhost\n%s\thost-%s\n' "$at" "$h" >"/etc/netns/$ns/hosts"
    done
    trap - ERR
}

down() {
    local name=$1 h
    for h in a b; do
        # gVisor keeps a veth after its namespace is deleted: delete the link first.
        ip -n "${name}$h" link del "${name}v$h" 2>/dev/null || true
        ip netns del "${name}$h" 2>/dev/null || true
        rm -rf "/etc/netns/${name}$h"
    done
}

cut() {
    local name=$1 h
    for h in a b; do
        ip -n "${name}$h" link set "${name}v$h" down
    done
}

run_in() {
    local name=$1 h=$2
    shift 2
    case "$h" in a|b) ;; *) usage ;; esac
    [ $# -gt 0 ] || usage
    # `ip netns exec` bind-mounts /etc/netns/NAMEh/hosts over /etc/hosts; unshare --uts gives the
    # process a hostname of its own without touching this machine's.
    exec ip netns exec "${name}$h" unshare --uts sh -c 'hostname "$0" && exec "$@"' "host-$h" "$@"
}

[ $# -ge 2 ] || usage
cmd=$1 name=$2
shift 2
check_name "$name"
case "$cmd" in
    up) up "$name" "$@" ;;
    down) down "$name" ;;
    cut) cut "$name" ;;
    exec) run_in "$name" "$@" ;;
    *) usage ;;
esac
