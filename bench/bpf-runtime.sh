#!/usr/bin/env bash
# In-kernel time of netevd's BPF programs per loop iteration, two builds
# side by side (the wall clock of a 2-core VM swings by 10-30 %; the time
# spent inside the programs is far steadier).
#
#   sudo bench/bpf-runtime.sh NETEVD_A NETEVD_B [MODE] [ROUNDS] [ITERATIONS]
#
# Each round, for A then B (alternating which goes first from round to
# round): netevd on a child cgroup (--bus none --store none --pin-dir none,
# no --backend: builds before 431b86a have none; on this host auto is cgroup),
# kernel.bpf_stats_enabled=1 for the loop only, the loop
# (netev-load loop MODE) in the cgroup, then the sum of run_time_ns and
# run_cnt over netevd's program fds (/proc/PID/fdinfo) and the loop's ns/op.
# Raw results: bench/results/bpf-runtime-<date>.jsonl; summary on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
A=${1:?usage: bench/bpf-runtime.sh NETEVD_A NETEVD_B [MODE] [ROUNDS] [ITERATIONS]}
B=${2:?usage}
MODE=${3:-tcp} ROUNDS=${4:-6} ITER=${5:-40000}
LOAD=$PWD/target/release/netev-load
CG2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
CG=$CG2/netev-bpfrt
RUN=$(mktemp -d)
OUT=bench/results/bpf-runtime-$(date -u +%Y%m%dT%H%M%SZ).jsonl
mkdir -p bench/results "$CG"
PID=
cleanup() {
    sysctl -q kernel.bpf_stats_enabled=0 || true
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    while read -r p; do echo "$p" > "$CG2/cgroup.procs" 2>/dev/null || true; done < "$CG/cgroup.procs"
    rmdir "$CG" 2>/dev/null || true
    rm -rf "$RUN"
}
trap cleanup EXIT
echo "{\"meta\":{\"date\":\"$(date -u +%FT%TZ)\",\"kernel\":\"$(uname -r)\",\"a\":\"$A\",\"b\":\"$B\",\"mode\":\"$MODE\",\"iterations\":$ITER}}" > "$OUT"

one() { # label binary round
    local d; d=$(mktemp -d "$RUN/d.XXXXXX")
    "$2" --foreground --bus none --store none --pin-dir none --cgroup "$CG" \
        --run-dir "$d" --state-dir "$d" > /dev/null 2> "$d/log" &
    PID=$!
    for _ in $(seq 600); do grep -q "INFO.* capturing" "$d/log" && break; sleep 0.05; done
    grep -q "INFO.* capturing" "$d/log" || { cat "$d/log" >&2; exit 1; }
    sysctl -q kernel.bpf_stats_enabled=1
    res=$(sh -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' sh "$CG" "$LOAD" loop "$MODE" --iterations "$ITER")
    sysctl -q kernel.bpf_stats_enabled=0
    read -r ns cnt progs < <(for f in /proc/$PID/fdinfo/*; do
        grep -q '^prog_type' "$f" 2>/dev/null && awk '/^run_time_ns/ {t=$2} /^run_cnt/ {c=$2} END {print t+0, c+0}' "$f"
    done | awk '{t+=$1; c+=$2; n++} END {print t+0, c+0, n+0}')
    kill -TERM "$PID"; wait "$PID" || true; PID=
    echo "{\"build\":\"$1\",\"round\":$3,\"run_time_ns\":$ns,\"run_cnt\":$cnt,\"prog_fds\":$progs,\"result\":$res}" >> "$OUT"
}

for r in $(seq "$ROUNDS"); do
    echo "round $r/$ROUNDS" >&2
    if [ $((r % 2)) = 1 ]; then one a "$A" "$r"; one b "$B" "$r"; else one b "$B" "$r"; one a "$A" "$r"; fi
done

python3 - "$OUT" <<'EOF'
import json, statistics as st, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
meta = rows[0]["meta"]
by = {"a": {}, "b": {}}
for r in rows[1:]:
    by[r["build"]][r["round"]] = r
it = meta["iterations"]
print(f"{meta['mode']} loop, {it} iterations, kernel {meta['kernel']}; a = {meta['a']}, b = {meta['b']}\n")
print("| build | in-kernel ns/iteration (median, min-max) | program runs/iteration | wall ns/op (median) |")
print("|---|---|---|---|")
for k in "ab":
    v = [r["run_time_ns"] / it for r in by[k].values()]
    runs = st.median([r["run_cnt"] / it for r in by[k].values()])
    wall = st.median([r["result"]["ns_per_op"] for r in by[k].values()])
    print(f"| {k} | {st.median(v):.0f} ({min(v):.0f}-{max(v):.0f}) | {runs:.2f} | {wall:.0f} |")
d = [by["b"][r]["run_time_ns"] / it - by["a"][r]["run_time_ns"] / it for r in by["a"] if r in by["b"]]
print(f"\nb - a in-kernel, paired by round: median {st.median(d):+.0f} ns/iteration (min {min(d):+.0f}, max {max(d):+.0f})")
EOF
echo "raw results: $OUT" >&2
