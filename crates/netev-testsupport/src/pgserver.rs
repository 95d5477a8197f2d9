//! A private PostgreSQL server for tests, so that no test depends on (or
//! disturbs) a server the machine may already run.
//!
//! [`PgServer::start`] runs `initdb` in a fresh temp dir and `pg_ctl start`
//! with the server listening on a unix socket in that dir and on
//! 127.0.0.1 at a free port, with trust authentication, as superuser
//! `postgres`. Dropping the [`PgServer`] (on any exit from the test,
//! panics included) stops it with `pg_ctl stop -m immediate` and removes
//! the dir; servers left by a test process that was killed are removed by
//! the next start.
//!
//! The binaries come from Debian's layout, `/usr/lib/postgresql/<version>/bin`
//! (the newest version there). PostgreSQL refuses to run as root: as root
//! the server runs as the `postgres` system user (via `runuser`), as anyone
//! else it runs as that user.
//!
//! Use it from a test (a dev-dependency on netev-testsupport):
//!
//! ```no_run
//! # #[allow(clippy::test_attr_in_doctest)]
//! #[test]
//! fn something() {
//!     let Some(pg) = netev_testsupport::pgserver::PgServer::start_or_skip() else { return };
//!     let url = pg.create_database("something"); // postgres://postgres@127.0.0.1:<port>/something
//!     // … connect to `url`; `pg.psql("something", "SELECT …")` to look inside …
//! }
//! ```
//!
//! When PostgreSQL cannot run here (not installed; root without a
//! `postgres` user), [`PgServer::start_or_skip`] prints why and returns
//! `None`, except under `CI=true`, where a skipped test would hide a broken
//! machine: there it panics with the reason.

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Temp dirs of ours start with this, then the owning process id.
const PREFIX: &str = "netev-pgtest-";

/// A running private server; stopped and removed on drop.
pub struct PgServer {
    bin: PathBuf,
    dir: Option<tempfile::TempDir>,
    port: u16,
    /// Whether the server runs as the postgres user (we are root).
    as_postgres: bool,
    running: bool,
}

/// Why PostgreSQL cannot run on this machine.
#[derive(Debug)]
pub struct Unavailable(pub String);

impl PgServer {
    /// Starts a server, or says why this machine cannot run one. Any other
    /// failure (initdb or the server failing) panics with its output: that
    /// is a broken test setup, not a reason to skip.
    pub fn start() -> Result<PgServer, Unavailable> {
        let bin = find_bin()?;
        let as_postgres = is_root();
        if as_postgres {
            if Command::new("runuser").arg("--help").output().is_err() {
                return Err(Unavailable(
                    "running as root, and runuser (util-linux) is missing to run PostgreSQL as \
                     the postgres user"
                        .into(),
                ));
            }
            if id("-u", "postgres").is_none() {
                return Err(Unavailable(
                    "running as root, and there is no postgres user to run PostgreSQL as (it \
                     refuses to run as root): install the postgresql package"
                        .into(),
                ));
            }
        }
        remove_stale(&bin, as_postgres);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{}-", std::process::id()))
            .tempdir()
            .expect("creating a temp dir for PostgreSQL");
        if as_postgres {
            let uid = id("-u", "postgres").expect("checked above");
            let gid = id("-g", "postgres").expect("the postgres user has a group");
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("giving the temp dir to the postgres user");
        }
        let mut server = PgServer {
            bin,
            dir: Some(dir),
            port: 0,
            as_postgres,
            running: false,
        };
        server.initdb();
        server.start_server();
        Ok(server)
    }

