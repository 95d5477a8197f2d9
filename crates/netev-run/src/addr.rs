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

fn v4(b: &[u8]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(b[4], b[5], b[6], b[7]))
}

#[cfg(test)]
mod tests {
    use super::*;

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
