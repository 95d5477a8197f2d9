//! Harness for the end-to-end tests: a dedicated child cgroup (removed on
//! every exit path), workloads started inside it, and a real netevd attached
//! to it whose JSON output is collected.

use std::ffi::CString;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use netev_testsupport::dbus::{busconfig, DbusDaemon, LISTEN};
use serde_json::Value;

/// How long to wait for the daemon to come up, or for anything else to
/// become true. A bound on readiness, not a timing assertion: loading BPF
/// takes ~1 s on the host, but 15-75 s under the matrix's emulated kernels
/// (the verifier, with two tests starting a netevd at once on a loaded
/// machine; 60 s was once not enough), so it is the hang bound itself.
const READY_WAIT: Duration = HANG_BOUND;

/// The longest any command of a test may run. Not a timing assertion: a
/// bound that turns a hang (a wedged daemon, a client that never hears the
/// daemon leave) into a failure that names the command, instead of a CI run
/// that never ends.
pub const HANG_BOUND: Duration = Duration::from_secs(180);

/// `Command::output` with [`HANG_BOUND`]: stdout and stderr are captured; a
/// command still running at the bound is killed and the test fails.
pub trait OutputBounded {
    fn output_bounded(&mut self) -> std::process::Output;
}

impl OutputBounded for Command {
    fn output_bounded(&mut self) -> std::process::Output {
        use std::io::Read;
        let what = format!("{self:?}");
        let mut child = self
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        // Read into shared buffers: a daemonizing command leaves its pipes
        // open in the daemon, so end of file may never come; what it wrote
        // before exiting is there all the same.
        let read = |mut r: Box<dyn Read + Send>| {
            let buf = Arc::new(Mutex::new(Vec::new()));
            let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (b, d) = (buf.clone(), done.clone());
            std::thread::spawn(move || {
                let mut chunk = [0u8; 8192];
                while let Ok(n @ 1..) = r.read(&mut chunk) {
                    b.lock().unwrap().extend_from_slice(&chunk[..n]);
                }
                d.store(true, Ordering::SeqCst);
            });
            (buf, done)
        };
        let out = read(Box::new(child.stdout.take().expect("piped")));
        let err = read(Box::new(child.stderr.take().expect("piped")));
        let deadline = Instant::now() + HANG_BOUND;
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{what} still running after {HANG_BOUND:?}: killed; its stderr:\n{}",
                    String::from_utf8_lossy(&err.0.lock().unwrap())
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // the rest of its output, unless someone else holds the pipes
        let drained = Instant::now() + Duration::from_secs(2);
        while !(out.1.load(Ordering::SeqCst) && err.1.load(Ordering::SeqCst))
            && Instant::now() < drained
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        let take = |b: &Arc<Mutex<Vec<u8>>>| std::mem::take(&mut *b.lock().unwrap());
        std::process::Output {
            status,
            stdout: take(&out.0),
            stderr: take(&err.0),
        }
    }
}

/// Waits for a child with [`HANG_BOUND`]; kills it and fails the test at the
/// bound.
pub fn wait_bounded(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + HANG_BOUND;
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} still running after {HANG_BOUND:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `netev ARGS`, which must succeed, and parses its output as one JSON
/// object per line.
pub fn netev_json(args: &[&str]) -> Vec<Value> {
    let out = Command::new(workspace_bin("netev"))
        .args(args)
        .output_bounded();
    assert!(
        out.status.success(),
        "netev {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// True if the test can run. Without root it is skipped with a printed
/// reason, except under `CI=true`, where a skip is a failure.
pub fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test} needs root (it loads BPF programs); under CI=true a skip is a failure");
    }
    eprintln!("SKIP {test}: needs root (it loads BPF programs)");
    false
}

/// A binary of this workspace, built next to the test executable.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        path.display()
    );
    std::fs::canonicalize(path).expect("canonical path")
}

