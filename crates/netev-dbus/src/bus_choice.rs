//! Which bus a client looks for netevd on (`--bus`), and connecting to it.

use zbus::Connection;

/// Which bus netevd is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusChoice {
    /// The system bus.
    System,
    /// The session bus.
    Session,
    /// An address such as `unix:path=/run/netev/bus` (checked when parsed).
    Address(String),
}

impl std::str::FromStr for BusChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "system" => Ok(BusChoice::System),
            "session" => Ok(BusChoice::Session),
            a => a
                .parse::<zbus::Address>()
                .map(|_| BusChoice::Address(a.to_string()))
                .map_err(|e| format!("{a:?} is neither system, session nor a D-Bus address: {e}")),
        }
    }
}

impl std::fmt::Display for BusChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BusChoice::System => f.write_str("the system bus"),
            BusChoice::Session => f.write_str("the session bus"),
            BusChoice::Address(a) => write!(f, "the bus at {a}"),
        }
    }
}

impl BusChoice {
    /// Connects to this bus.
    pub async fn connect(&self) -> zbus::Result<Connection> {
        match self {
            BusChoice::System => Connection::system().await,
            BusChoice::Session => Connection::session().await,
            BusChoice::Address(a) => zbus::connection::Builder::address(a.as_str()).build().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buses_parse_and_name_themselves() {
        assert_eq!("system".parse(), Ok(BusChoice::System));
        assert_eq!("session".parse(), Ok(BusChoice::Session));
        let a: BusChoice = "unix:path=/run/netev/bus".parse().unwrap();
        assert_eq!(a.to_string(), "the bus at unix:path=/run/netev/bus");
        let e = "nowhere".parse::<BusChoice>().unwrap_err();
        assert!(
            e.contains("neither system, session nor a D-Bus address"),
            "{e}"
        );
    }
}
