//! The PostgreSQL engine: many hosts (netev-sql on each) into one database.
//!
//! Same tables and the same answers as the SQLite engine. What differs is
//! how a batch gets there: the events go in by binary `COPY` and the
//! per-minute counts by one `INSERT … SELECT FROM UNNEST … ON CONFLICT`, in
//! one transaction, so a batch costs a handful of round trips however large
//! it is.
//!
//! [`Store`](crate::Store) is synchronous, so a [`PgStore`] owns a
//! current-thread tokio runtime and blocks on it. Call it from a plain
//! thread (or `spawn_blocking`), never from inside an async task: tokio
//! refuses to block a runtime thread on another runtime.
//!
//! PostgreSQL text cannot hold U+0000, which SQLite and the events allow.
//! Rather than lose a batch (or a character), the free-text values (host,
//! user, comm, exe, cmdline, gap reason, `top` keys) are stored through
//! `encode_text`: a value with no NUL and no U+FDD0 is stored as it is;
//! any other value is stored as U+FDD0 followed by the value with each NUL
//! written as U+FDD0 `0` and each U+FDD0 doubled. U+FDD0 is a Unicode
//! noncharacter, so real text does not carry it and everything a person or
//! another tool reads from the database is unchanged. (The one visible
//! difference: such a value ties in `top` by its stored form.)

use std::borrow::Cow;
use std::fmt::Write as _;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use netev_event::Event;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, NoTls, Statement};

use crate::blocks::{self, Compactor};
use crate::filter_sql::{where_clause, Value};
use crate::model::{minute, Columns, Stored, TopSums};
use crate::schema::{EVENT_COLUMNS, POSTGRES, VERSION_TABLE};
use crate::{Error, Filter, Gap, Result, Retention, Row, TopBy, TopRow};

/// The types of [`EVENT_COLUMNS`] in the PostgreSQL schema, for binary COPY
/// (which sends no type names: a mismatch would be read as garbage).
const EVENT_TYPES: [Type; 24] = [
    Type::TEXT,  // host
    Type::INT8,  // ts_ns
    Type::INT8,  // pid
    Type::INT8,  // tid
    Type::INT8,  // ppid
    Type::INT8,  // uid
    Type::INT8,  // gid
    Type::TEXT,  // user_name
    Type::TEXT,  // comm
    Type::TEXT,  // exe
    Type::TEXT,  // cmdline
    Type::TEXT,  // op
    Type::TEXT,  // family
    Type::TEXT,  // sock_type
    Type::TEXT,  // proto
    Type::TEXT,  // laddr
    Type::INT4,  // lport
    Type::TEXT,  // raddr
    Type::INT4,  // rport
    Type::BYTEA, // raddr_key
    Type::INT4,  // ret
    Type::TEXT,  // verdict
    Type::INT8,  // rule
    Type::INT8,  // count
];

/// The advisory lock that serializes migrations: every netev-sql of a
/// fleet may start against an empty database at the same moment, and only
/// one of them may create the tables. ("netev_sm" in ASCII; advisory locks
/// are per database, so other databases on the server are not held up.)
const MIGRATION_LOCK: i64 = 0x6e65_7465_765f_736d;

/// Events deleted per statement by [`PgStore::retain`], so that inserts
/// from the fleet are never held up behind one huge delete.
const RETAIN_CHUNK: i64 = 20_000;

/// How long a connect may take when the URL does not say: a host that
/// drops packets would otherwise hang netev-sql's start for minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where libpq (and so `psql`) looks when a URL names no host; Debian's
/// server listens there.
const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// A connection to a PostgreSQL event database.
pub struct PgStore {
    // `client` is dropped (in `Drop`) before the runtime, so that the
    // connection task can still say goodbye to the server.
    client: Option<Client>,
    connection: Option<tokio::task::JoinHandle<()>>,
    rt: tokio::runtime::Runtime,
    copy: Statement,
    blocks: Statement,
    compactor: Compactor,
    url: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("url", &self.url).finish()
    }
}