/// The cgroup v2 mount point, read from /proc/mounts.
pub fn cgroup2_root() -> PathBuf {
    netev_host::mounts::cgroup2_root().unwrap_or_else(|e| panic!("{e}"))
}

/// A child cgroup for one test. Dropping it kills what still runs inside
/// and removes the directory.
pub struct TestCgroup {
    path: PathBuf,
}

impl TestCgroup {
    /// Creates `<cgroup2>/netev-test/<name>-<pid>-<n>`, first removing
    /// what test runs that were killed (no Drop ran) left there.
    pub fn new(name: &str) -> TestCgroup {
        static N: AtomicU32 = AtomicU32::new(0);
        static SWEEP: std::sync::Once = std::sync::Once::new();
        let parent = cgroup2_root().join("netev-test");
        SWEEP.call_once(|| remove_stale_cgroups(&parent));
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = parent.join(format!("{name}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("creating test cgroup {}: {e}", path.display()));
        TestCgroup { path }
    }

    /// The cgroup directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A command that starts inside this cgroup.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let procs = CString::new(
            self.path
                .join("cgroup.procs")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .expect("no NUL in path");
        let mut cmd = Command::new(program);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // "0" moves the writing process.
                let rc = libc::write(fd, b"0".as_ptr().cast(), 1);
                libc::close(fd);
                if rc != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }

    /// Runs a command inside the cgroup to completion; returns its stdout
    /// parsed as one JSON line (the workloads' report).
    pub fn run_json(&self, program: &Path, args: &[&str]) -> Value {
        let out = self.command(program).args(args).output_bounded();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{} {args:?} failed: {}; stderr:\n{stderr}",
            program.display(),
            out.status
        );
        if !stderr.is_empty() {
            eprint!("{stderr}");
        }
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.trim())
            .unwrap_or_else(|e| panic!("workload printed {text:?}, not JSON: {e}"))
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        remove_cgroup(&self.path);
        // Shared parent: removed by whichever test leaves it empty.
        if let Some(parent) = self.path.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// Kills what still runs in a test cgroup and removes it.
fn remove_cgroup(path: &Path) {
    let procs = path.join("cgroup.procs");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = std::fs::read_to_string(&procs).unwrap_or_default();
        if pids.trim().is_empty() || Instant::now() > deadline {
            break;
        }
        for pid in pids.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            // SAFETY: signalling a process of our own test cgroup.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // programs a killed test daemon left pinned (netevd --pin-dir's
    // default): unpinned, they go with the cgroup
    if let Ok(pins) = netev_host::pins::cgroup_dir_of(Path::new(DEFAULT_PIN_DIR), path) {
        let _ = std::fs::remove_dir_all(pins);
    }
    if let Err(e) = std::fs::remove_dir(path) {
        eprintln!("warning: removing {}: {e}", path.display());
    }
}

/// netevd's default `--pin-dir`.
pub use netev_host::pins::DEFAULT_PIN_DIR;

/// Test cgroups (`<name>-<pid>-<n>`) of test processes that no longer run.
fn remove_stale_cgroups(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.rsplit('-').nth(1).and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        // SAFETY: signal 0 only checks that the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive && e.path().is_dir() {
            remove_cgroup(&e.path());
        }
    }
}

/// The environment variable that picks netevd's capture backend for the
/// tests (`cgroup` or `lsm`); unset, netevd chooses. scripts/vm-matrix.sh
/// sets it to run the same tests once per backend on each kernel.
pub const BACKEND_ENV: &str = "NETEV_TEST_BACKEND";

/// The backend the tests were asked to use ([`BACKEND_ENV`]), if any. A
/// value other than `cgroup` or `lsm` fails the test: a typo must not run
/// the default backend under another name.
pub fn test_backend() -> Option<String> {
    match std::env::var(BACKEND_ENV) {
        Ok(b) if b.is_empty() => None,
        Ok(b) if b == "cgroup" || b == "lsm" => Some(b),
        Ok(b) => panic!("{BACKEND_ENV}={b:?}: expected cgroup or lsm (or unset)"),
        Err(_) => None,
    }
}

