//! The syslog export received by a real rsyslogd (netev-testsupport's
//! private one): over TCP, UDP and TLS each message parses as RFC 5424
//! (a strict checker of the ABNF below), its JSON is the event, hostile
//! process names break nothing, and a receiver that goes away and comes
//! back gets what was spooled meanwhile.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use netev_event::{Event, Family, Op, Proto, SockType, Verdict};
use netev_export::{Exporter, ExporterConfig, Format};
use netev_testsupport::rsyslog::{Rsyslog, Tls};
use serde_json::Value;

/// One message split by RFC 5424's ABNF, checked field by field.
#[derive(Debug)]
struct Message {
    pri: u32,
    timestamp: String,
    hostname: String,
    app: String,
    procid: String,
    msgid: String,
    sd: BTreeMap<String, String>,
    msg: String,
}

fn field<'a>(rest: &mut &'a [u8], name: &str, max: usize) -> &'a str {
    let end = rest
        .iter()
        .position(|b| *b == b' ')
        .unwrap_or_else(|| panic!("{name}: no SP after it"));
    let f = &rest[..end];
    assert!(
        (1..=max).contains(&f.len()) && f.iter().all(|b| (33..=126).contains(b)),
        "{name}: 1*{max}PRINTUSASCII, got {:?}",
        String::from_utf8_lossy(f)
    );
    *rest = &rest[end + 1..];
    std::str::from_utf8(f).unwrap()
}

fn parse(raw: &[u8]) -> Message {
    let mut rest = raw;
    assert_eq!(rest[0], b'<', "PRI starts with <");
    let close = rest
        .iter()
        .position(|b| *b == b'>')
        .expect("PRI ends with >");
    let pri: u32 = std::str::from_utf8(&rest[1..close])
        .unwrap()
        .parse()
        .unwrap();
    assert!(pri <= 191 && close <= 4, "PRIVAL 0-191");
    rest = &rest[close + 1..];
    assert!(rest.starts_with(b"1 "), "VERSION 1");
    rest = &rest[2..];
    let timestamp = field(&mut rest, "TIMESTAMP", 32).to_string();
    chrono::DateTime::parse_from_rfc3339(&timestamp).expect("TIMESTAMP is RFC 3339");
    let frac = timestamp.split_once('.').expect("TIME-SECFRAC").1;
    assert_eq!(frac.len(), 7, "microseconds and Z: {timestamp}");
    let hostname = field(&mut rest, "HOSTNAME", 255).to_string();
    let app = field(&mut rest, "APP-NAME", 48).to_string();
    let procid = field(&mut rest, "PROCID", 128).to_string();
    let msgid = field(&mut rest, "MSGID", 32).to_string();
    // STRUCTURED-DATA: one or more [SD-ID *(SP PARAM-NAME="PARAM-VALUE")]
    let mut sd = BTreeMap::new();
    assert_eq!(rest[0], b'[', "we always send one SD-ELEMENT");
    while rest.first() == Some(&b'[') {
        rest = &rest[1..];
        let id_end = rest.iter().position(|b| matches!(b, b' ' | b']')).unwrap();
        let id = std::str::from_utf8(&rest[..id_end]).unwrap();
        assert_eq!(id, "netev@32473");
        rest = &rest[id_end..];
        while rest[0] == b' ' {
            rest = &rest[1..];
            let eq = rest.iter().position(|b| *b == b'=').unwrap();
            let name = std::str::from_utf8(&rest[..eq]).unwrap().to_string();
            assert!(
                (1..=32).contains(&name.len())
                    && name
                        .bytes()
                        .all(|b| (33..=126).contains(&b) && !b"=]\" ".contains(&b)),
                "SD-NAME {name:?}"
            );
            rest = &rest[eq + 1..];
            assert_eq!(rest[0], b'"');
            rest = &rest[1..];
            let mut value = Vec::new();
            loop {
                match rest[0] {
                    b'\\' if matches!(rest[1], b'"' | b'\\' | b']') => {
                        value.push(rest[1]);
                        rest = &rest[2..];
                    }
                    b'"' => {
                        rest = &rest[1..];
                        break;
                    }
                    b']' => panic!("an unescaped ] in PARAM-VALUE"),
                    b => {
                        value.push(b);
                        rest = &rest[1..];
                    }
                }
            }
            sd.insert(
                name,
                String::from_utf8(value).expect("PARAM-VALUE is UTF-8"),
            );
        }
        assert_eq!(rest[0], b']');
        rest = &rest[1..];
    }
    assert!(rest.starts_with(b" \xEF\xBB\xBF"), "SP BOM MSG-UTF8");
    let msg = std::str::from_utf8(&rest[4..])
        .expect("MSG is UTF-8")
        .to_string();
    Message {
        pri,
        timestamp,
        hostname,
        app,
        procid,
        msgid,
        sd,
        msg,
    }
}

