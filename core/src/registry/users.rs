//! User entries and their lease lists: an entry exists only while its user holds leases,
//! found through the name index (or `unlisted`, the newest entry), and a user's leases
//! are a doubly linked list through their slots, oldest first.

use super::hash::{Map, Rehash};
use super::name::Name;
use super::slab::Placeholder;
use super::{Registry, NONE};
use crate::id::Entropy;

/// A user holding at least one lease. Entries exist only while a user holds leases: one
/// is created (no allocation for a short id) on the first acquire and dropped with the
/// last lease, so idle users cost nothing and the table is bounded by `max_users`.
#[derive(Debug, Clone)]
pub(super) struct User {
    pub(super) name: Name,
    /// Oldest and newest lease.
    pub(super) head: u32,
    pub(super) tail: u32,
    pub(super) count: u32,
    /// The low half of the id's `name_hash`.
    pub(super) hash: u32,
    /// Connection key -> handle; allocated only for users that pass keys.
    pub(super) keys: Option<Box<Map<Box<str>, u32>>>,
    /// Whether the user is at or above its warn threshold (edge-triggered events).
    pub(super) near: bool,
}

impl Placeholder for User {
    const PLACEHOLDER: User = User::FREE;
}

impl User {
    pub(super) const FREE: User = User {
        name: Name::EMPTY,
        head: NONE,
        tail: NONE,
        count: 0,
        hash: 0,
        keys: None,
        near: false,
    };

    pub(super) fn hash(&self) -> u64 {
        u64::from(self.hash) << 32 | u64::from(self.hash)
    }
}

impl<E: Entropy> Registry<E> {
    /// A user id's hash: 32 bits, kept in the entry (so resizing the index and dropping
    /// an entry never rehash names), spread over both halves of the `u64` the table
    /// takes (it probes with the low bits and tags with the top ones of a `usize`).
    pub(super) fn name_hash(&self, name: &str) -> u64 {
        let h = self.name_keys.hash(name.as_bytes());
        u64::from(h) << 32 | u64::from(h)
    }

    /// The entry of the user whose id hashes to `hash`.
    pub(super) fn find_user(&self, hash: u64, name: &str) -> Option<u32> {
        let users = &self.users;
        let same = |u: u32| users[u as usize].name.as_bytes() == name.as_bytes();
        // The index first: a user found there (most lookups, when many users hold
        // leases) pays nothing for `unlisted`.
        match self.by_name.find(hash, |&u| same(u)) {
            Some(&u) => Some(u),
            None => (self.unlisted != NONE
                && users[self.unlisted as usize].hash == hash as u32
                && same(self.unlisted))
            .then_some(self.unlisted),
        }
    }

    /// `known` is the user's entry looked up when `user_frees` was `epoch`; it is still
    /// right unless an entry was dropped since, so the hash lookup is repeated only then.
    pub(super) fn lookup_again(
        &self,
        hash: u64,
        user: &str,
        known: Option<u32>,
        epoch: u64,
    ) -> Option<u32> {
        if self.user_frees == epoch {
            known
        } else {
            self.find_user(hash, user)
        }
    }

    /// A new entry for a user that holds no lease yet (`hash` is its `name_hash`).
    pub(super) fn insert_user(&mut self, hash: u64, name: &str) -> u32 {
        // Free entries are `User::FREE` (see `free_user`): only the name and hash change.
        let idx = match self.free_users.pop() {
            Some(i) => i,
            None => {
                self.users.push(User::FREE);
                (self.users.len() - 1) as u32
            }
        };
        let user = &mut self.users[idx as usize];
        user.name.set(name);
        user.hash = hash as u32;
        if self.unlisted != NONE {
            let users = &self.users;
            let rehash: Rehash<'_> = &|&u| users[u as usize].hash();
            let older = self.unlisted;
            self.by_name
                .insert_unique(users[older as usize].hash(), older, rehash);
        }
        self.unlisted = idx;
        idx
    }

