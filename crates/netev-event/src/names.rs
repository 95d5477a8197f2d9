//! Numeric socket constants and their printed names.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! named_number {
    ($(#[$doc:meta])* $name:ident($int:ty), $fallback:literal, { $($(#[$cdoc:meta])* $konst:ident = $val:literal => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub $int);

        impl $name {
            $($(#[$cdoc])* pub const $konst: $name = $name($val);)+

            /// The printed name; unknown values print as the fallback prefix and the number.
            pub fn name(self) -> std::borrow::Cow<'static, str> {
                match self.0 {
                    $($val => std::borrow::Cow::Borrowed($text),)+
                    n => std::borrow::Cow::Owned(format!(concat!($fallback, "{}"), n)),
                }
            }

            /// The value for a printed name (either a known name or fallback+number).
            pub fn from_name(s: &str) -> Option<$name> {
                match s {
                    $($text => Some($name($val)),)+
                    _ => s.strip_prefix($fallback)?.parse().ok().map($name),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.name())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
                $name::from_name(&s).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        concat!("unknown ", stringify!($name), " {:?}: expected a name or ", $fallback, "NUMBER"),
                        s
                    ))
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.name())
            }
        }
    };
}

named_number!(
    /// Address family (AF_*).
    Family(u16), "af", {
        /// AF_UNSPEC
        UNSPEC = 0 => "unspec",
        /// AF_UNIX
        UNIX = 1 => "unix",
        /// AF_INET
        INET = 2 => "inet",
        /// AF_INET6
        INET6 = 10 => "inet6",
        /// AF_NETLINK
        NETLINK = 16 => "netlink",
        /// AF_PACKET
        PACKET = 17 => "packet",
        /// AF_BLUETOOTH
        BLUETOOTH = 31 => "bluetooth",
        /// AF_ALG
        ALG = 38 => "alg",
        /// AF_VSOCK
        VSOCK = 40 => "vsock",
        /// AF_XDP
        XDP = 44 => "xdp",
    }
);

named_number!(
    /// Socket type (SOCK_*), without SOCK_NONBLOCK/SOCK_CLOEXEC.
    SockType(u16), "type", {
        /// SOCK_STREAM
        STREAM = 1 => "stream",
        /// SOCK_DGRAM
        DGRAM = 2 => "dgram",
        /// SOCK_RAW
        RAW = 3 => "raw",
        /// SOCK_RDM
        RDM = 4 => "rdm",
        /// SOCK_SEQPACKET
        SEQPACKET = 5 => "seqpacket",
        /// SOCK_DCCP
        DCCP = 6 => "dccp",
        /// SOCK_PACKET
        PACKET = 10 => "packet",
    }
);

named_number!(
    /// IP protocol (IPPROTO_*).
    Proto(u16), "proto", {
        /// IPPROTO_ICMP
        ICMP = 1 => "icmp",
        /// IPPROTO_TCP
        TCP = 6 => "tcp",
        /// IPPROTO_UDP
        UDP = 17 => "udp",
        /// IPPROTO_ICMPV6
        ICMPV6 = 58 => "icmpv6",
        /// IPPROTO_SCTP
        SCTP = 132 => "sctp",
        /// IPPROTO_UDPLITE
        UDPLITE = 136 => "udplite",
        /// IPPROTO_MPTCP
        MPTCP = 262 => "mptcp",
        /// IPPROTO_RAW
        RAW = 255 => "raw",
    }
);

impl Family {
    /// Whether addresses of this family are IP addresses.
    pub fn is_ip(self) -> bool {
        self == Family::INET || self == Family::INET6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names the kernel ABI sorts by (netev-abi, checked there against
    /// the BPF C) are the same numbers as the model's.
    #[test]
    fn families_and_protocols_match_the_abi() {
        assert_eq!(Family::UNIX.0, netev_abi::AF_UNIX);
        assert_eq!(Family::INET.0, netev_abi::AF_INET);
        assert_eq!(Family::INET6.0, netev_abi::AF_INET6);
        assert_eq!(Proto::ICMP.0, netev_abi::IPPROTO_ICMP);
        assert_eq!(Proto::TCP.0, netev_abi::IPPROTO_TCP);
        assert_eq!(Proto::UDP.0, netev_abi::IPPROTO_UDP);
        assert_eq!(Proto::ICMPV6.0, netev_abi::IPPROTO_ICMPV6);
    }
}