/// Quotes, `]`, backslashes, newlines, a fake SD element, terminal
/// escapes, bidi, NUL, invalid-UTF-8-looking escapes and U+FFFD.
const HOSTILE: &str =
    "ev\"il]\\\n\r[x y=\"z\"]\u{1b}[2J\u{202e}\u{0}\t\\xff\\xc3(\u{fffd}\u{feff}\u{2028}";

fn events(n: u32, base: u32) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let mut ev = Event::new(if i % 3 == 0 { Op::Sendmsg } else { Op::Connect });
            ev.ts = Utc::now();
            ev.pid = base + i;
            ev.comm = if i % 2 == 0 {
                HOSTILE.into()
            } else {
                "curl".into()
            };
            ev.cmdline = Some(format!("{HOSTILE} --arg {i}"));
            ev.exe = Some("/usr/bin/curl".into());
            ev.family = Family::INET;
            ev.sock_type = SockType::STREAM;
            ev.proto = Some(Proto::TCP);
            ev.laddr = Some("127.0.0.1".parse().unwrap());
            ev.lport = Some(40000);
            ev.raddr = Some("127.0.0.1".parse().unwrap());
            ev.rport = Some(443);
            ev.verdict = if i % 4 == 1 {
                Verdict::Deny
            } else {
                Verdict::Allow
            };
            ev
        })
        .collect()
}

