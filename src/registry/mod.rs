//! The lease registry: per-user quotas over identity-bearing leases with their own expiry.
//!
//! A user's usage is the number of its live leases, never a counter that can drift. Leases
//! live in a slab addressed by small integer handles; an exact index maps every lease's
//! 128-bit id to its handle, so any derived id (`conn_`, `run_`, `thread_`) releases it.
//! A user's leases are a list through their slots, and a user has an entry only while it
//! holds leases. Expiry is tracked by a queue in expiry order with lazy deletion (see
//! `expiry`), so a sweep costs what expired, not the table size; stale entries are
//! compacted away when they outnumber live ones, so churn cannot grow memory.

pub mod events;
mod expiry;
pub mod metrics;
pub mod options;
mod slab;
pub mod snapshot;

use crate::error::{check_user_id, LeaseError};
use crate::id::{self, Entropy, Uuid7Generator};
use events::{Counters, Event, EventKind, Refusal, RefusalReason};
use expiry::{Entry as ExpiryEntry, ExpiryQueue};
use hashbrown::HashTable;
use options::{Mode, Options, OptionsPatch, Policy};
use slab::{Placeholder, Slab, SLOT_CHUNK, USER_CHUNK};
use std::collections::{HashMap, HashSet};

/// Hash state seeded from the registry's entropy, so connection keys chosen by clients
/// cannot be crafted to collide (the seed is not in the source, unlike a fixed-key
/// hasher's). User ids have their own hash (`NameKeys`).
type Hasher = ahash::RandomState;
type Map<K, V> = HashMap<K, V, Hasher>;
/// How an index rehashes its entries when it grows. One type for both indexes, so the
/// table's growth code is in the .wasm once (it runs rarely; the indirect call is free).
type Rehash<'a> = &'a dyn Fn(&u32) -> u64;

/// Lazily reclaimed lease ids are kept for the next `sweep()`, up to this many, so the
/// host learns which sockets to close even when an acquire reclaimed them first. (Only
/// those: what `sweep` itself reclaims it always returns in full.)
pub(crate) const PENDING_EXPIRED_CAP: usize = 65_536;

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

/// The id index's hash. Not a general-purpose hasher: the ids in the index are made
/// here, and their low 48 bits are random, so keyed multiplies spread them (ids
/// presented for lookup can name only what is there; they can make no chain longer).
/// The key goes in before the first multiply, so even ids from a crafted snapshot
/// cannot be chosen to collide without it. On wasm32 this is a few instructions where
/// ahash's fallback, with no 64x64->128 multiply and no byte swap instruction, takes
/// about a hundred.
fn uuid_hash(key: u64, id: Id128) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let x = ((id.lo ^ key).wrapping_mul(K) ^ id.hi).wrapping_mul(K);
    // The table probes with the low bits (and on wasm32 tags with bits 25..32).
    x ^ (x >> 32)
}

/// 8-byte words of a user id that `NameKeys` has keys for: the longest id (256 bytes).
/// Longer input (never an id stored here) reuses them in turn.
const NAME_KEY_WORDS: usize = 32;

/// Keys of the user-id hash: two 32-bit keys per word of the id.
///
/// The hash is NH (as in UMAC): the sum over the id's 8-byte words of
/// `(lo + k0) * (hi + k1)`, 32-bit halves widened to a 64-bit product. For two different
/// ids of the same length, the chance over the keys that the sums differ by any given
/// amount is at most 2^-32, so ids chosen without the keys cannot be made to collide.
/// On wasm32 a word costs one 64-bit multiply; ahash's fallback there, with no
/// 64x64->128 multiply and no byte swap instruction, cost about 8% of an acquire +
/// release pair (profiled at 10,000 live).
#[derive(Clone)]
struct NameKeys([[u32; 2]; NAME_KEY_WORDS]);

impl NameKeys {
    /// Expands a 64-bit seed (splitmix64): the registry draws no more entropy for them,
    /// so seeded registries keep making the same ids.
    fn new(mut seed: u64) -> Self {
        let mut keys = [[0; 2]; NAME_KEY_WORDS];
        for k in &mut keys {
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            *k = [z as u32, (z >> 32) as u32];
        }
        Self(keys)
    }

