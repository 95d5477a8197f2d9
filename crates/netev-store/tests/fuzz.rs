//! Fuzzing on stable Rust: what a user or another process hands the store —
//! a query's filter pairs (`netev log`, QueryEvents) and rows of a database
//! someone else wrote or damaged (any type, any value in any column, SQLite
//! keeps what it is given) — answered with rows or an error, never a panic.
//! `NETEV_FUZZ_CASES` sets the cases (docs/operations.md, "Fuzzing").

use chrono::{TimeZone, Utc};
use netev_store::schema::EVENT_COLUMNS;
use netev_store::sqlite::SqliteStore;
use netev_store::{Filter, TopBy};
use proptest::prelude::*;
use rusqlite::types::Value;

fn cases() -> u32 {
    std::env::var("NETEV_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096)
}

fn pair() -> impl Strategy<Value = (String, String)> {
    (
        prop_oneof![
            proptest::sample::select(netev_store::query::FILTER_KEYS.to_vec())
                .prop_map(str::to_string),
            any::<String>(),
        ],
        prop_oneof![
            any::<String>(),
            "[0-9a-z:./ -]{0,20}",
            Just("1h".to_string()),
            Just("2026-12-01T10:00:00Z".to_string()),
            Just("10.0.0.0/8".to_string()),
            Just("99999999999999999999".to_string()),
        ],
    )
}

fn cell() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::Integer),
        any::<f64>().prop_map(Value::Real),
        any::<String>().prop_map(Value::Text),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(Value::Blob),
        proptest::sample::select(vec!["connect", "inet6", "tcp", "deny", "::1", "1.2.3.4"])
            .prop_map(|s| Value::Text(s.into())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_filter_pairs_are_a_filter_or_an_error(pairs in proptest::collection::vec(pair(), 0..6)) {
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
        let _ = Filter::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), now);
    }
}

proptest! {
    // each case writes and reads a database: a quarter of the cases
    #![proptest_config(ProptestConfig { cases: cases() / 4, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_damaged_row_is_an_error_never_a_panic(row in proptest::collection::vec(cell(), EVENT_COLUMNS.len())) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("netev.db");
        let store = SqliteStore::open(&path).unwrap();
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            let sql = format!(
                "INSERT INTO events ({}) VALUES ({})",
                EVENT_COLUMNS.join(", "),
                vec!["?"; EVENT_COLUMNS.len()].join(", ")
            );
            // a constraint may refuse the row: then there is nothing to read
            let _ = conn.execute(&sql, rusqlite::params_from_iter(row.iter()));
        }
        let _ = store.query(&Filter::default());
        for by in [TopBy::Exe, TopBy::Dest, TopBy::Port, TopBy::User] {
            let _ = store.top(by, None, 10);
        }
    }
}
