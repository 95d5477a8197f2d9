//! The grammar of an export target: `netevd --export URL` and the `url` key
//! of an `[[export]]` table, with the options either may carry. The one
//! home of it: netevd's flag, its config file and netev-sql's `--from`
//! all parse here.
//!
//! ```text
//! nats://HOST:PORT[,HOST:PORT…][?format=netev|ocsf]
//! syslog+tcp://HOST:PORT   syslog+tls://HOST:PORT   syslog+udp://HOST:PORT
//! file:PATH[?format=…&rotate=SIZE&keep=N]
//! ```
//!
//! Secrets never go in the URL (a command line is readable by every user,
//! and netevd records command lines in its events): a URL with a user or
//! password is refused, and NATS credentials come from a creds file named
//! by the `creds` option.

use std::fmt;
use std::path::PathBuf;

/// The schema each exported event is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// netev's own JSON (docs/events.md), one object per event.
    #[default]
    Netev,
    /// OCSF Network Activity (class 4001), docs/export.md.
    Ocsf,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Netev => "netev",
            Format::Ocsf => "ocsf",
        }
    }
}

/// How syslog messages travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogTransport {
    /// RFC 6587 octet counting over TCP.
    Tcp,
    /// RFC 5425: octet counting over TLS.
    Tls,
    /// RFC 5426: one message per datagram.
    Udp,
}

/// Where events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// NATS JetStream: the servers (`host:port`), tried in turn.
    Nats { servers: Vec<String> },
    /// A syslog receiver at `host:port`.
    Syslog {
        transport: SyslogTransport,
        addr: String,
    },
    /// Newline JSON appended to a file, rotated by size.
    File { path: PathBuf },
}

/// One export: where, in which schema, and the options of its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportTarget {
    pub destination: Destination,
    pub format: Format,
    pub options: Options,
}

/// Options; each has a default, and each may come from the URL's query or
/// from the `[[export]]` table's key of the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// NATS: a creds file (JWT and NKey seed), as `nsc` writes it.
    pub creds: Option<PathBuf>,
    /// TLS (NATS, syslog+tls): a PEM file of the CAs to trust instead of
    /// the system's.
    pub ca: Option<PathBuf>,
    /// NATS: the subject prefix; events go to `PREFIX.HOST`.
    pub subject: String,
    /// NATS: the stream to create if it does not exist (none: it must).
    pub stream: String,
    /// Every kind: the most the disk spool holds while the receiver is away.
    pub spool_max: u64,
    /// file: rotate when the file reaches this size.
    pub rotate: u64,
    /// file: rotated files kept (`PATH.1` … `PATH.N`).
    pub keep: u32,
    /// syslog: the facility (RFC 5424's number; default 10, authpriv:
    /// events carry command lines and user names).
    pub facility: u8,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            creds: None,
            ca: None,
            subject: "netev.events".into(),
            stream: "NETEV_EVENTS".into(),
            spool_max: 1 << 30,
            rotate: 100 << 20,
            keep: 5,
            facility: 10,
        }
    }
}

/// A target that does not parse: what was wrong, and what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("export target {target:?}: {reason}")]
pub struct TargetError {
    pub target: String,
    pub reason: String,
}

const KINDS: &str = "expected nats://HOST:PORT, syslog+tcp://HOST:PORT, syslog+tls://HOST:PORT, syslog+udp://HOST:PORT or file:PATH";

impl ExportTarget {
    /// The option names a target of this kind takes.
    pub fn option_names(&self) -> &'static [&'static str] {
        match self.destination {
            Destination::Nats { .. } => {
                &["format", "spool_max", "creds", "ca", "subject", "stream"]
            }
            Destination::Syslog {
                transport: SyslogTransport::Tls,
                ..
            } => &["format", "spool_max", "ca", "facility"],
            Destination::Syslog { .. } => &["format", "spool_max", "facility"],
            Destination::File { .. } => &["format", "spool_max", "rotate", "keep"],
        }
    }

    /// Sets one option by name (from the URL's query or a config key).
    pub fn set_option(&mut self, name: &str, value: &str) -> Result<(), String> {
        if !self.option_names().contains(&name) {
            return Err(format!(
                "{name}: not an option of this kind of target; it takes {}",
                self.option_names().join(", ")
            ));
        }
        let o = &mut self.options;
        let size = |v: &str| {
            netev_units::parse_size(v)
                .map_err(|e| format!("{name}={v}: {e} (a size such as 64M or 1G)"))
        };
        match name {
            "format" => {
                self.format = match value {
                    "netev" => Format::Netev,
                    "ocsf" => Format::Ocsf,
                    _ => return Err(format!("format={value}: expected netev or ocsf")),
                }
            }
            "creds" => o.creds = Some(absolute(name, value)?),
            "ca" => o.ca = Some(absolute(name, value)?),
            "subject" => {
                if value.is_empty()
                    || value.split('.').any(|t| {
                        t.is_empty() || t.contains(['*', '>']) || t.contains(char::is_whitespace)
                    })
                {
                    return Err(format!(
                        "subject={value}: expected dot-separated NATS subject tokens without wildcards or spaces"
                    ));
                }
                o.subject = value.into()
            }
            "stream" => {
                if value.is_empty()
                    || !value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return Err(format!(
                        "stream={value}: expected a stream name of letters, digits, _ and -"
                    ));
                }
                o.stream = value.into()
            }
            "spool_max" => o.spool_max = size(value)?,
            "rotate" => {
                o.rotate = size(value)?;
                if o.rotate < 4096 {
                    return Err(format!("rotate={value}: at least 4K"));
                }
            }
            "facility" => {
                o.facility = FACILITIES
                    .iter()
                    .position(|f| *f == value)
                    .map(|i| i as u8)
                    .or_else(|| value.parse().ok().filter(|n| *n < 24))
                    .ok_or_else(|| {
                        format!(
                            "facility={value}: expected a syslog facility ({}) or its number 0-23",
                            FACILITIES.join(", ")
                        )
                    })?
            }
            "keep" => {
                o.keep = value
                    .parse()
                    .map_err(|_| format!("keep={value}: expected a number of files"))?
            }
            _ => unreachable!("checked against option_names"),
        }
        Ok(())
    }
}

