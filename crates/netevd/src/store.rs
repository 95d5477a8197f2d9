//! The event store as netevd uses it: `--store` parsed, the writer thread
//! started, and a way to open the store for the queries served over D-Bus.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use netev_store::writer::{Writer, WriterConfig};
use netev_store::Retention;
use tracing::{info, warn};

/// `--store`: where events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// Not stored.
    None,
    /// SQLite: `netev.db` in the state dir, or a given file.
    Sqlite(Option<PathBuf>),
    /// A PostgreSQL URL or connection string.
    Postgres(String),
}

impl std::str::FromStr for StoreSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<StoreSpec, String> {
        Ok(match s {
            "none" => StoreSpec::None,
            "sqlite" => StoreSpec::Sqlite(None),
            _ if netev_store::is_postgres(s) => StoreSpec::Postgres(s.to_string()),
            _ => match s.strip_prefix("sqlite:") {
                Some(p) if p.starts_with('/') => StoreSpec::Sqlite(Some(p.into())),
                _ => {
                    return Err(format!(
                        "{s:?} is not a store: use sqlite (netev.db in the state dir), \
                         sqlite:/absolute/path.db, postgres://user@host/db, or none"
                    ))
                }
            },
        })
    }
}

impl std::fmt::Display for StoreSpec {
    /// As written in the configuration, without a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreSpec::None => f.write_str("none"),
            StoreSpec::Sqlite(None) => f.write_str("sqlite"),
            StoreSpec::Sqlite(Some(p)) => write!(f, "sqlite:{}", p.display()),
            StoreSpec::Postgres(url) => f.write_str(&netev_store::redact(url)),
        }
    }
}

/// The running store: the writer and how to open it for a query.
pub struct EventStore {
    pub writer: Writer,
    pub target: String,
}

impl EventStore {
    /// The target for logs and status, without a password.
    pub fn target_display(&self) -> String {
        netev_store::redact(&self.target)
    }
}

/// Starts the writer. A store that cannot be opened now (a damaged file, a
/// database that is down) does not stop capture or enforcement: the writer
/// keeps trying, events that do not fit its queue are counted as lost, and
/// the error shows in the log and `netev status`.
pub fn start(
    spec: &StoreSpec,
    state_dir: &Path,
    host: String,
    retention: Retention,
) -> Option<Arc<EventStore>> {
    let target = match spec {
        StoreSpec::None => return None,
        StoreSpec::Sqlite(None) => state_dir.join("netev.db").display().to_string(),
        StoreSpec::Sqlite(Some(p)) => p.display().to_string(),
        StoreSpec::Postgres(url) => url.clone(),
    };
    let first = match netev_store::open(&target) {
        Ok(s) => {
            info!(store = %s.describe(), "storing events");
            Some(s)
        }
        Err(e) => {
            warn!("cannot open the event store (capture and enforcement go on; events are counted as lost until it opens): {e}");
            None
        }
    };
    let mut cfg = WriterConfig::new(host);
    cfg.retention = retention;
    let reopen = target.clone();
    let writer = Writer::spawn(first, Box::new(move || netev_store::open(&reopen)), cfg);
    Some(Arc::new(EventStore { writer, target }))
}

/// `--store-max-age`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxAge(pub Option<Duration>);

impl std::str::FromStr for MaxAge {
    type Err = String;
    fn from_str(s: &str) -> Result<MaxAge, String> {
        parse_age(s).map(MaxAge)
    }
}

/// `--store-max-age`: `30d`, `12h`, `90m`; `0` keeps everything.
pub fn parse_age(s: &str) -> Result<Option<Duration>, String> {
    if s == "0" {
        return Ok(None);
    }
    netev_store::query::parse_age(s).map(Some).ok_or_else(|| {
        format!("{s:?} is not an age: write e.g. 30d, 12h, 90m, or 0 to keep everything")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_specs_and_ages_parse() {
        assert_eq!("none".parse(), Ok(StoreSpec::None));
        assert_eq!("sqlite".parse(), Ok(StoreSpec::Sqlite(None)));
        assert_eq!(
            "sqlite:/srv/ev.db".parse(),
            Ok(StoreSpec::Sqlite(Some("/srv/ev.db".into())))
        );
        assert_eq!(
            "postgres://netev@db/netev".parse(),
            Ok(StoreSpec::Postgres("postgres://netev@db/netev".into()))
        );
        assert!("mysql://x"
            .parse::<StoreSpec>()
            .unwrap_err()
            .contains("is not a store"));
        assert!("sqlite:rel.db".parse::<StoreSpec>().is_err());
        assert_eq!(parse_age("30d"), Ok(Some(Duration::from_secs(30 * 86_400))));
        assert_eq!(parse_age("0"), Ok(None));
        assert!(parse_age("soon").unwrap_err().contains("is not an age"));
    }
}
