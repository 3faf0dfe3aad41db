//! The lease registry: per-user quotas over identity-bearing leases with their own expiry.
//!
//! A user's usage is the number of its live leases, never a counter that can drift. Leases
//! live in a slab addressed by small integer handles; an exact index maps every lease's
//! 128-bit id to its handle, so any derived id (`conn_`, `run_`, `thread_`) releases it.
//! A user's leases are a list through their slots, and a user has an entry only while it
//! holds leases. Expiry is tracked by a queue in expiry order with lazy deletion (see
//! `expiry`), so a sweep costs what expired, not the table size; stale entries are
//! compacted away when they outnumber live ones, so churn cannot grow memory.
//!
//! This module holds the table's data (`Registry`, `Slot`); each job on it has a module:
//! `policy` (what an acquire decides, and the limits), `leases` (slots, handles, release,
//! touch, removal), `users` (user entries and their lease lists), `index` (id to handle),
//! `sweep` (expiry), `view` (reading), `hash` and `name` (the hashes and the small-string
//! type they rest on), `invariants` (the consistency check of the property tests), and
//! `snapshot`, `events`, `metrics`, `options`, `slab`, `expiry` as before.

pub mod events;
mod expiry;
mod hash;
mod index;
mod invariants;
mod leases;
pub mod metrics;
mod name;
pub mod options;
mod policy;
mod slab;
pub mod snapshot;
mod sweep;
mod users;
mod view;

use crate::error::LeaseError;
use crate::id::{Entropy, Uuid7Generator};
use events::{Counters, Event};
use expiry::ExpiryQueue;
use hash::{Hasher, NameKeys};
use hashbrown::HashTable;
use options::{Options, OptionsPatch};
use slab::{Placeholder, Slab, SLOT_CHUNK, USER_CHUNK};
use users::User;

pub use policy::Acquired;
pub use view::{LeaseView, Stats};

/// Lazily reclaimed lease ids are kept for the next `sweep()`, up to this many, so the
/// host learns which sockets to close even when an acquire reclaimed them first. (Only
/// those: what `sweep` itself reclaims it always returns in full.)
pub const PENDING_EXPIRED_CAP: usize = 65_536;

/// Generation bits carried in a handle token (see `token`).
const TOKEN_GENERATION_MASK: u32 = (1 << 20) - 1;

/// The end of a user's lease list.
const NONE: u32 = u32::MAX;

/// `Slot::meta` bits: the rest of the word is the slot's generation.
const LIVE: u32 = 1;
const KEYED: u32 = 2;
/// Set only during `rebuild_expiry`: the slot's entry has been kept.
const MARK: u32 = 4;
const GENERATION_ONE: u32 = 8;

/// A 128-bit id kept as two halves: `u128` is 16-byte aligned on wasm32, which would pad
/// every slot from 56 to 64 bytes (the slab is the bulk of memory per lease).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Id128 {
    hi: u64,
    lo: u64,
}

impl Id128 {
    fn new(v: u128) -> Self {
        Self {
            hi: (v >> 64) as u64,
            lo: v as u64,
        }
    }

    fn get(self) -> u128 {
        (u128::from(self.hi) << 64) | u128::from(self.lo)
    }
}

/// A lease as stored.
#[derive(Debug, Clone)]
struct Slot {
    uuid: Id128,
    acquired_at: u64,
    touched_at: u64,
    expires_at: u64,
    user: u32,
    /// A user's leases are a doubly linked list through their slots, oldest first: no
    /// per-user vector to allocate, grow and scatter, and O(1) removal.
    prev: u32,
    next: u32,
    /// `LIVE`, `KEYED` (the key itself lives only in the owner's `keys` map, found there
    /// by handle when needed), and above them a generation bumped on every reuse of the
    /// slot, so a token kept after release cannot name the next lease. Packed into one
    /// word to keep the slot at 56 bytes.
    meta: u32,
}

impl Placeholder for Slot {
    const PLACEHOLDER: Slot = Slot {
        uuid: Id128 { hi: 0, lo: 0 },
        acquired_at: 0,
        touched_at: 0,
        expires_at: 0,
        user: NONE,
        prev: NONE,
        next: NONE,
        meta: 0,
    };
}

impl Slot {
    fn live(&self) -> bool {
        self.meta & LIVE != 0
    }

    fn keyed(&self) -> bool {
        self.meta & KEYED != 0
    }

    fn generation(&self) -> u32 {
        self.meta / GENERATION_ONE
    }
}

/// Why a lease left the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removal {
    Released,
    Reconciled,
    Expired,
    Evicted,
}

