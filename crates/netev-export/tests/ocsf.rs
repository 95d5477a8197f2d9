//! The OCSF output validated against OCSF 1.3.0's JSON Schema for Network
//! Activity (tests/data/README.md says where it came from): every op,
//! verdict and family, hostile strings, and the gap record.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use netev_event::{Event, Family, Op, Proto, SockType, Verdict};
use netev_export::format::{self, ocsf};
use netev_export::{Format, Gap};
use proptest::prelude::*;
use serde_json::Value;

fn validator() -> &'static jsonschema::Validator {
    static V: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        let text = include_str!("data/ocsf-1.3.0-network_activity.schema.json");
        let schema: Value = serde_json::from_str(text).expect("the vendored schema is JSON");
        jsonschema::validator_for(&schema).expect("the vendored schema compiles")
    })
}

fn check(line: &[u8]) -> Value {
    let text = std::str::from_utf8(line).expect("UTF-8");
    assert!(
        !text.contains(['\n', '\r', '\u{2028}', '\u{2029}']),
        "one line: {text}"
    );
    let v: Value = serde_json::from_str(text).expect("JSON");
    let errors: Vec<String> = validator()
        .iter_errors(&v)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{text}\n{}", errors.join("\n"));
    v
}

const ACTIVITIES: [(u64, &str); 6] = [
    (1, "Open"),
    (4, "Fail"),
    (5, "Refuse"),
    (6, "Traffic"),
    (7, "Listen"),
    (99, "Other"),
];

/// What the JSON Schema cannot check: captions agree with their ids, and
/// netev's fields arrive unchanged.
fn check_meaning(ev: &Event, v: &Value) {
    let act = v["activity_id"].as_u64().unwrap();
    assert_eq!(v["type_uid"].as_u64().unwrap(), 400100 + act);
    let caption = ACTIVITIES.iter().find(|(id, _)| *id == act).unwrap().1;
    if act != 99 {
        assert_eq!(v["activity_name"], caption);
    }
    assert_eq!(
        v["type_name"],
        format!("Network Activity: {}", v["activity_name"].as_str().unwrap())
    );
    assert_eq!(v["time"].as_i64().unwrap(), ev.ts.timestamp_millis());
    let p = &v["actor"]["process"];
    assert_eq!(p["name"], ev.comm.as_str());
    assert_eq!(p["pid"], ev.pid);
    assert_eq!(p["parent_process"]["pid"], ev.ppid);
    assert_eq!(p["user"]["uid"], ev.uid.to_string());
    assert_eq!(p["cmd_line"].as_str(), ev.cmdline.as_deref());
    assert_eq!(p["file"]["path"].as_str(), ev.exe.as_deref());
    assert_eq!(v["unmapped"]["path"].as_str(), ev.path.as_deref());
    assert_eq!(v["unmapped"]["op"], ev.op.name());
    assert_eq!(v["count"], ev.count);
    match ev.verdict {
        Verdict::Deny => {
            assert_eq!(
                (v["action_id"].as_u64(), v["action"].as_str()),
                (Some(2), Some("Denied"))
            );
            assert_eq!(v["status_id"], 2);
            if matches!(ev.op, Op::Connect | Op::Accept | Op::Sendmsg) {
                assert_eq!(act, 5, "a denied {} is a refused attempt", ev.op.name());
            }
        }
        _ => assert_eq!(
            (v["action_id"].as_u64(), v["action"].as_str()),
            (Some(1), Some("Allowed"))
        ),
    }
    // the remote side is the source of inbound ops, the destination of outbound ones
    let remote = ev.raddr.map(|a| a.to_string());
    match ev.op {
        Op::Connect | Op::Sendmsg => {
            assert_eq!(v["dst_endpoint"]["ip"].as_str(), remote.as_deref())
        }
        Op::Accept | Op::Recvmsg => {
            assert_eq!(v["src_endpoint"]["ip"].as_str(), remote.as_deref())
        }
        _ => assert!(v.get("src_endpoint").is_none()),
    }
}

fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        Just("\"]\\ \n\r\t\u{0}\u{1b}[31m\u{202e}\u{2028}\u{feff}".to_string()),
        Just("a\"b]c\\d".to_string()),
        "[\\x00-\\x1f\"\\\\\\]\\[ -~\u{80}-\u{10ffff}]{0,40}",
    ]
}

