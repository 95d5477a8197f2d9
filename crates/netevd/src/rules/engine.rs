//! The rule engine: the database, the set in force, and each change turned
//! into kernel tables once.
//!
//! Every change is compiled (which checks it against the kernel's capacity)
//! before it is stored; the tables of the last change wait in
//! [`Engine::take_tables`] for the owner (`super::owner`) to install them.
//! The engine does no I/O but the rules database and reading where the
//! rules' programs are (`super::resolve`, bounded), and it is owned by one
//! thread: nothing else holds it or waits on a lock of it.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use chrono::{DateTime, Utc};
use netev_event::{Event, Op};
use netev_rules::compile::{compile, KernelTables};
use netev_rules::fields::apply_field;
use netev_rules::{lifecycle, Action, ExeMatch, Policy, Rule, RuleError, RuleSet};

use netev_host::users::uid_of;

use super::resolve::{self, ContentCache, Resolved};
use super::store::RuleStore;

/// Why a rule change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The rule (or file) is wrong; the message says how.
    #[error(transparent)]
    Invalid(#[from] RuleError),
    /// No rule with that id.
    #[error("no rule with id {0} (see `netev rules list`)")]
    NoSuchRule(u32),
    /// The database refused.
    #[error("the rules database: {0:#}")]
    Store(anyhow::Error),
    /// Stored, but the kernel refused the tables (the previous ones stay in force).
    #[error("the rules were stored but the kernel refused them: {0}")]
    Kernel(String),
    /// The rules owner is not running (netevd is stopping).
    #[error("netevd is stopping; the rules cannot change now")]
    Stopped,
}

pub struct Engine {
    store: RuleStore,
    rules: Vec<Rule>,
    policy: Policy,
    /// The kernel tables of the last change, compiled when it was checked,
    /// not yet installed.
    tables: Option<KernelTables>,
    /// Bumped on every change of the rules or the policy (not on hits).
    generation: u64,
    hits: HashMap<u32, u64>,
    /// The hashes of the `exe_hash` rules' binaries, by file version.
    content: ContentCache,
}

/// One change's resolutions of exe patterns: each pattern is resolved
/// once, whether it is checked on its way in or compiled, and what it gave
/// is at hand to report afterwards. Never kept across changes: a rule is
/// compiled as the filesystem is when it is installed (only the hashes of
/// file versions already read are, in the engine's [`ContentCache`]).
#[derive(Default)]
struct Resolutions(HashMap<ExeMatch, (Resolved, bool)>);

impl Resolutions {
    fn get(&mut self, m: &ExeMatch) -> &Resolved {
        &self
            .0
            .entry(m.clone())
            .or_insert_with(|| (resolve::resolve(m), false))
            .0
    }

    /// As [`Self::get`], with the content of an exact path's file filled in
    /// (read once per change, and not at all for a version already hashed).
    fn with_content(&mut self, m: &ExeMatch, cache: &mut ContentCache) -> &Resolved {
        let (r, filled) = self
            .0
            .entry(m.clone())
            .or_insert_with(|| (resolve::resolve(m), false));
        if !*filled {
            cache.fill(m, r);
            *filled = true;
        }
        r
    }

    /// Refuses a rule whose pattern's expansion was cut short by its
    /// bound: it would cover only some of the programs it names, and which
    /// ones would depend on the order a directory lists them in.
    fn check(&mut self, rule: &Rule) -> Result<(), RuleError> {
        let Some(m) = &rule.cond.exe else {
            return Ok(());
        };
        let r = self.get(m);
        if !r.truncated {
            return Ok(());
        }
        let why = r.targets.warnings.join("; ");
        Err(RuleError::Invalid {
            field: "exe",
            value: m.to_string(),
            reason: format!("{why}. A rule that would cover only some of them is not added"),
        })
    }

