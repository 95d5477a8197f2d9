#!/usr/bin/env bash
# Sets up the machine, builds netev and runs the daemon in the foreground,
# printing every network syscall of every process on this machine as text.
# Stop with Ctrl-C: hooks are detached and the counters printed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "run.sh: netevd loads BPF programs and needs root: sudo $0 $*" >&2
    exit 1
fi
./scripts/setup.sh
cargo build --release --workspace --bins
echo "run.sh: starting netevd (machine-wide); try 'curl http://127.0.0.1/' or 'ssh localhost' in another terminal" >&2
exec ./target/release/netevd --foreground --print text "$@"
