//! The schema, as numbered migrations per engine. A database records the
//! last one applied (`netev_schema`); opening applies the rest, each in its
//! own transaction, and refuses a database from a newer netev.
//!
//! Both engines get the same tables and columns; types differ only where
//! the engines do (BLOB/BYTEA, INTEGER PRIMARY KEY/BIGSERIAL).

/// The `events` columns in insert order (after `id`).
pub const EVENT_COLUMNS: [&str; 24] = [
    "host",
    "ts_ns",
    "pid",
    "tid",
    "ppid",
    "uid",
    "gid",
    "user_name",
    "comm",
    "exe",
    "cmdline",
    "op",
    "family",
    "sock_type",
    "proto",
    "laddr",
    "lport",
    "raddr",
    "rport",
    "raddr_key",
    "ret",
    "verdict",
    "rule",
    "count",
];

/// SQLite migrations; index + 1 is the version.
pub const SQLITE: &[&str] = &[
    // 1: events, per-minute counts for `top`, gaps
    "CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        host TEXT NOT NULL,
        ts_ns INTEGER NOT NULL,
        pid INTEGER NOT NULL, tid INTEGER NOT NULL, ppid INTEGER NOT NULL,
        uid INTEGER NOT NULL, gid INTEGER NOT NULL,
        user_name TEXT, comm TEXT NOT NULL, exe TEXT, cmdline TEXT,
        op TEXT NOT NULL, family TEXT NOT NULL, sock_type TEXT NOT NULL, proto TEXT,
        laddr TEXT, lport INTEGER, raddr TEXT, rport INTEGER, raddr_key BLOB,
        ret INTEGER, verdict TEXT NOT NULL, rule INTEGER, count INTEGER NOT NULL
     );
     CREATE INDEX events_ts ON events (ts_ns);
     CREATE INDEX events_exe_ts ON events (exe, ts_ns);
     CREATE TABLE event_counts (
        grouping TEXT NOT NULL, key TEXT NOT NULL, minute INTEGER NOT NULL,
        ops INTEGER NOT NULL, events INTEGER NOT NULL,
        PRIMARY KEY (grouping, minute, key)
     ) WITHOUT ROWID;
     CREATE TABLE gaps (
        id INTEGER PRIMARY KEY, host TEXT NOT NULL, ts_ns INTEGER NOT NULL,
        lost INTEGER NOT NULL, reason TEXT NOT NULL
     );",
    // 2: counts for `top` as blocks (see blocks.rs); event_counts keeps
    // what was counted before, and `top` reads both
    "CREATE TABLE count_blocks (
        id INTEGER PRIMARY KEY,
        grouping TEXT NOT NULL, minute INTEGER NOT NULL, host TEXT NOT NULL,
        counts BLOB NOT NULL
     );
     CREATE INDEX count_blocks_minute ON count_blocks (grouping, minute, host);",
    // 3: the ids of the exported batches stored (netev-sql --from), so that
    // a batch delivered again is not stored twice
    "CREATE TABLE export_batches (
        id TEXT PRIMARY KEY, host TEXT NOT NULL,
        events INTEGER NOT NULL, ts_ns INTEGER NOT NULL
     ) WITHOUT ROWID;",
];

/// PostgreSQL migrations; index + 1 is the version.
pub const POSTGRES: &[&str] = &[
    // 1: as SQLite's 1
    "CREATE TABLE events (
        id BIGSERIAL PRIMARY KEY,
        host TEXT NOT NULL,
        ts_ns BIGINT NOT NULL,
        pid BIGINT NOT NULL, tid BIGINT NOT NULL, ppid BIGINT NOT NULL,
        uid BIGINT NOT NULL, gid BIGINT NOT NULL,
        user_name TEXT, comm TEXT NOT NULL, exe TEXT, cmdline TEXT,
        op TEXT NOT NULL, family TEXT NOT NULL, sock_type TEXT NOT NULL, proto TEXT,
        laddr TEXT, lport INTEGER, raddr TEXT, rport INTEGER, raddr_key BYTEA,
        ret INTEGER, verdict TEXT NOT NULL, rule BIGINT, count BIGINT NOT NULL
     );
     CREATE INDEX events_ts ON events (ts_ns);
     CREATE INDEX events_exe_ts ON events (exe, ts_ns);
     CREATE TABLE event_counts (
        grouping TEXT NOT NULL, key TEXT NOT NULL, minute BIGINT NOT NULL,
        ops BIGINT NOT NULL, events BIGINT NOT NULL,
        PRIMARY KEY (grouping, minute, key)
     );
     CREATE TABLE gaps (
        id BIGSERIAL PRIMARY KEY, host TEXT NOT NULL, ts_ns BIGINT NOT NULL,
        lost BIGINT NOT NULL, reason TEXT NOT NULL
     );",
    // 2: as SQLite's 2
    "CREATE TABLE count_blocks (
        id BIGSERIAL PRIMARY KEY,
        grouping TEXT NOT NULL, minute BIGINT NOT NULL, host TEXT NOT NULL,
        counts BYTEA NOT NULL
     );
     CREATE INDEX count_blocks_minute ON count_blocks (grouping, minute, host);",
    // 3: as SQLite's 3
    "CREATE TABLE export_batches (
        id TEXT PRIMARY KEY, host TEXT NOT NULL,
        events BIGINT NOT NULL, ts_ns BIGINT NOT NULL
     );",
];

/// The table that records the schema version.
pub const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS netev_schema (version BIGINT NOT NULL)";