/// RFC 5424's facilities by number (table 1), by the names syslog.conf uses.
pub const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

fn absolute(name: &str, value: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(value);
    if !p.is_absolute() {
        return Err(format!("{name}={value}: expected an absolute path"));
    }
    Ok(p)
}

impl std::str::FromStr for ExportTarget {
    type Err = TargetError;

    fn from_str(s: &str) -> Result<ExportTarget, TargetError> {
        let err = |reason: String| TargetError {
            target: s.to_string(),
            reason,
        };
        let (destination, query) = if let Some(rest) = s.strip_prefix("file:") {
            // Not a URL: `file:PATH` takes the path as written (a relative
            // one too); the first `?` starts the options.
            let (path, query) = match rest.split_once('?') {
                Some((p, q)) => (p, Some(q.to_string())),
                None => (rest, None),
            };
            if path.is_empty() {
                return Err(err(
                    "file: needs a path, as in file:/var/log/netev/events.json".into(),
                ));
            }
            (Destination::File { path: path.into() }, query)
        } else {
            // a NATS server list (`a:1,b:2`) is checked server by server below
            let first = match s.strip_prefix("nats://") {
                Some(rest) => {
                    let end = rest
                        .find([',', '?', '/', '#'])
                        .map_or(s.len(), |i| i + "nats://".len());
                    let tail = rest.find(['?', '/', '#']).map_or("", |i| &rest[i..]);
                    format!("{}{tail}", &s[..end])
                }
                None => s.to_string(),
            };
            let url = url::Url::parse(&first).map_err(|e| err(format!("{e}; {KINDS}")))?;
            if !url.username().is_empty() || url.password().is_some() {
                return Err(err(
                    "credentials do not go in the URL (every user can read a command line): use a creds file (creds=PATH)"
                        .into(),
                ));
            }
            if !matches!(url.path(), "" | "/") || url.fragment().is_some() {
                return Err(err(format!(
                    "a path or #fragment has no meaning here; {KINDS}"
                )));
            }
            let hostport = |default_port: Option<u16>| -> Result<String, TargetError> {
                let host = url
                    .host_str()
                    .filter(|h| !h.is_empty())
                    .ok_or_else(|| err(format!("no host; {KINDS}")))?;
                let port = url
                    .port()
                    .or(default_port)
                    .ok_or_else(|| err("no port: give HOST:PORT".into()))?;
                Ok(format!("{host}:{port}"))
            };
            let destination = match url.scheme() {
                "nats" => {
                    // nats://a:4222,b:4222: one URL per server to the url crate
                    let authority = s["nats://".len()..]
                        .split(['?', '/'])
                        .next()
                        .unwrap_or_default();
                    let mut servers = Vec::new();
                    for one in authority.split(',') {
                        let u = url::Url::parse(&format!("nats://{one}"))
                            .map_err(|e| err(format!("server {one:?}: {e}")))?;
                        let host = u
                            .host_str()
                            .filter(|h| !h.is_empty())
                            .ok_or_else(|| err(format!("server {one:?}: no host")))?;
                        servers.push(format!("{host}:{}", u.port().unwrap_or(4222)));
                    }
                    Destination::Nats { servers }
                }
                "syslog+tcp" => Destination::Syslog {
                    transport: SyslogTransport::Tcp,
                    addr: hostport(None)?,
                },
                "syslog+tls" => Destination::Syslog {
                    transport: SyslogTransport::Tls,
                    addr: hostport(None)?,
                },
                "syslog+udp" => Destination::Syslog {
                    transport: SyslogTransport::Udp,
                    addr: hostport(None)?,
                },
                other => return Err(err(format!("unknown kind {other:?}; {KINDS}"))),
            };
            (destination, url.query().map(str::to_string))
        };
        let mut target = ExportTarget {
            destination,
            format: Format::Netev,
            options: Options::default(),
        };
        if let Some(q) = query {
            for pair in q.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| err(format!("option {pair:?}: expected NAME=VALUE")))?;
                target.set_option(k, v).map_err(err)?;
            }
        }
        Ok(target)
    }
}