fn arb_event() -> impl Strategy<Value = Event> {
    (
        (
            prop::sample::select(Op::ALL.to_vec()),
            prop::sample::select(Verdict::ALL.to_vec()),
            prop::sample::select(vec![
                Family::INET,
                Family::INET6,
                Family::UNIX,
                Family::NETLINK,
                Family::PACKET,
                Family::UNSPEC,
                Family(99),
            ]),
            prop::sample::select(vec![
                SockType::STREAM,
                SockType::DGRAM,
                SockType::RAW,
                SockType(77),
            ]),
            prop::option::of(prop::sample::select(vec![
                Proto::TCP,
                Proto::UDP,
                Proto::ICMP,
                Proto::ICMPV6,
                Proto::SCTP,
                Proto::MPTCP,
                Proto(200),
            ])),
            any::<bool>(),
            prop::option::of(any::<i32>()),
            prop::option::of(any::<u32>()),
            1u32..u32::MAX,
        ),
        (
            any::<(u32, u32, u32, u32, u32)>(),
            hostile(),
            prop::option::of(hostile()),
            prop::option::of(hostile()),
            prop::option::of(hostile()),
            prop::option::of(hostile()),
            any::<(u16, u16, [u8; 4], [u8; 16])>(),
            -1_000_000_000_000i64..4_000_000_000_000_000_000i64,
        ),
    )
        .prop_map(
            |(
                (op, verdict, family, sock_type, proto, guard, ret, rule, count),
                ((pid, tid, ppid, uid, gid), comm, exe, cmdline, user, path, (lp, rp, v4, v6), ns),
            )| {
                let mut ev = Event::new(op);
                ev.ts = DateTime::<Utc>::from_timestamp_nanos(ns);
                (ev.pid, ev.tid, ev.ppid, ev.uid, ev.gid) = (pid, tid, ppid, uid, gid);
                ev.comm = comm;
                ev.exe = exe;
                ev.cmdline = cmdline;
                ev.user = user;
                ev.verdict = verdict;
                ev.family = family;
                ev.sock_type = sock_type;
                ev.proto = proto;
                ev.guard = guard;
                ev.ret = ret;
                ev.rule = rule;
                ev.count = count;
                let ip = |i: u8| -> Option<IpAddr> {
                    if family == Family::INET {
                        let mut a = v4;
                        a[3] ^= i;
                        Some(IpAddr::from(a))
                    } else if family == Family::INET6 {
                        let mut a = v6;
                        a[15] ^= i;
                        Some(IpAddr::from(a))
                    } else {
                        None
                    }
                };
                if op != Op::Socket {
                    ev.laddr = ip(0);
                    ev.lport = ev.laddr.map(|_| lp);
                    if !matches!(op, Op::Bind | Op::Listen) {
                        ev.raddr = ip(1);
                        ev.rport = ev.raddr.map(|_| rp);
                    }
                }
                if family == Family::UNIX {
                    ev.path = path;
                }
                ev
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_event_validates(ev in arb_event(), host in hostile()) {
        let mut out = Vec::new();
        format::event_json(Format::Ocsf, &host, &ev, &mut out);
        let v = check(&out);
        check_meaning(&ev, &v);
        prop_assert_eq!(v["device"][ocsf::host_key(&host)].as_str(), Some(host.as_str()));
    }

    #[test]
    fn gaps_validate(lost in 1u64..u64::MAX / 2, reason in hostile(), host in hostile()) {
        let gap = Gap { host, ts: Utc::now(), lost, reason };
        let mut out = Vec::new();
        format::gap_json(Format::Ocsf, &gap, &mut out);
        let v = check(&out);
        prop_assert_eq!(&v["unmapped"]["netev_gap"]["lost"], &serde_json::json!(lost));
        prop_assert_eq!(v["unmapped"]["netev_gap"]["reason"].as_str(), Some(gap.reason.as_str()));
        prop_assert_eq!(v["count"].as_u64(), Some(lost));
    }
}

/// Each op and verdict at least once, whatever proptest draws.
#[test]
fn every_op_and_verdict() {
    for op in Op::ALL {
        for verdict in Verdict::ALL {
            for family in [Family::INET, Family::INET6, Family::UNIX] {
                let mut ev = Event::new(op);
                ev.ts = Utc::now();
                ev.verdict = verdict;
                ev.family = family;
                ev.comm = "curl".into();
                ev.exe = Some("/usr/bin/curl".into());
                if family.is_ip() {
                    ev.proto = Some(Proto::TCP);
                    let (l, r): (IpAddr, IpAddr) = if family == Family::INET {
                        ("10.0.0.1".parse().unwrap(), "192.0.2.7".parse().unwrap())
                    } else {
                        ("fe80::1".parse().unwrap(), "2001:db8::7".parse().unwrap())
                    };
                    if op != Op::Socket {
                        (ev.laddr, ev.lport) = (Some(l), Some(40000));
                        if !matches!(op, Op::Bind | Op::Listen) {
                            (ev.raddr, ev.rport) = (Some(r), Some(443));
                        }
                    }
                } else {
                    ev.path = Some("/run/x.sock".into());
                }
                let mut out = Vec::new();
                ocsf::write_event("host1.example", &ev, &mut out);
                let v = check(&out);
                assert_eq!(v["device"]["hostname"], "host1.example");
                check_meaning(&ev, &v);
            }
        }
    }
}

#[test]
fn the_mapping_of_a_connect() {
    let mut ev = Event::new(Op::Connect);
    ev.ts = "2026-11-25T23:31:19.307532000Z".parse().unwrap();
    ev.pid = 7114;
    ev.ppid = 7110;
    ev.comm = "python3".into();
    ev.exe = Some("/usr/bin/python3.11".into());
    ev.user = Some("root".into());
    ev.family = Family::INET;
    ev.sock_type = SockType::STREAM;
    ev.proto = Some(Proto::TCP);
    ev.laddr = Some("0.0.0.0".parse().unwrap());
    ev.lport = Some(0);
    ev.raddr = Some("127.0.0.1".parse().unwrap());
    ev.rport = Some(35783);
    ev.verdict = Verdict::Deny;
    ev.rule = Some(3);
    let v = ocsf::event_value("h", &ev);
    check(serde_json::to_string(&v).unwrap().as_bytes());
    assert_eq!(v["activity_id"], 5);
    assert_eq!(v["type_uid"], 400105);
    assert_eq!(v["time"], ev.ts.timestamp_millis());
    assert_eq!(v["time"].as_i64().unwrap() % 1000, 307);
    assert_eq!(v["status_detail"], "refused by rule 3 (EPERM)");
    assert_eq!(v["disposition"], "Blocked");
    assert_eq!(
        v["src_endpoint"],
        serde_json::json!({"ip": "0.0.0.0", "port": 0})
    );
    assert_eq!(
        v["dst_endpoint"],
        serde_json::json!({"ip": "127.0.0.1", "port": 35783})
    );
    assert_eq!(v["connection_info"]["protocol_num"], 6);
    assert_eq!(v["connection_info"]["direction_id"], 2);
    assert_eq!(v["connection_info"]["protocol_ver_id"], 4);
    assert_eq!(v["actor"]["process"]["file"]["name"], "python3.11");
    assert_eq!(v["metadata"]["version"], ocsf::OCSF_VERSION);
    assert_eq!(
        v["metadata"]["original_time"],
        "2026-11-25T23:31:19.307532000Z"
    );
}

/// The vendored schema does refuse what OCSF refuses (a check of the check).
#[test]
fn the_schema_rejects_what_is_wrong() {
    let mut ev = Event::new(Op::Accept);
    ev.family = Family::INET6;
    ev.raddr = Some("2001:db8::1".parse().unwrap());
    ev.rport = Some(1);
    let good = ocsf::event_value("h", &ev);
    assert!(validator().is_valid(&good));
    for (path, bad) in [
        ("/activity_id", serde_json::json!(8)),
        ("/class_uid", serde_json::json!(4002)),
        ("/dst_endpoint/port", serde_json::json!(70000)),
        ("/src_endpoint/ip", serde_json::json!("not an ip")),
        ("/actor/process/pid", serde_json::json!("1")),
        ("/made_up", serde_json::json!(1)),
    ] {
        let mut v = good.clone();
        let (parent, key) = path.rsplit_once('/').unwrap();
        v.pointer_mut(if parent.is_empty() { "" } else { parent })
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert(key.into(), bad);
        assert!(!validator().is_valid(&v), "{path} accepted");
    }
    let mut v = good;
    v.as_object_mut().unwrap().remove("metadata");
    assert!(!validator().is_valid(&v), "no metadata accepted");
}