fn exporter(url: &str, host: &str, spool: &std::path::Path) -> Exporter {
    let mut cfg = ExporterConfig::new(host, spool);
    cfg.batch = 7;
    cfg.max_delay = Duration::from_millis(20);
    Exporter::start(url.parse().unwrap(), cfg).unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// Checks every message from `host` against `sent`; returns how many
/// times each pid arrived.
fn check(received: &[Vec<u8>], host: &str, sent: &[Event], format: Format) -> BTreeMap<u32, u32> {
    let by_pid: BTreeMap<u32, &Event> = sent.iter().map(|e| (e.pid, e)).collect();
    let mut seen = BTreeMap::new();
    for raw in received {
        let m = parse(raw);
        if m.hostname != host {
            continue;
        }
        assert_eq!(m.app, "netevd");
        assert_eq!(m.procid, std::process::id().to_string());
        let pid: u32 = m.sd["pid"].parse().unwrap();
        let ev = by_pid[&pid];
        assert_eq!(m.msgid, ev.op.name());
        let severity = if ev.verdict == Verdict::Deny { 4 } else { 6 };
        assert_eq!(m.pri, 10 * 8 + severity, "authpriv");
        assert_eq!(m.sd["verdict"], ev.verdict.name());
        assert_eq!(m.sd["comm"], netev_event::display::escape(&ev.comm));
        assert_eq!(
            m.timestamp,
            ev.ts.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        );
        let v: Value = serde_json::from_str(&m.msg).expect("MSG is JSON");
        match format {
            Format::Netev => assert_eq!(v, serde_json::to_value(ev).unwrap()),
            Format::Ocsf => {
                assert_eq!(v, netev_export::format::ocsf::event_value(host, ev));
                assert_eq!(v["actor"]["process"]["name"], ev.comm.as_str());
            }
        }
        *seen.entry(pid).or_insert(0) += 1;
    }
    seen
}

#[test]
fn tcp_and_udp_arrive_whole() {
    let Some(rs) = Rsyslog::start_or_skip(None) else {
        return;
    };
    let spool = tempfile::tempdir().unwrap();
    let sent_tcp = events(50, 1000);
    let sent_udp = events(50, 2000);
    let tcp = exporter(
        &format!("syslog+tcp://127.0.0.1:{}", rs.tcp_port()),
        "tcp-host",
        &spool.path().join("tcp"),
    );
    let udp = exporter(
        &format!(
            "syslog+udp://127.0.0.1:{}?format=ocsf",
            rs.udp_port().unwrap()
        ),
        "udp-host",
        &spool.path().join("udp"),
    );
    for ev in &sent_tcp {
        tcp.push(ev.clone());
    }
    for ev in &sent_udp {
        udp.push(ev.clone());
        // loopback UDP drops when the receiver's buffer fills: keep it small
        std::thread::sleep(Duration::from_millis(2));
    }
    let tcp_stats = tcp.stop();
    udp.stop();
    assert_eq!(
        tcp_stats
            .exported
            .load(std::sync::atomic::Ordering::Relaxed),
        50
    );
    let got = rs.wait_for(Duration::from_secs(15), |m| m.len() >= 100);
    let t = check(&got, "tcp-host", &sent_tcp, Format::Netev);
    let u = check(&got, "udp-host", &sent_udp, Format::Ocsf);
    assert_eq!(t.len(), 50, "every TCP event arrived:\n{}", rs.output());
    assert!(
        t.values().all(|n| *n == 1),
        "no TCP duplicates without a reconnect"
    );
    assert_eq!(
        u.len(),
        50,
        "every UDP event arrived (loopback):\n{}",
        rs.output()
    );
}

/// A test CA and a certificate for `localhost` signed by it, in `dir`.
fn test_certs(dir: &std::path::Path) -> Tls {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "netev test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let tls = Tls {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&tls.ca, ca.pem()).unwrap();
    std::fs::write(&tls.cert, cert.pem()).unwrap();
    std::fs::write(&tls.key, key.serialize_pem()).unwrap();
    tls
}

#[test]
fn tls_arrives_and_checks_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let tls = test_certs(dir.path());
    let Some(rs) = Rsyslog::start_or_skip(Some(&tls)) else {
        return;
    };

    let sent = events(30, 3000);
    let url = format!(
        "syslog+tls://localhost:{}?ca={}",
        rs.tcp_port(),
        tls.ca.display()
    );
    let e = exporter(&url, "tls-host", &dir.path().join("spool"));
    for ev in &sent {
        e.push(ev.clone());
    }
    let stats = e.stop();
    assert_eq!(
        stats.exported.load(std::sync::atomic::Ordering::Relaxed),
        30,
        "{:?}",
        stats.error()
    );
    let got = rs.wait_for(Duration::from_secs(15), |m| m.len() >= 30);
    let seen = check(&got, "tls-host", &sent, Format::Netev);
    assert_eq!(seen.len(), 30, "{}", rs.output());

    // the certificate is for localhost, not 127.0.0.1: refused, and said so
    let url = format!(
        "syslog+tls://127.0.0.1:{}?ca={}",
        rs.tcp_port(),
        tls.ca.display()
    );
    let e = exporter(&url, "wrong-name", &dir.path().join("spool2"));
    e.push(sent[0].clone());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    // the error is set before the batch is spooled: wait for both
    while (e.stats().error().is_none()
        || e.stats().spooled.load(std::sync::atomic::Ordering::Relaxed) == 0)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let err = e
        .stats()
        .error()
        .expect("a certificate for another name fails");
    assert!(err.contains("TLS handshake"), "{err}");
    assert_eq!(
        e.stats().spooled.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn a_receiver_away_gets_the_spooled_events_when_back() {
    let Some(mut rs) = Rsyslog::start_or_skip(None) else {
        return;
    };
    let spool = tempfile::tempdir().unwrap();
    let url = format!("syslog+tcp://127.0.0.1:{}", rs.tcp_port());
    let e = exporter(&url, "restart-host", spool.path());
    let first = events(20, 4000);
    for ev in &first {
        e.push(ev.clone());
    }
    let got = rs.wait_for(Duration::from_secs(15), |m| m.len() >= 20);
    assert_eq!(check(&got, "restart-host", &first, Format::Netev).len(), 20);

    rs.stop();
    let second = events(20, 5000);
    for ev in &second {
        e.push(ev.clone());
    }
    // the receiver is away: the events go to the spool
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while e.stats().spooled.load(std::sync::atomic::Ordering::Relaxed) < 20
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        e.stats().spooled.load(std::sync::atomic::Ordering::Relaxed),
        20,
        "spooled while away ({:?})",
        e.stats().error()
    );
    assert!(e.stats().error().is_some());

    rs.start_again();
    let all: Vec<Event> = first.iter().chain(&second).cloned().collect();
    let got = rs.wait_for(Duration::from_secs(20), |m| {
        check(m, "restart-host", &all, Format::Netev).len() >= 40
    });
    let seen = check(&got, "restart-host", &all, Format::Netev);
    assert_eq!(
        seen.len(),
        40,
        "every event arrived, at least once:\n{}",
        rs.output()
    );
    let stats = e.stop();
    assert_eq!(stats.spooled.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_eq!(stats.lost.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[test]
fn udp_cuts_a_long_message_at_8192_bytes() {
    let Some(rs) = Rsyslog::start_or_skip(None) else {
        return;
    };
    let spool = tempfile::tempdir().unwrap();
    let url = format!("syslog+udp://127.0.0.1:{}", rs.udp_port().unwrap());
    let e = exporter(&url, "long-host", spool.path());
    let mut ev = events(1, 6000).remove(0);
    ev.cmdline = Some("é".repeat(6000));
    e.push(ev);
    e.stop();
    let got = rs.wait_for(Duration::from_secs(10), |m| !m.is_empty());
    assert_eq!(got.len(), 1, "{}", rs.output());
    let n = got[0].len();
    assert!(
        (8189..=8192).contains(&n),
        "cut within 8192 bytes, at a character: {n}"
    );
    // the header and structured data are whole; the JSON is cut short
    let m = parse(&got[0]);
    assert_eq!(m.hostname, "long-host");
    assert!(serde_json::from_str::<Value>(&m.msg).is_err());
}

#[test]
fn a_tls_receiver_restarted_gets_the_spooled_events() {
    let dir = tempfile::tempdir().unwrap();
    let tls = test_certs(dir.path());
    let Some(mut rs) = Rsyslog::start_or_skip(Some(&tls)) else {
        return;
    };
    let url = format!(
        "syslog+tls://localhost:{}?ca={}",
        rs.tcp_port(),
        tls.ca.display()
    );
    let e = exporter(&url, "tls-restart", &dir.path().join("spool"));
    let first = events(10, 7000);
    for ev in &first {
        e.push(ev.clone());
    }
    let got = rs.wait_for(Duration::from_secs(15), |m| m.len() >= 10);
    assert_eq!(check(&got, "tls-restart", &first, Format::Netev).len(), 10);
    rs.stop();
    let second = events(10, 8000);
    for ev in &second {
        e.push(ev.clone());
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while e.stats().spooled.load(std::sync::atomic::Ordering::Relaxed) < 10
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        e.stats().spooled.load(std::sync::atomic::Ordering::Relaxed),
        10,
        "spooled while away ({:?})",
        e.stats().error()
    );
    rs.start_again();
    let all: Vec<Event> = first.iter().chain(&second).cloned().collect();
    let got = rs.wait_for(Duration::from_secs(20), |m| {
        check(m, "tls-restart", &all, Format::Netev).len() >= 20
    });
    assert_eq!(
        check(&got, "tls-restart", &all, Format::Netev).len(),
        20,
        "{}",
        rs.output()
    );
    let stats = e.stop();
    assert_eq!(stats.lost.load(std::sync::atomic::Ordering::Relaxed), 0);
}
