//! Fuzzing on stable Rust: ring-buffer record decoding fed arbitrary bytes
//! and near-valid records (a kind byte, then anything, of every length
//! around the real sizes): a record or an error, never a panic.
//! `NETEV_FUZZ_CASES` sets the cases (docs/operations.md, "Fuzzing").

use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("NETEV_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096)
}

fn record() -> impl Strategy<Value = Vec<u8>> {
    let sizes = [
        std::mem::size_of::<netev_abi::RawEvent>(),
        std::mem::size_of::<netev_abi::RawExec>(),
        std::mem::size_of::<netev_abi::RawHdr>(),
    ];
    let max = sizes.iter().max().copied().unwrap() + 16;
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..max),
        (
            proptest::sample::select(vec![
                netev_abi::KIND_NET,
                netev_abi::KIND_EXEC,
                netev_abi::KIND_EXIT
            ]),
            proptest::collection::vec(any::<u8>(), 0..max)
        )
            .prop_map(|(kind, mut rest)| {
                rest.insert(0, kind);
                rest
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_decode_or_are_refused(bytes in record()) {
        if let Ok(netev_abi::Record::Exec(e)) = netev_abi::decode(&bytes) {
            let _ = e.filename();
        }
        let _ = netev_abi::c_bytes(&bytes);
    }
}
