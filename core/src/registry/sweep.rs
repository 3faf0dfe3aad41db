//! Expiry: the queue's upkeep, sweeps (in batches, after a read-only pass that warms
//! what they will touch) and the lazy reclaiming an acquire does on its way.

use super::expiry::Entry as ExpiryEntry;
use super::hash::uuid_hash;
use super::slab::{Slab, SLOT_CHUNK};
use super::{Registry, Removal, Slot, MARK, NONE, PENDING_EXPIRED_CAP};
use crate::id::Entropy;

impl<E: Entropy> Registry<E> {
    pub(super) fn push_expiry(&mut self, handle: u32) {
        self.expiry.push(ExpiryEntry {
            at: self.slots[handle as usize].expires_at,
            handle,
        });
        if self.expiry.len() > 2 * self.active as usize + 1024 {
            self.rebuild_expiry();
        }
    }

    /// Drops stale entries (released or re-touched leases) in one O(n) pass, in place:
    /// no second buffer (wasm memory never shrinks), and the in-order part stays a FIFO.
    ///
    /// One entry per live lease is kept. Without the mark, a lease whose slot held an
    /// earlier lease with the same expiry (released and re-acquired in the same
    /// millisecond, a common churn pattern) would keep both entries as current; they
    /// would pile up until every push compacted again (quadratic).
    pub(super) fn rebuild_expiry(&mut self) {
        let slots = &mut self.slots;
        self.expiry.retain(|e| {
            let s = &mut slots[e.handle as usize];
            let keep = s.live() && s.expires_at == e.at() && s.meta & MARK == 0;
            if keep {
                s.meta |= MARK;
            }
            keep
        });
        for s in slots.iter_mut() {
            s.meta &= !MARK;
        }
    }

    /// Whether `e` is the expiry of the lease now in its slot. An entry carries no
    /// generation: one left by an earlier lease of the slot that happens to name the same
    /// time is as good as the lease's own (it expires the lease at the right time; the
    /// other is then stale).
    pub(super) fn is_current(slots: &Slab<Slot, SLOT_CHUNK>, e: &ExpiryEntry) -> bool {
        let s = &slots[e.handle as usize];
        s.live() && s.expires_at == e.at()
    }

    pub(super) fn entry_is_current(&self, e: &ExpiryEntry) -> bool {
        Self::is_current(&self.slots, e)
    }

    /// Removes every expired lease, earliest first.
    ///
    /// In batches: the removals of one lease are a chain of dependent cache misses (the
    /// id index's control bytes, then its bucket; the user entry; the list neighbour),
    /// and one lease's chain is too long for the CPU to overlap it with the next one's.
    /// A short read-only pass over a batch touches all of them with independent loads
    /// first, so the misses overlap, and the removals then find everything in cache.
    ///
    /// `sweeping`: every removed id goes to the list `sweep` returns; otherwise (an acquire
    /// purging lazily) within `PENDING_EXPIRED_CAP`.
    pub(super) fn purge_expired(&mut self, now: u64, sweeping: bool) {
        const BATCH: usize = 32;
        let mut batch = [0u32; BATCH];
        loop {
            let mut n = 0;
            while n < BATCH {
                let Some(entry) = self.expiry.peek() else {
                    break;
                };
                let current = self.entry_is_current(&entry);
                if current && entry.at() > now {
                    break;
                }
                self.expiry.pop();
                if current {
                    batch[n] = entry.handle;
                    n += 1;
                }
            }
            self.warm(&batch[..n]);
            for &handle in &batch[..n] {
                // An entry may be in the batch twice (see `is_current`).
                if self.slots[handle as usize].live() {
                    let uuid = self.remove(handle, Removal::Expired, now);
                    if sweeping {
                        self.pending_expired.push(uuid);
                    } else {
                        self.note_lazily_expired(uuid);
                    }
                }
            }
            if n < BATCH {
                break;
            }
        }
    }

    /// Reads what removing these leases will touch (see `purge_expired`).
    pub(super) fn warm(&mut self, handles: &[u32]) {
        let mut sink = 0;
        for &h in handles {
            let s = &self.slots[h as usize];
            let hash = uuid_hash(self.uuid_key, s.uuid);
            sink ^= self.by_uuid.find(hash, |&x| x == h).copied().unwrap_or(0);
            sink ^= self.users[s.user as usize].count;
            if s.next != NONE {
                sink ^= self.slots[s.next as usize].meta;
            }
        }
        // Kept, so the loads are not optimised away.
        self.warm_sink = sink;
    }

    pub(super) fn note_lazily_expired(&mut self, uuid: u128) {
        self.last_reclaimed.push(uuid);
        if self.pending_expired.len() < PENDING_EXPIRED_CAP {
            self.pending_expired.push(uuid);
        }
    }

    pub(super) fn drop_expired_of_user(&mut self, u: u32, now: u64) {
        // Nothing anywhere expires before the front of the expiry index (stale entries
        // only make it earlier), so in the common case the user's slots, scattered
        // across a large slab, need not be read at all.
        if self.expiry.peek().is_none_or(|e| e.at() > now) {
            return;
        }
        let expired: Vec<u32> = self
            .leases_of(u)
            .filter(|&h| self.slots[h as usize].expires_at <= now)
            .collect();
        for handle in expired {
            let uuid = self.remove(handle, Removal::Expired, now);
            self.note_lazily_expired(uuid);
        }
    }

    /// Milliseconds until the next lease anywhere expires (at least 1).
    pub(super) fn earliest_expiry(&mut self, now: u64) -> u64 {
        while let Some(entry) = self.expiry.peek() {
            if self.entry_is_current(&entry) {
                return entry.at().saturating_sub(now).max(1);
            }
            self.expiry.pop();
        }
        1
    }

    pub(super) fn earliest_expiry_of_user(&self, u: u32, now: u64) -> u64 {
        self.leases_of(u)
            .map(|h| self.slots[h as usize].expires_at)
            .min()
            .map_or(1, |e| e.saturating_sub(now).max(1))
    }

    /// Removes every lease whose expiry is at or before `now`, and returns their ids,
    /// together with those reclaimed lazily by `acquire` since the last sweep. Cost is
    /// proportional to what expired.
    pub fn sweep(&mut self, now: u64) -> Vec<u128> {
        self.purge_expired(now, true);
        std::mem::take(&mut self.pending_expired)
    }
}
