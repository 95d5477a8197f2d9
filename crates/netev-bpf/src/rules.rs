//! Putting compiled rules into the kernel's tables (netev.h, "rule tables").
//!
//! Two slots: the one not in use is cleared and filled, then `rule_active`
//! flips to it with one 4-byte write. A hook reads `rule_active` once per
//! decision, so it sees the old rules or the new ones, never a mix. Before a
//! slot is rewritten, every hook that may still be reading it from before the
//! previous flip has to finish: BPF programs run inside RCU read-side
//! sections, and `membarrier(MEMBARRIER_CMD_GLOBAL)` waits for an RCU grace
//! period (it calls synchronize_rcu() in the kernel).

use bytemuck::Zeroable;
use libbpf_rs::{MapCore, MapFlags, MapHandle};
use netev_abi::{MAX_CLASSES, MAX_RULES, RULE_WORDS, SLOTS};
use netev_rules::compile::KernelTables;

use crate::Error;

// The records of the rule tables are the ABI's; re-exported where they were.
pub use netev_abi::{
    RawAddrKey, RawDirClasses, RawDirKey, RawFileClasses, RawFileKey, RawRuleMeta, RawRuleset,
    RawUidKey,
};

// install() flips between the two slots by the parity of a count of installs.
const _: () = assert!(SLOTS == 2);

/// The maps that hold rules: handles of their own (duplicated descriptors),
/// so that the thread that owns the rules writes them while another drains
/// events from the same object.
pub(crate) struct RuleMaps {
    pub active: MapHandle,
    pub sets: MapHandle,
    pub bits: MapHandle,
    pub live: MapHandle,
    pub meta: MapHandle,
    pub dir: MapHandle,
    pub file: MapHandle,
    pub uid: MapHandle,
    pub addr: MapHandle,
    pub port: MapHandle,
    pub addr4: MapHandle,
    pub once: MapHandle,
}

/// The rule tables of one loaded object ([`crate::RuleTables`]).
pub(crate) struct MapRuleTables {
    maps: RuleMaps,
    installed: Installed,
    /// Links a previous netevd left pinned: they keep enforcing its rules
    /// until ours are in, then they go.
    stale: Vec<libbpf_rs::Link>,
}

impl MapRuleTables {
    pub(crate) fn new(maps: RuleMaps, stale: Vec<libbpf_rs::Link>) -> MapRuleTables {
        MapRuleTables {
            maps,
            installed: Installed::default(),
            stale,
        }
    }
}

impl crate::RuleTables for MapRuleTables {
    fn install(&mut self, tables: &KernelTables) -> Result<(), Error> {
        self.installed.install(&self.maps, tables)?;
        if !self.stale.is_empty() {
            // ours decide now: the dead daemon's programs can go
            tracing::info!(
                programs = self.stale.len(),
                "detached the programs a previous netevd left pinned"
            );
            self.stale.clear();
        }
        Ok(())
    }

    fn consumed_once(&self) -> Result<Vec<u32>, Error> {
        consumed_once(&self.maps.once)
    }
}

/// Keys written into each slot's hash and trie maps, to clear them later
/// (recorded as each is written, so a failed install leaves none behind
/// untracked).
#[derive(Default)]
struct Installed {
    slots: [SlotKeys; SLOTS],
    classes: [usize; SLOTS],
    /// What `rule_active` holds: a count of installs, whose low bit is the
    /// slot in use (the kernel keeps each process's program class for one
    /// count, so the count must change at every install).
    active: u32,
}

#[derive(Default)]
struct SlotKeys {
    dir: Vec<RawDirKey>,
    file: Vec<RawFileKey>,
    uid: Vec<RawUidKey>,
    addr: Vec<RawAddrKey>,
}

/// CLOCK_BOOTTIME now, in ns: what bpf_ktime_get_boot_ns() reads.
fn boottime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A timed rule's end on the kernel's clock (0: never). A time already
/// past becomes 1 ns after boot: expired.
fn expires_ns(expires: Option<chrono::DateTime<chrono::Utc>>) -> u64 {
    let Some(t) = expires else { return 0 };
    let left = (t - chrono::Utc::now())
        .num_nanoseconds()
        .unwrap_or(i64::MAX);
    if left <= 0 {
        1
    } else {
        boottime_ns().saturating_add(left as u64)
    }
}

fn map_err(what: &str) -> impl Fn(libbpf_rs::Error) -> Error + '_ {
    move |e| Error::bpf(format!("writing rule tables ({what})"), e)
}