    /// 32 bits of hash for `bytes`.
    fn hash(&self, bytes: &[u8]) -> u32 {
        let nh = |i: usize, w: u64| {
            let [k0, k1] = self.0[i % NAME_KEY_WORDS];
            u64::from((w as u32).wrapping_add(k0)) * u64::from(((w >> 32) as u32).wrapping_add(k1))
        };
        // The length goes in too: ids that differ only in trailing zero bytes fill their
        // last word alike.
        let mut acc = (bytes.len() as u64).wrapping_mul(0xff51_afd7_ed55_8ccd);
        let mut words = bytes.chunks_exact(8);
        let mut i = 0;
        for w in &mut words {
            // As an array, not `copy_from_slice` (see `copy_short`).
            let w = <[u8; 8]>::try_from(w).map_or(0, u64::from_le_bytes);
            acc = acc.wrapping_add(nh(i, w));
            i += 1;
        }
        let rest = words.remainder();
        let n = rest.len();
        if n >= 4 {
            // Two overlapping halves: together with the length they determine the bytes.
            let half = |at: usize| {
                u32::from_le_bytes([rest[at], rest[at + 1], rest[at + 2], rest[at + 3]])
            };
            acc = acc.wrapping_add(nh(i, u64::from(half(0)) | u64::from(half(n - 4)) << 32));
        } else if n > 0 {
            let w = u64::from(rest[0]) | u64::from(rest[n / 2]) << 8 | u64::from(rest[n - 1]) << 16;
            acc = acc.wrapping_add(nh(i, w));
        }
        // The table probes with the low bits: bring every bit of the sum to them.
        let x = acc ^ (acc >> 32);
        (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u32
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

/// User ids up to this many bytes are stored inside the user entry: most ids (numbers,
/// short names) cost no allocation, so creating and dropping an entry is cheap.
const INLINE_NAME: usize = 22;

/// A user id, inline when short (24 bytes either way).
#[derive(Debug, Clone)]
enum Name {
    Inline { len: u8, bytes: [u8; INLINE_NAME] },
    Heap(Box<str>),
}

/// `dst[..src.len()] = src` for up to `INLINE_NAME` bytes, in at most three fixed-size
/// moves that overlap where the length needs it, each an array assignment: the .wasm
/// (opt-level "s") does a slice's `copy_from_slice` with a call that ends in a
/// `memory.copy`, which V8 (Node 20) runs as a call out to C++, whatever the length.
fn copy_short(dst: &mut [u8; INLINE_NAME], src: &[u8]) {
    fn at<const N: usize>(dst: &mut [u8], src: &[u8], i: usize) {
        let from = src.get(i..i + N).and_then(|s| <&[u8; N]>::try_from(s).ok());
        let to = dst
            .get_mut(i..i + N)
            .and_then(|d| <&mut [u8; N]>::try_from(d).ok());
        if let (Some(from), Some(to)) = (from, to) {
            *to = *from;
        }
    }
    let n = src.len();
    if n >= 8 {
        at::<8>(dst, src, 0);
        if n > 16 {
            at::<8>(dst, src, 8);
        }
        at::<8>(dst, src, n - 8);
    } else if n >= 4 {
        at::<4>(dst, src, 0);
        at::<4>(dst, src, n - 4);
    } else if n > 0 {
        dst[0] = src[0];
        dst[n / 2] = src[n / 2];
        dst[n - 1] = src[n - 1];
    }
}

impl Name {
    const EMPTY: Name = Name::Inline {
        len: 0,
        bytes: [0; INLINE_NAME],
    };

    #[cfg(test)]
    fn new(s: &str) -> Self {
        let mut name = Name::EMPTY;
        name.set(s);
        name
    }

    /// Sets the name in place: building an inline name and then moving it copies the
    /// bytes twice, and reading them back right after the byte-wise copy stalls on
    /// store forwarding (a quarter of a native acquire for a new user).
    fn set(&mut self, s: &str) {
        match self {
            Name::Inline { len, bytes } if s.len() <= INLINE_NAME => {
                copy_short(bytes, s.as_bytes());
                *len = s.len() as u8;
            }
            _ if s.len() <= INLINE_NAME => {
                *self = Name::EMPTY;
                self.set(s);
            }
            _ => *self = Name::Heap(s.into()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Name::Inline { len, bytes } => &bytes[..usize::from(*len).min(INLINE_NAME)],
            Name::Heap(s) => s.as_bytes(),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Always valid: copied whole from a `&str`.
            Name::Inline { .. } => std::str::from_utf8(self.as_bytes()).unwrap_or_default(),
            Name::Heap(s) => s,
        }
    }
}

/// A user holding at least one lease. Entries exist only while a user holds leases: one
/// is created (no allocation for a short id) on the first acquire and dropped with the
/// last lease, so idle users cost nothing and the table is bounded by `max_users`.
#[derive(Debug, Clone)]
struct User {
    name: Name,
    /// Oldest and newest lease.
    head: u32,
    tail: u32,
    count: u32,
    /// The low half of the id's `name_hash`.
    hash: u32,
    /// Connection key -> handle; allocated only for users that pass keys.
    keys: Option<Box<Map<Box<str>, u32>>>,
    /// Whether the user is at or above its warn threshold (edge-triggered events).
    near: bool,
}

impl Placeholder for User {
    const PLACEHOLDER: User = User::FREE;
}

impl User {
    const FREE: User = User {
        name: Name::EMPTY,
        head: NONE,
        tail: NONE,
        count: 0,
        hash: 0,
        keys: None,
        near: false,
    };

    fn hash(&self) -> u64 {
        u64::from(self.hash) << 32 | u64::from(self.hash)
    }
}

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

/// Aggregate figures for `stats()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub active: u32,
    pub users: u32,
    pub counters: Counters,
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

    // ----- acquire -------------------------------------------------------------------

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

    /// A user id's hash: 32 bits, kept in the entry (so resizing the index and dropping
    /// an entry never rehash names), spread over both halves of the `u64` the table
    /// takes (it probes with the low bits and tags with the top ones of a `usize`).
    fn name_hash(&self, name: &str) -> u64 {
        let h = self.name_keys.hash(name.as_bytes());
        u64::from(h) << 32 | u64::from(h)
    }

    /// The entry of the user whose id hashes to `hash`.
    fn find_user(&self, hash: u64, name: &str) -> Option<u32> {
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
    fn lookup_again(&self, hash: u64, user: &str, known: Option<u32>, epoch: u64) -> Option<u32> {
        if self.user_frees == epoch {
            known
        } else {
            self.find_user(hash, user)
        }
    }

    fn refuse(
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

    /// A new entry for a user that holds no lease yet (`hash` is its `name_hash`).
    fn insert_user(&mut self, hash: u64, name: &str) -> u32 {
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
    fn user_entries_iter(&self) -> impl Iterator<Item = u32> + '_ {
        let unlisted = (self.unlisted != NONE).then_some(self.unlisted);
        self.by_name.iter().copied().chain(unlisted)
    }

    /// Drops the entry of a user whose last lease went away.
    fn free_user(&mut self, u: u32) {
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
    fn leases_of(&self, u: u32) -> impl Iterator<Item = u32> + '_ {
        let head = self.users[u as usize].head;
        std::iter::successors((head != NONE).then_some(head), move |&h| {
            let next = self.slots[h as usize].next;
            (next != NONE).then_some(next)
        })
    }

    /// Appends a written slot to its user's list.
    fn link(&mut self, u: u32, handle: u32) {
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
    fn unlink(&mut self, u: u32, handle: u32) {
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

    /// `limit` is the user's limit, already looked up by the caller.
    fn insert_lease(&mut self, u: u32, key: Option<&str>, now: u64, limit: u32) -> u32 {
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

    fn pick_victim(&self, u: u32) -> Option<u32> {
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

    // ----- release / touch -----------------------------------------------------------

    /// Adds a slot (already written) to the id index.
    fn index_uuid(&mut self, handle: u32) {
        let (slots, key) = (&self.slots, self.uuid_key);
        let hash = uuid_hash(key, slots[handle as usize].uuid);
        let rehash: Rehash<'_> = &|&h| uuid_hash(key, slots[h as usize].uuid);
        self.by_uuid.insert_unique(hash, handle, rehash);
    }

    /// The handle of the live lease with this id.
    fn find_uuid(&self, uuid: u128) -> Option<u32> {
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
    fn unindex_uuid(&mut self, uuid: u128, handle: u32) {
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

    fn extend(&mut self, handle: u32, now: u64, activity: bool) -> bool {
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

    // ----- expiry ----------------------------------------------------------------------

    fn push_expiry(&mut self, handle: u32) {
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
    fn rebuild_expiry(&mut self) {
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
    fn is_current(slots: &Slab<Slot, SLOT_CHUNK>, e: &ExpiryEntry) -> bool {
        let s = &slots[e.handle as usize];
        s.live() && s.expires_at == e.at()
    }

    fn entry_is_current(&self, e: &ExpiryEntry) -> bool {
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
    fn purge_expired(&mut self, now: u64, sweeping: bool) {
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
    fn warm(&mut self, handles: &[u32]) {
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

    fn note_lazily_expired(&mut self, uuid: u128) {
        self.last_reclaimed.push(uuid);
        if self.pending_expired.len() < PENDING_EXPIRED_CAP {
            self.pending_expired.push(uuid);
        }
    }

    fn drop_expired_of_user(&mut self, u: u32, now: u64) {
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
    fn earliest_expiry(&mut self, now: u64) -> u64 {
        while let Some(entry) = self.expiry.peek() {
            if self.entry_is_current(&entry) {
                return entry.at().saturating_sub(now).max(1);
            }
            self.expiry.pop();
        }
        1
    }

    fn earliest_expiry_of_user(&self, u: u32, now: u64) -> u64 {
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
    fn remove(&mut self, handle: u32, why: Removal, now: u64) -> u128 {
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
    fn note_eviction(&mut self, u: u32, uuid: u128, now: u64, dry_run: bool) {
        self.counters.evicted += 1;
        self.emit_for_user(EventKind::Evicted, u, Some(uuid), now, dry_run);
    }

    /// `dry_run`: reported but not done (an eviction dry-run mode only names).
    fn emit_for_user(
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

    // ----- limits ----------------------------------------------------------------------

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

    // ----- reading ---------------------------------------------------------------------

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_stays_small() {
        // The slab dominates memory per lease; keep an eye on its element size.
        assert_eq!(std::mem::size_of::<Slot>(), 56);
    }

    #[test]
    fn ids_crafted_to_cancel_out_still_hash_apart() {
        // A linear mix of the halves would send all of these to one bucket chain.
        let key = 0x0123_4567_89ab_cdef;
        let mut hashes: Vec<u64> = (0..10_000u64)
            .map(|i| {
                let hi = i << 20;
                uuid_hash(
                    key,
                    Id128 {
                        hi,
                        lo: hi.rotate_left(32) ^ 0x5555,
                    },
                )
            })
            .collect();
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), 10_000);
        let low_bits: std::collections::HashSet<u64> = hashes.iter().map(|h| h & 0xffff).collect();
        assert!(
            low_bits.len() > 8_000,
            "low bits spread: {}",
            low_bits.len()
        );
    }

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
    fn user_ids_hash_apart() {
        let keys = NameKeys::new(0x0123_4567_89ab_cdef);
        let mut ids: Vec<String> = (0..20_000).map(|i| format!("user-{i}")).collect();
        // Every length up to past the longest id, and ids that differ only in trailing
        // zero bytes or in one byte of a word's high half.
        ids.extend((1..=300).map(|n| "x".repeat(n)));
        ids.extend((0..8).map(|n| format!("a{}", "\0".repeat(n))));
        ids.extend((0..64).map(|b| {
            format!("abcd{}efg", char::from(b'0' + b % 10)) + &"z".repeat(b as usize / 10)
        }));
        let hashes: std::collections::HashSet<u32> =
            ids.iter().map(|s| keys.hash(s.as_bytes())).collect();
        assert_eq!(hashes.len(), ids.len());
        // The table probes with the low bits.
        let low: std::collections::HashSet<u32> = (0..20_000)
            .map(|i| keys.hash(format!("user-{i}").as_bytes()) & 0xffff)
            .collect();
        assert!(low.len() > 15_000, "low bits spread: {}", low.len());
        // Other keys, other hashes.
        let other = NameKeys::new(1);
        assert_ne!(keys.hash(b"user-1"), other.hash(b"user-1"));
    }

    #[test]
    fn names_of_every_inline_length_copy_whole() {
        let mut name = Name::new(&"#".repeat(INLINE_NAME));
        for len in (0..=INLINE_NAME + 1).chain((0..=INLINE_NAME).rev()) {
            let s: String = (0..len).map(|i| char::from(b'a' + i as u8)).collect();
            name.set(&s);
            assert_eq!(name.as_str(), s);
        }
    }

    #[test]
    fn a_user_entry_stays_small() {
        // 24-byte name, four words, the boxed key map, a flag: 48 bytes on wasm32.
        assert!(std::mem::size_of::<User>() <= 40 + 2 * std::mem::size_of::<usize>());
    }

    #[test]
    fn names_inline_up_to_the_limit_and_boxed_beyond() {
        for len in [0, 1, INLINE_NAME, INLINE_NAME + 1, 256] {
            let s = "é".repeat(len / 2) + &"x".repeat(len % 2);
            let name = Name::new(&s);
            assert_eq!(name.as_str(), s);
            assert_eq!(name.as_bytes(), s.as_bytes());
            assert_eq!(matches!(name, Name::Inline { .. }), s.len() <= INLINE_NAME);
        }
        let mut name = Name::new(&"x".repeat(40));
        name.set("short");
        assert_eq!(name.as_str(), "short");
        name.set("abc");
        assert_eq!(name.as_str(), "abc");
        name.set(&"y".repeat(23));
        assert_eq!(name.as_str(), "y".repeat(23));
    }
}
