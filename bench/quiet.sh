#!/usr/bin/env bash
# What runs beside a benchmark on this 2-core machine.
#
#   bench/quiet.sh wait [MAX_SECS]   wait until no qemu-system runs (poll every
#                                    20 s, at most MAX_SECS, default 1200);
#                                    exit 0 if none runs, 1 if one still does
#   bench/quiet.sh watch OUT [SKIP]  every 10 s append one JSON line to OUT:
#                                    the qemu-system processes (those whose
#                                    command line contains SKIP left out: your
#                                    own VM) and any other process above 20 %
#                                    of a core; runs until killed
#   bench/quiet.sh report OUT        one line: what the watch saw
#   bench/quiet.sh run OUT CMD...    take the VM lock (below), wait for no VM,
#                                    run CMD with a watch into OUT, report
#
# A benchmark with a TCG VM running beside it on 2 cores is worthless; wait
# before, watch during, and say in RESULTS.md what the watch saw.
#
# The VM lock: scripts/vm-matrix.sh boots its VMs only while it holds
# /run/lock/netev-vm-matrix.lock (flock), so holding it keeps the kernel
# matrix from starting a VM beside a benchmark (the matrix waits). VMs booted
# by hand don't take it: the qemu wait and the watch are for those.
LOCK=/run/lock/netev-vm-matrix.lock
set -euo pipefail

others() { # SKIP -> pids of qemu-system processes not matching SKIP
    local skip=${1:-} pid
    for pid in $(pgrep -f qemu-system || true); do
        [ "$pid" = "$$" ] && continue
        if [ -n "$skip" ] && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$skip"; then
            continue
        fi
        [ -e "/proc/$pid" ] && echo "$pid"
    done
}

case "${1:-}" in
wait)
    max=${2:-1200}
    waited=0
    while [ -n "$(others)" ]; do
        if [ "$waited" -ge "$max" ]; then
            echo "quiet.sh: after ${waited} s a VM still runs: $(others | tr '\n' ' ')" >&2
            exit 1
        fi
        [ "$waited" -eq 0 ] && echo "quiet.sh: a VM runs ($(others | tr '\n' ' ')); waiting (poll 20 s, max ${max} s)" >&2
        sleep 20
        waited=$((waited + 20))
    done
    echo "quiet.sh: no other VM (waited ${waited} s)" >&2
    ;;
watch)
    out=$2 skip=${3:-}
    while :; do
        q=$(others "$skip" | tr '\n' ' ')
        # processes above 20 % of a core over their life so far is useless;
        # take the last 10 s from two snapshots of utime+stime instead
        declare -A t0=()
        for d in /proc/[0-9]*; do
            read -r -a st 2>/dev/null < "$d/stat" || continue
            t0[${d#/proc/}]=$((st[13] + st[14]))
        done
        sleep 10
        busy=()
        for pid in "${!t0[@]}"; do
            read -r -a st 2>/dev/null < "/proc/$pid/stat" || continue
            dt=$((st[13] + st[14] - t0[$pid]))
            # CLK_TCK 100: 200 ticks in 10 s = 20 % of a core
            if [ "$dt" -ge 200 ]; then
                busy+=("$(tr -d '()' <<<"${st[1]}"):$pid:$((dt / 10))%")
            fi
        done
        unset t0
        printf '{"t":"%s","other_qemu":"%s","busy":"%s","load1":"%s"}\n' \
            "$(date -u +%FT%TZ)" "${q% }" "${busy[*]:-}" "$(cut -d' ' -f1 /proc/loadavg)" >> "$out"
    done
    ;;
run)
    out=$2; shift 2
    # QUIET_LOCK_HELD=1: the caller holds the lock already (e.g. for a series
    # of runs: flock LOCK -c 'sleep 3600' &)
    [ "${QUIET_LOCK_HELD:-0}" = 1 ] || exec 9>"$LOCK"
    if [ "${QUIET_LOCK_HELD:-0}" != 1 ] && ! flock -n 9; then
        echo "quiet.sh: $LOCK is held (a kernel matrix runs); waiting (max 1200 s)" >&2
        flock -w 1200 9 || echo "quiet.sh: still held after 1200 s: running anyway" >&2
    fi
    "$0" wait 1200 || echo "quiet.sh: running anyway, beside a VM" >&2
    "$0" watch "$out" &
    watch=$!
    rc=0
    "$@" || rc=$?
    kill "$watch"; wait "$watch" 2>/dev/null || true
    echo "quiet.sh: beside the run: $("$0" report "$out")" >&2
    exit "$rc"
    ;;
report)
    python3 - "$2" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
vm = [r for r in rows if r["other_qemu"]]
busy = {}
for r in rows:
    for b in r["busy"].split():
        name = b.split(":")[0]
        busy[name] = busy.get(name, 0) + 1
print(f"{len(rows)} samples of 10 s; other VM in {len(vm)}; "
      f"busy (>20 % of a core) by name, samples: {busy or 'none'}")
EOF
    ;;
*)
    sed -n '2,15p' "$0" >&2
    exit 2
    ;;
esac
