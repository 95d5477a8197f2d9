//! The rules database: SQLite, `rules` and `settings` tables in the state dir.
//!
//! Each rule is stored as its text fields (the same form as on the bus and
//! in rules files), so the database, the API and the files cannot disagree
//! on what a field means. Every change is one transaction: a failed import
//! leaves nothing behind.

use std::path::Path;

use anyhow::{Context, Result};
use chrono::Utc;
use netev_event::Op;
use netev_rules::fields::{rule_from_listing, rule_to_fields};
use netev_rules::{Policy, Rule};
use rusqlite::{params, Connection, OptionalExtension};

/// One column per rule field (netev-rules' `FIELDS`, the one list of them),
/// plus the bookkeeping the daemon keeps.
static COLUMNS: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    netev_rules::fields::FIELDS
        .iter()
        .copied()
        .chain(["hits", "last_hit", "created"])
        .collect()
});

/// 2: `exe_hash` and `exe_changed` (added to a version 1 table at open). An
/// older netevd refuses a version 2 database rather than read a
/// content-pinned allow rule as one for any content.
const SCHEMA_VERSION: i64 = 2;

pub struct RuleStore {
    db: Connection,
    path: std::path::PathBuf,
}

impl RuleStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<RuleStore> {
        if let Some(dir) = path.parent() {
            crate::files::own_dir(dir, 0o700, "state directory")?;
        }
        crate::files::make_private(path)?;
        let db = Connection::open(path)
            .with_context(|| format!("opening the rules database {}", path.display()))?;
        let corrupt = |e: rusqlite::Error| {
            anyhow::anyhow!(
                "the rules database {} is unreadable ({e}); move it aside (the daemon then starts \
                 with no rules) or restore it from a rules export (`netev rules import`)",
                path.display()
            )
        };
        let check: String = db
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(corrupt)?;
        if check != "ok" {
            return Err(corrupt(rusqlite::Error::InvalidQuery)).context(check);
        }
        db.pragma_update(None, "journal_mode", "WAL")
            .map_err(corrupt)?;
        let version: i64 = db.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            anyhow::bail!(
                "the rules database {} was written by a newer netevd (schema {version}); upgrade netevd",
                path.display()
            );
        }
        let cols = COLUMNS
            .iter()
            .map(|c| format!("{c} TEXT"))
            .collect::<Vec<_>>()
            .join(", ");
        let tx = db.unchecked_transaction()?;
        tx.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS rules (id INTEGER PRIMARY KEY AUTOINCREMENT, {cols});
             CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        ))?;
        // an older table lacks the columns of later fields: added, empty
        // (unset), every row and value kept
        let have: Vec<String> = tx
            .prepare("SELECT name FROM pragma_table_info('rules')")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for c in COLUMNS.iter().filter(|c| !have.iter().any(|h| h == *c)) {
            tx.execute_batch(&format!("ALTER TABLE rules ADD COLUMN {c} TEXT"))
                .with_context(|| format!("adding the column {c} to the rules database"))?;
            tracing::info!(column = c, "rules database: column added");
        }
        tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))?;
        tx.commit()?;
        Ok(RuleStore {
            db,
            path: path.to_path_buf(),
        })
    }

    /// Every stored rule. A row that no longer parses is refused with its
    /// id, and none of the rules is loaded: netevd never runs with part of
    /// its rules (a deny could drop out). Nothing is deleted.
    pub fn load(&self) -> Result<Vec<Rule>> {
        let mut stmt = self.db.prepare(&format!(
            "SELECT id, {} FROM rules ORDER BY id",
            COLUMNS.join(", ")
        ))?;
        let mut rows = stmt.query([])?;
        let mut rules = Vec::new();
        let mut bad = Vec::new();
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let mut fields = vec![("id".to_string(), id.to_string())];
            for (i, c) in COLUMNS.iter().enumerate() {
                if let Some(v) = row.get::<_, Option<String>>(i + 1)? {
                    fields.push((c.to_string(), v));
                }
            }
            match rule_from_listing(fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
                Ok(r) => rules.push(r),
                Err(e) => bad.push((id, e)),
            }
        }
        if !bad.is_empty() {
            let ids: Vec<String> = bad.iter().map(|(id, _)| id.to_string()).collect();
            let why: Vec<String> = bad
                .iter()
                .map(|(id, e)| format!("rule {id}: {e}"))
                .collect();
            let db = self.path.display();
            anyhow::bail!(
                "the rules database {db} holds rules netevd cannot read ({}); none of the rules \
                 was applied, since running with part of them could drop a deny. Look at them \
                 with `sqlite3 {db} 'SELECT * FROM rules WHERE id IN ({})'`, then fix or delete \
                 them (`DELETE FROM rules WHERE id = N`), or move the database aside and import \
                 a rules export",
                why.join("; "),
                ids.join(",")
            );
        }
        Ok(rules)
    }

    /// Inserts rules (ids assigned here), updates and deletes `remove`, in
    /// one transaction that `check` sees before it commits: it is given the
    /// inserted rules with their ids, and if it refuses, nothing is stored
    /// (the outer error is the database's, the inner one `check`'s).
    pub fn change<E>(
        &mut self,
        insert: &mut [Rule],
        update: &[Rule],
        remove: &[u32],
        check: impl FnOnce(&[Rule]) -> Result<(), E>,
    ) -> Result<Result<(), E>> {
        let tx = self.db.transaction()?;
        for id in remove {
            tx.execute("DELETE FROM rules WHERE id = ?1", params![id])?;
        }
        for r in update.iter() {
            tx.execute("DELETE FROM rules WHERE id = ?1", params![r.id])?;
            write_row(&tx, r, Some(r.id))?;
        }
        for r in insert.iter_mut() {
            let id = write_row(&tx, r, None)?;
            r.id = u32::try_from(id).context("rule ids exhausted")?;
        }
        if let Err(e) = check(insert) {
            // dropped without a commit: rolled back
            return Ok(Err(e));
        }
        tx.commit()?;
        Ok(Ok(()))
    }

    /// Adds hit counts (rule id → operations) with the time of the last.
    pub fn add_hits(&mut self, hits: &[(u32, u64)]) -> Result<()> {
        let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let tx = self.db.transaction()?;
        for (id, n) in hits {
            tx.execute(
                "UPDATE rules SET hits = CAST(COALESCE(hits, '0') AS INTEGER) + ?2, last_hit = ?3 WHERE id = ?1",
                params![id, *n as i64, now],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The default policy (allow everything, deny while asking, unless set).
    pub fn policy(&self) -> Result<Policy> {
        let mut p = Policy::default();
        for op in Op::ALL {
            if let Some(a) = self.setting(&format!("default.{}", op.name()))? {
                p.set(op, a.parse()?);
            }
        }
        if let Some(a) = self.setting("ask_fallback")? {
            p.ask_fallback = a.parse()?;
        }
        Ok(p)
    }

    pub fn set_policy(&mut self, p: &Policy) -> Result<()> {
        let tx = self.db.transaction()?;
        for op in Op::ALL {
            tx.execute(
                "INSERT OR REPLACE INTO settings (key, value) VALUES (?1, ?2)",
                params![format!("default.{}", op.name()), p.for_op(op).name()],
            )?;
        }
        tx.execute(
            "INSERT OR REPLACE INTO settings (key, value) VALUES ('ask_fallback', ?1)",
            params![p.ask_fallback.name()],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .db
            .query_row(
                "SELECT value FROM settings WHERE key = ?1",
                params![key],
                |r| r.get(0),
            )
            .optional()?)
    }
}

fn write_row(tx: &rusqlite::Transaction<'_>, r: &Rule, id: Option<u32>) -> Result<i64> {
    let fields = rule_to_fields(r, &|_| None);
    let get = |c: &str| fields.iter().find(|(k, _)| k == c).map(|(_, v)| v.clone());
    let values: Vec<Option<String>> = COLUMNS.iter().map(|c| get(c)).collect();
    let placeholders = (1..=COLUMNS.len() + 1)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO rules (id, {}) VALUES ({placeholders})",
        COLUMNS.join(", ")
    );
    let mut args: Vec<&dyn rusqlite::ToSql> = vec![&id];
    args.extend(values.iter().map(|v| v as &dyn rusqlite::ToSql));
    tx.execute(&sql, args.as_slice())?;
    Ok(tx.last_insert_rowid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use netev_rules::fields::rule_from_fields;
    use netev_rules::Action;

    #[test]
    fn rules_and_policy_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.db");
        let mut store = RuleStore::open(&path).unwrap();
        let mut rules = vec![
            rule_from_fields(
                [
                    ("action", "deny"),
                    ("exe", "/usr/bin/x'; DROP TABLE rules; --"),
                    ("comment", "ünï\n\"q\""),
                ],
                Utc::now(),
                &|_| None,
            )
            .unwrap(),
            rule_from_fields(
                [
                    ("action", "allow"),
                    ("addr", "::1"),
                    ("ports", "1-9"),
                    ("duration", "once"),
                ],
                Utc::now(),
                &|_| None,
            )
            .unwrap(),
        ];
        let ok = |_: &[Rule]| Ok::<(), ()>(());
        let mut seen = Vec::new();
        store
            .change(&mut rules, &[], &[], |inserted| {
                seen = inserted.iter().map(|r| r.id).collect();
                Ok::<(), ()>(())
            })
            .unwrap()
            .unwrap();
        assert_eq!((rules[0].id, rules[1].id), (1, 2));
        assert_eq!(seen, [1, 2], "the check sees the ids the rows got");
        store.add_hits(&[(2, 5)]).unwrap();
        let mut p = Policy::default();
        p.set(Op::Connect, Action::Ask);
        store.set_policy(&p).unwrap();
        drop(store);

        let mut store = RuleStore::open(&path).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[0].cond, rules[0].cond);
        assert_eq!(loaded[0].comment, rules[0].comment);
        assert_eq!(loaded[1].hits, 5);
        assert!(loaded[1].last_hit.is_some());
        assert_eq!(store.policy().unwrap(), p);
        store.change(&mut [], &[], &[1], ok).unwrap().unwrap();
        let mut again = vec![rules[0].clone()];
        store.change(&mut again, &[], &[], ok).unwrap().unwrap();
        assert_eq!(again[0].id, 3, "ids are never reused");
        // a refused check stores nothing, removes nothing
        let mut refused = vec![rules[0].clone()];
        let got = store
            .change(&mut refused, &[], &[2], |_| Err("too many"))
            .unwrap();
        assert_eq!(got, Err("too many"));
        let ids: Vec<u32> = store.load().unwrap().iter().map(|r| r.id).collect();
        assert_eq!(ids, [2, 3]);
    }

    #[test]
    fn a_corrupt_database_is_refused_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.db");
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let err = format!("{:#}", RuleStore::open(&path).err().unwrap());
        assert!(err.contains("move it aside"), "{err}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            vec![0x5a; 8192],
            "left untouched"
        );
    }

    #[test]
    fn a_stored_rule_that_does_not_parse_is_refused_with_its_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.db");
        let mut store = RuleStore::open(&path).unwrap();
        let ok = |_: &[Rule]| Ok::<(), ()>(());
        let deny =
            rule_from_fields([("action", "deny"), ("ports", "22")], Utc::now(), &|_| None).unwrap();
        store
            .change(&mut [deny.clone(), deny], &[], &[], ok)
            .unwrap()
            .unwrap();
        store
            .db
            .execute("UPDATE rules SET ports = '99999' WHERE id = 2", [])
            .unwrap();
        let err = format!("{:#}", store.load().unwrap_err());
        assert!(
            err.contains("rule 2:") && err.contains("none of the rules"),
            "{err}"
        );
        assert!(err.contains("WHERE id IN (2)"), "{err}");
    }

    #[test]
    fn an_old_database_gains_the_content_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.db");
        {
            // as netevd wrote it before exe_hash (schema 1)
            let db = Connection::open(&path).unwrap();
            db.execute_batch(
                "CREATE TABLE rules (id INTEGER PRIMARY KEY AUTOINCREMENT, action TEXT, ops TEXT, \
                 exe TEXT, user TEXT, family TEXT, proto TEXT, addr TEXT, ports TEXT, \
                 duration TEXT, priority TEXT, enabled TEXT, comment TEXT, hits TEXT, \
                 last_hit TEXT, created TEXT);
                 CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 INSERT INTO rules (action, ops, exe, duration, priority, enabled, comment, hits, created)
                   VALUES ('deny', 'connect', '/usr/bin/curl', 'always', '5', 'true', 'old', '7',
                           '2026-11-01T00:00:00Z');
                 INSERT INTO settings VALUES ('ask_fallback', 'allow');
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let mut store = RuleStore::open(&path).unwrap();
        let old = store.load().unwrap();
        assert_eq!(old.len(), 1);
        assert_eq!(old[0].id, 1);
        assert_eq!(old[0].action, Action::Deny);
        assert_eq!(old[0].cond.exe.as_ref().unwrap().as_str(), "/usr/bin/curl");
        assert_eq!((old[0].priority, old[0].hits), (5, 7));
        assert_eq!(old[0].comment, "old");
        assert_eq!(old[0].cond.exe_hash, None);
        assert_eq!(store.policy().unwrap().ask_fallback, Action::Allow);
        let hash = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let mut pinned = vec![rule_from_fields(
            [
                ("action", "allow"),
                ("exe", "/usr/bin/curl"),
                ("exe_hash", hash),
                ("exe_changed", "ask"),
            ],
            Utc::now(),
            &|_| None,
        )
        .unwrap()];
        store
            .change(&mut pinned, &[], &[], |_| Ok::<(), ()>(()))
            .unwrap()
            .unwrap();
        drop(store);
        let store = RuleStore::open(&path).unwrap();
        let rules = store.load().unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].cond, old[0].cond);
        assert_eq!(rules[1].cond, pinned[0].cond);
        assert_eq!(rules[1].cond.exe_hash.unwrap().to_string(), hash);
        assert_eq!(rules[1].cond.exe_changed, Some(Action::Ask));
        let v: i64 = store
            .db
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
    }
}
