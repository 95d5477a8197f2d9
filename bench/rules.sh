#!/usr/bin/env bash
# Kernel rule-decision overhead, side by side in one run: a connect loop
# bare, under netevd with no rules, and under netevd with 1000 rules loaded.
#
#   sudo bench/rules.sh [ROUNDS] [ITERATIONS] [NRULES]
#   LOOP=tcp|udp-connect (default udp-connect: connect() of one UDP socket,
#   ~1 µs bare, so a per-decision cost shows; tcp: socket+connect+accept+close)
#   PIN=1 (default): the loop on CPU 1, netevd on CPU 0
#
# Each round runs bare, then starts one netevd (fresh, empty state dir) and
# measures it with no rules and with NRULES rules (imported over D-Bus with
# `netev rules import`, count checked with `netev rules list --json`, removed
# again with `import --replace` of an empty file); odd rounds measure no rules
# first, even rounds rules first, so that neither a daemon's start nor drift
# on a shared VM favours one of them. The rules
# are realistic (per-program and machine-wide, shared ports and networks) but
# none matches the loop's own 127.0.0.1 connects: the loop measures the cost
# of deciding, not of denying.
# Raw results: bench/results/rules-<date>.jsonl; summary on stdout (markdown).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-10}
ITER=${2:-1000000}
NRULES=${3:-1000}
LOOP=${LOOP:-udp-connect}
PIN=${PIN:-1}
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ]; then LOAD_CPU="taskset -c 1"; DAEMON_CPU="taskset -c 0"; else LOAD_CPU=; DAEMON_CPU=; fi
[ "$(id -u)" -eq 0 ] || { echo "rules.sh: needs root (loads BPF, makes a cgroup)" >&2; exit 1; }
[ -n "${NETEV_BENCH_NO_BUILD:-}" ] || cargo build --release -q -p netevd -p netev -p netev-loadgen

BIN=$PWD/target/release
CG2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
CG=$CG2/netev-bench-rules
W=$(mktemp -d)
OUT=bench/results/rules-$(date -u +%Y%m%dT%H%M%SZ).jsonl
mkdir -p bench/results "$CG"
: > "$OUT"

DAEMON_PID=
BUS_PID=
cleanup() {
    if [ -n "$DAEMON_PID" ]; then kill "$DAEMON_PID" 2>/dev/null || true; wait "$DAEMON_PID" 2>/dev/null || true; fi
    if [ -n "$BUS_PID" ]; then kill "$BUS_PID" 2>/dev/null || true; fi
    if [ -d "$CG" ]; then
        while read -r p; do echo "$p" > "$CG2/cgroup.procs" 2>/dev/null || true; done < "$CG/cgroup.procs"
        rmdir "$CG" 2>/dev/null || true
    fi
    rm -rf "$W"
}
STATS_WAS=$(sysctl -n kernel.bpf_stats_enabled)
trap 'cleanup; sysctl -q kernel.bpf_stats_enabled="$STATS_WAS"' EXIT
sysctl -q kernel.bpf_stats_enabled=1

# --- private session bus (permissive session config; root is the caller) ---
dbus-daemon --session --fork --print-address=1 --print-pid=1 > "$W/bus"
ADDR=$(sed -n 1p "$W/bus"); BUS_PID=$(sed -n 2p "$W/bus")
[ -n "$ADDR" ] && [ -n "$BUS_PID" ] || { echo "dbus-daemon did not start" >&2; exit 1; }

