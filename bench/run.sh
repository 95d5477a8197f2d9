#!/bin/sh
# Supervised mode (`netev run`) overhead: the same loops bare and under the
# supervisor, a few paired rounds each. Loops are netev-run's test program:
#   connect-loop: socket + connect (+ the in-process listener's accept) + close
#                 per op, loopback; under netev run each op is 3 round trips
#                 (socket: continue, connect: performed, accept: continue).
#   syscall-loop: getppid(): not watched, must stay ~1.00x.
# Usage: bench/run.sh [ROUNDS] [N_CONNECT] [N_SYSCALL]
set -eu
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
NC=${2:-20000}
NS=${3:-5000000}
cargo build --release -q -p netev -p netev-run
T=target/release/netev-run-testprog
NETEV=target/release/netev
ns() { "$@" | sed -n 's/^ns_per_op=//p'; }
for loop in "connect-loop $NC" "syscall-loop $NS"; do
    set -- $loop
    i=0
    while [ "$i" -lt "$ROUNDS" ]; do
        bare=$(ns "$T" "$1" "$2")
        sup=$(ns "$NETEV" run -- "$T" "$1" "$2")
        echo "$1 round=$i bare_ns=$bare supervised_ns=$sup" \
            "added_ns=$(echo "$sup - $bare" | bc) ratio=$(echo "scale=2; $sup / $bare" | bc)"
        i=$((i + 1))
    done
done
