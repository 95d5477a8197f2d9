//! Who may see events: root, and members of the access group.

use nix::unistd::User;

/// Whether `user` belongs to `group` (primary or supplementary), per the
/// group database: the same source dbus-daemon uses for `<policy group=…>`.
/// The check is netev-host's ([`netev_host::users::User::is_member`]); this
/// takes the nix user the bus code has.
pub fn is_member(user: &User, group: &str) -> bool {
    netev_host::users::User::from(user.clone()).is_member(group)
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