impl PgStore {
    /// Connects to `url` and brings the schema up to date.
    ///
    /// `url` is a libpq connection string, as a URL
    /// (`postgres://user@host:5432/netev`, `postgres://user@/netev?host=/run/postgresql`)
    /// or as `key=value` pairs (`host=/run/postgresql dbname=netev user=netev`).
    /// Without a host, the unix socket in `/var/run/postgresql` is used, as
    /// by `psql`. TLS is not supported (`sslmode=require` fails).
    pub fn connect(url: &str) -> Result<PgStore> {
        let mut config = Config::from_str(url).map_err(|source| Error::Postgres {
            context: "reading the PostgreSQL connection string (expected \
                      postgres://user@host:port/database or host=… dbname=… user=…)"
                .into(),
            source,
        })?;
        if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
            config.host_path(DEFAULT_SOCKET_DIR);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            // What a DBA sees in pg_stat_activity.
            config.application_name("netev");
        }
        let described = describe_config(&config);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                Error::Invalid(format!(
                    "cannot start the runtime for the PostgreSQL connection: {e}"
                ))
            })?;
        let (mut client, connection) =
            rt.block_on(config.connect(NoTls))
                .map_err(|source| Error::Postgres {
                    context: connect_context(&config, &source),
                    source,
                })?;
        let connection = rt.spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!("the PostgreSQL connection ended: {}", detail(&e));
            }
        });
        rt.block_on(migrate(&mut client, &config))?;
        let (copy, blocks) = rt.block_on(async {
            let copy = client
                .prepare(&format!(
                    "COPY events ({}) FROM STDIN (FORMAT binary)",
                    EVENT_COLUMNS.join(", ")
                ))
                .await
                .map_err(pg_err("preparing the COPY of events"))?;
            let blocks = client
                .prepare(
                    "INSERT INTO count_blocks (grouping, minute, host, counts)
                     SELECT g, m, $3, c FROM UNNEST($1::TEXT[], $2::BIGINT[], $4::BYTEA[]) AS u (g, m, c)",
                )
                .await
                .map_err(pg_err("preparing the insert of the counts"))?;
            Ok::<_, Error>((copy, blocks))
        })?;
        Ok(PgStore {
            client: Some(client),
            connection: Some(connection),
            rt,
            copy,
            blocks,
            compactor: Compactor::default(),
            url: described,
        })
    }

    /// Whether the connection to the server is gone (the server stopped,
    /// the network failed): every call then fails, and the caller should
    /// connect again.
    pub fn is_closed(&self) -> bool {
        self.client().is_closed()
    }

    fn client(&self) -> &Client {
        self.client
            .as_ref()
            .expect("the client is only taken when dropping")
    }

    /// Writes a batch in one transaction: all of it or (on error) none.
    pub fn insert(&mut self, host: &str, events: &[Event]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let blocks = blocks::of_events(events);
        let client = self
            .client
            .as_mut()
            .expect("the client is only taken when dropping");
        let (copy, insert_blocks) = (&self.copy, &self.blocks);
        self.rt.block_on(async {
            let tx = client
                .transaction()
                .await
                .map_err(pg_err("starting a batch"))?;
            write_events(&tx, copy, insert_blocks, host, events, &blocks).await?;
            tx.commit().await.map_err(pg_err("committing a batch"))
        })?;
        self.after_batch(host, &blocks);
        Ok(())
    }

    /// Writes an exported batch (its events, or the gap it records) in one
    /// transaction together with its id, unless that id is already stored:
    /// then nothing is written and the answer is false.
    pub fn insert_batch(
        &mut self,
        host: &str,
        batch_id: &str,
        events: &[Event],
        gap: Option<&Gap>,
    ) -> Result<bool> {
        let blocks = blocks::of_events(events);
        let client = self
            .client
            .as_mut()
            .expect("the client is only taken when dropping");
        let (copy, insert_blocks) = (&self.copy, &self.blocks);
        let new = self.rt.block_on(async {
            let tx = client
                .transaction()
                .await
                .map_err(pg_err("starting a batch"))?;
            // Two consumers holding the same batch: the second waits on the
            // first's row lock, then finds it taken.
            let new = tx
                .execute(
                    "INSERT INTO export_batches (id, host, events, ts_ns) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (id) DO NOTHING",
                    &[
                        &encode_text(batch_id),
                        &encode_text(host),
                        &(events.len() as i64),
                        &Utc::now().timestamp_nanos_opt().unwrap_or(0),
                    ],
                )
                .await
                .map_err(pg_err("recording a batch id"))?
                == 1;
            if !new {
                return Ok(false);
            }
            if !events.is_empty() {
                write_events(&tx, copy, insert_blocks, host, events, &blocks).await?;
            }
            if let Some(gap) = gap {
                write_gap(&tx, gap).await?;
            }
            tx.commit().await.map_err(pg_err("committing a batch"))?;
            Ok::<_, Error>(true)
        })?;
        if new {
            self.after_batch(host, &blocks);
        }
        Ok(new)
    }

    fn after_batch(&mut self, host: &str, blocks: &[blocks::Block]) {
        let mut compactor = std::mem::take(&mut self.compactor);
        compactor.after_batch(blocks, |by, min| self.compact(host, by, min));
        self.compactor = compactor;
    }

    /// Merges `host`'s count blocks of one minute into one. The rows are
    /// locked as read: should two writers of one host name merge the same
    /// minute at once, the second finds the first's parts gone (READ
    /// COMMITTED skips rows deleted under the lock) and counts nothing
    /// twice.
    fn compact(&mut self, host: &str, by: TopBy, min: i64) -> Result<()> {
        let host = encode_text(host);
        let client = self
            .client
            .as_mut()
            .expect("the client is only taken when dropping");
        self.rt.block_on(async move {
            let tx = client
                .transaction()
                .await
                .map_err(pg_err("starting a merge of counts"))?;
            let rows = tx
                .query(
                    "SELECT id, counts FROM count_blocks
                     WHERE grouping = $1 AND minute = $2 AND host = $3 ORDER BY id FOR UPDATE",
                    &[&by.name(), &min, &host],
                )
                .await
                .map_err(pg_err("reading counts to merge"))?;
            let parts = rows
                .iter()
                .map(|r| Ok((r.try_get::<_, i64>(0)?, r.try_get::<_, Vec<u8>>(1)?)))
                .collect::<Result<Vec<_>, tokio_postgres::Error>>()
                .map_err(pg_err("reading counts to merge"))?;
            let Some(merged) = blocks::merge(&parts)? else {
                return Ok(());
            };
            let ids: Vec<i64> = parts.iter().map(|(id, _)| *id).collect();
            tx.execute("DELETE FROM count_blocks WHERE id = ANY($1)", &[&ids])
                .await
                .map_err(pg_err("merging counts"))?;
            let n = merged.len();
            tx.execute(
                "INSERT INTO count_blocks (grouping, minute, host, counts)
                 SELECT $1, $2, $3, c FROM UNNEST($4::BYTEA[]) AS u (c)",
                &[&by.name(), &min, &host, &merged],
            )
            .await
            .map_err(pg_err(format!("merging counts into {n} block(s)")))?;
            tx.commit()
                .await
                .map_err(pg_err("committing a merge of counts"))
        })
    }

    /// Records events lost on the way (see [`Gap`]).
    pub fn record_gap(&mut self, gap: &Gap) -> Result<()> {
        let client = self.client();
        self.rt.block_on(write_gap(client, gap))
    }

    /// Gaps recorded at or after `since`, oldest first.
    pub fn gaps(&self, since: Option<DateTime<Utc>>) -> Result<Vec<Gap>> {
        let since = since.map_or(i64::MIN, |t| t.timestamp_nanos_opt().unwrap_or(i64::MIN));
        let client = self.client();
        let rows = self.rt.block_on(async {
            client
                .query(
                    "SELECT host, ts_ns, lost, reason FROM gaps WHERE ts_ns >= $1 ORDER BY id",
                    &[&since],
                )
                .await
                .map_err(pg_err("reading gaps"))
        })?;
        rows.iter()
            .map(|r| {
                Ok(Gap {
                    host: decode_text(r.try_get(0)?),
                    ts: DateTime::<Utc>::from_timestamp_nanos(r.try_get(1)?),
                    lost: r.try_get::<_, i64>(2)? as u64,
                    reason: decode_text(r.try_get(3)?),
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(pg_err("reading gaps"))
    }

    /// The newest `filter.limit` matching events, oldest first.
    pub fn query(&self, filter: &Filter) -> Result<Vec<Row>> {
        let (clause, values) = where_clause(filter, '$');
        let args = params(&values);
        let sql = format!(
            "SELECT id, {} FROM events {clause} ORDER BY ts_ns DESC, id DESC LIMIT {}",
            EVENT_COLUMNS
                .iter()
                .filter(|c| **c != "raddr_key")
                .copied()
                .collect::<Vec<_>>()
                .join(", "),
            filter.effective_limit()
        );
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref() as _).collect();
        let client = self.client();
        let rows = self.rt.block_on(async {
            client
                .query(&sql, &params)
                .await
                .map_err(pg_err("querying events"))
        })?;
        let mut out = rows
            .iter()
            .map(|r| {
                stored(r)
                    .map_err(pg_err("reading an event"))
                    .and_then(Stored::decode)
            })
            .collect::<Result<Vec<Row>>>()?;
        out.reverse();
        Ok(out)
    }

    /// The busiest keys since `since` (by minute: `since` is rounded down).
    pub fn top(&self, by: TopBy, since: Option<DateTime<Utc>>, limit: u32) -> Result<Vec<TopRow>> {
        let from = since.map_or(i64::MIN, minute);
        let client = self.client();
        let (blocks, legacy) = self.rt.block_on(async {
            let blocks = client
                .query(
                    "SELECT id, counts FROM count_blocks WHERE grouping = $1 AND minute >= $2",
                    &[&by.name(), &from],
                )
                .await
                .map_err(pg_err("querying top"))?;
            // Counted before schema 2, one row per key.
            let legacy = client
                .query(
                    "SELECT key, ops, events FROM event_counts WHERE grouping = $1 AND minute >= $2",
                    &[&by.name(), &from],
                )
                .await
                .map_err(pg_err("querying top"))?;
            Ok::<_, Error>((blocks, legacy))
        })?;
        let mut sums = TopSums::default();
        for r in &blocks {
            let id: i64 = r.try_get(0).map_err(pg_err("reading top"))?;
            let counts: &[u8] = r.try_get(1).map_err(pg_err("reading top"))?;
            blocks::add(&mut sums, id, counts)?;
        }
        for r in &legacy {
            let key: String = r.try_get(0).map_err(pg_err("reading top"))?;
            let ops: i64 = r.try_get(1).map_err(pg_err("reading top"))?;
            let events: i64 = r.try_get(2).map_err(pg_err("reading top"))?;
            sums.add(&decode_text(key), ops as u64, events as u64);
        }
        Ok(sums.top(limit))
    }

    /// Events stored.
    pub fn count(&self) -> Result<u64> {
        let client = self.client();
        self.rt.block_on(async {
            client
                .query_one("SELECT COUNT(*) FROM events", &[])
                .await
                .and_then(|r| r.try_get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(pg_err("counting events"))
        })
    }

    /// Deletes what retention says to, in chunks (so that writers are never
    /// held up for long); returns the events deleted.
    pub fn retain(&mut self, keep: &Retention, now: DateTime<Utc>) -> Result<u64> {
        let client = self.client();
        self.rt.block_on(async {
            let mut deleted = 0;
            if let Some(age) = keep.max_age {
                let cutoff = now - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
                let cut_ns = cutoff.timestamp_nanos_opt().unwrap_or(i64::MIN);
                loop {
                    let n = client
                        .execute(
                            "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE ts_ns < $1 LIMIT $2)",
                            &[&cut_ns, &RETAIN_CHUNK],
                        )
                        .await
                        .map_err(pg_err("deleting old events"))?;
                    deleted += n;
                    if (n as i64) < RETAIN_CHUNK {
                        break;
                    }
                }
                for table in ["count_blocks", "event_counts"] {
                    client
                        .execute(
                            &format!("DELETE FROM {table} WHERE minute < $1"),
                            &[&minute(cutoff)],
                        )
                        .await
                        .map_err(pg_err("deleting old counts"))?;
                }
                client
                    .execute("DELETE FROM gaps WHERE ts_ns < $1", &[&cut_ns])
                    .await
                    .map_err(pg_err("deleting old gaps"))?;
            }
            if let Some(max) = keep.max_rows {
                // As SQLite's: the newest id tells where the cut is
                // without counting. A sequence may skip ids (rolled-back
                // batches), so at times a few less than `max` are kept.
                let newest: Option<i64> = client
                    .query_one("SELECT MAX(id) FROM events", &[])
                    .await
                    .and_then(|r| r.try_get(0))
                    .map_err(pg_err("finding the newest event"))?;
                if let Some(first_dropped) = newest.map(|n| n.saturating_sub(clamp(max))) {
                    loop {
                        let n = client
                            .execute(
                                "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE id <= $1 LIMIT $2)",
                                &[&first_dropped, &RETAIN_CHUNK],
                            )
                            .await
                            .map_err(pg_err("deleting the oldest events"))?;
                        deleted += n;
                        if (n as i64) < RETAIN_CHUNK {
                            break;
                        }
                    }
                }
            }
            Ok(deleted)
        })
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Dropping the last client handle makes the connection task send
        // Terminate and end; waiting for it (briefly) spares the server
        // log an "unexpected EOF on client connection" per `netev log`.
        drop(self.client.take());
        if let Some(task) = self.connection.take() {
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(2), task).await });
        }
    }
}