# --- the rules file ---------------------------------------------------------
python3 - "$NRULES" "$BIN/netev-load" > "$W/rules.toml" <<'PY'
import sys
n, load = int(sys.argv[1]), sys.argv[2]
# Service ports a real rule set names; all below the ephemeral range
# (32768-60999) the loop's listener gets, so machine-wide rules miss it too.
common = ["443", "80", "22", "53", "5432", "3306", "6379", "8080", "25", "9000-9100", "1000-2000", "27017"]
out = []
for i in range(n):
    r = {}
    # networks: mostly one /24 per rule; every 5th a shared 10.0.K.0/24;
    # some 192.168/16 and 172.16/12 subnets and documentation IPv6 nets
    k = i % 10
    if i % 5 == 0:
        r["addr"] = f"10.0.{i % 16}.0/24"
    elif k in (1, 6):
        r["addr"] = f"10.{1 + (i // 256) % 250}.{i % 256}.0/24"
    elif k == 2:
        r["addr"] = f"192.168.{i % 256}.0/24"
    elif k == 3:
        r["addr"] = f"172.{16 + i % 16}.0.0/16"
    elif k == 4:
        r["addr"] = f"2001:db8:{i:x}::/48"
    elif k in (7, 8):
        r["addr"] = f"10.{1 + (i // 256) % 250}.{(i * 7) % 256}.{(i * 13) % 256}"
    else:
        r["addr"] = f"10.{1 + (i // 256) % 250}.{i % 256}.0/24"
    # ports: a shared service port most of the time, else a per-rule one
    if i % 3 == 0:
        r["ports"] = f"{1000 + i % 500}-{1100 + i % 500}"
    elif i % 3 == 1:
        r["ports"] = common[i % len(common)]
    else:
        r["ports"] = str(1 + (i * 37) % 30000)
    # per-program (one program in 20 rules); every 25th machine-wide
    if i % 25 != 0:
        r["exe"] = f"/usr/bin/app{i // 20}"
    # a few rules for the load generator itself, to other networks
    if i % 200 == 7:
        r["exe"] = load
    if i % 4 == 3:
        r["ops"] = ["connect", "sendmsg"]
        r["proto"] = "udp" if i % 8 == 7 else "tcp"
    else:
        r["ops"] = ["connect"]
        r["proto"] = "tcp"
    r["action"] = "deny" if i % 3 != 2 else "allow"
    if i % 10 == 9:
        r["priority"] = str(10 * (1 + i % 3))
    out.append("[[rule]]")
    for key in ["action", "ops", "exe", "proto", "addr", "ports", "priority"]:
        if key in r:
            v = r[key]
            if isinstance(v, list):
                out.append(f"{key} = [" + ", ".join(f'"{x}"' for x in v) + "]")
            elif key == "priority":
                out.append(f"{key} = {v}")
            else:
                out.append(f'{key} = "{v}"')
    out.append("")
print("\n".join(out))
PY

