//! Who may call what: root or the access group for everything but
//! GetStatus and Ask; an unprivileged `Ask` only about the caller's own
//! processes; a change (rules, policy, answers) by a non-root member also
//! authorized by polkit (`polkit.rs`). Checked on the caller's credentials
//! as the bus daemon reports them, never on anything the caller says.

use netev_event::Event;
use zbus::message::{Flags, Header};
use zbus::names::BusName;
use zbus::{fdo, Connection};

pub(crate) use super::polkit::Action;

/// Checks that the caller is root or in the access group.
pub(crate) async fn authorize(
    access_group: &str,
    conn: &Connection,
    hdr: &Header<'_>,
    what: &str,
) -> fdo::Result<()> {
    member_uid(access_group, conn, hdr, what).await.map(|_| ())
}

/// Checks a call that changes something: root, or a member of the access
/// group whom polkit authorizes for `action` (interactively only if the
/// caller's message allows interactive authorization).
pub(crate) async fn authorize_change(
    access_group: &str,
    conn: &Connection,
    hdr: &Header<'_>,
    what: &str,
    action: Action,
) -> fdo::Result<()> {
    if member_uid(access_group, conn, hdr, what).await? == 0 {
        return Ok(());
    }
    let sender = hdr
        .sender()
        .expect("member_uid refuses calls without a sender");
    let interactive = hdr
        .primary()
        .flags()
        .contains(Flags::ALLOW_INTERACTIVE_AUTH);
    super::polkit::check(conn, sender, action, what, interactive).await?;
    // Authentication can take minutes. A caller gone meanwhile gets no
    // reply, so nothing is done in its name (its unique name is never
    // handed to another connection).
    let dbus = fdo::DBusProxy::new(conn).await?;
    if !dbus.name_has_owner(BusName::Unique(sender.clone())).await? {
        return Err(fdo::Error::AccessDenied(format!(
            "{what}: the caller left the bus while polkit authorized it; nothing was changed"
        )));
    }
    Ok(())
}

/// The caller's uid if it is root or in the access group.
async fn member_uid(
    access_group: &str,
    conn: &Connection,
    hdr: &Header<'_>,
    what: &str,
) -> fdo::Result<u32> {
    let sender = hdr.sender().ok_or_else(|| {
        fdo::Error::AccessDenied("a call without a sender is not accepted".into())
    })?;
    let dbus = fdo::DBusProxy::new(conn).await?;
    let uid = dbus
        .get_connection_unix_user(BusName::Unique(sender.clone()))
        .await?;
    if uid == 0 {
        return Ok(0);
    }
    let group = access_group;
    // the group database, as dbus-daemon reads it for `<policy group=…>`
    let user = netev_host::users::User::from_uid(uid);
    let member = user.as_ref().is_some_and(|u| u.is_member(group));
    if member {
        return Ok(uid);
    }
    let name = user.map(|u| u.name).unwrap_or_else(|| format!("uid {uid}"));
    Err(fdo::Error::AccessDenied(format!(
        "{what} needs root or membership of the group '{group}'; {name} (uid {uid}) is not a member. \
         Add it with `usermod -aG {group} {name}` and log in again."
    )))
}

/// An unprivileged caller may ask only about its own processes: the event
/// must name the caller's uid and a live process whose real uid that is.
pub(crate) fn own_process(uid: u32, ev: &Event) -> fdo::Result<()> {
    let refuse = |why: String| {
        Err(fdo::Error::AccessDenied(format!(
            "asking about pid {} needs root or membership of the access group, or the process \
             must be your own: {why}",
            ev.pid
        )))
    };
    if ev.uid != uid {
        return refuse(format!("the event names uid {}, you are uid {uid}", ev.uid));
    }
    let Some(status) = netev_host::proc_status::ProcStatus::read(ev.pid) else {
        return refuse("no such process".into());
    };
    let real = status.real_uid();
    match real {
        Some(r) if r == uid => Ok(()),
        Some(r) => refuse(format!("it runs as uid {r}")),
        None => refuse("its owner cannot be read".into()),
    }
}
