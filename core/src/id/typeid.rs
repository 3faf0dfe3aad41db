//! TypeID (spec v0.3.0) parsing and formatting.
//!
//! A TypeID is `prefix_suffix`, or a bare suffix when the prefix is empty. The prefix is
//! 1-63 characters of `a-z` and `_`, starting and ending with a letter; the split is at the
//! last underscore, because the suffix never contains one.

use super::base32::{self, SuffixError, SUFFIX_LEN};
use std::fmt;

/// Longest prefix the spec allows.
pub const MAX_PREFIX_LEN: usize = 63;
/// Longest valid TypeID: prefix, separator, suffix.
pub const MAX_ID_LEN: usize = MAX_PREFIX_LEN + 1 + SUFFIX_LEN;

/// Why a string is not a valid TypeID. Every variant names its reason in `Display`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdError {
    Empty,
    TooLong(usize),
    EmptyPrefixWithSeparator,
    PrefixTooLong(usize),
    PrefixCharacter { position: usize },
    PrefixEdge,
    SuffixLength(usize),
    SuffixCharacter { position: usize },
    SuffixOverflow,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdError::Empty => write!(f, "id is empty"),
            IdError::TooLong(n) => {
                write!(f, "id is {n} bytes long; a TypeID is at most {MAX_ID_LEN}")
            }
            IdError::EmptyPrefixWithSeparator => {
                write!(f, "id starts with '_': an empty prefix takes no separator")
            }
            IdError::PrefixTooLong(n) => {
                write!(
                    f,
                    "prefix is {n} characters; at most {MAX_PREFIX_LEN} allowed"
                )
            }
            IdError::PrefixCharacter { position } => write!(
                f,
                "prefix character at position {position} is not a lowercase letter a-z or '_'"
            ),
            IdError::PrefixEdge => write!(f, "prefix must start and end with a letter a-z"),
            IdError::SuffixLength(n) => {
                write!(
                    f,
                    "suffix is {n} characters; it must be exactly {SUFFIX_LEN}"
                )
            }
            IdError::SuffixCharacter { position } => write!(
                f,
                "suffix character at position {position} is not in the TypeID alphabet \
                 (lowercase 0-9a-z without i, l, o, u)"
            ),
            IdError::SuffixOverflow => write!(
                f,
                "suffix starts with a character above '7', so it does not fit in 128 bits"
            ),
        }
    }
}

impl std::error::Error for IdError {}

/// A parsed TypeID borrowing its prefix from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeId<'a> {
    pub prefix: &'a str,
    pub uuid: u128,
}

/// Checks a prefix (a "kind") against the spec. The empty prefix is valid.
pub fn validate_prefix(prefix: &str) -> Result<(), IdError> {
    let bytes = prefix.as_bytes();
    if bytes.is_empty() {
        return Ok(());
    }
    if bytes.len() > MAX_PREFIX_LEN {
        return Err(IdError::PrefixTooLong(prefix.chars().count()));
    }
    if let Some(position) = bytes
        .iter()
        .position(|&b| !(b.is_ascii_lowercase() || b == b'_'))
    {
        return Err(IdError::PrefixCharacter { position });
    }
    if bytes[0] == b'_' || bytes[bytes.len() - 1] == b'_' {
        return Err(IdError::PrefixEdge);
    }
    Ok(())
}

/// Parses a valid TypeID's bytes into its prefix length and UUID; `None` for anything
/// else. The quick test `parse` tries first, and the lane's whole parse: the suffix is
/// the last 26 bytes and never holds `_`, so a prefix's separator can only be the byte
/// before it. No search for it, no UTF-8 check (every accepted byte is ASCII), no error
/// built. Accepts nothing `parse` refuses and gives the same parts; the reason for a
/// refusal is `parse`'s to find.
pub fn parse_bytes(id: &[u8]) -> Option<(usize, u128)> {
    let (prefix, suffix) = match id.len().checked_sub(SUFFIX_LEN + 1) {
        // No room for a separator: the whole id is the suffix.
        None => (&[][..], id),
        // `_` then a suffix: an empty prefix takes no separator.
        Some(0) => return None,
        Some(at) => {
            let (prefix, rest) = id.split_at_checked(at)?;
            match rest.split_first() {
                Some((b'_', suffix)) => (prefix, suffix),
                _ => return None,
            }
        }
    };
    if let (Some(&first), Some(&last)) = (prefix.first(), prefix.last()) {
        let chars_ok = prefix.iter().all(|&b| b.is_ascii_lowercase() || b == b'_');
        if prefix.len() > MAX_PREFIX_LEN || !chars_ok || first == b'_' || last == b'_' {
            return None;
        }
    }
    let uuid = base32::decode(suffix).ok()?;
    Some((prefix.len(), uuid))
}

