//! The PostgreSQL engine against a real private server (netev-testsupport's
//! pgserver): the common suite, then what is PostgreSQL's own (concurrent
//! starts, transactions, connection strings, servers that are away).

mod common;

use std::sync::{Arc, Barrier};

use netev_store::{pg, schema, Error, Filter, Gap, PgStore, Store, TopBy};
use netev_testsupport::pgserver::PgServer;

macro_rules! suite {
    ($($name:ident),+) => {$(
        #[test]
        fn $name() {
            let Some(pg) = PgServer::start_or_skip() else { return };
            let mut s = PgStore::connect(&pg.create_database(stringify!($name))).unwrap();
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
fn concurrent_starts_against_a_fresh_database_migrate_it_once() {
    let Some(pg) = PgServer::start_or_skip() else {
        return;
    };
    // A race lost without the lock needs the starts to overlap: several
    // rounds of several starters.
    for round in 0..5 {
        let url = pg.create_database(&format!("fleet{round}"));
        let starters = 4;
        let barrier = Arc::new(Barrier::new(starters));
        let handles: Vec<_> = (0..starters)
            .map(|_| {
                let (url, barrier) = (url.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    PgStore::connect(&url).map(drop)
                })
            })
            .collect();
        for h in handles {
            if let Err(e) = h.join().unwrap() {
                panic!(
                    "round {round}: a concurrent start failed: {e}\n{}",
                    pg.log()
                );
            }
        }
        let versions = pg.psql(
            &format!("fleet{round}"),
            "SELECT version, COUNT(*) FROM netev_schema GROUP BY version ORDER BY version",
        );
        let want: Vec<String> = (1..=schema::POSTGRES.len())
            .map(|v| format!("{v}|1"))
            .collect();
        assert_eq!(versions, want.join("\n"), "round {round}");
    }
}

#[test]
fn a_database_from_a_newer_netev_is_refused() {
    let Some(pg) = PgServer::start_or_skip() else {
        return;
    };
    let url = pg.create_database("newer");
    drop(PgStore::connect(&url).unwrap());
    pg.psql("newer", "INSERT INTO netev_schema (version) VALUES (99)");
    match PgStore::connect(&url) {
        Err(Error::TooNew { found: 99, known }) => assert_eq!(known, schema::POSTGRES.len() as i64),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_batch_that_fails_leaves_no_events_and_no_counts() {
    let Some(pg) = PgServer::start_or_skip() else {
        return;
    };
    let url = pg.create_database("batch");
    let mut s = PgStore::connect(&url).unwrap();
    // The server refusing one row stands in for anything that fails half
    // way through a batch (a full disk, a dropped connection).
    pg.psql("batch", "ALTER TABLE events ADD CHECK (comm <> 'poison')");
    let mut poison = common::ev(3, "/usr/bin/curl", "192.0.2.1", 443);
    poison.comm = "poison".into();
    let batch = [
        common::ev(1, "/usr/bin/curl", "192.0.2.1", 443),
        common::ev(2, "/usr/bin/wget", "192.0.2.2", 80),
        poison,
    ];
    let err = s.insert("a", &batch).unwrap_err().to_string();
    assert!(
        err.contains("inserting a batch of 3 events") && err.contains("check constraint"),
        "{err}"
    );
    assert_nothing_stored(&pg, &mut s);

    // The events went in and the counts failed: the events go too.
    pg.psql(
        "batch",
        "ALTER TABLE count_blocks ADD CHECK (host <> 'poisoned')",
    );
    let batch = [
        common::ev(1, "/usr/bin/curl", "192.0.2.1", 443),
        common::ev(2, "/usr/bin/wget", "192.0.2.2", 80),
    ];
    let err = s.insert("poisoned", &batch).unwrap_err().to_string();
    assert!(err.contains("writing the counts"), "{err}");
    assert_nothing_stored(&pg, &mut s);

    // and the connection is still good for the next batch
    s.insert("a", &[common::ev(5, "/usr/bin/curl", "192.0.2.1", 443)])
        .unwrap();
    assert_eq!(s.count().unwrap(), 1);
    assert_eq!(s.top(TopBy::Exe, None, 10).unwrap()[0].ops, 1);
}

fn assert_nothing_stored(pg: &PgServer, s: &mut PgStore) {
    assert_eq!(s.count().unwrap(), 0);
    assert!(s.top(TopBy::Exe, None, 10).unwrap().is_empty());
    assert_eq!(pg.psql("batch", "SELECT COUNT(*) FROM count_blocks"), "0");
}

#[test]
fn nothing_listening_is_a_clear_error_naming_host_and_port() {
    // No server needed: a port that was free a moment ago.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = PgStore::connect(&format!("postgres://netev@127.0.0.1:{port}/netev"))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(
        err.contains("check that the server runs") && err.contains("store.url"),
        "{err}"
    );
    assert!(err.contains("refused"), "the cause is there too: {err}");

    let err = PgStore::connect("host=/nonexistent/netev port=5999 user=netev dbname=netev")
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/netev/.s.PGSQL.5999"), "{err}");
    assert!(err.contains("check that the server runs"), "{err}");

    let err = PgStore::connect("postgres://netev@127.0.0.1:notaport/netev")
        .unwrap_err()
        .to_string();
    assert!(err.contains("connection string"), "{err}");
}

#[test]
fn a_missing_database_or_a_user_without_rights_says_what_to_do() {
    let Some(pg) = PgServer::start_or_skip() else {
        return;
    };
    let err = PgStore::connect(&pg.url("nosuchdb"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"nosuchdb\" does not exist") && err.contains("createdb"),
        "{err}"
    );

    // Since PostgreSQL 15 only a database's owner may create tables in it.
    pg.create_database("shared");
    pg.psql("postgres", "CREATE ROLE reader LOGIN");
    let as_reader = format!("postgres://reader@127.0.0.1:{}/shared", pg.port());
    let err = PgStore::connect(&as_reader).unwrap_err().to_string();
    assert!(
        err.contains("reader may not create tables in database shared"),
        "{err}"
    );
    // Once the owner created them, reading needs no more than SELECT.
    let mut owner = PgStore::connect(&pg.url("shared")).unwrap();
    owner
        .insert("a", &[common::ev(1, "/usr/bin/curl", "192.0.2.1", 443)])
        .unwrap();
    pg.psql(
        "shared",
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader",
    );
    let reader = PgStore::connect(&as_reader).unwrap();
    assert_eq!(reader.query(&Filter::default()).unwrap().len(), 1);
}

#[test]
fn socket_and_key_value_connection_strings_work_and_no_password_is_shown() {
    let Some(pg) = PgServer::start_or_skip() else {
        return;
    };
    pg.create_database("conn");
    // trust authentication: the server never asks for the password
    let conninfo = format!("{} password=hunter2", pg.socket_conninfo("conn"));
    let mut s = PgStore::connect(&conninfo).unwrap();
    s.insert("a", &[common::ev(1, "/usr/bin/curl", "192.0.2.1", 443)])
        .unwrap();
    let d = s.describe();
    assert!(!d.contains("hunter2"), "{d}");
    assert!(
        d.contains(&pg.socket_dir().display().to_string()) && d.contains("/conn"),
        "{d}"
    );

    let url = format!(
        "postgres://postgres:hunter2@127.0.0.1:{}/conn?application_name=x",
        pg.port()
    );
    let s = PgStore::connect(&url).unwrap();
    assert_eq!(s.count().unwrap(), 1);
    let d = s.describe();
    assert_eq!(
        d,
        format!(
            "PostgreSQL postgres://postgres@127.0.0.1:{}/conn",
            pg.port()
        )
    );
}

#[test]
fn text_postgresql_cannot_hold_still_round_trips_and_plain_text_is_stored_as_is() {
    let Some(pg) = PgServer::start_or_skip() else {
        return;
    };
    let mut s = PgStore::connect(&pg.create_database("text")).unwrap();
    let odd_exe = "/opt/a\0b/\u{FDD0}0/x";
    let mut odd = common::ev(1, odd_exe, "192.0.2.1", 443);
    odd.user = Some("\0".into());
    let plain = common::ev(2, "/usr/bin/curl", "192.0.2.1", 443);
    s.insert("h\0st", &[odd.clone(), plain]).unwrap();
    s.record_gap(&Gap {
        host: "h\0st".into(),
        ts: common::t(1),
        lost: 1,
        reason: "nul \0 here".into(),
    })
    .unwrap();

    let rows = s
        .query(&Filter {
            exe: Some(odd_exe.into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].host.as_str(), &rows[0].event), ("h\0st", &odd));
    assert_eq!(
        s.query(&Filter {
            host: Some("h\0st".into()),
            ..Default::default()
        })
        .unwrap()
        .len(),
        2
    );
    // (sorted here: ties in `top` go by the stored form, see pg.rs)
    let mut keys: Vec<String> = s
        .top(TopBy::Exe, None, 10)
        .unwrap()
        .into_iter()
        .map(|r| r.key)
        .collect();
    keys.sort();
    assert_eq!(keys, [odd_exe, "/usr/bin/curl"]);
    assert_eq!(
        s.top(TopBy::User, None, 10)
            .unwrap()
            .iter()
            .filter(|r| r.key == "\0")
            .count(),
        1
    );
    assert_eq!(s.gaps(None).unwrap()[0].reason, "nul \0 here");
    // what other tools see of ordinary text is the text
    assert_eq!(
        pg.psql(
            "text",
            "SELECT COUNT(*) FROM events WHERE exe = '/usr/bin/curl' AND user_name = 'alice'"
        ),
        "1"
    );
    assert_eq!(
        pg.psql(
            "text",
            "SELECT COUNT(*) FROM events WHERE starts_with(exe, U&'\\FDD0')"
        ),
        "1"
    );
}

#[test]
fn big_batches_and_chunked_retention() {
    let Some(pg) = PgServer::start_or_skip() else {
        return;
    };
    let mut s = PgStore::connect(&pg.create_database("big")).unwrap();
    let events: Vec<_> = (0..45_000)
        .map(|i| {
            common::ev(
                i / 100,
                if i % 3 == 0 {
                    "/usr/bin/wget"
                } else {
                    "/usr/bin/curl"
                },
                "192.0.2.1",
                443,
            )
        })
        .collect();
    s.insert("a", &events[..30_000]).unwrap();
    s.insert("a", &events[30_000..]).unwrap();
    assert_eq!(s.count().unwrap(), 45_000);
    let top = s.top(TopBy::Exe, None, 10).unwrap();
    assert_eq!(
        top.iter()
            .map(|r| (r.key.as_str(), r.ops, r.events))
            .collect::<Vec<_>>(),
        [
            ("/usr/bin/curl", 30_000, 30_000),
            ("/usr/bin/wget", 15_000, 15_000)
        ]
    );
    // more than two chunks of 20 000
    let n = s
        .retain(
            &netev_store::Retention {
                max_age: None,
                max_rows: Some(100),
            },
            common::t(0),
        )
        .unwrap();
    assert_eq!(n, 44_900);
    let left = s
        .query(&Filter {
            limit: 1000,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(left.len(), 100);
    assert_eq!(left.last().unwrap().event, events[44_999]);
}

#[test]
fn a_server_that_goes_away_is_reported_as_a_lost_connection() {
    let Some(mut pg) = PgServer::start_or_skip() else {
        return;
    };
    let mut s = PgStore::connect(&pg.create_database("away")).unwrap();
    s.insert("a", &[common::ev(1, "/usr/bin/curl", "192.0.2.1", 443)])
        .unwrap();
    pg.stop();
    match s.insert("a", &[common::ev(2, "/usr/bin/curl", "192.0.2.1", 443)]) {
        Err(Error::Postgres { source, context }) => {
            assert!(pg::connection_lost(&source), "{context}: {source:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(s.is_closed());
    // and connecting again says nothing listens
    let err = PgStore::connect(&pg.url("away")).unwrap_err();
    match &err {
        Error::Postgres { source, .. } => assert!(pg::connection_lost(source), "{err}"),
        other => panic!("{other:?}"),
    }
}

/// A database from schema 1 (counts as a row per key): after the upgrade,
/// `top` adds those rows to the new blocks, and a minute's blocks from
/// many batches are merged once it is past.
#[test]
fn counts_from_before_the_upgrade_still_count_and_blocks_merge() {
    let Some(pg) = PgServer::start_or_skip() else {
        return;
    };
    let url = pg.create_database("upgrade");
    pg.psql("upgrade", schema::VERSION_TABLE);
    pg.psql("upgrade", schema::POSTGRES[0]);
    let minute = common::t(0).timestamp() / 60;
    pg.psql(
        "upgrade",
        &format!(
            "INSERT INTO netev_schema (version) VALUES (1);
             INSERT INTO event_counts (grouping, key, minute, ops, events)
             VALUES ('dest', '192.0.2.1', {minute}, 7, 5), ('dest', '192.0.2.9', {minute}, 3, 3)"
        ),
    );
    let mut s = PgStore::connect(&url).unwrap();
    for secs in 0..300 {
        s.insert("a", &[common::ev(secs, "/usr/bin/curl", "192.0.2.1", 443)])
            .unwrap();
    }
    let top = s.top(TopBy::Dest, None, 10).unwrap();
    assert_eq!(
        top.iter()
            .map(|r| (r.key.as_str(), r.ops, r.events))
            .collect::<Vec<_>>(),
        [("192.0.2.1", 307, 305), ("192.0.2.9", 3, 3)]
    );
    // 300 s from :20 span 6 minutes; all but the newest two are merged
    assert_eq!(
        pg.psql(
            "upgrade",
            "SELECT COUNT(*) FILTER (WHERE n = 1), COUNT(*) FROM
             (SELECT minute, COUNT(*) AS n FROM count_blocks WHERE grouping = 'dest' GROUP BY minute) m"
        ),
        "4|6"
    );
}
