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

/// `target` without a password (nor any other secret), for logs, status
/// and errors: a PostgreSQL connection string in any of its forms (URL with
/// `user:password@` or `?password=`, key/value with quoted values, …) is
/// parsed as the driver parses it and shown as user, hosts, ports and
/// database only; one that does not parse is not shown at all.
pub fn redact(target: &str) -> String {
    if let Ok(config) = target.parse::<tokio_postgres::Config>() {
        if is_postgres(target) || config.get_password().is_some() {
            return crate::pg::describe_config(&config);
        }
    }
    if is_postgres(target) || target.to_ascii_lowercase().contains("password") {
        return "(a connection string that does not parse: not shown, it may hold a password)"
            .into();
    }
    target.to_string()
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
        for secret in [
            "postgres://u:s3cret@h:5432/db",
            "postgresql://u@h/db?password=s3cret",
            "postgresql://u@h/db?sslmode=disable&password=s3cret",
            "postgres://u:p%40s3cret@h/db",
            "host=h password=s3cret dbname=x",
            "host=h password = s3cret dbname=x",
            "host=h password='with s3cret spaces' dbname=x",
            "user=u password=s3cret",
            "postgres://u:s3cret@h:5432/db?broken=%",
            "PASSWORD=s3cret garbage'",
        ] {
            let shown = redact(secret);
            assert!(!shown.contains("s3cret"), "{secret} shown as {shown}");
        }
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h:5432/db");
        assert_eq!(redact("/var/lib/netev/netev.db"), "/var/lib/netev/netev.db");
    }
}
