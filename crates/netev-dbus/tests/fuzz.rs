//! Fuzzing on stable Rust: what other processes send netevd over the bus —
//! `Subscribe`'s filter dict and the event of an `Ask` — fed arbitrary keys,
//! types and values: a filter, an event or an error, never a panic; an
//! event that decodes encodes back to the same wire event.
//! `NETEV_FUZZ_CASES` sets the cases (docs/operations.md, "Fuzzing").

use std::collections::HashMap;

use netev_dbus::{Filter, WireEvent};
use netev_event::Event;
use proptest::prelude::*;
use zbus::{OwnedVariant as OwnedValue, Variant as Value};

fn cases() -> u32 {
    std::env::var("NETEV_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096)
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "op", "verdict", "exe", "pid", "uid", "port", "dest", "family", "proto",
        ])
        .prop_map(str::to_string),
        any::<String>(),
    ]
}

fn value() -> impl Strategy<Value = OwnedValue> {
    prop_oneof![
        any::<String>().prop_map(|s| OwnedValue::try_from(Value::from(s)).unwrap()),
        any::<u32>().prop_map(OwnedValue::from),
        any::<i64>().prop_map(OwnedValue::from),
        any::<bool>().prop_map(OwnedValue::from),
        any::<u16>().prop_map(OwnedValue::from),
        proptest::collection::vec(any::<String>(), 0..4)
            .prop_map(|v| OwnedValue::try_from(Value::from(v)).unwrap()),
        proptest::collection::vec(any::<u32>(), 0..4)
            .prop_map(|v| OwnedValue::try_from(Value::from(v)).unwrap()),
        proptest::sample::select(vec![
            "connect",
            "bind",
            "deny",
            "10.0.0.0/8",
            "::1",
            "/usr/bin/curl",
            "inet6",
            "tcp"
        ])
        .prop_map(|s| OwnedValue::try_from(Value::from(s)).unwrap()),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::sample::select(vec![
            "",
            "connect",
            "sendmsg",
            "inet",
            "inet6",
            "unix",
            "stream",
            "dgram",
            "tcp",
            "udp",
            "allow",
            "deny",
            "observe",
            "127.0.0.1",
            "::ffff:1.2.3.4",
            "fe80::1%eth0",
        ])
        .prop_map(str::to_string),
    ]
}

prop_compose! {
    fn wire()(
        ts_ns in any::<i64>(), pid in any::<u32>(), tid in any::<u32>(), ppid in any::<u32>(),
        uid in any::<u32>(), gid in any::<u32>(),
        user in text(), comm in text(), exe in text(), cmdline in text(),
        op in text(), family in text(), sock_type in text(), proto in text(),
        laddr in text(), lport in any::<u16>(), raddr in text(), rport in any::<u16>(),
        has_ret in any::<bool>(), ret in any::<i32>(), verdict in text(),
        rule in any::<u32>(), count in any::<u32>(),
    ) -> WireEvent {
        WireEvent {
            ts_ns, pid, tid, ppid, uid, gid, user, comm, exe, cmdline, op, family, sock_type,
            proto, laddr, lport, raddr, rport, has_ret, ret, verdict, rule, count,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_filter_dict_is_a_filter_or_an_error(
        pairs in proptest::collection::vec((key(), value()), 0..6)
    ) {
        let dict: HashMap<String, OwnedValue> = pairs.into_iter().collect();
        if let Ok(f) = Filter::from_dict(dict) {
            // what parsed travels again as a dict and means the same
            let dict: HashMap<String, OwnedValue> = f
                .to_dict()
                .into_iter()
                .map(|(k, v)| (k.to_string(), OwnedValue::try_from(v).unwrap()))
                .collect();
            let again = Filter::from_dict(dict);
            prop_assert_eq!(again.ok(), Some(f));
        }
    }

    #[test]
    fn any_wire_event_is_an_event_or_an_error(w in wire()) {
        if let Ok(ev) = Event::try_from(w.clone()) {
            let back = WireEvent::from(ev.clone());
            let again = Event::try_from(back);
            prop_assert_eq!(again.ok(), Some(ev.clone()));
            let _ = ev.to_json();
            let _ = ev.to_text();
        }
    }
}
