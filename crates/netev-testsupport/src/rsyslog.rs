//! A private rsyslogd for tests of netev's syslog export: Debian's
//! `rsyslog` (and `rsyslog-gnutls` for TLS), run in the foreground with a
//! configuration of its own in a temp dir.
//!
//! [`Rsyslog::start`] picks free loopback ports and starts
//! `rsyslogd -n -f CONF -i PIDFILE`: plain, with imtcp (octet-counted
//! framing, as rsyslog takes by default) and imudp; or, given [`Tls`]
//! files, imtcp over the gtls driver (RFC 5425). Every message is written
//! raw (`%rawmsg%`, one per line) to `received.log`; [`Rsyslog::received`]
//! reads them. Readiness is the TCP port accepting a connection, not a
//! sleep. Dropping the value (panics included) stops the daemon; so does
//! [`Rsyslog::stop`], and [`Rsyslog::start_again`] brings it back on the
//! same ports (a test of a receiver going away).
//!
//! When rsyslogd is not installed, [`Rsyslog::start_or_skip`] prints why
//! and returns `None`, except under `CI=true`, where it panics.

use std::io::Write as _;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RSYSLOGD: &str = "/usr/sbin/rsyslogd";
const GTLS: &str = "/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so";

/// The files of a TLS receiver: PEM CA, certificate and key.
#[derive(Debug, Clone)]
pub struct Tls {
    /// The CA that signed `cert` (rsyslog wants one even without client auth).
    pub ca: PathBuf,
    /// The server's certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// Why rsyslogd cannot run here.
#[derive(Debug)]
pub struct Unavailable(pub String);

/// A running private rsyslogd; stopped on drop.
pub struct Rsyslog {
    dir: tempfile::TempDir,
    child: Option<Child>,
    tcp_port: u16,
    udp_port: Option<u16>,
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback TCP port")
        .port()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free loopback UDP port")
        .port()
}

impl Rsyslog {
    /// Starts rsyslogd: TLS-only if `tls` is given, else TCP and UDP.
    /// Panics, with rsyslogd's output, if it is installed but fails.
    pub fn start(tls: Option<&Tls>) -> Result<Rsyslog, Unavailable> {
        if !Path::new(RSYSLOGD).exists() {
            return Err(Unavailable(format!(
                "{RSYSLOGD} is missing: install rsyslog (scripts/setup.sh does)"
            )));
        }
        if tls.is_some() && !Path::new(GTLS).exists() {
            return Err(Unavailable(format!(
                "{GTLS} is missing: install rsyslog-gnutls (scripts/setup.sh does)"
            )));
        }
        let dir = tempfile::Builder::new()
            .prefix("netev-rsyslog-")
            .tempdir()
            .expect("a temp dir for rsyslogd");
        let d = dir.path().display();
        let tcp_port = free_tcp_port();
        let udp_port = tls.is_none().then(free_udp_port);
        let mut conf = format!(
            "global(workDirectory=\"{d}\" maxMessageSize=\"64k\")\n\
             template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n"
        );
        match tls {
            Some(t) => conf.push_str(&format!(
                "global(defaultNetstreamDriver=\"gtls\" \
                 defaultNetstreamDriverCAFile=\"{}\" \
                 defaultNetstreamDriverCertFile=\"{}\" \
                 defaultNetstreamDriverKeyFile=\"{}\")\n\
                 module(load=\"imtcp\" streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=\"anon\")\n\
                 input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{tcp_port}\")\n",
                t.ca.display(),
                t.cert.display(),
                t.key.display()
            )),
            None => conf.push_str(&format!(
                "module(load=\"imtcp\")\n\
                 module(load=\"imudp\")\n\
                 input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{tcp_port}\")\n\
                 input(type=\"imudp\" address=\"127.0.0.1\" port=\"{}\")\n",
                udp_port.expect("set without TLS")
            )),
        }
        conf.push_str(&format!(
            "*.* action(type=\"omfile\" file=\"{d}/received.log\" template=\"raw\")\n"
        ));
        std::fs::write(dir.path().join("rsyslog.conf"), conf).expect("writing rsyslog.conf");
        let mut r = Rsyslog {
            dir,
            child: None,
            tcp_port,
            udp_port,
        };
        r.start_again();
        Ok(r)
    }

    /// [`start`](Self::start), or `None` after printing why rsyslogd
    /// cannot run here; under `CI=true` that panics instead.
    pub fn start_or_skip(tls: Option<&Tls>) -> Option<Rsyslog> {
        match Rsyslog::start(tls) {
            Ok(r) => Some(r),
            Err(Unavailable(why)) => {
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("rsyslog tests cannot run, and CI=true forbids skipping them: {why}");
                }
                let test = std::thread::current().name().unwrap_or("").to_string();
                let _ = writeln!(std::io::stderr(), "skipping {test}: {why}");
                None
            }
        }
    }

    /// Starts the daemon again (after [`stop`](Self::stop)) on the same
    /// ports, and waits until its TCP port accepts.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "rsyslogd is running");
        let dir = self.dir.path();
        let _ = std::fs::remove_file(dir.join("rsyslogd.pid"));
        let log = std::fs::File::create(dir.join("rsyslogd.out")).expect("rsyslogd's log");
        let child = Command::new(RSYSLOGD)
            .arg("-n")
            .arg("-f")
            .arg(dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a second handle"))
            .stderr(log)
            .spawn()
            .expect("starting rsyslogd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(("127.0.0.1", self.tcp_port)).is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!(
                    "rsyslogd exited ({status}) before listening:\n{}",
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "rsyslogd did not listen on 127.0.0.1:{} within 20 s:\n{}",
                self.tcp_port,
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the daemon (SIGTERM, then SIGKILL after 10 s).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on the pid of a child we have not reaped
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The TCP (or TLS) port on 127.0.0.1.
    pub fn tcp_port(&self) -> u16 {
        self.tcp_port
    }

    /// The UDP port on 127.0.0.1 (none for a TLS receiver).
    pub fn udp_port(&self) -> Option<u16> {
        self.udp_port
    }

    /// The temp dir (configuration, `received.log`, rsyslogd's output).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// rsyslogd's own output so far (for a failing test's message).
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rsyslogd.out")).unwrap_or_default()
    }

    /// The messages received so far, raw, one per line of `received.log`.
    pub fn received(&self) -> Vec<Vec<u8>> {
        let bytes = std::fs::read(self.dir.path().join("received.log")).unwrap_or_default();
        bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    }

    /// Waits until `done` holds for the messages received, or `timeout`
    /// passes; returns the messages either way.
    pub fn wait_for(&self, timeout: Duration, done: impl Fn(&[Vec<u8>]) -> bool) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if done(&got) || Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}
