//! The writer thread with a real SQLite store: everything queued is written
//! at stop; a store that is away is reconnected; overflow is counted and
//! recorded as a gap, so that rows + lost = events pushed.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netev_store::writer::{Writer, WriterConfig};
use netev_store::{Error, SqliteStore, Store};

fn events(n: usize) -> Vec<netev_event::Event> {
    (0..n)
        .map(|i| common::ev(i as i64, "/usr/bin/curl", "192.0.2.1", 443))
        .collect()
}

fn wait_for_error(w: &Writer) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(e) = w.stats().error() {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "the writer never tried the store"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn stop_writes_everything_queued() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("netev.db");
    let first: Box<dyn Store> = Box::new(SqliteStore::open(&path).unwrap());
    let reopen = path.clone();
    let w = Writer::spawn(
        Some(first),
        Box::new(move || Ok(Box::new(SqliteStore::open(&reopen)?) as Box<dyn Store>)),
        WriterConfig::new("h"),
    );
    for ev in events(25_000) {
        w.push(ev);
    }
    let stats = w.stop();
    assert_eq!(stats.written.load(Ordering::Relaxed), 25_000);
    assert_eq!(stats.lost.load(Ordering::Relaxed), 0);
    assert_eq!(SqliteStore::open(&path).unwrap().count().unwrap(), 25_000);
}

#[test]
fn a_store_that_is_away_is_waited_for_and_overflow_becomes_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("netev.db");
    let up = Arc::new(AtomicBool::new(false));
    let (flag, reopen) = (up.clone(), path.clone());
    let mut cfg = WriterConfig::new("h");
    cfg.queue = 100;
    cfg.batch = 50;
    let w = Writer::spawn(
        None,
        Box::new(move || {
            if flag.load(Ordering::SeqCst) {
                Ok(Box::new(SqliteStore::open(&reopen)?) as Box<dyn Store>)
            } else {
                Err(Error::Invalid("the database is away (test)".into()))
            }
        }),
        cfg,
    );
    for ev in events(1_000) {
        w.push(ev);
    }
    // the queue holds 100 and one batch is in hand: most were lost, counted
    let lost_while_away = w.stats().lost.load(Ordering::Relaxed);
    assert!(lost_while_away >= 800, "{lost_while_away}");
    // the writer thread may not have tried the store yet
    let error = wait_for_error(&w);
    assert!(error.contains("away"), "{error}");
    up.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(60);
    while w.stats().written.load(Ordering::Relaxed) + lost_while_away < 1_000 {
        assert!(Instant::now() < deadline, "the writer did not catch up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = w.stop();
    let written = stats.written.load(Ordering::Relaxed);
    let lost = stats.lost.load(Ordering::Relaxed);
    assert_eq!(written + lost, 1_000, "every event is written or counted");
    assert!(stats.error().is_none());
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.count().unwrap(), written);
    let recorded: u64 = s.gaps(None).unwrap().iter().map(|g| g.lost).sum();
    assert_eq!(recorded, lost, "the loss is in the gaps table");
}

#[test]
fn stopping_while_the_store_stays_away_ends_and_counts_everything_lost() {
    let mut cfg = WriterConfig::new("h");
    cfg.queue = 100;
    cfg.batch = 50;
    let w = Writer::spawn(
        None,
        Box::new(|| Err(Error::Invalid("the database is away (test)".into()))),
        cfg,
    );
    for ev in events(1_000) {
        w.push(ev);
    }
    wait_for_error(&w);
    // a full batch in hand and a full queue: the thread must still notice
    // the stop and give up after its grace period
    let stats = w.stop();
    assert_eq!(stats.written.load(Ordering::Relaxed), 0);
    assert_eq!(
        stats.lost.load(Ordering::Relaxed),
        1_000,
        "every event counted"
    );
}
