//! The TypeID suffix encoding: 128 bits as 26 characters of lowercase Crockford base32.
//!
//! 26 characters hold 130 bits, so the first character only carries the top 3 bits of
//! the UUID and must be `0`-`7`. The alphabet has no `i l o u`, and unlike Crockford's
//! decoder we accept no look-alikes and no uppercase: one id, one spelling, so ids can be
//! compared as strings and used as exact index keys.

/// Encoding alphabet, in value order (so the encoding sorts like the number).
pub const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Length of an encoded suffix.
pub const SUFFIX_LEN: usize = 26;

const INVALID: u8 = 0xff;

/// Byte -> 5-bit value, or `INVALID`. Built at compile time from `ALPHABET`.
const DECODE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 32 {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// Why a suffix failed to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuffixError {
    /// Not exactly 26 bytes long; holds the length found.
    Length(usize),
    /// A byte outside the alphabet at this position.
    Character(usize),
    /// First character above `7`: the value would not fit in 128 bits.
    Overflow,
}

// The value is handled as three parts that fit machine words: `hi` (characters 0-12,
// bits 65-127), `mid` (character 13, bits 60-64) and `lo` (characters 14-25, bits
// 0-59). wasm32 has no 128-bit shifts; a variable u128 shift is a library call, and
// one per character made this the bulk of `newId` and `parseId`.
const LO_BITS: u32 = 60;
const LO_MASK: u64 = (1 << LO_BITS) - 1;

/// Encodes a 128-bit value as a 26-character suffix.
pub fn encode(value: u128) -> [u8; SUFFIX_LEN] {
    let hi = (value >> 65) as u64;
    let mid = (value >> LO_BITS) as u64 & 0x1f;
    let lo = value as u64 & LO_MASK;
    let mut out = [0u8; SUFFIX_LEN];
    // Character j holds 5 bits; the leftmost holds only the top 3 of the value.
    for (i, slot) in out[..13].iter_mut().rev().enumerate() {
        *slot = ALPHABET[((hi >> (5 * i)) & 0x1f) as usize];
    }
    out[13] = ALPHABET[mid as usize];
    for (i, slot) in out[14..].iter_mut().rev().enumerate() {
        *slot = ALPHABET[((lo >> (5 * i)) & 0x1f) as usize];
    }
    out
}

/// Decodes a 26-character suffix into its 128-bit value.
pub fn decode(suffix: &[u8]) -> Result<u128, SuffixError> {
    let Ok(chars) = <&[u8; SUFFIX_LEN]>::try_from(suffix) else {
        return Err(SuffixError::Length(suffix.len()));
    };
    // No branch per character: valid digits are below 32 and `INVALID` has the top bit
    // set, so OR-ing every digit tells at the end whether one was invalid; only then is
    // the position looked for.
    let mut seen = 0u8;
    let mut part = |range: std::ops::Range<usize>| {
        chars[range].iter().fold(0u64, |acc, &byte| {
            let digit = DECODE[byte as usize];
            seen |= digit;
            (acc << 5) | u64::from(digit & 0x1f)
        })
    };
    let (hi, mid, lo) = (part(0..13), part(13..14), part(14..SUFFIX_LEN));
    // Reasons in the order a left-to-right reader meets them: a first character above
    // `7` is reported even if a later one is invalid.
    let first = DECODE[chars[0] as usize];
    if first != INVALID && first > 7 {
        return Err(SuffixError::Overflow);
    }
    if seen & 0x80 != 0 {
        let position = chars.iter().position(|&b| DECODE[b as usize] == INVALID);
        return Err(SuffixError::Character(position.unwrap_or(0)));
    }
    Ok((u128::from(hi) << 65) | (u128::from(mid) << LO_BITS) | u128::from(lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extremes_round_trip() {
        assert_eq!(&encode(0), b"00000000000000000000000000");
        assert_eq!(&encode(u128::MAX), b"7zzzzzzzzzzzzzzzzzzzzzzzzz");
        assert_eq!(decode(b"7zzzzzzzzzzzzzzzzzzzzzzzzz"), Ok(u128::MAX));
        assert_eq!(
            decode(b"8zzzzzzzzzzzzzzzzzzzzzzzzz"),
            Err(SuffixError::Overflow)
        );
    }

    #[test]
    fn every_bit_round_trips() {
        for bit in 0..128 {
            let v = 1u128 << bit;
            assert_eq!(decode(&encode(v)), Ok(v), "bit {bit}");
            assert_eq!(decode(&encode(!v)), Ok(!v), "all but bit {bit}");
        }
        // Reference: the plain 5-bits-per-character definition.
        let v = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128;
        let expected: Vec<u8> = (0..SUFFIX_LEN)
            .map(|j| ALPHABET[((v >> (5 * (SUFFIX_LEN - 1 - j))) & 0x1f) as usize])
            .collect();
        assert_eq!(encode(v).to_vec(), expected);
    }

    #[test]
    fn order_is_preserved() {
        let values = [
            0u128,
            1,
            31,
            32,
            1 << 64,
            (1 << 64) + 1,
            u128::MAX - 1,
            u128::MAX,
        ];
        for pair in values.windows(2) {
            assert!(encode(pair[0]) < encode(pair[1]));
        }
    }

    #[test]
    fn rejects_lookalikes_and_uppercase() {
        assert_eq!(
            decode(b"0000000000000000000000000i"),
            Err(SuffixError::Character(25))
        );
        assert_eq!(
            decode(b"0000000000000000000000000A"),
            Err(SuffixError::Character(25))
        );
        assert_eq!(decode(b"000"), Err(SuffixError::Length(3)));
        assert_eq!(
            decode(b"i000000000000000000000000i"),
            Err(SuffixError::Character(0))
        );
        assert_eq!(
            decode(b"8000000000000000000000000i"),
            Err(SuffixError::Overflow)
        );
    }
}
