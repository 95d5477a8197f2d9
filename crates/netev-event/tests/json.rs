//! The JSON form is a public contract: exact field names and value spellings.

use netev_event::{Event, Family, Op, Proto, SockType, Verdict};
use serde_json::Value;

#[test]
fn json_has_exactly_the_documented_fields() {
    let mut ev = Event::new(Op::Accept);
    ev.ts = "2026-11-25T10:00:00.000000001Z".parse().unwrap();
    ev.family = Family::INET6;
    ev.sock_type = SockType::STREAM;
    ev.proto = Some(Proto::TCP);
    ev.laddr = Some("::1".parse().unwrap());
    ev.lport = Some(80);
    ev.raddr = Some("::1".parse().unwrap());
    ev.rport = Some(50000);
    ev.ret = Some(4);
    ev.verdict = Verdict::Observe;
    ev.comm = "weird\"\n'; DROP TABLE".into();
    let v: Value = serde_json::from_str(&ev.to_json()).unwrap();
    let obj = v.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want = vec![
        "ts", "pid", "tid", "ppid", "uid", "gid", "user", "comm", "exe", "cmdline", "op", "family",
        "type", "proto", "laddr", "lport", "raddr", "rport", "ret", "verdict", "rule", "count",
    ];
    want.sort_unstable();
    assert_eq!(keys, want);
    assert_eq!(obj["ts"], "2026-11-25T10:00:00.000000001Z");
    assert_eq!(obj["op"], "accept");
    assert_eq!(obj["family"], "inet6");
    assert_eq!(obj["type"], "stream");
    assert_eq!(obj["proto"], "tcp");
    assert_eq!(obj["laddr"], "::1");
    assert_eq!(obj["rport"], 50000);
    assert_eq!(obj["ret"], 4);
    assert_eq!(obj["verdict"], "observe");
    assert_eq!(obj["rule"], Value::Null);
    assert_eq!(obj["count"], 1);
    assert_eq!(obj["comm"], "weird\"\n'; DROP TABLE");
}

#[test]
fn unknown_numbers_keep_their_value() {
    assert_eq!(Family(99).name(), "af99");
    assert_eq!(Family::from_name("af99"), Some(Family(99)));
    assert_eq!(SockType::from_name("dgram"), Some(SockType::DGRAM));
    assert_eq!(Proto(200).to_string(), "proto200");
}

#[test]
fn ops_parse_and_map_from_abi() {
    for (i, op) in Op::ALL.iter().enumerate() {
        assert_eq!(Op::from_abi(i as u8 + 1), Some(*op));
        assert_eq!(op.name().parse::<Op>().unwrap(), *op);
    }
    assert_eq!(Op::from_abi(0), None);
    assert_eq!(Op::from_abi(8), None);
    assert!("connnect"
        .parse::<Op>()
        .unwrap_err()
        .contains("expected one of"));
}