impl fmt::Display for ExportTarget {
    /// The target as a URL again (its options at their values), for logs,
    /// status and `--check-config`. Holds no secret: none can be in it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.destination {
            Destination::Nats { servers } => write!(f, "nats://{}", servers.join(","))?,
            Destination::Syslog { transport, addr } => {
                let t = match transport {
                    SyslogTransport::Tcp => "tcp",
                    SyslogTransport::Tls => "tls",
                    SyslogTransport::Udp => "udp",
                };
                write!(f, "syslog+{t}://{addr}")?
            }
            Destination::File { path } => write!(f, "file:{}", path.display())?,
        }
        write!(f, "?format={}", self.format.name())?;
        // every option that is not at its default, so that the text parses
        // back to the same target (netevd hands the file's to its flag)
        let (o, d) = (&self.options, Options::default());
        let names = self.option_names();
        let mut opt = |name: &str, value: String| -> fmt::Result {
            if names.contains(&name) {
                write!(f, "&{name}={value}")?;
            }
            Ok(())
        };
        if let Some(p) = &o.creds {
            opt("creds", p.display().to_string())?;
        }
        if let Some(p) = &o.ca {
            opt("ca", p.display().to_string())?;
        }
        if o.subject != d.subject {
            opt("subject", o.subject.clone())?;
        }
        if o.stream != d.stream {
            opt("stream", o.stream.clone())?;
        }
        if o.spool_max != d.spool_max {
            opt("spool_max", o.spool_max.to_string())?;
        }
        if o.rotate != d.rotate {
            opt("rotate", o.rotate.to_string())?;
        }
        if o.keep != d.keep {
            opt("keep", o.keep.to_string())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> ExportTarget {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_kind_parses() {
        assert_eq!(
            t("nats://127.0.0.1:4222").destination,
            Destination::Nats {
                servers: vec!["127.0.0.1:4222".into()]
            }
        );
        assert_eq!(
            t("nats://a:1,b:2,c?format=ocsf").destination,
            Destination::Nats {
                servers: vec!["a:1".into(), "b:2".into(), "c:4222".into()]
            }
        );
        assert_eq!(t("nats://a:1,b:2?format=ocsf").format, Format::Ocsf);
        assert_eq!(
            t("syslog+udp://[::1]:514").destination,
            Destination::Syslog {
                transport: SyslogTransport::Udp,
                addr: "[::1]:514".into()
            }
        );
        let f = t("file:/var/log/netev/e.json?format=ocsf&rotate=1M&keep=3");
        assert_eq!(
            f.destination,
            Destination::File {
                path: "/var/log/netev/e.json".into()
            }
        );
        assert_eq!(
            (f.format, f.options.rotate, f.options.keep),
            (Format::Ocsf, 1 << 20, 3)
        );
        assert_eq!(t("file:rel.json").to_string(), "file:rel.json?format=netev");
        assert_eq!(t("syslog+tcp://a:1?facility=local0").options.facility, 16);
        assert_eq!(t("syslog+tls://a:1?facility=3").options.facility, 3);
        assert_eq!(t("syslog+udp://a:1").options.facility, 10);
    }

    #[test]
    fn the_text_of_a_target_parses_back_to_it() {
        for s in [
            "nats://a:1,b:2?format=ocsf&creds=/etc/netev/n.creds&ca=/etc/ca.pem&subject=x.y&stream=S&spool_max=2M",
            "syslog+tls://h:6514?ca=/etc/ca.pem",
            "syslog+udp://h:514",
            "file:/var/log/e.json?rotate=1M&keep=2&spool_max=1G",
        ] {
            let a = t(s);
            assert_eq!(t(&a.to_string()), a, "{a}");
        }
    }

    #[test]
    fn mistakes_say_what_is_wrong() {
        for (bad, says) in [
            ("kafka://a:1", "unknown kind"),
            ("nats://user:pw@a:1", "creds file"),
            ("nats://tok@a:1", "creds file"),
            ("syslog+tcp://a", "no port"),
            ("syslog+tcp://a:1?rotate=1M", "not an option"),
            ("file:", "needs a path"),
            ("file:/x?format=xml", "netev or ocsf"),
            ("file:/x?keep", "NAME=VALUE"),
            ("syslog+udp://a:1?facility=local9", "syslog facility"),
            ("file:/x?facility=local0", "not an option"),
            ("nats://a:1?creds=rel.creds", "absolute"),
            ("nats://a:1?subject=a.*", "wildcards"),
            ("nats://a:1/path", "path"),
            ("/var/log/x", "relative URL"),
        ] {
            let e = bad.parse::<ExportTarget>().unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn one_nats_server_takes_its_options_once() {
        let t: ExportTarget = "nats://127.0.0.1:4222?spool_max=8K&stream=S"
            .parse()
            .unwrap();
        assert_eq!(t.options.spool_max, 8 << 10);
        assert_eq!(t.options.stream, "S");
        let Destination::Nats { servers } = &t.destination else {
            panic!("{t:?}")
        };
        assert_eq!(servers, &["127.0.0.1:4222"]);
    }
}
