//! securityfs: the active LSM list and the kernel's lockdown mode, and what
//! they alone say about BPF LSM.
//!
//! Whether the kernel then really loads an LSM program only a load probe
//! tells; that needs libbpf and lives in netev-bpf (`lsm::probe`), which
//! starts from these facts. netevd publishes the probe's answer in its
//! status notes ([`LsmAvailability::note`]) so that programs without libbpf
//! (`netev doctor`) can read it back ([`LsmAvailability::from_note`]).

use std::path::Path;

/// Where securityfs is mounted.
pub const SECURITYFS: &str = "/sys/kernel/security";

/// Whether BPF LSM programs can be used here, and if not why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LsmAvailability {
    /// The kernel accepts BPF LSM programs.
    Available,
    /// It does not, for this reason (with the fix where there is one).
    Unavailable(String),
}

/// How netevd's status note about BPF LSM starts.
const NOTE_PREFIX: &str = "bpf-lsm: ";
/// The note for [`LsmAvailability::Available`] (which backend then runs is
/// netevd's "backend: " note).
const NOTE_AVAILABLE: &str = "available on this kernel";

impl LsmAvailability {
    /// One line for status and logs.
    pub fn describe(&self) -> String {
        match self {
            LsmAvailability::Available => "available".into(),
            LsmAvailability::Unavailable(why) => format!("unavailable: {why}"),
        }
    }

    /// The line netevd adds to its status notes about BPF LSM.
    pub fn note(&self) -> String {
        match self {
            LsmAvailability::Available => format!("{NOTE_PREFIX}{NOTE_AVAILABLE}"),
            other => format!("{NOTE_PREFIX}{}", other.describe()),
        }
    }

    /// The answer a status note written by [`LsmAvailability::note`] gives;
    /// `None` for any other note.
    pub fn from_note(note: &str) -> Option<LsmAvailability> {
        let rest = note.strip_prefix(NOTE_PREFIX)?;
        if let Some(why) = rest.strip_prefix("unavailable: ") {
            return Some(LsmAvailability::Unavailable(why.to_string()));
        }
        rest.starts_with("available")
            .then_some(LsmAvailability::Available)
    }
}

/// What securityfs says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LsmFacts {
    /// The active LSMs in the kernel's order; `None` when securityfs is not
    /// mounted (the list cannot be read).
    pub lsms: Option<Vec<String>>,
    /// The active lockdown mode (`none`, `integrity`, `confidentiality`),
    /// if the kernel has the lockdown LSM.
    pub lockdown: Option<String>,
}

impl LsmFacts {
    /// Reads `/sys/kernel/security/lsm` and `/sys/kernel/security/lockdown`.
    pub fn read() -> LsmFacts {
        let dir = Path::new(SECURITYFS);
        let lsm = std::fs::read_to_string(dir.join("lsm")).ok();
        let lockdown = std::fs::read_to_string(dir.join("lockdown")).ok();
        LsmFacts::from_text(lsm.as_deref(), lockdown.as_deref())
    }

    /// The facts in the texts of those two files (`None`: unreadable).
    pub fn from_text(lsm: Option<&str>, lockdown: Option<&str>) -> LsmFacts {
        LsmFacts {
            lsms: lsm.map(|s| {
                s.trim()
                    .split(',')
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect()
            }),
            lockdown: lockdown.and_then(active_lockdown).map(str::to_string),
        }
    }

    /// Why BPF LSM cannot be used, when these facts alone decide it: no
    /// securityfs, or `bpf` not in the active list. `None` when only a
    /// load probe can tell.
    pub fn rules_out(&self) -> Option<String> {
        let Some(lsms) = &self.lsms else {
            return Some(format!(
                "securityfs is not mounted (mount -t securityfs securityfs {SECURITYFS})"
            ));
        };
        if lsms.iter().any(|l| l == "bpf") {
            return None;
        }
        Some(format!(
            "`bpf` is not in the active LSM list ({}); boot with lsm=...,bpf",
            lsms.join(",")
        ))
    }

    /// The lockdown mode when one is in force (not `none`).
    pub fn lockdown_in_force(&self) -> Option<&str> {
        self.lockdown.as_deref().filter(|m| *m != "none")
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

    #[test]
    fn the_facts_decide_only_without_securityfs_or_without_bpf_in_the_list() {
        let none = LsmFacts::from_text(None, None);
        assert!(none
            .rules_out()
            .unwrap()
            .contains("securityfs is not mounted"));
        let no_bpf = LsmFacts::from_text(Some("lockdown,capability,landlock\n"), None);
        assert_eq!(
            no_bpf.rules_out().unwrap(),
            "`bpf` is not in the active LSM list (lockdown,capability,landlock); boot with \
             lsm=...,bpf"
        );
        let listed = LsmFacts::from_text(
            Some("lockdown,capability,landlock,bpf\n"),
            Some("none [integrity] confidentiality\n"),
        );
        assert_eq!(listed.rules_out(), None);
        assert_eq!(listed.lockdown_in_force(), Some("integrity"));
        let open = LsmFacts::from_text(Some("bpf"), Some("[none] integrity confidentiality"));
        assert_eq!(open.lockdown_in_force(), None);
    }

    #[test]
    fn a_status_note_reads_back_as_the_answer_it_was_written_from() {
        for a in [
            LsmAvailability::Available,
            LsmAvailability::Unavailable(
                "the kernel refuses to load LSM programs (lockdown: integrity)".into(),
            ),
        ] {
            assert_eq!(LsmAvailability::from_note(&a.note()), Some(a));
        }
        assert_eq!(
            LsmAvailability::Available.note(),
            "bpf-lsm: available on this kernel"
        );
        assert_eq!(
            LsmAvailability::Unavailable("x".into()).note(),
            "bpf-lsm: unavailable: x"
        );
        assert_eq!(LsmAvailability::from_note("took over from a netevd"), None);
    }
}
