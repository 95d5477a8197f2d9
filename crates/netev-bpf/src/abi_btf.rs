//! The alignchecker: netev-abi, the Rust mirror of `src/bpf/netev.h`, must
//! match the BTF clang emitted for it, in every number and every layout.
//!
//! Compared by name, in both directions: a C enumerator or struct field that
//! Rust does not list fails as surely as a Rust value that C does not have.
//! Every `enum netev_*` and `struct netev_*` in the object is part of the ABI
//! and must be listed here (netev.bpf.c references each enum with an abi_*
//! global, or clang would leave it out of the BTF).

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};

use libbpf_rs::btf::types::{self, MemberAttr};
use libbpf_rs::btf::{BtfType, TypeId};
use libbpf_rs::{Btf, HasSize};
use netev_abi::*;

/// The BPF object as built (build.rs keeps it in OUT_DIR).
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/netev.o"));

fn btf() -> Btf<'static> {
    Btf::from_raw("netev", OBJECT)
        .expect("reading the BPF object")
        .expect("the BPF object has BTF")
}

fn name(n: Option<&std::ffi::OsStr>) -> String {
    n.map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Every ABI enum of netev.h with all its enumerators, and the netev-abi
/// constant each one must equal.
fn rust_enums() -> BTreeMap<&'static str, BTreeMap<String, i64>> {
    macro_rules! e {
        ($($c:ident = $r:expr),+ $(,)?) => {
            BTreeMap::from([$((stringify!($c).to_string(), $r as i64)),+])
        };
    }
    BTreeMap::from([
        (
            "netev_len",
            e![
                NETEV_COMM_LEN = COMM_LEN,
                NETEV_PATH_LEN = PATH_LEN,
                NETEV_NAME_LEN = NAME_LEN
            ],
        ),
        (
            "netev_kind",
            e![
                NETEV_KIND_NET = KIND_NET,
                NETEV_KIND_EXEC = KIND_EXEC,
                NETEV_KIND_EXIT = KIND_EXIT,
            ],
        ),
        (
            "netev_op",
            e![
                NETEV_OP_SOCKET = OP_SOCKET,
                NETEV_OP_BIND = OP_BIND,
                NETEV_OP_LISTEN = OP_LISTEN,
                NETEV_OP_CONNECT = OP_CONNECT,
                NETEV_OP_ACCEPT = OP_ACCEPT,
                NETEV_OP_SENDMSG = OP_SENDMSG,
                NETEV_OP_RECVMSG = OP_RECVMSG,
                NETEV_OPS = OPS,
            ],
        ),
        (
            "netev_verdict",
            e![
                NETEV_VERDICT_ALLOW = VERDICT_ALLOW,
                NETEV_VERDICT_DENY = VERDICT_DENY,
                NETEV_VERDICT_OBSERVE = VERDICT_OBSERVE,
            ],
        ),
        (
            "netev_action",
            e![
                NETEV_ACTION_ALLOW = ACTION_ALLOW,
                NETEV_ACTION_DENY = ACTION_DENY,
                NETEV_ACTION_ASK = ACTION_ASK,
            ],
        ),
        (
            "netev_flag",
            e![
                NETEV_F_HAS_RET = F_HAS_RET,
                NETEV_F_ASKED = F_ASKED,
                NETEV_F_GUARD = F_GUARD
            ],
        ),
        (
            "netev_linux",
            e![
                AF_UNIX = AF_UNIX,
                AF_INET = AF_INET,
                AF_INET6 = AF_INET6,
                IPPROTO_ICMP = IPPROTO_ICMP,
                IPPROTO_TCP = IPPROTO_TCP,
                IPPROTO_UDP = IPPROTO_UDP,
                IPPROTO_ICMPV6 = IPPROTO_ICMPV6,
                IPPROTO_SCTP = IPPROTO_SCTP,
                SOCK_STREAM = SOCK_STREAM,
                SOCK_DGRAM = SOCK_DGRAM,
                SOCK_RAW = SOCK_RAW,
            ],
        ),
        (
            "netev_kind_family",
            e![
                NETEV_KIND_FAMILY_INET = KIND_FAMILY_INET,
                NETEV_KIND_FAMILY_INET6 = KIND_FAMILY_INET6,
                NETEV_KIND_FAMILY_UNIX = KIND_FAMILY_UNIX,
                NETEV_KIND_FAMILY_OTHER = KIND_FAMILY_OTHER,
                NETEV_KIND_FAMILIES = KIND_FAMILIES,
            ],
        ),
        (
            "netev_kind_proto",
            e![
                NETEV_KIND_PROTO_TCP = KIND_PROTO_TCP,
                NETEV_KIND_PROTO_UDP = KIND_PROTO_UDP,
                NETEV_KIND_PROTO_ICMP = KIND_PROTO_ICMP,
                NETEV_KIND_PROTO_ICMPV6 = KIND_PROTO_ICMPV6,
                NETEV_KIND_PROTO_OTHER = KIND_PROTO_OTHER,
                NETEV_KIND_PROTOS = KIND_PROTOS,
            ],
        ),
        (
            "netev_table",
            e![
                NETEV_SLOTS = SLOTS,
                NETEV_RULE_WORDS = RULE_WORDS,
                NETEV_MAX_RULES = MAX_RULES,
                NETEV_MAX_CLASSES = MAX_CLASSES,
                NETEV_KINDS = KINDS,
                NETEV_KIND_TABLE = KIND_TABLE,
                NETEV_PORTS = PORTS,
                NETEV_ADDR4_BLOCKS = ADDR4_BLOCKS,
                NETEV_ADDR4_TRIE = ADDR4_TRIE,
                NETEV_DIR_DEPTH = DIR_DEPTH,
                NETEV_MAX_FILES = MAX_FILES,
                NETEV_MAX_DIRS = MAX_DIRS,
                NETEV_MAX_UIDS = MAX_UIDS,
                NETEV_MAX_ADDRS = MAX_ADDRS,
                NETEV_GUARD_WHATS = GUARD_WHATS,
                NETEV_GUARDS = GUARDS,
            ],
        ),
        (
            "netev_counter",
            e![
                NETEV_CNT_SEEN = counter::SEEN,
                NETEV_CNT_DROPPED = counter::DROPPED,
                NETEV_CNT_CALLS = counter::CALLS,
                NETEV_CNT_COALESCED = counter::COALESCED,
                NETEV_CNT_MAX = counter::MAX,
            ],
        ),
    ])
}

