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
    top_sums_every_batch_across_minutes_and_hosts,
    retention_drops_the_oldest_by_age_and_count,
    gaps_are_recorded,
    a_batch_id_is_stored_once
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

/// Each batch writes count blocks of its own; once a minute is two minutes
/// old its blocks are merged, so `top` over a day reads about one block per
/// grouping and minute, not one per batch.
#[test]
fn count_blocks_of_past_minutes_are_merged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("netev.db");
    let mut s = SqliteStore::open(&path).unwrap();
    for secs in 0..600 {
        // one event a second, one batch each: 60 batches a minute
        s.insert("a", &[common::ev(secs, "/usr/bin/curl", "192.0.2.1", 443)])
            .unwrap();
    }
    let db = rusqlite::Connection::open(&path).unwrap();
    let per_minute: Vec<(i64, i64)> = db
        .prepare(
            "SELECT minute, COUNT(*) FROM count_blocks WHERE grouping = 'dest'
             GROUP BY minute ORDER BY minute",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    // 600 s from :20 span 11 minutes; all but the newest two are merged
    assert_eq!(per_minute.len(), 11, "{per_minute:?}");
    assert!(
        per_minute[..9].iter().all(|&(_, n)| n == 1),
        "{per_minute:?}"
    );
    assert!(
        per_minute[9..].iter().all(|&(_, n)| n > 1),
        "{per_minute:?}"
    );
    let top = s.top(netev_store::TopBy::Dest, None, 10).unwrap();
    assert_eq!((top[0].key.as_str(), top[0].ops), ("192.0.2.1", 600));
}

/// A database from schema 1 counted `top` as a row per key in
/// `event_counts`: after the upgrade, `top` adds those to the new blocks,
/// and retention clears both.
#[test]
fn counts_from_before_the_upgrade_still_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("netev.db");
    {
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch(netev_store::schema::VERSION_TABLE)
            .unwrap();
        db.execute_batch(netev_store::schema::SQLITE[0]).unwrap();
        let minute = common::t(0).timestamp() / 60;
        db.execute("INSERT INTO netev_schema (version) VALUES (1);", [])
            .unwrap();
        db.execute(
            "INSERT INTO event_counts (grouping, key, minute, ops, events)
             VALUES ('dest', '192.0.2.1', ?1, 7, 5), ('dest', '192.0.2.9', ?1, 3, 3)",
            [minute],
        )
        .unwrap();
    }
    let mut s = SqliteStore::open(&path).unwrap();
    s.insert("a", &[common::ev(0, "/usr/bin/curl", "192.0.2.1", 443)])
        .unwrap();
    let top = s.top(netev_store::TopBy::Dest, None, 10).unwrap();
    assert_eq!(
        top.iter()
            .map(|r| (r.key.as_str(), r.ops, r.events))
            .collect::<Vec<_>>(),
        [("192.0.2.1", 8, 6), ("192.0.2.9", 3, 3)]
    );
    s.retain(
        &netev_store::Retention {
            max_age: Some(std::time::Duration::from_secs(60)),
            max_rows: None,
        },
        common::t(3600),
    )
    .unwrap();
    assert!(s
        .top(netev_store::TopBy::Dest, None, 10)
        .unwrap()
        .is_empty());
}

/// A count block damaged on disk makes `top` fail with the row to look
/// at; the events themselves still read.
#[test]
fn a_damaged_count_block_is_reported_with_its_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("netev.db");
    let mut s = SqliteStore::open(&path).unwrap();
    s.insert("a", &[common::ev(0, "/usr/bin/curl", "192.0.2.1", 443)])
        .unwrap();
    let db = rusqlite::Connection::open(&path).unwrap();
    db.execute(
        "UPDATE count_blocks SET counts = x'ffffffff' WHERE grouping = 'dest'",
        [],
    )
    .unwrap();
    let id: i64 = db
        .query_row(
            "SELECT id FROM count_blocks WHERE grouping = 'dest'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let err = s
        .top(netev_store::TopBy::Dest, None, 10)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "count block {id} (table count_blocks) does not decode: 4 bytes"
        )),
        "{err}"
    );
    assert_eq!(s.query(&Filter::default()).unwrap().len(), 1);
    assert_eq!(s.top(netev_store::TopBy::Exe, None, 10).unwrap()[0].ops, 1);
}
