#!/usr/bin/env bash
# Capture cost per kernel and backend, inside a VM: one kernel per run.
#
#   sudo [NO_BUILD=1] [NO_WAIT=1] [TCP_N=..] [BIND_N=..] [UDP_N=..] \
#       bench/vm-capture.sh /boot/vmlinuz-VERSION [ROUNDS]
#
# Boots the kernel with virtme-ng under software emulation (TCG; this
# machine's /dev/kvm cannot boot stock kernels, see PLATFORM.md) with the
# host's filesystem, and inside runs ROUNDS paired rounds (default 5). Each
# round: the three load loops bare, then under netevd --backend cgroup, then
# under netevd --backend lsm, all in the same VM, each loop in a child cgroup
# that netevd attaches to. A backend that does not load is recorded (with
# netevd's one-line reason) and skipped in later rounds.
#
# netevd in the guest: `--foreground --bus none --store none --pin-dir none`,
# state and run directory on a tmpfs (SQLite fails on the 9p root), no
# --print. One netevd per backend per round serves all three loops (starting
# netevd under TCG takes seconds; the loops' ratios are paired with the bare
# run of the same round).
#
# TCG is 10-50x slower than the host and distorts absolute figures (syscall
# entry, BPF JIT code and the hypervisor-less "hardware" are all emulated):
# read the ratios to bare, as indications, not the ns/op.
#
# Before booting it takes the kernel matrix's VM lock and waits until no
# other qemu-system runs (poll 20 s, max 20 min each; NO_WAIT=1 skips both),
# and watches during the run (bench/quiet.sh).
# Raw results: bench/results/vm-capture-<kernel>-<date>.jsonl (+ .log: the
# guest's output and netevd's logs; + .beside.jsonl: what ran beside).
# Summary: python3 bench/vm-summarize.py FILE...
set -euo pipefail