/// Waits until no BPF program can still be reading what it read before now.
fn wait_for_readers() -> Result<(), Error> {
    const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1;
    // SAFETY: membarrier takes two integers and touches no memory of ours.
    let r = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) };
    if r != 0 {
        return Err(Error::Io {
            what: "waiting for in-flight rule lookups (membarrier)".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

impl Installed {
    /// Writes `t` into the free slot and makes it the active one.
    fn install(&mut self, m: &RuleMaps, t: &KernelTables) -> Result<(), Error> {
        if t.rules.len() > MAX_RULES || t.classes.len() > MAX_CLASSES {
            return Err(Error::Rules(format!(
                "{} rules in {} classes exceed the kernel tables ({MAX_RULES} rules, {MAX_CLASSES} classes)",
                t.rules.len(),
                t.classes.len()
            )));
        }
        let next = self.active.wrapping_add(1);
        let slot = next & 1;
        wait_for_readers()?;
        let keys = std::mem::take(&mut self.slots[slot as usize]);
        for k in &keys.dir {
            let _ = m.dir.delete(bytemuck::bytes_of(k));
        }
        for k in &keys.file {
            let _ = m.file.delete(bytemuck::bytes_of(k));
        }
        for k in &keys.uid {
            let _ = m.uid.delete(bytemuck::bytes_of(k));
        }
        for k in &keys.addr {
            let _ = m.addr.delete(bytemuck::bytes_of(k));
        }

        // once rules: armed before any slot can name them
        for r in t.rules.iter().filter(|r| r.once) {
            match m
                .once
                .update(&r.id.to_ne_bytes(), &0u32.to_ne_bytes(), MapFlags::NO_EXIST)
            {
                Ok(()) => {}
                Err(e) if e.kind() == libbpf_rs::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(map_err("once_state")(e)),
            }
        }

        let base = slot as usize * MAX_CLASSES;
        let n = t.classes.len().max(self.classes[slot as usize]);
        let mut idx = Vec::with_capacity(n * 4);
        let mut vals = Vec::with_capacity(n * RULE_WORDS * 8);
        for c in 0..n {
            idx.extend_from_slice(&((base + c) as u32).to_ne_bytes());
            let bits = t.classes.get(c).copied().unwrap_or([0; RULE_WORDS]);
            vals.extend_from_slice(bytemuck::cast_slice(&bits));
        }
        if n > 0 {
            m.bits
                .update_batch(&idx, &vals, n as u32, MapFlags::ANY, MapFlags::ANY)
                .map_err(map_err("rule_bits"))?;
        }
        self.classes[slot as usize] = t.classes.len();

        let mut live = [0u64; RULE_WORDS];
        for i in 0..t.rules.len() {
            live[i / 64] |= 1 << (i % 64);
        }
        m.live
            .update(
                &slot.to_ne_bytes(),
                bytemuck::cast_slice(&live),
                MapFlags::ANY,
            )
            .map_err(map_err("rule_live"))?;

        if !t.rules.is_empty() {
            let mbase = slot as usize * MAX_RULES;
            let mut idx = Vec::with_capacity(t.rules.len() * 4);
            let mut vals = Vec::with_capacity(t.rules.len() * 8);
            for (i, r) in t.rules.iter().enumerate() {
                idx.extend_from_slice(&((mbase + i) as u32).to_ne_bytes());
                let meta = RawRuleMeta {
                    id: r.id,
                    action: r.action.abi(),
                    once: r.once as u8,
                    _pad: 0,
                    expires_ns: expires_ns(r.expires),
                };
                vals.extend_from_slice(bytemuck::bytes_of(&meta));
            }
            m.meta
                .update_batch(
                    &idx,
                    &vals,
                    t.rules.len() as u32,
                    MapFlags::ANY,
                    MapFlags::ANY,
                )
                .map_err(map_err("rule_meta"))?;
        }

        let keys = &mut self.slots[slot as usize];
        for ((dev, ino), direct, deep) in &t.exe_dirs {
            let k = RawDirKey {
                ino: *ino,
                dev: *dev,
                slot,
            };
            let v = RawDirClasses {
                direct: *direct,
                deep: *deep,
            };
            keys.dir.push(k);
            m.dir
                .update(
                    bytemuck::bytes_of(&k),
                    bytemuck::bytes_of(&v),
                    MapFlags::ANY,
                )
                .map_err(map_err("rule_dir"))?;
        }
        for f in &t.exe_files {
            let ((dev, ino), name) = (&f.dir, &f.name);
            let mut k = RawFileKey::zeroed();
            if name.len() >= k.name.len() || name.is_empty() || name.contains(&0) {
                return Err(Error::Rules(format!(
                    "an exe rule names a file whose name ({} bytes) no kernel file name can be",
                    name.len()
                )));
            }
            k.ino = *ino;
            k.dev = *dev;
            k.slot = slot;
            k.name[..name.len()].copy_from_slice(name);
            m.file
                .update(
                    bytemuck::bytes_of(&k),
                    bytemuck::bytes_of(&RawFileClasses {
                        class: f.class,
                        changed: f.changed,
                        _pad: 0,
                        ino: f.version.map_or(0, |v| v.0),
                        ctime_ns: f.version.map_or(0, |v| v.1),
                    }),
                    MapFlags::ANY,
                )
                .map_err(map_err("rule_file"))?;
            keys.file.push(k);
        }
        for (uid, class) in &t.uid {
            let k = RawUidKey { uid: *uid, slot };
            keys.uid.push(k);
            m.uid
                .update(bytemuck::bytes_of(&k), &class.to_ne_bytes(), MapFlags::ANY)
                .map_err(map_err("rule_uid"))?;
        }
        for (net, len, class) in &t.addr {
            let k = RawAddrKey {
                prefixlen: 8 + u32::from(*len),
                slot: slot as u8,
                addr: net.octets(),
                _pad: [0; 3],
            };
            keys.addr.push(k);
            m.addr
                .update(bytemuck::bytes_of(&k), &class.to_ne_bytes(), MapFlags::ANY)
                .map_err(map_err("rule_addr"))?;
        }
        // `struct netev_addr4_classes`, `struct netev_port_classes`: the whole
        // slot in one write each
        m.addr4
            .update(
                &slot.to_ne_bytes(),
                bytemuck::cast_slice(&t.addr4_class),
                MapFlags::ANY,
            )
            .map_err(map_err("rule_addr4"))?;
        m.port
            .update(
                &slot.to_ne_bytes(),
                bytemuck::cast_slice(&t.port_class),
                MapFlags::ANY,
            )
            .map_err(map_err("rule_port"))?;

        let mut header = RawRuleset::zeroed();
        header.words = t.words() as u32;
        header.exe_other = t.exe_other;
        header.exe_too_deep = t.exe_too_deep;
        header.all = t.all;
        header.guard_deny = t.guard_deny;
        header.guard_allow = t.guard_allow;
        for (i, d) in t.guard_default.iter().enumerate() {
            header.guard_default[i] = *d as u8;
        }
        header.uid_other = t.uid_other;
        header.addr_none = t.addr_none;
        header.port_none = t.port_none;
        for (i, a) in t.default.iter().enumerate() {
            header.default_action[i] = a.abi();
        }
        header.ask_fallback = t.ask_fallback.abi();
        header.kind[..t.kind.len()].copy_from_slice(&t.kind);
        m.sets
            .update(
                &slot.to_ne_bytes(),
                bytemuck::bytes_of(&header),
                MapFlags::ANY,
            )
            .map_err(map_err("rule_sets"))?;

        // the switch: one 4-byte array element
        m.active
            .update(&0u32.to_ne_bytes(), &next.to_ne_bytes(), MapFlags::ANY)
            .map_err(map_err("rule_active"))?;
        self.active = next;

        // once rules no table names any more are forgotten
        let named: std::collections::HashSet<u32> =
            t.rules.iter().filter(|r| r.once).map(|r| r.id).collect();
        let stale: Vec<Vec<u8>> = m
            .once
            .keys()
            .filter(|k| {
                k.len() == 4 && !named.contains(&u32::from_ne_bytes(k[..4].try_into().unwrap()))
            })
            .collect();
        for k in stale {
            let _ = m.once.delete(&k);
        }
        Ok(())
    }
}

/// Ids of `once` rules the kernel has used up.
fn consumed_once(once: &dyn MapCore) -> Result<Vec<u32>, Error> {
    let mut out = Vec::new();
    for k in once.keys() {
        if let Some(v) = once
            .lookup(&k, MapFlags::ANY)
            .map_err(|e| Error::bpf("reading once_state", e))?
        {
            if v.len() >= 4 && u32::from_ne_bytes(v[..4].try_into().unwrap()) != 0 {
                out.push(u32::from_ne_bytes(k[..4].try_into().unwrap()));
            }
        }
    }
    Ok(out)
}