    /// Reports what `rules`' patterns could not resolve in full, and a
    /// content-pinned rule whose file holds another content now.
    fn warn(&self, rules: &[Rule]) {
        for r in rules {
            let Some(m) = &r.cond.exe else { continue };
            let Some((res, _)) = self.0.get(m) else {
                continue;
            };
            for w in &res.targets.warnings {
                tracing::warn!(rule = r.id, exe = %m, "{w}");
            }
            let Some(pin) = r.cond.exe_hash else { continue };
            let now = res.targets.files.iter().find_map(|f| f.content);
            if let Some(c) = now.filter(|c| c.sha256 != pin.0) {
                tracing::warn!(
                    rule = r.id,
                    exe = %m,
                    "the file holds {} now, not the content the rule names ({pin}): it is a \
                     changed binary to the rule",
                    netev_rules::ExeHash(c.sha256)
                );
            }
        }
    }
}

/// An exact exe path as the kernel will see it: its directory canonical,
/// and the file too if it is a root-owned link (a user's link is left as
/// written: see `resolve`). The userspace matcher then agrees with the
/// kernel, which matches the executable where it really is.
fn canonical_exe(rule: &mut Rule) {
    if let Some(exe) = &rule.cond.exe {
        if !exe.is_glob() {
            if let Some(p) = resolve::exact_canonical(Path::new(exe.as_str())) {
                if let Some(m) = p.to_str().and_then(|s| s.parse().ok()) {
                    rule.cond.exe = Some(m);
                }
            }
        }
    }
}

impl Engine {
    /// Opens the database; rules that were to live until a restart, and
    /// rules whose time is up, are removed.
    pub fn open(path: &Path) -> anyhow::Result<Engine> {
        let mut store = RuleStore::open(path)?;
        let now = Utc::now();
        let rules = store.load()?;
        let gone = lifecycle::gone_at_start(&rules, now);
        store.change(&mut [], &[], &gone, |_| Ok::<(), RuleError>(()))??;
        let policy = store.policy()?;
        let rules = rules
            .into_iter()
            .filter(|r| !gone.contains(&r.id))
            .collect();
        Ok(Engine {
            store,
            rules,
            policy,
            tables: None,
            generation: 1,
            hits: HashMap::new(),
            content: ContentCache::default(),
        })
    }

    /// The tables the kernel must have now: those of the last change if
    /// they were not taken, else compiled afresh (at start).
    pub fn tables_now(&mut self) -> Result<KernelTables, RuleError> {
        match self.tables.take() {
            Some(t) => Ok(t),
            None => {
                let mut res = Resolutions::default();
                let t = Self::tables_of(
                    &self.rules,
                    &self.policy,
                    Utc::now(),
                    &mut res,
                    &mut self.content,
                )?;
                res.warn(&self.rules);
                Ok(t)
            }
        }
    }

    /// Compiles the rules in force for the kernel (after a change that did
    /// not compile them itself: the policy, a reread), and reports what
    /// their patterns could not resolve in full: the filesystem may have
    /// changed since they were added.
    fn recompile(&mut self) -> Result<(), RuleError> {
        let mut res = Resolutions::default();
        self.tables = Some(Self::tables_of(
            &self.rules,
            &self.policy,
            Utc::now(),
            &mut res,
            &mut self.content,
        )?);
        res.warn(&self.rules);
        self.generation += 1;
        Ok(())
    }

    /// The tables of the last change, if not yet taken: what the kernel
    /// must install next.
    pub fn take_tables(&mut self) -> Option<KernelTables> {
        self.tables.take()
    }

    /// Whether a change's tables wait to be installed.
    pub fn has_tables(&self) -> bool {
        self.tables.is_some()
    }

    /// Bumped by every change of the rules or the policy.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Reads the rules and the policy again from the database (SIGHUP:
    /// someone changed it with other tools); rules that live until a
    /// restart are kept.
    pub fn reread(&mut self) -> anyhow::Result<()> {
        self.flush_hits();
        self.rules = self.store.load()?;
        self.policy = self.store.policy()?;
        self.recompile()?;
        Ok(())
    }

