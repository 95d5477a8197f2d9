//! The real polkitd on a test's private system-like bus, and a test
//! authentication agent that answers for one process.
//!
//! polkitd (Debian package `polkitd`) is GDBus: it connects to
//! `DBUS_SYSTEM_BUS_ADDRESS`, so each test gets a polkitd of its own on its
//! own bus. The bus must let it own `org.freedesktop.PolicyKit1`: include
//! [`bus_policy_include`] in the bus configuration (polkit's own policy
//! file, as the system bus does). polkitd reads its actions from
//! [`ACTIONS_DIR`] (fixed at its build): netev's must be installed there
//! (scripts/setup.sh does; [`check_actions_installed`] says so).
//!
//! [`TestAgent`] registers, as root, for one process (subject
//! `unix-process`, as `pkttyagent --process` does) and answers
//! `BeginAuthentication` by calling `AuthenticationAgentResponse2` as root
//! (what polkit-agent-helper-1 does once PAM accepted the password), or
//! refuses, or holds the answer until told.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};
use zbus::{fdo, Connection, OwnedVariant};

/// The polkit daemon Debian's `polkitd` package installs.
pub const POLKITD: &str = "/usr/lib/polkit-1/polkitd";
/// polkit's bus policy (lets user polkitd own its name).
pub const BUS_POLICY: &str = "/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf";
/// Where polkitd reads actions from.
pub const ACTIONS_DIR: &str = "/usr/share/polkit-1/actions";

const NAME: &str = "org.freedesktop.PolicyKit1";
const AUTHORITY: &str = "/org/freedesktop/PolicyKit1/Authority";
const AUTHORITY_IFACE: &str = "org.freedesktop.PolicyKit1.Authority";
const AGENT_PATH: &str = "/org/netev/TestAgent";

/// What a bus configuration includes so that polkitd may serve on it.
pub fn bus_policy_include() -> String {
    format!("<include>{BUS_POLICY}</include>")
}

/// Whether polkitd is installed.
pub fn installed() -> bool {
    Path::new(POLKITD).exists() && Path::new(BUS_POLICY).exists()
}

/// Ok if `ACTIONS_DIR` holds `policy` (a file of this repository, e.g.
/// `dist/polkit-1/actions/org.netev.policy`) as it is now; otherwise what
/// to do.
pub fn check_actions_installed(policy: &Path) -> Result<(), String> {
    let name = policy.file_name().expect("a file name");
    let installed = Path::new(ACTIONS_DIR).join(name);
    let want = std::fs::read(policy).map_err(|e| format!("{}: {e}", policy.display()))?;
    match std::fs::read(&installed) {
        Ok(have) if have == want => Ok(()),
        Ok(_) => Err(format!(
            "{} differs from {}: run scripts/setup.sh",
            installed.display(),
            policy.display()
        )),
        Err(e) => Err(format!(
            "{}: {e}; polkitd reads actions only from {ACTIONS_DIR}: run scripts/setup.sh",
            installed.display()
        )),
    }
}

/// A lock on netev's installed actions: shared while a polkit test runs,
/// exclusive while the package test installs and purges the package (which
/// replaces, then removes, the file). Released on drop.
pub struct ActionsLock {
    _file: std::fs::File,
}

impl ActionsLock {
    /// Waits for the lock.
    pub fn take(exclusive: bool) -> ActionsLock {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        // never through a link: a user could plant one in a shared
        // directory and have root create a file where it points
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open("/run/lock/netev-tests-polkit-actions.lock")
            .expect("the polkit actions lock file");
        let op = if exclusive {
            libc::LOCK_EX
        } else {
            libc::LOCK_SH
        };
        // SAFETY: a valid fd; flock has no other preconditions.
        let r = unsafe { libc::flock(f.as_raw_fd(), op) };
        assert_eq!(r, 0, "flock: {}", std::io::Error::last_os_error());
        ActionsLock { _file: f }
    }
}

/// Puts `policy` (a file of this repository) into [`ACTIONS_DIR`] if it is
/// not there as it is (root only): what scripts/setup.sh does, for after the
/// package test purged the package.
pub fn install_actions(policy: &Path) -> std::io::Result<()> {
    if check_actions_installed(policy).is_ok() {
        return Ok(());
    }
    let dst = Path::new(ACTIONS_DIR).join(policy.file_name().expect("a file name"));
    std::fs::copy(policy, &dst).map(|_| ())
}

/// A running polkitd on one bus; killed (and reaped) on drop.
pub struct Polkitd {
    child: Child,
}

