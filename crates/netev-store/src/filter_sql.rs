//! The `WHERE` clause of a [`Filter`], written once for both engines.
//!
//! What differs between them is kept out of it: the placeholder syntax
//! (`?1` in SQLite, `$1` in PostgreSQL) is a parameter, and each engine
//! turns the [`Value`]s into its driver's parameters itself, PostgreSQL
//! encoding text it cannot store as it is (`pg.rs`, `encode_text`).

use crate::model::net_range;
use crate::Filter;

/// A value a filter compares a column with, in that column's SQL type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    /// BIGINT (`ts_ns`).
    BigInt(i64),
    /// INTEGER (`rport`): PostgreSQL takes no wider integer for it.
    Int(i32),
    /// TEXT.
    Text(&'a str),
    /// BLOB / BYTEA (`raddr_key`).
    Bytes([u8; 16]),
}

/// `WHERE …` for a filter (empty when it has no condition) and its
/// parameters, numbered `{mark}1`, `{mark}2`, … in order.
pub(crate) fn where_clause(f: &Filter, mark: char) -> (String, Vec<Value<'_>>) {
    let mut conds: Vec<String> = Vec::new();
    let mut args: Vec<Value<'_>> = Vec::new();
    let mut push = |cond: &str, arg| {
        args.push(arg);
        conds.push(cond.replace('?', &format!("{mark}{}", args.len())));
    };
    if let Some(t) = f.since {
        push(
            "ts_ns >= ?",
            Value::BigInt(t.timestamp_nanos_opt().unwrap_or(i64::MIN)),
        );
    }
    if let Some(t) = f.until {
        push(
            "ts_ns < ?",
            Value::BigInt(t.timestamp_nanos_opt().unwrap_or(i64::MAX)),
        );
    }
    if let Some(exe) = &f.exe {
        push("exe = ?", Value::Text(exe));
    }
    if let Some(op) = f.op {
        push("op = ?", Value::Text(op.name()));
    }
    if let Some(v) = f.verdict {
        push("verdict = ?", Value::Text(v.name()));
    }
    if let Some(net) = &f.dest {
        let (lo, hi) = net_range(net);
        push("raddr_key >= ?", Value::Bytes(lo));
        push("raddr_key <= ?", Value::Bytes(hi));
    }
    if let Some(p) = f.port {
        push("rport = ?", Value::Int(i32::from(p)));
    }
    if let Some(h) = &f.host {
        push("host = ?", Value::Text(h));
    }
    if conds.is_empty() {
        (String::new(), args)
    } else {
        (format!("WHERE {}", conds.join(" AND ")), args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_placeholders_in_the_engines_syntax() {
        let f = Filter {
            exe: Some("/usr/bin/curl".into()),
            port: Some(443),
            dest: Some("10.0.0.0/8".parse().unwrap()),
            ..Filter::default()
        };
        let (sql, args) = where_clause(&f, '$');
        assert_eq!(
            sql,
            "WHERE exe = $1 AND raddr_key >= $2 AND raddr_key <= $3 AND rport = $4"
        );
        assert_eq!(args[0], Value::Text("/usr/bin/curl"));
        assert_eq!(args[3], Value::Int(443));
        let (sql, _) = where_clause(&f, '?');
        assert!(
            sql.starts_with("WHERE exe = ?1 AND raddr_key >= ?2"),
            "{sql}"
        );
        assert_eq!(
            where_clause(&Filter::default(), '?'),
            (String::new(), vec![])
        );
    }
}
