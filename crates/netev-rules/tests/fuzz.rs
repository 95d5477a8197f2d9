//! Fuzzing on stable Rust: every parser of netev-rules fed arbitrary and
//! near-valid input (rules files, the text fields of `netev rules add` and
//! AddRule, stored listings). Each must answer with a rule or an error, never
//! panic; what parses must list and parse back to the same rule.
//! `NETEV_FUZZ_CASES` sets the cases per target (CI: the default below;
//! docs/operations.md, "Fuzzing", for a longer run).

use chrono::{TimeZone, Utc};
use netev_rules::fields::{rule_from_fields, rule_from_listing, rule_to_fields, FIELDS};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("NETEV_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096)
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
}

/// Values close to what the fields take, and hostile ones.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z0-9+*/.:,_ -]{0,24}",
        Just("allow".to_string()),
        Just("deny".to_string()),
        Just("ask".to_string()),
        Just("connect,bind".to_string()),
        Just("/usr/bin/*".to_string()),
        Just("/usr/**".to_string()),
        Just("sha256:".to_string() + &"ab".repeat(32)),
        Just("10.0.0.0/8".to_string()),
        Just("::ffff:1.2.3.4/120".to_string()),
        Just("80-90".to_string()),
        Just("65536".to_string()),
        Just("5m".to_string()),
        Just("2026-12-01T12:00:00Z".to_string()),
        Just("-2147483649".to_string()),
        "\\PC{0,8}",
    ]
}

fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(FIELDS.to_vec()).prop_map(str::to_string),
        Just("id".to_string()),
        Just("hits".to_string()),
        Just("last_hit".to_string()),
        Just("created".to_string()),
        "[a-z_]{1,10}",
    ]
}

fn lookup(name: &str) -> Option<u32> {
    (name == "alice").then_some(1000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn rule_fields_never_panic_and_what_parses_round_trips(
        pairs in proptest::collection::vec((field(), value()), 0..8)
    ) {
        let it = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        if let Ok(rule) = rule_from_fields(it, now(), &lookup) {
            let listed = rule_to_fields(&rule, &|_| None);
            let again = rule_from_fields(
                listed.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                now(),
                &lookup,
            );
            prop_assert!(again.is_ok(), "{listed:?}: {again:?}");
            let again = again.unwrap();
            prop_assert_eq!(again.action, rule.action);
            prop_assert_eq!(again.cond, rule.cond);
        }
        let it = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let _ = rule_from_listing(it);
    }

    #[test]
    fn any_text_as_a_rules_file_never_panics(text in any::<String>()) {
        let _ = netev_rules::file::parse("fuzz.toml", &text, now(), &lookup);
    }

    #[test]
    fn near_valid_rules_files_never_panic(
        rules in proptest::collection::vec(
            proptest::collection::vec((field(), value(), any::<bool>()), 0..6), 0..4)
    ) {
        let mut text = String::new();
        for rule in &rules {
            text.push_str("[[rule]]\n");
            for (k, v, quoted) in rule {
                if *quoted {
                    text.push_str(&format!("{k} = {v:?}\n"));
                } else {
                    text.push_str(&format!("{k} = {v}\n"));
                }
            }
        }
        let _ = netev_rules::file::parse("fuzz.toml", &text, now(), &lookup);
    }

    #[test]
    fn single_values_never_panic(v in value()) {
        let _ = netev_rules::Duration::parse(&v, now());
        let _ = netev_rules::parse_addr(&v);
        let _ = netev_rules::parse_op(&v);
        let _ = netev_rules::parse_family(&v);
        let _ = netev_rules::parse_proto(&v);
        let _ = v.parse::<netev_rules::Action>();
        let _ = v.parse::<netev_rules::ExeMatch>();
    }
}
