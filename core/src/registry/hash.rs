//! The registry's hashing: the seeded hasher of its maps, the id index's keyed multiply
//! and the user-id hash (keyed NH), all keyed from the registry's entropy so that input
//! chosen by clients cannot be crafted to collide.

use super::Id128;
use std::collections::HashMap;

/// Hash state seeded from the registry's entropy, so connection keys chosen by clients
/// cannot be crafted to collide (the seed is not in the source, unlike a fixed-key
/// hasher's). User ids have their own hash (`NameKeys`).
pub(super) type Hasher = ahash::RandomState;
pub(super) type Map<K, V> = HashMap<K, V, Hasher>;
/// How an index rehashes its entries when it grows. One type for both indexes, so the
/// table's growth code is in the .wasm once (it runs rarely; the indirect call is free).
pub(super) type Rehash<'a> = &'a dyn Fn(&u32) -> u64;

/// The id index's hash. Not a general-purpose hasher: the ids in the index are made
/// here, and their low 48 bits are random, so keyed multiplies spread them (ids
/// presented for lookup can name only what is there; they can make no chain longer).
/// The key goes in before the first multiply, so even ids from a crafted snapshot
/// cannot be chosen to collide without it. On wasm32 this is a few instructions where
/// ahash's fallback, with no 64x64->128 multiply and no byte swap instruction, takes
/// about a hundred.
pub(super) fn uuid_hash(key: u64, id: Id128) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let x = ((id.lo ^ key).wrapping_mul(K) ^ id.hi).wrapping_mul(K);
    // The table probes with the low bits (and on wasm32 tags with bits 25..32).
    x ^ (x >> 32)
}

/// 8-byte words of a user id that `NameKeys` has keys for: the longest id (256 bytes).
/// Longer input (never an id stored here) reuses them in turn.
const NAME_KEY_WORDS: usize = 32;

/// Keys of the user-id hash: two 32-bit keys per word of the id.
///
/// The hash is NH (as in UMAC): the sum over the id's 8-byte words of
/// `(lo + k0) * (hi + k1)`, 32-bit halves widened to a 64-bit product. For two different
/// ids of the same length, the chance over the keys that the sums differ by any given
/// amount is at most 2^-32, so ids chosen without the keys cannot be made to collide.
/// On wasm32 a word costs one 64-bit multiply; ahash's fallback there, with no
/// 64x64->128 multiply and no byte swap instruction, cost about 8% of an acquire +
/// release pair (profiled at 10,000 live).
#[derive(Clone)]
pub(super) struct NameKeys([[u32; 2]; NAME_KEY_WORDS]);

impl NameKeys {
    /// Expands a 64-bit seed (splitmix64): the registry draws no more entropy for them,
    /// so seeded registries keep making the same ids.
    pub(super) fn new(mut seed: u64) -> Self {
        let mut keys = [[0; 2]; NAME_KEY_WORDS];
        for k in &mut keys {
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            *k = [z as u32, (z >> 32) as u32];
        }
        Self(keys)
    }

    /// 32 bits of hash for `bytes`.
    pub(super) fn hash(&self, bytes: &[u8]) -> u32 {
        let nh = |i: usize, w: u64| {
            let [k0, k1] = self.0[i % NAME_KEY_WORDS];
            u64::from((w as u32).wrapping_add(k0)) * u64::from(((w >> 32) as u32).wrapping_add(k1))
        };
        // The length goes in too: ids that differ only in trailing zero bytes fill their
        // last word alike.
        let mut acc = (bytes.len() as u64).wrapping_mul(0xff51_afd7_ed55_8ccd);
        let mut words = bytes.chunks_exact(8);
        let mut i = 0;
        for w in &mut words {
            // As an array, not `copy_from_slice` (see `copy_short`).
            let w = <[u8; 8]>::try_from(w).map_or(0, u64::from_le_bytes);
            acc = acc.wrapping_add(nh(i, w));
            i += 1;
        }
        let rest = words.remainder();
        let n = rest.len();
        if n >= 4 {
            // Two overlapping halves: together with the length they determine the bytes.
            let half = |at: usize| {
                u32::from_le_bytes([rest[at], rest[at + 1], rest[at + 2], rest[at + 3]])
            };
            acc = acc.wrapping_add(nh(i, u64::from(half(0)) | u64::from(half(n - 4)) << 32));
        } else if n > 0 {
            let w = u64::from(rest[0]) | u64::from(rest[n / 2]) << 8 | u64::from(rest[n - 1]) << 16;
            acc = acc.wrapping_add(nh(i, w));
        }
        // The table probes with the low bits: bring every bit of the sum to them.
        let x = acc ^ (acc >> 32);
        (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_crafted_to_cancel_out_still_hash_apart() {
        // A linear mix of the halves would send all of these to one bucket chain.
        let key = 0x0123_4567_89ab_cdef;
        let mut hashes: Vec<u64> = (0..10_000u64)
            .map(|i| {
                let hi = i << 20;
                uuid_hash(
                    key,
                    Id128 {
                        hi,
                        lo: hi.rotate_left(32) ^ 0x5555,
                    },
                )
            })
            .collect();
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), 10_000);
        let low_bits: std::collections::HashSet<u64> = hashes.iter().map(|h| h & 0xffff).collect();
        assert!(
            low_bits.len() > 8_000,
            "low bits spread: {}",
            low_bits.len()
        );
    }

    #[test]
    fn user_ids_hash_apart() {
        let keys = NameKeys::new(0x0123_4567_89ab_cdef);
        let mut ids: Vec<String> = (0..20_000).map(|i| format!("user-{i}")).collect();
        // Every length up to past the longest id, and ids that differ only in trailing
        // zero bytes or in one byte of a word's high half.
        ids.extend((1..=300).map(|n| "x".repeat(n)));
        ids.extend((0..8).map(|n| format!("a{}", "\0".repeat(n))));
        ids.extend((0..64).map(|b| {
            format!("abcd{}efg", char::from(b'0' + b % 10)) + &"z".repeat(b as usize / 10)
        }));
        let hashes: std::collections::HashSet<u32> =
            ids.iter().map(|s| keys.hash(s.as_bytes())).collect();
        assert_eq!(hashes.len(), ids.len());
        // The table probes with the low bits.
        let low: std::collections::HashSet<u32> = (0..20_000)
            .map(|i| keys.hash(format!("user-{i}").as_bytes()) & 0xffff)
            .collect();
        assert!(low.len() > 15_000, "low bits spread: {}", low.len());
        // Other keys, other hashes.
        let other = NameKeys::new(1);
        assert_ne!(keys.hash(b"user-1"), other.hash(b"user-1"));
    }
}