    /// Every user entry (the users holding leases), in no particular order.
    pub(super) fn user_entries_iter(&self) -> impl Iterator<Item = u32> + '_ {
        let unlisted = (self.unlisted != NONE).then_some(self.unlisted);
        self.by_name.iter().copied().chain(unlisted)
    }

    /// Drops the entry of a user whose last lease went away.
    pub(super) fn free_user(&mut self, u: u32) {
        if u == self.unlisted {
            self.unlisted = NONE;
        } else {
            let hash = self.users[u as usize].hash();
            if let Ok(entry) = self.by_name.find_entry(hash, |&x| x == u) {
                entry.remove();
            }
        }
        // Back to `User::FREE` field by field: assigning the whole entry was a 48-byte
        // `memory.copy` in the .wasm (see `copy_short`). The list and count are empty
        // already: the last lease was unlinked.
        let user = &mut self.users[u as usize];
        debug_assert!(user.head == NONE && user.tail == NONE && user.count == 0);
        match &mut user.name {
            Name::Inline { len, .. } => *len = 0,
            Name::Heap(_) => user.name = Name::EMPTY,
        }
        user.hash = 0;
        if user.keys.is_some() {
            // Dropping a `None` is still a call in the .wasm.
            user.keys = None;
        }
        user.near = false;
        self.free_users.push(u);
        self.user_frees += 1;
    }

    /// The handles of a user's leases, oldest first.
    pub(super) fn leases_of(&self, u: u32) -> impl Iterator<Item = u32> + '_ {
        let head = self.users[u as usize].head;
        std::iter::successors((head != NONE).then_some(head), move |&h| {
            let next = self.slots[h as usize].next;
            (next != NONE).then_some(next)
        })
    }

    /// Appends a written slot to its user's list.
    pub(super) fn link(&mut self, u: u32, handle: u32) {
        let tail = self.users[u as usize].tail;
        {
            let s = &mut self.slots[handle as usize];
            s.prev = tail;
            s.next = NONE;
        }
        if tail == NONE {
            self.users[u as usize].head = handle;
        } else {
            self.slots[tail as usize].next = handle;
        }
        let user = &mut self.users[u as usize];
        user.tail = handle;
        user.count += 1;
        if user.count == 1 {
            self.active_users += 1;
        }
    }

    /// Takes a slot out of its user's list (the slot keeps its stale links).
    pub(super) fn unlink(&mut self, u: u32, handle: u32) {
        let (prev, next) = {
            let s = &self.slots[handle as usize];
            (s.prev, s.next)
        };
        if prev == NONE {
            self.users[u as usize].head = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NONE {
            self.users[u as usize].tail = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
        self.users[u as usize].count -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::options::Options;
    use crate::registry::Acquired;

    #[test]
    fn the_newest_user_is_found_before_it_is_indexed() {
        let mut reg = Registry::new(Options::default(), crate::id::SeededEntropy::new(8));
        let grant = |reg: &mut Registry<_>, user| match reg.acquire(user, None, 1).unwrap() {
            Acquired::Granted { handle, .. } => handle,
            Acquired::Refused(r) => panic!("{r:?}"),
        };
        let a = grant(&mut reg, "a");
        assert_eq!(reg.unlisted, reg.slots[a as usize].user);
        grant(&mut reg, "a");
        assert_eq!(reg.user_leases("a", 1).1.len(), 2);
        reg.check_invariants();
        let b = grant(&mut reg, "b");
        assert_eq!(reg.unlisted, reg.slots[b as usize].user);
        assert_eq!(reg.user_entries(), 2);
        reg.check_invariants();
        assert!(reg.release_handle(b, 2));
        assert_eq!((reg.unlisted, reg.user_entries()), (NONE, 1));
        reg.check_invariants();
        assert!(reg.release_handle(a, 2));
        assert_eq!(reg.user_leases("a", 2).1.len(), 1);
        assert_eq!(reg.user_leases("b", 2).1.len(), 0);
        reg.check_invariants();
    }

    #[test]
    fn a_user_entry_stays_small() {
        // 24-byte name, four words, the boxed key map, a flag: 48 bytes on wasm32.
        assert!(std::mem::size_of::<User>() <= 40 + 2 * std::mem::size_of::<usize>());
    }
}
