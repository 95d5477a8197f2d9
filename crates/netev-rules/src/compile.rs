//! Rules → the tables the kernel decides with (see netev.h, "rule tables").
//!
//! The kernel cannot walk a rule list per syscall, so rules become a
//! classifier: bit `i` of a bitmap stands for the `i`-th rule in checking
//! order; each condition dimension (kind = op × family × protocol, program,
//! user, address, port) maps an operation to a bitmap of the rules whose
//! condition in that dimension it meets; the AND of the five bitmaps is the
//! set of matching rules, and its lowest set bit is the first match.
//!
//! Addresses and ports are looked up by longest prefix, and a prefix's bitmap
//! holds every rule whose range contains the whole prefix: for any value, the
//! longest stored prefix containing it is inside every rule range containing
//! the value, so the lookup gives exactly the rules the value meets. Ports
//! are few enough to expand: the kernel gets the class of every port (filled
//! from the prefixes, longest last) and looks it up with one indexed load.
//!
//! Bitmaps are interned: each distinct bitmap is stored once as a "class",
//! and lookups give class numbers.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::Ipv6Addr;

use netev_event::{Family, Op, Proto};

use crate::matcher::op_index;
use crate::model::{mapped_prefix, prefix_contains};
use crate::{Action, Decision, ExeMatch, Policy, Rule, RuleError};

// The kernel tables' limits are the ABI's (netev-abi mirrors netev.h).
pub use netev_abi::{
    ADDR4_TRIE, GUARDS, GUARD_WHATS, KINDS, KIND_FAMILIES, KIND_PROTOS, MAX_CLASSES, MAX_RULES,
    RULE_WORDS,
};

/// A directory as the kernel names it: (kernel dev_t, inode), read from the
/// dentries of the calling process's executable at the time of the call.
pub type DirId = (u32, u64);

/// Where the executables an exe condition names are, as the filesystem has
/// them when the rules are installed. The kernel matches the executable of
/// the calling process by where it really is (its dentry chain, symlinks
/// already resolved by exec): a file is named by its directory and name, so a
/// binary replaced under the same name (a package upgrade, `mv`) is still
/// covered, and a directory covers files created in it later.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExeTargets {
    /// Files by directory and name: exact paths (whether or not the file
    /// exists yet), and the files a complex glob matched when expanded.
    pub files: Vec<ExeFile>,
    /// Directories whose files the pattern covers: `DIR/*` (the files
    /// directly in it) and `DIR/**` (at any depth, plus the root of every
    /// filesystem mounted below DIR, since the kernel's walk up a file's
    /// dentries stops at its own filesystem's root).
    pub dirs: Vec<ExeDir>,
    /// Set when the pattern could not be resolved in full (an expansion cut
    /// short by its bound, a link not followed): what and why, for the user.
    pub warnings: Vec<String>,
}

/// One file an exe condition names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExeFile {
    /// The directory it is in.
    pub dir: DirId,
    /// That directory's canonical path (for which directory rules cover it).
    pub dir_path: String,
    /// Its name in the directory (at most 255 bytes, no '/').
    pub name: Vec<u8>,
    /// What the file there holds now, for rules with `exe_hash`: set by the
    /// resolver for exact paths that exist (None: no file, or not read).
    pub content: Option<FileContent>,
}

/// One version of a file's content: its inode and change time (what the
/// kernel compares at the call: a binary replaced or written since is
/// another version) and the SHA-256 the resolver read from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileContent {
    /// Inode number.
    pub ino: u64,
    /// Change time (st_ctime), in ns since the epoch.
    pub ctime_ns: u64,
    /// SHA-256 of the content.
    pub sha256: [u8; 32],
}

/// One directory an exe condition names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExeDir {
    /// The directory.
    pub dir: DirId,
    /// Its canonical path.
    pub path: String,
    /// `**`: files at any depth below it; else only the files directly in it.
    pub deep: bool,
}

/// The kernel's identity of a program's executable file: (kernel dev_t,
/// inode). Reported in events; rules match by [`ExePath`].
pub type ExeId = (u32, u64);

/// Where a calling process's executable is, as the kernel finds it: its
/// name, and the directories from its own up to its filesystem's root.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExePath {
    /// The file's name in its directory.
    pub name: Vec<u8>,
    /// Its directory first, then each one above, up to the filesystem's root.
    pub dirs: Vec<DirId>,
    /// Whether `dirs` reaches the root (else the walk hit its bound).
    pub complete: bool,
    /// (inode, ctime in ns) of the file now.
    pub version: Option<(u64, u64)>,
}

/// Whether the directory at canonical path `outer` contains (or is) `inner`.
fn path_covers(outer: &str, inner: &str) -> bool {
    outer == "/"
        || inner == outer
        || (inner.starts_with(outer) && inner.as_bytes().get(outer.len()) == Some(&b'/'))
}

/// One bitmap of rules.
pub type Bitmap = [u64; RULE_WORDS];

/// Index of a family in the kind table ([`netev_abi::family_index`], as
/// `family_index()` in netev.bpf.c).
pub fn family_index(f: Family) -> usize {
    netev_abi::family_index(f.0)
}

