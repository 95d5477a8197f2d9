//! The D-Bus sides without a display: the tray item registered with a
//! StatusNotifierWatcher (a small one served here, as a tray host would)
//! and its menu; and the daemon states a real private bus gives — netevd
//! not running, the bus lost, the bus back.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use netev_gtk::bus::{BusChoice, Client, Update};
use netev_gtk::state::DaemonState;
use netev_gtk::tray::{Look, Tray, TrayAction, ITEM_PATH, MENU_PATH};
use netev_testsupport::dbus::{busconfig, DbusDaemon};
use zbus::Proxy;

/// A private session-style dbus-daemon on a socket in `dir`; killed on
/// drop. Its address is the socket path, without the guid, so that it
/// names a bus started again in the same dir too.
fn start_bus(dir: &std::path::Path) -> (DbusDaemon, String) {
    let bus = DbusDaemon::start(
        dir,
        &busconfig(
            r#"<type>session</type><listen>@LISTEN@</listen><auth>EXTERNAL</auth>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy>"#,
        ),
    );
    let addr = bus.socket_address();
    (bus, addr)
}

/// A dbusmenu node, `(ia{sv}av)`.
type Node = (
    i32,
    std::collections::HashMap<String, zbus::OwnedVariant>,
    Vec<zbus::OwnedVariant>,
);

struct Watcher(Arc<Mutex<Vec<String>>>);

#[zbus::interface(name = "org.kde.StatusNotifierWatcher")]
impl Watcher {
    fn register_status_notifier_item(&self, service: &str) {
        self.0.lock().unwrap().push(service.to_string());
    }
    #[zbus(property)]
    fn is_status_notifier_host_registered(&self) -> bool {
        true
    }
}

/// Every wait is bounded: a hang fails with what was awaited.
async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("waited 30 s in vain for {what}"))
}

fn look(icon: &str, paused: bool) -> Look {
    Look {
        icon: icon.into(),
        title: "netev".into(),
        text: "netevd is running".into(),
        attention: false,
        paused,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tray_item_registers_shows_the_state_and_its_menu_acts() {
    let dir = tempfile::tempdir().unwrap();
    let (_bus, addr) = start_bus(dir.path());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let _watcher = zbus::connection::Builder::address(addr.as_str())
        .name("org.kde.StatusNotifierWatcher")
        .serve_at("/StatusNotifierWatcher", Watcher(seen.clone()))
        .build()
        .await
        .unwrap();
    let (tray, mut actions, mut registered) =
        Tray::start(Some(&addr), look("security-high", false))
            .await
            .unwrap();
    bounded("the item's registration", registered.wait_for(|r| *r))
        .await
        .unwrap();
    let name = seen.lock().unwrap()[0].clone();

    let host = zbus::connection::Builder::address(addr.as_str())
        .build()
        .await
        .unwrap();
    // A tray host reads properties again on NewIcon: no cached values.
    let item: Proxy = zbus::proxy::Builder::new(&host)
        .destination(name.as_str())
        .path(ITEM_PATH)
        .interface("org.kde.StatusNotifierItem")
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap();
    let icon: String = item.get_property("IconName").await.unwrap();
    assert_eq!(icon, "security-high");
    tray.set_look(look("network-error", true)).await.unwrap();
    let icon: String = item.get_property("IconName").await.unwrap();
    assert_eq!(icon, "network-error");

    let menu = Proxy::new(&host, name.as_str(), MENU_PATH, "com.canonical.dbusmenu")
        .await
        .unwrap();
    let (_rev, (_id, _props, children)): (u32, Node) = menu
        .call("GetLayout", &(0i32, -1i32, Vec::<String>::new()))
        .await
        .unwrap();
    let text = format!("{children:?}");
    for label in ["Security console", "Pause prompts", "Quit"] {
        assert!(text.contains(label), "{text}");
    }
    let _: () = menu
        .call("Event", &(2i32, "clicked", zbus::Variant::from(0i32), 0u32))
        .await
        .unwrap();
    assert_eq!(
        bounded("the menu's action", actions.recv()).await,
        Some(TrayAction::TogglePause)
    );
    let _: () = item.call("Activate", &(0i32, 0i32)).await.unwrap();
    assert_eq!(
        bounded("the click's action", actions.recv()).await,
        Some(TrayAction::Console)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_daemon_then_the_bus_lost_then_back_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let (bus, addr) = start_bus(dir.path());
    let (_client, mut updates) = Client::start(
        tokio::runtime::Handle::current(),
        BusChoice::Address(addr.clone()),
    );
    let mut next_state = async || loop {
        match updates.recv().await {
            Some(Update::State(s)) if s != DaemonState::Connecting => return s,
            Some(_) => continue,
            None => panic!("the bus task stopped"),
        }
    };
    let s = bounded("a state", next_state()).await;
    assert!(matches!(s, DaemonState::NotRunning { .. }), "{s:?}");
    assert!(s.advice().unwrap().contains("sudo netevd"));
    drop(bus);
    let s = bounded("the bus lost", next_state()).await;
    assert!(matches!(s, DaemonState::BusLost { .. }), "{s:?}");
    let (_bus, _) = start_bus(dir.path());
    let s = loop {
        match bounded("the bus back", next_state()).await {
            DaemonState::BusLost { .. } => continue, // retried before it was up
            s => break s,
        }
    };
    assert!(matches!(s, DaemonState::NotRunning { .. }), "{s:?}");
}
