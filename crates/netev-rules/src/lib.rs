//! netev's rules: what a rule is, how rules decide, and how they become the
//! tables the kernel decides with.
//!
//! Pure logic: no files, no kernel, no bus. The daemon, the supervised mode
//! and the front-ends share it, so the verdict a person is shown is the one
//! the kernel applies.
//!
//! ```
//! use netev_rules::{Action, Policy, Query, RuleSet, fields};
//! use netev_event::{Family, Op, Proto};
//!
//! let mut deny = fields::rule_from_fields(
//!     [("action", "deny"), ("ops", "connect"), ("addr", "10.0.0.0/8")],
//!     chrono::Utc::now(),
//!     &|_| None,
//! ).unwrap();
//! deny.id = 1;
//! let rules = RuleSet::new(vec![deny], Policy::default());
//! let q = Query {
//!     op: Op::Connect, family: Family::INET, proto: Proto::TCP, exe: Some("/usr/bin/curl"),
//!     uid: 1000, addr: Some("10.1.2.3".parse().unwrap()), port: Some(443),
//!     path: None,
//! };
//! assert_eq!(rules.decide(&q).action, Action::Deny);
//! ```
#![deny(missing_docs)]

pub mod compile;
pub mod fields;
pub mod file;
pub mod lifecycle;
mod matcher;
mod model;

pub use matcher::{Decision, Policy, RuleSet};
pub use model::*;

/// A rule, a field or a rules file that cannot be used, and why.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RuleError {
    /// A field's value is wrong.
    #[error("{field} = {value:?}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What was given.
        value: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// A field that rules do not have.
    #[error("unknown field {0:?}; rules have: {fields}", fields = fields::FIELDS.join(", "))]
    UnknownField(String),
    /// A required field is missing.
    #[error("missing field {0:?}")]
    Missing(&'static str),
    /// Fields that are fine alone but not together.
    #[error("{0}")]
    Conflict(String),
    /// A problem at a place in a rules file.
    #[error("{path}:{line}: {reason}")]
    File {
        /// The file as named by the user.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong there.
        reason: String,
    },
    /// The kernel tables cannot hold the rule set.
    #[error("{0}")]
    Capacity(String),
}