impl Polkitd {
    /// Starts polkitd on the bus at `address` and waits until it owns
    /// `org.freedesktop.PolicyKit1`. Needs root (polkitd drops to user
    /// polkitd itself).
    pub fn start(address: &str) -> Polkitd {
        let child = Command::new(POLKITD)
            .arg("--no-debug")
            .env("DBUS_SYSTEM_BUS_ADDRESS", address)
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{POLKITD} (package polkitd): {e}; run scripts/setup.sh"));
        let mut pk = Polkitd { child };
        let deadline = Instant::now() + Duration::from_secs(60);
        let rt = runtime();
        let conn = rt
            .block_on(zbus::connection::Builder::address(address).build())
            .expect("connect to the test bus");
        loop {
            let owned = rt.block_on(async {
                let dbus = fdo::DBusProxy::new(&conn).await?;
                dbus.name_has_owner(NAME.try_into().expect("a bus name"))
                    .await
            });
            if owned.unwrap_or(false) {
                return pk;
            }
            if let Ok(Some(st)) = pk.child.try_wait() {
                panic!("polkitd exited ({st}) before it owned {NAME}");
            }
            assert!(
                Instant::now() < deadline,
                "polkitd did not own {NAME} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// polkitd's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Polkitd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How the test agent answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Authenticated, as the first identity polkit offered.
    Yes,
    /// Refused (as a wrong password three times, or Cancel).
    No,
    /// Waits for [`TestAgent::release`], then authenticates.
    Hold,
}

/// A request the agent received.
#[derive(Clone, Debug)]
pub struct Request {
    /// The polkit action.
    pub action_id: String,
    /// The message polkit shows for it.
    pub message: String,
    /// The identities polkit would accept, e.g. `unix-user`.
    pub identities: Vec<String>,
}

struct Shared {
    answer: Answer,
    requests: Mutex<Vec<Request>>,
    release: watch::Receiver<bool>,
}

struct AgentIface {
    shared: Arc<Shared>,
}

#[zbus::interface(name = "org.freedesktop.PolicyKit1.AuthenticationAgent")]
impl AgentIface {
    #[allow(clippy::too_many_arguments)]
    async fn begin_authentication(
        &self,
        action_id: String,
        message: String,
        _icon_name: String,
        _details: HashMap<String, String>,
        cookie: String,
        identities: Vec<(String, HashMap<String, OwnedVariant>)>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<()> {
        self.shared
            .requests
            .lock()
            .expect("requests")
            .push(Request {
                action_id,
                message,
                identities: identities.iter().map(|(k, _)| k.clone()).collect(),
            });
        match self.shared.answer {
            Answer::No => {
                return Err(fdo::Error::Failed(
                    "the test agent refuses to authenticate".into(),
                ))
            }
            Answer::Hold => {
                let mut r = self.shared.release.clone();
                let _ = r.wait_for(|go| *go).await;
            }
            Answer::Yes => {}
        }
        let identity = identities
            .into_iter()
            .next()
            .ok_or_else(|| fdo::Error::Failed("polkit offered no identity".into()))?;
        // uid: the agent's own (root), as polkit-agent-helper-1 reports it
        conn.call_method(
            Some(NAME),
            AUTHORITY,
            Some(AUTHORITY_IFACE),
            "AuthenticationAgentResponse2",
            &(0u32, cookie.as_str(), identity),
        )
        .await
        .map_err(|e| fdo::Error::Failed(format!("AuthenticationAgentResponse2: {e}")))?;
        Ok(())
    }

    async fn cancel_authentication(&self, _cookie: String) {}
}

/// An authentication agent registered for one process; unregistered (its
/// connection closed) on drop.
pub struct TestAgent {
    shared: Arc<Shared>,
    release: watch::Sender<bool>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestAgent {
    /// Registers an agent answering `answer` for process `pid` with polkitd
    /// on the bus at `address`; returns once polkitd accepted it. Needs
    /// root (registering for another user's process, and answering).
    pub fn register(address: &str, pid: u32, answer: Answer) -> TestAgent {
        let (release, release_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            answer,
            requests: Mutex::new(Vec::new()),
            release: release_rx,
        });
        let (stop, stop_rx) = oneshot::channel::<()>();
        let (ready, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let (addr, sh) = (address.to_string(), shared.clone());
        let start_time = start_time(pid);
        let thread = std::thread::spawn(move || {
            runtime().block_on(async move {
                let res = async {
                    let conn = zbus::connection::Builder::address(addr.as_str())
                        .serve_at(AGENT_PATH, AgentIface { shared: sh })
                        .build()
                        .await?;
                    let mut subject: HashMap<&str, zbus::Variant<'_>> = HashMap::new();
                    subject.insert("pid", pid.into());
                    subject.insert("start-time", start_time.into());
                    conn.call_method(
                        Some(NAME),
                        AUTHORITY,
                        Some(AUTHORITY_IFACE),
                        "RegisterAuthenticationAgent",
                        &(("unix-process", subject), "C", AGENT_PATH),
                    )
                    .await?;
                    Ok::<_, zbus::Error>(conn)
                }
                .await;
                match res {
                    Ok(conn) => {
                        let _ = ready.send(Ok(()));
                        let _ = stop_rx.await;
                        drop(conn);
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e.to_string()));
                    }
                }
            })
        });
        match ready_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("registering the test agent for pid {pid}: {e}"),
            Err(e) => panic!("registering the test agent for pid {pid}: {e}"),
        }
        TestAgent {
            shared,
            release,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The requests polkit made of it so far.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().expect("requests").clone()
    }

    /// Lets a held answer ([`Answer::Hold`]) go: it authenticates.
    pub fn release(&self) {
        let _ = self.release.send(true);
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        let _ = self.release.send(true);
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A process's start time in clock ticks since boot (`/proc/PID/stat`
/// field 22), as polkit identifies a process.
pub fn start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/stat: {e}"));
    let after = &stat[stat.rfind(')').expect("comm in parentheses") + 2..];
    after
        .split_whitespace()
        .nth(19)
        .and_then(|f| f.parse().ok())
        .unwrap_or_else(|| panic!("no start time in /proc/{pid}/stat"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