in_cgroup() { sh -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' sh "$CG" "$@"; }

# Time spent in netevd's BPF programs so far (kernel.bpf_stats_enabled):
# the in-kernel cost, free of the noise a shared VM adds to wall time.
bpf_ns() {
    [ -n "$DAEMON_PID" ] || { echo 0; return; }
    cat /proc/"$DAEMON_PID"/fdinfo/* 2>/dev/null | awk '/^run_time_ns:/ { t += $2 } END { print t + 0 }'
}

run_load() { # config -> appends a JSON line
    local config=$1 res b0 b1
    b0=$(bpf_ns)
    res=$(in_cgroup $LOAD_CPU "$BIN/netev-load" loop "$LOOP" --iterations "$ITER")
    b1=$(bpf_ns)
    echo "{\"round\":$r,\"config\":\"$config\",\"rules\":${2:-0},\"bpf_ns_per_op\":$(awk "BEGIN { print ($b1 - $b0) / $ITER }"),\"result\":$res}" >> "$OUT"
}

start_daemon() { # state dir
    rm -rf "$1" "$W/run"; mkdir -p "$1" "$W/run"
    $DAEMON_CPU "$BIN/netevd" --foreground --bus "$ADDR" --state-dir "$1" --run-dir "$W/run" --cgroup "$CG" \
        > /dev/null 2> "$W/netevd.log" &
    DAEMON_PID=$!
    for _ in $(seq 600); do
        [ -f "$W/run/status.json" ] && "$BIN/netev" --bus "$ADDR" rules list --json > /dev/null 2>&1 && return
        kill -0 "$DAEMON_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "netevd did not start:" >&2; cat "$W/netevd.log" >&2; exit 1
}

stop_daemon() {
    kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID" || true; DAEMON_PID=
}

nrules() { "$BIN/netev" --bus "$ADDR" rules list --json | wc -l; }

echo "machine: $(nproc) cores, kernel $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >&2
echo "{\"meta\":{\"loop\":\"$LOOP\",\"pinned\":\"${LOAD_CPU:-no}\",\"date\":\"$(date -u +%FT%TZ)\",\"kernel\":\"$(uname -r)\",\"cores\":$(nproc),\"cpu\":\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\",\"rounds\":$ROUNDS,\"iterations\":$ITER,\"rules\":$NRULES}}" >> "$OUT"

measure_rules() {
    t0=$(date +%s.%N)
    "$BIN/netev" --bus "$ADDR" rules import "$W/rules.toml" >&2
    t1=$(date +%s.%N)
    have=$(nrules)
    [ "$have" -eq "$NRULES" ] || { echo "expected $NRULES rules, netevd has $have" >&2; exit 1; }
    echo "{\"round\":$r,\"import_secs\":$(awk "BEGIN { print $t1 - $t0 }"),\"rules_listed\":$have}" >> "$OUT"
    run_load "netevd-${NRULES}-rules" "$NRULES"
    # none of the rules may have matched the loop's connects
    hits=$("$BIN/netev" --bus "$ADDR" rules list --json | python3 -c 'import json,sys; print(sum(int(json.loads(l).get("hits",0) or 0) for l in sys.stdin))')
    mode=$(python3 -c 'import json,sys; print(",".join(h["mode"] for h in json.load(open(sys.argv[1]))["hooks"] if h["op"] == "connect"))' "$W/run/status.json")
    echo "{\"round\":$r,\"rule_hits\":$hits,\"connect_hook_mode\":\"$mode\"}" >> "$OUT"
    : > "$W/empty.toml"
    "$BIN/netev" --bus "$ADDR" rules import --replace "$W/empty.toml" > /dev/null
    have=$(nrules)
    [ "$have" -eq 0 ] || { echo "expected 0 rules after the replace, netevd has $have" >&2; exit 1; }
}

measure_none() {
    have=$(nrules)
    [ "$have" -eq 0 ] || { echo "expected 0 rules, netevd has $have" >&2; exit 1; }
    run_load netevd-no-rules 0
}

for r in $(seq "$ROUNDS"); do
    echo "[rules] round $r/$ROUNDS" >&2
    run_load bare
    start_daemon "$W/state"
    if [ $((r % 2)) -eq 1 ]; then measure_none; measure_rules; else measure_rules; measure_none; fi
    stop_daemon
done

# The rules are in force in the kernel: the same rules plus one that matches
# the loop make its connect fail.
start_daemon "$W/state"
"$BIN/netev" --bus "$ADDR" rules import "$W/rules.toml" > /dev/null
printf '[[rule]]\naction = "deny"\nops = ["connect"]\naddr = "127.0.0.1"\nexe = "%s"\n' "$BIN/netev-load" > "$W/deny.toml"
"$BIN/netev" --bus "$ADDR" rules import "$W/deny.toml" > /dev/null
if in_cgroup "$BIN/netev-load" loop "$LOOP" --iterations 10 > /dev/null 2>&1; then refused=false; else refused=true; fi
echo "{\"matching_rule_refuses\":$refused}" >> "$OUT"
stop_daemon

python3 - "$OUT" <<'PY'
import json, statistics, sys
runs, meta, imports, hits, bpf = {}, {}, [], [], {}
for line in open(sys.argv[1]):
    rec = json.loads(line)
    if "meta" in rec: meta = rec["meta"]
    elif "import_secs" in rec: imports.append(rec["import_secs"])
    elif "rule_hits" in rec: hits.append((rec["rule_hits"], rec["connect_hook_mode"]))
    elif "matching_rule_refuses" in rec: refuses = rec["matching_rule_refuses"]
    else:
        runs.setdefault(rec["config"], []).append(rec["result"]["ns_per_op"])
        bpf.setdefault(rec["config"], []).append(rec.get("bpf_ns_per_op", 0))
bare = runs["bare"]
none = runs["netevd-no-rules"]
rk = [k for k in runs if k.endswith("-rules") and k != "netevd-no-rules"][0]
withr = runs[rk]
med = statistics.median
spread = lambda v: f"{min(v):.0f}–{max(v):.0f} ({100 * (max(v) - min(v)) / med(v):.1f}%)"
print(f"Loop {meta.get('loop', 'tcp')}, pinned: {meta.get('pinned', 'no')}. Run {meta['date']}, kernel {meta['kernel']}, {meta['cores']} cores ({meta['cpu']}), "
      f"{meta['rounds']} rounds x {meta['iterations']} iterations; rule import {med(imports):.2f} s (median); "
      f"per round (rule hits during the loop, connect hook mode): {hits}; a rule matching the loop refuses it: {refuses}\n")
print("| config | median ns/op | min–max (spread) | / bare (paired median) | / netevd no rules (paired median) |")
print("|---|---|---|---|---|")
print(f"| bare | {med(bare):.0f} | {spread(bare)} | 1.00x | - |")
print(f"| netevd, no rules | {med(none):.0f} | {spread(none)} | {med([a / b for a, b in zip(none, bare)]):.3f}x | 1.000x |")
print(f"| netevd, {meta['rules']} rules | {med(withr):.0f} | {spread(withr)} | {med([a / b for a, b in zip(withr, bare)]):.3f}x | {med([a / b for a, b in zip(withr, none)]):.3f}x |")
bn, br = bpf["netevd-no-rules"], bpf[rk]
print(f"\nIn-kernel time (netevd's BPF programs, ns per loop iteration): no rules {med(bn):.0f} (min–max {min(bn):.0f}–{max(bn):.0f}), "
      f"{meta['rules']} rules {med(br):.0f} (min–max {min(br):.0f}–{max(br):.0f}); paired difference (rules − none) median "
      f"{med([a - b for a, b in zip(br, bn)]):.0f} ns, ratio {med([a / b for a, b in zip(br, bn)]):.3f}x.")
print("\nper round (ns/op): " + "; ".join(f"{i+1}: {b:.0f} / {n:.0f} / {w:.0f}" for i, (b, n, w) in enumerate(zip(bare, none, withr))))
PY
echo "raw results: $OUT" >&2
