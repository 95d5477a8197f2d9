//! The SQLite engine: the embedded default (`/var/lib/netev/netev.db`).
//!
//! WAL, `synchronous = NORMAL` (a committed batch survives a crash of the
//! process; a power cut may lose the last ones, never corrupt the file),
//! batches in one transaction with a cached prepared statement.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use netev_event::Event;
use rusqlite::types::ToSqlOutput;
use rusqlite::{params, params_from_iter, Connection, OpenFlags, ToSql};

use crate::blocks::{self, Compactor};
use crate::filter_sql::{where_clause, Value};
use crate::model::{minute, Columns, Stored, TopSums};
use crate::schema::{EVENT_COLUMNS, SQLITE, VERSION_TABLE};
use crate::{sqlite_err, Error, Filter, Gap, Result, Retention, Row, TopBy, TopRow};

/// An open SQLite event database.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    compactor: Compactor,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating it if missing) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        let conn =
            Connection::open(path).map_err(sqlite_err(format!("opening {}", path.display())))?;
        let mut store = SqliteStore {
            conn,
            path: path.to_path_buf(),
            compactor: Compactor::default(),
        };
        store.setup(true)?;
        Ok(store)
    }

    /// Opens an existing database for queries only (`netev log --db`, and
    /// netevd's query connection beside its writer).
    pub fn open_read_only(path: &Path) -> Result<SqliteStore> {
        if !path.exists() {
            return Err(Error::Invalid(format!(
                "{} does not exist (netevd creates it in its state dir, /var/lib/netev by default)",
                path.display()
            )));
        }
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(sqlite_err(format!("opening {}", path.display())))?;
        let mut store = SqliteStore {
            conn,
            path: path.to_path_buf(),
            compactor: Compactor::default(),
        };
        store.setup(false)?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn damaged(&self) -> impl Fn(rusqlite::Error) -> Error + '_ {
        move |source| Error::Sqlite {
            context: format!(
                "{} is not a netev event database or is damaged; it was left as it is: move it \
                 aside (netevd then starts a new one) or repair it with sqlite3's .recover",
                self.path.display()
            ),
            source,
        }
    }

    fn setup(&mut self, writable: bool) -> Result<()> {
        self.conn
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sqlite_err("setting the busy timeout"))?;
        if writable {
            self.conn
                .pragma_update(None, "journal_mode", "WAL")
                .map_err(self.damaged())?;
            self.conn
                .pragma_update(None, "synchronous", "NORMAL")
                .map_err(self.damaged())?;
        }
        let known = SQLITE.len() as i64;
        let version: i64 = if writable {
            self.conn
                .execute(VERSION_TABLE, [])
                .map_err(self.damaged())?;
            self.conn
                .query_row(
                    "SELECT COALESCE(MAX(version), 0) FROM netev_schema",
                    [],
                    |r| r.get(0),
                )
                .map_err(self.damaged())?
        } else {
            self.conn
                .query_row(
                    "SELECT COALESCE(MAX(version), 0) FROM netev_schema",
                    [],
                    |r| r.get(0),
                )
                .map_err(self.damaged())?
        };
        if version > known {
            return Err(Error::TooNew {
                found: version,
                known,
            });
        }
        if !writable {
            if version < known {
                return Err(Error::Invalid(format!(
                    "{} has schema version {version}; netevd upgrades it to {known} when it next starts",
                    self.path.display()
                )));
            }
            return Ok(());
        }
        for (i, sql) in SQLITE.iter().enumerate().skip(version as usize) {
            let tx = self
                .conn
                .transaction()
                .map_err(sqlite_err("starting a schema migration"))?;
            tx.execute_batch(sql)
                .map_err(sqlite_err(format!("applying schema migration {}", i + 1)))?;
            tx.execute(
                "INSERT INTO netev_schema (version) VALUES (?1)",
                [i as i64 + 1],
            )
            .map_err(sqlite_err("recording the schema version"))?;
            tx.commit()
                .map_err(sqlite_err("committing a schema migration"))?;
        }
        Ok(())
    }

    /// Writes a batch in one transaction: all of it or (on error) none.
    pub fn insert(&mut self, host: &str, events: &[Event]) -> Result<()> {
        let blocks = blocks::of_events(events);
        let tx = self
            .conn
            .transaction()
            .map_err(sqlite_err("starting a batch"))?;
        write_events(&tx, host, events, &blocks)?;
        tx.commit().map_err(sqlite_err("committing a batch"))?;
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
        let tx = self
            .conn
            .transaction()
            .map_err(sqlite_err("starting a batch"))?;
        let new = tx
            .execute(
                "INSERT INTO export_batches (id, host, events, ts_ns) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO NOTHING",
                params![
                    batch_id,
                    host,
                    events.len() as i64,
                    Utc::now().timestamp_nanos_opt().unwrap_or(0)
                ],
            )
            .map_err(sqlite_err("recording a batch id"))?
            == 1;
        if !new {
            return Ok(false);
        }
        write_events(&tx, host, events, &blocks)?;
        if let Some(gap) = gap {
            write_gap(&tx, gap)?;
        }
        tx.commit().map_err(sqlite_err("committing a batch"))?;
        self.after_batch(host, &blocks);
        Ok(true)
    }

    fn after_batch(&mut self, host: &str, blocks: &[blocks::Block]) {
        let mut compactor = std::mem::take(&mut self.compactor);
        compactor.after_batch(blocks, |by, min| self.compact(host, by, min));
        self.compactor = compactor;
    }

    /// Merges `host`'s count blocks of one minute into one.
    fn compact(&mut self, host: &str, by: TopBy, min: i64) -> Result<()> {
        let tx = self
            .conn
            .transaction()
            .map_err(sqlite_err("starting a merge of counts"))?;
        let parts: Vec<(i64, Vec<u8>)> = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT id, counts FROM count_blocks WHERE grouping = ?1 AND minute = ?2 AND host = ?3",
                )
                .map_err(sqlite_err("reading counts to merge"))?;
            let rows = stmt
                .query_map(params![by.name(), min, host], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .map_err(sqlite_err("reading counts to merge"))?;
            rows.collect::<rusqlite::Result<_>>()
                .map_err(sqlite_err("reading counts to merge"))?
        };
        let Some(merged) = blocks::merge(&parts)? else {
            return Ok(());
        };
        {
            let mut delete = tx
                .prepare_cached("DELETE FROM count_blocks WHERE id = ?1")
                .map_err(sqlite_err("merging counts"))?;
            for (id, _) in &parts {
                delete.execute([id]).map_err(sqlite_err("merging counts"))?;
            }
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO count_blocks (grouping, minute, host, counts) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(sqlite_err("merging counts"))?;
            for counts in merged {
                insert
                    .execute(params![by.name(), min, host, counts])
                    .map_err(sqlite_err("merging counts"))?;
            }
        }
        tx.commit()
            .map_err(sqlite_err("committing a merge of counts"))
    }

    /// Records events lost on the way (see [`Gap`]).
    pub fn record_gap(&mut self, gap: &Gap) -> Result<()> {
        write_gap(&self.conn, gap)
    }

    /// Gaps recorded at or after `since`, oldest first.
    pub fn gaps(&self, since: Option<DateTime<Utc>>) -> Result<Vec<Gap>> {
        let since = since.map_or(i64::MIN, |t| t.timestamp_nanos_opt().unwrap_or(i64::MIN));
        let mut stmt = self
            .conn
            .prepare("SELECT host, ts_ns, lost, reason FROM gaps WHERE ts_ns >= ?1 ORDER BY id")
            .map_err(sqlite_err("reading gaps"))?;
        let rows = stmt
            .query_map([since], |r| {
                Ok(Gap {
                    host: r.get(0)?,
                    ts: DateTime::<Utc>::from_timestamp_nanos(r.get(1)?),
                    lost: r.get::<_, i64>(2)? as u64,
                    reason: r.get(3)?,
                })
            })
            .map_err(sqlite_err("reading gaps"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(sqlite_err("reading gaps"))
    }

    /// The newest `filter.limit` matching events, oldest first.
    pub fn query(&self, filter: &Filter) -> Result<Vec<Row>> {
        let (clause, args) = where_clause(filter, '?');
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
        let mut stmt = self
            .conn
            .prepare(&sql)
            .map_err(sqlite_err("preparing the query"))?;
        let rows = stmt
            .query_map(params_from_iter(&args), |r| {
                Ok(Stored {
                    id: r.get(0)?,
                    host: r.get(1)?,
                    ts_ns: r.get(2)?,
                    pid: r.get(3)?,
                    tid: r.get(4)?,
                    ppid: r.get(5)?,
                    uid: r.get(6)?,
                    gid: r.get(7)?,
                    user: r.get(8)?,
                    comm: r.get(9)?,
                    exe: r.get(10)?,
                    cmdline: r.get(11)?,
                    op: r.get(12)?,
                    family: r.get(13)?,
                    sock_type: r.get(14)?,
                    proto: r.get(15)?,
                    laddr: r.get(16)?,
                    lport: r.get(17)?,
                    raddr: r.get(18)?,
                    rport: r.get(19)?,
                    ret: r.get(20)?,
                    verdict: r.get(21)?,
                    rule: r.get(22)?,
                    count: r.get(23)?,
                })
            })
            .map_err(sqlite_err("querying events"))?;
        let mut out = rows
            .map(|r| {
                r.map_err(sqlite_err("reading an event"))
                    .and_then(Stored::decode)
            })
            .collect::<Result<Vec<Row>>>()?;
        out.reverse();
        Ok(out)
    }

    /// The busiest keys since `since` (by minute: `since` is rounded down).
    pub fn top(&self, by: TopBy, since: Option<DateTime<Utc>>, limit: u32) -> Result<Vec<TopRow>> {
        let from = since.map_or(i64::MIN, minute);
        let mut sums = TopSums::default();
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, counts FROM count_blocks WHERE grouping = ?1 AND minute >= ?2",
            )
            .map_err(sqlite_err("preparing top"))?;
        let mut rows = stmt
            .query(params![by.name(), from])
            .map_err(sqlite_err("querying top"))?;
        while let Some(r) = rows.next().map_err(sqlite_err("reading top"))? {
            let id: i64 = r.get(0).map_err(sqlite_err("reading top"))?;
            let counts = r
                .get_ref(1)
                .and_then(|c| c.as_blob().map_err(Into::into))
                .map_err(sqlite_err("reading top"))?;
            blocks::add(&mut sums, id, counts)?;
        }
        // Counted before schema 2, one row per key.
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT key, ops, events FROM event_counts WHERE grouping = ?1 AND minute >= ?2",
            )
            .map_err(sqlite_err("preparing top"))?;
        let mut rows = stmt
            .query(params![by.name(), from])
            .map_err(sqlite_err("querying top"))?;
        while let Some(r) = rows.next().map_err(sqlite_err("reading top"))? {
            let key = r
                .get_ref(0)
                .and_then(|k| k.as_str().map_err(Into::into))
                .map_err(sqlite_err("reading top"))?;
            let ops: i64 = r.get(1).map_err(sqlite_err("reading top"))?;
            let events: i64 = r.get(2).map_err(sqlite_err("reading top"))?;
            sums.add(key, ops as u64, events as u64);
        }
        Ok(sums.top(limit))
    }

    /// Events stored.
    pub fn count(&self) -> Result<u64> {
        self.conn
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(sqlite_err("counting events"))
    }

    /// Deletes what retention says to, in chunks (so that writers are never
    /// held up for long); returns the events deleted.
    pub fn retain(&mut self, keep: &Retention, now: DateTime<Utc>) -> Result<u64> {
        let mut deleted = 0;
        if let Some(age) = keep.max_age {
            let cutoff = now - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
            let cut_ns = cutoff.timestamp_nanos_opt().unwrap_or(i64::MIN);
            deleted += self.delete_in_chunks("ts_ns < ?1", cut_ns, "deleting old events")?;
            for table in ["count_blocks", "event_counts"] {
                self.conn
                    .execute(
                        &format!("DELETE FROM {table} WHERE minute < ?1"),
                        [minute(cutoff)],
                    )
                    .map_err(sqlite_err("deleting old counts"))?;
            }
            self.conn
                .execute("DELETE FROM gaps WHERE ts_ns < ?1", [cut_ns])
                .map_err(sqlite_err("deleting old gaps"))?;
        }
        if let Some(max) = keep.max_rows {
            // Ids grow by one per row and only the oldest rows are ever
            // deleted, so the newest id tells where the cut is, without
            // counting (an OFFSET over 10M rows took over a second).
            let newest: Option<i64> = self
                .conn
                .query_row("SELECT MAX(id) FROM events", [], |r| r.get(0))
                .map_err(sqlite_err("finding the newest event"))?;
            if let Some(newest) = newest {
                let cut = newest.saturating_sub(max.min(i64::MAX as u64) as i64);
                deleted += self.delete_in_chunks("id <= ?1", cut, "deleting the oldest events")?;
            }
        }
        Ok(deleted)
    }

    /// Deletes the events matching `cond` (one `?1` parameter) in chunks,
    /// so that the writer is never held up for long.
    fn delete_in_chunks(&mut self, cond: &str, arg: i64, doing: &str) -> Result<u64> {
        const CHUNK: i64 = 20_000;
        let sql =
            format!("DELETE FROM events WHERE id IN (SELECT id FROM events WHERE {cond} LIMIT ?2)");
        let mut deleted = 0;
        loop {
            let n = self
                .conn
                .execute(&sql, params![arg, CHUNK])
                .map_err(sqlite_err(doing))?;
            deleted += n as u64;
            if (n as i64) < CHUNK {
                return Ok(deleted);
            }
        }
    }
}

