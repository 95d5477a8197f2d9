//! `syslog+tcp://`, `syslog+tls://`, `syslog+udp://`: one RFC 5424
//! message per event (docs/export.md).
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME netevd PROCID MSGID [netev@32473 batch="…" verdict="…" pid="…" comm="…"] BOM JSON
//! ```
//!
//! - PRI: the `facility` option (default authpriv, 10) × 8 + severity:
//!   warning (4) for a denied call, info (6) for allow and observe, err (3)
//!   for a gap record.
//! - TIMESTAMP: the event's time, RFC 3339 in UTC with microseconds.
//! - MSGID: the op (`connect`), `gap` for a gap record.
//! - STRUCTURED-DATA: one element; its PARAM-VALUEs escape `"`, `\` and
//!   `]` (RFC 5424 §6.3.3), and `comm` is first escaped as every netev
//!   text output escapes it (`netev_event::display::escape`: no control
//!   character reaches the receiver raw). 32473 is the enterprise number
//!   RFC 5612 reserves for documentation: netev has none of its own.
//! - MSG: a UTF-8 BOM and the event's JSON (netev's or OCSF), one line.
//!
//! Framing: TCP and TLS use RFC 6587 octet counting (`LEN SP MSG`), TLS as
//! RFC 5425 says; UDP sends one message per datagram (RFC 5426), cut at
//! [`UDP_MAX`] bytes.
//!
//! Delivery: a batch is one write; an error drops the connection and the
//! batch is retried whole on a new one (spooled meanwhile), so a receiver
//! may see messages twice: at least once. Syslog has no acknowledgement:
//! a write the kernel took is "delivered". Before each batch the
//! connection is probed, so a receiver that closed it (a restart) is
//! noticed and the batch goes to a new connection, not into the closed one.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use netev_event::Verdict;
use tracing::warn;

use crate::format::{event_json, gap_json};
use crate::{
    io_err, Batch, BatchMeta, Body, Destination, Error, ExportTarget, Format, Output, Result,
    SyslogTransport,
};

/// The longest UDP datagram sent: a longer message is cut here (at a
/// character boundary) and the cut counted. RFC 5426 has receivers take
/// at least 480 (IPv4) or 1180 (IPv6) bytes and should take 2048; 8192 is
/// rsyslog's default maximum, and lets an event with a long command line
/// through whole (by IP fragmentation past the path's MTU).
pub const UDP_MAX: usize = 8192;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The SD-ID: `netev` at RFC 5612's documentation enterprise number.
const SD_ID: &str = "netev@32473";

pub(crate) struct Syslog {
    transport: SyslogTransport,
    addr: String,
    format: Format,
    facility: u8,
    procid: u32,
    tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
    conn: Option<Conn>,
    truncated: u64,
}

enum Conn {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    Udp(UdpSocket),
}

impl Syslog {
    pub(crate) fn new(target: &ExportTarget, _host: &str) -> Result<Syslog> {
        let Destination::Syslog { transport, addr } = &target.destination else {
            unreachable!("a syslog target")
        };
        let tls = match transport {
            SyslogTransport::Tls => Some(tls_config(target, addr)?),
            _ => None,
        };
        Ok(Syslog {
            transport: *transport,
            addr: addr.clone(),
            format: target.format,
            facility: target.options.facility,
            procid: std::process::id(),
            tls,
            conn: None,
            truncated: 0,
        })
    }

    fn resolve(&self) -> Result<Vec<SocketAddr>> {
        let addrs: Vec<SocketAddr> = self
            .addr
            .to_socket_addrs()
            .map_err(io_err(format!("resolving {}", self.addr)))?
            .collect();
        if addrs.is_empty() {
            return Err(Error::Delivery(format!("{}: no address", self.addr)));
        }
        Ok(addrs)
    }

