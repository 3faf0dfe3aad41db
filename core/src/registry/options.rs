//! Registry options: defaults, validation, and partial updates at run time.

use crate::error::{check_user_id, LeaseError};
use crate::id;
use std::collections::HashMap;
use std::hash::BuildHasher;

/// Hasher for the small, host-configured override table. Fixed seeds are fine here (the
/// keys come from the host's configuration), and reusing ahash instead of std's SipHash
/// keeps a second hash implementation out of the .wasm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConfigHasher;

impl BuildHasher for ConfigHasher {
    type Hasher = ahash::AHasher;
    fn build_hasher(&self) -> ahash::AHasher {
        ahash::RandomState::with_seeds(0x736f_636b, 0x6574_6c65, 0x6173_6521, 0x7573_6572)
            .build_hasher()
    }
}

/// Per-user limit overrides.
pub type UserLimits = HashMap<String, u32, ConfigHasher>;

/// What happens when a user is at the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Refuse the new connection.
    Reject,
    /// Remove the user's oldest lease (by acquire time) and grant the new one.
    EvictOldest,
    /// Remove the user's least recently touched lease and grant the new one.
    EvictIdle,
}

impl Policy {
    pub fn parse(s: &str) -> Result<Self, LeaseError> {
        match s {
            "reject" => Ok(Policy::Reject),
            "evict-oldest" => Ok(Policy::EvictOldest),
            "evict-idle" => Ok(Policy::EvictIdle),
            other => Err(LeaseError::InvalidOption(format!(
                "onLimit must be \"reject\", \"evict-oldest\" or \"evict-idle\", got \"{other}\""
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Reject => "reject",
            Policy::EvictOldest => "evict-oldest",
            Policy::EvictIdle => "evict-idle",
        }
    }
}

/// Whether refusals are enforced or only reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    /// Count and report what would be refused or evicted, but grant everything
    /// (like nginx's `limit_conn_dry_run`). The user table bound still holds.
    DryRun,
}

impl Mode {
    pub fn parse(s: &str) -> Result<Self, LeaseError> {
        match s {
            "enforce" => Ok(Mode::Enforce),
            "dry-run" => Ok(Mode::DryRun),
            other => Err(LeaseError::InvalidOption(format!(
                "mode must be \"enforce\" or \"dry-run\", got \"{other}\""
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::DryRun => "dry-run",
        }
    }
}

/// Largest accepted limit; far above any real per-user or global cap, and small enough
/// that counts never overflow a u32.
pub const MAX_LIMIT: u32 = 1 << 30;
/// Longest accepted TTL: one year.
pub const MAX_TTL_MS: u64 = 365 * 24 * 3600 * 1000;

/// Complete, validated options.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub per_user_limit: u32,
    pub global_limit: Option<u32>,
    pub user_limits: UserLimits,
    pub ttl_ms: u64,
    pub on_limit: Policy,
    pub warn_ratio: f64,
    pub max_users: u32,
    pub mode: Mode,
    /// Extra id kinds derived from every lease, beyond `conn`, `run` and `thread`.
    pub kinds: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            per_user_limit: 20,
            global_limit: None,
            user_limits: UserLimits::default(),
            ttl_ms: 90_000,
            on_limit: Policy::Reject,
            warn_ratio: 0.8,
            max_users: 1_000_000,
            mode: Mode::Enforce,
            kinds: Vec::new(),
        }
    }
}

/// A partial update; `None` leaves a field alone. `global_limit: Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OptionsPatch {
    pub per_user_limit: Option<u32>,
    pub global_limit: Option<Option<u32>>,
    pub user_limits: Option<UserLimits>,
    pub ttl_ms: Option<u64>,
    pub on_limit: Option<Policy>,
    pub warn_ratio: Option<f64>,
    pub max_users: Option<u32>,
    pub mode: Option<Mode>,
    pub kinds: Option<Vec<String>>,
}

fn check_limit(name: &str, n: u32) -> Result<u32, LeaseError> {
    if n > MAX_LIMIT {
        return Err(LeaseError::InvalidOption(format!(
            "{name} must be at most {MAX_LIMIT}, got {n}"
        )));
    }
    Ok(n)
}

impl Options {
    /// Applies `patch` to a copy of `self`, validating every field; `self` is untouched
    /// when any field is invalid.
    pub fn patched(&self, patch: &OptionsPatch) -> Result<Options, LeaseError> {
        let mut next = self.clone();
        if let Some(n) = patch.per_user_limit {
            next.per_user_limit = check_limit("perUserLimit", n)?;
        }
        if let Some(g) = patch.global_limit {
            next.global_limit = g.map(|n| check_limit("globalLimit", n)).transpose()?;
        }
        if let Some(map) = &patch.user_limits {
            for (user, &n) in map {
                check_user_id(user).map_err(|e| {
                    LeaseError::InvalidOption(format!("userLimits has a bad key: {e}"))
                })?;
                check_limit("userLimits value", n)?;
            }
            next.user_limits = map.clone();
        }
        if let Some(ttl) = patch.ttl_ms {
            if ttl == 0 || ttl > MAX_TTL_MS {
                return Err(LeaseError::InvalidOption(format!(
                    "ttlMs must be between 1 and {MAX_TTL_MS}, got {ttl}"
                )));
            }
            next.ttl_ms = ttl;
        }
        if let Some(p) = patch.on_limit {
            next.on_limit = p;
        }
        if let Some(r) = patch.warn_ratio {
            if !(r > 0.0 && r <= 1.0) {
                return Err(LeaseError::InvalidOption(format!(
                    "warnRatio must be in (0, 1], got {}",
                    crate::error::describe_number(r)
                )));
            }
            next.warn_ratio = r;
        }
        if let Some(m) = patch.max_users {
            if m == 0 {
                return Err(LeaseError::InvalidOption(
                    "maxUsers must be at least 1".into(),
                ));
            }
            next.max_users = m;
        }
        if let Some(m) = patch.mode {
            next.mode = m;
        }
        if let Some(kinds) = &patch.kinds {
            let mut all: Vec<&str> = vec![id::CONN, id::RUN, id::THREAD];
            for kind in kinds {
                if kind.is_empty() {
                    return Err(LeaseError::InvalidOption(
                        "kinds: an id kind cannot be empty".into(),
                    ));
                }
                id::validate_prefix(kind).map_err(|e| {
                    LeaseError::InvalidOption(format!(
                        "kinds: \"{kind}\" is not a TypeID prefix: {e}"
                    ))
                })?;
                if all.contains(&kind.as_str()) {
                    return Err(LeaseError::InvalidOption(format!(
                        "kinds: \"{kind}\" is listed twice or is built in"
                    )));
                }
                all.push(kind);
            }
            next.kinds = kinds.clone();
        }
        Ok(next)
    }

    /// The limit that applies to `user`.
    pub fn limit_for(&self, user: &str) -> u32 {
        // Most deployments set no overrides: skip hashing the user id for nothing.
        if self.user_limits.is_empty() {
            return self.per_user_limit;
        }
        self.user_limits
            .get(user)
            .copied()
            .unwrap_or(self.per_user_limit)
    }

    /// Active count at which a user is "near" its limit.
    pub fn warn_threshold(&self, limit: u32) -> u32 {
        ((f64::from(limit) * self.warn_ratio).ceil() as u32).clamp(1, limit.max(1))
    }

    /// Whether `kind` names ids of leases in this registry.
    pub fn is_lease_kind(&self, kind: &str) -> bool {
        kind == id::CONN
            || kind == id::RUN
            || kind == id::THREAD
            || self.kinds.iter().any(|k| k == kind)
    }
}
