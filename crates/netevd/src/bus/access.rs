//! Who may call what: root or the access group for everything but
//! GetStatus and Ask; an unprivileged `Ask` only about the caller's own
//! processes. Checked on the caller's credentials as the bus daemon reports
//! them, never on anything the caller says.

use netev_event::Event;
use zbus::message::Header;
use zbus::names::BusName;
use zbus::{fdo, Connection};

/// Checks that the caller is root or in the access group.
pub(crate) async fn authorize(
    access_group: &str,
    conn: &Connection,
    hdr: &Header<'_>,
    what: &str,
) -> fdo::Result<()> {
    let sender = hdr.sender().ok_or_else(|| {
        fdo::Error::AccessDenied("a call without a sender is not accepted".into())
    })?;
    let dbus = fdo::DBusProxy::new(conn).await?;
    let uid = dbus
        .get_connection_unix_user(BusName::Unique(sender.clone()))
        .await?;
    if uid == 0 {
        return Ok(());
    }
    let group = access_group;
    // the group database, as dbus-daemon reads it for `<policy group=…>`
    let user = netev_host::users::User::from_uid(uid);
    let member = user.as_ref().is_some_and(|u| u.is_member(group));
    if member {
        return Ok(());
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