    /// [`start`](Self::start), or `None` after printing why this machine
    /// cannot run PostgreSQL; under `CI=true` that panics instead.
    pub fn start_or_skip() -> Option<PgServer> {
        match PgServer::start() {
            Ok(s) => Some(s),
            Err(Unavailable(why)) => {
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("PostgreSQL tests cannot run, and CI=true forbids skipping them: {why}");
                }
                // Past the test harness's capture, which would hide it in
                // a passing run.
                let test = std::thread::current().name().unwrap_or("").to_string();
                let _ = writeln!(
                    std::io::stderr(),
                    "skipping {test}: PostgreSQL cannot run here: {why}"
                );
                None
            }
        }
    }

    /// The temp dir: data in `data/`, the log in `server.log`, the socket.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("present until drop").path()
    }

    /// The directory of the unix socket (`host=` in a connection string).
    pub fn socket_dir(&self) -> &Path {
        self.dir()
    }

    /// The TCP port on 127.0.0.1 (also the socket's number).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A TCP URL for `database` as superuser `postgres`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// A `key=value` connection string for `database` over the unix socket.
    pub fn socket_conninfo(&self, database: &str) -> String {
        format!(
            "host={} port={} user=postgres dbname={database}",
            self.socket_dir().display(),
            self.port
        )
    }

    /// Creates an empty database and returns its [`url`](Self::url).
    pub fn create_database(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        self.url(name)
    }

    /// Runs SQL in `database` as superuser; returns the rows, one per line,
    /// columns separated by `|`. Panics on an SQL error.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                "postgres",
            ])
            .arg("-h")
            .arg(self.socket_dir())
            .args(["-p", &self.port.to_string(), "-d", database, "-c", sql])
            .output()
            .expect("running psql");
        check(&out, &format!("psql {sql:?}"));
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }

    /// The server's log so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("server.log")).unwrap_or_default()
    }

    /// Stops the server now (a test of a server going away); the dir stays
    /// until drop.
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        let out = self
            .as_server(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        if !out.as_ref().is_ok_and(|o| o.status.success()) {
            // pg_ctl could not stop it: the postmaster's pid is the first
            // line of postmaster.pid.
            kill_postmaster(&self.dir().join("data"));
        }
    }

    /// Stops the server as a crash would (`-m immediate`) and starts it
    /// again on the same port and data: a database restart under a writer.
    pub fn restart(&mut self) {
        self.stop();
        self.running = true;
        let out = self.pg_ctl_start();
        check(&out, "pg_ctl start (restart)");
    }

    /// `pg_ctl start` on `self.port`, waiting until it takes connections.
    fn pg_ctl_start(&self) -> Output {
        self.as_server(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir().join("data"))
            .arg("-l")
            .arg(self.dir().join("server.log"))
            .args([
                "-w",
                "-t",
                "60",
                "-o",
                &format!("-p {}", self.port),
                "start",
            ])
            .output()
            .expect("running pg_ctl start")
    }

    fn initdb(&self) {
        let out = self
            .as_server(&self.bin.join("initdb"))
            .arg("-D")
            .arg(self.dir().join("data"))
            // No fsync: a test server's data need not survive a power cut.
            // But synchronous_commit stays on: with it off, a server that
            // crashes (restart -m immediate) loses transactions it already
            // reported committed, which is what the tests check never happens.
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "-N",
            ])
            .output()
            .expect("running initdb");
        check(&out, "initdb");
        let conf = format!(
            "\n# netev tests: private, throwaway\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\n\
             fsync = off\n\
             synchronous_commit = on\n\
             full_page_writes = off\n\
             shared_buffers = 16MB\n\
             max_connections = 40\n",
            self.dir().display()
        );
        let path = self.dir().join("data/postgresql.conf");
        let mut text = std::fs::read_to_string(&path).expect("reading postgresql.conf");
        text.push_str(&conf);
        std::fs::write(&path, text).expect("writing postgresql.conf");
    }

    fn start_server(&mut self) {
        // From here on drop stops whatever may run, even after a failed
        // start (a server that came up too late for `-w`).
        self.running = true;
        // Another process may take the free port between our look and the
        // server's bind; then try another.
        for attempt in 1..=5 {
            self.port = free_port();
            let out = self.pg_ctl_start();
            if out.status.success() {
                return;
            }
            let log = self.log();
            if attempt == 5 || !log.contains("could not bind") {
                panic!(
                    "the test PostgreSQL server did not start: {}\n{}\n--- server.log:\n{log}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }

    fn as_server(&self, program: &Path) -> Command {
        server_command(program, self.as_postgres, self.dir())
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            if let Err(e) = dir.close() {
                eprintln!(
                    "could not remove the test server's dir {}: {e}",
                    path.display()
                );
            }
        }
    }
}

fn server_command(program: &Path, as_postgres: bool, cwd: &Path) -> Command {
    let mut cmd = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    // The postgres user may not be allowed into the test's working dir.
    cmd.current_dir(cwd);
    cmd
}

fn check(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The newest `/usr/lib/postgresql/<version>/bin` with a `pg_ctl`.
fn find_bin() -> Result<PathBuf, Unavailable> {
    let root = Path::new("/usr/lib/postgresql");
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.split('.').next()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        Unavailable(
            "PostgreSQL is not installed (no /usr/lib/postgresql/<version>/bin/pg_ctl): run \
             scripts/setup.sh, or apt-get install postgresql"
                .into(),
        )
    })
}

fn is_root() -> bool {
    id("-u", "").is_some_and(|uid| uid == 0)
}

/// `id -u|-g [user]`.
fn id(flag: &str, user: &str) -> Option<u32> {
    let mut cmd = Command::new("id");
    cmd.arg(flag);
    if !user.is_empty() {
        cmd.arg(user);
    }
    let out = cmd.output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("finding a free port on 127.0.0.1")
        .port()
}

/// Stops and removes servers whose test process died without dropping
/// them (killed, or interrupted with ^C).
fn remove_stale(bin: &Path, as_postgres: bool) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if alive(pid) {
            continue;
        }
        let data = e.path().join("data");
        if data.join("postmaster.pid").exists() {
            let stopped = server_command(&bin.join("pg_ctl"), as_postgres, &e.path())
                .arg("-D")
                .arg(&data)
                .args(["-m", "immediate", "-w", "stop"])
                .output()
                .is_ok_and(|o| o.status.success());
            if !stopped {
                kill_postmaster(&data);
            }
        }
        let _ = std::fs::remove_dir_all(e.path());
    }
}

/// Whether a process runs (a zombie does not: in a container whose init
/// does not reap, a killed test stays one for a while).
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}

fn kill_postmaster(data: &Path) {
    let pid = std::fs::read_to_string(data.join("postmaster.pid"))
        .ok()
        .and_then(|t| t.lines().next().map(str::to_owned));
    if let Some(pid) = pid.filter(|p| p.parse::<u32>().is_ok()) {
        let _ = Command::new("kill").args(["-KILL", &pid]).output();
    }
}
