//! The id index: from a lease's 128-bit id to its handle, so that any derived id
//! (`conn_`, `run_`, `thread_`, extra kinds) finds the lease. Only handles are stored;
//! the id lives in the slot. The newest lease waits outside it (`unindexed`).

use super::hash::{uuid_hash, Rehash};
use super::{Id128, Registry, NONE};
use crate::error::LeaseError;
use crate::id::{self, Entropy};

impl<E: Entropy> Registry<E> {
    /// Adds a slot (already written) to the id index.
    pub(super) fn index_uuid(&mut self, handle: u32) {
        let (slots, key) = (&self.slots, self.uuid_key);
        let hash = uuid_hash(key, slots[handle as usize].uuid);
        let rehash: Rehash<'_> = &|&h| uuid_hash(key, slots[h as usize].uuid);
        self.by_uuid.insert_unique(hash, handle, rehash);
    }

    /// The handle of the live lease with this id.
    pub(super) fn find_uuid(&self, uuid: u128) -> Option<u32> {
        let id = Id128::new(uuid);
        if self.unindexed != NONE && self.slots[self.unindexed as usize].uuid == id {
            return Some(self.unindexed);
        }
        let hash = uuid_hash(self.uuid_key, id);
        self.by_uuid
            .find(hash, |&h| self.slots[h as usize].uuid == id)
            .copied()
    }

    /// Removes an id from the index (the slot still holds it), or forgets it if it
    /// was never indexed (see `unindexed`).
    pub(super) fn unindex_uuid(&mut self, uuid: u128, handle: u32) {
        if handle == self.unindexed {
            self.unindexed = NONE;
            return;
        }
        let hash = uuid_hash(self.uuid_key, Id128::new(uuid));
        if let Ok(entry) = self.by_uuid.find_entry(hash, |&h| h == handle) {
            entry.remove();
        }
    }

    /// Resolves any derived id to a live handle; `Ok(None)` for a well-formed id that
    /// names no live lease.
    pub fn resolve(&self, any_id: &str) -> Result<Option<u32>, LeaseError> {
        let parsed = id::parse(any_id)?;
        if !self.options.is_lease_kind(parsed.prefix) {
            return Ok(None);
        }
        Ok(self.find_uuid(parsed.uuid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::options::Options;
    use crate::registry::Acquired;

    #[test]
    fn the_newest_lease_resolves_before_its_id_is_indexed() {
        let mut reg = Registry::new(Options::default(), crate::id::SeededEntropy::new(7));
        let grant = |reg: &mut Registry<_>, user| match reg.acquire(user, None, 1).unwrap() {
            Acquired::Granted { handle, .. } => reg.lease(handle).unwrap().uuid,
            Acquired::Refused(r) => panic!("{r:?}"),
        };
        let a = grant(&mut reg, "a");
        let b = grant(&mut reg, "a");
        assert_eq!(reg.unindexed, reg.find_uuid(b).unwrap());
        assert!(reg.find_uuid(a).is_some() && reg.find_uuid(1).is_none());
        reg.check_invariants();
        assert!(reg.release(&id::format("conn", b), 2).unwrap());
        assert_eq!(reg.unindexed, NONE);
        assert!(!reg.release(&id::format("run", b), 2).unwrap());
        reg.check_invariants();
        let c = grant(&mut reg, "b");
        assert!(reg.release(&id::format("thread", a), 3).unwrap());
        assert!(reg.find_uuid(c).is_some());
        reg.check_invariants();
    }
}