impl crate::Store for SqliteStore {
    fn insert(&mut self, host: &str, events: &[Event]) -> Result<()> {
        SqliteStore::insert(self, host, events)
    }
    fn record_gap(&mut self, gap: &Gap) -> Result<()> {
        SqliteStore::record_gap(self, gap)
    }
    fn insert_batch(
        &mut self,
        host: &str,
        batch_id: &str,
        events: &[Event],
        gap: Option<&Gap>,
    ) -> Result<bool> {
        SqliteStore::insert_batch(self, host, batch_id, events, gap)
    }
    fn gaps(&mut self, since: Option<DateTime<Utc>>) -> Result<Vec<Gap>> {
        SqliteStore::gaps(self, since)
    }
    fn query(&mut self, filter: &Filter) -> Result<Vec<Row>> {
        SqliteStore::query(self, filter)
    }
    fn top(&mut self, by: TopBy, since: Option<DateTime<Utc>>, limit: u32) -> Result<Vec<TopRow>> {
        SqliteStore::top(self, by, since, limit)
    }
    fn count(&mut self) -> Result<u64> {
        SqliteStore::count(self)
    }
    fn retain(&mut self, keep: &Retention, now: DateTime<Utc>) -> Result<u64> {
        SqliteStore::retain(self, keep, now)
    }
    fn describe(&self) -> String {
        format!("SQLite {}", self.path.display())
    }
}