#[test]
fn constants_match_btf_by_name() {
    let btf = btf();
    let c_enums: BTreeMap<String, BTreeMap<String, i64>> = btf
        .type_by_kind::<types::Enum<'_>>()
        .filter(|e| name(e.name()).starts_with("netev_"))
        .map(|e| {
            let values = e.iter().map(|m| (name(m.name), m.value)).collect();
            (name(e.name()), values)
        })
        .collect();
    same("enum", &c_enums, &rust_enums());
}

/// The C side (from the BTF) and the Rust side name the same things, and
/// each is the same on both.
fn same<T: std::fmt::Debug + PartialEq>(
    what: &str,
    c: &BTreeMap<String, T>,
    rust: &BTreeMap<&'static str, T>,
) {
    assert_eq!(
        c.keys().map(String::as_str).collect::<Vec<_>>(),
        rust.keys().copied().collect::<Vec<_>>(),
        "{what}s of netev.h in the BTF (left) and those netev-abi mirrors (right)"
    );
    for (name, want) in rust {
        assert_eq!(
            &c[*name], want,
            "{what} {name}: netev.h (left) and netev-abi (right) disagree"
        );
    }
}

/// A struct's size and its fields' (name, offset, size), in order.
#[derive(Debug, PartialEq, Eq)]
struct Layout {
    size: usize,
    fields: Vec<(String, usize, usize)>,
}

fn field_size<S, F>(_: fn(&S) -> &F) -> usize {
    size_of::<F>()
}

