//! The tray item: a StatusNotifierItem (`org.kde.StatusNotifierItem`) with a
//! `com.canonical.dbusmenu` menu, served on the session bus with zbus and
//! registered with the StatusNotifierWatcher whenever one is on the bus.
//! Without a watcher (no tray) nothing breaks: the app opens the console.

use std::collections::HashMap;

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use zbus::object_server::SignalEmitter;
use zbus::{interface, Connection};
use zbus::{OwnedObjectPath, OwnedVariant as OwnedValue, Structure, Variant as Value};

/// The item's object path.
pub const ITEM_PATH: &str = "/StatusNotifierItem";
/// The menu's object path.
pub const MENU_PATH: &str = "/MenuBar";
/// The watcher's well-known name.
pub const WATCHER: &str = "org.kde.StatusNotifierWatcher";

/// What the person chose in the tray.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrayAction {
    /// Open the Security console (also a click on the icon).
    Console,
    /// Pause or resume showing prompts.
    TogglePause,
    /// Quit netev-gtk.
    Quit,
}

/// Menu entries: (id, label, action).
const MENU: [(i32, &str, TrayAction); 3] = [
    (1, "Security console", TrayAction::Console),
    (2, "Pause prompts", TrayAction::TogglePause),
    (3, "Quit", TrayAction::Quit),
];

/// What the icon shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Look {
    /// Icon name from the freedesktop icon theme.
    pub icon: String,
    /// Tooltip title.
    pub title: String,
    /// Tooltip text.
    pub text: String,
    /// Prompts wait: the item asks for attention.
    pub attention: bool,
    /// Prompts are paused (the menu's check mark).
    pub paused: bool,
}

/// `(sa(iiay)ss)`: icon name, icon pixmaps, title, text.
type ToolTip = (String, Vec<(i32, i32, Vec<u8>)>, String, String);

struct Item {
    look: Look,
    actions: mpsc::UnboundedSender<TrayAction>,
}

#[interface(name = "org.kde.StatusNotifierItem")]
impl Item {
    #[zbus(property)]
    fn category(&self) -> &str {
        "SystemServices"
    }
    #[zbus(property)]
    fn id(&self) -> &str {
        "netev-gtk"
    }
    #[zbus(property)]
    fn title(&self) -> &str {
        "netev"
    }
    #[zbus(property)]
    fn status(&self) -> &str {
        if self.look.attention {
            "NeedsAttention"
        } else {
            "Active"
        }
    }
    #[zbus(property)]
    fn icon_name(&self) -> &str {
        &self.look.icon
    }
    #[zbus(property)]
    fn attention_icon_name(&self) -> &str {
        "dialog-question"
    }
    #[zbus(property)]
    fn tool_tip(&self) -> ToolTip {
        (
            self.look.icon.clone(),
            Vec::new(),
            self.look.title.clone(),
            self.look.text.clone(),
        )
    }
    #[zbus(property)]
    fn item_is_menu(&self) -> bool {
        false
    }
    #[zbus(property)]
    fn menu(&self) -> OwnedObjectPath {
        OwnedObjectPath::try_from(MENU_PATH).expect("a valid path")
    }
    #[zbus(property)]
    fn window_id(&self) -> i32 {
        0
    }

    fn activate(&self, _x: i32, _y: i32) {
        let _ = self.actions.send(TrayAction::Console);
    }
    fn secondary_activate(&self, _x: i32, _y: i32) {
        let _ = self.actions.send(TrayAction::Console);
    }
    fn context_menu(&self, _x: i32, _y: i32) {}
    fn scroll(&self, _delta: i32, _orientation: &str) {}

