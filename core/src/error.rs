//! The one error type of the core. Each variant has a stable code that crosses into JS
//! unchanged, so hosts can branch on `err.code` instead of parsing messages.

use thiserror::Error;

/// Misuse of the API: bad input, never a quota decision (a refusal is a value).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LeaseError {
    /// The user id is not a non-empty string of at most 256 UTF-8 bytes.
    #[error("invalid user id: {0}")]
    InvalidUserId(String),
    /// A lease id that is not a well-formed TypeID of a kind this registry issues.
    #[error("invalid id: {0}")]
    InvalidId(String),
    /// An option with the wrong type or range, or an unknown option name.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// A time that is NaN, infinite, negative or beyond the 48-bit UUIDv7 range.
    #[error("invalid time: {0}")]
    InvalidTime(String),
    /// A snapshot that is truncated, corrupt, inconsistent or from a newer version.
    #[error("invalid snapshot: {0}")]
    InvalidSnapshot(String),
}

impl LeaseError {
    /// All codes, in the order of the TypeScript union.
    pub const CODES: [&'static str; 5] = [
        "INVALID_USER_ID",
        "INVALID_ID",
        "INVALID_OPTION",
        "INVALID_TIME",
        "INVALID_SNAPSHOT",
    ];

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            LeaseError::InvalidUserId(_) => "INVALID_USER_ID",
            LeaseError::InvalidId(_) => "INVALID_ID",
            LeaseError::InvalidOption(_) => "INVALID_OPTION",
            LeaseError::InvalidTime(_) => "INVALID_TIME",
            LeaseError::InvalidSnapshot(_) => "INVALID_SNAPSHOT",
        }
    }
}

impl From<crate::id::IdError> for LeaseError {
    fn from(e: crate::id::IdError) -> Self {
        LeaseError::InvalidId(e.to_string())
    }
}

/// Longest user id accepted, in UTF-8 bytes.
pub const MAX_USER_ID_BYTES: usize = 256;

/// Checks a user id (also used for connection keys, which share the rules).
pub fn check_user_id(user: &str) -> Result<(), LeaseError> {
    if user.is_empty() {
        return Err(LeaseError::InvalidUserId("user id is empty".into()));
    }
    if user.len() > MAX_USER_ID_BYTES {
        return Err(LeaseError::InvalidUserId(format!(
            "user id is {} bytes of UTF-8; at most {MAX_USER_ID_BYTES} allowed",
            user.len()
        )));
    }
    Ok(())
}

/// Writes a float for an error message without `f64`'s `Display`, which would pull
/// about 20 KiB of float-formatting code into the .wasm for the sake of error text.
pub fn describe_number(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let sign = if x < 0.0 { "-" } else { "" };
    let a = x.abs();
    if a >= 9.0e15 {
        return format!("{sign}~2^{}", a.log2() as u32);
    }
    let whole = a.trunc() as u64;
    let micro = ((a - a.trunc()) * 1e6).round() as u64;
    if micro == 0 {
        format!("{sign}{whole}")
    } else {
        let frac = format!("{micro:06}");
        format!("{sign}{whole}.{}", frac.trim_end_matches('0'))
    }
}

/// A millisecond timestamp from the host as the core takes it (finite, not negative,
/// within UUIDv7's 48 bits; sub-millisecond fractions, from performance.now()-style
/// clocks, truncated), or `None`. The one definition of a valid time: `check_time` says
/// why one is not, and the lane calls ask only whether (a lane call that fails answers
/// NaN, and the checked binding, called next, reports why).
pub fn time_ms(now_ms: f64) -> Option<u64> {
    // NaN fails both comparisons; the infinities fail one each.
    (now_ms >= 0.0 && now_ms <= crate::id::uuid7::MAX_TIMESTAMP_MS as f64).then_some(now_ms as u64)
}

/// Checks a millisecond timestamp coming from the host.
pub fn check_time(now_ms: f64) -> Result<u64, LeaseError> {
    if let Some(t) = time_ms(now_ms) {
        return Ok(t);
    }
    let why = if !now_ms.is_finite() {
        "is not a finite number"
    } else if now_ms < 0.0 {
        "is negative"
    } else {
        "is beyond the 48-bit millisecond range of UUIDv7"
    };
    Err(LeaseError::InvalidTime(format!(
        "{} {why}",
        describe_number(now_ms)
    )))
}

/// Items separated by ", ", for error messages. Written through the formatter rather
/// than with `join`, whose generic copy loop costs the .wasm about half a KiB per item
/// type for a string only ever built on an error path.
pub struct Listed<'a, T>(pub &'a [T]);

impl<T: AsRef<str>> std::fmt::Display for Listed<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(item.as_ref())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn time_ms_accepts_what_check_time_accepts() {
        let max = crate::id::uuid7::MAX_TIMESTAMP_MS as f64;
        for now in [
            0.0,
            -0.0,
            0.5,
            1.7e12,
            1_700_000_000_007.9,
            max,
            max + 1.0,
            f64::from_bits(max.to_bits() + 1),
            -1.0,
            -0.1,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            f64::MAX,
        ] {
            assert_eq!(super::time_ms(now), super::check_time(now).ok(), "{now}");
        }
    }
}