impl crate::Store for PgStore {
    fn insert(&mut self, host: &str, events: &[Event]) -> Result<()> {
        PgStore::insert(self, host, events)
    }
    fn record_gap(&mut self, gap: &Gap) -> Result<()> {
        PgStore::record_gap(self, gap)
    }
    fn insert_batch(
        &mut self,
        host: &str,
        batch_id: &str,
        events: &[Event],
        gap: Option<&Gap>,
    ) -> Result<bool> {
        PgStore::insert_batch(self, host, batch_id, events, gap)
    }
    fn gaps(&mut self, since: Option<DateTime<Utc>>) -> Result<Vec<Gap>> {
        PgStore::gaps(self, since)
    }
    fn query(&mut self, filter: &Filter) -> Result<Vec<Row>> {
        PgStore::query(self, filter)
    }
    fn top(&mut self, by: TopBy, since: Option<DateTime<Utc>>, limit: u32) -> Result<Vec<TopRow>> {
        PgStore::top(self, by, since, limit)
    }
    fn count(&mut self) -> Result<u64> {
        PgStore::count(self)
    }
    fn retain(&mut self, keep: &Retention, now: DateTime<Utc>) -> Result<u64> {
        PgStore::retain(self, keep, now)
    }
    fn describe(&self) -> String {
        format!("PostgreSQL {}", self.url)
    }
}

