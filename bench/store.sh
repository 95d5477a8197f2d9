#!/usr/bin/env bash
# The event store: rows/s into SQLite and PostgreSQL, from the store alone
# and from the live pipeline, with netevd's CPU and memory; query latency of
# `netev log` and `netev top` on a 10-million-row table.
#
#   sudo bench/store.sh [ROUNDS] [LIVE_ITERATIONS] [FILL_ROWS]
#   PHASES="alone live queries" (default: all three, in that order)
#   LOOPS="udp udp-connect"     the live phase's load loops (default: both)
#   ALONE_ROUNDS=5              store-alone rounds (ROUNDS: live rounds)
#   ALONE_BATCHES=100           batches of 10,000 rows per store-alone run
#   QUERY_REPEAT=7              timed runs of each query
#   COLD=1                      one run of each query after dropping the page
#                               cache (and restarting PostgreSQL) first
#   NETEV_BENCH_NO_BUILD=1      use target/release as it is
#   BASE_BIN=DIR                the alone phase also runs DIR/netev-storebench
#                               (another build, e.g. the last release) on the
#                               same streams, in the same rotation
#
# Phases (PIN: CPU 0 for netevd, CPU 1 for the load or the bench client;
# the PostgreSQL server is not pinned and runs wherever there is room):
#
# - alone: `netev-storebench insert`, ALONE_BATCHES batches of 10,000
#   events per run into a fresh SQLite file (on disk, WAL) and a fresh
#   PostgreSQL database: a host's varied stream (30 programs, 10,000
#   addresses) and the live phase's flood (one program, one destination);
#   plus PLATFORM.md's SQLite reference case, to calibrate the machine. The
#   five in rotating order from round to round. The ceiling of what netevd
#   could store.
# - live: netevd (release, --no-coalesce, --bus none) attached to a cgroup of
#   its own, storing into a fresh SQLite file, a fresh PostgreSQL database, or
#   nowhere (--store none), and one `netev-load loop LOOP` in that cgroup;
#   the three stores in rotating order from round to round. The counters in
#   <run-dir>/status.json (written each second) are sampled with the file's
#   mtime, so committed rows/s are measured over the load itself.
# - queries: FILL_ROWS events spread over the last 24 h into a SQLite file
#   and a PostgreSQL database through the store's insert (the count blocks
#   for `top` written and merged too), then `netev log --db … --exe X --since 1h` and `netev top
#   --db … --by exe|dest --since 1h`, timed as whole commands (interleaved)
#   and as queries alone (netev-storebench query, one open connection).
#
# The private PostgreSQL server is set up as crates/netev-testsupport/src/
# pgserver.rs does (initdb in a temp dir, run as the postgres user, trust
# auth, fsync = off, synchronous_commit = on, full_page_writes = off,
# shared_buffers = 16MB); never the machine's own cluster.
# Raw results: bench/results/store-<date>.jsonl; summary on stdout (markdown).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-3}
ALONE_ROUNDS=${ALONE_ROUNDS:-5}
LIVE_ITER=${2:-4000000}
FILL_ROWS=${3:-10000000}
PHASES=${PHASES:-alone live queries}
LOOPS=${LOOPS:-udp udp-connect}
ALONE_BATCHES=${ALONE_BATCHES:-100}
QUERY_REPEAT=${QUERY_REPEAT:-7}
COLD=${COLD:-1}
[ "$(id -u)" -eq 0 ] || { echo "store.sh: needs root (loads BPF, makes a cgroup, runs PostgreSQL as postgres)" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "store.sh: needs 2 CPUs (the daemon and the load each get one)" >&2; exit 1; }
[ -n "${NETEV_BENCH_NO_BUILD:-}" ] || cargo build --release -q --workspace --bins

BIN=$PWD/target/release
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$PGBIN/pg_ctl" ] || { echo "store.sh: PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }
CG2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
OUT=bench/results/store-$(date -u +%Y%m%dT%H%M%SZ).jsonl
HZ=$(getconf CLK_TCK)