    #[zbus(signal)]
    async fn new_icon(emitter: &SignalEmitter<'_>) -> zbus::Result<()>;
    #[zbus(signal)]
    async fn new_tool_tip(emitter: &SignalEmitter<'_>) -> zbus::Result<()>;
    #[zbus(signal)]
    async fn new_status(emitter: &SignalEmitter<'_>, status: &str) -> zbus::Result<()>;
}

struct Menu {
    paused: bool,
    revision: u32,
    actions: mpsc::UnboundedSender<TrayAction>,
}

/// One menu node, D-Bus `(ia{sv}av)`.
type Node = (i32, HashMap<String, OwnedValue>, Vec<OwnedValue>);

impl Menu {
    fn props(&self, id: i32) -> HashMap<String, OwnedValue> {
        let mut p: HashMap<String, OwnedValue> = HashMap::new();
        let mut put = |k: &str, v: Value<'_>| {
            if let Ok(v) = OwnedValue::try_from(v) {
                p.insert(k.to_string(), v);
            }
        };
        if id == 0 {
            put("children-display", Value::from("submenu"));
            return p;
        }
        if let Some((_, label, action)) = MENU.iter().find(|(i, _, _)| *i == id) {
            put("label", Value::from(*label));
            put("enabled", Value::from(true));
            put("visible", Value::from(true));
            if *action == TrayAction::TogglePause {
                put("toggle-type", Value::from("checkmark"));
                put("toggle-state", Value::from(i32::from(self.paused)));
            }
        }
        p
    }

    fn node(&self, id: i32) -> Value<'static> {
        let children: Vec<Value<'static>> = Vec::new();
        Structure::builder()
            .add_field(id)
            .add_field(self.props(id))
            .add_field(children)
            .build()
            .map(Value::from)
            .expect("a menu node")
    }
}

#[interface(name = "com.canonical.dbusmenu")]
impl Menu {
    #[zbus(property)]
    fn version(&self) -> u32 {
        3
    }
    #[zbus(property)]
    fn text_direction(&self) -> &str {
        "ltr"
    }
    #[zbus(property)]
    fn status(&self) -> &str {
        "normal"
    }
    #[zbus(property)]
    fn icon_theme_path(&self) -> Vec<String> {
        Vec::new()
    }

    fn get_layout(
        &self,
        parent_id: i32,
        _recursion_depth: i32,
        _property_names: Vec<String>,
    ) -> (u32, Node) {
        let children = if parent_id == 0 {
            MENU.iter()
                .filter_map(|(id, _, _)| OwnedValue::try_from(self.node(*id)).ok())
                .collect()
        } else {
            Vec::new()
        };
        (self.revision, (parent_id, self.props(parent_id), children))
    }

    fn get_group_properties(
        &self,
        ids: Vec<i32>,
        _property_names: Vec<String>,
    ) -> Vec<(i32, HashMap<String, OwnedValue>)> {
        let ids = if ids.is_empty() {
            MENU.iter().map(|(i, _, _)| *i).collect()
        } else {
            ids
        };
        ids.into_iter().map(|i| (i, self.props(i))).collect()
    }

    fn get_property(&self, id: i32, name: &str) -> zbus::fdo::Result<OwnedValue> {
        self.props(id).remove(name).ok_or_else(|| {
            zbus::fdo::Error::InvalidArgs(format!("no property {name} on item {id}"))
        })
    }

    fn event(&self, id: i32, event_id: &str, _data: Value<'_>, _timestamp: u32) {
        if event_id == "clicked" {
            if let Some((_, _, action)) = MENU.iter().find(|(i, _, _)| *i == id) {
                let _ = self.actions.send(*action);
            }
        }
    }

    fn event_group(&self, events: Vec<(i32, String, OwnedValue, u32)>) -> Vec<i32> {
        for (id, ev, _, _) in &events {
            if ev == "clicked" {
                if let Some((_, _, action)) = MENU.iter().find(|(i, _, _)| i == id) {
                    let _ = self.actions.send(*action);
                }
            }
        }
        Vec::new()
    }

    fn about_to_show(&self, _id: i32) -> bool {
        false
    }

    fn about_to_show_group(&self, _ids: Vec<i32>) -> (Vec<i32>, Vec<i32>) {
        (Vec::new(), Vec::new())
    }

