//! The registry's internal consistency check, run by the property tests after every step.

use super::hash::uuid_hash;
use super::{Registry, NONE};
use crate::id::Entropy;

impl<E: Entropy> Registry<E> {
    /// Internal consistency check, used by the property tests.
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        let live = self.slots.iter().filter(|s| s.live()).count();
        assert_eq!(live, self.active as usize, "active count drifted");
        assert_eq!(
            self.by_uuid.len() + usize::from(self.unindexed != NONE),
            live,
            "uuid index size"
        );
        if self.unindexed != NONE {
            let h = self.unindexed;
            assert!(self.slots[h as usize].live(), "an unindexed lease is gone");
            let hash = uuid_hash(self.uuid_key, self.slots[h as usize].uuid);
            assert!(self.by_uuid.find(hash, |&x| x == h).is_none());
        }
        assert_eq!(
            self.slots.len(),
            live + self.free_slots.len(),
            "free slot list"
        );
        let mut per_user = 0;
        for u in self.user_entries_iter() {
            let user = &self.users[u as usize];
            let name = user.name.as_str();
            assert_eq!(self.find_user(self.name_hash(name), name), Some(u));
            assert!(user.count > 0, "an entry without leases was kept");
            let mut prev = NONE;
            let mut n = 0;
            for h in self.leases_of(u) {
                let s = &self.slots[h as usize];
                assert!(s.live() && s.user == u && s.prev == prev);
                assert_eq!(self.find_uuid(s.uuid.get()), Some(h));
                prev = h;
                n += 1;
                assert!(n <= user.count, "lease list longer than its count");
            }
            assert_eq!(n, user.count);
            assert_eq!(user.tail, prev);
            let keyed = user.keys.as_ref().map_or(0, |k| k.len());
            assert_eq!(
                keyed,
                self.leases_of(u)
                    .filter(|&h| self.slots[h as usize].keyed())
                    .count()
            );
            per_user += user.count as usize;
        }
        assert_eq!(per_user, live);
        assert_eq!(
            self.user_entries(),
            self.active_users as usize,
            "active user count drifted"
        );
        assert_eq!(
            self.users.len(),
            self.user_entries() + self.free_users.len(),
            "free user list"
        );
        if self.unlisted != NONE {
            let u = self.unlisted;
            let hash = self.users[u as usize].hash();
            assert!(self.by_name.find(hash, |&x| x == u).is_none());
        }
        for (h, s) in self.slots.iter().enumerate().filter(|(_, s)| s.live()) {
            assert!(self
                .expiry
                .iter()
                .any(|e| e.handle == h as u32 && e.at() == s.expires_at));
        }
    }
}
