//! Private NATS servers for tests: one node, or a cluster of nodes joined by
//! routes, each with JetStream on and its store in a temp dir, listening on
//! free ports on 127.0.0.1.
//!
//! Readiness is polled on each node's monitoring port (`/healthz`, which
//! answers 200 once JetStream is up, and in a cluster once the nodes agree
//! on a meta leader), with a bounded deadline; never a fixed sleep. A node
//! can be stopped (SIGTERM), killed (SIGKILL) and started again on the
//! same ports and store. Dropping the [`NatsServer`] kills every node and
//! removes the dir.
//!
//! ```no_run
//! # #[allow(clippy::test_attr_in_doctest)]
//! #[test]
//! fn something() {
//!     let Some(nats) = netev_testsupport::natsserver::NatsServer::start_or_skip() else { return };
//!     let url = nats.url(); // nats://127.0.0.1:<port>
//! }
//! ```
//!
//! The binary is Debian's `nats-server` (`/usr/sbin/nats-server`, or the
//! one on `PATH`). When it is missing, [`NatsServer::start_or_skip`] prints
//! why and returns `None`, except under `CI=true`, where it panics.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a node may take to become healthy.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why nats-server cannot run on this machine.
#[derive(Debug)]
pub struct Unavailable(pub String);

struct Node {
    name: String,
    port: u16,
    http_port: u16,
    cluster_port: u16,
    child: Option<Child>,
}

/// A running private server or cluster; killed and removed on drop.
pub struct NatsServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
}

impl NatsServer {
    /// One node, JetStream on.
    pub fn start() -> Result<NatsServer, Unavailable> {
        NatsServer::cluster(1)
    }

    /// `n` nodes; with more than one, a cluster joined by routes (JetStream
    /// clustered: streams may have up to `n` replicas).
    pub fn cluster(n: usize) -> Result<NatsServer, Unavailable> {
        assert!(n >= 1, "a cluster of no nodes");
        let bin = find_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("netev-natstest-")
            .tempdir()
            .expect("creating a temp dir for nats-server");
        let mut ports = free_ports(3 * n).into_iter();
        let mut next = || ports.next().expect("enough ports");
        let nodes = (0..n)
            .map(|i| Node {
                name: format!("n{}", i + 1),
                port: next(),
                http_port: next(),
                cluster_port: if n > 1 { next() } else { 0 },
                child: None,
            })
            .collect();
        let mut s = NatsServer { bin, dir, nodes };
        for i in 0..n {
            s.write_config(i);
            s.spawn(i);
        }
        for i in 0..n {
            s.wait_ready(i);
        }
        Ok(s)
    }

    /// [`start`](Self::start), or `None` after printing why; under
    /// `CI=true` that panics instead.
    pub fn start_or_skip() -> Option<NatsServer> {
        skip_unless(NatsServer::start())
    }

    /// [`cluster`](Self::cluster), or `None` after printing why; under
    /// `CI=true` that panics instead.
    pub fn cluster_or_skip(n: usize) -> Option<NatsServer> {
        skip_unless(NatsServer::cluster(n))
    }

    /// Every node, as an export target takes them: `nats://H:P[,H:P…]`.
    pub fn url(&self) -> String {
        format!("nats://{}", self.servers().join(","))
    }