    /// Applies the configuration file's `[policy]` and `rules.file` (read
    /// and checked beforehand): the file wins over what is stored.
    pub fn apply_config(
        &mut self,
        file: &crate::config::FileSettings,
        file_rules: Option<Vec<Rule>>,
    ) -> Result<(), ChangeError> {
        use crate::config::PolicyKey;
        let mut p = self.policy;
        for (key, action) in &file.policy {
            match key {
                PolicyKey::All => Op::ALL.into_iter().for_each(|o| p.set(o, *action)),
                PolicyKey::Op(op) => p.set(*op, *action),
            }
        }
        if let Some(a) = file.ask_fallback {
            p.ask_fallback = a;
        }
        if p != self.policy {
            self.store.set_policy(&p).map_err(ChangeError::Store)?;
            self.policy = p;
            self.recompile()?;
        }
        if let Some(rules) = file_rules {
            self.add_many(rules, true)?;
        }
        Ok(())
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Compiles the rules active at `now`; the content of a file is read
    /// only for the exact paths that a rule pins with `exe_hash`.
    fn tables_of(
        rules: &[Rule],
        policy: &Policy,
        now: DateTime<Utc>,
        res: &mut Resolutions,
        cache: &mut ContentCache,
    ) -> Result<KernelTables, RuleError> {
        let set = RuleSet::active_at(rules, now, *policy);
        let pinned: HashSet<&ExeMatch> = set
            .rules()
            .iter()
            .filter(|r| r.cond.exe_hash.is_some())
            .filter_map(|r| r.cond.exe.as_ref())
            .collect();
        compile(set.rules(), set.policy(), &mut |m| {
            if pinned.contains(m) {
                res.with_content(m, cache).targets.clone()
            } else {
                res.get(m).targets.clone()
            }
        })
    }

    /// Applies a change if the result still fits the kernel; stores it.
    /// The rules are compiled once, inside the database transaction (the
    /// new rules' ids decide their order, and the database assigns them):
    /// those tables are what the owner installs. What the new and changed
    /// rules' patterns could not resolve in full is reported.
    fn commit(
        &mut self,
        mut insert: Vec<Rule>,
        update: Vec<Rule>,
        remove: Vec<u32>,
        res: &mut Resolutions,
    ) -> Result<Vec<u32>, ChangeError> {
        let kept = |r: &&Rule| !remove.contains(&r.id) && !update.iter().any(|u| u.id == r.id);
        let (rules, policy, cache) = (&self.rules, &self.policy, &mut self.content);
        let mut tables = None;
        self.store
            .change(&mut insert, &update, &remove, |inserted| {
                let next: Vec<Rule> = rules
                    .iter()
                    .filter(kept)
                    .chain(&update)
                    .chain(inserted)
                    .cloned()
                    .collect();
                tables = Some(Self::tables_of(&next, policy, Utc::now(), res, cache)?);
                Ok::<(), RuleError>(())
            })
            .map_err(ChangeError::Store)??;
        let ids = insert.iter().map(|r| r.id).collect();
        res.warn(&insert);
        res.warn(&update);
        self.rules
            .retain(|r| !remove.contains(&r.id) && !update.iter().any(|u| u.id == r.id));
        self.rules.extend(update);
        self.rules.extend(insert);
        self.rules.sort_by_key(|r| r.id);
        self.tables = tables;
        self.generation += 1;
        Ok(ids)
    }

    pub fn add(&mut self, mut rule: Rule) -> Result<u32, ChangeError> {
        canonical_exe(&mut rule);
        let mut res = Resolutions::default();
        res.check(&rule)?;
        rule.created = Utc::now();
        Ok(self.commit(vec![rule], vec![], vec![], &mut res)?[0])
    }

    /// Adds the rule an answer to a prompt made, ranked just ahead of the
    /// rule that asked (`asking`), as netev run does.
    pub fn add_answer(&mut self, mut rule: Rule, asking: Option<u32>) -> Result<u32, ChangeError> {
        let asking_id = asking;
        let asking = asking.and_then(|id| self.rules.iter().find(|r| r.id == id));
        lifecycle::rank_answer(&mut rule, asking);
        if let Some(other) = lifecycle::outranked_user_rule(&rule, &self.rules, asking_id) {
            return Err(ChangeError::Invalid(netev_rules::RuleError::Conflict(
                format!(
                "an answer for every user would outrank rule {} ({} for uid {}): answer for the \
                 asking user only (a scope without +any-user), or change the rules themselves",
                other.id,
                other.action.name(),
                other.cond.uid.unwrap_or_default()
            ),
            )));
        }
        canonical_exe(&mut rule);
        let mut res = Resolutions::default();
        res.check(&rule)?;
        rule.created = Utc::now();
        Ok(self.commit(vec![rule], vec![], vec![], &mut res)?[0])
    }

    pub fn add_many(&mut self, mut rules: Vec<Rule>, replace: bool) -> Result<usize, ChangeError> {
        rules.iter_mut().for_each(canonical_exe);
        let mut res = Resolutions::default();
        rules.iter().try_for_each(|r| res.check(r))?;
        let remove = if replace {
            self.rules.iter().map(|r| r.id).collect()
        } else {
            vec![]
        };
        Ok(self.commit(rules, vec![], remove, &mut res)?.len())
    }

    pub fn update(&mut self, id: u32, fields: &[(String, String)]) -> Result<(), ChangeError> {
        let mut rule = self.get(id)?.clone();
        let mut action = Some(rule.action);
        for (k, v) in fields {
            apply_field(&mut rule, &mut action, k, v, Utc::now(), &uid_of)?;
        }
        rule.action = action.unwrap_or(rule.action);
        rule.validate()?;
        canonical_exe(&mut rule);
        let mut res = Resolutions::default();
        res.check(&rule)?;
        self.commit(vec![], vec![rule], vec![], &mut res)
            .map(|_| ())
    }

    pub fn set_enabled(&mut self, id: u32, enabled: bool) -> Result<(), ChangeError> {
        let mut rule = self.get(id)?.clone();
        rule.enabled = enabled;
        let mut res = Resolutions::default();
        self.commit(vec![], vec![rule], vec![], &mut res)
            .map(|_| ())
    }

    pub fn remove(&mut self, ids: &[u32]) -> Result<(), ChangeError> {
        for id in ids {
            self.get(*id)?;
        }
        self.commit(vec![], vec![], ids.to_vec(), &mut Resolutions::default())
            .map(|_| ())
    }

    fn get(&self, id: u32) -> Result<&Rule, ChangeError> {
        self.rules
            .iter()
            .find(|r| r.id == id)
            .ok_or(ChangeError::NoSuchRule(id))
    }

    /// Sets the default for one op (or all), or the ask fallback (`op` = "ask-fallback").
    pub fn set_default(&mut self, op: &str, action: &str) -> Result<(), ChangeError> {
        let action: Action = action.parse()?;
        let mut p = self.policy;
        match op {
            "all" => Op::ALL.into_iter().for_each(|o| p.set(o, action)),
            "ask-fallback" => {
                if action == Action::Ask {
                    return Err(RuleError::Invalid {
                        field: "ask-fallback",
                        value: "ask".into(),
                        reason: "the ask fallback is what happens while asking: allow or deny"
                            .into(),
                    }
                    .into());
                }
                p.ask_fallback = action
            }
            name => p.set(
                name.parse::<Op>().map_err(|reason| RuleError::Invalid {
                    field: "op",
                    value: name.into(),
                    reason: format!("{reason}, all, or ask-fallback"),
                })?,
                action,
            ),
        }
        self.store.set_policy(&p).map_err(ChangeError::Store)?;
        self.policy = p;
        self.recompile()?;
        Ok(())
    }

    /// Removes rules whose time is up; true if any was.
    pub fn expire(&mut self, now: DateTime<Utc>) -> bool {
        let gone = lifecycle::expired(&self.rules, now);
        !gone.is_empty()
            && self
                .commit(vec![], vec![], gone, &mut Resolutions::default())
                .is_ok()
    }

    /// Removes `once` rules the kernel used up; true if any was.
    pub fn consume(&mut self, ids: &[u32]) -> bool {
        let gone = lifecycle::used_up(&self.rules, ids);
        !gone.is_empty()
            && self
                .commit(vec![], vec![], gone, &mut Resolutions::default())
                .is_ok()
    }

    pub fn count_hit(&mut self, id: u32, n: u64) {
        *self.hits.entry(id).or_default() += n;
    }

    /// Writes hit counts gathered since the last call; true if there were any.
    pub fn flush_hits(&mut self) -> bool {
        if self.hits.is_empty() {
            return false;
        }
        let hits: Vec<(u32, u64)> = self.hits.drain().collect();
        let now = Utc::now();
        for (id, n) in &hits {
            if let Some(r) = self.rules.iter_mut().find(|r| r.id == *id) {
                r.hits += n;
                r.last_hit = Some(now);
            }
        }
        if let Err(e) = self.store.add_hits(&hits) {
            tracing::warn!("cannot record rule hits: {e:#}");
        }
        true
    }
}

/// The rule an answer to a prompt makes (netev_rules::fields::rule_for_answer).
pub fn rule_for_answer(
    ev: &Event,
    action: Action,
    duration: &str,
    scope: &str,
) -> Result<Rule, RuleError> {
    netev_rules::fields::rule_for_answer(ev, action, duration, scope, Utc::now())
}

/// Reads and checks a whole rules file (`rules.file`, `--rules-file`):
/// the first problem is reported with its line and nothing of it is used.
pub fn read_rules_file(path: &Path) -> anyhow::Result<Vec<Rule>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the rules file {}: {e}", path.display()))?;
    Ok(netev_rules::file::parse(
        &path.display().to_string(),
        &text,
        Utc::now(),
        &uid_of,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netev_rules::Conditions;
    use std::os::unix::fs::MetadataExt;

    fn exe_rule(exe: &str) -> Rule {
        Rule::new(
            Action::Deny,
            Conditions {
                exe: Some(exe.parse().unwrap()),
                ..Conditions::default()
            },
        )
    }

    #[test]
    fn a_rule_whose_glob_expansion_hits_the_bound_is_refused() {
        let db = tempfile::tempdir().unwrap();
        let mut engine = Engine::open(&db.path().join("rules.db")).unwrap();
        // in memory where there is a tmpfs (see resolve's tests)
        let t = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        let d = std::fs::canonicalize(t.path()).unwrap();
        for i in 0..=resolve::MAX_ENTRIES / 1000 {
            let sub = d.join(format!("d{i}"));
            std::fs::create_dir(&sub).unwrap();
            for j in 0..1000 {
                std::fs::File::create(sub.join(j.to_string())).unwrap();
            }
        }
        let glob = format!("{}/**/[0-9]*", d.display());
        for refused in [
            engine.add(exe_rule(&glob)),
            engine.add_many(vec![exe_rule(&glob)], false).map(|_| 0),
            engine.add_answer(exe_rule(&glob), None),
        ] {
            match refused {
                Err(ChangeError::Invalid(RuleError::Invalid {
                    field: "exe",
                    value,
                    reason,
                })) => {
                    assert_eq!(value, glob);
                    assert!(reason.contains("stopped after"), "{reason}");
                    assert!(reason.contains("DIR/**"), "{reason}");
                }
                other => panic!("not refused: {other:?}"),
            }
        }
        assert!(engine.rules().is_empty());
        // a rule changed to such a pattern is refused too, and stays as it was
        let id = engine
            .add(exe_rule(&format!("{}/d0/1*", d.display())))
            .unwrap();
        let changed = engine.update(id, &[("exe".into(), glob.clone())]);
        assert!(
            matches!(
                changed,
                Err(ChangeError::Invalid(RuleError::Invalid {
                    field: "exe",
                    ..
                }))
            ),
            "{changed:?}"
        );
        assert_eq!(
            engine.rules()[0].cond.exe.as_ref().unwrap().as_str(),
            format!("{}/d0/1*", d.display())
        );
        // the same tree named as a directory is matched without expansion
        engine
            .add(exe_rule(&format!("{}/**", d.display())))
            .unwrap();
        assert_eq!(engine.rules().len(), 2);
    }

    #[test]
    fn an_exact_exe_is_stored_canonical_through_root_links_only() {
        let db = tempfile::tempdir().unwrap();
        let mut engine = Engine::open(&db.path().join("rules.db")).unwrap();
        let t = tempfile::tempdir().unwrap();
        let d = std::fs::canonicalize(t.path()).unwrap();
        std::fs::create_dir(d.join("real")).unwrap();
        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        std::os::unix::fs::symlink("real", d.join("link")).unwrap();
        if root {
            std::os::unix::fs::lchown(d.join("link"), Some(65534), None).unwrap();
        }
        // a user's link is left as written; `..` is resolved, the file need
        // not exist yet
        let id = engine
            .add(exe_rule(&format!("{}/real/../link/prog", d.display())))
            .unwrap();
        let exe = |e: &Engine| {
            let r = e.rules().iter().find(|r| r.id == id).unwrap();
            r.cond.exe.as_ref().unwrap().as_str().to_string()
        };
        assert_eq!(exe(&engine), format!("{}/real/../link/prog", d.display()));
        let id2 = engine
            .add(exe_rule(&format!("{}/real/../real/prog", d.display())))
            .unwrap();
        let r = engine.rules().iter().find(|r| r.id == id2).unwrap();
        assert_eq!(
            r.cond.exe.as_ref().unwrap().as_str(),
            format!("{}/real/prog", d.display())
        );
        if root {
            std::os::unix::fs::symlink("real", d.join("rootlink")).unwrap();
            let id3 = engine
                .add(exe_rule(&format!("{}/rootlink/prog", d.display())))
                .unwrap();
            let r = engine.rules().iter().find(|r| r.id == id3).unwrap();
            assert_eq!(
                r.cond.exe.as_ref().unwrap().as_str(),
                format!("{}/real/prog", d.display())
            );
        }
    }

    #[test]
    fn only_content_pinned_exact_paths_are_read_and_once_per_version() {
        let db = tempfile::tempdir().unwrap();
        let mut engine = Engine::open(&db.path().join("rules.db")).unwrap();
        let t = tempfile::tempdir().unwrap();
        let d = std::fs::canonicalize(t.path()).unwrap();
        let (pinned, plain) = (d.join("pinned"), d.join("plain"));
        std::fs::write(&pinned, b"test").unwrap();
        std::fs::write(&plain, b"plain").unwrap();
        engine.add(exe_rule(&plain.to_string_lossy())).unwrap();
        assert_eq!(engine.content.reads, 0, "no rule pins plain's content");
        let mut rule = exe_rule(&pinned.to_string_lossy());
        rule.action = Action::Allow;
        rule.cond.exe_hash = Some(
            "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
                .parse()
                .unwrap(),
        );
        rule.cond.exe_changed = Some(Action::Ask);
        let id = engine.add(rule).unwrap();
        assert_eq!(engine.content.reads, 1);
        // later changes and a fresh compile: the same version, not read again
        engine.add(exe_rule("/usr/bin/true")).unwrap();
        engine.set_enabled(id, true).unwrap();
        engine.recompile().unwrap();
        assert!(engine.tables_now().is_ok());
        assert_eq!(engine.content.reads, 1);
        // rewritten: read at the next change
        let before = std::fs::metadata(&pinned).unwrap();
        for _ in 0..200 {
            std::fs::write(&pinned, b"changed").unwrap();
            let now = std::fs::metadata(&pinned).unwrap();
            if (now.ctime(), now.ctime_nsec()) != (before.ctime(), before.ctime_nsec()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        engine.recompile().unwrap();
        assert_eq!(engine.content.reads, 2);
    }
}