/// Parses a TypeID strictly.
pub fn parse(id: &str) -> Result<TypeId<'_>, IdError> {
    match parse_bytes(id.as_bytes()) {
        // Every byte is ASCII, so any length is a character boundary.
        Some((prefix_len, uuid)) => Ok(TypeId {
            prefix: id.get(..prefix_len).unwrap_or_default(),
            uuid,
        }),
        None => parse_explained(id),
    }
}

/// Parses a TypeID step by step, naming the first thing wrong: the reference that
/// `parse_bytes` is tested against, and how `parse` explains a refusal.
pub fn parse_explained(id: &str) -> Result<TypeId<'_>, IdError> {
    if id.is_empty() {
        return Err(IdError::Empty);
    }
    if id.len() > MAX_ID_LEN {
        return Err(IdError::TooLong(id.len()));
    }
    // `split_at_checked`, not indexing: `_` is one byte, so the split cannot fail, but
    // the compiler cannot know that, and indexing would pull the panic's formatting
    // code (several KiB) into the .wasm.
    let (prefix, suffix) = match id.rfind('_') {
        Some(0) => return Err(IdError::EmptyPrefixWithSeparator),
        Some(at) => match id.split_at_checked(at) {
            Some((prefix, rest)) => (prefix, rest.get(1..).unwrap_or_default()),
            None => ("", id),
        },
        None => ("", id),
    };
    validate_prefix(prefix)?;
    let uuid = base32::decode(suffix.as_bytes()).map_err(|e| match e {
        SuffixError::Length(_) => IdError::SuffixLength(suffix.chars().count()),
        SuffixError::Character(position) => IdError::SuffixCharacter { position },
        SuffixError::Overflow => IdError::SuffixOverflow,
    })?;
    Ok(TypeId { prefix, uuid })
}

/// Formats `prefix_suffix` (or the bare suffix for an empty prefix).
/// The caller guarantees the prefix is valid.
pub fn format(prefix: &str, uuid: u128) -> String {
    let mut out = String::with_capacity(prefix.len() + 1 + SUFFIX_LEN);
    if !prefix.is_empty() {
        out.push_str(prefix);
        out.push('_');
    }
    // The alphabet is ASCII, so this cannot fail.
    out.push_str(std::str::from_utf8(&base32::encode(uuid)).unwrap_or_default());
    out
}

/// The canonical hyphenated lowercase form of a UUID.
pub fn uuid_string(uuid: u128) -> String {
    // The bytes are ASCII hex digits and hyphens, so this cannot fail.
    std::str::from_utf8(&uuid_ascii(uuid))
        .unwrap_or_default()
        .to_owned()
}

/// The canonical hyphenated lowercase form of a UUID, as bytes (no allocation).
pub fn uuid_ascii(uuid: u128) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    /// Where each byte's two digits go, around the hyphens at 8, 13, 18 and 23.
    const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    let mut out = [b'-'; 36];
    // Byte by byte: wasm32 has no 128-bit shifts (see base32).
    for (&byte, &at) in uuid.to_be_bytes().iter().zip(AT.iter()) {
        out[at] = HEX[usize::from(byte >> 4)];
        out[at + 1] = HEX[usize::from(byte & 0xf)];
    }
    out
}

/// Parses a hyphenated UUID string (used by the spec tests and `fromUuid`).
pub fn parse_uuid(text: &str) -> Option<u128> {
    let bytes = text.as_bytes();
    if bytes.len() != 36 || [8, 13, 18, 23].iter().any(|&i| bytes[i] != b'-') {
        return None;
    }
    let hex: String = text.chars().filter(|&c| c != '-').collect();
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_rules() {
        assert!(validate_prefix("conn").is_ok());
        assert!(validate_prefix("a_b").is_ok());
        assert_eq!(validate_prefix("_a"), Err(IdError::PrefixEdge));
        assert_eq!(validate_prefix("a_"), Err(IdError::PrefixEdge));
        assert_eq!(
            validate_prefix("a1"),
            Err(IdError::PrefixCharacter { position: 1 })
        );
        assert_eq!(
            validate_prefix(&"a".repeat(64)),
            Err(IdError::PrefixTooLong(64))
        );
    }

    #[test]
    fn splits_at_last_underscore() {
        let id = parse("pre_fix_00000000000000000000000001").unwrap();
        assert_eq!(id.prefix, "pre_fix");
        assert_eq!(id.uuid, 1);
    }

    #[test]
    fn uuid_text_round_trip() {
        let u = 0x0190_1234_5678_7abc_8def_0123_4567_89abu128;
        assert_eq!(parse_uuid(&uuid_string(u)), Some(u));
        assert_eq!(parse_uuid("not-a-uuid"), None);
    }
}