/// Every ABI struct of netev.h with all its fields, from the Rust mirror.
fn rust_layouts() -> BTreeMap<&'static str, Layout> {
    macro_rules! layout {
        ($r:ty { $($c:literal => $f:ident),+ $(,)? }) => {
            Layout {
                size: size_of::<$r>(),
                fields: vec![$(($c.to_string(), offset_of!($r, $f), field_size(|s: &$r| &s.$f))),+],
            }
        };
    }
    // Tables that are one array, written from plain Rust arrays.
    let array = |field: &str, size: usize| Layout {
        size,
        fields: vec![(field.to_string(), 0, size)],
    };
    BTreeMap::from([
        (
            "netev_hdr",
            layout!(RawHdr { "kind" => kind, "op" => op, "verdict" => verdict, "flags" => flags,
                             "pid" => pid, "ts_ns" => ts_ns }),
        ),
        (
            "netev_event",
            layout!(RawEvent { "hdr" => hdr, "tid" => tid, "ppid" => ppid, "uid" => uid,
                "gid" => gid, "app_ino" => app_ino, "app_dev" => app_dev, "count" => count,
                "ret" => ret, "rule_id" => rule_id, "family" => family, "type" => sock_type,
                "protocol" => protocol, "lport" => lport, "rport" => rport, "_pad0" => _pad0,
                "laddr" => laddr, "raddr" => raddr, "comm" => comm, "_pad1" => _pad1 }),
        ),
        (
            "netev_exec",
            layout!(RawExec { "hdr" => hdr, "ppid" => ppid, "uid" => uid, "app_ino" => app_ino,
                "app_dev" => app_dev, "filename_len" => filename_len, "comm" => comm,
                "filename" => filename }),
        ),
        (
            "netev_ruleset",
            layout!(RawRuleset { "words" => words, "exe_other" => exe_other,
                "uid_other" => uid_other, "addr_none" => addr_none, "port_none" => port_none,
                "default_action" => default_action, "ask_fallback" => ask_fallback,
                "_pad" => _pad, "exe_too_deep" => exe_too_deep, "all" => all,
                "guard_deny" => guard_deny, "guard_allow" => guard_allow,
                "guard_default" => guard_default, "_pad2" => _pad2, "kind" => kind }),
        ),
        (
            "netev_rule_meta",
            layout!(RawRuleMeta { "id" => id, "action" => action, "once" => once, "_pad" => _pad,
                "expires_ns" => expires_ns }),
        ),
        (
            "netev_dir_key",
            layout!(RawDirKey { "ino" => ino, "dev" => dev, "slot" => slot }),
        ),
        (
            "netev_dir_classes",
            layout!(RawDirClasses { "direct" => direct, "deep" => deep }),
        ),
        (
            "netev_file_classes",
            layout!(RawFileClasses { "class" => class, "changed" => changed, "_pad" => _pad,
                "ino" => ino, "ctime_ns" => ctime_ns }),
        ),
        (
            "netev_file_key",
            layout!(RawFileKey { "ino" => ino, "dev" => dev, "slot" => slot, "name" => name }),
        ),
        (
            "netev_uid_key",
            layout!(RawUidKey { "uid" => uid, "slot" => slot }),
        ),
        (
            "netev_addr_key",
            layout!(RawAddrKey { "prefixlen" => prefixlen, "slot" => slot, "addr" => addr,
                                 "_pad" => _pad }),
        ),
        // netev-rules' Bitmap, and the compiled port and /16 class tables.
        (
            "netev_rule_bits",
            array("w", size_of::<[u64; RULE_WORDS]>()),
        ),
        (
            "netev_port_classes",
            array("class", size_of::<[u16; PORTS]>()),
        ),
        (
            "netev_addr4_classes",
            array("class", size_of::<[u16; ADDR4_BLOCKS]>()),
        ),
    ])
}

