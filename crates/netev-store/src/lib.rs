//! The event store: every field of the JSON event plus `host`, in SQLite (the
//! embedded default) or PostgreSQL (many hosts into one database), with the
//! queries behind `netev log` / `netev top` and retention.
//!
//! Both engines share one logical schema ([`schema`]), versioned migrations
//! applied at open, and the same query semantics:
//!
//! - `events`: one row per event. Addresses are kept as text (what the event
//!   said) and, for the remote side, as a 16-byte key (IPv4 as IPv4-mapped
//!   IPv6) so that a CIDR filter is a range scan.
//! - `count_blocks`: operations per minute per exe, destination, port and
//!   user, written by every insert as one row per grouping and minute (see
//!   `blocks`), so that `top` reads a row a minute instead of millions of
//!   events. (`event_counts`, a row per key, is schema 1's form: read, no
//!   longer written.)
//! - `gaps`: events that were lost on the way (a full disk, a database that
//!   was away too long), so that a hole in the log is never silent.

pub(crate) mod blocks;
mod filter_sql;
pub mod model;
pub mod pg;
pub mod query;
pub mod schema;
pub mod sqlite;
pub mod target;
pub mod writer;

pub use model::Columns;
pub use model::{Filter, Gap, Retention, Row, TopBy, TopRow};
pub use pg::PgStore;
pub use sqlite::SqliteStore;
pub use target::{is_postgres, open, open_for_queries, redact};

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The SQLite database.
    #[error("{context}: {source}")]
    Sqlite {
        context: String,
        #[source]
        source: rusqlite::Error,
    },
    /// The PostgreSQL database (or the way to it).
    #[error("{context}: {}", pg::detail(source))]
    Postgres {
        context: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// A database written by a newer netev.
    #[error("the database has schema version {found}, newer than this netev knows ({known}); upgrade netev or use another database")]
    TooNew { found: i64, known: i64 },
    /// A stored row that does not decode (edited by hand, or damaged).
    #[error("row {id}: column {column} holds {value:?}, which is not a valid value")]
    BadRow {
        id: i64,
        column: &'static str,
        value: String,
    },
    /// A block of `top` counts that does not decode (damaged).
    #[error("count block {id} (table count_blocks) does not decode: {reason}; `netev top` cannot read past it: delete that row (DELETE FROM count_blocks WHERE id = {id}) or wait for retention to drop it")]
    BadCounts { id: i64, reason: String },
    /// A bad argument from the caller.
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What both engines do; netevd, `netev log --db` and netev-sql use it
/// without caring which engine is behind.
pub trait Store: Send {
    /// Writes a batch in one transaction: all of it or, on error, none.
    fn insert(&mut self, host: &str, events: &[netev_event::Event]) -> Result<()>;
    /// Records events lost on the way.
    fn record_gap(&mut self, gap: &Gap) -> Result<()>;
    /// Writes one exported batch (netev-sql `--from`: a stream message) in
    /// one transaction with its batch id, recorded in `export_batches`:
    /// its events, and `gap` if the batch records one. A batch id already
    /// recorded writes nothing and returns false, so a batch delivered
    /// again (its ack was lost) is not stored twice.
    fn insert_batch(
        &mut self,
        host: &str,
        batch_id: &str,
        events: &[netev_event::Event],
        gap: Option<&Gap>,
    ) -> Result<bool>;
    /// Gaps recorded at or after `since`, oldest first.
    fn gaps(&mut self, since: Option<chrono::DateTime<chrono::Utc>>) -> Result<Vec<Gap>>;
    /// The newest `filter.limit` matching events, oldest first.
    fn query(&mut self, filter: &Filter) -> Result<Vec<Row>>;
    /// The busiest keys since `since` (by minute: `since` is rounded down).
    fn top(
        &mut self,
        by: TopBy,
        since: Option<chrono::DateTime<chrono::Utc>>,
        limit: u32,
    ) -> Result<Vec<TopRow>>;
    /// Events stored.
    fn count(&mut self) -> Result<u64>;
    /// Deletes what retention says to; returns the events deleted.
    fn retain(&mut self, keep: &Retention, now: chrono::DateTime<chrono::Utc>) -> Result<u64>;
    /// Where the data goes, for logs and errors (no password).
    fn describe(&self) -> String;
}

pub(crate) fn sqlite_err(context: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> Error {
    let context = context.into();
    move |source| Error::Sqlite { context, source }
}