impl ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::BigInt(v) => ToSqlOutput::from(*v),
            Value::Int(v) => ToSqlOutput::from(*v),
            Value::Text(s) => ToSqlOutput::from(*s),
            Value::Bytes(b) => ToSqlOutput::from(&b[..]),
        })
    }
}

fn write_events(
    tx: &rusqlite::Connection,
    host: &str,
    events: &[Event],
    blocks: &[blocks::Block],
) -> Result<()> {
    let sql = format!(
        "INSERT INTO events ({}) VALUES ({})",
        EVENT_COLUMNS.join(", "),
        (1..=EVENT_COLUMNS.len())
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut stmt = tx
        .prepare_cached(&sql)
        .map_err(sqlite_err("preparing the insert"))?;
    for ev in events {
        let c = Columns::new(host, ev);
        stmt.execute(params![
            c.host,
            c.ts_ns,
            c.pid,
            c.tid,
            c.ppid,
            c.uid,
            c.gid,
            c.user,
            c.comm,
            c.exe,
            c.cmdline,
            c.op,
            c.family,
            c.sock_type,
            c.proto,
            c.laddr,
            c.lport,
            c.raddr,
            c.rport,
            c.raddr_key,
            c.ret,
            c.verdict,
            c.rule,
            c.count
        ])
        .map_err(sqlite_err("inserting an event"))?;
    }
    let mut block = tx
        .prepare_cached(
            "INSERT INTO count_blocks (grouping, minute, host, counts) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(sqlite_err("preparing the counts"))?;
    for b in blocks {
        block
            .execute(params![b.by.name(), b.minute, host, b.counts])
            .map_err(sqlite_err("writing the counts"))?;
    }
    Ok(())
}

fn write_gap(conn: &rusqlite::Connection, gap: &Gap) -> Result<()> {
    conn.execute(
        "INSERT INTO gaps (host, ts_ns, lost, reason) VALUES (?1, ?2, ?3, ?4)",
        params![
            gap.host,
            gap.ts.timestamp_nanos_opt().unwrap_or(0),
            gap.lost as i64,
            gap.reason
        ],
    )
    .map(|_| ())
    .map_err(sqlite_err("recording a gap"))
}