    #[zbus(signal)]
    async fn layout_updated(
        emitter: &SignalEmitter<'_>,
        revision: u32,
        parent: i32,
    ) -> zbus::Result<()>;
}

/// The watcher, as the item calls it.
#[zbus::proxy(
    interface = "org.kde.StatusNotifierWatcher",
    default_service = "org.kde.StatusNotifierWatcher",
    default_path = "/StatusNotifierWatcher"
)]
pub trait StatusNotifierWatcher {
    /// Registers an item by bus name (or object path).
    fn register_status_notifier_item(&self, service: &str) -> zbus::Result<()>;
}

/// A served tray item.
#[derive(Clone)]
pub struct Tray {
    conn: Connection,
}

/// Why the item could not be served.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve the tray item on the session bus: {0}")]
pub struct TrayError(#[from] zbus::Error);

impl Tray {
    /// Serves the item on the session bus (or `address`) and keeps it
    /// registered with the watcher. Returns the actions chosen, and whether
    /// a watcher has the item now (false: there is no tray).
    pub async fn start(
        address: Option<&str>,
        look: Look,
    ) -> Result<
        (
            Tray,
            mpsc::UnboundedReceiver<TrayAction>,
            watch::Receiver<bool>,
        ),
        TrayError,
    > {
        let (tx, rx) = mpsc::unbounded_channel();
        let name = format!("org.kde.StatusNotifierItem-{}-1", std::process::id());
        let builder = match address {
            Some(a) => zbus::connection::Builder::address(a),
            None => zbus::connection::Builder::session(),
        };
        let conn = builder
            .name(name.clone())
            .serve_at(
                ITEM_PATH,
                Item {
                    look: look.clone(),
                    actions: tx.clone(),
                },
            )
            .serve_at(
                MENU_PATH,
                Menu {
                    paused: look.paused,
                    revision: 1,
                    actions: tx,
                },
            )
            .build()
            .await?;
        let (reg_tx, reg_rx) = watch::channel(false);
        let c = conn.clone();
        tokio::spawn(async move {
            let Ok(dbus) = zbus::fdo::DBusProxy::new(&c).await else {
                return;
            };
            let Ok(mut owners) = dbus
                .receive_name_owner_changed_with_args(&[(0, WATCHER)])
                .await
            else {
                return;
            };
            let register = || async {
                let w = StatusNotifierWatcherProxy::new(&c).await?;
                w.register_status_notifier_item(&name).await
            };
            reg_tx.send_replace(register().await.is_ok());
            // a tray that starts (or restarts) later gets the item too
            while let Some(sig) = owners.next().await {
                let up = sig.args().map(|a| a.new_owner.is_some()).unwrap_or(false);
                reg_tx.send_replace(up && register().await.is_ok());
            }
        });
        Ok((Tray { conn }, rx, reg_rx))
    }

    /// Changes what the icon shows, and tells the tray.
    pub async fn set_look(&self, look: Look) -> zbus::Result<()> {
        let server = self.conn.object_server();
        let item = server.interface::<_, Item>(ITEM_PATH).await?;
        let status = if look.attention {
            "NeedsAttention"
        } else {
            "Active"
        };
        let (icon_changed, paused_changed);
        {
            let mut i = item.get_mut().await;
            icon_changed = i.look.icon != look.icon || i.look.attention != look.attention;
            paused_changed = i.look.paused != look.paused;
            i.look = look.clone();
        }
        let em = item.signal_emitter();
        if icon_changed {
            Item::new_icon(em).await?;
            Item::new_status(em, status).await?;
        }
        Item::new_tool_tip(em).await?;
        if paused_changed {
            let menu = server.interface::<_, Menu>(MENU_PATH).await?;
            let rev = {
                let mut m = menu.get_mut().await;
                m.paused = look.paused;
                m.revision += 1;
                m.revision
            };
            Menu::layout_updated(menu.signal_emitter(), rev, 0).await?;
        }
        Ok(())
    }
}
