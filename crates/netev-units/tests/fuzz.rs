//! Fuzzing on stable Rust: the grammar of durations and sizes, which flags,
//! the configuration file, rules and queries all parse through, fed
//! arbitrary text: an answer or an error, never a panic (an overflow
//! included). `NETEV_FUZZ_CASES` sets the cases (docs/operations.md,
//! "Fuzzing").

use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("NETEV_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096)
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9]{0,30}[a-zA-Z ]{0,4}",
        "-?[0-9]{1,25}(s|m|h|d|w|K|M|G|T|ms|us)",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn lengths_and_sizes_never_panic(s in text()) {
        let _ = netev_units::parse_length(&s);
        let _ = netev_units::parse_size(&s);
    }
}
