//! Who may see events: root, and members of the access group.

use nix::unistd::{Group, User};

/// Whether `user` belongs to `group` (primary or supplementary), per the
/// group database: the same source dbus-daemon uses for `<policy group=…>`.
pub fn is_member(user: &User, group: &str) -> bool {
    let Ok(Some(g)) = Group::from_name(group) else {
        return false;
    };
    if user.gid == g.gid || g.mem.iter().any(|m| m == &user.name) {
        return true;
    }
    let Ok(name) = std::ffi::CString::new(user.name.as_bytes()) else {
        return false;
    };
    nix::unistd::getgrouplist(&name, user.gid)
        .map(|groups| groups.contains(&g.gid))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_in_its_primary_group_and_not_in_a_missing_one() {
        let root = User::from_uid(nix::unistd::Uid::from_raw(0))
            .unwrap()
            .unwrap();
        assert!(is_member(&root, "root"));
        assert!(!is_member(&root, "no-such-group-netev-test"));
    }
}
