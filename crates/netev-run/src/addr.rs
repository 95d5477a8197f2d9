//! Socket addresses as the kernel will read them.
//!
//! The decision must be about the address the kernel uses, so the bytes
//! are interpreted the way the IPv4/IPv6 code interprets them, including
//! its compatibility cases (an AF_UNSPEC address given to an IPv4 socket is
//! read as an IPv4 address by bind, sendto and sendmsg).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest address we copy (sizeof(struct sockaddr_storage)); the kernel
/// refuses longer ones with EINVAL.
pub const MAX_SOCKADDR: usize = 128;

const AF_UNSPEC: u16 = libc::AF_UNSPEC as u16;
const AF_INET: u16 = libc::AF_INET as u16;
const AF_INET6: u16 = libc::AF_INET6 as u16;

/// What the address says: IP address and port, when there is one.
/// `sock_family` is the socket's family; `is_connect` because connect()
/// with AF_UNSPEC means "disconnect", not an address.
pub fn parse(bytes: &[u8], sock_family: u16, is_connect: bool) -> Option<(IpAddr, u16)> {
    if bytes.len() < 2 {
        return None;
    }
    let family = u16::from_ne_bytes([bytes[0], bytes[1]]);
    let port = || u16::from_be_bytes([bytes[2], bytes[3]]);
    match family {
        AF_INET if bytes.len() >= 16 => Some((v4(bytes), port())),
        AF_INET6 if bytes.len() >= 24 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&bytes[8..24]);
            Some((IpAddr::V6(Ipv6Addr::from(a)), port()))
        }
        AF_UNSPEC if !is_connect && sock_family == AF_INET && bytes.len() >= 16 => {
            Some((v4(bytes), port()))
        }
        _ => None,
    }
}

const AF_UNIX: u16 = libc::AF_UNIX as u16;

/// A unix socket address as rules and events name it (docs/rules.md,
/// `path`): an absolute path, a relative one joined to `cwd` (the caller's
/// working directory) and folded (`.`, `..`, repeated slashes) as text;
/// an abstract name as `@` and the name. Bytes outside printable ASCII, and
/// the backslash, are written `\xNN`, so that the name is one line of text
/// that no two addresses share. `None`: not a unix address, or unnamed (a
/// bind that autobinds).
pub fn unix_path(bytes: &[u8], cwd: impl FnOnce() -> Option<String>) -> Option<String> {
    let sun = sun_path(bytes)?;
    if sun[0] == 0 {
        // Abstract: every byte up to the length given is the name.
        return Some(format!("@{}", escape_bytes(&sun[1..])));
    }
    let raw = escape_bytes(unix_file_name(bytes)?);
    let joined = if raw.starts_with('/') {
        raw
    } else {
        // Unknown working directory: a name that no absolute pattern can
        // match, rather than a guess.
        format!("{}/{raw}", cwd().unwrap_or_else(|| "?".into()))
    };
    Some(fold(&joined))
}

/// A unix address's `sun_path` as far as the length given (None: not a
/// unix address, or unnamed).
fn sun_path(bytes: &[u8]) -> Option<&[u8]> {
    if bytes.len() <= 2 || u16::from_ne_bytes([bytes[0], bytes[1]]) != AF_UNIX {
        return None;
    }
    Some(&bytes[2..bytes.len().min(2 + 108)])
}

/// The file name a unix address names, as the kernel reads it (up to the
/// first NUL); None for an abstract name, an unnamed or a non-unix address.
pub fn unix_file_name(bytes: &[u8]) -> Option<&[u8]> {
    let sun = sun_path(bytes).filter(|s| s[0] != 0)?;
    let end = sun.iter().position(|&b| b == 0).unwrap_or(sun.len());
    Some(&sun[..end])
}

fn escape_bytes(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for &c in b {
        if (0x21..0x7f).contains(&c) && c != b'\\' || c == b' ' {
            s.push(c as char);
        } else {
            s.push_str(&format!("\\x{c:02x}"));
        }
    }
    s
}