fn type_size(btf: &Btf<'_>, id: TypeId) -> usize {
    let t = btf
        .type_by_id::<BtfType<'_>>(id)
        .expect("a member's type is in the BTF")
        .skip_mods_and_typedefs();
    if let Ok(a) = types::Array::try_from(t) {
        return a.capacity() * type_size(btf, a.ty());
    }
    if let Ok(i) = types::Int::try_from(t) {
        return i.size();
    }
    if let Ok(c) = types::Composite::try_from(t) {
        return c.size();
    }
    if let Ok(e) = types::Enum::try_from(t) {
        return e.size();
    }
    panic!("an ABI field of unexpected kind {:?}", t.kind())
}

#[test]
fn layouts_match_btf_by_name() {
    let btf = btf();
    let c_layouts: BTreeMap<String, Layout> = btf
        .type_by_kind::<types::Struct<'_>>()
        .filter(|s| name(s.name()).starts_with("netev_"))
        .map(|s| {
            let fields = s
                .iter()
                .map(|m| {
                    let offset = match m.attr {
                        MemberAttr::Normal { offset } => offset as usize,
                        MemberAttr::BitField { .. } => panic!("no bit fields in the ABI"),
                    };
                    assert_eq!(offset % 8, 0);
                    (name(m.name), offset / 8, type_size(&btf, m.ty))
                })
                .collect();
            let layout = Layout {
                size: s.size(),
                fields,
            };
            (name(s.name()), layout)
        })
        .collect();
    same("struct", &c_layouts, &rust_layouts());
}

/// The first alignchecker, from the skeleton's generated types.
#[test]
fn abi_matches_btf() {
    use crate::skel::types;
    use std::mem::{offset_of, size_of};
    assert_eq!(size_of::<types::netev_event>(), size_of::<RawEvent>());
    assert_eq!(size_of::<types::netev_exec>(), size_of::<RawExec>());
    assert_eq!(size_of::<types::netev_hdr>(), size_of::<RawHdr>());
    macro_rules! same {
        ($c:ty, $r:ty, $($cf:ident => $rf:ident),+) => {
            $(assert_eq!(offset_of!($c, $cf), offset_of!($r, $rf), stringify!($cf));)+
        };
    }
    same!(types::netev_hdr, RawHdr, kind => kind, op => op, verdict => verdict,
          flags => flags, pid => pid, ts_ns => ts_ns);
    same!(types::netev_event, RawEvent, tid => tid, ppid => ppid, uid => uid, gid => gid,
          app_ino => app_ino, app_dev => app_dev, count => count, ret => ret,
          rule_id => rule_id, family => family, r#type => sock_type, protocol => protocol,
          lport => lport, rport => rport, laddr => laddr, raddr => raddr, comm => comm);
    assert_eq!(size_of::<types::netev_ruleset>(), size_of::<RawRuleset>());
    assert_eq!(
        size_of::<types::netev_rule_meta>(),
        size_of::<RawRuleMeta>()
    );
    assert_eq!(size_of::<types::netev_dir_key>(), size_of::<RawDirKey>());
    assert_eq!(size_of::<types::netev_file_key>(), size_of::<RawFileKey>());
    assert_eq!(size_of::<types::netev_uid_key>(), size_of::<RawUidKey>());
    assert_eq!(size_of::<types::netev_addr_key>(), size_of::<RawAddrKey>());
    same!(types::netev_ruleset, RawRuleset, words => words, exe_other => exe_other,
          uid_other => uid_other, addr_none => addr_none, port_none => port_none,
          default_action => default_action, ask_fallback => ask_fallback, kind => kind);
    same!(types::netev_rule_meta, RawRuleMeta, id => id, action => action, once => once);
    same!(types::netev_dir_key, RawDirKey, ino => ino, dev => dev, slot => slot);
    same!(types::netev_file_key, RawFileKey, ino => ino, dev => dev, slot => slot, name => name);
    same!(types::netev_addr_key, RawAddrKey, prefixlen => prefixlen, slot => slot, addr => addr);
    same!(types::netev_exec, RawExec, ppid => ppid, uid => uid, app_ino => app_ino,
          app_dev => app_dev, filename_len => filename_len, comm => comm,
          filename => filename);
}
