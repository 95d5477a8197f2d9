//! OCSF Network Activity (class 4001, category 4), schema version
//! [`OCSF_VERSION`] with the `host` and `security_control` profiles: one
//! OCSF event per netev event. docs/export.md has the mapping field by
//! field; `tests/ocsf.rs` validates the output against OCSF's JSON Schema.
//!
//! Every string a process chose (comm, exe, cmdline, user names, paths)
//! goes through serde_json with netev-event's [`SafeJson`] formatter: it
//! is escaped, and no value can end a line.
//!
//! [`SafeJson`]: netev_event::display::SafeJson

use netev_event::{Event, Family, Op, Verdict};
use serde_json::{json, Map, Value};

use crate::Gap;

/// The OCSF version the output is validated against (`metadata.version`).
pub const OCSF_VERSION: &str = "1.3.0";
/// The profiles whose attributes the output uses (`metadata.profiles`).
pub const PROFILES: [&str; 2] = ["host", "security_control"];

pub const CLASS_UID: u32 = 4001;
pub const CATEGORY_UID: u32 = 4;

/// OCSF's `activity_id` of Network Activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    Open = 1,
    Fail = 4,
    Refuse = 5,
    Traffic = 6,
    Listen = 7,
    Other = 99,
}

impl Activity {
    pub fn caption(self) -> &'static str {
        match self {
            Activity::Open => "Open",
            Activity::Fail => "Fail",
            Activity::Refuse => "Refuse",
            Activity::Traffic => "Traffic",
            Activity::Listen => "Listen",
            Activity::Other => "Other",
        }
    }
}

/// The activity of an event: by op, a denied connect, accept or send
/// being a refused attempt (`Refuse`), an accept that failed `Fail`.
/// `socket` and `bind` have no activity of their own in OCSF: `Other`,
/// with `activity_name` the op. A denied `socket`, `bind` or `listen`
/// keeps its activity (it opened no connection to refuse); `action_id`
/// Denied and `status_id` Failure say it was refused.
pub fn activity(ev: &Event) -> Activity {
    let failed = ev.ret.is_some_and(|r| r < 0);
    match (ev.op, ev.verdict) {
        (Op::Connect | Op::Accept | Op::Sendmsg, Verdict::Deny) => Activity::Refuse,
        (Op::Connect | Op::Accept, _) if failed => Activity::Fail,
        (Op::Connect | Op::Accept, _) => Activity::Open,
        (Op::Sendmsg | Op::Recvmsg, _) => Activity::Traffic,
        (Op::Listen, _) => Activity::Listen,
        (Op::Socket | Op::Bind, _) => Activity::Other,
    }
}

/// The activity's name: the caption, or for `Other` the op (`Socket`, `Bind`).
fn activity_name(ev: &Event, a: Activity) -> &'static str {
    match (a, ev.op) {
        (Activity::Other, Op::Socket) => "Socket",
        (Activity::Other, Op::Bind) => "Bind",
        (a, _) => a.caption(),
    }
}

/// severity_id: a refused call is Low (2), everything else Informational (1).
pub fn severity(v: Verdict) -> (u8, &'static str) {
    match v {
        Verdict::Deny => (2, "Low"),
        Verdict::Allow | Verdict::Observe => (1, "Informational"),
    }
}

fn endpoint(host: &str, ip: Option<std::net::IpAddr>, port: Option<u16>) -> Value {
    let mut m = Map::new();
    if let Some(ip) = ip {
        m.insert("ip".into(), json!(ip.to_string()));
        if let Some(p) = port {
            m.insert("port".into(), json!(p));
        }
    } else {
        // a network_endpoint needs an ip, name or hostname: an event
        // without an address names the machine it happened on
        m.insert(host_key(host).into(), json!(host));
    }
    Value::Object(m)
}

/// `hostname` if `host` is one by OCSF's `hostname_t` (letters, digits
/// and inner hyphens, dot-separated labels), else `name`: a host name
/// set to something else still arrives, in the attribute that takes any
/// string.
pub fn host_key(host: &str) -> &'static str {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.split('.').all(label_ok) {
        "hostname"
    } else {
        "name"
    }
}

fn device(host: &str) -> Value {
    let mut m = Map::new();
    m.insert(host_key(host).into(), json!(host));
    m.insert("type_id".into(), json!(0));
    m.insert("type".into(), json!("Unknown"));
    Value::Object(m)
}

