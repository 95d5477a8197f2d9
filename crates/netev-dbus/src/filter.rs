//! Subscription filters: which events a subscriber receives.
//!
//! Sent as an `a{sv}` dictionary so the set of keys can grow without a new
//! protocol version. Keys (all optional; absent = any):
//!
//! | key        | type | matches events whose … |
//! |------------|------|------------------------|
//! | `ops`      | `as` | `op` is one of these |
//! | `exe`      | `s`  | `exe` is exactly this path |
//! | `pid`      | `u`  | `pid` is this |
//! | `uid`      | `u`  | `uid` is this |
//! | `verdicts` | `as` | `verdict` is one of these |
//!
//! An unknown key or a value of the wrong type is an error (InvalidArgs):
//! a typo must not silently widen a subscription to everything.

use std::collections::HashMap;

use netev_event::{Event, Op, Verdict};
use zbus::{OwnedVariant as OwnedValue, Variant as Value};

/// A subscription filter; the default accepts every event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Ops to keep (empty: all).
    pub ops: Vec<String>,
    /// Exact executable path to keep.
    pub exe: Option<String>,
    /// Process id to keep.
    pub pid: Option<u32>,
    /// User id to keep.
    pub uid: Option<u32>,
    /// Verdicts to keep (empty: all).
    pub verdicts: Vec<String>,
}

/// Why a filter dictionary was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// A key this version does not know.
    #[error("unknown filter key {0:?}; known keys: ops, exe, pid, uid, verdicts")]
    UnknownKey(String),
    /// A value of the wrong D-Bus type.
    #[error("filter key {key:?} must be of type {want}")]
    WrongType {
        /// The key.
        key: String,
        /// The D-Bus type expected.
        want: &'static str,
    },
    /// A value that names nothing.
    #[error("filter key {key:?}: {reason}")]
    BadValue {
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

impl Filter {
    /// The `a{sv}` form sent to `Subscribe`.
    pub fn to_dict(&self) -> HashMap<&'static str, Value<'static>> {
        let mut d = HashMap::new();
        if !self.ops.is_empty() {
            d.insert("ops", Value::from(self.ops.clone()));
        }
        if let Some(exe) = &self.exe {
            d.insert("exe", Value::from(exe.clone()));
        }
        if let Some(pid) = self.pid {
            d.insert("pid", Value::from(pid));
        }
        if let Some(uid) = self.uid {
            d.insert("uid", Value::from(uid));
        }
        if !self.verdicts.is_empty() {
            d.insert("verdicts", Value::from(self.verdicts.clone()));
        }
        d
    }

    /// Parses and checks the `a{sv}` received by `Subscribe`.
    pub fn from_dict(dict: HashMap<String, OwnedValue>) -> Result<Filter, FilterError> {
        let mut f = Filter::default();
        for (key, value) in dict {
            let wrong = |want| FilterError::WrongType {
                key: key.clone(),
                want,
            };
            match key.as_str() {
                "ops" => {
                    let ops: Vec<String> = value.try_into().map_err(|_| wrong("as"))?;
                    for op in &ops {
                        op.parse::<Op>().map_err(|reason| FilterError::BadValue {
                            key: key.clone(),
                            reason,
                        })?;
                    }
                    f.ops = ops;
                }
                "exe" => f.exe = Some(value.try_into().map_err(|_| wrong("s"))?),
                "pid" => f.pid = Some(value.try_into().map_err(|_| wrong("u"))?),
                "uid" => f.uid = Some(value.try_into().map_err(|_| wrong("u"))?),
                "verdicts" => {
                    let verdicts: Vec<String> = value.try_into().map_err(|_| wrong("as"))?;
                    if let Some(v) = verdicts
                        .iter()
                        .find(|v| !["allow", "deny", "observe"].contains(&v.as_str()))
                    {
                        return Err(FilterError::BadValue {
                            key: key.clone(),
                            reason: format!(
                                "unknown verdict {v:?}; expected allow, deny or observe"
                            ),
                        });
                    }
                    f.verdicts = verdicts;
                }
                _ => return Err(FilterError::UnknownKey(key)),
            }
        }
        Ok(f)
    }

    /// Whether the filter keeps this event.
    pub fn matches(&self, ev: &Event) -> bool {
        (self.ops.is_empty() || self.ops.iter().any(|o| o == ev.op.name()))
            && self
                .exe
                .as_ref()
                .is_none_or(|exe| ev.exe.as_ref() == Some(exe))
            && self.pid.is_none_or(|pid| ev.pid == pid)
            && self.uid.is_none_or(|uid| ev.uid == uid)
            && (self.verdicts.is_empty()
                || self.verdicts.iter().any(|v| v == verdict_name(ev.verdict)))
    }
}

fn verdict_name(v: Verdict) -> &'static str {
    v.name()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(d: HashMap<&'static str, Value<'static>>) -> HashMap<String, OwnedValue> {
        d.into_iter()
            .map(|(k, v)| (k.to_string(), OwnedValue::try_from(v).unwrap()))
            .collect()
    }

    fn event(op: Op, pid: u32, exe: &str) -> Event {
        let mut ev = Event::new(op);
        ev.pid = pid;
        ev.exe = Some(exe.into());
        ev
    }

    #[test]
    fn default_filter_keeps_everything() {
        assert!(Filter::default().matches(&event(Op::Bind, 1, "/bin/x")));
    }

    #[test]
    fn filter_round_trips_and_matches_all_keys() {
        let f = Filter {
            ops: vec!["connect".into(), "accept".into()],
            exe: Some("/usr/bin/curl".into()),
            pid: Some(42),
            uid: None,
            verdicts: vec!["allow".into()],
        };
        let back = Filter::from_dict(owned(f.to_dict())).unwrap();
        assert_eq!(back, f);
        assert!(f.matches(&event(Op::Connect, 42, "/usr/bin/curl")));
        assert!(!f.matches(&event(Op::Bind, 42, "/usr/bin/curl")));
        assert!(!f.matches(&event(Op::Connect, 43, "/usr/bin/curl")));
        assert!(!f.matches(&event(Op::Connect, 42, "/usr/bin/wget")));
        let mut observed = event(Op::Accept, 42, "/usr/bin/curl");
        observed.verdict = Verdict::Observe;
        assert!(!f.matches(&observed));
    }

    #[test]
    fn typos_and_wrong_types_are_refused() {
        let mut d = HashMap::new();
        d.insert("op", Value::from(vec!["connect".to_string()]));
        assert_eq!(
            Filter::from_dict(owned(d)).unwrap_err(),
            FilterError::UnknownKey("op".into())
        );
        let mut d = HashMap::new();
        d.insert("pid", Value::from("42"));
        assert!(matches!(
            Filter::from_dict(owned(d)).unwrap_err(),
            FilterError::WrongType { want: "u", .. }
        ));
        let mut d = HashMap::new();
        d.insert("ops", Value::from(vec!["conect".to_string()]));
        assert!(matches!(
            Filter::from_dict(owned(d)).unwrap_err(),
            FilterError::BadValue { .. }
        ));
    }
}
