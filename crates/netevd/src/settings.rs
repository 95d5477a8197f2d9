//! The values of netevd's flags and configuration keys: what each one is
//! and how it is written. `config` reads them from the command line and
//! the file; the parts of the daemon that use one (the bus, the store, the
//! capture) take it from here, so that the configuration depends on none
//! of them.

use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;

/// How `--print` writes events to standard output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PrintFormat {
    /// One JSON object per line (fields in docs/events.md).
    Json,
    /// One human-readable line per event.
    Text,
}

/// Which bus to serve on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusTarget {
    /// The system bus.
    System,
    /// The session bus of the calling user.
    Session,
    /// A bus address (`unix:path=...`).
    Address(String),
}

/// `--bus`: a bus, or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusSpec(pub Option<BusTarget>);

impl std::fmt::Display for BusSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("none"),
            Some(BusTarget::System) => f.write_str("system"),
            Some(BusTarget::Session) => f.write_str("session"),
            Some(BusTarget::Address(a)) => f.write_str(a),
        }
    }
}

impl std::str::FromStr for BusSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "none" {
            Ok(BusSpec(None))
        } else {
            s.parse().map(|t| BusSpec(Some(t)))
        }
    }
}

impl std::str::FromStr for BusTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "system" => BusTarget::System,
            "session" => BusTarget::Session,
            a if a.contains(':') => {
                a.parse::<zbus::Address>()
                    .map_err(|e| format!("{a:?} is not a D-Bus address: {e}"))?;
                BusTarget::Address(a.to_string())
            }
            other => {
                return Err(format!(
                    "{other:?} is not a bus: use system, session, none, or an address such as unix:path=/run/netev/bus"
                ))
            }
        })
    }
}

impl BusTarget {
    /// The bus for a log line: "the system bus".
    pub(crate) fn describe(&self) -> String {
        match self {
            BusTarget::System => "the system bus".into(),
            BusTarget::Session => "the session bus".into(),
            BusTarget::Address(a) => format!("the bus at {a}"),
        }
    }

    /// A connection builder for this bus.
    pub(crate) fn builder(&self) -> zbus::connection::Builder<'static> {
        match self {
            BusTarget::System => zbus::connection::Builder::system(),
            BusTarget::Session => zbus::connection::Builder::session(),
            BusTarget::Address(a) => zbus::connection::Builder::address(
                a.parse::<zbus::Address>().expect("checked when parsed"),
            ),
        }
    }
}

/// `--backend`: which capture backend runs (auto, lsm, cgroup).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backend(pub netev_bpf::BackendChoice);

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Backend, String> {
        netev_bpf::BackendChoice::parse(s)
            .map(Backend)
            .ok_or_else(|| {
                format!(
                    "{s:?} is not a backend: one of {}",
                    netev_bpf::BackendChoice::NAMES.join(", ")
                )
            })
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name())
    }
}

/// `--pin-dir`: a directory on bpffs, or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinDir(pub Option<PathBuf>);

impl std::str::FromStr for PinDir {
    type Err = String;
    fn from_str(s: &str) -> Result<PinDir, String> {
        match s {
            "none" => Ok(PinDir(None)),
            p if p.starts_with('/') => Ok(PinDir(Some(p.into()))),
            _ => Err(format!(
                "{s:?} is not an absolute path on bpffs (such as /sys/fs/bpf/netev) or none"
            )),
        }
    }
}

impl std::fmt::Display for PinDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("none"),
            Some(p) => write!(f, "{}", p.display()),
        }
    }
}

/// `--metrics`: where the OpenMetrics endpoint listens; `off` (the
/// default) serves none. A port alone listens on loopback: the counters say
/// how busy the machine is, which is nobody else's business unless an
/// address is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsAddr(pub Option<std::net::SocketAddr>);

impl std::str::FromStr for MetricsAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<MetricsAddr, String> {
        if s == "off" {
            return Ok(MetricsAddr(None));
        }
        if let Ok(port) = s.parse::<u16>() {
            return Ok(MetricsAddr(Some(
                (std::net::Ipv4Addr::LOCALHOST, port).into(),
            )));
        }
        s.parse().map(|a| MetricsAddr(Some(a))).map_err(|_| {
            format!(
                "{s:?} is not an address to listen on: give ADDR:PORT (127.0.0.1:9477, \
                 [::1]:9477), a port alone (loopback), or off"
            )
        })
    }
}

