//! The TypeID spec v0.3.0 vectors (copied from the spec into tests/fixtures/typeid),
//! both directions, plus round-trip properties over random ids.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use proptest::prelude::*;
use socket_lease::id::{self, typeid};

#[test]
fn every_valid_vector_decodes_and_encodes() {
    let vectors = common::valid_vectors();
    assert!(vectors.len() >= 9, "spec vectors went missing");
    for v in vectors {
        let parsed = id::parse(&v.typeid).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(parsed.prefix, v.prefix, "{}: prefix", v.name);
        assert_eq!(typeid::uuid_string(parsed.uuid), v.uuid, "{}: uuid", v.name);
        let uuid = typeid::parse_uuid(&v.uuid).expect("vector uuid parses");
        assert_eq!(id::format(&v.prefix, uuid), v.typeid, "{}: encode", v.name);
    }
}

#[test]
fn every_invalid_vector_is_rejected_with_a_reason() {
    let vectors = common::invalid_vectors();
    assert!(vectors.len() >= 20, "spec vectors went missing");
    for v in vectors {
        let err = id::parse(&v.typeid).expect_err(&v.name);
        assert!(!err.to_string().is_empty(), "{}: reason is named", v.name);
    }
}

#[test]
fn rejection_reasons_are_specific() {
    use socket_lease::id::IdError;
    assert_eq!(id::parse(""), Err(IdError::Empty));
    assert_eq!(
        id::parse("_00000000000000000000000000"),
        Err(IdError::EmptyPrefixWithSeparator)
    );
    assert_eq!(id::parse("conn_0000"), Err(IdError::SuffixLength(4)));
    assert_eq!(
        id::parse("conn_8zzzzzzzzzzzzzzzzzzzzzzzzz"),
        Err(IdError::SuffixOverflow)
    );
    assert_eq!(
        id::parse("Conn_00000000000000000000000000"),
        Err(IdError::PrefixCharacter { position: 0 })
    );
    assert!(matches!(
        id::parse(&"a".repeat(200)),
        Err(IdError::TooLong(200))
    ));
}

#[test]
fn the_quick_parse_takes_exactly_the_valid_vectors() {
    for v in common::valid_vectors() {
        let quick = typeid::parse_bytes(v.typeid.as_bytes());
        assert_eq!(quick.map(|(k, _)| k), Some(v.prefix.len()), "{}", v.name);
    }
    for v in common::invalid_vectors() {
        assert_eq!(typeid::parse_bytes(v.typeid.as_bytes()), None, "{}", v.name);
    }
}

/// `parse_bytes` against `parse_explained` on one input: the same parts, or both refuse.
fn quick_agrees(text: &str) -> Result<(), TestCaseError> {
    let explained = typeid::parse_explained(text).ok();
    let quick = typeid::parse_bytes(text.as_bytes());
    prop_assert_eq!(
        quick,
        explained.map(|t| (t.prefix.len(), t.uuid)),
        "{:?}",
        text
    );
    Ok(())
}

/// Valid ids with a byte or two changed, cut or doubled, mostly where a quick test
/// could go wrong: the prefix's ends, the separator and the suffix's first character.
fn near_miss() -> impl Strategy<Value = String> {
    // Where: an index into the spots below, or anywhere.
    let spot = prop_oneof![0usize..5, any::<usize>().prop_map(|n| 5 + n % 1000)];
    let edit = (
        0u8..3,
        spot,
        prop::sample::select(b"_az079xA-\x80".to_vec()),
    );
    let prefix = prop_oneof![prefix_strategy(), "[a-z][a-z_]{61}[a-z]", "[a-z]{1,3}"];
    (prefix, any::<u128>(), proptest::collection::vec(edit, 0..3)).prop_map(
        |(prefix, uuid, edits)| {
            let mut bytes = id::format(&prefix, uuid).into_bytes();
            for (op, spot, b) in edits {
                let n = bytes.len();
                if n == 0 {
                    break;
                }
                let sep = n.saturating_sub(27);
                let at = [0, sep.saturating_sub(1), sep, sep + 1, n - 1]
                    .get(spot)
                    .copied()
                    .unwrap_or(spot.saturating_sub(5))
                    % n;
                match op {
                    0 => bytes[at] = b,
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, b),
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        },
    )
}

fn prefix_strategy() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z]", "[a-z][a-z_]{0,61}[a-z]",]
}

proptest! {
    #[test]
    fn random_ids_round_trip(prefix in prefix_strategy(), uuid in any::<u128>()) {
        let text = id::format(&prefix, uuid);
        let parsed = id::parse(&text).unwrap();
        prop_assert_eq!(parsed.prefix, prefix.as_str());
        prop_assert_eq!(parsed.uuid, uuid);
        prop_assert_eq!(id::format(parsed.prefix, parsed.uuid), text);
    }

    #[test]
    fn derived_ids_share_the_suffix(uuid in any::<u128>(), kind in "[a-z]{1,8}") {
        let conn = id::format("conn", uuid);
        let derived = id::derive(&conn, &kind).unwrap();
        prop_assert!(id::same_lease(&conn, &derived).unwrap());
        prop_assert_eq!(&derived[derived.len() - 26..], &conn[conn.len() - 26..]);
    }

    #[test]
    fn arbitrary_strings_never_panic(s in "\\PC{0,100}") {
        let _ = id::parse(&s);
        quick_agrees(&s)?;
    }


    #[test]
    fn generated_ids_are_strictly_increasing(seed in any::<u64>(), steps in proptest::collection::vec(-5i64..5, 1..200)) {
        let mut g = id::Uuid7Generator::new(id::SeededEntropy::new(seed));
        let mut now: i64 = 1_700_000_000_000;
        let mut last = String::new();
        for step in steps {
            now += step; // the clock may step backwards
            let text = id::format("conn", g.next(now as u64));
            prop_assert!(text > last, "{} <= {}", text, last);
            prop_assert!(id::uuid7::is_v7(id::parse(&text).unwrap().uuid));
            last = text;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_quick_parse_agrees_on_near_misses(text in near_miss()) {
        quick_agrees(&text)?;
    }
}
