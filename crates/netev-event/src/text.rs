//! The one-line text form:
//!
//! `TIME OP VERDICT exe[pid] user FAMILY/TYPE/PROTO LOCAL -> REMOTE ret=R xN`

use std::fmt::{Display, Write};
use std::net::IpAddr;

use chrono::SecondsFormat;

use crate::Event;

pub(crate) fn format(ev: &Event, verdict: &str) -> String {
    let mut s = String::with_capacity(160);
    let _ = write!(
        s,
        "{} {:<7} {:<7} {}[{}]",
        ev.ts.to_rfc3339_opts(SecondsFormat::Micros, true),
        ev.op.name(),
        verdict,
        escape(ev.exe.as_deref().unwrap_or(&ev.comm)),
        ev.pid,
    );
    match &ev.user {
        Some(user) => {
            let _ = write!(s, " {}", escape(user));
        }
        None => {
            let _ = write!(s, " uid={}", ev.uid);
        }
    }
    let _ = write!(s, " {}/{}", ev.family, ev.sock_type);
    if let Some(proto) = ev.proto {
        let _ = write!(s, "/{proto}");
    }
    let local = side(ev.laddr, ev.lport);
    let remote = side(ev.raddr, ev.rport);
    match (local, remote) {
        (Some(l), Some(r)) => {
            let _ = write!(s, " {l} -> {r}");
        }
        (Some(l), None) => {
            let _ = write!(s, " {l}");
        }
        (None, Some(r)) => {
            let _ = write!(s, " -> {r}");
        }
        (None, None) => {}
    }
    if let Some(path) = &ev.path {
        let arrow = if matches!(ev.op, crate::Op::Bind | crate::Op::Listen) {
            ""
        } else {
            "-> "
        };
        let _ = write!(s, " {arrow}{}", escape(path));
    }
    if let Some(ret) = ev.ret {
        let _ = write!(s, " ret={ret}");
    }
    if let Some(rule) = ev.rule {
        let _ = write!(s, " rule={rule}");
    }
    if ev.count != 1 {
        let _ = write!(s, " x{}", ev.count);
    }
    if ev.guard {
        s.push_str(" guard");
    }
    s
}

/// An address and a port as one piece of text: `1.2.3.4:80`, `[::1]:80`.
///
/// Every front-end shows places this way. The address may be anything
/// printed: an [`IpAddr`], an address a wire event carries as text, a rule's
/// network (`10.0.0.0/8`), a host name; it is bracketed when it holds a
/// colon (IPv6), as in URLs and [`std::net::SocketAddr`], so that the port
/// stays apart from it. The port may be a rule's range (`80-90`) too.
pub fn endpoint(addr: impl Display, port: impl Display) -> String {
    // One buffer: `--print text` formats two of these per event.
    let mut s = addr.to_string();
    if s.contains(':') {
        s.insert(0, '[');
        s.push(']');
    }
    let _ = write!(s, ":{port}");
    s
}

/// An event's side of the line: no address, no endpoint; no port, port 0.
fn side(addr: Option<IpAddr>, port: Option<u16>) -> Option<String> {
    Some(endpoint(addr?, port.unwrap_or(0)))
}

/// Process names and paths are chosen by whoever runs the process: never
/// let them forge extra lines, terminal escapes or reordered text in a log
/// (crate::display), nor split the line's fields (spaces).
fn escape(s: &str) -> String {
    let s = crate::display::escape(s);
    if !s.contains(' ') {
        return s.into_owned();
    }
    s.replace(' ', "\\x20")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Family, Op, Proto, SockType, Verdict};

    fn connect_event() -> Event {
        let mut ev = Event::new(Op::Connect);
        ev.ts = "2026-11-25T10:00:00.123456789Z".parse().unwrap();
        ev.pid = 42;
        ev.user = Some("root".into());
        ev.exe = Some("/usr/bin/curl".into());
        ev.family = Family::INET;
        ev.sock_type = SockType::STREAM;
        ev.proto = Some(Proto::TCP);
        ev.laddr = Some("0.0.0.0".parse().unwrap());
        ev.lport = Some(0);
        ev.raddr = Some("127.0.0.1".parse().unwrap());
        ev.rport = Some(8080);
        ev
    }

    #[test]
    fn text_line_for_connect() {
        assert_eq!(
            connect_event().to_text(),
            "2026-11-25T10:00:00.123456Z connect allow   /usr/bin/curl[42] root inet/stream/tcp 0.0.0.0:0 -> 127.0.0.1:8080"
        );
    }

    #[test]
    fn text_line_shows_ret_count_and_v6() {
        let mut ev = connect_event();
        ev.op = Op::Sendmsg;
        ev.verdict = Verdict::Observe;
        ev.raddr = Some("::1".parse().unwrap());
        ev.laddr = None;
        ev.ret = Some(-13);
        ev.count = 17;
        let line = ev.to_text();
        assert!(line.ends_with("-> [::1]:8080 ret=-13 x17"), "{line}");
    }

    #[test]
    fn endpoints_bracket_ipv6_only() {
        let v4: IpAddr = "1.2.3.4".parse().unwrap();
        let v6: IpAddr = "::1".parse().unwrap();
        let mapped: IpAddr = "::ffff:1.2.3.4".parse().unwrap();
        assert_eq!(endpoint(v4, 80), "1.2.3.4:80");
        assert_eq!(endpoint(v6, 80), "[::1]:80");
        assert_eq!(endpoint(mapped, 80), "[::ffff:1.2.3.4]:80");
        assert_eq!(endpoint("fe80::/10", "80-90"), "[fe80::/10]:80-90");
        assert_eq!(endpoint("db.example", 5432), "db.example:5432");
        assert_eq!(side(None, Some(1)), None);
        assert_eq!(side(Some(v4), None).as_deref(), Some("1.2.3.4:0"));
    }

    #[test]
    fn hostile_names_cannot_forge_lines() {
        let mut ev = connect_event();
        ev.exe = Some("/tmp/evil\nFAKE connect allow\x1b[2J".into());
        let line = ev.to_text();
        assert!(!line.contains('\n') && !line.contains('\x1b'), "{line}");
        assert!(line.contains("/tmp/evil\\nFAKE\\x20connect"), "{line}");
    }
}