impl std::fmt::Display for MetricsAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("off"),
            Some(a) => write!(f, "{a}"),
        }
    }
}

/// `--store`: where events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// Not stored.
    None,
    /// SQLite: `netev.db` in the state dir, or a given file.
    Sqlite(Option<PathBuf>),
    /// A PostgreSQL URL or connection string.
    Postgres(String),
}

impl std::str::FromStr for StoreSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<StoreSpec, String> {
        Ok(match s {
            "none" => StoreSpec::None,
            "sqlite" => StoreSpec::Sqlite(None),
            _ if netev_store::is_postgres(s) => StoreSpec::Postgres(s.to_string()),
            _ => match s.strip_prefix("sqlite:") {
                Some(p) if p.starts_with('/') => StoreSpec::Sqlite(Some(p.into())),
                _ => {
                    return Err(format!(
                        "{s:?} is not a store: use sqlite (netev.db in the state dir), \
                         sqlite:/absolute/path.db, postgres://user@host/db, or none"
                    ))
                }
            },
        })
    }
}

impl std::fmt::Display for StoreSpec {
    /// As written in the configuration, without a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreSpec::None => f.write_str("none"),
            StoreSpec::Sqlite(None) => f.write_str("sqlite"),
            StoreSpec::Sqlite(Some(p)) => write!(f, "sqlite:{}", p.display()),
            StoreSpec::Postgres(url) => f.write_str(&netev_store::redact(url)),
        }
    }
}

/// `--store-max-age`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxAge(pub Option<Duration>);

impl std::str::FromStr for MaxAge {
    type Err = String;
    fn from_str(s: &str) -> Result<MaxAge, String> {
        parse_age(s).map(MaxAge)
    }
}

impl std::fmt::Display for MaxAge {
    /// In seconds (`2592000s`), or `0` for keeping everything.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            None => f.write_str("0"),
            Some(d) => write!(f, "{}s", d.as_secs()),
        }
    }
}

/// `--store-max-age`: `30d`, `12h`, `90m` (an age as `netev log` reads
/// one); `0` keeps everything.
pub fn parse_age(s: &str) -> Result<Option<Duration>, String> {
    if s == "0" {
        return Ok(None);
    }
    netev_store::query::parse_age(s).map(Some).ok_or_else(|| {
        format!("{s:?} is not an age: write e.g. 30d, 12h, 90m, or 0 to keep everything")
    })
}

/// `--ringbuf-size`: a size (netev-units' grammar: `65536`, `512K`, `16M`)
/// that the kernel takes for a ring buffer.
pub fn parse_size(s: &str) -> Result<u32, String> {
    let bytes = netev_units::parse_size(s).map_err(|e| match e {
        netev_units::SizeError::NotASize => {
            format!("{s:?} is not a size (examples: 65536, 512K, 16M)")
        }
        netev_units::SizeError::TooLarge => {
            format!("{s} is not a power of two between 4K and 1024M (the kernel requires it)")
        }
    })?;
    if !(4096..=1 << 30).contains(&bytes) || !bytes.is_power_of_two() {
        return Err(format!(
            "{s} is not a power of two between 4K and 1024M (the kernel requires it)"
        ));
    }
    Ok(bytes as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_size("8M"), Ok(8 << 20));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("3000").unwrap_err().contains("power of two"));
        assert!(parse_size("lots").unwrap_err().contains("not a size"));
    }

    #[test]
    fn store_specs_and_ages_parse() {
        assert_eq!("none".parse(), Ok(StoreSpec::None));
        assert_eq!("sqlite".parse(), Ok(StoreSpec::Sqlite(None)));
        assert_eq!(
            "sqlite:/srv/ev.db".parse(),
            Ok(StoreSpec::Sqlite(Some("/srv/ev.db".into())))
        );
        assert_eq!(
            "postgres://netev@db/netev".parse(),
            Ok(StoreSpec::Postgres("postgres://netev@db/netev".into()))
        );
        assert!("mysql://x"
            .parse::<StoreSpec>()
            .unwrap_err()
            .contains("is not a store"));
        assert!("sqlite:rel.db".parse::<StoreSpec>().is_err());
        assert_eq!(parse_age("30d"), Ok(Some(Duration::from_secs(30 * 86_400))));
        assert_eq!(parse_age("0"), Ok(None));
        assert!(parse_age("soon").unwrap_err().contains("is not an age"));
    }
}
