#!/usr/bin/env bash
# Capture overhead, side by side in one run: bare, netevd, kernel audit (last).
#
#   sudo [BASE_NETEVD=/path/to/previous/netevd] [NO_AUDIT=1] bench/capture.sh [ROUNDS]
#
# BASE_NETEVD: a previous build's netevd, run in the same paired rounds (bare,
# previous, this build), so a change is measured against what it replaces in
# one run. NO_AUDIT=1 leaves the audit comparison out.
#
# For each load loop (tcp connect+accept+close, bind+listen+close, UDP sendto)
# it alternates bare and netevd runs ROUNDS times (paired, so drift on a
# shared VM hits both), then measures the same loops under auditd with rules
# for the same syscalls. Then a 10 s UDP flood with --no-coalesce measures how
# many events/s the daemon drains, its drops, CPU and memory.
# Raw results: bench/results/capture-<date>.jsonl; summary on stdout (markdown).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-5}
[ "$(id -u)" -eq 0 ] || { echo "capture.sh: needs root (loads BPF, runs auditd)" >&2; exit 1; }
NETEV_SETUP_BENCH=1 ./scripts/setup.sh >/dev/null
cargo build --release -q -p netevd -p netev-loadgen

NETEVD=$PWD/target/release/netevd
LOAD=$PWD/target/release/netev-load
CG2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
CG=$CG2/netev-bench
RUN=$(mktemp -d)
OUT=bench/results/capture-$(date -u +%Y%m%dT%H%M%SZ).jsonl
mkdir -p bench/results "$CG"
: > "$OUT"

DAEMON_PID=
AUDIT_USED=
cleanup() {
    [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
    if [ -n "$AUDIT_USED" ]; then
        # Once audit was enabled, new processes take the audit syscall path
        # until reboot unless a never,task rule says otherwise.
        auditctl -D >/dev/null 2>&1 || true
        auditctl -a never,task >/dev/null 2>&1 || true
        auditctl -e 0 >/dev/null 2>&1 || true
    fi
    # move anything left back to the root cgroup, then remove ours
    if [ -d "$CG" ]; then
        while read -r p; do echo "$p" > "$CG2/cgroup.procs" 2>/dev/null || true; done < "$CG/cgroup.procs"
        rmdir "$CG" 2>/dev/null || true
    fi
    rm -rf "$RUN"
}
trap cleanup EXIT

# iterations per loop: about a second of bare run each
declare -A ITER=([tcp]=40000 [bind]=100000 [udp]=600000)

in_cgroup() { sh -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' sh "$CG" "$@"; }

run_load() { # mode config [iterations] -> appends a JSON line
    local mode=$1 config=$2 iter=${3:-${ITER[$1]}}
    local res
    res=$(in_cgroup "$LOAD" loop "$mode" --iterations "$iter")
    echo "{\"mode\":\"$mode\",\"config\":\"$config\",\"result\":$res}" >> "$OUT"
}

start_daemon() { # [--base] extra flags...
    local bin=$NETEVD
    if [ "${1:-}" = --base ]; then bin=$BASE_NETEVD; shift; fi
    rm -f "$RUN/status.json"
    # no bus, the store and pins in the run's own directory: the same
    # settings for both builds, nothing of the machine's touched
    "$bin" --foreground --bus none --state-dir "$RUN/state" --pin-dir none --print json --cgroup "$CG" --run-dir "$RUN" "$@" \
        > /dev/null 2> "$RUN/netevd.log" &
    DAEMON_PID=$!
    for _ in $(seq 600); do [ -f "$RUN/status.json" ] && return; sleep 0.05; done
    echo "netevd did not start:" >&2; cat "$RUN/netevd.log" >&2; exit 1
}

stop_daemon() {
    kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID" || true; DAEMON_PID=
}

proc_cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r)" >&2
audit_before=$(auditctl -s 2>/dev/null | awk '/^enabled/ {print $2}' || echo "?")
echo "{\"meta\":{\"date\":\"$(date -u +%FT%TZ)\",\"kernel\":\"$(uname -r)\",\"cores\":$(nproc),\"audit_enabled_before\":\"$audit_before\",\"rounds\":$ROUNDS}}" >> "$OUT"

for mode in tcp bind udp; do
    for r in $(seq "$ROUNDS"); do
        echo "[$mode] round $r/$ROUNDS" >&2
        run_load "$mode" bare
        if [ -n "${BASE_NETEVD:-}" ]; then
            start_daemon --base
            run_load "$mode" netevd-base
            stop_daemon
        fi
        start_daemon
        run_load "$mode" netevd
        stop_daemon
        if [ "$mode" = udp ]; then
            if [ -n "${BASE_NETEVD:-}" ]; then
                start_daemon --base --no-coalesce
                run_load "$mode" netevd-base-no-coalesce
                stop_daemon
            fi
            start_daemon --no-coalesce
            run_load "$mode" netevd-no-coalesce
            stop_daemon
        fi
    done
done

# --- drain rate: one event per call, ~10 s -----------------------------------
# connect() on a UDP socket is the cheapest hooked syscall (~1 us bare), so it
# produces events faster than a sendto() loop can; --no-coalesce is moot for
# connect but set anyway: nothing is folded.
echo "[drain] ~10 s UDP connect() flood, --no-coalesce" >&2
start_daemon --no-coalesce --ringbuf-size 16M
t0_ticks=$(proc_cpu_ticks "$DAEMON_PID")
t0=$(date +%s.%N)
flood=$(in_cgroup "$LOAD" loop udp-connect --iterations 5500000)
t1=$(date +%s.%N)
t1_ticks=$(proc_cpu_ticks "$DAEMON_PID")
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$DAEMON_PID/status")
stop_daemon
final=$(grep "final counters" "$RUN/netevd.log" | tail -1)
field() { echo "$final" | sed -n "s/.*$1=\([0-9]*\).*/\1/p"; }
hz=$(getconf CLK_TCK)
echo "{\"drain\":{\"flood\":$flood,\"wall_secs\":$(awk "BEGIN { print $t1 - $t0 }"),\"daemon_cpu_secs\":$(awk "BEGIN { print ($t1_ticks - $t0_ticks) / $hz }"),\"daemon_rss_kb\":$rss_kb,\"seen\":$(field seen),\"delivered\":$(field delivered),\"dropped\":$(field dropped),\"events\":$(field events)}}" >> "$OUT"

# --- kernel audit, last: once enabled, every new process pays for it --------
if [ "${NO_AUDIT:-0}" = 1 ]; then
    echo "NO_AUDIT=1: skipping the audit comparison" >&2
elif command -v auditctl >/dev/null && command -v auditd >/dev/null; then
    AUDIT_USED=1
    pgrep -x auditd >/dev/null || auditd
    auditctl -e 1 >/dev/null
    auditctl -D >/dev/null
    auditctl -a always,exit -F arch=b64 -S socket -S bind -S listen -S connect -S accept \
        -S accept4 -S sendto -S sendmsg -S recvfrom -S recvmsg -k netev-bench >/dev/null
    for mode in tcp bind udp; do
        for r in $(seq "$ROUNDS"); do
            echo "[$mode] audit round $r/$ROUNDS" >&2
            # audit is 7-30x slower: a quarter of the iterations keeps it bounded
            run_load "$mode" auditd $(( ITER[$mode] / 4 ))
        done
    done
    AUDIT_USED=1
else
    echo "auditd not available: skipping the audit comparison" >&2
fi

python3 bench/summarize.py "$OUT"
echo "raw results: $OUT" >&2
