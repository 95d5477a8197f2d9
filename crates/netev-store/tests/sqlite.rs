//! The SQLite engine against real database files: the common suite, then
//! what is SQLite's own (files, damage, versions).

mod common;

use netev_store::{Error, Filter, SqliteStore};

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("netev.db")).unwrap();
    (dir, s)
}

macro_rules! suite {
    ($($name:ident),+) => {$(
        #[test]
        fn $name() {
            let (_d, mut s) = store();
            common::$name(&mut s);
        }
    )+};
}

suite!(
    every_field_round_trips_including_hostile_strings,
    filters_select_what_they_say,
    top_counts_operations_per_key,
    retention_drops_the_oldest_by_age_and_count,
    gaps_are_recorded
);

#[test]
fn reopening_keeps_everything_and_migrates_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("netev.db");
    let mut s = SqliteStore::open(&path).unwrap();
    s.insert("a", &[common::ev(1, "/usr/bin/curl", "192.0.2.1", 443)])
        .unwrap();
    drop(s);
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.count().unwrap(), 1);
    let ro = SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(ro.query(&Filter::default()).unwrap().len(), 1);
}

#[test]
fn a_damaged_or_foreign_file_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("netev.db");
    let junk = b"this is not SQLite at all, but it is somebody's data\n".repeat(100);
    std::fs::write(&path, &junk).unwrap();
    let err = SqliteStore::open(&path).unwrap_err().to_string();
    assert!(
        err.contains("is not a netev event database or is damaged"),
        "{err}"
    );
    assert!(err.contains("move it"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), junk, "the file is untouched");
    let missing = SqliteStore::open_read_only(&dir.path().join("none.db")).unwrap_err();
    assert!(missing.to_string().contains("does not exist"), "{missing}");
}

#[test]
fn a_database_from_a_newer_netev_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("netev.db");
    drop(SqliteStore::open(&path).unwrap());
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute("INSERT INTO netev_schema (version) VALUES (99)", [])
        .unwrap();
    drop(c);
    match SqliteStore::open(&path) {
        Err(Error::TooNew { found: 99, .. }) => {}
        other => panic!("{other:?}"),
    }
}