# A run that was killed outright (no trap) leaves its PostgreSQL server and
# cgroup behind; the next run removes them. Each run has its own work dir
# (/tmp/netev-bench-store.XXXXXX, with the owning pid in it) and cgroup
# (netev-bench-store.XXXXXX, the same suffix).
stop_pg() { # data dir
    [ -f "$1/postmaster.pid" ] || return 0
    (cd / && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$1" -m immediate -w stop > /dev/null 2>&1) ||
        kill -KILL "$(head -1 "$1/postmaster.pid")" 2> /dev/null || true
}
remove_cgroup() { # dir; the processes in it are load generators the run started
    [ -d "$1" ] || return 0
    while read -r p; do kill -KILL "$p" 2> /dev/null || true; done < "$1/cgroup.procs"
    for _ in $(seq 50); do [ -s "$1/cgroup.procs" ] || break; sleep 0.1; done
    rmdir "$1" 2> /dev/null || true
}
stop_stale() { # dir: a dead run's daemon and sampler, by their pids (their command lines name the dir)
    local p pids
    pids=$(pgrep -f -- "$1/") || return 0
    for p in $pids; do kill -TERM "$p" 2> /dev/null || true; done
    local alive=1
    for _ in $(seq 100); do
        alive=0
        for p in $pids; do kill -0 "$p" 2> /dev/null && alive=1; done
        [ "$alive" = 1 ] || return 0
        sleep 0.1
    done
    for p in $pids; do kill -KILL "$p" 2> /dev/null || true; done
}
for old in /tmp/netev-bench-store.*; do
    [ -d "$old" ] || continue
    owner=$(cat "$old/owner" 2> /dev/null || echo 0)
    if [ "$owner" -gt 0 ] && kill -0 "$owner" 2> /dev/null; then continue; fi
    echo "store.sh: removing what a killed run left in $old" >&2
    stop_pg "$old/pg/data"
    remove_cgroup "$CG2/netev-bench-store.${old##*.}"
    stop_stale "$old"
    rm -rf "$old"
done

W=$(mktemp -d /tmp/netev-bench-store.XXXXXX)
echo $$ > "$W/owner"
chmod 755 "$W"
CG=$CG2/netev-bench-store.${W##*.}
mkdir -p bench/results "$CG"
: > "$OUT"

DAEMON_PID=
SAMPLER_PID=
CHILD_PID=
cleanup() {
    if [ -n "$CHILD_PID" ]; then kill "$CHILD_PID" 2> /dev/null || true; wait "$CHILD_PID" 2> /dev/null || true; fi
    if [ -n "$SAMPLER_PID" ]; then kill "$SAMPLER_PID" 2> /dev/null || true; wait "$SAMPLER_PID" 2> /dev/null || true; fi
    if [ -n "$DAEMON_PID" ]; then kill "$DAEMON_PID" 2> /dev/null || true; wait "$DAEMON_PID" 2> /dev/null || true; fi
    stop_pg "$W/pg/data"
    remove_cgroup "$CG"
    rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PIN_DAEMON="taskset -c 0"
PIN_LOAD="taskset -c 1"

# Runs a long command in the background and waits for it, so that INT and
# TERM stop the script at once (bash runs traps only between commands, and
# `wait` is interrupted by them; cleanup then stops the child).
run() {
    "$@" &
    CHILD_PID=$!
    local rc=0
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=
    return "$rc"
}

# --- the private PostgreSQL server --------------------------------------------
mkdir -p "$W/pg"
chown postgres:postgres "$W/pg"
(cd / && runuser -u postgres -- "$PGBIN/initdb" -D "$W/pg/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 -N > /dev/null)
cat >> "$W/pg/data/postgresql.conf" << EOF

# netev bench: private, throwaway (the settings of netev-store's test server)
listen_addresses = '127.0.0.1'
unix_socket_directories = '$W/pg'
fsync = off
synchronous_commit = on
full_page_writes = off
shared_buffers = 16MB
max_connections = 40
EOF
PGPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
pg_start() {
    (cd / && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$W/pg/data" -l "$W/pg/server.log" -w -t 60 -o "-p $PGPORT" start > /dev/null) ||
        { echo "PostgreSQL did not start:" >&2; cat "$W/pg/server.log" >&2; exit 1; }
}
pg_start
psql_() { PGOPTIONS="-c client_min_messages=warning" "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$W/pg" -p "$PGPORT" -U postgres -d "$1" -c "$2"; }
pg_url() { echo "postgres://postgres@127.0.0.1:$PGPORT/$1"; }
fresh_pg() { psql_ postgres "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)"; psql_ postgres "CREATE DATABASE \"$1\""; }
# CPU of the whole server: the postmaster, its live children, and (cutime,
# cstime) the children it has already reaped.
# Read only when no client has just disconnected (a backend reaped between
# the two reads would be counted nowhere): callers wait half a second first.
pg_cpu() {
    local pm
    pm=$(head -1 "$W/pg/data/postmaster.pid")
    { awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pm/stat"
      for c in $(cat "/proc/$pm/task/$pm/children"); do awk '{ print $14 + $15 }' "/proc/$c/stat" 2> /dev/null || true; done
    } | awk -v hz="$HZ" '{ t += $1 } END { print t / hz }'
}
ticks() { awk -v hz="$HZ" '{ print ($14 + $15) / hz }' "/proc/$1/stat"; }
hwm() { awk '/VmHWM/ { print $2 }' "/proc/$1/status"; }
now() { echo "$EPOCHREALTIME"; }
sub() { awk "BEGIN { print $1 - $2 }"; }

CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
DISK=$(df --output=source,fstype "$W" | tail -1 | xargs)
echo "{\"meta\":{\"date\":\"$(date -u +%FT%TZ)\",\"kernel\":\"$(uname -r)\",\"cores\":$(nproc),\"cpu\":\"$CPU\",\"mem_kb\":$(awk '/MemTotal/ { print $2 }' /proc/meminfo),\"disk\":\"$DISK\",\"postgres\":\"$("$PGBIN/postgres" --version)\",\"pg_settings\":\"$(psql_ postgres "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'wal_level', 'max_wal_size')")\",\"sqlite\":\"WAL, synchronous=NORMAL (netev-store)\",\"rounds\":$ROUNDS,\"alone_rounds\":$ALONE_ROUNDS,\"live_iterations\":$LIVE_ITER,\"loops\":\"$LOOPS\",\"fill_rows\":$FILL_ROWS,\"alone_batches\":$ALONE_BATCHES,\"query_repeat\":$QUERY_REPEAT,\"phases\":\"$PHASES\",\"base_bin\":\"${BASE_BIN:-}\"}}" >> "$OUT"
echo "machine: $(nproc) cores ($CPU), kernel $(uname -r), $("$PGBIN/postgres" --version), work dir on $DISK" >&2

# --- 1. the store alone --------------------------------------------------------
alone_one() { # round engine shape [build: this|base]
    local target cpu0 cpu1 res build=${4:-this} bench=$BIN/netev-storebench
    [ "$build" = this ] || bench=$BASE_BIN/netev-storebench
    rm -f "$W"/alone.db*
    case $2 in
        sqlite) target=$W/alone.db ;;
        postgres) fresh_pg alone; target=$(pg_url alone) ;;
    esac
    sync
    cpu0=$(pg_cpu)
    if [ "$2" = reference ]; then
        run $PIN_LOAD "$BIN/netev-storebench" reference --db "$W/alone.db" --rows $((ALONE_BATCHES * 10000)) > "$W/res"
    else
        run $PIN_LOAD "$bench" insert --db "$target" --batches "$ALONE_BATCHES" --shape "$3" > "$W/res"
    fi
    res=$(cat "$W/res")
    sleep 0.5
    cpu1=$(pg_cpu)
    echo "{\"phase\":\"alone\",\"round\":$1,\"engine\":\"$2\",\"shape\":\"$3\",\"build\":\"$build\",\"pg_server_cpu_secs\":$(sub "$cpu1" "$cpu0"),\"result\":$res}" >> "$OUT"
}

if [[ " $PHASES " == *" alone "* ]]; then
    # Our store with a host's varied stream and with the live phase's flood
    # shape, and PLATFORM.md's reference case; in rotating order.
    configs=("sqlite varied" "postgres varied" "sqlite flood" "postgres flood" "reference -")
    if [ -n "${BASE_BIN:-}" ]; then
        [ -x "$BASE_BIN/netev-storebench" ] || { echo "store.sh: no $BASE_BIN/netev-storebench" >&2; exit 1; }
        configs+=("sqlite varied base" "postgres varied base" "sqlite flood base" "postgres flood base")
    fi
    n=${#configs[@]}
    for r in $(seq "$ALONE_ROUNDS"); do
        echo "[store] alone, round $r/$ALONE_ROUNDS" >&2
        for i in $(seq 0 $((n - 1))); do
            # shellcheck disable=SC2086 # words: engine, shape[, build]
            alone_one "$r" ${configs[$(((i + r - 1) % n))]}
        done
    done
    rm -f "$W"/alone.db*
    psql_ postgres "DROP DATABASE IF EXISTS alone WITH (FORCE)"
fi

# --- 2. the live pipeline ------------------------------------------------------
# Samples netevd's counters each time status.json changes: its mtime (when
# netevd wrote it) and the counters, one JSON line each.
sampler() { # run dir, out file
    exec python3 - "$1" "$2" << 'PY'
import json, os, sys, time
run, out = sys.argv[1], sys.argv[2]
path, last = os.path.join(run, "status.json"), None
with open(out, "w") as f:
    while True:
        try:
            st = os.stat(path)
            if st.st_mtime_ns != last:
                c = json.load(open(path))["counters"]
                last = st.st_mtime_ns
                f.write(json.dumps({"t": st.st_mtime_ns / 1e9, **c}) + "\n")
                f.flush()
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
PY
}

counters() { # -> "events stored store_lost" from status.json (pretty-printed: one key a line)
    awk -F: '{ gsub(/[ ",]/, "") } $1 == "events" { e = $2 } $1 == "stored" { s = $2 } $1 == "store_lost" { l = $2 }
             END { print e + 0, s + 0, l + 0 }' "$W/run/status.json"
}

live_one() { # round store loop
    local spec target t0 t1 t2 c0 c1 p0 p1 load rss prev stable ev st lost
    rm -rf "$W/state" "$W/run" "$W"/live.db*
    mkdir -p "$W/state" "$W/run"
    case $2 in
        none) spec=none ;;
        sqlite) spec=sqlite:$W/live.db ;;
        postgres) fresh_pg live; spec=$(pg_url live) ;;
    esac
    $PIN_DAEMON "$BIN/netevd" --foreground --no-coalesce --bus none --cgroup "$CG" --ringbuf-size 16M \
        --state-dir "$W/state" --run-dir "$W/run" --store "$spec" > /dev/null 2> "$W/netevd.log" &
    DAEMON_PID=$!
    for _ in $(seq 600); do
        [ -f "$W/run/status.json" ] && grep -q '"backend"' "$W/run/status.json" && break
        kill -0 "$DAEMON_PID" 2> /dev/null || break
        sleep 0.05
    done
    if ! [ -f "$W/run/status.json" ]; then echo "netevd did not start:" >&2; cat "$W/netevd.log" >&2; exit 1; fi
    if [ "$2" != none ] && ! grep -q 'events stored in' "$W/run/status.json"; then
        sleep 1.2
        grep -q 'events stored in' "$W/run/status.json" || { echo "netevd's store is failing:" >&2; cat "$W/run/status.json" "$W/netevd.log" >&2; exit 1; }
    fi
    sampler "$W/run" "$W/samples" &
    SAMPLER_PID=$!
    sleep 1.5 # a sample or two before the load
    c0=$(ticks "$DAEMON_PID"); p0=$(pg_cpu); t0=$(now)
    run sh -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' sh "$CG" \
        $PIN_LOAD "$BIN/netev-load" loop "$3" --iterations "$LIVE_ITER" > "$W/load"
    t1=$(now)
    load=$(cat "$W/load")
    # until every event is accounted for (stored or counted lost), or the
    # counters stop moving for 3 s (60 s at most)
    prev=; stable=0
    for _ in $(seq 240); do
        sleep 0.25
        read -r ev st lost < <(counters)
        if [ "$2" != none ] && [ $((st + lost)) -ge "$ev" ] && [ "$ev" -ge "$LIVE_ITER" ]; then break; fi
        if [ "$ev $st $lost" = "$prev" ]; then stable=$((stable + 1)); else stable=0; fi
        [ "$stable" -ge 12 ] && break
        prev="$ev $st $lost"
    done
    t2=$(now)
    c1=$(ticks "$DAEMON_PID"); p1=$(pg_cpu); rss=$(hwm "$DAEMON_PID")
    sleep 1.1 # one more status.json
    kill "$SAMPLER_PID"; wait "$SAMPLER_PID" 2> /dev/null || true; SAMPLER_PID=
    kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID" || true; DAEMON_PID=
    final=$(grep "final counters" "$W/netevd.log" | tail -1)
    f() { echo "$final" | sed -n "s/.* $1=\([0-9]*\).*/\1/p"; }
    python3 - "$W/samples" "$1" "$2" "$3" "$load" "$t0" "$t1" "$t2" "$(sub "$c1" "$c0")" "$rss" "$(sub "$p1" "$p0")" \
        "$(f events)" "$(f dropped)" "$(f stored)" "$(f store_lost)" << 'PY' >> "$OUT"
import json, sys
a = sys.argv
samples = [json.loads(l) for l in open(a[1]) if l.strip()]
num = lambda s: int(s) if s else None
print(json.dumps({"phase": "live", "round": int(a[2]), "store": a[3], "loop": a[4], "load": json.loads(a[5]),
    "t_load_start": float(a[6]), "t_load_end": float(a[7]), "t_drained": float(a[8]),
    "netevd_cpu_secs": float(a[9]), "netevd_hwm_kb": int(a[10]), "pg_server_cpu_secs": float(a[11]),
    "final": {"events": num(a[12]), "dropped": num(a[13]), "stored": num(a[14]), "store_lost": num(a[15])},
    "samples": samples}))
PY
}

