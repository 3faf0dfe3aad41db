//! The admission policy: what an acquire decides (grant, refuse, evict; dry-run reports
//! what enforce mode would do) against the per-user and global limits and the bounded
//! user table, and changing those limits at run time.

use super::events::{Event, EventKind, Refusal, RefusalReason};
use super::options::{Mode, OptionsPatch, Policy};
use super::{Registry, Removal};
use crate::error::{check_user_id, LeaseError};
use crate::id::Entropy;

/// What `acquire` decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    Granted {
        handle: u32,
        /// Ids of leases removed by the eviction policy: close those sockets.
        evicted: Vec<u128>,
        /// The connection key matched an existing lease, which was returned and touched.
        reused: bool,
    },
    Refused(Refusal),
}

impl<E: Entropy> Registry<E> {
    /// Grants `user` a lease for one connection, or refuses with a reason.
    ///
    /// With a `connection_key`, a second acquire for the same user and key returns the
    /// same lease (touched) instead of a new one: per-message calls cannot leak.
    ///
    /// Expired leases it drops on the way (see `last_reclaimed`) are the host's to close.
    pub fn acquire(
        &mut self,
        user: &str,
        connection_key: Option<&str>,
        now: u64,
    ) -> Result<Acquired, LeaseError> {
        self.acquire_with(user, connection_key, now, true)
    }

    /// `acquire`, with eviction allowed or not. `evict: false` is the first phase of a
    /// two-phase admission: where the policy (`evict-oldest`, `evict-idle`) would evict one
    /// of the user's leases to admit it, the answer is a refusal marked `evictable` and
    /// nothing changes (no lease evicted or touched, nothing counted, no event), so the
    /// host can run its own checks before it commits the eviction by asking again with
    /// `evict: true`. Expired leases are still reclaimed: they are gone either way.
    ///
    /// Dry-run mode never refuses for a quota, so there `evict: false` changes nothing: the
    /// acquire is granted and the eviction it would take reported, as by `acquire`. (A
    /// host in dry-run never reaches its second phase, so this is the one place where
    /// that eviction can be reported.)
    pub fn acquire_with(
        &mut self,
        user: &str,
        connection_key: Option<&str>,
        now: u64,
        evict: bool,
    ) -> Result<Acquired, LeaseError> {
        check_user_id(user)?;
        if let Some(key) = connection_key {
            check_user_id(key)
                .map_err(|e| LeaseError::InvalidOption(format!("connectionKey: {e}")))?;
        }
        // Input is valid: from here on this is the acquire `last_reclaimed` describes.
        self.last_reclaimed.clear();
        let limit = self.options.limit_for(user);
        let hash = self.name_hash(user);
        let user_idx = self.find_user(hash, user);
        let epoch = self.user_frees;

        if let Some(u) = user_idx {
            self.drop_expired_of_user(u, now);
        }
        // Dropping expired leases may have emptied the user and dropped its entry, so
        // look it up again.
        let user_idx = self.lookup_again(hash, user, user_idx, epoch);
        if let (Some(u), Some(key)) = (user_idx, connection_key) {
            let existing = self.users[u as usize]
                .keys
                .as_ref()
                .and_then(|k| k.get(key).copied());
            if let Some(handle) = existing {
                self.touch_handle(handle, now);
                return Ok(Acquired::Granted {
                    handle,
                    evicted: Vec::new(),
                    reused: true,
                });
            }
        }
        // Every entry holds leases (entries go with the last one).
        let holds_leases = user_idx.is_some();

        if !holds_leases && self.active_users >= self.options.max_users {
            self.purge_expired(now, false);
            if self.active_users >= self.options.max_users {
                // Enforced even in dry-run: this bound protects memory, not a quota.
                let refusal = Refusal {
                    reason: RefusalReason::UserTableFull,
                    limit: self.options.max_users,
                    active: self.active_users,
                    retry_after_ms: self.earliest_expiry(now),
                    evictable: false,
                };
                return Ok(self.refuse(user, refusal, limit, now, false));
            }
        }

        let user_active = user_idx.map_or(0, |u| self.users[u as usize].count);
        let dry_run = self.options.mode == Mode::DryRun;

        // Decide everything before mutating, so a refusal leaves the table untouched.
        let mut victim = None;
        // Dry-run reports what enforce mode would do in the present state: the refusal it
        // would answer (the first one, once), or the lease it would evict.
        let mut dry_refused = false;
        let mut dry_victim = None;
        // Enforce mode without leave to evict, where the policy would: the answer, if
        // the global limit does not refuse first.
        let mut would_evict = None;
        if user_active >= limit {
            let can_evict =
                self.options.on_limit != Policy::Reject && limit > 0 && user_active == limit;
            let mut refusal = Refusal {
                reason: RefusalReason::UserLimit,
                limit,
                active: user_active,
                retry_after_ms: user_idx.map_or(1, |u| self.earliest_expiry_of_user(u, now)),
                evictable: false,
            };
            if dry_run && can_evict {
                dry_victim = user_idx.and_then(|u| self.pick_victim(u));
            } else if dry_run {
                self.refuse(user, refusal, limit, now, true);
                dry_refused = true;
            } else if can_evict && evict {
                victim = user_idx.and_then(|u| self.pick_victim(u));
            } else if can_evict {
                // At exactly a limit above 0 the user holds leases: there is a victim.
                refusal.evictable = true;
                would_evict = Some(refusal);
            } else {
                return Ok(self.refuse(user, refusal, limit, now, false));
            }
        }

        if let Some(global) = self.options.global_limit {
            let freed =
                u32::from(victim.is_some() || dry_victim.is_some() || would_evict.is_some());
            if self.active - freed >= global {
                self.purge_expired(now, false);
            }
            if self.active - freed >= global {
                let refusal = Refusal {
                    reason: RefusalReason::GlobalLimit,
                    limit: global,
                    active: self.active,
                    retry_after_ms: self.earliest_expiry(now),
                    evictable: false,
                };
                if dry_run {
                    if !dry_refused {
                        self.refuse(user, refusal, limit, now, true);
                    }
                    // Enforce mode refuses here, before it would evict anything.
                    dry_victim = None;
                } else {
                    return Ok(self.refuse(user, refusal, limit, now, false));
                }
            }
        }

        if let Some(refusal) = would_evict {
            // Not a rejection: not counted, no event (see `acquire_with`).
            return Ok(Acquired::Refused(refusal));
        }
        if let Some(handle) = dry_victim {
            // Counted and reported as enforce mode would, and left in place.
            let slot = &self.slots[handle as usize];
            self.note_eviction(slot.user, slot.uuid.get(), now, true);
        }
        let mut evicted = Vec::new();
        // An eviction swaps one lease for another: the user stays as near its limit as it
        // was, so near-limit (edge-triggered) must not fire again for the new lease.
        let was_near = victim.is_some() && user_idx.is_some_and(|u| self.users[u as usize].near);
        if let Some(handle) = victim {
            evicted.push(self.remove(handle, Removal::Evicted, now));
        }
        // An eviction or a purge above may have dropped this user's entry.
        let u = match self.lookup_again(hash, user, user_idx, epoch) {
            Some(u) => u,
            None => self.insert_user(hash, user),
        };
        if was_near {
            self.users[u as usize].near = true;
        }
        let handle = self.insert_lease(u, connection_key, now, limit);
        Ok(Acquired::Granted {
            handle,
            evicted,
            reused: false,
        })
    }

