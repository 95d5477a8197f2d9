//! What netev's test crates share, so that no test reaches into another
//! crate's test directory: servers a test starts for itself, so that no
//! test depends on (or disturbs) one the machine may already run.
//!
//! * [`pgserver`]: a private PostgreSQL server (netev-store's tests, the
//!   fleet tests of the end-to-end suite).
//! * [`natsserver`]: private nats-server nodes and clusters with JetStream
//!   (netev-export's and netev-sql's NATS tests).
//! * [`dbus`]: a private dbus-daemon (netev-gtk's tests, the end-to-end
//!   suite's buses).
//! * [`polkit`]: the real polkitd on such a bus, and a test
//!   authentication agent (the end-to-end suite's polkit tests).
//! * [`rsyslog`]: a private rsyslogd receiving over TCP, UDP or TLS
//!   (netev-export's syslog tests).
//!
//! A dev-dependency of the crates whose tests use it (netev-tests, the
//! end-to-end harness, depends on it normally); never shipped.
#![deny(missing_docs)]

pub mod dbus;
pub mod natsserver;
pub mod pgserver;
pub mod polkit;
pub mod rsyslog;
