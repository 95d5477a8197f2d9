#!/usr/bin/env bash
# Kernel rule-decision overhead, side by side in one run: the TCP connect loop
# bare, under netevd with no rules, and under netevd with 1000 rules loaded.
#
#   sudo bench/rules.sh [ROUNDS] [ITERATIONS] [NRULES]
#
# Each round runs bare, netevd-no-rules (fresh, empty state dir) and
# netevd-1k-rules (fresh state dir, NRULES rules imported over D-Bus with
# `netev rules import`, count checked with `netev rules list --json`), in that
# order, so drift on a shared VM hits all three. Both netevd configs use the
# same flags (--bus on a private session dbus-daemon, no --print). The rules
# are realistic (per-program and machine-wide, shared ports and networks) but
# none matches the loop's own 127.0.0.1 connects: the loop measures the cost
# of deciding, not of denying.
# Raw results: bench/results/rules-<date>.jsonl; summary on stdout (markdown).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-5}
ITER=${2:-100000}
NRULES=${3:-1000}
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
trap cleanup EXIT

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

run_load() { # config -> appends a JSON line
    local config=$1 res
    res=$(in_cgroup "$BIN/netev-load" loop tcp --iterations "$ITER")
    echo "{\"round\":$r,\"config\":\"$config\",\"rules\":${2:-0},\"result\":$res}" >> "$OUT"
}

start_daemon() { # state dir
    rm -rf "$1" "$W/run"; mkdir -p "$1" "$W/run"
    "$BIN/netevd" --foreground --bus "$ADDR" --state-dir "$1" --run-dir "$W/run" --cgroup "$CG" \
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
echo "{\"meta\":{\"date\":\"$(date -u +%FT%TZ)\",\"kernel\":\"$(uname -r)\",\"cores\":$(nproc),\"cpu\":\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\",\"rounds\":$ROUNDS,\"iterations\":$ITER,\"rules\":$NRULES}}" >> "$OUT"

for r in $(seq "$ROUNDS"); do
    echo "[rules] round $r/$ROUNDS" >&2
    run_load bare

    start_daemon "$W/state-empty"
    have=$(nrules)
    [ "$have" -eq 0 ] || { echo "expected 0 rules, netevd has $have" >&2; exit 1; }
    run_load netevd-no-rules 0
    stop_daemon

    start_daemon "$W/state-rules"
    t0=$(date +%s.%N)
    "$BIN/netev" --bus "$ADDR" rules import "$W/rules.toml" >&2
    t1=$(date +%s.%N)
    have=$(nrules)
    [ "$have" -eq "$NRULES" ] || { echo "expected $NRULES rules, netevd has $have" >&2; exit 1; }
    echo "{\"round\":$r,\"import_secs\":$(awk "BEGIN { print $t1 - $t0 }"),\"rules_listed\":$have}" >> "$OUT"
    run_load "netevd-${NRULES}-rules" "$NRULES"
    # none of the rules may have matched the loop's connects
    hits=$("$BIN/netev" --bus "$ADDR" rules list --json | python3 -c 'import json,sys; print(sum(int(json.loads(l).get("hits",0) or 0) for l in sys.stdin))')
    # the rules are in force in the kernel: one more rule that does match the
    # loop makes its connect fail (checked after the measurement)
    mode=$(python3 -c 'import json,sys; print(",".join(h["mode"] for h in json.load(open(sys.argv[1]))["hooks"] if h["op"] == "connect"))' "$W/run/status.json")
    printf '[[rule]]\naction = "deny"\nops = ["connect"]\naddr = "127.0.0.1"\nexe = "%s"\n' "$BIN/netev-load" > "$W/deny.toml"
    "$BIN/netev" --bus "$ADDR" rules import "$W/deny.toml" > /dev/null
    if in_cgroup "$BIN/netev-load" loop tcp --iterations 10 > /dev/null 2>&1; then refused=false; else refused=true; fi
    echo "{\"round\":$r,\"rule_hits\":$hits,\"connect_hook_mode\":\"$mode\",\"matching_rule_refuses\":$refused}" >> "$OUT"
    stop_daemon
done

python3 - "$OUT" <<'PY'
import json, statistics, sys
runs, meta, imports, hits = {}, {}, [], []
for line in open(sys.argv[1]):
    rec = json.loads(line)
    if "meta" in rec: meta = rec["meta"]
    elif "import_secs" in rec: imports.append(rec["import_secs"])
    elif "rule_hits" in rec: hits.append((rec["rule_hits"], rec["connect_hook_mode"], rec["matching_rule_refuses"]))
    else: runs.setdefault(rec["config"], []).append(rec["result"]["ns_per_op"])
bare = runs["bare"]
none = runs["netevd-no-rules"]
rk = [k for k in runs if k.endswith("-rules") and k != "netevd-no-rules"][0]
withr = runs[rk]
med = statistics.median
spread = lambda v: f"{min(v):.0f}–{max(v):.0f} ({100 * (max(v) - min(v)) / med(v):.1f}%)"
print(f"Run {meta['date']}, kernel {meta['kernel']}, {meta['cores']} cores ({meta['cpu']}), "
      f"{meta['rounds']} rounds x {meta['iterations']} iterations; rule import {med(imports):.2f} s (median); "
      f"per round (rule hits during the loop, connect hook mode, a matching rule refuses): {hits}\n")
print("| config | median ns/op | min–max (spread) | / bare (paired median) | / netevd no rules (paired median) |")
print("|---|---|---|---|---|")
print(f"| bare | {med(bare):.0f} | {spread(bare)} | 1.00x | - |")
print(f"| netevd, no rules | {med(none):.0f} | {spread(none)} | {med([a / b for a, b in zip(none, bare)]):.3f}x | 1.000x |")
print(f"| netevd, {meta['rules']} rules | {med(withr):.0f} | {spread(withr)} | {med([a / b for a, b in zip(withr, bare)]):.3f}x | {med([a / b for a, b in zip(withr, none)]):.3f}x |")
print("\nper round (ns/op): " + "; ".join(f"{i+1}: {b:.0f} / {n:.0f} / {w:.0f}" for i, (b, n, w) in enumerate(zip(bare, none, withr))))
PY
echo "raw results: $OUT" >&2
