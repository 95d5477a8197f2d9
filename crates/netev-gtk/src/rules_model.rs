//! The console's rules table without GTK: rows made from `ListRules`, how
//! each column sorts, and what the filter box keeps.

use std::cmp::Ordering;
use std::collections::HashMap;

/// One rule as the table shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRow {
    /// Rule id.
    pub id: u32,
    /// allow, deny, ask.
    pub action: String,
    /// Ops, or "any".
    pub ops: String,
    /// Program path or glob, or "any".
    pub exe: String,
    /// User name (or uid), or "any".
    pub user: String,
    /// Protocol, address and ports, e.g. `tcp 10.0.0.0/8:80-90`, or "any".
    pub dest: String,
    /// once, until-restart, always, or the end time.
    pub duration: String,
    /// Priority.
    pub priority: i32,
    /// Whether it is enabled.
    pub enabled: bool,
    /// Operations it decided.
    pub hits: u64,
    /// When it last decided one ("" never).
    pub last_hit: String,
    /// Free text.
    pub comment: String,
    /// The fields as listed, for editing.
    pub fields: HashMap<String, String>,
}

impl RuleRow {
    /// A row from one `ListRules` entry.
    pub fn from_fields(fields: HashMap<String, String>) -> RuleRow {
        let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
        let any = |v: String| if v.is_empty() { "any".to_string() } else { v };
        let mut dest = Vec::new();
        if let Some(f) = fields.get("family") {
            dest.push(f.clone());
        }
        if let Some(p) = fields.get("proto") {
            dest.push(p.clone());
        }
        let addr = get("addr");
        let ports = get("ports");
        match (addr.is_empty(), ports.is_empty()) {
            (false, false) => dest.push(netev_event::endpoint(&addr, &ports)),
            (false, true) => dest.push(addr),
            (true, false) => dest.push(format!("port {ports}")),
            (true, true) => {}
        }
        RuleRow {
            id: get("id").parse().unwrap_or(0),
            action: get("action"),
            ops: any(get("ops")),
            exe: any(get("exe")),
            user: any(fields
                .get("user_name")
                .cloned()
                .unwrap_or_else(|| get("user"))),
            dest: any(dest.join(" ")),
            duration: fields
                .get("duration")
                .cloned()
                .unwrap_or_else(|| "always".into()),
            priority: get("priority").parse().unwrap_or(0),
            enabled: fields.get("enabled").map(String::as_str) != Some("false"),
            hits: get("hits").parse().unwrap_or(0),
            last_hit: get("last_hit"),
            comment: get("comment"),
            fields,
        }
    }

    /// Whether the filter text (case-insensitive, every word must appear
    /// in some column) keeps this row.
    pub fn matches(&self, filter: &str) -> bool {
        let hay = format!(
            "{} {} {} {} {} {} {} {} {}",
            self.id,
            self.action,
            self.ops,
            self.exe,
            self.user,
            self.dest,
            self.duration,
            self.comment,
            if self.enabled { "enabled" } else { "disabled" }
        )
        .to_lowercase();
        filter
            .split_whitespace()
            .all(|w| hay.contains(&w.to_lowercase()))
    }
}

/// The table's columns, in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleColumn {
    /// Enabled toggle.
    Enabled,
    /// Rule id.
    Id,
    /// allow / deny / ask.
    Action,
    /// Ops.
    Ops,
    /// Program.
    Exe,
    /// User.
    User,
    /// Destination.
    Dest,
    /// Duration.
    Duration,
    /// Priority.
    Priority,
    /// Hit count.
    Hits,
    /// Comment.
    Comment,
}

impl RuleColumn {
    /// Every column, in display order.
    pub const ALL: [RuleColumn; 11] = [
        RuleColumn::Enabled,
        RuleColumn::Id,
        RuleColumn::Action,
        RuleColumn::Ops,
        RuleColumn::Exe,
        RuleColumn::User,
        RuleColumn::Dest,
        RuleColumn::Duration,
        RuleColumn::Priority,
        RuleColumn::Hits,
        RuleColumn::Comment,
    ];

