//! Ids: one UUIDv7 per lease, spelled as TypeIDs of several kinds that share one suffix.
//!
//! `conn_<s>`, `run_<s>` and `thread_<s>` are the same lease. Ownership is decided by an
//! exact lookup of the 128-bit value, never by guessing at the layout of a string (the
//! incident's parser did that and matched the wrong users).

pub mod base32;
pub mod entropy;
pub mod typeid;
pub mod uuid7;

pub use entropy::{Entropy, OsEntropy, SeededEntropy};
pub use typeid::{format, parse, validate_prefix, IdError, TypeId};
pub use uuid7::Uuid7Generator;

/// Kind of the primary lease id.
pub const CONN: &str = "conn";
/// Kind of the run id derived from a lease.
pub const RUN: &str = "run";
/// Kind of the thread id derived from a lease.
pub const THREAD: &str = "thread";

/// The parts of a parsed id, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdParts {
    pub kind: String,
    pub suffix: String,
    pub uuid: u128,
    pub timestamp_ms: u64,
}

/// Parses `id` into its parts.
pub fn parse_parts(id: &str) -> Result<IdParts, IdError> {
    let parsed = parse(id)?;
    // A valid id ends with the 26 ASCII characters of its suffix.
    let suffix = id.get(id.len() - base32::SUFFIX_LEN..).unwrap_or_default();
    Ok(IdParts {
        kind: parsed.prefix.to_owned(),
        suffix: suffix.to_owned(),
        uuid: parsed.uuid,
        timestamp_ms: uuid7::timestamp_ms(parsed.uuid),
    })
}

/// Re-spells `id` with another kind; the suffix (the lease) is unchanged.
pub fn derive(id: &str, kind: &str) -> Result<String, IdError> {
    validate_prefix(kind)?;
    let parsed = parse(id)?;
    Ok(format(kind, parsed.uuid))
}

/// Whether two ids name the same lease (same 128-bit value), whatever their kinds.
pub fn same_lease(a: &str, b: &str) -> Result<bool, IdError> {
    Ok(parse(a)?.uuid == parse(b)?.uuid)
}