/// Applies the migrations not yet applied, each in its own transaction
/// under [`MIGRATION_LOCK`], as SQLite's `setup` does.
async fn migrate(client: &mut Client, config: &Config) -> Result<()> {
    let known = POSTGRES.len() as i64;
    // Up to date is the common case and needs no lock (nor the right to
    // create tables: a read-only user can query).
    let exists: bool = client
        .query_one("SELECT to_regclass('netev_schema') IS NOT NULL", &[])
        .await
        .and_then(|r| r.try_get(0))
        .map_err(pg_err("reading the schema version"))?;
    if exists {
        let version = schema_version(client).await?;
        if version > known {
            return Err(Error::TooNew {
                found: version,
                known,
            });
        }
        if version == known {
            return Ok(());
        }
    }
    loop {
        let tx = client
            .transaction()
            .await
            .map_err(pg_err("starting a schema migration"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg_err("waiting for another netev migrating this database"))?;
        tx.batch_execute(VERSION_TABLE)
            .await
            .map_err(|source| migration_err(config, "creating the schema version table", source))?;
        // Read again under the lock: whoever held it may have migrated.
        let version = schema_version(&tx).await?;
        if version > known {
            return Err(Error::TooNew {
                found: version,
                known,
            });
        }
        if version == known {
            return tx
                .commit()
                .await
                .map_err(pg_err("committing a schema migration"));
        }
        let next = version + 1;
        tx.batch_execute(POSTGRES[version as usize])
            .await
            .map_err(|source| {
                migration_err(config, &format!("applying schema migration {next}"), source)
            })?;
        tx.execute("INSERT INTO netev_schema (version) VALUES ($1)", &[&next])
            .await
            .map_err(pg_err("recording the schema version"))?;
        tx.commit()
            .await
            .map_err(pg_err("committing a schema migration"))?;
    }
}

async fn schema_version(client: &impl tokio_postgres::GenericClient) -> Result<i64> {
    client
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM netev_schema",
            &[],
        )
        .await
        .and_then(|r| r.try_get(0))
        .map_err(pg_err("reading the schema version"))
}

