#!/usr/bin/env bash
# D-Bus delivery rate: events/s reaching 1 and 4 `netev monitor --json`
# subscribers on a private system-style bus, with netevd's and dbus-daemon's
# CPU and memory. One event per call (--no-coalesce), load: UDP connect()
# calls paced at RATE/s for ITERATIONS calls (a flat-out flood takes a whole
# core of this 2-core machine by itself, starving the processes under test).
#
#   sudo bench/bus.sh [ITERATIONS] [RATE]
set -euo pipefail
cd "$(dirname "$0")/.."
ITER=${1:-2000000}
RATE=${2:-200000}
[ "$(id -u)" -eq 0 ] || { echo "bus.sh: needs root" >&2; exit 1; }
./scripts/setup.sh >/dev/null
cargo build --release -q -p netevd -p netev -p netev-loadgen
BIN=$PWD/target/release
CG2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
CG=$CG2/netev-bench-bus
W=$(mktemp -d); chmod 755 "$W"
OUT=bench/results/bus-$(date -u +%Y%m%dT%H%M%SZ).jsonl
mkdir -p bench/results "$CG"
: > "$OUT"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rmdir "$CG" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT

sed -e "s|@LISTEN@|unix:path=$W/bus|" -e "s|@POLICY@|$PWD/dist/dbus/org.netev.Daemon1.conf|" \
    dist/dbus/private-system-bus.conf.in > "$W/bus.conf"
dbus-daemon --config-file="$W/bus.conf" --nofork --print-address=1 > "$W/addr" &
BUS_PID=$!; PIDS+=("$BUS_PID")
for _ in $(seq 100); do [ -s "$W/addr" ] && break; sleep 0.05; done
ADDR=$(head -1 "$W/addr")

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hwm() { awk '/VmHWM/ { print $2 }' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)

for subs in 1 4; do
    echo "[bus] $subs subscriber(s), $ITER events at $RATE/s" >&2
    rm -f "$W/status.json"
    "$BIN/netevd" --foreground --no-coalesce --ringbuf-size 32M --bus "$ADDR" --cgroup "$CG" \
        --run-dir "$W" 2> "$W/netevd.log" &
    ND=$!
    for _ in $(seq 600); do [ -f "$W/status.json" ] && break; sleep 0.05; done
    MON=()
    for i in $(seq "$subs"); do
        "$BIN/netev" --bus "$ADDR" monitor --json --op connect > "$W/mon$i.out" 2>/dev/null &
        MON+=($!)
    done
    for _ in $(seq 600); do
        [ "$(grep -c ' subscribed ' "$W/netevd.log")" -ge "$subs" ] && break; sleep 0.05
    done
    nd0=$(ticks "$ND"); db0=$(ticks "$BUS_PID"); t0=$(date +%s.%N)
    load=$(sh -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' sh "$CG" \
        "$BIN/netev-load" loop udp-connect --iterations "$ITER" --rate "$RATE")
    t1=$(date +%s.%N)
    # let the subscribers catch up: until their line counts stop growing
    prev=-1
    while true; do
        n=$(cat "$W"/mon*.out | wc -l)
        [ "$n" -eq "$prev" ] && break
        prev=$n; sleep 0.5
    done
    t2=$(date +%s.%N)
    nd1=$(ticks "$ND"); db1=$(ticks "$BUS_PID"); nd_rss=$(hwm "$ND"); db_rss=$(hwm "$BUS_PID")
    kill "$ND"; wait "$ND" || true
    for p in "${MON[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    final=$(grep "final counters" "$W/netevd.log" | tail -1)
    f() { echo "$final" | sed -n "s/.* $1=\([0-9]*\).*/\1/p"; }
    counts=$(for i in $(seq "$subs"); do wc -l < "$W/mon$i.out"; done | paste -sd, -)
    echo "{\"subscribers\":$subs,\"rate\":$RATE,\"iterations\":$ITER,\"load\":$load,\"load_secs\":$(awk "BEGIN{print $t1-$t0}"),\"drain_secs\":$(awk "BEGIN{print $t2-$t0}"),\"received\":[$counts],\"events\":$(f events),\"dropped\":$(f dropped),\"bus_dropped\":$(f bus_dropped),\"netevd_cpu_secs\":$(awk "BEGIN{print ($nd1-$nd0)/$HZ}"),\"netevd_rss_kb\":$nd_rss,\"dbus_cpu_secs\":$(awk "BEGIN{print ($db1-$db0)/$HZ}"),\"dbus_rss_kb\":$db_rss}" >> "$OUT"
done

python3 - "$OUT" <<'PY'
import json, sys
print("| subscribers | offered rate | events published | received per subscriber | delivered events/s per subscriber | ring-buffer dropped | bus_dropped | netevd CPU | netevd peak RSS | dbus-daemon CPU | dbus-daemon peak RSS |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for line in open(sys.argv[1]):
    r = json.loads(line)
    rate = min(r["received"]) / r["drain_secs"]
    print(f"| {r['subscribers']} | {r['rate']:,}/s | {r['events']:,} | {', '.join(f'{c:,}' for c in r['received'])} | {rate:,.0f} (over {r['drain_secs']:.1f} s) "
          f"| {r['dropped']:,} | {r['bus_dropped']:,} | {r['netevd_cpu_secs']:.1f} s ({100*r['netevd_cpu_secs']/r['drain_secs']:.0f}%) "
          f"| {r['netevd_rss_kb']/1024:.0f} MiB | {r['dbus_cpu_secs']:.1f} s ({100*r['dbus_cpu_secs']/r['drain_secs']:.0f}%) | {r['dbus_rss_kb']/1024:.0f} MiB |")
PY
echo "raw results: $OUT" >&2