    /// `127.0.0.1:PORT` of every node.
    pub fn servers(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect()
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Never: there is at least one node.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether node `i` runs (started by us and not stopped).
    pub fn running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// Stops node `i` as an operator would (SIGTERM, waited for).
    pub fn stop(&mut self, i: usize) {
        self.signal(i, libc::SIGTERM);
    }

    /// Kills node `i` (SIGKILL, waited for).
    pub fn kill(&mut self, i: usize) {
        self.signal(i, libc::SIGKILL);
    }

    /// Starts node `i` again (same ports, same store) and waits until it is
    /// healthy.
    pub fn restart(&mut self, i: usize) {
        if self.nodes[i].child.is_none() {
            self.spawn(i);
        }
        self.wait_ready(i);
    }

    /// Stops every node.
    pub fn stop_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i);
        }
    }

    /// Starts every stopped node; waits until all are healthy.
    pub fn restart_all(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].child.is_none() {
                self.spawn(i);
            }
        }
        for i in 0..self.nodes.len() {
            self.wait_ready(i);
        }
    }

    /// Node `i`'s log so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.log_path(i)).unwrap_or_default()
    }

    /// The temp dir (configs, logs, stores).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.dir().join(format!("{}.log", self.nodes[i].name))
    }

    fn conf_path(&self, i: usize) -> PathBuf {
        self.dir().join(format!("{}.conf", self.nodes[i].name))
    }

    fn write_config(&self, i: usize) {
        let node = &self.nodes[i];
        let store = self.dir().join(&node.name);
        let mut conf = format!(
            "server_name: {}\nlisten: \"127.0.0.1:{}\"\nhttp: \"127.0.0.1:{}\"\n\
             jetstream {{\n  store_dir: \"{}\"\n  max_memory_store: 64MB\n  max_file_store: 1GB\n}}\n",
            node.name,
            node.port,
            node.http_port,
            store.display()
        );
        if self.nodes.len() > 1 {
            let routes: Vec<String> = self
                .nodes
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, n)| format!("\"nats://127.0.0.1:{}\"", n.cluster_port))
                .collect();
            conf.push_str(&format!(
                "cluster {{\n  name: netevtest\n  listen: \"127.0.0.1:{}\"\n  routes: [{}]\n}}\n",
                node.cluster_port,
                routes.join(", ")
            ));
        }
        std::fs::write(self.conf_path(i), conf).expect("writing the nats-server config");
    }

    fn spawn(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .expect("opening the nats-server log");
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(self.conf_path(i))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("duplicating the log file"))
            .stderr(log)
            .spawn()
            .expect("starting nats-server");
        self.nodes[i].child = Some(child);
    }

    fn signal(&mut self, i: usize, sig: i32) {
        let Some(mut child) = self.nodes[i].child.take() else {
            return;
        };
        // SAFETY: kill(2) on our own child's pid, which we have not reaped.
        unsafe { libc::kill(child.id() as i32, sig) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_ready(&mut self, i: usize) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let port = self.nodes[i].http_port;
        loop {
            if let Some(child) = self.nodes[i].child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.nodes[i].child = None;
                    panic!(
                        "nats-server {} exited ({status}) before it was ready:\n{}",
                        self.nodes[i].name,
                        self.log(i)
                    );
                }
            }
            if healthz(port) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "nats-server {} not healthy within {READY_TIMEOUT:?}:\n{}",
                    self.nodes[i].name,
                    self.log(i)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// Whether `GET /healthz` on the monitoring port answers 200.
fn healthz(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp.starts_with("HTTP/1.0 200") || resp.starts_with("HTTP/1.1 200")
}

fn skip_unless(r: Result<NatsServer, Unavailable>) -> Option<NatsServer> {
    match r {
        Ok(s) => Some(s),
        Err(Unavailable(why)) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("NATS tests cannot run, and CI=true forbids skipping them: {why}");
            }
            let test = std::thread::current().name().unwrap_or("").to_string();
            let _ = writeln!(
                std::io::stderr(),
                "skipping {test}: nats-server cannot run here: {why}"
            );
            None
        }
    }
}

fn find_bin() -> Result<PathBuf, Unavailable> {
    let mut candidates = vec![PathBuf::from("/usr/sbin/nats-server")];
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("nats-server")));
    }
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        Unavailable(
            "nats-server is not installed (neither /usr/sbin/nats-server nor one on PATH): run \
             scripts/setup.sh, or apt-get install nats-server"
                .into(),
        )
    })
}

/// `n` distinct free ports (all held open until all are chosen).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("finding a free port on 127.0.0.1"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("a bound port").port())
        .collect()
}
