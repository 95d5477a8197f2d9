#!/usr/bin/env bash
# Sets up the machine, builds netev, starts netevd machine-wide on D-Bus and
# runs `netev monitor` beside it: every network syscall on this machine, live,
# and stored in SQLite (/var/lib/netev/netev.db; `netev log`, `netev top`).
# Uses the system bus if one runs (installing netev's bus policy), otherwise a
# private bus configured like the system bus at /run/netev/bus.
# Ctrl-C stops the monitor, the daemon (hooks detached) and a private bus.
# Extra arguments go to `netev monitor` (e.g. --json, --op connect).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "run.sh: netevd loads BPF programs and needs root: sudo $0 $*" >&2
    exit 1
fi
./scripts/setup.sh
cargo build --release --workspace --bins
BIN=$PWD/target/release
RUN=/run/netev
mkdir -p "$RUN"

BUS_PID=
NETEVD_PID=
cleanup() {
    [ -n "$NETEVD_PID" ] && kill "$NETEVD_PID" 2>/dev/null && wait "$NETEVD_PID" 2>/dev/null
    [ -n "$BUS_PID" ] && kill "$BUS_PID" 2>/dev/null && wait "$BUS_PID" 2>/dev/null
    true
}
trap cleanup EXIT INT TERM

if [ -S /run/dbus/system_bus_socket ]; then
    install -m 644 dist/dbus/org.netev.Daemon1.conf /etc/dbus-1/system.d/
    dbus-send --system --type=method_call --dest=org.freedesktop.DBus / \
        org.freedesktop.DBus.ReloadConfig >/dev/null 2>&1 || true
    BUS=system
else
    sed -e "s|@LISTEN@|unix:path=$RUN/bus|" \
        -e "s|@POLICY@|$PWD/dist/dbus/org.netev.Daemon1.conf|" \
        dist/dbus/private-system-bus.conf.in > "$RUN/bus.conf"
    rm -f "$RUN/bus"
    dbus-daemon --config-file="$RUN/bus.conf" --nofork --print-address=1 > "$RUN/bus.address" &
    BUS_PID=$!
    for _ in $(seq 100); do [ -s "$RUN/bus.address" ] && break; sleep 0.05; done
    BUS=$(head -1 "$RUN/bus.address")
    echo "run.sh: no system bus running; private bus at $BUS" >&2
fi

rm -f "$RUN/status.json"
"$BIN/netevd" --foreground --bus "$BUS" --run-dir "$RUN" 2>>"$RUN/netevd.log" &
NETEVD_PID=$!
for _ in $(seq 600); do
    [ -f "$RUN/status.json" ] && break
    kill -0 "$NETEVD_PID" 2>/dev/null || { echo "run.sh: netevd failed:" >&2; tail -5 "$RUN/netevd.log" >&2; exit 1; }
    sleep 0.05
done
echo "run.sh: netevd capturing machine-wide (log: $RUN/netevd.log); try 'curl http://127.0.0.1/' in another terminal" >&2
echo "run.sh: from another terminal: $BIN/netev --bus '$BUS' status" >&2
echo "run.sh: stored events (SQLite /var/lib/netev/netev.db): $BIN/netev --bus '$BUS' log --since 5m; $BIN/netev --bus '$BUS' top" >&2
"$BIN/netev" --bus "$BUS" monitor "$@" || true