    /// Column title.
    pub fn title(self) -> &'static str {
        match self {
            RuleColumn::Enabled => "On",
            RuleColumn::Id => "Id",
            RuleColumn::Action => "Action",
            RuleColumn::Ops => "Ops",
            RuleColumn::Exe => "Program",
            RuleColumn::User => "User",
            RuleColumn::Dest => "Destination",
            RuleColumn::Duration => "Duration",
            RuleColumn::Priority => "Priority",
            RuleColumn::Hits => "Hits",
            RuleColumn::Comment => "Comment",
        }
    }

    /// The cell's text (the Enabled column shows a check box instead).
    pub fn text(self, r: &RuleRow) -> String {
        match self {
            RuleColumn::Enabled => if r.enabled { "yes" } else { "no" }.into(),
            RuleColumn::Id => r.id.to_string(),
            RuleColumn::Action => r.action.clone(),
            RuleColumn::Ops => r.ops.clone(),
            RuleColumn::Exe => r.exe.clone(),
            RuleColumn::User => r.user.clone(),
            RuleColumn::Dest => r.dest.clone(),
            RuleColumn::Duration => r.duration.clone(),
            RuleColumn::Priority => r.priority.to_string(),
            RuleColumn::Hits => r.hits.to_string(),
            RuleColumn::Comment => r.comment.clone(),
        }
    }

    /// Ascending order of two rows by this column; ties go by id.
    pub fn compare(self, a: &RuleRow, b: &RuleRow) -> Ordering {
        let by = match self {
            RuleColumn::Enabled => a.enabled.cmp(&b.enabled),
            RuleColumn::Id => Ordering::Equal,
            RuleColumn::Priority => a.priority.cmp(&b.priority),
            RuleColumn::Hits => a.hits.cmp(&b.hits),
            other => other.text(a).cmp(&other.text(b)),
        };
        by.then(a.id.cmp(&b.id))
    }
}

/// The rows a table shows: filtered, then sorted by a column.
pub fn visible<'a>(
    rows: &'a [RuleRow],
    filter: &str,
    sort: RuleColumn,
    ascending: bool,
) -> Vec<&'a RuleRow> {
    let mut v: Vec<&RuleRow> = rows.iter().filter(|r| r.matches(filter)).collect();
    v.sort_by(|a, b| {
        let o = sort.compare(a, b);
        if ascending {
            o
        } else {
            o.reverse()
        }
    });
    v
}

/// The rows in the order netevd checks them: higher priority first, then
/// the older rule.
pub fn checking_order(rows: &[RuleRow]) -> Vec<&RuleRow> {
    let mut v: Vec<&RuleRow> = rows.iter().collect();
    v.sort_by_key(|r| (std::cmp::Reverse(r.priority), r.id));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn row(pairs: &[(&str, &str)]) -> RuleRow {
        RuleRow::from_fields(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn sample() -> Vec<RuleRow> {
        vec![
            row(&[
                ("id", "1"),
                ("action", "deny"),
                ("ops", "connect,sendmsg"),
                ("addr", "10.0.0.0/8"),
                ("priority", "0"),
                ("hits", "12"),
            ]),
            row(&[
                ("id", "2"),
                ("action", "allow"),
                ("exe", "/usr/bin/ssh"),
                ("proto", "tcp"),
                ("ports", "22"),
                ("priority", "10"),
                ("enabled", "false"),
                ("comment", "ssh anywhere"),
            ]),
            row(&[
                ("id", "3"),
                ("action", "ask"),
                ("exe", "/opt/*/bin/*"),
                ("user", "1000"),
                ("user_name", "alice"),
                ("addr", "2001:db8::/32"),
                ("ports", "443"),
                ("hits", "5"),
            ]),
        ]
    }

    #[test]
    fn rows_show_every_condition_readably() {
        let rows = sample();
        assert_eq!(rows[0].dest, "10.0.0.0/8");
        assert_eq!(rows[0].exe, "any");
        assert_eq!(rows[1].dest, "tcp port 22");
        assert!(!rows[1].enabled);
        assert_eq!(rows[2].dest, "[2001:db8::/32]:443");
        assert_eq!(rows[2].user, "alice");
        assert_eq!(rows[2].ops, "any");
    }

    #[test]
    fn sorting_by_a_column_and_back() {
        let rows = sample();
        let ids =
            |v: Vec<&RuleRow>| -> Vec<u32> { v.into_iter().map(|r| r.id).collect::<Vec<_>>() };
        assert_eq!(ids(visible(&rows, "", RuleColumn::Id, true)), [1, 2, 3]);
        assert_eq!(ids(visible(&rows, "", RuleColumn::Hits, false)), [1, 3, 2]);
        assert_eq!(ids(visible(&rows, "", RuleColumn::Action, true)), [2, 3, 1]);
        assert_eq!(
            ids(visible(&rows, "", RuleColumn::Priority, false)),
            [2, 3, 1],
            "descending reverses ties too"
        );
        assert_eq!(ids(checking_order(&rows)), [2, 1, 3]);
    }

    #[test]
    fn the_filter_keeps_rows_with_every_word() {
        let rows = sample();
        let ids = |f: &str| -> Vec<u32> {
            visible(&rows, f, RuleColumn::Id, true)
                .into_iter()
                .map(|r| r.id)
                .collect()
        };
        assert_eq!(ids("ssh"), [2]);
        assert_eq!(ids("DENY 10.0"), [1]);
        assert_eq!(ids("disabled"), [2]);
        assert_eq!(ids("alice 443"), [3]);
        assert!(ids("nothing-like-this").is_empty());
    }
}
