//! Reaching netevd on D-Bus, and saying clearly why not.

use std::process::ExitCode;

use netev_dbus::{Daemon1Proxy, BUS_NAME};
use zbus::Connection;

/// Exit status when the daemon is not running (as LSB `status` uses 3).
pub const EXIT_NOT_RUNNING: u8 = 3;
/// Exit status when the caller is not allowed (EX_NOPERM).
pub const EXIT_ACCESS_DENIED: u8 = 77;

pub use netev_dbus::BusChoice;

/// An error worth its own exit status and message.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn exit(self) -> ExitCode {
        eprintln!("netev: {}", self.message);
        ExitCode::from(self.code)
    }
}

/// Connects to the bus and makes a proxy for the daemon.
pub async fn connect(bus: &BusChoice) -> Result<(Connection, Daemon1Proxy<'static>), Failure> {
    let conn = bus.connect().await.map_err(|e| Failure {
        code: 1,
        message: format!(
            "cannot connect to {bus}: {e} (is dbus-daemon running? use --bus to pick another bus)"
        ),
    })?;
    let proxy = Daemon1Proxy::new(&conn)
        .await
        .map_err(|e| explain(bus, e))?;
    Ok((conn, proxy))
}

/// Turns a D-Bus error into what the user should know and do.
pub fn explain(bus: &BusChoice, e: zbus::Error) -> Failure {
    match &e {
        zbus::Error::MethodError(name, msg, _) => {
            let msg = msg.clone().unwrap_or_default();
            match name.as_str() {
                "org.freedesktop.DBus.Error.ServiceUnknown" | "org.freedesktop.DBus.Error.NameHasNoOwner" => Failure {
                    code: EXIT_NOT_RUNNING,
                    message: format!("netevd is not running on {bus} (nobody owns {BUS_NAME}); start it with `sudo netevd`"),
                },
                "org.freedesktop.DBus.Error.AccessDenied" => Failure {
                    code: EXIT_ACCESS_DENIED,
                    message: format!("access denied: {msg}"),
                },
                _ => Failure { code: 1, message: format!("{name}: {msg}") },
            }
        }
        zbus::Error::FDO(fdo) => match fdo.as_ref() {
            zbus::fdo::Error::ServiceUnknown(_) | zbus::fdo::Error::NameHasNoOwner(_) => Failure {
                code: EXIT_NOT_RUNNING,
                message: format!("netevd is not running on {bus} (nobody owns {BUS_NAME}); start it with `sudo netevd`"),
            },
            zbus::fdo::Error::AccessDenied(msg) => Failure {
                code: EXIT_ACCESS_DENIED,
                message: format!("access denied: {msg}"),
            },
            other => Failure { code: 1, message: other.to_string() },
        },
        _ => Failure { code: 1, message: e.to_string() },
    }
}

/// A single-threaded runtime for one command.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