/// `["--backend", B]` for netevd when [`BACKEND_ENV`] is set, else nothing:
/// for tests that start netevd themselves instead of through [`Daemon`].
pub fn backend_args() -> Vec<String> {
    test_backend()
        .map(|b| vec!["--backend".to_string(), b])
        .unwrap_or_default()
}

/// A running netevd attached to a test cgroup, printing JSON.
pub struct Daemon {
    child: Option<Child>,
    run_dir: tempfile::TempDir,
    stdout: Option<JoinHandle<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
    stderr_thread: Option<JoinHandle<()>>,
}

/// What a stopped daemon left: every event, and its log.
pub struct Stopped {
    /// Every event printed, in order.
    pub events: Vec<Value>,
    /// Everything logged on stderr.
    pub log: String,
    /// Exit status.
    pub success: bool,
}

impl Daemon {
    /// Starts `netevd --foreground --print json --cgroup CG` plus `extra`,
    /// and waits until it has attached.
    pub fn start(cgroup: &TestCgroup, extra: &[&str]) -> Daemon {
        Daemon::start_wrapped(cgroup, extra, &[])
    }

    /// As [`Daemon::start`], netevd run by `wrapper` (a command and its
    /// arguments, such as `setpriv --bounding-set …`). With
    /// `NETEV_TEST_BACKEND` set, netevd gets `--backend` (see
    /// [`backend_args`]).
    pub fn start_wrapped(cgroup: &TestCgroup, extra: &[&str], wrapper: &[&str]) -> Daemon {
        let run_dir = tempfile::tempdir().expect("temp dir");
        let has_bus = extra.contains(&"--bus");
        let backend = if extra.contains(&"--backend") {
            vec![]
        } else {
            backend_args()
        };
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(workspace_bin("netevd"));
                c
            }
            None => Command::new(workspace_bin("netevd")),
        };
        let mut child = command
            .args(["--foreground", "--print", "json", "--cgroup"])
            .arg(cgroup.path())
            .arg("--run-dir")
            .arg(run_dir.path())
            .args(if has_bus {
                &[][..]
            } else {
                &["--bus", "none"][..]
            })
            .args(if extra.contains(&"--state-dir") {
                vec![]
            } else {
                vec!["--state-dir".into(), run_dir.path().join("state")]
            })
            .args(&backend)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting netevd");
        let out = child.stdout.take().expect("piped");
        let stdout = std::thread::spawn(move || {
            let mut events = Vec::new();
            let mut out = BufReader::new(out);
            let mut line = Vec::new();
            loop {
                line.clear();
                match out.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                // A last line cut short (no newline) is what a kill -9 in
                // the middle of a write leaves: not netevd's output to judge.
                if line.last() != Some(&b'\n') {
                    eprintln!(
                        "[netevd stdout] ignoring an unfinished last line ({} bytes)",
                        line.len()
                    );
                    break;
                }
                let l = String::from_utf8_lossy(&line[..line.len() - 1]);
                events.push(serde_json::from_str(&l).unwrap_or_else(|e| {
                    panic!("netevd printed a line that is not JSON ({e}): {l:?}")
                }));
            }
            events
        });
        let err = child.stderr.take().expect("piped");
        let stderr = Arc::new(Mutex::new(String::new()));
        let log = stderr.clone();
        let stderr_thread = std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[netevd] {line}");
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let mut d = Daemon {
            child: Some(child),
            run_dir,
            stdout: Some(stdout),
            stderr,
            stderr_thread: Some(stderr_thread),
        };
        d.wait_ready();
        d
    }

    fn wait_ready(&mut self) {
        let status = self.status_path();
        let deadline = Instant::now() + READY_WAIT;
        while !status.exists() {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().expect("try_wait") {
                panic!(
                    "netevd exited during start-up ({st}):\n{}",
                    self.stderr.lock().unwrap()
                );
            }
            assert!(
                Instant::now() < deadline,
                "netevd did not attach within {READY_WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The status file netevd writes.
    pub fn status_path(&self) -> PathBuf {
        self.run_dir.path().join("status.json")
    }

    /// The run directory (for `netev status --run-dir`).
    pub fn run_dir(&self) -> &Path {
        self.run_dir.path()
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends a signal.
    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.pid() as i32, sig) };
    }

    /// SIGKILL, as a crash: nothing of netevd's own clean-up runs. Waits
    /// until it is gone (reaped); the run directory stays.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGTERM, wait for the drain and exit, collect everything. A daemon
    /// that does not stop within the bound is killed and the test fails.
    pub fn stop(mut self) -> Stopped {
        self.signal(libc::SIGTERM);
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + READY_WAIT;
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait netevd") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "netevd did not stop within {READY_WAIT:?} of SIGTERM; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let events = self.stdout.take().unwrap().join().expect("stdout reader");
        self.stderr_thread
            .take()
            .unwrap()
            .join()
            .expect("stderr reader");
        Stopped {
            events,
            log: self.log(),
            success: status.success(),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            // Bounded, without panicking (this may run while unwinding): a
            // wedged daemon is killed so that the cgroup can be removed.
            let deadline = Instant::now() + READY_WAIT;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Stopped {
    /// Events of one process, in order.
    pub fn of_pid(&self, pid: u64) -> Vec<&Value> {
        self.events.iter().filter(|e| e["pid"] == pid).collect()
    }

    /// The final counters the daemon logged: (seen, delivered, dropped).
    pub fn final_counters(&self) -> (u64, u64, u64) {
        let line = self
            .log
            .lines()
            .find(|l| l.contains("final counters"))
            .unwrap_or_else(|| panic!("no final counters in the log:\n{}", self.log));
        let field = |name: &str| -> u64 {
            let key = format!("{name}=");
            let at = line
                .find(&key)
                .unwrap_or_else(|| panic!("no {name} in {line}"))
                + key.len();
            line[at..]
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("bad {name} in {line}"))
        };
        (field("seen"), field("delivered"), field("dropped"))
    }
}

/// Asserts that `ev` has each (field, value) of `want`, with a readable message.
pub fn assert_fields(ev: &Value, want: &[(&str, Value)]) {
    for (k, v) in want {
        assert_eq!(&ev[*k], v, "field {k} of event {ev}");
    }
}

/// A private dbus-daemon for one test, configured like Debian's system bus
/// plus the policy file this repository ships (`dist/dbus/`), or, with
/// `permissive`, a bus whose policy lets anyone call anything (to show the
/// daemon's own check). Killed on drop.
pub struct PrivateBus {
    bus: DbusDaemon,
    _dir: tempfile::TempDir,
}

impl PrivateBus {
    /// A system-style bus with netev's policy.
    pub fn system_like() -> PrivateBus {
        Self::start(false, "")
    }

    /// A system-style bus whose dbus-daemon holds at most `bytes` of
    /// undelivered messages per sender (the default is 127 MiB): a slow
    /// reader reaches the limit within a test.
    pub fn system_like_with_limit(bytes: u64) -> PrivateBus {
        Self::start(
            false,
            &format!(
                r#"<limit name="max_incoming_bytes">{bytes}</limit><limit name="max_outgoing_bytes">{bytes}</limit>"#
            ),
        )
    }

    /// A system-style bus with netev's policy and `extra` (configuration
    /// elements, e.g. `netev_testsupport::polkit::bus_policy_include()`).
    pub fn system_like_with(extra: &str) -> PrivateBus {
        Self::start(false, extra)
    }

    /// A bus that allows every call: only netevd's own checks stand.
    pub fn permissive() -> PrivateBus {
        Self::start(true, "")
    }

    fn start(permissive: bool, extra: &str) -> PrivateBus {
        let dir = tempfile::tempdir().expect("temp dir");
        // other users must reach the socket
        set_mode(dir.path(), 0o755);
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("repo root");
        let config = if permissive {
            busconfig(&format!(
                r#"<type>system</type><auth>EXTERNAL</auth><listen>{LISTEN}</listen>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_type="method_call"/>
<allow send_destination="*" eavesdrop="false"/><allow receive_sender="*"/></policy>"#
            ))
        } else {
            std::fs::read_to_string(repo.join("dist/dbus/private-system-bus.conf.in"))
                .expect("dist/dbus/private-system-bus.conf.in")
                .replace(
                    "@POLICY@",
                    &repo
                        .join("dist/dbus/org.netev.Daemon1.conf")
                        .display()
                        .to_string(),
                )
        };
        let config = config.replace("</busconfig>", &format!("{extra}</busconfig>"));
        PrivateBus {
            bus: DbusDaemon::start(dir.path(), &config),
            _dir: dir,
        }
    }

    /// The bus address, for `--bus`.
    pub fn address(&self) -> &str {
        self.bus.address()
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Creates the group if missing.
pub fn ensure_group(group: &str) {
    let exists = Command::new("getent")
        .args(["group", group])
        .output()
        .expect("getent");
    if !exists.status.success() {
        let st = Command::new("groupadd")
            .arg(group)
            .status()
            .expect("groupadd");
        assert!(st.success(), "groupadd {group} failed");
    }
}

/// Creates a system user (no home, no login) if missing, with these
/// supplementary groups.
pub fn ensure_user(user: &str, groups: &[&str]) {
    let exists = Command::new("id").arg(user).output().expect("id");
    if !exists.status.success() {
        let mut cmd = Command::new("useradd");
        cmd.args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
        ]);
        if !groups.is_empty() {
            cmd.args(["--groups", &groups.join(",")]);
        }
        let st = cmd.arg(user).status().expect("useradd");
        assert!(st.success(), "useradd {user} failed");
    } else if !groups.is_empty() {
        let st = Command::new("usermod")
            .args(["-aG", &groups.join(","), user])
            .status()
            .expect("usermod");
        assert!(st.success());
    }
}

/// A copy of a workspace binary that any user can run (the checkout may sit
/// under a directory other users cannot enter).
pub struct PublicBin {
    dir: tempfile::TempDir,
    name: String,
}

impl PublicBin {
    /// Copies `name` from the target directory.
    pub fn copy(name: &str) -> PublicBin {
        let dir = tempfile::tempdir().expect("temp dir");
        set_mode(dir.path(), 0o755);
        let dst = dir.path().join(name);
        std::fs::copy(workspace_bin(name), &dst).expect("copy binary");
        set_mode(&dst, 0o755);
        // A child another test thread forked while the copy was open for
        // writing holds that fd until it execs; until then running the copy
        // fails with ETXTBSY. Wait that out here, not in every caller.
        let deadline = Instant::now() + READY_WAIT;
        loop {
            match Command::new(&dst).arg("--version").output() {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => panic!("running the copy {}: {e}", dst.display()),
                Ok(_) => break,
            }
        }
        PublicBin {
            dir,
            name: name.to_string(),
        }
    }

    /// The copy's path.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join(&self.name)
    }

    /// A command running the copy as `user` (with that user's groups).
    pub fn as_user(&self, user: &str) -> Command {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", user, "--"])
            .arg(self.dir.path().join(&self.name));
        cmd
    }
}

/// Waits until `pred` holds for the daemon's log, or panics with the log.
pub fn wait_for_log(daemon: &Daemon, what: &str, pred: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + READY_WAIT;
    while !pred(&daemon.log()) {
        assert!(
            Instant::now() < deadline,
            "waited in vain for {what}; log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Number of lines in the daemon's log that contain `needle`.
pub fn log_count(daemon: &Daemon, needle: &str) -> usize {
    daemon.log().lines().filter(|l| l.contains(needle)).count()
}

/// Waits until `done()` holds, or panics naming `what` (a bound on
/// readiness, not a timing assertion).
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + READY_WAIT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "waited {READY_WAIT:?} in vain for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
