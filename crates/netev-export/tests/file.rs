//! The file export through the exporter: every event pushed is in the file
//! once or counted in a gap record there, and rotation keeps whole lines.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use netev_event::{Event, Op};
use netev_export::{Exporter, ExporterConfig};
use serde_json::Value;

fn lines(dir: &std::path::Path) -> Vec<Value> {
    // oldest first: events.json.N … events.json.1, events.json
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("events.json")
        })
        .collect();
    files.sort_by_key(|p| {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        std::cmp::Reverse(name.rsplit('.').next().unwrap().parse::<u32>().unwrap_or(0))
    });
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{f:?} ends mid-line"
        );
        for l in text.lines() {
            out.push(serde_json::from_str(l).unwrap_or_else(|e| panic!("{f:?}: {e}: {l}")));
        }
    }
    out
}

#[test]
fn every_event_is_in_the_file_or_in_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let url = format!("file:{}/events.json?rotate=4K&keep=100000", out.display());
    let mut cfg = ExporterConfig::new("h", dir.path().join("spool"));
    // a queue this small overflows: the loss must show as gap records
    cfg.queue = 8;
    cfg.batch = 4;
    cfg.max_delay = Duration::from_millis(5);
    let e = Exporter::start(url.parse().unwrap(), cfg).unwrap();
    let n = 5000u32;
    for pid in 0..n {
        let mut ev = Event::new(Op::Connect);
        ev.pid = pid;
        ev.comm = "x\n\"]".into();
        e.push(ev);
        // the first half paced so that most of it gets through, the rest at once
        if pid < n / 2 && pid % 4 == 0 {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    let stats = e.stop();
    let lost = stats.lost.load(Ordering::Relaxed);
    let exported = stats.exported.load(Ordering::Relaxed);
    assert_eq!(lost + exported, n as u64);
    assert!(lost > 0, "the queue of 8 overflowed");

    let mut pids = BTreeSet::new();
    let mut gap_lost = 0;
    let all = lines(&out);
    for v in &all {
        if let Some(g) = v.get("gap") {
            gap_lost += g["lost"].as_u64().unwrap();
        } else {
            assert_eq!(v["comm"], "x\n\"]");
            assert!(pids.insert(v["pid"].as_u64().unwrap()), "a duplicate: {v}");
        }
    }
    assert_eq!(pids.len() as u64, exported);
    assert_eq!(gap_lost, lost, "every loss recorded in the file");
    // in order: pids only grow (the queue keeps order; losses only skip)
    let order: Vec<u64> = all.iter().filter_map(|v| v["pid"].as_u64()).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]));
    let files = std::fs::read_dir(&out).unwrap().count();
    assert!(files > 1, "rotated at 4K ({exported} events)");
}
