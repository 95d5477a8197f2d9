//! A private dbus-daemon for one test, on a unix socket in a directory the
//! test owns; killed on drop.
//!
//! ```no_run
//! use netev_testsupport::dbus::{busconfig, DbusDaemon};
//! let dir = tempfile::tempdir().unwrap();
//! let bus = DbusDaemon::start(
//!     dir.path(),
//!     &busconfig(r#"<type>session</type><listen>@LISTEN@</listen><auth>EXTERNAL</auth>
//! <policy context="default"><allow send_destination="*"/><allow own="*"/></policy>"#),
//! );
//! // connect to bus.address() …
//! ```

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// What a configuration says in place of its `<listen>` address; the same
/// placeholder as in `dist/dbus/private-system-bus.conf.in`.
pub const LISTEN: &str = "@LISTEN@";

/// A bus configuration file with this body inside `<busconfig>`.
pub fn busconfig(body: &str) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>{body}</busconfig>"#
    )
}

/// A running `dbus-daemon --nofork`; killed (and reaped) on drop.
pub struct DbusDaemon {
    child: Child,
    address: String,
    socket: PathBuf,
}

impl DbusDaemon {
    /// Starts dbus-daemon with the configuration `config`, in which
    /// [`LISTEN`] is replaced by a socket `bus` in `dir` (removed first if
    /// a bus started there before left it). The configuration is written to
    /// `dir/bus.conf`. Returns once the daemon has printed its address.
    pub fn start(dir: &Path, config: &str) -> DbusDaemon {
        let socket = dir.join("bus");
        let _ = std::fs::remove_file(&socket);
        let conf = dir.join("bus.conf");
        let listen = format!("unix:path={}", socket.display());
        std::fs::write(&conf, config.replace(LISTEN, &listen)).expect("write bus config");
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf.display()))
            .args(["--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon (package dbus) must be installed: run scripts/setup.sh");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("dbus-daemon address");
        assert!(!line.trim().is_empty(), "dbus-daemon printed no address");
        DbusDaemon {
            child,
            address: line.trim().to_string(),
            socket,
        }
    }

    /// The address dbus-daemon printed (with its guid).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// `unix:path=<dir>/bus`, without the guid: still the address of a bus
    /// started again in the same directory, as a client that reconnects
    /// needs.
    pub fn socket_address(&self) -> String {
        format!("unix:path={}", self.socket.display())
    }
}

impl Drop for DbusDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