/// Index of a protocol in the kind table ([`netev_abi::proto_index`], as
/// `proto_index()` in netev.bpf.c).
pub fn proto_index(p: Proto) -> usize {
    netev_abi::proto_index(p.0)
}

/// Index in the kind table ([`netev_abi::kind_index`]).
pub fn kind_index(op: Op, family: Family, proto: Proto) -> usize {
    netev_abi::kind_index(op.abi(), family.0, proto.0).expect("every Op has an ABI number")
}

/// What the kernel keeps per rule, by bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelRule {
    /// The rule's id (reported in events).
    pub id: u32,
    /// Its action.
    pub action: Action,
    /// Consumed by its first match.
    pub once: bool,
    /// A timed rule's end: the kernel stops matching it then by itself.
    pub expires: Option<chrono::DateTime<chrono::Utc>>,
}

/// One file of the program table (`struct netev_file_classes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelFile {
    /// Its directory.
    pub dir: DirId,
    /// Its name.
    pub name: Vec<u8>,
    /// The class of an executable there (while it is `version`, if set).
    pub class: u16,
    /// The class of any other version (rules with `exe_hash`).
    pub changed: u16,
    /// (inode, ctime in ns) of the content the `exe_hash` rules were checked
    /// against; `None` when no rule pins its content.
    pub version: Option<(u64, u64)>,
}

/// What the rules say about one file (compile's working set).
#[derive(Default)]
struct FileRules {
    dir_path: String,
    /// Rules naming it without a content.
    plain: BTreeSet<usize>,
    /// (rule, the content it names, whether it is the exe_changed twin).
    pinned: BTreeSet<(usize, [u8; 32], bool)>,
    content: Option<FileContent>,
}

/// A complete rule set in kernel form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelTables {
    /// Rules by bit.
    pub rules: Vec<KernelRule>,
    /// Interned bitmaps; lookups below give indexes into this.
    pub classes: Vec<Bitmap>,
    /// Class per kind ([`kind_index`]).
    pub kind: Vec<u16>,
    /// Per file an exe condition names, by directory and name.
    pub exe_files: Vec<KernelFile>,
    /// Per directory an exe condition names: the class of an executable
    /// directly in it, and of one further below.
    pub exe_dirs: Vec<(DirId, u16, u16)>,
    /// Class of an executable no file or directory entry covers.
    pub exe_other: u16,
    /// Class of an executable whose walk up its directories was cut short:
    /// the rules naming no program, and every directory rule's deny and ask.
    pub exe_too_deep: u16,
    /// Class of every rule.
    pub all: u16,
    /// socket() guards ([`netev_abi::guard_index`]): the deny and ask rules
    /// that could apply to such a socket's later calls.
    pub guard_deny: [u16; GUARDS],
    /// ... the allow rules that could.
    pub guard_allow: [u16; GUARDS],
    /// ... whether the default of one of those calls is not allow.
    pub guard_default: [bool; GUARDS],
    /// Class per uid named by a rule.
    pub uid: Vec<(u32, u16)>,
    /// Class of any other uid.
    pub uid_other: u16,
    /// (IPv4-mapped IPv6 network, prefix length, class); includes `::/0`.
    pub addr: Vec<(Ipv6Addr, u8, u16)>,
    /// Class of an operation without an address.
    pub addr_none: u16,
    /// Per IPv4 /16 (65 536 entries): the class of every address in it, or
    /// [`ADDR4_TRIE`] when a longer prefix splits it (then `addr` decides).
    pub addr4_class: Vec<u16>,
    /// The class of every port (65 536 entries).
    pub port_class: Vec<u16>,
    /// Class of an operation without a port.
    pub port_none: u16,
    /// Default action per op.
    pub default: [Action; netev_abi::OPS],
    /// Action applied when the decision is `ask`.
    pub ask_fallback: Action,
}

impl KernelTables {
    /// 64-bit words in use (bits of all rules, rounded up).
    pub fn words(&self) -> usize {
        self.rules.len().div_ceil(64)
    }
}

/// An operation as the kernel sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KernelQuery {
    /// The op.
    pub op: Op,
    /// Socket family.
    pub family: Family,
    /// IP protocol.
    pub proto: Proto,
    /// The caller's executable.
    pub exe: Option<ExePath>,
    /// The caller's uid.
    pub uid: u32,
    /// Address (IPv4 mapped) on the side the op is about.
    pub addr: Option<Ipv6Addr>,
    /// Port on that side.
    pub port: Option<u16>,
}

struct Interner {
    classes: Vec<Bitmap>,
    index: HashMap<Bitmap, u16>,
}

impl Interner {
    fn class(&mut self, bits: Bitmap) -> Result<u16, RuleError> {
        if let Some(c) = self.index.get(&bits) {
            return Ok(*c);
        }
        if self.classes.len() >= MAX_CLASSES {
            return Err(RuleError::Capacity(format!(
                "the rules need more than {MAX_CLASSES} distinct kernel classes; \
                 merge rules that differ only in address or port"
            )));
        }
        let c = self.classes.len() as u16;
        self.classes.push(bits);
        self.index.insert(bits, c);
        Ok(c)
    }
}

