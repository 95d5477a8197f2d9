//! The suite both engines must pass (called from sqlite.rs and pg.rs).
#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use netev_event::{Event, Family, Op, Proto, SockType, Verdict};
use netev_store::{Filter, Gap, Retention, Store, TopBy};

pub fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_790_000_000 + secs, 123_456_789)
        .unwrap()
}

pub fn ev(secs: i64, exe: &str, raddr: &str, rport: u16) -> Event {
    let mut e = Event::new(Op::Connect);
    e.ts = t(secs);
    e.pid = 4242;
    e.tid = 4243;
    e.ppid = 1;
    e.uid = 1000;
    e.gid = 1000;
    e.user = Some("alice".into());
    e.comm = "curl".into();
    e.exe = Some(exe.into());
    e.cmdline = Some(format!("{exe} https://example.org"));
    e.family = if raddr.contains(':') {
        Family::INET6
    } else {
        Family::INET
    };
    e.sock_type = SockType::STREAM;
    e.proto = Some(Proto::TCP);
    e.laddr = Some("10.0.0.2".parse().unwrap());
    e.lport = Some(40000);
    e.raddr = Some(raddr.parse().unwrap());
    e.rport = Some(rport);
    e.ret = Some(0);
    e.verdict = Verdict::Allow;
    e.rule = None;
    e.count = 1;
    e
}

pub fn every_field_round_trips_including_hostile_strings(s: &mut dyn Store) {
    let mut hostile = ev(1, "/opt/'; DROP TABLE events; --/bin/x", "2001:db8::1", 443);
    hostile.comm = "a\"b'c\nd\0e".into();
    hostile.cmdline = Some("ünïcødé ✓ \u{202e}rtl\r\n\t'--".into());
    hostile.user = None;
    hostile.verdict = Verdict::Deny;
    hostile.rule = Some(7);
    hostile.ret = Some(-1);
    hostile.count = 31;
    hostile.family = Family(42); // unknown numbers keep their value
    hostile.proto = None;
    let mut unix = Event::new(Op::Socket);
    unix.ts = t(2);
    unix.family = Family::UNIX;
    unix.comm = "x".into();
    unix.verdict = Verdict::Observe;
    let mut mapped = ev(3, "/usr/bin/ssh", "::ffff:192.0.2.7", 22);
    mapped.laddr = Some("::".parse().unwrap());
    let all = vec![hostile, unix, mapped];
    s.insert("host-ä", &all).unwrap();
    let rows = s.query(&Filter::default()).unwrap();
    assert_eq!(rows.len(), 3);
    for (row, want) in rows.iter().zip(&all) {
        assert_eq!(&row.event, want);
        assert_eq!(row.host, "host-ä");
    }
    assert_eq!(s.count().unwrap(), 3);
    // the table is still there, and JSON carries the host
    assert!(rows[0].to_json().contains("\"host\":\"host-ä\""));
}