    fn tcp(&self) -> Result<TcpStream> {
        let mut last = None;
        for a in self.resolve()? {
            match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    s.set_write_timeout(Some(WRITE_TIMEOUT))
                        .map_err(io_err("setting a write timeout"))?;
                    s.set_read_timeout(Some(WRITE_TIMEOUT))
                        .map_err(io_err("setting a read timeout"))?;
                    return Ok(s);
                }
                Err(e) => last = Some((a, e)),
            }
        }
        let (a, e) = last.expect("at least one address");
        Err(io_err(format!("connecting to the syslog receiver at {a}"))(
            e,
        ))
    }

    fn connect(&self) -> Result<Conn> {
        match self.transport {
            SyslogTransport::Tcp => Ok(Conn::Tcp(self.tcp()?)),
            SyslogTransport::Tls => {
                let (config, name) = self.tls.clone().expect("TLS set up in new");
                let mut sock = self.tcp()?;
                let mut tls = rustls::ClientConnection::new(config, name)
                    .map_err(|e| Error::Delivery(format!("TLS to {}: {e}", self.addr)))?;
                // the handshake now, so that a certificate the receiver's
                // name does not match fails here, saying so
                while tls.is_handshaking() {
                    tls.complete_io(&mut sock).map_err(io_err(format!(
                        "TLS handshake with {} (is its certificate for that name, from a CA in ca= or the system's?)",
                        self.addr
                    )))?;
                }
                Ok(Conn::Tls(Box::new(rustls::StreamOwned::new(tls, sock))))
            }
            SyslogTransport::Udp => {
                let mut last = None;
                for a in self.resolve()? {
                    let local: SocketAddr = if a.is_ipv4() {
                        "0.0.0.0:0".parse().expect("an address")
                    } else {
                        "[::]:0".parse().expect("an address")
                    };
                    match UdpSocket::bind(local).and_then(|s| s.connect(a).map(|()| s)) {
                        Ok(s) => return Ok(Conn::Udp(s)),
                        Err(e) => last = Some((a, e)),
                    }
                }
                let (a, e) = last.expect("at least one address");
                Err(io_err(format!("a UDP socket to {a}"))(e))
            }
        }
    }

    fn send_udp(&mut self, sock: &UdpSocket, payload: &[u8]) -> std::io::Result<()> {
        for msg in Frames(payload) {
            let msg = if msg.len() > UDP_MAX {
                if self.truncated == 0 {
                    warn!(
                        export = %self.addr,
                        "a syslog message longer than {UDP_MAX} bytes was cut to fit a UDP datagram (its JSON is incomplete); use syslog+tcp:// for whole messages"
                    );
                }
                self.truncated += 1;
                &msg[..utf8_floor(msg, UDP_MAX)]
            } else {
                msg
            };
            sock.send(msg)?;
        }
        Ok(())
    }
}

/// The longest prefix of `b` at most `max` bytes that ends on a character boundary.
fn utf8_floor(b: &[u8], max: usize) -> usize {
    let mut n = max.min(b.len());
    // continuation bytes are 0b10xxxxxx
    while n > 0 && n < b.len() && b[n] & 0xc0 == 0x80 {
        n -= 1;
    }
    n
}

/// The messages of an encoded batch (`LEN SP MSG`…).
struct Frames<'a>(&'a [u8]);

impl<'a> Iterator for Frames<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let sp = self.0.iter().position(|b| *b == b' ')?;
        let len: usize = std::str::from_utf8(&self.0[..sp]).ok()?.parse().ok()?;
        let msg = self.0.get(sp + 1..sp + 1 + len)?;
        self.0 = &self.0[sp + 1 + len..];
        Some(msg)
    }
}

