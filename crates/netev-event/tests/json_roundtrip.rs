//! An event's JSON reads back into the same event: what an export
//! consumer (netev-sql --from) decodes is what netevd captured.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chrono::{TimeZone, Utc};
use netev_event::{Event, Family, Op, Proto, SockType, Verdict};
use proptest::prelude::*;

fn ip() -> impl Strategy<Value = Option<IpAddr>> {
    prop_oneof![
        Just(None),
        any::<u32>().prop_map(|a| Some(IpAddr::V4(Ipv4Addr::from(a)))),
        any::<u128>().prop_map(|a| Some(IpAddr::V6(Ipv6Addr::from(a)))),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    let who = (
        0i64..4_000_000_000,
        0u32..1_000_000_000,
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<Option<String>>(),
        any::<String>(),
        any::<Option<String>>(),
        any::<Option<String>>(),
    );
    let what = (
        prop::sample::select(Op::ALL.to_vec()),
        any::<u16>(),
        any::<u16>(),
        any::<Option<u16>>(),
        ip(),
        any::<Option<u16>>(),
        ip(),
        any::<Option<u16>>(),
        any::<Option<String>>(),
        any::<Option<i32>>(),
    );
    let how = (
        prop::sample::select(Verdict::ALL.to_vec()),
        any::<Option<u32>>(),
        any::<u32>(),
        any::<bool>(),
    );
    (who, what, how).prop_map(|(w, x, h)| {
        let mut e = Event::new(x.0);
        e.ts = Utc.timestamp_opt(w.0, w.1).unwrap();
        (e.pid, e.tid, e.ppid, e.uid, e.gid) = (w.2, w.3, w.4, w.5, w.6);
        (e.user, e.comm, e.exe, e.cmdline) = (w.7, w.8, w.9, w.10);
        e.family = Family(x.1);
        e.sock_type = SockType(x.2);
        e.proto = x.3.map(Proto);
        (e.laddr, e.lport, e.raddr, e.rport) = (x.4, x.5, x.6, x.7);
        (e.path, e.ret) = (x.8, x.9);
        (e.verdict, e.rule, e.count, e.guard) = h;
        e
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]
    #[test]
    fn json_reads_back_into_the_same_event(e in event()) {
        let json = e.to_json();
        let back: Event = serde_json::from_str(&json).map_err(|err| TestCaseError::fail(format!("{json}: {err}")))?;
        prop_assert_eq!(back, e);
    }
}

#[test]
fn an_unknown_name_is_refused_and_says_what_it_expected() {
    let mut v: serde_json::Value =
        serde_json::from_str(&Event::new(Op::Connect).to_json()).unwrap();
    v["family"] = "martian".into();
    let err = serde_json::from_value::<Event>(v).unwrap_err().to_string();
    assert!(err.contains("unknown Family \"martian\""), "{err}");
}

#[test]
fn fields_a_newer_netev_adds_are_ignored() {
    let mut v: serde_json::Value = serde_json::from_str(&Event::new(Op::Bind).to_json()).unwrap();
    v["from_the_future"] = 1.into();
    assert_eq!(
        serde_json::from_value::<Event>(v).unwrap(),
        Event::new(Op::Bind)
    );
}