fn basename(path: &str) -> &str {
    path.rsplit('/')
        .next()
        .filter(|b| !b.is_empty())
        .unwrap_or(path)
}

fn user(ev: &Event) -> Value {
    let mut u = Map::new();
    u.insert("uid".into(), json!(ev.uid.to_string()));
    if let Some(name) = &ev.user {
        u.insert("name".into(), json!(name));
    }
    Value::Object(u)
}

/// One event as one line of OCSF JSON (no newline).
pub fn write_event(host: &str, ev: &Event, out: &mut Vec<u8>) {
    let v = event_value(host, ev);
    netev_event::display::write_json(&mut *out, &v).expect("writing JSON into memory");
}

/// One event as an OCSF Network Activity object.
pub fn event_value(host: &str, ev: &Event) -> Value {
    let act = activity(ev);
    let (severity_id, severity) = severity(ev.verdict);
    let failed = ev.ret.is_some_and(|r| r < 0);

    // addresses by direction: the side that starts the exchange is the source
    let local = || endpoint(host, ev.laddr, ev.lport);
    let remote = || endpoint(host, ev.raddr, ev.rport);
    let (src, dst, direction_id) = match ev.op {
        Op::Connect | Op::Sendmsg => (Some(local()), remote(), 2),
        Op::Accept | Op::Recvmsg => (Some(remote()), local(), 1),
        // a listener is where connections will go: the destination
        Op::Listen => (None, local(), 1),
        Op::Bind => (None, local(), 0),
        Op::Socket => (None, endpoint(host, None, None), 0),
    };
    let direction = match direction_id {
        1 => "Inbound",
        2 => "Outbound",
        _ => "Unknown",
    };

    let mut conn = Map::new();
    conn.insert("direction_id".into(), json!(direction_id));
    conn.insert("direction".into(), json!(direction));
    if let Some(p) = ev.proto {
        conn.insert("protocol_name".into(), json!(p.name()));
        conn.insert("protocol_num".into(), json!(p.0));
    }
    if ev.family == Family::INET {
        conn.insert("protocol_ver_id".into(), json!(4));
        conn.insert(
            "protocol_ver".into(),
            json!("Internet Protocol version 4 (IPv4)"),
        );
    } else if ev.family == Family::INET6 {
        conn.insert("protocol_ver_id".into(), json!(6));
        conn.insert(
            "protocol_ver".into(),
            json!("Internet Protocol version 6 (IPv6)"),
        );
    }

    let mut process = Map::new();
    process.insert("pid".into(), json!(ev.pid));
    process.insert("tid".into(), json!(ev.tid));
    process.insert("name".into(), json!(ev.comm));
    if let Some(exe) = &ev.exe {
        process.insert(
            "file".into(),
            json!({"name": basename(exe), "path": exe, "type_id": 1, "type": "Regular File"}),
        );
    }
    if let Some(c) = &ev.cmdline {
        process.insert("cmd_line".into(), json!(c));
    }
    process.insert("parent_process".into(), json!({ "pid": ev.ppid }));
    process.insert("user".into(), user(ev));

    let (status_id, status) = if ev.verdict == Verdict::Deny || failed {
        (2, "Failure")
    } else {
        (1, "Success")
    };
    let (action_id, action, disposition_id, disposition) = match ev.verdict {
        Verdict::Allow => (1, "Allowed", 1, "Allowed"),
        Verdict::Deny => (2, "Denied", 2, "Blocked"),
        // the hook could not refuse: the call went through, and was logged
        Verdict::Observe => (1, "Allowed", 17, "Logged"),
    };

    let mut unmapped = Map::new();
    unmapped.insert("op".into(), json!(ev.op.name()));
    unmapped.insert("verdict".into(), json!(ev.verdict.name()));
    unmapped.insert("family".into(), json!(ev.family.name()));
    unmapped.insert("type".into(), json!(ev.sock_type.name()));
    unmapped.insert("gid".into(), json!(ev.gid));
    unmapped.insert("rule".into(), json!(ev.rule));
    if ev.guard {
        unmapped.insert("guard".into(), json!(true));
    }
    if let Some(p) = &ev.path {
        unmapped.insert("path".into(), json!(p));
    }

    let mut o = Map::new();
    o.insert("class_uid".into(), json!(CLASS_UID));
    o.insert("class_name".into(), json!("Network Activity"));
    o.insert("category_uid".into(), json!(CATEGORY_UID));
    o.insert("category_name".into(), json!("Network Activity"));
    o.insert("activity_id".into(), json!(act as u32));
    o.insert("activity_name".into(), json!(activity_name(ev, act)));
    o.insert("type_uid".into(), json!(CLASS_UID * 100 + act as u32));
    o.insert(
        "type_name".into(),
        json!(format!("Network Activity: {}", activity_name(ev, act))),
    );
    o.insert("time".into(), json!(ev.ts.timestamp_millis()));
    o.insert("severity_id".into(), json!(severity_id));
    o.insert("severity".into(), json!(severity));
    o.insert("status_id".into(), json!(status_id));
    o.insert("status".into(), json!(status));
    if let Some(r) = ev.ret {
        o.insert("status_code".into(), json!(r.to_string()));
    }
    if ev.verdict == Verdict::Deny {
        let detail = match ev.rule {
            Some(r) => format!("refused by rule {r} (EPERM)"),
            None => "refused by the default policy (EPERM)".to_string(),
        };
        o.insert("status_detail".into(), json!(detail));
    }
    o.insert("action_id".into(), json!(action_id));
    o.insert("action".into(), json!(action));
    o.insert("disposition_id".into(), json!(disposition_id));
    o.insert("disposition".into(), json!(disposition));
    o.insert("count".into(), json!(ev.count));
    if let Some(src) = src {
        o.insert("src_endpoint".into(), src);
    }
    o.insert("dst_endpoint".into(), dst);
    o.insert("connection_info".into(), Value::Object(conn));
    o.insert(
        "actor".into(),
        json!({ "process": Value::Object(process), "user": user(ev) }),
    );
    o.insert("device".into(), device(host));
    o.insert(
        "metadata".into(),
        metadata(Some(
            ev.ts.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        )),
    );
    o.insert("unmapped".into(), Value::Object(unmapped));
    Value::Object(o)
}

