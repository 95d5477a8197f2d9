//! The daemon's rules: the engine (the set in force and its database), and
//! the owner thread that alone changes them and the kernel's tables.

mod engine;
mod owner;
mod resolve;
mod store;

pub use engine::{read_rules_file, rule_for_answer, ChangeError, Engine};
pub use owner::{RulesHandle, RulesOwner};