    pub(super) fn refuse(
        &mut self,
        user: &str,
        refusal: Refusal,
        user_limit: u32,
        now: u64,
        dry_run: bool,
    ) -> Acquired {
        self.counters.count_rejection(refusal.reason);
        if self.collect_events {
            let active = self
                .find_user(self.name_hash(user), user)
                .map_or(0, |u| self.users[u as usize].count);
            self.events.push(Event {
                kind: EventKind::Rejected,
                user: user.to_owned(),
                lease: None,
                active,
                limit: user_limit,
                reason: Some(refusal.reason),
                dry_run,
                at: now,
            });
        }
        Acquired::Refused(refusal)
    }

    pub(super) fn pick_victim(&self, u: u32) -> Option<u32> {
        let key = |h: &u32| {
            let s = &self.slots[*h as usize];
            match self.options.on_limit {
                Policy::EvictIdle => (s.touched_at, s.uuid.get()),
                // The oldest is the one granted first, which the uuid says on its own (a
                // registry's ids only increase): by `acquired_at`, a clock stepped back
                // would make the newest lease look oldest.
                _ => (0, s.uuid.get()),
            }
        };
        self.leases_of(u).min_by_key(key)
    }

    /// Changes options at run time. Existing leases are never dropped by a lower limit;
    /// new acquires are refused until the user is under it. Id kinds cannot change.
    pub fn set_limits(&mut self, patch: &OptionsPatch) -> Result<(), LeaseError> {
        if patch
            .kinds
            .as_ref()
            .is_some_and(|k| *k != self.options.kinds)
        {
            return Err(LeaseError::InvalidOption(
                "kinds cannot change after construction: issued ids would stop resolving".into(),
            ));
        }
        self.options = self.options.patched(patch)?;
        Ok(())
    }

    /// Sets (`Some`) or clears (`None`) one user's limit override.
    pub fn set_user_limit(&mut self, user: &str, limit: Option<u32>) -> Result<(), LeaseError> {
        check_user_id(user)?;
        match limit {
            Some(n) => {
                let mut map = self.options.user_limits.clone();
                map.insert(user.to_owned(), n);
                self.options = self.options.patched(&OptionsPatch {
                    user_limits: Some(map),
                    ..Default::default()
                })?;
            }
            None => {
                self.options.user_limits.remove(user);
            }
        }
        Ok(())
    }
}
