//! The lease table: granting a lease into a slot, handles and their tokens, release,
//! touch and renewal, reconciliation, and removal from every index.

use super::events::{Event, EventKind};
use super::hash::Map;
use super::{
    Id128, Registry, Removal, Slot, GENERATION_ONE, KEYED, LIVE, MARK, NONE, TOKEN_GENERATION_MASK,
};
use crate::error::LeaseError;
use crate::id::{self, Entropy};
use std::collections::HashSet;

impl<E: Entropy> Registry<E> {
    /// `limit` is the user's limit, already looked up by the caller.
    pub(super) fn insert_lease(&mut self, u: u32, key: Option<&str>, now: u64, limit: u32) -> u32 {
        let uuid = self.ids.next(now);
        let expires_at = now + self.options.ttl_ms;
        let slot = Slot {
            uuid: Id128::new(uuid),
            acquired_at: now,
            touched_at: now,
            expires_at,
            user: u,
            prev: NONE,
            next: NONE,
            meta: LIVE | if key.is_some() { KEYED } else { 0 },
        };
        let handle = match self.free_slots.pop() {
            Some(h) => {
                let s = &mut self.slots[h as usize];
                let generation = (s.meta & !(LIVE | KEYED | MARK)).wrapping_add(GENERATION_ONE);
                *s = Slot {
                    meta: slot.meta | generation,
                    ..slot
                };
                h
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        if self.unindexed != NONE {
            self.index_uuid(self.unindexed);
        }
        self.unindexed = handle;
        self.link(u, handle);
        if let Some(key) = key {
            let hasher = self.hasher.clone();
            self.users[u as usize]
                .keys
                .get_or_insert_with(|| Box::new(Map::with_hasher(hasher)))
                .insert(key.into(), handle);
        }
        self.push_expiry(handle);
        self.active += 1;
        self.counters.acquired += 1;
        self.counters.high_water = self.counters.high_water.max(u64::from(self.active));

        let active = self.users[u as usize].count;
        let threshold = self.options.warn_threshold(limit);
        if limit > 0 && active >= threshold && !self.users[u as usize].near {
            self.users[u as usize].near = true;
            self.counters.near_limit_events += 1;
            self.emit_for_user(EventKind::NearLimit, u, None, now, false);
        }
        if limit > 0 && active == limit {
            self.emit_for_user(EventKind::LimitReached, u, None, now, false);
        }
        handle
    }

    /// Releases the lease named by any of its ids. `false` (and counted) when unknown.
    pub fn release(&mut self, any_id: &str, now: u64) -> Result<bool, LeaseError> {
        match self.resolve(any_id)? {
            Some(handle) => {
                self.remove(handle, Removal::Released, now);
                Ok(true)
            }
            None => {
                self.counters.unknown_releases += 1;
                Ok(false)
            }
        }
    }

    /// Releases by handle (the fast path for hosts that keep the handle).
    pub fn release_handle(&mut self, handle: u32, now: u64) -> bool {
        if self.is_live(handle) {
            self.remove(handle, Removal::Released, now);
            true
        } else {
            self.counters.unknown_releases += 1;
            false
        }
    }

    /// Counts a release that named nothing (e.g. a stale handle at the boundary).
    pub fn count_unknown_release(&mut self) {
        self.counters.unknown_releases += 1;
    }

    /// Extends the lease's expiry; `false` when unknown or already expired.
    pub fn touch(&mut self, any_id: &str, now: u64) -> Result<bool, LeaseError> {
        Ok(match self.resolve(any_id)? {
            Some(handle) => self.touch_handle(handle, now),
            None => false,
        })
    }

    /// Touch by handle: activity on the lease, which also extends it.
    pub fn touch_handle(&mut self, handle: u32, now: u64) -> bool {
        self.extend(handle, now, true)
    }

    /// Extends the lease like a touch, without counting as activity: `evict-idle` still
    /// sees the lease as idle since its last touch. For keep-alives (a WebSocket pong),
    /// which every open socket answers, busy or not.
    pub fn renew_handle(&mut self, handle: u32, now: u64) -> bool {
        self.extend(handle, now, false)
    }

    pub(super) fn extend(&mut self, handle: u32, now: u64, activity: bool) -> bool {
        if !self.is_live(handle) {
            return false;
        }
        let ttl = self.options.ttl_ms;
        let slot = &mut self.slots[handle as usize];
        if now >= slot.expires_at {
            // Expired but not yet reclaimed: the host must reconnect; the sweep or the
            // next acquire reclaims it and reports it.
            return false;
        }
        if activity {
            slot.touched_at = slot.touched_at.max(now);
        }
        // A touch never shortens a lease: a late-arriving heartbeat stamped with an older
        // time (or one after the TTL was lowered) must not bring the expiry forward.
        let next = now + ttl;
        if next > slot.expires_at {
            slot.expires_at = next;
            self.push_expiry(handle);
        }
        true
    }

    /// A token for a live handle: the handle plus 20 bits of its slot generation, so a
    /// token kept after release cannot act on the next lease that reuses the slot (until
    /// the same slot has been reused 2^20 times). Fits in a JS number.
    pub fn token(&self, handle: u32) -> u64 {
        let generation = self.slots.get(handle as usize).map_or(0, Slot::generation);
        (u64::from(generation & TOKEN_GENERATION_MASK) << 32) | u64::from(handle)
    }

    /// The live handle a token names, if it still names one.
    pub fn resolve_token(&self, token: u64) -> Option<u32> {
        let handle = (token & 0xffff_ffff) as u32;
        let generation = (token >> 32) as u32;
        let slot = self.slots.get(handle as usize)?;
        (slot.live() && slot.generation() & TOKEN_GENERATION_MASK == generation).then_some(handle)
    }

    pub fn is_live(&self, handle: u32) -> bool {
        self.slots.get(handle as usize).is_some_and(Slot::live)
    }

    /// Releases every lease whose id is not among `live` (any derived ids); returns the
    /// released ids. Validates all of `live` first, so a bad id changes nothing.
    pub fn reconcile<S: AsRef<str>>(
        &mut self,
        live: &[S],
        now: u64,
    ) -> Result<Vec<u128>, LeaseError> {
        let mut keep = HashSet::with_capacity_and_hasher(live.len(), self.hasher.clone());
        for id in live {
            keep.insert(id::parse(id.as_ref())?.uuid);
        }
        let doomed: Vec<u32> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.live() && !keep.contains(&s.uuid.get()))
            .map(|(h, _)| h as u32)
            .collect();
        Ok(doomed
            .into_iter()
            .map(|h| self.remove(h, Removal::Reconciled, now))
            .collect())
    }

    /// Removes a live lease and updates every index; returns its id.
    pub(super) fn remove(&mut self, handle: u32, why: Removal, now: u64) -> u128 {
        let (uuid, u, keyed, expires_at) = {
            let s = &mut self.slots[handle as usize];
            debug_assert!(s.live());
            let keyed = s.keyed();
            s.meta &= !(LIVE | KEYED);
            (s.uuid.get(), s.user, keyed, s.expires_at)
        };
        // A lease released right after it was granted leaves no stale expiry entry.
        self.expiry.forget_newest(handle, expires_at);
        self.free_slots.push(handle);
        self.unindex_uuid(uuid, handle);
        self.active -= 1;
        self.unlink(u, handle);
        if keyed {
            if let Some(keys) = self.users[u as usize].keys.as_mut() {
                // The user's few keys are scanned for this handle (see `Slot::meta`).
                keys.retain(|_, h| *h != handle);
            }
        }
        match why {
            Removal::Released => self.counters.released += 1,
            Removal::Reconciled => {
                self.counters.released += 1;
                self.counters.reconciled += 1;
            }
            Removal::Expired => {
                self.counters.expired += 1;
                self.emit_for_user(EventKind::Expired, u, Some(uuid), now, false);
            }
            Removal::Evicted => self.note_eviction(u, uuid, now, false),
        }
        let user = &self.users[u as usize];
        if user.count == 0 {
            self.active_users -= 1;
            self.free_user(u);
        } else if user.near {
            let limit = self.options.limit_for(user.name.as_str());
            if user.count < self.options.warn_threshold(limit) {
                self.users[u as usize].near = false;
            }
        }
        uuid
    }

    /// Counts and reports an eviction of user `u`'s lease `uuid`; `dry_run`: one that
    /// dry-run mode only names.
    pub(super) fn note_eviction(&mut self, u: u32, uuid: u128, now: u64, dry_run: bool) {
        self.counters.evicted += 1;
        self.emit_for_user(EventKind::Evicted, u, Some(uuid), now, dry_run);
    }

    /// `dry_run`: reported but not done (an eviction dry-run mode only names).
    pub(super) fn emit_for_user(
        &mut self,
        kind: EventKind,
        u: u32,
        lease: Option<u128>,
        now: u64,
        dry_run: bool,
    ) {
        if !self.collect_events {
            return;
        }
        let user = &self.users[u as usize];
        let name = user.name.as_str();
        let event = Event {
            kind,
            user: name.to_owned(),
            lease,
            active: user.count,
            limit: self.options.limit_for(name),
            reason: None,
            dry_run,
            at: now,
        };
        self.events.push(event);
    }
}