fn metadata(original_time: Option<String>) -> Value {
    let mut m = Map::new();
    m.insert("version".into(), json!(OCSF_VERSION));
    m.insert(
        "product".into(),
        json!({ "name": "netev", "vendor_name": "netev", "version": env!("CARGO_PKG_VERSION") }),
    );
    m.insert("profiles".into(), json!(PROFILES));
    m.insert("log_name".into(), json!("netev"));
    if let Some(t) = original_time {
        m.insert("original_time".into(), json!(t));
    }
    Value::Object(m)
}

/// A gap record as an OCSF Network Activity event of its own: activity
/// Other named `Events Lost`, severity Medium, status Failure with the
/// reason, `count` the events lost, and netev's gap record in
/// `unmapped.netev_gap` (`{"host","ts","lost","reason"}`, as in netev's
/// schema). A consumer that only counts network activity sees one
/// "Other" event; one that looks for `unmapped.netev_gap` sees the loss.
pub fn write_gap(gap: &Gap, out: &mut Vec<u8>) {
    let v = gap_value(gap);
    netev_event::display::write_json(&mut *out, &v).expect("writing JSON into memory");
}

pub fn gap_value(gap: &Gap) -> Value {
    json!({
        "class_uid": CLASS_UID,
        "class_name": "Network Activity",
        "category_uid": CATEGORY_UID,
        "category_name": "Network Activity",
        "activity_id": Activity::Other as u32,
        "activity_name": "Events Lost",
        "type_uid": CLASS_UID * 100 + Activity::Other as u32,
        "type_name": "Network Activity: Events Lost",
        "time": gap.ts.timestamp_millis(),
        "severity_id": 3,
        "severity": "Medium",
        "status_id": 2,
        "status": "Failure",
        "status_detail": format!("{} events lost: {}", gap.lost, gap.reason),
        "action_id": 0,
        "action": "Unknown",
        "count": gap.lost,
        "dst_endpoint": endpoint(&gap.host, None, None),
        "device": device(&gap.host),
        "metadata": metadata(Some(gap.ts.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))),
        "unmapped": { "netev_gap": gap },
    })
}