if [[ " $PHASES " == *" live "* ]]; then
    stores=(none sqlite postgres)
    for r in $(seq "$ROUNDS"); do
        for i in 0 1 2; do
            s=${stores[$(((i + r - 1) % 3))]}
            for loop in $LOOPS; do
                echo "[store] live, round $r/$ROUNDS: --store $s, loop $loop" >&2
                live_one "$r" "$s" "$loop"
            done
        done
    done
    rm -f "$W"/live.db*
    psql_ postgres "DROP DATABASE IF EXISTS live WITH (FORCE)"
fi

# --- 3. queries on FILL_ROWS rows ------------------------------------------------
# The programs' popularity falls as 1/rank (netev-storebench's events.rs):
# the busiest (a quarter of all rows), the seventh and the last (0.8%).
EXES=(/usr/lib/firefox-esr/firefox-esr /usr/bin/curl /usr/bin/rsync)
QDB_SQLITE=$W/query.db
time_cmd() { # label engine run -> appends a JSON line; the command's output goes to /dev/null
    local t0 t1 rc=0 label=$1 engine=$2 run=$3
    shift 3
    t0=$(now)
    $PIN_LOAD "$@" > "$W/qout" 2> "$W/qerr" || rc=$?
    t1=$(now)
    [ "$rc" -eq 0 ] || { echo "failed ($rc): $*" >&2; cat "$W/qerr" >&2; exit 1; }
    echo "{\"phase\":\"query-command\",\"engine\":\"$engine\",\"query\":\"$label\",\"run\":\"$run\",\"secs\":$(sub "$t1" "$t0"),\"lines\":$(wc -l < "$W/qout")}" >> "$OUT"
}
commands() { # engine db run
    local e
    for e in "${EXES[@]}"; do
        time_cmd "log --exe $e --since 1h" "$1" "$3" "$BIN/netev" log --db "$2" --exe "$e" --since 1h
    done
    time_cmd "top --by exe --since 1h" "$1" "$3" "$BIN/netev" top --db "$2" --by exe --since 1h
    time_cmd "top --by dest --since 1h" "$1" "$3" "$BIN/netev" top --db "$2" --by dest --since 1h
    time_cmd "top --by port --since 1h" "$1" "$3" "$BIN/netev" top --db "$2" --by port --since 1h
    # the whole day: every count block of the table
    time_cmd "top --by dest --since 24h" "$1" "$3" "$BIN/netev" top --db "$2" --by dest --since 24h
}