pub fn filters_select_what_they_say(s: &mut dyn Store) {
    let mut denied = ev(30, "/usr/bin/curl", "192.0.2.10", 80);
    denied.verdict = Verdict::Deny;
    let mut sent = ev(40, "/usr/bin/dig", "2001:db8::53", 53);
    sent.op = Op::Sendmsg;
    s.insert(
        "a",
        &[
            ev(10, "/usr/bin/curl", "192.0.2.1", 443),
            ev(20, "/usr/bin/wget", "198.51.100.1", 443),
            denied,
            sent,
            ev(50, "/usr/bin/ssh", "::ffff:192.0.2.99", 22),
        ],
    )
    .unwrap();
    s.insert("b", &[ev(60, "/usr/bin/curl", "203.0.113.5", 443)])
        .unwrap();
    let mut pids = |f: Filter| -> Vec<i64> {
        s.query(&f)
            .unwrap()
            .iter()
            .map(|r| (r.event.ts - t(0)).num_seconds())
            .collect()
    };
    assert_eq!(pids(Filter::default()), [10, 20, 30, 40, 50, 60]);
    assert_eq!(
        pids(Filter {
            since: Some(t(20)),
            until: Some(t(50)),
            ..Default::default()
        }),
        [20, 30, 40]
    );
    assert_eq!(
        pids(Filter {
            exe: Some("/usr/bin/curl".into()),
            ..Default::default()
        }),
        [10, 30, 60]
    );
    assert_eq!(
        pids(Filter {
            op: Some(Op::Sendmsg),
            ..Default::default()
        }),
        [40]
    );
    assert_eq!(
        pids(Filter {
            verdict: Some(Verdict::Deny),
            ..Default::default()
        }),
        [30]
    );
    // an IPv4 network covers IPv4-mapped IPv6 too
    assert_eq!(
        pids(Filter {
            dest: Some("192.0.2.0/24".parse().unwrap()),
            ..Default::default()
        }),
        [10, 30, 50]
    );
    assert_eq!(
        pids(Filter {
            dest: Some("2001:db8::/32".parse().unwrap()),
            ..Default::default()
        }),
        [40]
    );
    assert_eq!(
        pids(Filter {
            dest: Some("192.0.2.10/32".parse().unwrap()),
            ..Default::default()
        }),
        [30]
    );
    assert_eq!(
        pids(Filter {
            port: Some(443),
            ..Default::default()
        }),
        [10, 20, 60]
    );
    assert_eq!(
        pids(Filter {
            host: Some("b".into()),
            ..Default::default()
        }),
        [60]
    );
    // the newest N, oldest first
    assert_eq!(
        pids(Filter {
            limit: 2,
            ..Default::default()
        }),
        [50, 60]
    );
    assert_eq!(
        pids(Filter {
            exe: Some("/nowhere".into()),
            ..Default::default()
        }),
        Vec::<i64>::new()
    );
}

pub fn top_counts_operations_per_key(s: &mut dyn Store) {
    let mut burst = ev(0, "/usr/bin/curl", "192.0.2.1", 443);
    burst.count = 10; // a coalesced event stands for 10 calls
    s.insert(
        "a",
        &[
            burst,
            ev(1, "/usr/bin/curl", "192.0.2.1", 443),
            ev(2, "/usr/bin/wget", "192.0.2.2", 80),
            ev(200, "/usr/bin/wget", "192.0.2.2", 80),
        ],
    )
    .unwrap();
    let top = s.top(TopBy::Exe, None, 10).unwrap();
    assert_eq!(
        top.iter()
            .map(|r| (r.key.as_str(), r.ops, r.events))
            .collect::<Vec<_>>(),
        [("/usr/bin/curl", 11, 2), ("/usr/bin/wget", 2, 2)]
    );
    let by_port = s.top(TopBy::Port, None, 1).unwrap();
    assert_eq!((by_port[0].key.as_str(), by_port[0].ops), ("443", 11));
    let dest = s.top(TopBy::Dest, Some(t(120)), 10).unwrap();
    assert_eq!(
        (dest.len(), dest[0].key.as_str(), dest[0].ops),
        (1, "192.0.2.2", 1)
    );
    assert_eq!(s.top(TopBy::User, None, 10).unwrap()[0].key, "alice");
}