/// `.`, `..` and empty components folded, as text (a `..` at the root
/// stays at the root, as the kernel resolves it).
fn fold(path: &str) -> String {
    if !path.starts_with('/') {
        return path.to_string();
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

fn v4(b: &[u8]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(b[4], b[5], b[6], b[7]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sun(path: &[u8]) -> Vec<u8> {
        let mut b = AF_UNIX.to_ne_bytes().to_vec();
        b.extend_from_slice(path);
        b
    }

    #[test]
    fn unix_addresses_are_named_as_rules_match_them() {
        let none = || None;
        let cwd = || Some("/home/al/src".to_string());
        assert_eq!(
            unix_path(&sun(b"/run/dbus/system_bus_socket\0"), none).as_deref(),
            Some("/run/dbus/system_bus_socket")
        );
        // No NUL within the length given: the whole sun_path.
        assert_eq!(unix_path(&sun(b"/tmp/s"), none).as_deref(), Some("/tmp/s"));
        assert_eq!(
            unix_path(&sun(b"//run/./user/1000/../1000//bus\0junk"), none).as_deref(),
            Some("/run/user/1000/bus")
        );
        assert_eq!(
            unix_path(&sun(b"../../../run/user/1000/bus\0"), cwd).as_deref(),
            Some("/run/user/1000/bus"),
            "relative to the caller's directory"
        );
        assert_eq!(
            unix_path(&sun(b"/../../run/x\0"), none).as_deref(),
            Some("/run/x")
        );
        assert_eq!(
            unix_path(&sun(b"bus\0"), none).as_deref(),
            Some("?/bus"),
            "no working directory: matches no absolute pattern"
        );
        assert_eq!(
            unix_path(&sun(b"\0/tmp/.X11-unix/X0"), none).as_deref(),
            Some("@/tmp/.X11-unix/X0")
        );
        assert_eq!(
            unix_path(&sun(b"\0a\0b\\\n"), none).as_deref(),
            Some("@a\\x00b\\x5c\\x0a"),
            "abstract names keep every byte, escaped"
        );
        assert_eq!(unix_path(&sun(b""), none), None, "unnamed");
        assert_eq!(unix_path(&sin(AF_INET, [1, 2, 3, 4], 5), none), None);
    }

    fn sin(family: u16, ip: [u8; 4], port: u16) -> Vec<u8> {
        let mut b = vec![0u8; 16];
        b[0..2].copy_from_slice(&family.to_ne_bytes());
        b[2..4].copy_from_slice(&port.to_be_bytes());
        b[4..8].copy_from_slice(&ip);
        b
    }

    #[test]
    fn reads_addresses_as_the_kernel_does() {
        let a = sin(AF_INET, [10, 1, 2, 3], 443);
        assert_eq!(
            parse(&a, AF_INET, true),
            Some(("10.1.2.3".parse().unwrap(), 443))
        );
        assert_eq!(parse(&a[..15], AF_INET, true), None, "too short");
        let u = sin(AF_UNSPEC, [10, 0, 0, 1], 53);
        assert_eq!(
            parse(&u, AF_INET, false),
            Some(("10.0.0.1".parse().unwrap(), 53))
        );
        assert_eq!(
            parse(&u, AF_INET, true),
            None,
            "connect(AF_UNSPEC) disconnects"
        );
        assert_eq!(parse(&u, AF_INET6, false), None);
        let mut s6 = vec![0u8; 28];
        s6[0..2].copy_from_slice(&AF_INET6.to_ne_bytes());
        s6[2..4].copy_from_slice(&8080u16.to_be_bytes());
        s6[23] = 1;
        assert_eq!(
            parse(&s6, AF_INET6, true),
            Some(("::1".parse().unwrap(), 8080))
        );
    }
}
