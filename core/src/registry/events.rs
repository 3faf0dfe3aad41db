//! What the registry reports to the host besides return values.

/// Why an acquire was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    UserLimit,
    GlobalLimit,
    UserTableFull,
}

impl RefusalReason {
    pub const ALL: [RefusalReason; 3] = [
        RefusalReason::UserLimit,
        RefusalReason::GlobalLimit,
        RefusalReason::UserTableFull,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::UserLimit => "user-limit",
            RefusalReason::GlobalLimit => "global-limit",
            RefusalReason::UserTableFull => "user-table-full",
        }
    }
}

/// A refusal: a value, not an error. It says when retrying can succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: RefusalReason,
    pub limit: u32,
    pub active: u32,
    /// Milliseconds until the earliest relevant lease expires unless it is touched.
    pub retry_after_ms: u64,
    /// Only from an acquire that may not evict (`Registry::acquire_with`, `evict` false):
    /// the policy would evict one of the user's leases to admit it, and nothing else
    /// stands in the way. Such an answer is not a rejection: it is not counted and
    /// reports no event, since the host is expected to ask again with eviction allowed.
    pub evictable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    NearLimit,
    LimitReached,
    Rejected,
    Evicted,
    Expired,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::NearLimit => "near-limit",
            EventKind::LimitReached => "limit-reached",
            EventKind::Rejected => "rejected",
            EventKind::Evicted => "evicted",
            EventKind::Expired => "expired",
        }
    }
}

/// One notable thing that happened to a user's leases.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    pub user: String,
    /// The lease concerned (evicted, expired), if any.
    pub lease: Option<u128>,
    /// The user's active leases after the event.
    pub active: u32,
    pub limit: u32,
    pub reason: Option<RefusalReason>,
    /// In dry-run mode, a refusal that was reported but not enforced.
    pub dry_run: bool,
    pub at: u64,
}

/// Monotonic counters, as exposed by `stats()` and `metrics()`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub acquired: u64,
    pub released: u64,
    pub expired: u64,
    pub evicted: u64,
    pub rejected_user_limit: u64,
    pub rejected_global_limit: u64,
    pub rejected_user_table_full: u64,
    pub unknown_releases: u64,
    pub near_limit_events: u64,
    pub reconciled: u64,
    pub high_water: u64,
}

impl Counters {
    pub fn rejected(&self) -> u64 {
        self.rejected_user_limit + self.rejected_global_limit + self.rejected_user_table_full
    }

    pub fn rejected_for(&self, reason: RefusalReason) -> u64 {
        match reason {
            RefusalReason::UserLimit => self.rejected_user_limit,
            RefusalReason::GlobalLimit => self.rejected_global_limit,
            RefusalReason::UserTableFull => self.rejected_user_table_full,
        }
    }

    pub(crate) fn count_rejection(&mut self, reason: RefusalReason) {
        match reason {
            RefusalReason::UserLimit => self.rejected_user_limit += 1,
            RefusalReason::GlobalLimit => self.rejected_global_limit += 1,
            RefusalReason::UserTableFull => self.rejected_user_table_full += 1,
        }
    }
}
