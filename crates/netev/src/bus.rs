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
                "org.freedesktop.DBus.Error.AccessDenied"
                | "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired" => Failure {
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
            zbus::fdo::Error::AccessDenied(msg)
            | zbus::fdo::Error::InteractiveAuthorizationRequired(msg) => Failure {
                code: EXIT_ACCESS_DENIED,
                message: format!("access denied: {msg}"),
            },
            other => Failure { code: 1, message: other.to_string() },
        },
        _ => Failure { code: 1, message: e.to_string() },
    }
}

/// An authentication agent for this process while a change waits for
/// polkit (netevd asks polkit for a non-root member of its group): when
/// stdin is a terminal and we are not root, `pkttyagent --process <our pid>
/// [--fallback]`, as systemctl does, on the bus netevd is on. Killed on drop.
/// The change methods allow interactive authorization (netev-dbus's proxy)
/// and no call of netev has a timeout: a call waits as long as the
/// authentication does.
pub struct TtyAgent(Option<std::process::Child>);

impl Drop for TtyAgent {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts a [`TtyAgent`] if one is useful here and `pkttyagent` is
/// installed, and waits (at most 10 s) until it has registered.
pub fn tty_agent(bus: &BusChoice) -> TtyAgent {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    // SAFETY: geteuid and isatty have no preconditions.
    if unsafe { libc::geteuid() } == 0 || unsafe { libc::isatty(0) } != 1 {
        return TtyAgent(None);
    }
    let mut cmd = std::process::Command::new("pkttyagent");
    match bus {
        BusChoice::System => {}
        // polkit is not on a session bus
        BusChoice::Session => return TtyAgent(None),
        BusChoice::Address(a) => {
            cmd.env("DBUS_SYSTEM_BUS_ADDRESS", a);
        }
    }
    let mut fds = [0; 2];
    // SAFETY: fds is two ints, as pipe2 needs.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return TtyAgent(None);
    }
    // SAFETY: pipe2 just made them; nothing else owns them.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let w = wr.as_raw_fd();
    cmd.args([
        "--process",
        &std::process::id().to_string(),
        "--notify-fd",
        "3",
    ]);
    // `--fallback` leaves a login session's own agent (a desktop's) in
    // charge, as systemctl does; polkit uses a fallback agent only for a
    // process in a session, so outside one (no logind) it is left out.
    if in_login_session() {
        cmd.arg("--fallback");
    }
    // SAFETY: dup2 is async-signal-safe; fd 3 in the child is the write end
    // (dup2 clears close-on-exec), which pkttyagent closes once registered.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(w, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(_) => return TtyAgent(None),
    };
    drop(wr);
    // registered when the write end closes (EOF), or give up waiting
    let mut pfd = libc::pollfd {
        fd: rd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, 10_000) };
    TtyAgent(Some(child))
}

/// Whether this process is in a logind session: systemd runs (as polkit
/// checks) and our cgroup is a `session-N.scope`.
fn in_login_session() -> bool {
    std::path::Path::new("/run/systemd/system").is_dir()
        && std::fs::read_to_string("/proc/self/cgroup").is_ok_and(|c| {
            c.lines()
                .any(|l| l.contains("/session-") && l.contains(".scope"))
        })
}

/// A single-threaded runtime for one command.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
