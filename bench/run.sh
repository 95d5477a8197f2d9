#!/bin/sh
# Supervised mode (`netev run`) overhead: the same loops bare and under the
# supervisor, alternating, ROUNDS paired rounds each; medians at the end.
# Loops are netev-run's test program (release build):
#   connect-loop: TCP socket + connect (+ the in-process listener's accept) +
#                 close per op, loopback, blocking. Under netev run: 3
#                 intercepted calls per op (socket: decided then continued;
#                 connect: decided and performed by the supervisor on a pool
#                 thread, since a blocking TCP connect may wait; accept:
#                 decided, continued). The client closes with SO_LINGER
#                 {1, 0} (a reset): no TIME_WAIT is left on either side, so
#                 the ephemeral ports never fill up and round 7 costs what
#                 round 1 does (20 000 plain closes per round did fill them).
#   udp-connect-loop: UDP socket + connect(127.0.0.1) + close: 2 intercepted
#                 calls (socket continued, connect performed on the loop: a
#                 datagram connect never waits). No handshake, no peer
#                 thread: the supervisor's own cost per connect.
#   bind-loop:    socket + bind(127.0.0.1:0) + close per op: 2 intercepted
#                 calls (socket continued, bind performed).
#   syscall-loop: getppid(): not intercepted, must stay ~1.00x.
# "per call" = (supervised - bare) per op / intercepted calls per op.
# Usage: [BASE_NETEV=/path/to/previous/netev] bench/run.sh [ROUNDS] [N_CONNECT] [N_BIND] [N_SYSCALL] [N_UDP]
# BASE_NETEV: a previous build's release netev, run in the same rounds
# (bare, this build, previous) on this build's test program, so only the
# supervisor differs and a change is measured against what it replaces in
# one run, under the same drift. Rounds then carry base_ns= and the summary
# adds a table: the previous build's median, this build / previous, and the
# added ns per intercepted call of each.
set -eu
cd "$(dirname "$0")/.."
ROUNDS=${1:-7}
NC=${2:-5000}
NB=${3:-50000}
NS=${4:-20000000}
NU=${5:-50000}
cargo build --release -q -p netev -p netev-run
T=target/release/netev-run-testprog
NETEV=target/release/netev
BASE=${BASE_NETEV:-}
# fail before the first round, not with an empty base_ns= in every line
[ -z "$BASE" ] || [ -x "$BASE" ] || { echo "run.sh: BASE_NETEV=$BASE is not executable" >&2; exit 1; }
# no netevd to ask, no terminal prompts: every call is decided by the
# (empty) rules, as a program with a rules file that allows it would be
RULES=$(mktemp)
trap 'rm -f "$RULES"' EXIT
ns() { "$@" </dev/null | sed -n 's/^ns_per_op=//p'; }
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -r) $(nproc) vCPU; load: $(cut -d' ' -f1-3 /proc/loadavg)"
for loop in "connect-loop $NC 3" "udp-connect-loop $NU 2" "bind-loop $NB 2" "syscall-loop $NS 0"; do
    set -- $loop
    i=0
    while [ "$i" -lt "$ROUNDS" ]; do
        bare=$(ns "$T" "$1" "$2")
        sup=$(ns "$NETEV" --bus unix:path=/nonexistent run --rules "$RULES" -- "$T" "$1" "$2")
        # the field only when asked for, so a run without it prints as before
        base=
        [ -z "$BASE" ] || base=" base_ns=$(ns "$BASE" --bus unix:path=/nonexistent run --rules "$RULES" -- "$T" "$1" "$2")"
        echo "$1 calls_per_op=$3 round=$i bare_ns=$bare supervised_ns=$sup$base load=$(cut -d' ' -f1 /proc/loadavg)"
        i=$((i + 1))
    done
done | tee /dev/stderr | python3 -c '
import sys, statistics as st
rows = {}
for line in sys.stdin:
    if line.startswith("#"):
        continue
    f = dict(kv.split("=") for kv in line.split()[1:])
    rows.setdefault(line.split()[0], []).append(f)
print("loop             calls/op  bare ns/op  supervised ns/op  ratio  added ns/op  added ns/call")
for loop, rs in rows.items():
    bare = st.median(float(r["bare_ns"]) for r in rs)
    sup = st.median(float(r["supervised_ns"]) for r in rs)
    calls = int(rs[0]["calls_per_op"])
    per = "-" if calls == 0 else "%.0f" % ((sup - bare) / calls)
    print("%-16s %8d  %10.1f  %16.1f  %5.2f  %11.1f  %13s" % (loop, calls, bare, sup, sup / bare, sup - bare, per))
if all("base_ns" in r for rs in rows.values() for r in rs):
    print()
    print("loop             base ns/op  this ns/op  this/base  base added ns/call  this added ns/call")
    for loop, rs in rows.items():
        bare = st.median(float(r["bare_ns"]) for r in rs)
        sup = st.median(float(r["supervised_ns"]) for r in rs)
        base = st.median(float(r["base_ns"]) for r in rs)
        calls = int(rs[0]["calls_per_op"])
        bper, per = ("-", "-") if calls == 0 else ("%.0f" % ((base - bare) / calls), "%.0f" % ((sup - bare) / calls))
        print("%-16s %10.1f  %10.1f  %9.3f  %18s  %18s" % (loop, base, sup, sup / base, bper, per))
loads = [float(r["load"]) for rs in rows.values() for r in rs]
print("medians of %d paired rounds; 1-min load average %.2f-%.2f during the run" % (len(rs), min(loads), max(loads)))
'