/// Whether `e` means that the server is away for now (stopped,
/// restarting, unreachable, the connection dropped), so that the same work
/// may succeed on a new connection, rather than that the work itself cannot
/// be done.
pub fn connection_lost(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        // 08: connection exceptions; 57P0x: the server shuts down or is
        // starting; 53300: too many connections.
        let c = code.code();
        return c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03" | "53300");
    }
    // A reset or refused socket, or no answer in time.
    std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
        || e.to_string().starts_with("timeout")
}

fn migration_err(config: &Config, doing: &str, source: tokio_postgres::Error) -> Error {
    let context = if source.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
        let user = config.get_user().unwrap_or("the user");
        let db = config.get_dbname().unwrap_or(user);
        format!(
            "{doing}: {user} may not create tables in database {db}; make {user} its owner \
             (ALTER DATABASE {db} OWNER TO {user}) or GRANT CREATE ON SCHEMA public TO {user}, \
             or let the owner run netev once to create the tables"
        )
    } else {
        doing.to_string()
    };
    Error::Postgres { context, source }
}

fn pg_err(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
    let context = context.into();
    move |source| Error::Postgres { context, source }
}

/// What a failed connect was trying, with what to check.
fn connect_context(config: &Config, e: &tokio_postgres::Error) -> String {
    let targets = targets(config);
    let db = config.get_dbname().or(config.get_user()).unwrap_or("");
    let user = config.get_user().unwrap_or("");
    if let Some(code) = e.code() {
        if *code == SqlState::INVALID_CATALOG_NAME {
            return format!(
                "connecting to PostgreSQL at {targets}: database {db:?} does not exist; create it \
                 (createdb -O {user} {db}) or correct the database in store.url"
            );
        }
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            return format!(
                "connecting to PostgreSQL at {targets}: the server refused user {user:?}; check \
                 the user and password in store.url and the server's pg_hba.conf"
            );
        }
    }
    let io = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>());
    match io.map(|io| io.kind()) {
        Some(std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound) => format!(
            "cannot connect to PostgreSQL at {targets}: nothing listens there; check that the \
             server runs and that store.url names the right host and port"
        ),
        _ if e.to_string().contains("timeout") => format!(
            "cannot connect to PostgreSQL at {targets}: no answer within the connect timeout; \
             check that the host is reachable (firewall, network) and store.url"
        ),
        _ => format!("connecting to PostgreSQL at {targets} (check store.url)"),
    }
}