# ---------------------------------------------------------------- guest side
if [ "${1:-}" = --guest ]; then
    OUTDIR=$2
    # shellcheck disable=SC1091
    . "$OUTDIR/params"
    OUT=$OUTDIR/results.jsonl
    NETEVD=$OUTDIR/bin/netevd
    LOAD=$OUTDIR/bin/netev-load
    jstr() { python3 -c 'import json,sys; print(json.dumps(sys.stdin.read().strip()))'; }

    mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
    mountpoint -q /sys/kernel/security || mount -t securityfs securityfs /sys/kernel/security 2>/dev/null || true
    [ -d /sys/kernel/tracing/events ] || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
    TMP=$(mktemp -d /tmp/netev-vm.XXXXXX)
    mount -t tmpfs tmpfs "$TMP"
    CG2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
    CG2=${CG2:-/sys/fs/cgroup}
    CG=$CG2/netev-bench

    check=$("$NETEVD" --check-backend 2>&1 || true)
    printf '{"guest":{"kernel":"%s","cpus":%s,"mem_kb":%s,"lsm":%s,"lockdown":%s,"check_backend":%s,"rounds":%s,"iterations":{"tcp":%s,"bind":%s,"udp":%s}}}\n' \
        "$(uname -r)" "$(nproc)" "$(awk '/MemTotal/ {print $2}' /proc/meminfo)" \
        "$(cat /sys/kernel/security/lsm 2>/dev/null | jstr)" \
        "$(cat /sys/kernel/security/lockdown 2>/dev/null | jstr)" \
        "$(echo "$check" | jstr)" "$ROUNDS" "$TCP_N" "$BIND_N" "$UDP_N" >> "$OUT"
    echo "--- netevd --check-backend:"; echo "$check"

    declare -A ITER=([tcp]=$TCP_N [bind]=$BIND_N [udp]=$UDP_N)
    declare -A SKIP=()
    DAEMON_PID=
    cleanup_cg() {
        if [ -d "$CG" ]; then
            while read -r p; do echo "$p" > "$CG2/cgroup.procs" 2>/dev/null || true; done < "$CG/cgroup.procs"
            rmdir "$CG" 2>/dev/null || true
        fi
    }
    cleanup() {
        [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
        cleanup_cg
        umount "$TMP" 2>/dev/null || true
    }
    trap cleanup EXIT

    run_load() { # round config mode
        local res
        res=$(sh -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' sh "$CG" \
            "$LOAD" loop "$3" --iterations "${ITER[$3]}")
        echo "{\"round\":$1,\"config\":\"$2\",\"mode\":\"$3\",\"result\":$res}" >> "$OUT"
        echo "round $1 $2 $3: $res"
    }

    start_daemon() { # round backend -> 0 if capturing
        local r=$1 b=$2 d t0 t1
        d=$(mktemp -d "$TMP/d.XXXXXX")
        t0=$(date +%s.%N)
        "$NETEVD" --foreground --bus none --store none --pin-dir none --cgroup "$CG" \
            --run-dir "$d" --state-dir "$d" --backend "$b" 2> "$d/netevd.log" > /dev/null &
        DAEMON_PID=$!
        # TCG: loading and verifying the programs takes seconds
        for _ in $(seq 1200); do
            if grep -q "INFO.* capturing" "$d/netevd.log"; then
                t1=$(date +%s.%N)
                printf '{"round":%s,"start":{"backend":"%s","loads":true,"secs":%s,"line":%s}}\n' "$r" "$b" \
                    "$(awk "BEGIN { print $t1 - $t0 }")" "$(grep -m1 "INFO.* capturing" "$d/netevd.log" | jstr)" >> "$OUT"
                LOG=$d/netevd.log
                return 0
            fi
            kill -0 "$DAEMON_PID" 2>/dev/null || break
            sleep 0.25
        done
        kill "$DAEMON_PID" 2>/dev/null || true
        wait "$DAEMON_PID" 2>/dev/null || true
        DAEMON_PID=
        printf '{"round":%s,"start":{"backend":"%s","loads":false,"error":%s}}\n' "$r" "$b" \
            "$(tail -n 5 "$d/netevd.log" | jstr)" >> "$OUT"
        echo "--- netevd --backend $b did not start:"; cat "$d/netevd.log"
        return 1
    }

    stop_daemon() {
        kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID" || true; DAEMON_PID=
        echo "--- netevd log:"; cat "$LOG"
    }

    for r in $(seq "$ROUNDS"); do
        for config in bare cgroup lsm; do
            [ -n "${SKIP[$config]:-}" ] && continue
            mkdir "$CG"
            if [ "$config" != bare ]; then
                if ! start_daemon "$r" "$config"; then
                    SKIP[$config]=1
                    cleanup_cg
                    continue
                fi
            fi
            for mode in tcp bind udp; do run_load "$r" "$config" "$mode"; done
            [ "$config" != bare ] && stop_daemon
            cleanup_cg
        done
    done
    exit 0
fi

# ----------------------------------------------------------------- host side
cd "$(dirname "$0")/.."
KERNEL=${1:?usage: bench/vm-capture.sh /boot/vmlinuz-VERSION [ROUNDS]}
ROUNDS=${2:-5}
[ "$(id -u)" -eq 0 ] || { echo "vm-capture.sh: needs root (vng boots with the host's root)" >&2; exit 1; }
[ -r "$KERNEL" ] || { echo "vm-capture.sh: no kernel $KERNEL" >&2; exit 1; }
command -v vng >/dev/null || { echo "vm-capture.sh: vng not found (pip install virtme-ng)" >&2; exit 1; }
# iterations per loop: ~1-2 s of a bare run each under TCG, so that one
# boot with 5 rounds stays under ~6 minutes (netevd start-up, ~5-7 s, and
# stop dominate)
TCP_N=${TCP_N:-2000} BIND_N=${BIND_N:-12000} UDP_N=${UDP_N:-60000}

if [ "${NO_BUILD:-0}" != 1 ]; then
    cargo build --release -q -p netevd -p netev-loadgen
fi
KVER=${KERNEL##*/vmlinuz-}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=bench/results/vm-capture-$KVER-$STAMP.jsonl
OUTDIR=$(mktemp -d /tmp/netev-vmcap.XXXXXX)
mkdir -p bench/results "$OUTDIR/bin"
# a snapshot of the binaries: target/ may be rebuilt while the VM runs
cp target/release/netevd target/release/netev-load "$OUTDIR/bin/"
cat > "$OUTDIR/params" <<EOF
ROUNDS=$ROUNDS
TCP_N=$TCP_N
BIND_N=$BIND_N
UDP_N=$UDP_N
EOF
WATCH_PID=
trap '[ -n "$WATCH_PID" ] && kill "$WATCH_PID" 2>/dev/null; rm -rf "$OUTDIR"' EXIT

waited=ok
if [ "${NO_WAIT:-0}" != 1 ]; then
    # the kernel matrix's lock (bench/quiet.sh): it starts no VM beside ours
    # (QUIET_LOCK_HELD=1: the caller holds it already)
    [ "${QUIET_LOCK_HELD:-0}" = 1 ] || exec 9>/run/lock/netev-vm-matrix.lock
    if [ "${QUIET_LOCK_HELD:-0}" != 1 ] && ! flock -n 9; then
        echo "vm-capture.sh: a kernel matrix holds the VM lock; waiting (max 1200 s)" >&2
        flock -w 1200 9 || waited=lock-timeout
    fi
    bench/quiet.sh wait 1200 || waited=timeout
fi
bench/quiet.sh watch "${OUT%.jsonl}.beside.jsonl" "$OUTDIR" &
WATCH_PID=$!

printf '{"meta":{"date":"%s","host_kernel":"%s","host_cores":%s,"vm_kernel":"%s","vng":"--disable-kvm --memory 2G --cpus 2","commit":"%s","dirty":%s,"netevd_sha256":"%s","wait_for_other_vms":"%s"}}\n' \
    "$(date -u +%FT%TZ)" "$(uname -r)" "$(nproc)" "$KERNEL" "$(git rev-parse --short HEAD)" \
    "$( [ -z "$(git status --porcelain -- crates bench/loadgen)" ] && echo false || echo true)" \
    "$(sha256sum "$OUTDIR/bin/netevd" | cut -c1-16)" "$waited" > "$OUT"

t0=$(date +%s)
echo "booting $KERNEL (TCG, 2 vCPUs, 2G), $ROUNDS rounds, tcp $TCP_N bind $BIND_N udp $UDP_N" >&2
rc=0
timeout 1800 vng -r "$KERNEL" --disable-kvm --memory 2G --cpus 2 --rwdir "$OUTDIR" \
    --exec "$PWD/bench/vm-capture.sh --guest $OUTDIR" > "${OUT%.jsonl}.log" 2>&1 || rc=$?
t1=$(date +%s)
kill "$WATCH_PID" 2>/dev/null || true; wait "$WATCH_PID" 2>/dev/null || true; WATCH_PID=
cat "$OUTDIR/results.jsonl" >> "$OUT" 2>/dev/null || true
printf '{"host":{"vng_rc":%s,"wall_secs":%s}}\n' "$rc" "$((t1 - t0))" >> "$OUT"
echo "vng exited $rc after $((t1 - t0)) s; beside: $(bench/quiet.sh report "${OUT%.jsonl}.beside.jsonl")" >&2
python3 bench/vm-summarize.py "$OUT"
echo "raw results: $OUT (+ .log, .beside.jsonl)" >&2
