//! Store targets as users write them: a SQLite file path or a PostgreSQL
//! URL / connection string.

use std::path::Path;

use crate::{Error, PgStore, Result, SqliteStore, Store};

/// Whether `target` names a PostgreSQL database (`postgres://…`,
/// `postgresql://…`, or a `host=… dbname=…` connection string).
pub fn is_postgres(target: &str) -> bool {
    target.starts_with("postgres://")
        || target.starts_with("postgresql://")
        || target
            .split_whitespace()
            .any(|kv| kv.starts_with("host=") || kv.starts_with("dbname="))
}

/// Opens (creating and migrating) the store for writing.
pub fn open(target: &str) -> Result<Box<dyn Store>> {
    if is_postgres(target) {
        Ok(Box::new(PgStore::connect(target)?))
    } else {
        Ok(Box::new(SqliteStore::open(Path::new(target))?))
    }
}

/// Opens an existing store for queries (SQLite read-only).
pub fn open_for_queries(target: &str) -> Result<Box<dyn Store>> {
    if is_postgres(target) {
        Ok(Box::new(PgStore::connect(target)?))
    } else {
        Ok(Box::new(SqliteStore::open_read_only(Path::new(target))?))
    }
}

/// `target` without a password, for logs and status.
pub fn redact(target: &str) -> String {
    if let Some((scheme, rest)) = target.split_once("://") {
        if let Some((userinfo, host)) = rest.split_once('@') {
            if let Some((user, _)) = userinfo.split_once(':') {
                return format!("{scheme}://{user}:***@{host}");
            }
        }
        return target.to_string();
    }
    target
        .split_whitespace()
        .map(|kv| {
            if kv.starts_with("password=") {
                "password=***".to_string()
            } else {
                kv.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Error {
    /// Whether the store went away (connection closed or refused) rather
    /// than refusing this batch: the writer reconnects and retries.
    pub fn connection_lost(&self) -> bool {
        match self {
            Error::Postgres { source, .. } => crate::pg::connection_lost(source),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_told_apart_and_passwords_hidden() {
        assert!(is_postgres("postgres://u@h/db"));
        assert!(is_postgres("host=/run/postgresql dbname=netev"));
        assert!(!is_postgres("/var/lib/netev/netev.db"));
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact("host=h password=secret dbname=x"),
            "host=h password=*** dbname=x"
        );
        assert_eq!(redact("/var/lib/netev/netev.db"), "/var/lib/netev/netev.db");
    }
}