/// The registry. `E` supplies randomness for ids and hash seeds.
pub struct Registry<E> {
    options: Options,
    ids: Uuid7Generator<E>,
    slots: Slab<Slot, SLOT_CHUNK>,
    free_slots: Vec<u32>,
    /// Exact index from a lease's 128-bit id to its handle. Only handles are stored; the
    /// id itself lives in the slab and is hashed from there.
    by_uuid: HashTable<u32>,
    /// The newest lease, when it is not in `by_uuid` yet (else `NONE`). Its id goes into
    /// the index when the next lease is granted, unless it is released first: a lease
    /// released right after it was granted never touches the index. At a million leases
    /// the index is 10 MB, and an insert and its removal are two cache misses (control
    /// bytes, bucket) of a pair's handful; at 10,000 they are about a sixth of its
    /// instructions. Lookups by id check this one slot too.
    unindexed: u32,
    hasher: Hasher,
    /// Keys of the user-id hash (see `name_hash`).
    name_keys: NameKeys,
    /// Key of `uuid_hash`, from the registry's entropy.
    uuid_key: u64,
    /// Users holding leases, in fixed-size chunks (no doubling copy left behind).
    users: Slab<User, USER_CHUNK>,
    free_users: Vec<u32>,
    /// Index from user id to entry; the id itself is stored once, in the entry.
    by_name: HashTable<u32>,
    /// The newest user entry, when it is not in `by_name` yet (else `NONE`): it goes in
    /// when the next entry is made, unless its lease goes first. A user whose only lease
    /// comes and goes (a pair at 10,000 live over 100,000 users, mostly) then costs no
    /// insert into the index and no removal from it, about a tenth of such a pair's
    /// instructions. Lookups by name check this entry too.
    unlisted: u32,
    /// Users holding at least one lease (every entry in `by_name`, and `unlisted`).
    active_users: u32,
    /// Bumped whenever a user entry is dropped, which invalidates user indexes held
    /// across a call that may remove leases.
    user_frees: u64,
    /// Earliest expiry first; stale entries are skipped when they surface.
    expiry: ExpiryQueue,
    active: u32,
    counters: Counters,
    pending_expired: Vec<u128>,
    /// Expired leases (of any user) the last acquire reclaimed, for the host to close
    /// at once; `sweep` reports them too, as before.
    last_reclaimed: Vec<u128>,
    collect_events: bool,
    events: Vec<Event>,
    /// Where `warm` leaves what it read.
    warm_sink: u32,
}

impl<E: Entropy> Registry<E> {
    /// A registry with validated `options`, drawing ids and hash seeds from `entropy`.
    pub fn new(options: Options, mut entropy: E) -> Self {
        let mut seed = [0u64; 4];
        for s in &mut seed {
            *s = u64::from(entropy.next_u32()) << 32 | u64::from(entropy.next_u32());
        }
        let hasher = Hasher::with_seeds(seed[0], seed[1], seed[2], seed[3]);
        Self {
            options,
            ids: Uuid7Generator::new(entropy),
            slots: Slab::default(),
            free_slots: Vec::new(),
            by_uuid: HashTable::new(),
            unindexed: NONE,
            hasher,
            name_keys: NameKeys::new(seed[1] ^ seed[3].rotate_left(32)),
            uuid_key: seed[0] ^ seed[2].rotate_left(32),
            users: Slab::default(),
            free_users: Vec::new(),
            by_name: HashTable::new(),
            unlisted: NONE,
            active_users: 0,
            user_frees: 0,
            expiry: ExpiryQueue::default(),
            active: 0,
            counters: Counters::default(),
            pending_expired: Vec::new(),
            last_reclaimed: Vec::new(),
            collect_events: false,
            events: Vec::new(),
            warm_sink: 0,
        }
    }

    /// Builds a registry from options given as a patch over the defaults.
    pub fn with_patch(patch: &OptionsPatch, entropy: E) -> Result<Self, LeaseError> {
        Ok(Self::new(Options::default().patched(patch)?, entropy))
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Turns event collection on or off (off costs nothing on the hot path).
    pub fn set_collect_events(&mut self, on: bool) {
        self.collect_events = on;
        if !on {
            self.events.clear();
        }
    }

    /// Events since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Makes a fresh id of any kind from this registry's generator.
    pub fn new_uuid(&mut self, now: u64) -> u128 {
        self.ids.next(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_stays_small() {
        // The slab dominates memory per lease; keep an eye on its element size.
        assert_eq!(std::mem::size_of::<Slot>(), 56);
    }
}
