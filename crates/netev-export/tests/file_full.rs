//! A file export whose disk is "full": writes past RLIMIT_FSIZE fail
//! (EFBIG, as ENOSPC would), the batches spool, and once writes work again
//! every event is in the file exactly once, no line cut. Its own test
//! binary: the limit is the whole process's.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use netev_event::{Event, Op};
use netev_export::{Exporter, ExporterConfig};

fn set_fsize(limit: libc::rlim_t) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut r), 0);
        r.rlim_cur = limit.min(r.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &r), 0);
    }
}

fn wait(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_full_disk_spools_and_nothing_is_lost_or_doubled() {
    // SAFETY: ignoring a signal; writes past the limit then fail with EFBIG
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.json");
    let url = format!("file:{}?rotate=1024M", path.display());
    let mut cfg = ExporterConfig::new("h", dir.path().join("spool"));
    cfg.batch = 10;
    cfg.max_delay = Duration::from_millis(5);
    let e = Exporter::start(url.parse().unwrap(), cfg).unwrap();

    set_fsize(64 << 10);
    let n = 600u32;
    for pid in 0..n {
        let mut ev = Event::new(Op::Sendmsg);
        ev.pid = pid;
        ev.cmdline = Some("a command line of some length ".repeat(4));
        e.push(ev);
        std::thread::sleep(Duration::from_micros(300));
    }
    wait("the write to fail and batches to spool", || {
        e.stats().spooled.load(Ordering::Relaxed) > 0 && e.stats().error().is_some()
    });
    let err = e.stats().error().unwrap();
    assert!(err.contains("writing") && err.contains("spooled"), "{err}");
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size <= 64 << 10);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with('\n'), "a failed write left a half line");

    set_fsize(libc::RLIM_INFINITY);
    wait("the spool to drain", || {
        e.stats().spooled.load(Ordering::Relaxed) == 0
            && e.stats().exported.load(Ordering::Relaxed) == n as u64
    });
    let stats = e.stop();
    assert_eq!(stats.lost.load(Ordering::Relaxed), 0);

    let text = std::fs::read_to_string(&path).unwrap();
    let mut pids = BTreeSet::new();
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(pids.insert(v["pid"].as_u64().unwrap()), "twice: {l}");
    }
    assert_eq!(pids.len(), n as usize);
}
