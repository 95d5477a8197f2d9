//! Probing for BPF LSM: the preferred backend where the kernel allows it.

use libbpf_rs::ProgramType;

/// Whether BPF LSM programs can be used here, and if not why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LsmAvailability {
    /// The kernel accepts BPF LSM programs.
    Available,
    /// It does not, for this reason (with the fix where there is one).
    Unavailable(String),
}

impl LsmAvailability {
    /// One line for status and logs.
    pub fn describe(&self) -> String {
        match self {
            LsmAvailability::Available => "available".into(),
            LsmAvailability::Unavailable(why) => format!("unavailable: {why}"),
        }
    }
}

/// Checks, in order: `bpf` in the active LSM list, the kernel's lockdown
/// state, and libbpf's load probe of an LSM program.
pub fn probe() -> LsmAvailability {
    let lsms =
        match std::fs::read_to_string("/sys/kernel/security/lsm") {
            Ok(s) => s,
            Err(_) => return LsmAvailability::Unavailable(
                "securityfs is not mounted (mount -t securityfs securityfs /sys/kernel/security)"
                    .into(),
            ),
        };
    if !lsms.trim().split(',').any(|l| l == "bpf") {
        return LsmAvailability::Unavailable(format!(
            "`bpf` is not in the active LSM list ({}); boot with lsm=...,bpf",
            lsms.trim()
        ));
    }
    let lockdown = std::fs::read_to_string("/sys/kernel/security/lockdown").unwrap_or_default();
    match ProgramType::Lsm.is_supported() {
        Ok(true) => LsmAvailability::Available,
        Ok(false) => LsmAvailability::Unavailable(match active_lockdown(&lockdown) {
            Some(mode) if mode != "none" => {
                format!("the kernel refuses to load LSM programs (lockdown: {mode})")
            }
            _ => "the kernel refuses to load LSM programs".into(),
        }),
        Err(e) => LsmAvailability::Unavailable(format!("probe failed: {e}")),
    }
}

/// `none [integrity] confidentiality` → `integrity`.
fn active_lockdown(s: &str) -> Option<&str> {
    let start = s.find('[')?;
    let end = s[start..].find(']')? + start;
    Some(&s[start + 1..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_active_lockdown_mode() {
        assert_eq!(
            active_lockdown("none [integrity] confidentiality\n"),
            Some("integrity")
        );
        assert_eq!(
            active_lockdown("[none] integrity confidentiality"),
            Some("none")
        );
        assert_eq!(active_lockdown(""), None);
    }
}
