//! Probing for BPF LSM: the preferred backend where the kernel allows it.

use libbpf_rs::ProgramType;
use netev_host::security::LsmFacts;

pub use netev_host::security::LsmAvailability;

/// Checks, in order: securityfs and `bpf` in its active LSM list (host
/// facts, read by netev-host), then libbpf's load probe of an LSM program,
/// whose refusal is explained with the kernel's lockdown mode. Only the
/// probe needs libbpf, so only it is here.
pub fn probe() -> LsmAvailability {
    let facts = LsmFacts::read();
    if let Some(why) = facts.rules_out() {
        return LsmAvailability::Unavailable(why);
    }
    match ProgramType::Lsm.is_supported() {
        Ok(true) => LsmAvailability::Available,
        Ok(false) => LsmAvailability::Unavailable(match facts.lockdown_in_force() {
            Some(mode) => format!("the kernel refuses to load LSM programs (lockdown: {mode})"),
            None => "the kernel refuses to load LSM programs".into(),
        }),
        Err(e) => LsmAvailability::Unavailable(format!("probe failed: {e}")),
    }
}