if [[ " $PHASES " == *" queries "* ]]; then
    echo "[store] queries: filling SQLite with $FILL_ROWS rows" >&2
    rm -f "$QDB_SQLITE"*
    fresh_pg query
    sync
    run $PIN_LOAD "$BIN/netev-storebench" fill --db "$QDB_SQLITE" --rows "$FILL_ROWS" > "$W/fill"
    sed 's/^/{"phase":"fill","result":/; s/$/}/' "$W/fill" >> "$OUT"
    echo "[store] queries: filling PostgreSQL with $FILL_ROWS rows" >&2
    sync
    p0=$(pg_cpu)
    run $PIN_LOAD "$BIN/netev-storebench" fill --db "$(pg_url query)" --rows "$FILL_ROWS" > "$W/fill"
    sed 's/^/{"phase":"fill","result":/; s/$/}/' "$W/fill" >> "$OUT"
    sleep 0.5
    p1=$(pg_cpu)
    # What autovacuum does by itself a little after such a load (insert-only
    # tables are vacuumed and analyzed past a threshold); done now so that it
    # does not run in the middle of the measurements.
    t0=$(now)
    psql_ query "VACUUM (ANALYZE) events"
    psql_ query "VACUUM (ANALYZE) count_blocks"
    t1=$(now)
    sqlite_bytes=$(stat -c %s "$QDB_SQLITE")
    sqlite_wal=$(stat -c %s "$QDB_SQLITE-wal" 2> /dev/null || echo 0)
    pg_sizes=$(psql_ query "SELECT json_build_object('database', pg_database_size('query'), 'events_table', pg_relation_size('events'), 'events_indexes', pg_indexes_size('events'), 'counts_total', pg_total_relation_size('count_blocks'))")
    counts=$(sqlite3 "$QDB_SQLITE" "SELECT json_group_object(grouping, json_object('blocks', n, 'bytes', b)) FROM (SELECT grouping, COUNT(*) AS n, SUM(LENGTH(counts)) AS b FROM count_blocks GROUP BY grouping)")
    echo "{\"phase\":\"sizes\",\"pg_fill_server_cpu_secs\":$(sub "$p1" "$p0"),\"pg_vacuum_analyze_secs\":$(sub "$t1" "$t0"),\"sqlite_bytes\":$sqlite_bytes,\"sqlite_wal_bytes\":$sqlite_wal,\"postgres\":$pg_sizes,\"count_blocks\":$counts}" >> "$OUT"

    # The plans, with the store's SQL as crates/netev-store/src/{sqlite,pg}.rs
    # write it (kept in the raw file, for reading the figures).
    since_ns=$(python3 -c 'import time; print(int((time.time() - 3600) * 1e9))')
    since_min=$((since_ns / 60000000000))
    cols="id, host, ts_ns, pid, tid, ppid, uid, gid, user_name, comm, exe, cmdline, op, family, sock_type, proto, laddr, lport, raddr, rport, ret, verdict, rule, count"
    plans() { # label SQL -> a JSON line per engine
        sqlite3 "$QDB_SQLITE" "EXPLAIN QUERY PLAN $2" | plan_line sqlite "$1"
        psql_ query "EXPLAIN (ANALYZE, BUFFERS) $2" | plan_line postgres "$1"
    }
    plan_line() { # engine label < plan
        python3 -c 'import json, sys; print(json.dumps({"phase": "plan", "engine": sys.argv[1], "query": sys.argv[2], "plan": sys.stdin.read()}))' "$@" >> "$OUT"
    }
    for e in "${EXES[@]}"; do
        plans "log --exe $e" "SELECT $cols FROM events WHERE ts_ns >= $since_ns AND exe = '$e' ORDER BY ts_ns DESC, id DESC LIMIT 100"
    done
    for by in exe dest; do
        plans "top --by $by" "SELECT id, counts FROM count_blocks WHERE grouping = '$by' AND minute >= $since_min"
    done

    if [ "$COLD" = 1 ]; then
        # Right after a boot: nothing in the page cache (nor in PostgreSQL's
        # buffers). One run of each command, each after a drop.
        echo "[store] queries: cold runs" >&2
        cold() { # as time_cmd
            sync; echo 3 > /proc/sys/vm/drop_caches
            if [ "$2" = postgres ]; then
                (cd / && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$W/pg/data" -m fast -w stop > /dev/null)
                pg_start
            fi
            time_cmd "$@"
        }
        for engine in sqlite postgres; do
            db=$QDB_SQLITE; [ "$engine" = postgres ] && db=$(pg_url query)
            for e in "${EXES[@]}"; do
                cold "log --exe $e --since 1h" "$engine" cold "$BIN/netev" log --db "$db" --exe "$e" --since 1h
            done
            cold "top --by exe --since 1h" "$engine" cold "$BIN/netev" top --db "$db" --by exe --since 1h
            cold "top --by dest --since 1h" "$engine" cold "$BIN/netev" top --db "$db" --by dest --since 1h
        done
    fi
    echo "[store] queries: $QUERY_REPEAT warm runs of each command, interleaved" >&2
    commands sqlite "$QDB_SQLITE" warmup
    commands postgres "$(pg_url query)" warmup
    for i in $(seq "$QUERY_REPEAT"); do
        commands sqlite "$QDB_SQLITE" "$i"
        commands postgres "$(pg_url query)" "$i"
    done
    echo "[store] queries: the queries alone" >&2
    for db in "$QDB_SQLITE" "$(pg_url query)"; do
        args=()
        for e in "${EXES[@]}"; do args+=(--exe "$e"); done
        run $PIN_LOAD "$BIN/netev-storebench" query --db "$db" "${args[@]}" --since 1h --repeat "$QUERY_REPEAT" > "$W/query"
        sed 's/^/{"phase":"query-alone","result":/; s/$/}/' "$W/query" >> "$OUT"
    done
fi

python3 - "$OUT" << 'PY'
import json, statistics, sys
med = statistics.median
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
meta = next(r["meta"] for r in recs if "meta" in r)
by = lambda phase: [r for r in recs if r.get("phase") == phase]
fmt = lambda x: "n/a" if x != x else f"{x:,.0f}"  # n/a: a load too short for two status samples
spread = lambda v: f"{fmt(min(v))}–{fmt(max(v))} ({100 * (max(v) - min(v)) / med(v):.0f}%)"
NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL", "none": "none", "postgres-nojit": "PostgreSQL, `?options=-c jit=off`"}

print(f"Run {meta['date']}: {meta['cores']} cores ({meta['cpu']}), kernel {meta['kernel']}, "
      f"{meta['mem_kb'] / 2**20:.0f} GiB, work dir on {meta['disk']}; {meta['postgres']} ({meta['pg_settings']}); "
      f"SQLite {meta['sqlite']}.\n")

alone = by("alone")
if alone:
    print(f"### Store alone: insert() of batches of 10,000 events ({meta['alone_rounds']} rounds, "
          f"{alone[0]['result']['rows']:,} rows per run into an empty table)\n")
    print("| engine | stream | median rows/s | min–max (spread) | batch time, median (max) | client CPU / wall | PostgreSQL server CPU / wall |")
    print("|---|---|---|---|---|---|---|")
    rows = [(e, s, "this") for e, s in [("sqlite", "varied"), ("postgres", "varied"), ("sqlite", "flood"), ("postgres", "flood")]]
    rows = [x for e, s, _ in rows for x in [(e, s, "this"), (e, s, "base")]] + [("reference", "-", "this")]
    for e, shape, build in rows:
        rs = [r for r in alone if r["engine"] == e and r["shape"] == shape and r.get("build", "this") == build]
        if not rs:
            continue
        rate = [r["result"]["rows_per_s"] for r in rs]
        if e == "reference":
            print(f"| SQLite, PLATFORM.md's reference row | 14 columns, 2 indexes, no counts | {fmt(med(rate))} | {spread(rate)} | - | - | - |")
            continue
        bmed = med([r["result"]["batch_secs"]["median"] for r in rs]) * 1e3
        bmax = max(r["result"]["batch_secs"]["max"] for r in rs) * 1e3
        client = med([r["result"]["client_cpu_secs"] / r["result"]["secs"] for r in rs])
        server = med([r["pg_server_cpu_secs"] / r["result"]["secs"] for r in rs])
        label = NAMES[e] + (f", base build ({meta.get('base_bin')})" if build == "base" else "")
        print(f"| {label} | {shape} | {fmt(med(rate))} | {spread(rate)} | {bmed:.1f} ms ({bmax:.0f} ms) | {100 * client:.0f}% "
              f"| {'-' if e == 'sqlite' else f'{100 * server:.0f}%'} |")
    print()

live = by("live")
if live:
    def window(r):
        """Committed and captured rates over the load, from status.json samples (their mtimes)."""
        s = r["samples"]
        t0, t1 = r["t_load_start"], r["t_load_end"]
        inside = [x for x in s if t0 <= x["t"] <= t1]
        rate = lambda k: (inside[-1][k] - inside[0][k]) / (inside[-1]["t"] - inside[0]["t"]) if len(inside) >= 2 else float("nan")
        final_stored = r["final"]["stored"] or 0
        reached = next((x["t"] for x in s if x["stored"] >= final_stored), None)
        last_change = t1
        for a, b in zip(s, s[1:]):
            if (a["events"], a["stored"], a["store_lost"]) != (b["events"], b["stored"], b["store_lost"]):
                last_change = max(last_change, b["t"])
        overall = final_stored / (reached - t0) if reached and final_stored else 0.0
        return rate("events"), rate("stored"), overall, last_change - t0
    print(f"### Live pipeline: netevd --no-coalesce (CPU 0) and one `netev-load loop LOOP --iterations {meta['live_iterations']:,}` (CPU 1); "
          f"medians of {meta['rounds']} rounds\n")
    print("| loop | --store | load calls/s | events/s captured (during the load) | rows/s committed during the load | rows/s committed incl. catch-up | rows stored / events | store_lost | ring dropped | netevd CPU | netevd peak RSS | PostgreSQL server CPU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    loops = []
    for r in live:
        if r["loop"] not in loops:
            loops.append(r["loop"])
    for loop in loops:
        for st in ["none", "sqlite", "postgres"]:
            rs = [r for r in live if r["loop"] == loop and r["store"] == st]
            if not rs:
                continue
            w = [window(r) for r in rs]
            calls = med([r["load"]["iterations"] / r["load"]["secs"] for r in rs])
            ev = med([x[0] for x in w])
            busy = [x[3] for x in w]
            cpu = med([r["netevd_cpu_secs"] for r in rs])
            cpu_pct = med([100 * r["netevd_cpu_secs"] / b for r, b in zip(rs, busy)])
            pg = med([100 * r["pg_server_cpu_secs"] / b for r, b in zip(rs, busy)])
            stored = med([r["final"]["stored"] for r in rs])
            events = med([r["final"]["events"] for r in rs])
            lost = [r["final"]["store_lost"] for r in rs]
            dropped = [r["final"]["dropped"] for r in rs]
            if st == "none":
                commit = during = "-"
                ratio = "-"
            else:
                commit = f"{fmt(med([x[1] for x in w]))} ({fmt(min(x[1] for x in w))}–{fmt(max(x[1] for x in w))})"
                during = fmt(med([x[2] for x in w]))
                ratio = f"{fmt(stored)} / {fmt(events)}"
            print(f"| {loop} | {st} | {fmt(calls)} | {fmt(ev)} | {commit} | {during} | {ratio} | "
                  f"{', '.join(fmt(x) for x in lost)} | {', '.join(fmt(x) for x in dropped)} | "
                  f"{cpu:.1f} s ({cpu_pct:.0f}%) | {med([r['netevd_hwm_kb'] for r in rs]) / 1024:.0f} MiB | "
                  f"{'-' if st != 'postgres' else f'{pg:.0f}%'} |")
    print()

fills = [r["result"] for r in by("fill")]
sizes = by("sizes")
if fills:
    print("### Filling the query tables (insert() of batches of 10,000, events spread over 24 h)\n")
    print("| engine | rows | rows/s overall | first 1M rows | last 1M rows | size on disk |")
    print("|---|---|---|---|---|---|")
    for e in ["sqlite", "postgres"]:
        done = [f for f in fills if f["cmd"] == "fill" and f["engine"] == e]
        prog = [f for f in fills if f["cmd"] == "fill-progress" and f["engine"] == e]
        if not done:
            continue
        d = done[0]
        size = "-"
        if sizes:
            z = sizes[0]
            if e == "sqlite":
                size = f"{(z['sqlite_bytes'] + z['sqlite_wal_bytes']) / 2**30:.2f} GiB"
            else:
                p = z["postgres"]
                size = (f"{p['database'] / 2**30:.2f} GiB (events {p['events_table'] / 2**30:.2f}, its indexes "
                        f"{p['events_indexes'] / 2**30:.2f}, count_blocks {p['counts_total'] / 2**30:.2f})")
        print(f"| {NAMES[e]} | {d['rows']:,} | {fmt(d['rows_per_s'])} | {fmt(prog[0]['rows_per_s'])} | {fmt(prog[-1]['rows_per_s'])} | {size} |")
    if sizes:
        z = sizes[0]
        pg_fill = [f for f in fills if f["cmd"] == "fill" and f["engine"] == "postgres"]
        if pg_fill:
            print(f"\nPostgreSQL server CPU during its fill: {z['pg_fill_server_cpu_secs']:.0f} s "
                  f"({100 * z['pg_fill_server_cpu_secs'] / pg_fill[0]['insert_secs']:.0f}% of the insert time).")
        print(f"count_blocks (SQLite): {z['count_blocks']}; PostgreSQL VACUUM (ANALYZE) after the fill: {z['pg_vacuum_analyze_secs']:.1f} s.")
        lh = fills[-1].get("last_hour_rows_per_exe") if fills[-1]["cmd"] == "fill" else None
        if lh:
            print("Rows in the last hour at the end of the fill: " + ", ".join(f"{x['exe']} {x['rows']:,}" for x in lh[:7]) + ", …")
    print()

cmds = by("query-command")
if cmds:
    alone_q = {(r["result"]["engine"], r["result"]["query"]): r["result"] for r in by("query-alone")}
    print(f"### Queries on {meta['fill_rows']:,} rows: whole command (`netev … --db`), and the query alone on an open connection (ms)\n")
    print("| command | engine | lines out | cold (first after drop_caches) | warm, median | min–max | query alone, median | open, alone |")
    print("|---|---|---|---|---|---|---|---|")
    queries = []
    for c in cmds:
        if c["query"] not in queries:
            queries.append(c["query"])
    for q in queries:
        for e in ["sqlite", "postgres", "postgres-nojit"]:
            warm = [c["secs"] * 1e3 for c in cmds if c["query"] == q and c["engine"] == e and c["run"] not in ("cold", "warmup")]
            cold = [c["secs"] * 1e3 for c in cmds if c["query"] == q and c["engine"] == e and c["run"] == "cold"]
            lines = [c["lines"] for c in cmds if c["query"] == q and c["engine"] == e]
            if not warm:
                continue
            a = alone_q.get((e, q))
            ms = lambda x: f"{x * 1e3:.1f}"
            q_alone, q_open = (ms(a["median_secs"]), ms(a["open_secs"])) if a else ("-", "-")
            print(f"| `netev {q}` | {NAMES[e]} | {lines[-1]} | {f'{cold[0]:.0f}' if cold else '-'} | {med(warm):.1f} | "
                  f"{min(warm):.1f}–{max(warm):.1f} | {q_alone} | {q_open} |")
    print()
PY
echo "raw results: $OUT" >&2