fn set_bit(bits: &mut Bitmap, i: usize) {
    bits[i / 64] |= 1 << (i % 64);
}

fn bitmap_of(rules: &[Rule], mut pred: impl FnMut(&Rule) -> bool) -> Bitmap {
    let mut bits = [0; RULE_WORDS];
    for (i, r) in rules.iter().enumerate() {
        if pred(r) {
            set_bit(&mut bits, i);
        }
    }
    bits
}

/// Splits an inclusive port range into aligned prefixes (value, length).
pub fn port_prefixes(lo: u16, hi: u16) -> Vec<(u16, u8)> {
    let (mut lo, hi) = (u32::from(lo), u32::from(hi));
    let mut out = Vec::new();
    while lo <= hi {
        // largest aligned block starting at lo that stays within hi
        let mut size = if lo == 0 {
            1 << 16
        } else {
            1 << lo.trailing_zeros().min(16)
        };
        while lo + size - 1 > hi {
            size >>= 1;
        }
        out.push((lo as u16, 16 - size.trailing_zeros() as u8));
        lo += size;
    }
    out
}

/// Compiles `rules` (already in checking order and active: see
/// [`crate::RuleSet::rules`]). `resolve` gives the identities of the
/// executables an exe condition names (the filesystem's answer, now).
pub fn compile(
    rules: &[Rule],
    policy: &Policy,
    resolve: &mut dyn FnMut(&ExeMatch) -> ExeTargets,
) -> Result<KernelTables, RuleError> {
    // A rule with `exe_changed` is two kernel rules, one bit after the
    // other: itself, in the program class of its file only while the file
    // holds the content it names, and its "changed" twin (same id, the
    // exe_changed action) in the class of every other version.
    // The kernel never sees a unix socket's address: a rule on one would
    // never match there, and a deny that never matches fails open.
    if let Some(r) = rules.iter().find(|r| r.cond.path.is_some()) {
        return Err(RuleError::Conflict(format!(
            "rule {}: `path` (a unix socket's address) is decided only by `netev run`; \
             netevd does not see unix socket addresses. Remove `path` from the rule, or use it \
             in a rules file for netev run --rules",
            r.id
        )));
    }
    let mut twin = Vec::with_capacity(rules.len());
    let mut kernel_rules: Vec<Rule> = Vec::with_capacity(rules.len());
    for r in rules {
        kernel_rules.push(r.clone());
        twin.push(false);
        if let Some(a) = r.cond.exe_changed {
            let mut t = r.clone();
            t.action = a;
            kernel_rules.push(t);
            twin.push(true);
        }
    }
    let rules = &kernel_rules[..];
    if rules.len() > MAX_RULES {
        return Err(RuleError::Capacity(format!(
            "{} active rules (a rule with exe_changed counts twice), but the kernel tables hold \
             {MAX_RULES}",
            rules.len()
        )));
    }
    let mut interner = Interner {
        classes: Vec::new(),
        index: HashMap::new(),
    };

    let mut kind = Vec::with_capacity(KINDS);
    let families = [Family::INET, Family::INET6, Family::UNIX, Family(u16::MAX)];
    let protos = [
        Proto::TCP,
        Proto::UDP,
        Proto::ICMP,
        Proto::ICMPV6,
        Proto(u16::MAX),
    ];
    for op in Op::ALL {
        for fam in families {
            for proto in protos {
                debug_assert_eq!(kind.len(), kind_index(op, fam, proto));
                let bits = bitmap_of(rules, |r| {
                    let c = &r.cond;
                    (c.ops.is_empty() || c.ops.contains(&op))
                        && c.family.is_none_or(|f| f == fam)
                        && c.proto.is_none_or(|p| p == proto)
                });
                kind.push(interner.class(bits)?);
            }
        }
    }

    // Programs, by where their executable is. Each file and directory an
    // exe condition names gets the rules naming none, plus every rule whose
    // files or directories contain it: the kernel takes the file's entry,
    // else the first directory's on its way up, so each entry must already
    // hold what the directories above it add.
    let mut resolved: HashMap<&ExeMatch, ExeTargets> = HashMap::new();
    let mut files: BTreeMap<(DirId, Vec<u8>), FileRules> = BTreeMap::new();
    // (rule, directory path, deep)
    let mut dir_rules: Vec<(usize, String, bool)> = Vec::new();
    let mut dirs: BTreeMap<DirId, String> = BTreeMap::new();
    for (i, r) in rules.iter().enumerate() {
        if let Some(m) = &r.cond.exe {
            let t = resolved.entry(m).or_insert_with(|| resolve(m));
            for f in &t.files {
                let e = files
                    .entry((f.dir, f.name.clone()))
                    .or_insert_with(|| FileRules {
                        dir_path: f.dir_path.clone(),
                        ..FileRules::default()
                    });
                e.content = e.content.or(f.content);
                match r.cond.exe_hash {
                    None => e.plain.insert(i),
                    Some(h) => e.pinned.insert((i, h.0, twin[i])),
                };
            }
            for d in &t.dirs {
                dir_rules.push((i, d.path.clone(), d.deep));
                dirs.entry(d.dir).or_insert_with(|| d.path.clone());
            }
        }
    }
    let no_exe = bitmap_of(rules, |r| r.cond.exe.is_none());
    let exe_other = interner.class(no_exe)?;
    // the directory rules covering an executable directly in `dir`
    // (direct) or further below it
    let dir_bits = |dir: &str, direct: bool, bits: &mut Bitmap| {
        for (i, path, deep) in &dir_rules {
            if (*deep && path_covers(path, dir)) || (direct && !*deep && path == dir) {
                set_bit(bits, *i);
            }
        }
    };
    let mut exe_files = Vec::with_capacity(files.len());
    for ((dir, name), f) in files {
        let mut bits = no_exe;
        f.plain.iter().for_each(|i| set_bit(&mut bits, *i));
        dir_bits(&f.dir_path, true, &mut bits);
        // the version hashed at install, and any other
        let (mut same, mut changed) = (bits, bits);
        let now = f.content.map(|c| c.sha256);
        for (i, hash, is_twin) in &f.pinned {
            let holds = now == Some(*hash);
            if *is_twin {
                if !holds {
                    set_bit(&mut same, *i);
                }
                set_bit(&mut changed, *i);
            } else if holds {
                set_bit(&mut same, *i);
            }
        }
        let pin = (!f.pinned.is_empty())
            .then_some(f.content)
            .flatten()
            .map(|c| (c.ino, c.ctime_ns));
        exe_files.push(KernelFile {
            dir,
            name,
            class: interner.class(same)?,
            changed: interner.class(changed)?,
            version: pin,
        });
    }
    let mut exe_dirs = Vec::with_capacity(dirs.len());
    for (dir, path) in dirs {
        let (mut direct, mut deep) = (no_exe, no_exe);
        dir_bits(&path, true, &mut direct);
        dir_bits(&path, false, &mut deep);
        exe_dirs.push((dir, interner.class(direct)?, interner.class(deep)?));
    }
    let mut too_deep = no_exe;
    for (i, _, deep) in &dir_rules {
        if *deep && rules[*i].action != Action::Allow {
            set_bit(&mut too_deep, *i);
        }
    }
    let exe_too_deep = interner.class(too_deep)?;
    let all = interner.class(bitmap_of(rules, |_| true))?;

    // socket() guards: per family and kind of socket, the rules that could
    // apply to a later call the cgroup backend cannot decide.
    let mut guard_deny = [0u16; GUARDS];
    let mut guard_allow = [0u16; GUARDS];
    let mut guard_default = [false; GUARDS];
    for g in 0..GUARDS {
        let family = if g < GUARD_WHATS {
            Family::INET
        } else {
            Family::INET6
        };
        // what: SCTP, ICMP datagram, ICMPv6 datagram, raw
        let (ops, proto): (&[Op], Option<Proto>) = match g % GUARD_WHATS {
            0 => (&[Op::Bind, Op::Connect, Op::Sendmsg], Some(Proto(132))),
            1 => (&[Op::Sendmsg], Some(Proto::ICMP)),
            2 => (&[Op::Sendmsg], Some(Proto::ICMPV6)),
            _ => (&[Op::Sendmsg], None), // raw: any protocol
        };
        let could = |r: &Rule| {
            let c = &r.cond;
            (c.ops.is_empty() || ops.iter().any(|o| c.ops.contains(o)))
                && c.family.is_none_or(|f| f == family)
                && c.proto.is_none_or(|p| proto.is_none_or(|want| p == want))
        };
        guard_deny[g] =
            interner.class(bitmap_of(rules, |r| r.action != Action::Allow && could(r)))?;
        guard_allow[g] =
            interner.class(bitmap_of(rules, |r| r.action == Action::Allow && could(r)))?;
        guard_default[g] = ops
            .iter()
            .any(|o| policy.default[op_index(*o)] != Action::Allow);
    }

    let no_uid = bitmap_of(rules, |r| r.cond.uid.is_none());
    let uid_other = interner.class(no_uid)?;
    let uids: BTreeSet<u32> = rules.iter().filter_map(|r| r.cond.uid).collect();
    let mut uid = Vec::new();
    for u in uids {
        let bits = bitmap_of(rules, |r| r.cond.uid.is_none_or(|x| x == u));
        uid.push((u, interner.class(bits)?));
    }

    let no_addr = bitmap_of(rules, |r| r.cond.addr.is_none());
    let addr_none = interner.class(no_addr)?;
    let mut prefixes: BTreeSet<(Ipv6Addr, u8)> = rules
        .iter()
        .filter_map(|r| r.cond.addr.as_ref().map(mapped_prefix))
        .collect();
    prefixes.insert((Ipv6Addr::UNSPECIFIED, 0));
    let mut addr = Vec::new();
    for (net, len) in prefixes {
        let bits = bitmap_of(rules, |r| {
            r.cond.addr.as_ref().is_none_or(|a| {
                let (rn, rl) = mapped_prefix(a);
                rl <= len && prefix_contains(rn, rl, net)
            })
        });
        addr.push((net, len, interner.class(bits)?));
    }

    // IPv4 by /16: most addresses fall in a /16 that no rule splits, and get
    // their class with one indexed load instead of a trie walk. Filled like
    // ports: the longest prefix containing the /16 wins; a /16 holding a
    // longer prefix is left to the trie.
    let mapped_v4 = |len: u8, net: Ipv6Addr| {
        len >= 96 && prefix_contains(Ipv6Addr::from(0xffff_0000_0000u128), 96, net)
    };
    let mut addr4_class = vec![0u16; netev_abi::ADDR4_BLOCKS];
    let mut fills: Vec<&(Ipv6Addr, u8, u16)> = addr
        .iter()
        .filter(|(net, len, _)| {
            if *len <= 96 {
                // shorter: does it hold all of IPv4?
                prefix_contains(*net, *len, Ipv6Addr::from(0xffff_0000_0000u128))
            } else {
                mapped_v4(*len, *net)
            }
        })
        .collect();
    fills.sort_by_key(|(_, len, _)| *len);
    for (net, len, class) in fills {
        let block = (u128::from(*net) >> 16) as u32 & 0xffff;
        if *len <= 96 {
            addr4_class.fill(*class);
        } else if *len <= 112 {
            let n = 1u32 << (112 - u32::from(*len));
            addr4_class[block as usize..(block + n) as usize].fill(*class);
        } else {
            addr4_class[block as usize] = ADDR4_TRIE;
        }
    }

    let no_port = bitmap_of(rules, |r| r.cond.ports.is_none());
    let port_none = interner.class(no_port)?;
    let mut pprefixes: BTreeSet<(u16, u8)> = rules
        .iter()
        .filter_map(|r| r.cond.ports)
        .flat_map(|p| port_prefixes(p.lo, p.hi))
        .collect();
    pprefixes.insert((0, 0));
    // Shortest prefixes first, so that each port ends with the class of the
    // longest prefix containing it.
    let mut port_class = vec![0u16; netev_abi::PORTS];
    let mut pprefixes: Vec<(u16, u8)> = pprefixes.into_iter().collect();
    pprefixes.sort_by_key(|(_, len)| *len);
    for (value, len) in pprefixes {
        let last = u32::from(value) + (1u32 << (16 - len)) - 1;
        let bits = bitmap_of(rules, |r| {
            r.cond
                .ports
                .is_none_or(|p| p.lo <= value && u32::from(p.hi) >= last)
        });
        let class = interner.class(bits)?;
        port_class[usize::from(value)..=last as usize].fill(class);
    }

    for (what, n, max) in [
        ("program files", exe_files.len(), netev_abi::MAX_FILES),
        ("program directories", exe_dirs.len(), netev_abi::MAX_DIRS),
        ("users", uid.len(), netev_abi::MAX_UIDS),
        ("address prefixes", addr.len(), netev_abi::MAX_ADDRS),
    ] {
        if n > max {
            return Err(RuleError::Capacity(format!(
                "the rules name {n} {what}, but the kernel tables hold {max}; \
                 name a directory (DIR/** or DIR/*) instead of many files, or merge rules"
            )));
        }
    }
    Ok(KernelTables {
        rules: rules
            .iter()
            .zip(&twin)
            .map(|(r, is_twin)| KernelRule {
                id: r.id,
                action: r.action,
                once: r.duration == crate::Duration::Once && !is_twin,
                expires: match r.duration {
                    crate::Duration::Until(t) => Some(t),
                    _ => None,
                },
            })
            .collect(),
        classes: interner.classes,
        kind,
        exe_files,
        exe_dirs,
        exe_other,
        exe_too_deep,
        all,
        guard_deny,
        guard_allow,
        guard_default,
        uid,
        uid_other,
        addr,
        addr_none,
        addr4_class,
        port_class,
        port_none,
        default: policy.default,
        ask_fallback: policy.ask_fallback,
    })
}

