//! Reading the registry: views of leases, a user's leases, totals.

use super::events::Counters;
use super::{Registry, NONE};
use crate::id::Entropy;

/// A read-only view of one lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseView<'a> {
    pub handle: u32,
    pub uuid: u128,
    pub user: &'a str,
    pub connection_key: Option<&'a str>,
    pub acquired_at: u64,
    pub touched_at: u64,
    pub expires_at: u64,
}

/// Aggregate figures for `stats()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub active: u32,
    pub users: u32,
    pub counters: Counters,
}

impl<E: Entropy> Registry<E> {
    pub fn stats(&self) -> Stats {
        Stats {
            active: self.active,
            users: self.active_users,
            counters: self.counters.clone(),
        }
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn active(&self) -> u32 {
        self.active
    }

    /// Ids of the expired leases the last `acquire` reclaimed, whatever it answered:
    /// lazily, the acquiring user's, and any user's when it had to make room at the global
    /// limit or the user table bound. Empty in the common case. Close those sockets; the
    /// next `sweep` lists them too (for hosts that close only what `sweep` reports).
    pub fn last_reclaimed(&self) -> &[u128] {
        &self.last_reclaimed
    }

    /// The view of a live lease.
    pub fn lease(&self, handle: u32) -> Option<LeaseView<'_>> {
        let s = self.slots.get(handle as usize).filter(|s| s.live())?;
        let user = &self.users[s.user as usize];
        Some(LeaseView {
            handle,
            uuid: s.uuid.get(),
            user: user.name.as_str(),
            connection_key: if s.keyed() {
                user.keys
                    .as_ref()
                    .and_then(|k| k.iter().find(|(_, &h)| h == handle))
                    .map(|(k, _)| &**k)
            } else {
                None
            },
            acquired_at: s.acquired_at,
            touched_at: s.touched_at,
            expires_at: s.expires_at,
        })
    }

    /// A live lease's id and its times (`acquired_at`, `touched_at`, `expires_at`): what
    /// `lease` gives without looking up the user's name and key (the hot paths' read).
    pub fn lease_times(&self, handle: u32) -> Option<(u128, [u64; 3])> {
        let s = self.slots.get(handle as usize).filter(|s| s.live())?;
        Some((s.uuid.get(), [s.acquired_at, s.touched_at, s.expires_at]))
    }

    /// A user's unexpired leases (oldest first) and its limit.
    pub fn user_leases(&self, user: &str, now: u64) -> (u32, Vec<LeaseView<'_>>) {
        let limit = self.options.limit_for(user);
        let mut leases: Vec<LeaseView<'_>> = self
            .find_user(self.name_hash(user), user)
            .map(|u| {
                self.leases_of(u)
                    .filter_map(|h| self.lease(h))
                    .filter(|l| l.expires_at > now)
                    .collect()
            })
            .unwrap_or_default();
        // Insertion sort: a user holds few leases, and a general sort would add a few KiB
        // of code to the .wasm for this one read-side call.
        for i in 1..leases.len() {
            let mut j = i;
            while j > 0 && leases[j - 1].uuid > leases[j].uuid {
                leases.swap(j - 1, j);
                j -= 1;
            }
        }
        (limit, leases)
    }

    /// Every live lease, in no particular order.
    pub fn leases(&self) -> impl Iterator<Item = LeaseView<'_>> {
        (0..self.slots.len() as u32).filter_map(|h| self.lease(h))
    }

    /// Entries in the user table (for memory-bound tests): only users holding leases
    /// have one.
    #[doc(hidden)]
    pub fn user_entries(&self) -> usize {
        self.by_name.len() + usize::from(self.unlisted != NONE)
    }

    /// Entries in the expiry index, live and stale (for memory-bound tests).
    #[doc(hidden)]
    pub fn expiry_entries(&self) -> usize {
        self.expiry.len()
    }
}