/// Many small batches over several minutes, from two hosts (each store
/// merges its own blocks of a minute once it is two minutes old): `top`
/// still counts every operation, for any window.
pub fn top_sums_every_batch_across_minutes_and_hosts(s: &mut dyn Store) {
    use std::collections::HashMap;
    let mut want: HashMap<String, u64> = HashMap::new();
    let mut want_since: HashMap<String, u64> = HashMap::new();
    for batch in 0..40i64 {
        let events: Vec<Event> = (0..25i64)
            .map(|i| {
                let secs = batch * 15 + i % 15; // 4 batches a minute, 10 minutes
                let dest = format!("192.0.2.{}", (batch * 7 + i * 3) % 50);
                let mut e = ev(secs, "/usr/bin/curl", &dest, 443);
                e.count = 1 + (i % 3) as u32;
                *want.entry(dest.clone()).or_default() += u64::from(e.count);
                // `top` windows start at a whole minute
                if t(secs).timestamp() / 60 >= t(300).timestamp() / 60 {
                    *want_since.entry(dest).or_default() += u64::from(e.count);
                }
                e
            })
            .collect();
        let host = if batch % 2 == 0 { "a" } else { "b" };
        s.insert(host, &events).unwrap();
    }
    let check = |got: Vec<netev_store::TopRow>, want: &HashMap<String, u64>| {
        let mut want: Vec<(String, u64)> = want.iter().map(|(k, v)| (k.clone(), *v)).collect();
        want.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        want.truncate(100);
        let got: Vec<(String, u64)> = got.into_iter().map(|r| (r.key, r.ops)).collect();
        assert_eq!(got, want);
    };
    check(s.top(TopBy::Dest, None, 100).unwrap(), &want);
    check(s.top(TopBy::Dest, Some(t(300)), 100).unwrap(), &want_since);
    let total: u64 = want.values().sum();
    let exe = s.top(TopBy::Exe, None, 10).unwrap();
    assert_eq!((exe.len(), exe[0].ops, exe[0].events), (1, total, 1000));
}

pub fn retention_drops_the_oldest_by_age_and_count(s: &mut dyn Store) {
    let events: Vec<Event> = (0..100)
        .map(|i| ev(i * 60, "/usr/bin/curl", "192.0.2.1", 443))
        .collect();
    s.insert("a", &events).unwrap();
    let now = t(100 * 60);
    let n = s
        .retain(
            &Retention {
                max_age: Some(std::time::Duration::from_secs(30 * 60)),
                max_rows: None,
            },
            now,
        )
        .unwrap();
    assert_eq!(n, 70);
    let left = s
        .query(&Filter {
            limit: 1000,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(left.first().unwrap().event.ts, t(70 * 60));
    // the counts for `top` go with them
    assert_eq!(s.top(TopBy::Exe, None, 1).unwrap()[0].ops, 30);
    s.retain(
        &Retention {
            max_age: None,
            max_rows: Some(10),
        },
        now,
    )
    .unwrap();
    let left = s
        .query(&Filter {
            limit: 1000,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(left.len(), 10);
    assert_eq!(left.first().unwrap().event.ts, t(90 * 60));
}

pub fn gaps_are_recorded(s: &mut dyn Store) {
    s.record_gap(&Gap {
        host: "a".into(),
        ts: t(5),
        lost: 1234,
        reason: "disk full".into(),
    })
    .unwrap();
    let g = s.gaps(None).unwrap();
    assert_eq!(
        (g.len(), g[0].lost, g[0].reason.as_str()),
        (1, 1234, "disk full")
    );
    assert!(s.gaps(Some(t(6))).unwrap().is_empty());
}

pub fn a_batch_id_is_stored_once(s: &mut dyn Store) {
    let events = [
        ev(1, "/usr/bin/curl", "192.0.2.1", 443),
        ev(2, "/usr/bin/curl", "192.0.2.2", 443),
    ];
    assert!(s.insert_batch("h1", "h1:1:1", &events, None).unwrap());
    // delivered again: nothing written
    assert!(!s.insert_batch("h1", "h1:1:1", &events, None).unwrap());
    assert_eq!(s.count().unwrap(), 2);
    let rows = s.query(&Filter::default()).unwrap();
    assert!(rows.iter().all(|r| r.host == "h1"), "{rows:?}");
    let gap = Gap {
        host: "h1".into(),
        ts: t(3),
        lost: 7,
        reason: "the export's spool was full".into(),
    };
    assert!(s.insert_batch("h1", "h1:1:2", &[], Some(&gap)).unwrap());
    assert!(!s.insert_batch("h1", "h1:1:2", &[], Some(&gap)).unwrap());
    assert_eq!(s.gaps(None).unwrap(), vec![gap]);
    assert_eq!(s.count().unwrap(), 2);
}
