//! The "Security console" window: a banner with netevd's state, and pages
//! for the rules (sort, filter, enable toggle, edit, delete, import,
//! export), the live events (pause, filters, a chart; a row opens "Create a
//! rule"), the prompts waiting, and the status. The window only shows and
//! asks: what a person does goes out as a [`ConsoleAction`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;

use gtk::prelude::*;
use gtk::{gio, glib};
use netev_dbus::{WireEvent, WireStatus};

use crate::events_model::{EventFilter, EventsModel, RateChart};
use crate::prompts::Pending;
use crate::rules_model::{RuleColumn, RuleRow};
use crate::state::{status_lines, DaemonState};

/// What a person asked the console to do.
#[derive(Debug, Clone, PartialEq)]
pub enum ConsoleAction {
    /// Enable or disable a rule.
    SetEnabled(u32, bool),
    /// Open the dialog on a rule (its listed fields).
    Edit(HashMap<String, String>),
    /// Remove rules (after the person confirmed).
    Delete(Vec<u32>),
    /// Open the dialog for a new rule.
    NewRule,
    /// Import a rules file (added to the rules).
    Import(PathBuf),
    /// Export the rules to a file.
    Export(PathBuf),
    /// Open the dialog pre-filled from an event.
    RuleFromEvent(Box<WireEvent>),
    /// Answer a prompt: allow or deny with the default duration.
    Answer(u64, &'static str),
    /// Open the dialog for a prompt.
    Process(u64),
    /// Pause or resume prompts.
    PausePrompts(bool),
}

type ActionFn = Rc<dyn Fn(ConsoleAction)>;
/// A live-events column: title, whether it takes spare width, its text.
type EventColumn = (&'static str, bool, Box<dyn Fn(&WireEvent) -> String>);

struct Inner {
    on_action: ActionFn,
    headline: gtk::Label,
    advice: gtk::Label,
    banner: gtk::Box,
    message: gtk::Label,
    // rules
    rules_store: gio::ListStore,
    rules_filter: gtk::CustomFilter,
    rules_sorted: gtk::SortListModel,
    rules_selection: gtk::MultiSelection,
    rules_view: gtk::ColumnView,
    rules_columns: Vec<(RuleColumn, gtk::ColumnViewColumn)>,
    rule_filter_text: RefCell<String>,
    rule_search: gtk::SearchEntry,
    // events
    events: RefCell<EventsModel>,
    event_filter: RefCell<EventFilter>,
    events_store: gio::ListStore,
    events_view: gtk::ColumnView,
    pause: gtk::ToggleButton,
    held: gtk::Label,
    chart: Rc<RefCell<RateChart>>,
    chart_area: gtk::DrawingArea,
    // prompts
    prompts_list: gtk::ListBox,
    pause_prompts: gtk::CheckButton,
    // status
    status_grid: gtk::Grid,
    notebook: gtk::Notebook,
}

/// The console window.
#[derive(Clone)]
pub struct Console {
    /// The window.
    pub window: gtk::Window,
    inner: Rc<Inner>,
}

const CSS: &str = "
.netev-banner { padding: 8px 12px; }
.netev-banner.bad { background-color: #f8d7da; }
.netev-banner.good { background-color: #e2f0e5; }
.netev-banner.busy { background-color: #fff3cd; }
label.error { color: #b00020; }
";

fn text_column<T: 'static>(
    title: &str,
    expand: bool,
    text: impl Fn(&T) -> String + 'static,
) -> gtk::ColumnViewColumn {
    let factory = gtk::SignalListItemFactory::new();
    factory.connect_setup(|_, item| {
        let item = item.downcast_ref::<gtk::ListItem>().expect("a list item");
        let label = gtk::Label::builder()
            .xalign(0.0)
            .ellipsize(gtk::pango::EllipsizeMode::End)
            .build();
        item.set_child(Some(&label));
    });
    factory.connect_bind(move |_, item| {
        let item = item.downcast_ref::<gtk::ListItem>().expect("a list item");
        let (Some(obj), Some(label)) = (
            item.item().and_downcast::<glib::BoxedAnyObject>(),
            item.child().and_downcast::<gtk::Label>(),
        ) else {
            return;
        };
        let t = text(&obj.borrow::<T>());
        label.set_tooltip_text(Some(&t));
        label.set_text(&t);
    });
    let col = gtk::ColumnViewColumn::new(Some(title), Some(factory));
    col.set_resizable(true);
    col.set_expand(expand);
    col
}

fn row_of(o: &glib::Object) -> std::cell::Ref<'_, RuleRow> {
    o.downcast_ref::<glib::BoxedAnyObject>()
        .expect("a boxed rule row")
        .borrow::<RuleRow>()
}

impl Console {
    /// A console window; `on_action` receives what the person does.
    pub fn new(
        app: Option<&gtk::Application>,
        on_action: impl Fn(ConsoleAction) + 'static,
    ) -> Console {
        let provider = gtk::CssProvider::new();
        provider.load_from_data(CSS);
        if let Some(display) = gtk::gdk::Display::default() {
            gtk::style_context_add_provider_for_display(
                &display,
                &provider,
                gtk::STYLE_PROVIDER_PRIORITY_APPLICATION,
            );
        }
        let window = gtk::Window::builder()
            .title("netev — Security console")
            .default_width(1000)
            .default_height(640)
            .build();
        if let Some(app) = app {
            window.set_application(Some(app));
        }
        let on_action: ActionFn = Rc::new(on_action);

        // banner
        let headline = gtk::Label::builder()
            .xalign(0.0)
            .css_classes(["heading"])
            .build();
        let advice = gtk::Label::builder()
            .xalign(0.0)
            .wrap(true)
            .selectable(true)
            .visible(false)
            .build();
        let banner = gtk::Box::builder()
            .orientation(gtk::Orientation::Vertical)
            .css_classes(["netev-banner", "busy"])
            .build();
        banner.append(&headline);
        banner.append(&advice);
        let message = gtk::Label::builder()
            .xalign(0.0)
            .wrap(true)
            .selectable(true)
            .margin_start(12)
            .margin_end(12)
            .visible(false)
            .build();

        // rules page
        let rules_store = gio::ListStore::new::<glib::BoxedAnyObject>();
        let rule_filter_text = RefCell::new(String::new());
        let rules_filter = gtk::CustomFilter::new(|_| true);
        let filtered =
            gtk::FilterListModel::new(Some(rules_store.clone()), Some(rules_filter.clone()));
        let rules_view = gtk::ColumnView::new(None::<gtk::MultiSelection>);
        rules_view.set_show_column_separators(true);
        let rules_sorted = gtk::SortListModel::new(Some(filtered), rules_view.sorter());
        let rules_selection = gtk::MultiSelection::new(Some(rules_sorted.clone()));
        rules_view.set_model(Some(&rules_selection));
        let mut rules_columns = Vec::new();
        for col in RuleColumn::ALL {
            let c = if col == RuleColumn::Enabled {
                let factory = gtk::SignalListItemFactory::new();
                let act = on_action.clone();
                factory.connect_setup(move |_, item| {
                    let item = item.downcast_ref::<gtk::ListItem>().expect("a list item");
                    let check = gtk::CheckButton::new();
                    let li = item.clone();
                    let act = act.clone();
                    check.connect_toggled(move |c| {
                        let Some(obj) = li.item() else { return };
                        let row = row_of(&obj);
                        // binding sets the state from the row: only a click differs
                        if row.enabled != c.is_active() {
                            act(ConsoleAction::SetEnabled(row.id, c.is_active()));
                        }
                    });
                    item.set_child(Some(&check));
                });
                factory.connect_bind(|_, item| {
                    let item = item.downcast_ref::<gtk::ListItem>().expect("a list item");
                    let (Some(obj), Some(check)) =
                        (item.item(), item.child().and_downcast::<gtk::CheckButton>())
                    else {
                        return;
                    };
                    let enabled = row_of(&obj).enabled;
                    check.set_active(enabled);
                });
                gtk::ColumnViewColumn::new(Some(col.title()), Some(factory))
            } else {
                text_column::<RuleRow>(
                    col.title(),
                    matches!(
                        col,
                        RuleColumn::Exe | RuleColumn::Comment | RuleColumn::Dest
                    ),
                    move |r| col.text(r),
                )
            };
            c.set_sorter(Some(&gtk::CustomSorter::new(move |a, b| {
                col.compare(&row_of(a), &row_of(b)).into()
            })));
            rules_view.append_column(&c);
            rules_columns.push((col, c));
        }
        let rule_search = gtk::SearchEntry::builder()
            .placeholder_text("Filter rules (program, address, action, comment…)")
            .hexpand(true)
            .build();
        let rules_toolbar = gtk::Box::new(gtk::Orientation::Horizontal, 6);
        rules_toolbar.append(&rule_search);
        let new_b = gtk::Button::with_label("New…");
        let edit_b = gtk::Button::with_label("Edit…");
        let del_b = gtk::Button::with_label("Delete");
        let imp_b = gtk::Button::with_label("Import…");
        let exp_b = gtk::Button::with_label("Export…");
        for b in [&new_b, &edit_b, &del_b, &imp_b, &exp_b] {
            rules_toolbar.append(b);
        }
        let rules_page = page(&rules_toolbar, &rules_view);

        // events page
        let events_store = gio::ListStore::new::<glib::BoxedAnyObject>();
        let events_sel = gtk::SingleSelection::new(Some(events_store.clone()));
        let events_view = gtk::ColumnView::new(Some(events_sel));
        events_view.set_show_column_separators(true);
        type Ev = WireEvent;
        let cols: Vec<EventColumn> = vec![
            (
                "Time",
                false,
                Box::new(|e: &Ev| {
                    chrono::DateTime::from_timestamp_nanos(e.ts_ns)
                        .with_timezone(&chrono::Local)
                        .format("%H:%M:%S%.3f")
                        .to_string()
                }),
            ),
            ("Program", true, Box::new(crate::prompts::program)),
            ("Pid", false, Box::new(|e: &Ev| e.pid.to_string())),
            ("User", false, Box::new(crate::prompts::user)),
            ("Op", false, Box::new(|e: &Ev| e.op.clone())),
            (
                "Destination",
                true,
                Box::new(|e: &Ev| {
                    let (a, p) = crate::form::event_place(e);
                    format!(
                        "{} {}",
                        if e.proto.is_empty() {
                            &e.family
                        } else {
                            &e.proto
                        },
                        crate::prompts::place(&a, p)
                    )
                }),
            ),
            ("Verdict", false, Box::new(|e: &Ev| e.verdict.clone())),
            (
                "Rule",
                false,
                Box::new(|e: &Ev| {
                    if e.rule == 0 {
                        String::new()
                    } else {
                        e.rule.to_string()
                    }
                }),
            ),
        ];
        for (title, expand, f) in cols {
            events_view.append_column(&text_column::<WireEvent>(title, expand, f));
        }
        let act = on_action.clone();
        events_view.connect_activate(move |view, pos| {
            let Some(obj) = view
                .model()
                .and_then(|m| m.item(pos))
                .and_downcast::<glib::BoxedAnyObject>()
            else {
                return;
            };
            let ev = obj.borrow::<WireEvent>().clone();
            act(ConsoleAction::RuleFromEvent(Box::new(ev)));
        });
        let pause = gtk::ToggleButton::with_label("Pause");
        let exe_filter = gtk::SearchEntry::builder()
            .placeholder_text("Program")
            .build();
        let ops: Vec<&str> = std::iter::once("any op")
            .chain(netev_event::Op::ALL.iter().map(|o| o.name()))
            .collect();
        let op_filter = gtk::DropDown::from_strings(&ops);
        let verdict_filter =
            gtk::DropDown::from_strings(&["any verdict", "allow", "deny", "observe"]);
        let held = gtk::Label::new(None);
        let rule_b = gtk::Button::with_label("Create a rule…");
        let ev_toolbar = gtk::Box::new(gtk::Orientation::Horizontal, 6);
        for w in [
            pause.upcast_ref::<gtk::Widget>(),
            exe_filter.upcast_ref(),
            op_filter.upcast_ref(),
            verdict_filter.upcast_ref(),
            held.upcast_ref(),
            rule_b.upcast_ref(),
        ] {
            ev_toolbar.append(w);
        }
        let chart = Rc::new(RefCell::new(RateChart::new()));
        let chart_area = crate::chart::chart_area(chart.clone());
        let ev_top = gtk::Box::new(gtk::Orientation::Vertical, 6);
        ev_top.append(&chart_area);
        ev_top.append(&ev_toolbar);
        let events_page = page(&ev_top, &events_view);

        // prompts page
        let prompts_list = gtk::ListBox::new();
        prompts_list.set_selection_mode(gtk::SelectionMode::None);
        prompts_list.set_placeholder(Some(&gtk::Label::new(Some("No prompt is waiting."))));
        let pause_prompts =
            gtk::CheckButton::with_label("Pause prompts (no notifications; prompts wait here)");
        let prompts_page = page(&pause_prompts, &prompts_list);

        // status page
        let status_grid = gtk::Grid::builder()
            .row_spacing(6)
            .column_spacing(18)
            .margin_top(12)
            .margin_start(12)
            .build();
        let notebook = gtk::Notebook::new();
        notebook.append_page(&rules_page, Some(&gtk::Label::new(Some("Rules"))));
        notebook.append_page(&events_page, Some(&gtk::Label::new(Some("Live events"))));
        notebook.append_page(&prompts_page, Some(&gtk::Label::new(Some("Prompts"))));
        notebook.append_page(
            &gtk::ScrolledWindow::builder().child(&status_grid).build(),
            Some(&gtk::Label::new(Some("Status"))),
        );
        notebook.set_vexpand(true);
        let body = gtk::Box::new(gtk::Orientation::Vertical, 6);
        body.append(&banner);
        body.append(&message);
        body.append(&notebook);
        window.set_child(Some(&body));

        let c = Console {
            window,
            inner: Rc::new(Inner {
                on_action,
                headline,
                advice,
                banner,
                message,
                rules_store,
                rules_filter,
                rules_sorted,
                rules_selection,
                rules_view,
                rules_columns,
                rule_filter_text,
                rule_search,
                events: RefCell::new(EventsModel::new()),
                event_filter: RefCell::new(EventFilter::default()),
                events_store,
                events_view,
                pause,
                held,
                chart,
                chart_area,
                prompts_list,
                pause_prompts,
                status_grid,
                notebook,
            }),
        };
        // the filter reads the console's text
        let weak = Rc::downgrade(&c.inner);
        c.inner.rules_filter.set_filter_func(move |o| {
            weak.upgrade()
                .map(|i| row_of(o).matches(&i.rule_filter_text.borrow()))
                .unwrap_or(true)
        });
        let me = c.clone();
        c.inner
            .rule_search
            .connect_search_changed(move |e| me.set_rule_filter(&e.text()));
        c.sort_rules_by(RuleColumn::Id, true);
        let me = c.clone();
        new_b.connect_clicked(move |_| (me.inner.on_action)(ConsoleAction::NewRule));
        let me = c.clone();
        edit_b.connect_clicked(move |_| {
            if let Some(r) = me.selected_rules().first() {
                (me.inner.on_action)(ConsoleAction::Edit(r.fields.clone()));
            }
        });
        let me = c.clone();
        c.inner.rules_view.connect_activate(move |_, pos| {
            if let Some(o) = me.inner.rules_sorted.item(pos) {
                let fields = row_of(&o).fields.clone();
                (me.inner.on_action)(ConsoleAction::Edit(fields));
            }
        });
        let me = c.clone();
        del_b.connect_clicked(move |_| me.confirm_delete());
        let me = c.clone();
        imp_b.connect_clicked(move |_| me.choose_file(false));
        let me = c.clone();
        exp_b.connect_clicked(move |_| me.choose_file(true));
        let me = c.clone();
        c.inner
            .pause
            .connect_toggled(move |b| me.set_events_paused(b.is_active()));
        let me = c.clone();
        exe_filter.connect_search_changed(move |e| {
            me.inner.event_filter.borrow_mut().exe = e.text().to_string();
            me.refill_events();
        });
        let me = c.clone();
        op_filter.connect_selected_notify(move |d| {
            me.inner.event_filter.borrow_mut().op = if d.selected() == 0 {
                String::new()
            } else {
                netev_event::Op::ALL[d.selected() as usize - 1]
                    .name()
                    .to_string()
            };
            me.refill_events();
        });
        let me = c.clone();
        verdict_filter.connect_selected_notify(move |d| {
            me.inner.event_filter.borrow_mut().verdict =
                ["", "allow", "deny", "observe"][(d.selected() as usize).min(3)].to_string();
            me.refill_events();
        });
        let me = c.clone();
        rule_b.connect_clicked(move |_| {
            let sel = me
                .inner
                .events_view
                .model()
                .and_downcast::<gtk::SingleSelection>()
                .and_then(|s| s.selected_item())
                .and_downcast::<glib::BoxedAnyObject>();
            if let Some(o) = sel {
                let ev = o.borrow::<WireEvent>().clone();
                (me.inner.on_action)(ConsoleAction::RuleFromEvent(Box::new(ev)));
            }
        });
        let me = c.clone();
        c.inner.pause_prompts.connect_toggled(move |b| {
            (me.inner.on_action)(ConsoleAction::PausePrompts(b.is_active()))
        });
        // the chart moves with the clock while the window is open
        let area = c.inner.chart_area.downgrade();
        glib::timeout_add_seconds_local(1, move || match area.upgrade() {
            Some(a) => {
                a.queue_draw();
                glib::ControlFlow::Continue
            }
            None => glib::ControlFlow::Break,
        });
        c
    }

    /// Shows netevd's state in the banner (with what to do about trouble).
    pub fn set_state(&self, state: &DaemonState) {
        let i = &self.inner;
        i.headline.set_text(&state.headline());
        match state.advice() {
            Some(a) => {
                i.advice.set_text(&a);
                i.advice.set_visible(true);
            }
            None => i.advice.set_visible(false),
        }
        for c in ["good", "bad", "busy"] {
            i.banner.remove_css_class(c);
        }
        i.banner.add_css_class(match state {
            DaemonState::Running { .. } => "good",
            DaemonState::Connecting | DaemonState::BusLost { .. } => "busy",
            _ => "bad",
        });
    }

    /// The banner's text: headline, then advice.
    pub fn banner_text(&self) -> String {
        let i = &self.inner;
        if i.advice.get_visible() {
            format!("{}\n{}", i.headline.text(), i.advice.text())
        } else {
            i.headline.text().to_string()
        }
    }

    /// Shows a message (a refused call, an import's outcome) under the banner.
    pub fn show_message(&self, text: &str, error: bool) {
        let m = &self.inner.message;
        m.set_text(text);
        m.set_visible(!text.is_empty());
        if error {
            m.add_css_class("error");
        } else {
            m.remove_css_class("error");
        }
    }

    /// The message shown under the banner.
    pub fn message(&self) -> String {
        self.inner.message.text().to_string()
    }

    /// Replaces the rules (from `ListRules`).
    pub fn set_rules(&self, rules: &[HashMap<String, String>]) {
        let objs: Vec<glib::BoxedAnyObject> = rules
            .iter()
            .map(|f| glib::BoxedAnyObject::new(RuleRow::from_fields(f.clone())))
            .collect();
        let store = &self.inner.rules_store;
        store.splice(0, store.n_items(), &objs);
    }

    /// The rules as the table shows them now: filtered and sorted.
    pub fn visible_rules(&self) -> Vec<RuleRow> {
        let m = &self.inner.rules_sorted;
        (0..m.n_items())
            .filter_map(|i| m.item(i))
            .map(|o| row_of(&o).clone())
            .collect()
    }

    /// Filters the rules table (as typing in its search box does).
    pub fn set_rule_filter(&self, text: &str) {
        if self.inner.rule_search.text() != text {
            self.inner.rule_search.set_text(text);
        }
        *self.inner.rule_filter_text.borrow_mut() = text.to_string();
        self.inner
            .rules_filter
            .changed(gtk::FilterChange::Different);
    }

    /// Sorts the rules table by a column (as clicking its header does).
    pub fn sort_rules_by(&self, col: RuleColumn, ascending: bool) {
        if let Some((_, c)) = self.inner.rules_columns.iter().find(|(k, _)| *k == col) {
            self.inner.rules_view.sort_by_column(
                Some(c),
                if ascending {
                    gtk::SortType::Ascending
                } else {
                    gtk::SortType::Descending
                },
            );
        }
    }

    /// Selects rows of the rules table by position (as clicking does).
    pub fn select_rules(&self, positions: &[u32]) {
        let s = &self.inner.rules_selection;
        s.unselect_all();
        for p in positions {
            s.select_item(*p, false);
        }
    }

    /// The selected rules.
    pub fn selected_rules(&self) -> Vec<RuleRow> {
        let s = &self.inner.rules_selection;
        (0..s.n_items())
            .filter(|i| s.is_selected(*i))
            .filter_map(|i| s.item(i))
            .map(|o| row_of(&o).clone())
            .collect()
    }

    /// Clicks the enable toggle of the rule at a position.
    pub fn toggle_rule(&self, pos: u32) {
        if let Some(o) = self.inner.rules_sorted.item(pos) {
            let r = row_of(&o);
            (self.inner.on_action)(ConsoleAction::SetEnabled(r.id, !r.enabled));
        }
    }

    fn confirm_delete(&self) {
        let rows = self.selected_rules();
        if rows.is_empty() {
            self.show_message("Select the rules to delete first.", false);
            return;
        }
        let ids: Vec<u32> = rows.iter().map(|r| r.id).collect();
        let d = gtk::MessageDialog::builder()
            .transient_for(&self.window)
            .modal(true)
            .message_type(gtk::MessageType::Question)
            .buttons(gtk::ButtonsType::OkCancel)
            .text(format!("Delete {} rule(s)?", ids.len()))
            .secondary_text(
                rows.iter()
                    .map(|r| format!("{}: {} {} {}", r.id, r.action, r.exe, r.dest))
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
            .build();
        let act = self.inner.on_action.clone();
        d.connect_response(move |d, resp| {
            if resp == gtk::ResponseType::Ok {
                act(ConsoleAction::Delete(ids.clone()));
            }
            d.close();
        });
        d.present();
    }

    fn choose_file(&self, save: bool) {
        let chooser = gtk::FileChooserNative::new(
            Some(if save { "Export rules" } else { "Import rules" }),
            Some(&self.window),
            if save {
                gtk::FileChooserAction::Save
            } else {
                gtk::FileChooserAction::Open
            },
            Some(if save { "Export" } else { "Import" }),
            Some("Cancel"),
        );
        if save {
            chooser.set_current_name("rules.toml");
        }
        let act = self.inner.on_action.clone();
        chooser.connect_response(move |c, resp| {
            if resp == gtk::ResponseType::Accept {
                if let Some(path) = c.file().and_then(|f| f.path()) {
                    act(if save {
                        ConsoleAction::Export(path)
                    } else {
                        ConsoleAction::Import(path)
                    });
                }
            }
        });
        chooser.show();
        // the chooser must live until it answers
        unsafe { self.window.set_data("netev-chooser", chooser) };
    }

    /// Takes a batch of live events (the chart counts them even while the
    /// view is paused).
    pub fn push_events(&self, batch: &[WireEvent], lost: u64) {
        let i = &self.inner;
        i.chart.borrow_mut().add(batch);
        let moved = i.events.borrow_mut().push(batch, lost);
        if moved {
            let f = i.event_filter.borrow();
            let add: Vec<glib::BoxedAnyObject> = batch
                .iter()
                .filter(|e| f.keeps(e))
                .map(|e| glib::BoxedAnyObject::new(e.clone()))
                .collect();
            i.events_store.extend_from_slice(&add);
            let n = i.events_store.n_items();
            let max = crate::events_model::MAX_ROWS as u32;
            if n > max {
                i.events_store
                    .splice(0, n - max, &[] as &[glib::BoxedAnyObject]);
            }
        }
        self.update_held();
    }

    fn update_held(&self) {
        let i = &self.inner;
        let m = i.events.borrow();
        let mut t = Vec::new();
        if m.paused() {
            t.push(format!("{} new while paused", m.held()));
        }
        if m.lost() > 0 {
            t.push(format!("{} not received (too slow)", m.lost()));
        }
        i.held.set_text(&t.join("; "));
    }

    fn refill_events(&self) {
        let i = &self.inner;
        let objs: Vec<glib::BoxedAnyObject> = i
            .events
            .borrow()
            .visible(&i.event_filter.borrow())
            .into_iter()
            .map(|e| glib::BoxedAnyObject::new(e.clone()))
            .collect();
        i.events_store.splice(0, i.events_store.n_items(), &objs);
    }

    /// Pauses or resumes the live view (as its Pause button does).
    pub fn set_events_paused(&self, paused: bool) {
        let i = &self.inner;
        if i.pause.is_active() != paused {
            i.pause.set_active(paused);
            return; // the toggle handler comes back here
        }
        i.events.borrow_mut().set_paused(paused);
        if !paused {
            self.refill_events();
        }
        self.update_held();
    }

    /// Sets the live view's filter (as its boxes do).
    pub fn set_event_filter(&self, f: EventFilter) {
        *self.inner.event_filter.borrow_mut() = f;
        self.refill_events();
    }

    /// The live events the view shows now, oldest first.
    pub fn visible_events(&self) -> Vec<WireEvent> {
        let s = &self.inner.events_store;
        (0..s.n_items())
            .filter_map(|i| s.item(i).and_downcast::<glib::BoxedAnyObject>())
            .map(|o| o.borrow::<WireEvent>().clone())
            .collect()
    }

    /// Events per second by verdict for the last minute (what the chart draws).
    pub fn chart_series(&self, now: i64) -> Vec<[u64; 3]> {
        self.inner.chart.borrow().series(now)
    }

    /// Shows the status page.
    pub fn set_status(&self, s: &WireStatus) {
        let g = &self.inner.status_grid;
        while let Some(c) = g.first_child() {
            g.remove(&c);
        }
        for (row, (k, v)) in status_lines(s).into_iter().enumerate() {
            let key = gtk::Label::builder()
                .label(k)
                .xalign(1.0)
                .css_classes(["dim-label"])
                .build();
            let val = gtk::Label::builder()
                .label(v)
                .xalign(0.0)
                .wrap(true)
                .selectable(true)
                .build();
            g.attach(&key, 0, row as i32, 1, 1);
            g.attach(&val, 1, row as i32, 1, 1);
        }
    }

    /// The status page as (label, value) lines.
    pub fn status_text(&self) -> Vec<(String, String)> {
        let g = &self.inner.status_grid;
        let mut out = Vec::new();
        let mut row = 0;
        while let (Some(k), Some(v)) = (
            g.child_at(0, row).and_downcast::<gtk::Label>(),
            g.child_at(1, row).and_downcast::<gtk::Label>(),
        ) {
            out.push((k.text().to_string(), v.text().to_string()));
            row += 1;
        }
        out
    }

    /// Shows the prompts waiting, each with Allow, Deny and Process….
    pub fn set_prompts<'a>(&self, prompts: impl Iterator<Item = &'a Pending>, paused: bool) {
        let i = &self.inner;
        if i.pause_prompts.is_active() != paused {
            i.pause_prompts.set_active(paused);
        }
        while let Some(c) = i.prompts_list.first_child() {
            i.prompts_list.remove(&c);
        }
        let mut n = 0;
        for p in prompts {
            n += 1;
            let row = gtk::Box::new(gtk::Orientation::Horizontal, 6);
            row.set_margin_top(4);
            row.set_margin_bottom(4);
            let l = gtk::Label::builder()
                .label(format!("[{}] {}", p.id, crate::prompts::describe(&p.event)))
                .xalign(0.0)
                .hexpand(true)
                .wrap(true)
                .build();
            row.append(&l);
            for (label, what) in [
                ("Allow", Some("allow")),
                ("Deny", Some("deny")),
                ("Process…", None),
            ] {
                let b = gtk::Button::with_label(label);
                let act = i.on_action.clone();
                let id = p.id;
                b.connect_clicked(move |_| {
                    act(match what {
                        Some(a) => ConsoleAction::Answer(id, a),
                        None => ConsoleAction::Process(id),
                    })
                });
                row.append(&b);
            }
            i.prompts_list.append(&row);
        }
        let title = if n == 0 {
            "Prompts".to_string()
        } else {
            format!("Prompts ({n})")
        };
        if let Some(p) = i.notebook.nth_page(Some(2)) {
            i.notebook.set_tab_label_text(&p, &title);
        }
    }

    /// Shows a page: 0 rules, 1 live events, 2 prompts, 3 status.
    pub fn show_page(&self, n: u32) {
        self.inner.notebook.set_current_page(Some(n));
    }
}

fn page(top: &impl IsA<gtk::Widget>, list: &impl IsA<gtk::Widget>) -> gtk::Box {
    let b = gtk::Box::builder()
        .orientation(gtk::Orientation::Vertical)
        .spacing(6)
        .margin_top(6)
        .margin_start(6)
        .margin_end(6)
        .margin_bottom(6)
        .build();
    b.append(top);
    let scroll = gtk::ScrolledWindow::builder()
        .child(list)
        .vexpand(true)
        .build();
    b.append(&scroll);
    b
}