/// The addresses a config tries, as `host:port` or a unix socket's path.
fn targets(config: &Config) -> String {
    let ports = config.get_ports();
    let port = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
    let mut hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| match h {
            Host::Tcp(name) => netev_event::endpoint(name, port(i)),
            Host::Unix(dir) => format!("{}/.s.PGSQL.{}", dir.display(), port(i)),
        })
        .collect();
    if hosts.is_empty() {
        hosts = config
            .get_hostaddrs()
            .iter()
            .enumerate()
            .map(|(i, a)| netev_event::endpoint(a, port(i)))
            .collect();
    }
    hosts.join(", ")
}

/// The connection string as a URL without the password (nor any other
/// secret: only user, hosts, ports and database are kept).
pub(crate) fn describe_config(config: &Config) -> String {
    let ports = config.get_ports();
    let port = |i: usize| ports.get(i).or(ports.first()).copied();
    let mut authority = Vec::new();
    let mut params = Vec::new();
    for (i, h) in config.get_hosts().iter().enumerate() {
        match h {
            Host::Tcp(name) => {
                let name = if name.contains(':') {
                    format!("[{name}]")
                } else {
                    url_escape(name)
                };
                authority.push(match port(i) {
                    Some(p) => format!("{name}:{p}"),
                    None => name,
                });
            }
            Host::Unix(dir) => {
                params.push(format!("host={}", url_escape(&dir.to_string_lossy())));
                if let Some(p) = port(i) {
                    params.push(format!("port={p}"));
                }
            }
        }
    }
    for a in config.get_hostaddrs() {
        params.push(format!("hostaddr={a}"));
    }
    let mut out = String::from("postgres://");
    if let Some(user) = config.get_user() {
        let _ = write!(out, "{}@", url_escape(user));
    }
    out.push_str(&authority.join(","));
    out.push('/');
    if let Some(db) = config.get_dbname() {
        out.push_str(&url_escape(db));
    }
    if !params.is_empty() {
        let _ = write!(out, "?{}", params.join("&"));
    }
    out
}

fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A tokio-postgres error with its cause: its own `Display` says only
/// "db error" or "error connecting to server", the cause says what.
pub(crate) fn detail(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut out = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
        if let Some(d) = db.detail() {
            let _ = write!(out, "; {d}");
        }
        if let Some(h) = db.hint() {
            let _ = write!(out, "; hint: {h}");
        }
        return out;
    }
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let _ = write!(out, ": {c}");
        cause = c.source();
    }
    out
}

/// The marker of an encoded text value (see the module's documentation).
const MARK: char = '\u{FDD0}';

/// A text value as PostgreSQL can store it (see the module's documentation).
fn encode_text(s: &str) -> Cow<'_, str> {
    if !s.contains(['\0', MARK]) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    out.push(MARK);
    for ch in s.chars() {
        match ch {
            '\0' => out.extend([MARK, '0']),
            MARK => out.extend([MARK, MARK]),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn encode_opt(s: &Option<String>) -> Option<Cow<'_, str>> {
    s.as_deref().map(encode_text)
}

/// The value [`encode_text`] was given.
fn decode_text(s: String) -> String {
    let Some(rest) = s.strip_prefix(MARK) else {
        return s;
    };
    let mut out = String::with_capacity(rest.len());
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        if c != MARK {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => out.push('\0'),
            Some(MARK) => out.push(MARK),
            // Not written by us (edited by hand): keep what is there.
            Some(other) => out.extend([MARK, other]),
            None => out.push(MARK),
        }
    }
    out
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn stored(r: &tokio_postgres::Row) -> Result<Stored, tokio_postgres::Error> {
    let text = |i: usize| r.try_get::<_, String>(i).map(decode_text);
    let opt_text = |i: usize| {
        r.try_get::<_, Option<String>>(i)
            .map(|v| v.map(decode_text))
    };
    Ok(Stored {
        id: r.try_get(0)?,
        host: text(1)?,
        ts_ns: r.try_get(2)?,
        pid: r.try_get(3)?,
        tid: r.try_get(4)?,
        ppid: r.try_get(5)?,
        uid: r.try_get(6)?,
        gid: r.try_get(7)?,
        user: opt_text(8)?,
        comm: text(9)?,
        exe: opt_text(10)?,
        cmdline: opt_text(11)?,
        op: r.try_get(12)?,
        family: r.try_get(13)?,
        sock_type: r.try_get(14)?,
        proto: r.try_get(15)?,
        laddr: r.try_get(16)?,
        lport: r.try_get(17)?,
        raddr: r.try_get(18)?,
        rport: r.try_get(19)?,
        ret: r.try_get(20)?,
        verdict: r.try_get(21)?,
        rule: r.try_get(22)?,
        count: r.try_get(23)?,
    })
}

type Arg = Box<dyn ToSql + Sync + Send>;

/// A filter's parameters as the driver takes them; text encoded as stored.
fn params(values: &[Value<'_>]) -> Vec<Arg> {
    values
        .iter()
        .map(|v| -> Arg {
            match *v {
                Value::BigInt(v) => Box::new(v),
                Value::Int(v) => Box::new(v),
                Value::Text(s) => Box::new(encode_text(s).into_owned()),
                Value::Bytes(b) => Box::new(b.to_vec()),
            }
        })
        .collect()
}

/// The events' rows (COPY) and their count blocks, inside `tx`.
async fn write_events(
    tx: &tokio_postgres::Transaction<'_>,
    copy: &Statement,
    insert_blocks: &Statement,
    host: &str,
    events: &[Event],
    blocks: &[blocks::Block],
) -> Result<()> {
    let groupings: Vec<&str> = blocks.iter().map(|b| b.by.name()).collect();
    let minutes: Vec<i64> = blocks.iter().map(|b| b.minute).collect();
    let counts: Vec<&[u8]> = blocks.iter().map(|b| b.counts.as_slice()).collect();
    let stored_host = encode_text(host);
    let sink = tx
        .copy_in(copy)
        .await
        .map_err(pg_err("starting the COPY of events"))?;
    let writer = BinaryCopyInWriter::new(sink, &EVENT_TYPES);
    let mut writer = std::pin::pin!(writer);
    for ev in events {
        let c = Columns::new(host, ev);
        let (host, user, comm) = (
            encode_text(&c.host),
            encode_opt(&c.user),
            encode_text(&c.comm),
        );
        let (exe, cmdline) = (encode_opt(&c.exe), encode_opt(&c.cmdline));
        writer
            .as_mut()
            .write(&[
                &host,
                &c.ts_ns,
                &c.pid,
                &c.tid,
                &c.ppid,
                &c.uid,
                &c.gid,
                &user,
                &comm,
                &exe,
                &cmdline,
                &c.op,
                &c.family,
                &c.sock_type,
                &c.proto,
                &c.laddr,
                &c.lport,
                &c.raddr,
                &c.rport,
                &c.raddr_key,
                &c.ret,
                &c.verdict,
                &c.rule,
                &c.count,
            ])
            .await
            .map_err(pg_err("sending events to PostgreSQL"))?;
    }
    writer.as_mut().finish().await.map_err(pg_err(format!(
        "inserting a batch of {} events",
        events.len()
    )))?;
    tx.execute(
        insert_blocks,
        &[&groupings, &minutes, &stored_host, &counts],
    )
    .await
    .map_err(pg_err("writing the counts"))?;
    Ok(())
}

async fn write_gap(client: &impl tokio_postgres::GenericClient, gap: &Gap) -> Result<()> {
    client
        .execute(
            "INSERT INTO gaps (host, ts_ns, lost, reason) VALUES ($1, $2, $3, $4)",
            &[
                &encode_text(&gap.host),
                &gap.ts.timestamp_nanos_opt().unwrap_or(0),
                &clamp(gap.lost),
                &encode_text(&gap.reason),
            ],
        )
        .await
        .map(|_| ())
        .map_err(pg_err("recording a gap"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_with_nul_or_the_marker_round_trips_and_plain_text_is_untouched() {
        for s in [
            "",
            "curl",
            "a\0b",
            "\0",
            "\u{FDD0}",
            "x\u{FDD0}0y",
            "\u{FDD0}\0\u{FDD0}\u{FDD0}",
            "ünï\0",
        ] {
            let enc = encode_text(s);
            assert!(!enc.contains('\0'), "{s:?} -> {enc:?}");
            assert_eq!(decode_text(enc.into_owned()), s);
        }
        assert!(matches!(encode_text("/usr/bin/curl"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_description_keeps_no_password() {
        for (url, want) in [
            (
                "postgres://netev:s3cret@db.example:5433/events",
                "postgres://netev@db.example:5433/events",
            ),
            (
                "host=/run/postgresql port=5432 user=netev password=s3cret dbname=netev",
                "postgres://netev@/netev?host=/run/postgresql&port=5432",
            ),
            (
                "postgresql://u:p%40ss@[::1]:5432,h2/db?password=x",
                "postgres://u@[::1]:5432,h2:5432/db",
            ),
        ] {
            let config = Config::from_str(url).unwrap();
            let d = describe_config(&config);
            assert_eq!(d, want);
            assert!(Config::from_str(&d).is_ok(), "{d} parses back");
        }
    }
}