/// Whether the receiver has closed (or broken) the connection: a
/// non-blocking read that finds anything but "nothing yet". A syslog
/// receiver sends nothing over TCP, so the end of the stream, an error or
/// bytes all mean the connection is not one to write a batch into; over
/// TLS the records the server may send (session tickets) are read and
/// dropped, and only the end of the stream or an error count.
fn closed(conn: &mut Conn) -> bool {
    let mut buf = [0u8; 512];
    match conn {
        Conn::Udp(_) => false,
        Conn::Tcp(s) => {
            if s.set_nonblocking(true).is_err() {
                return true;
            }
            let r = s.peek(&mut buf);
            let _ = s.set_nonblocking(false);
            !matches!(r, Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock)
        }
        Conn::Tls(t) => {
            if t.sock.set_nonblocking(true).is_err() {
                return true;
            }
            // TLS 1.3 servers send session tickets after the handshake:
            // read and drop records until the socket has nothing more
            let gone = loop {
                match t.read(&mut buf) {
                    Ok(0) => break true,
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
                    Err(_) => break true,
                }
            };
            let _ = t.sock.set_nonblocking(false);
            gone
        }
    }
}

fn tls_config(
    target: &ExportTarget,
    addr: &str,
) -> Result<(
    Arc<rustls::ClientConfig>,
    rustls::pki_types::ServerName<'static>,
)> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};

    let mut roots = rustls::RootCertStore::empty();
    match &target.options.ca {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    Error::Config(format!(
                        "ca={}: {e} (expected a PEM file of CA certificates)",
                        path.display()
                    ))
                })?;
            if certs.is_empty() {
                return Err(Error::Config(format!(
                    "ca={}: no certificate in it (expected PEM \"BEGIN CERTIFICATE\" blocks)",
                    path.display()
                )));
            }
            for c in certs {
                roots.add(c).map_err(|e| {
                    Error::Config(format!(
                        "ca={}: a certificate rustls refuses: {e}",
                        path.display()
                    ))
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                warn!("reading the system's CA certificates: {e}");
            }
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(Error::Config(
                    "no CA certificate found on the system (ca-certificates installed?); name the receiver's CA with ca=PATH".into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // the name the certificate must be for: the URL's host
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = ServerName::try_from(host.to_string()).map_err(|e| {
        Error::Config(format!(
            "syslog+tls://{addr}: {host:?} is not a name a certificate can be for: {e}"
        ))
    })?;
    Ok((Arc::new(config), name))
}

/// RFC 5424's HOSTNAME: printable US-ASCII, 255 at most, `-` when empty.
fn header_field(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .take(max)
        .collect();
    if out.is_empty() {
        out.push('-');
    }
    out
}

/// A PARAM-VALUE: `"`, `\` and `]` escaped with a backslash.
fn sd_value(out: &mut Vec<u8>, s: &str) {
    for c in s.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push(b'\\');
        }
        let mut b = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
    }
}

impl Syslog {
    /// One RFC 5424 message, octet-counted, appended to `out`.
    #[allow(clippy::too_many_arguments)]
    fn message(
        &self,
        out: &mut Vec<u8>,
        severity: u8,
        ts: DateTime<Utc>,
        host: &str,
        msgid: &str,
        sd: &[(&str, &str)],
        json: &[u8],
    ) {
        let mut m = Vec::with_capacity(json.len() + 200);
        write!(
            m,
            "<{}>1 {} {} netevd {} {} [{SD_ID}",
            self.facility as u32 * 8 + severity as u32,
            ts.to_rfc3339_opts(SecondsFormat::Micros, true),
            header_field(host, 255),
            self.procid,
            msgid,
        )
        .expect("writing into memory");
        for (name, value) in sd {
            m.push(b' ');
            m.extend_from_slice(name.as_bytes());
            m.extend_from_slice(b"=\"");
            sd_value(&mut m, value);
            m.push(b'"');
        }
        m.extend_from_slice(b"] \xEF\xBB\xBF");
        m.extend_from_slice(json);
        write!(out, "{} ", m.len()).expect("writing into memory");
        out.extend_from_slice(&m);
    }
}

impl Output for Syslog {
    fn encode(&mut self, batch: &Batch) -> Vec<u8> {
        let mut out = Vec::new();
        let mut json = Vec::with_capacity(1024);
        let host = &batch.meta.host;
        match &batch.body {
            Body::Events(evs) => {
                for ev in evs {
                    json.clear();
                    event_json(self.format, host, ev, &mut json);
                    let severity = match ev.verdict {
                        Verdict::Deny => 4,
                        Verdict::Allow | Verdict::Observe => 6,
                    };
                    let pid = ev.pid.to_string();
                    let comm = netev_event::display::escape(&ev.comm);
                    self.message(
                        &mut out,
                        severity,
                        ev.ts,
                        host,
                        ev.op.name(),
                        &[
                            ("batch", &batch.meta.id),
                            ("verdict", ev.verdict.name()),
                            ("pid", &pid),
                            ("comm", &comm),
                        ],
                        &json,
                    );
                }
            }
            Body::Gap(g) => {
                gap_json(self.format, g, &mut json);
                let lost = g.lost.to_string();
                self.message(
                    &mut out,
                    3,
                    g.ts,
                    host,
                    "gap",
                    &[("batch", &batch.meta.id), ("lost", &lost)],
                    &json,
                );
            }
        }
        out
    }

    fn deliver(&mut self, _meta: &BatchMeta, payload: &[u8]) -> Result<()> {
        if self.conn.as_mut().is_some_and(closed) {
            self.conn = None;
        }
        if self.conn.is_none() {
            self.conn = Some(self.connect()?);
        }
        let mut conn = self.conn.take().expect("connected above");
        let r = match &mut conn {
            Conn::Tcp(s) => s.write_all(payload).and_then(|()| s.flush()),
            Conn::Tls(t) => t.write_all(payload).and_then(|()| t.flush()),
            Conn::Udp(s) => self.send_udp(s, payload),
        };
        match r {
            Ok(()) => {
                self.conn = Some(conn);
                Ok(())
            }
            // the connection is dropped with whatever part of the batch it
            // took: the retry sends all of it on a new one
            Err(e) => Err(io_err(format!(
                "sending to the syslog receiver at {}",
                self.addr
            ))(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netev_event::{Event, Op};

    fn syslog(url: &str) -> Syslog {
        Syslog::new(&url.parse().unwrap(), "h").unwrap()
    }

    #[test]
    fn a_message_is_rfc5424_and_octet_counted() {
        let mut s = syslog("syslog+tcp://127.0.0.1:1?facility=local0");
        s.procid = 42;
        let mut ev = Event::new(Op::Connect);
        ev.ts = "2026-11-25T23:31:19.307532999Z".parse().unwrap();
        ev.verdict = Verdict::Deny;
        ev.pid = 7;
        ev.comm = "a\"b]c\\d\ne".into();
        let b = Batch {
            meta: BatchMeta {
                id: "h:i:1".into(),
                host: "my host".into(),
                events: 1,
                gap: None,
            },
            body: Body::Events(vec![ev.clone(), ev]),
        };
        let out = s.encode(&b);
        let frames: Vec<&[u8]> = Frames(&out).collect();
        assert_eq!(frames.len(), 2);
        let m = std::str::from_utf8(frames[0]).unwrap();
        let (head, json) = m.split_once(" \u{feff}").unwrap();
        assert_eq!(
            head,
            r#"<132>1 2026-11-25T23:31:19.307532Z my_host netevd 42 connect [netev@32473 batch="h:i:1" verdict="deny" pid="7" comm="a\"b\]c\\\\d\\ne"]"#
        );
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["comm"], "a\"b]c\\d\ne");
    }

    #[test]
    fn udp_cuts_long_messages_at_a_character() {
        let b = "é".repeat(UDP_MAX);
        let n = utf8_floor(b.as_bytes(), UDP_MAX + 1);
        assert!(b.is_char_boundary(n) && n <= UDP_MAX + 1);
        assert_eq!(utf8_floor(b"abc", 10), 3);
    }
}