impl KernelTables {
    /// The class of an executable, found as `exe_class_of()` in common.h
    /// finds it.
    pub fn exe_class(&self, e: &ExePath) -> u16 {
        let Some(own) = e.dirs.first() else {
            return self.exe_other;
        };
        if let Some(f) = self
            .exe_files
            .iter()
            .find(|f| f.dir == *own && f.name == e.name)
        {
            return match f.version {
                Some(v) if e.version != Some(v) => f.changed,
                _ => f.class,
            };
        }
        for (depth, dir) in e.dirs.iter().enumerate() {
            if let Some((_, direct, deep)) = self.exe_dirs.iter().find(|(d, _, _)| d == dir) {
                return if depth == 0 { *direct } else { *deep };
            }
        }
        if e.complete {
            self.exe_other
        } else {
            self.exe_too_deep
        }
    }

    /// Decides as the BPF program does (`netev_decide` in netev.bpf.c): for
    /// tests of the compiler against [`crate::RuleSet::decide`]. `consumed`
    /// holds the ids of `once` rules used up; a match on one adds it.
    pub fn decide(&self, q: &KernelQuery, consumed: &mut HashSet<u32>) -> Decision {
        let lpm = |entries: &[(u128, u8, u16)], bits: u32, v: u128| {
            entries
                .iter()
                .filter(|(n, l, _)| {
                    *l == 0 || (n >> (bits - u32::from(*l))) == (v >> (bits - u32::from(*l)))
                })
                .max_by_key(|(_, l, _)| *l)
                .map(|(_, _, c)| *c)
        };
        let addr_entries: Vec<_> = self
            .addr
            .iter()
            .map(|(n, l, c)| (u128::from(*n), *l, *c))
            .collect();
        let classes = [
            self.kind[kind_index(q.op, q.family, q.proto)],
            q.exe.as_ref().map_or(self.exe_other, |e| self.exe_class(e)),
            self.uid
                .iter()
                .find(|(u, _)| *u == q.uid)
                .map_or(self.uid_other, |(_, c)| *c),
            q.addr
                .map_or(Some(self.addr_none), |a| {
                    let v = u128::from(a);
                    let direct = (v >> 32 == 0xffff)
                        .then(|| self.addr4_class[(v >> 16) as usize & 0xffff])
                        .filter(|c| *c & ADDR4_TRIE == 0);
                    direct.or_else(|| lpm(&addr_entries, 128, v))
                })
                .unwrap(),
            q.port
                .map_or(self.port_none, |p| self.port_class[usize::from(p)]),
        ];
        for w in 0..self.words() {
            let mut m = classes
                .iter()
                .fold(u64::MAX, |acc, c| acc & self.classes[*c as usize][w]);
            while m != 0 {
                let bit = w * 64 + m.trailing_zeros() as usize;
                m &= m - 1;
                let r = self.rules[bit];
                if r.once && !consumed.insert(r.id) {
                    continue;
                }
                return Decision {
                    action: r.action,
                    rule: Some(r.id),
                };
            }
        }
        Decision {
            action: self.default[op_index(q.op)],
            rule: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::rule_from_fields;
    use crate::{ExeHash, Query, RuleSet};
    use proptest::prelude::*;
    use std::net::IpAddr;

    #[test]
    fn port_prefixes_cover_exactly_the_range() {
        for (lo, hi) in [
            (0, 65535),
            (80, 80),
            (1, 2),
            (2, 5),
            (1000, 2000),
            (0, 0),
            (65535, 65535),
            (3, 65534),
        ] {
            let ps = port_prefixes(lo, hi);
            let mut covered = Vec::new();
            for (v, l) in &ps {
                let size = 1u32 << (16 - l);
                assert_eq!(u32::from(*v) % size, 0, "aligned");
                covered.extend(u32::from(*v)..u32::from(*v) + size);
            }
            assert_eq!(
                covered,
                (u32::from(lo)..=u32::from(hi)).collect::<Vec<_>>(),
                "{lo}-{hi}: {ps:?}"
            );
        }
        assert_eq!(port_prefixes(0, 65535), vec![(0, 0)]);
    }

    const EXES: [&str; 4] = ["/usr/bin/a", "/usr/bin/b", "/opt/c", "/usr/bin/sub/d"];
    const DIRS: [&str; 5] = ["/", "/usr", "/usr/bin", "/opt", "/usr/bin/sub"];

    fn dir_id(path: &str) -> DirId {
        (8, DIRS.iter().position(|d| *d == path).unwrap() as u64 + 2)
    }

    fn parent(path: &str) -> (&str, &str) {
        let (dir, name) = path.rsplit_once('/').unwrap();
        (if dir.is_empty() { "/" } else { dir }, name)
    }

    /// The kernel's view of an executable of this little filesystem.
    fn exe_path(path: &str) -> ExePath {
        let (mut dir, name) = parent(path);
        let mut dirs = vec![dir_id(dir)];
        while dir != "/" {
            dir = parent(dir).0;
            dirs.push(dir_id(dir));
        }
        ExePath {
            name: name.as_bytes().to_vec(),
            dirs,
            complete: true,
            version: None,
        }
    }

    /// What netevd's resolver says for this little filesystem.
    fn resolve(m: &ExeMatch) -> ExeTargets {
        let text = m.as_str();
        let file = |path: &str| {
            let (dir, name) = parent(path);
            ExeFile {
                dir: dir_id(dir),
                dir_path: dir.into(),
                name: name.as_bytes().to_vec(),
                content: None,
            }
        };
        let dir = |path: &str, deep| {
            let path = if path.is_empty() { "/" } else { path };
            ExeDir {
                dir: dir_id(path),
                path: path.into(),
                deep,
            }
        };
        let mut t = ExeTargets::default();
        if let Some(d) = text.strip_suffix("/**") {
            t.dirs.push(dir(d, true));
        } else if let Some(d) = text
            .strip_suffix("/*")
            .filter(|d| !d.contains(['*', '?', '[']))
        {
            t.dirs.push(dir(d, false));
        } else if m.is_glob() {
            t.files = EXES
                .iter()
                .filter(|e| m.matches(e))
                .map(|e| file(e))
                .collect();
        } else {
            t.files.push(file(text));
        }
        t
    }

    #[test]
    fn executables_are_found_by_file_then_nearest_directory() {
        let rule = |id: u32, action: &str, exe: &str| {
            let mut r = rule_from_fields(
                [("action", action), ("exe", exe)],
                chrono::Utc::now(),
                &|_| None,
            )
            .unwrap();
            r.id = id;
            r
        };
        let rules = vec![
            rule(1, "allow", "/usr/bin/a"),
            rule(2, "deny", "/usr/bin/*"),
            rule(3, "ask", "/usr/**"),
            rule(4, "allow", "/opt/**"),
        ];
        let t = compile(&rules, &Policy::default(), &mut resolve).unwrap();
        let rules_of = |e: &ExePath| -> Vec<u32> {
            let bits = t.classes[usize::from(t.exe_class(e))];
            (0..rules.len())
                .filter(|i| bits[i / 64] & (1 << (i % 64)) != 0)
                .map(|i| rules[i].id)
                .collect()
        };
        assert_eq!(rules_of(&exe_path("/usr/bin/a")), [1, 2, 3]);
        assert_eq!(
            rules_of(&exe_path("/usr/bin/new")),
            [2, 3],
            "a file made after install"
        );
        assert_eq!(rules_of(&exe_path("/usr/bin/sub/d")), [3], "* is one level");
        assert_eq!(rules_of(&exe_path("/opt/c")), [4]);
        assert_eq!(rules_of(&exe_path("/other")), Vec::<u32>::new());
        let mut deep = exe_path("/usr/bin/sub/d");
        deep.dirs.truncate(1);
        deep.complete = false;
        assert_eq!(
            rules_of(&deep),
            [3],
            "cut short: every directory's deny and ask"
        );
    }

    #[test]
    fn a_content_pinned_rule_matches_its_version_and_its_twin_every_other() {
        let pinned = |changed: Action| {
            let mut x = rule_from_fields(
                [("action", "allow"), ("exe", "/usr/bin/a")],
                chrono::Utc::now(),
                &|_| None,
            )
            .unwrap();
            x.id = 9;
            x.cond.exe_hash = Some(ExeHash([0xab; 32]));
            x.cond.exe_changed = Some(changed);
            x
        };
        let content = FileContent {
            ino: 5,
            ctime_ns: 77,
            sha256: [0xab; 32],
        };
        let mut with_content = |m: &ExeMatch| {
            let mut t = resolve(m);
            t.files.iter_mut().for_each(|f| f.content = Some(content));
            t
        };
        let t = compile(
            &[pinned(Action::Ask)],
            &Policy::default(),
            &mut with_content,
        )
        .unwrap();
        assert_eq!(t.rules.len(), 2, "the rule and its twin");
        assert_eq!((t.rules[1].id, t.rules[1].action), (9, Action::Ask));
        let q = |version| KernelQuery {
            op: Op::Connect,
            family: Family::INET,
            proto: Proto::TCP,
            exe: Some(ExePath {
                version,
                ..exe_path("/usr/bin/a")
            }),
            uid: 0,
            addr: None,
            port: None,
        };
        let mut used = HashSet::new();
        let same = t.decide(&q(Some((5, 77))), &mut used);
        assert_eq!((same.action, same.rule), (Action::Allow, Some(9)));
        let replaced = t.decide(&q(Some((6, 77))), &mut used);
        assert_eq!(
            (replaced.action, replaced.rule),
            (Action::Ask, Some(9)),
            "mv'd in"
        );
        let rewritten = t.decide(&q(Some((5, 78))), &mut used);
        assert_eq!(rewritten.action, Action::Ask, "written in place");
        let other = t.decide(&q(None), &mut used);
        assert_eq!(other.action, Action::Ask);

        // installed while the file held other content: only the twin
        let mut other_content = |m: &ExeMatch| {
            let mut t = resolve(m);
            t.files.iter_mut().for_each(|f| {
                f.content = Some(FileContent {
                    sha256: [1; 32],
                    ..content
                })
            });
            t
        };
        let t = compile(
            &[pinned(Action::Deny)],
            &Policy::default(),
            &mut other_content,
        )
        .unwrap();
        let d = t.decide(&q(Some((5, 77))), &mut used);
        assert_eq!((d.action, d.rule), (Action::Deny, Some(9)));
    }

    #[test]
    fn guards_name_the_rules_that_could_refuse_an_undecided_call() {
        let mut r = rule_from_fields(
            [("action", "deny"), ("ops", "connect"), ("ports", "9")],
            chrono::Utc::now(),
            &|_| None,
        )
        .unwrap();
        r.id = 7;
        let t = compile(&[r], &Policy::default(), &mut resolve).unwrap();
        let sctp4 = netev_abi::guard_index(2, 1, 132).unwrap();
        let icmp4 = netev_abi::guard_index(2, 2, 1).unwrap();
        assert_eq!(
            t.classes[usize::from(t.guard_deny[sctp4])][0],
            1,
            "SCTP connect"
        );
        assert_eq!(
            t.classes[usize::from(t.guard_deny[icmp4])][0],
            0,
            "ICMP has no connect"
        );
        assert!(!t.guard_default[sctp4]);
        let mut strict = Policy::default();
        strict.set(Op::Sendmsg, Action::Deny);
        let t = compile(&[], &strict, &mut resolve).unwrap();
        assert!(t.guard_default[icmp4]);
    }

    fn arb_rule() -> impl Strategy<Value = Vec<(&'static str, String)>> {
        let opt = |s: BoxedStrategy<String>| prop::option::of(s);
        (
            prop_oneof![Just("allow"), Just("deny"), Just("ask")],
            opt(prop::sample::subsequence(
                vec!["socket", "bind", "connect", "sendmsg", "listen"],
                1..3,
            )
            .prop_map(|v| v.join(","))
            .boxed()),
            opt(prop::sample::select(vec![
                "/usr/bin/a",
                "/usr/bin/*",
                "/opt/c",
                "/nowhere",
                "/usr/**",
                "/usr/bin/[ab]",
                "/**",
                "/usr/bin/sub/d",
            ])
            .prop_map(String::from)
            .boxed()),
            opt(prop::sample::select(vec!["0", "1000"])
                .prop_map(String::from)
                .boxed()),
            opt(prop::sample::select(vec!["inet", "inet6"])
                .prop_map(String::from)
                .boxed()),
            opt(prop::sample::select(vec!["tcp", "udp"])
                .prop_map(String::from)
                .boxed()),
            opt(prop::sample::select(vec![
                "10.0.0.0/8",
                "10.1.0.0/16",
                "10.1.2.3",
                "10.1.2.0/24",
                "10.200.0.0/16",
                "::1",
                "::/0",
                "2001:db8::/32",
                "0.0.0.0/0",
            ])
            .prop_map(String::from)
            .boxed()),
            opt(prop_oneof![
                (0u16..150).prop_map(|a| a.to_string()),
                (0u16..100, 0u16..40).prop_map(|(a, n)| format!("{}-{}", a, a + n)),
            ]
            .boxed()),
            (-2i32..3, any::<bool>()),
        )
            .prop_map(
                |(action, ops, exe, user, family, proto, addr, ports, (prio, once))| {
                    let mut f = vec![
                        ("action", action.to_string()),
                        ("priority", prio.to_string()),
                    ];
                    let mut put = |k, v: Option<String>| {
                        if let Some(v) = v {
                            f.push((k, v))
                        }
                    };
                    put("ops", ops);
                    put("exe", exe);
                    put("user", user);
                    put("family", family);
                    put("proto", proto);
                    put("addr", addr);
                    put("ports", ports);
                    if once {
                        f.push(("duration", "once".into()));
                    }
                    f
                },
            )
    }

    fn arb_query() -> impl Strategy<
        Value = (
            Op,
            Family,
            Proto,
            Option<&'static str>,
            u32,
            Option<IpAddr>,
            Option<u16>,
        ),
    > {
        (
            prop::sample::select(vec![
                Op::Socket,
                Op::Bind,
                Op::Connect,
                Op::Sendmsg,
                Op::Listen,
            ]),
            prop::sample::select(vec![Family::INET, Family::INET6, Family::UNIX]),
            prop::sample::select(vec![Proto::TCP, Proto::UDP, Proto(0)]),
            prop::option::of(prop::sample::select(EXES.to_vec())),
            prop::sample::select(vec![0u32, 1000, 1001]),
            prop::option::of(prop::sample::select(vec![
                "10.1.2.3",
                "10.1.9.9",
                "10.200.0.1",
                "192.168.1.1",
                "::ffff:10.1.2.3",
                "2001:db8::1",
                "::1",
            ]))
            .prop_map(|a| a.map(|a| a.parse().unwrap())),
            prop::option::of(0u16..150),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The index, the linear scan and the compiled kernel tables agree,
        /// once-rules included.
        #[test]
        fn compiled_tables_decide_like_the_matcher(
            specs in prop::collection::vec(arb_rule(), 0..24),
            queries in prop::collection::vec(arb_query(), 1..24),
        ) {
            let rules: Vec<Rule> = specs.iter().enumerate().filter_map(|(i, f)| {
                let mut r = rule_from_fields(f.iter().map(|(k, v)| (*k, v.as_str())), chrono::Utc::now(), &|_| None).ok()?;
                r.id = i as u32 + 1;
                Some(r)
            }).collect();
            let set = RuleSet::new(rules, Policy::default());
            let tables = compile(set.rules(), set.policy(), &mut resolve).unwrap();
            let mut consumed = HashSet::new();
            let mut consumed_ref = HashSet::new();
            for (op, family, proto, exe, uid, addr, port) in queries {
                let q = Query { op, family, proto, exe, uid, addr, port, path: None };
                let kq = KernelQuery {
                    op, family, proto, exe: exe.map(exe_path), uid,
                    addr: addr.map(crate::mapped_addr), port,
                };
                let once = |r: &Rule| r.duration != crate::Duration::Once || !consumed_ref.contains(&r.id);
                let want = set.first_match(&q, once);
                if let (Some(id), true) = (want.rule, set.rules().iter().any(|r| Some(r.id) == want.rule && r.duration == crate::Duration::Once)) {
                    consumed_ref.insert(id);
                }
                prop_assert_eq!(tables.decide(&kq, &mut consumed), want, "query {:?}", q);
                let all_usable = consumed_ref.is_empty();
                if all_usable {
                    prop_assert_eq!(set.decide(&q), set.decide_linear(&q));
                }
            }
        }
    }
}
