#!/usr/bin/env bash
# Saves screenshots of netev-gtk under docs/img/: a prompt as a notification
# (dunst), the "Create a rule" dialog opened from it, and the Security
# console (rules, live events). Everything runs privately: Xvfb, a session
# bus, dunst, a system-style bus, and netevd attached to a throw-away cgroup;
# all of it is stopped on exit. Needs root (netevd loads BPF programs).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
[ "$(id -u)" -eq 0 ] || { echo "screenshots.sh: must run as root (netevd loads BPF programs)" >&2; exit 1; }
./scripts/setup.sh >/dev/null
cargo build -q -p netevd -p netev -p netev-gtk
BIN=$REPO/target/debug
OUT=$REPO/docs/img
mkdir -p "$OUT"

TMP=$(mktemp -d)
PIDS=()
CG=""
cleanup() {
    for ((i=${#PIDS[@]}-1; i>=0; i--)); do kill "${PIDS[$i]}" 2>/dev/null || true; done
    sleep 0.5
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    if [ -n "$CG" ] && [ -d "$CG" ]; then
        for p in $(cat "$CG/cgroup.procs" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
        sleep 0.2; rmdir "$CG" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

wait_for() { # what, seconds, command...
    local what=$1 secs=$2; shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || { echo "screenshots.sh: waited ${secs}s in vain for $what" >&2; exit 1; }
        sleep 0.2
    done
}

# X server
Xvfb -displayfd 3 -screen 0 1280x860x24 -nolisten tcp 3>"$TMP/display" 2>"$TMP/xvfb.log" &
PIDS+=($!)
wait_for "Xvfb" 20 test -s "$TMP/display"
export DISPLAY=":$(cat "$TMP/display")"
export GSK_RENDERER=cairo NO_AT_BRIDGE=1 GTK_A11Y=none

# session bus (no service activation: nothing starts behind our back)
cat >"$TMP/session.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:path=$TMP/session</listen><auth>EXTERNAL</auth>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy></busconfig>
EOF
dbus-daemon --config-file="$TMP/session.conf" --nofork --print-address=1 >"$TMP/session.addr" &
PIDS+=($!)
wait_for "the session bus" 20 test -s "$TMP/session.addr"
export DBUS_SESSION_BUS_ADDRESS=$(head -1 "$TMP/session.addr")

# notification server
cat >"$TMP/dunstrc" <<EOF
[global]
    width = 420
    height = 200
    origin = top-right
    offset = 12x12
    font = DejaVu Sans 10
    frame_width = 2
    frame_color = "#555555"
    padding = 10
    horizontal_padding = 10
    markup = full
    format = "<b>%s</b>\n%b"
    show_indicators = yes
    dmenu = $TMP/dmenu
[urgency_critical]
    background = "#fff8e1"
    foreground = "#222222"
    frame_color = "#d08000"
    timeout = 0
EOF
# dunst's context menu asks "dmenu"; this one picks the line named in $TMP/pick
printf '#!/bin/sh\ncat > %s/dmenu.in\ngrep -m1 -- "$(cat %s/pick)" %s/dmenu.in\n' "$TMP" "$TMP" "$TMP" >"$TMP/dmenu"
chmod +x "$TMP/dmenu"
dunst -config "$TMP/dunstrc" 2>"$TMP/dunst.log" &
PIDS+=($!)
wait_for "dunst" 20 dunstctl is-paused

# system-style bus with netev's policy, and netevd on a throw-away cgroup
sed -e "s|@LISTEN@|unix:path=$TMP/system|" -e "s|@POLICY@|$REPO/dist/dbus/org.netev.Daemon1.conf|" \
    dist/dbus/private-system-bus.conf.in >"$TMP/system.conf"
dbus-daemon --config-file="$TMP/system.conf" --nofork --print-address=1 >"$TMP/system.addr" &
PIDS+=($!)
wait_for "the system-style bus" 20 test -s "$TMP/system.addr"
BUS=$(head -1 "$TMP/system.addr")
CG2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
CG=$CG2/netev-screenshots-$$
mkdir "$CG"
"$BIN/netevd" --foreground --cgroup "$CG" --bus "$BUS" --run-dir "$TMP/run" --state-dir "$TMP/state" \
    --store none --prompt-timeout 600 2>"$TMP/netevd.log" &
PIDS+=($!)
wait_for "netevd" 60 test -e "$TMP/run/status.json"

netev() { "$BIN/netev" --bus "$BUS" "$@"; }
netev rules add allow --op connect --exe /usr/bin/ssh --port 22 --priority 10 --comment "ssh anywhere" >/dev/null
netev rules add deny --op connect --op sendmsg --addr 10.0.0.0/8 --comment "no intranet" >/dev/null
netev rules add deny --op bind --port 1-1023 --duration 1h >/dev/null
netev rules add ask --op connect --exe /usr/bin/python3.11 --port 8443 --comment "ask before talking to the staging server" >/dev/null
netev rules add allow --op connect --op sendmsg --proto udp --port 53 --disabled --comment "DNS (off for now)" >/dev/null

"$BIN/netev-gtk" --bus "$BUS" --console --no-tray --state-file "$TMP/gtk.json" 2>"$TMP/gtk.log" &
PIDS+=($!)
wait_for "the console" 30 grep -q '"running":true' "$TMP/gtk.json"

# some traffic in the cgroup (live events, chart), and one connect that asks
in_cg() { sh -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' sh "$CG" "$@"; }
in_cg /usr/bin/python3.11 -c '
import socket, time
for i in range(40):
    for port in (8080, 22, 5432):
        s = socket.socket(); s.settimeout(0.2)
        try: s.connect(("127.0.0.1", port))
        except OSError: pass
        s.close()
    time.sleep(0.05)
s = socket.socket()
try: s.connect(("127.0.0.1", 8443))
except OSError as e: print("connect to 8443:", e.strerror)
' || true
wait_for "the notification" 30 sh -c '[ "$(dunstctl count displayed)" -ge 1 ]'
sleep 1
import -window root -crop 470x130+800+0 +repage "$OUT/notification.png"

# the console, rules page and live events page (notifications held meanwhile)
dunstctl set-paused true
WIN=$(xdotool search --name "Security console" | head -1)
xdotool windowmove "$WIN" 0 0 windowsize "$WIN" 1100 640 || true
sleep 2
import -window "$WIN" "$OUT/console-rules.png"
xdotool mousemove 126 58 click 1   # the "Live events" tab
sleep 2
import -window "$WIN" "$OUT/console-events.png"
dunstctl set-paused false
sleep 1

# Process… from the notification opens the dialog
echo "Process" >"$TMP/pick"
dunstctl context
wait_for "the dialog" 20 xdotool search --name "Create a rule"
DLG=$(xdotool search --name "Create a rule" | head -1)
xdotool windowmove "$DLG" 300 120 || true
sleep 1
import -window "$DLG" "$OUT/dialog.png"
echo "screenshots.sh: saved $(ls "$OUT"/*.png | tr '\n' ' ')"
