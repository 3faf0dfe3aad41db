//! Model-based property test: random operation sequences against a deliberately simple
//! model of the contract (a list of leases, scanned linearly). After every step the
//! registry must agree with the model and with its own invariants; per-user active
//! leases never exceed the limit; after releasing everything the table is empty.
#![cfg(not(target_arch = "wasm32"))]

use proptest::prelude::*;
use socket_lease::id::{self, SeededEntropy};
use socket_lease::registry::events::RefusalReason;
use socket_lease::registry::options::{Mode, Options, OptionsPatch, Policy};
use socket_lease::registry::{Acquired, Registry};
use std::collections::HashMap;

#[derive(Debug, Clone)]
enum Op {
    /// `evict: false` is phase one of a two-phase admission (`acquire_with`).
    Acquire {
        user: u8,
        key: Option<u8>,
        dt: u64,
        evict: bool,
    },
    Release {
        pick: usize,
        kind: u8,
        dt: u64,
    },
    Touch {
        pick: usize,
        dt: u64,
    },
    Sweep {
        dt: u64,
    },
    ReleaseUnknown,
    /// Changing the TTL at run time makes later expiries land before earlier ones.
    SetTtl {
        ttl: u64,
    },
    /// The host's clock steps back: nothing may shorten, and "oldest" stays grant order.
    ClockBack {
        dt: u64,
    },
    /// `snapshot()` then `restore()` into a fresh registry, which carries on in its place:
    /// the same leases, keys, times and counters, ids still increasing after it.
    SnapshotRestore {
        seed: u64,
    },
    /// Sets or clears one user's limit override; lowering one never drops a lease.
    SetUserLimit {
        user: u8,
        limit: Option<u32>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..4, proptest::option::of(0u8..3), 0u64..40, proptest::bool::weighted(0.7)).prop_map(|(user, key, dt, evict)| Op::Acquire { user, key, dt, evict }),
        2 => (any::<usize>(), 0u8..3, 0u64..40).prop_map(|(pick, kind, dt)| Op::Release { pick, kind, dt }),
        2 => (any::<usize>(), 0u64..40).prop_map(|(pick, dt)| Op::Touch { pick, dt }),
        1 => (0u64..120).prop_map(|dt| Op::Sweep { dt }),
        1 => Just(Op::ReleaseUnknown),
        1 => (5u64..150).prop_map(|ttl| Op::SetTtl { ttl }),
        1 => (1u64..60).prop_map(|dt| Op::ClockBack { dt }),
        1 => any::<u64>().prop_map(|seed| Op::SnapshotRestore { seed }),
        1 => (0u8..4, proptest::option::of(0u32..4)).prop_map(|(user, limit)| Op::SetUserLimit { user, limit }),
    ]
}

#[derive(Debug, Clone)]
struct ModelLease {
    uuid: u128,
    user: String,
    key: Option<String>,
    acquired: u64,
    touched: u64,
    expires: u64,
}

#[derive(Debug)]
struct Model {
    dry_run: bool,
    limit: u32,
    /// Per-user limit overrides in force.
    overrides: HashMap<String, u32>,
    /// The highest limit each user has had: what it may hold (a lowered limit drops
    /// nothing).
    highest: HashMap<String, u32>,
    global: Option<u32>,
    ttl: u64,
    policy: Policy,
    leases: Vec<ModelLease>,
    /// Every id ever granted, so releases can target dead ones too.
    issued: Vec<u128>,
    /// Expired leases reclaimed lazily (by acquires) since the last sweep, which reports
    /// them with its own.
    reclaimed: Vec<u128>,
    /// Refusals counted as rejections (enforce mode): not those that only say an eviction
    /// would admit.
    rejected: u64,
}

#[derive(Debug, PartialEq)]
enum Decision {
    Reuse(u128),
    Grant {
        evict: Option<u128>,
    },
    /// Reason, retry after, evictable.
    Refuse(RefusalReason, u64, bool),
}

impl Model {
    fn limit_for(&self, user: &str) -> u32 {
        self.overrides.get(user).copied().unwrap_or(self.limit)
    }

    fn drop_expired_of(&mut self, user: &str, now: u64) {
        let reclaimed = &mut self.reclaimed;
        self.leases.retain(|l| {
            let gone = l.user == user && l.expires <= now;
            if gone {
                reclaimed.push(l.uuid);
            }
            !gone
        });
    }

    fn drop_expired(&mut self, now: u64) {
        let reclaimed = &mut self.reclaimed;
        self.leases.retain(|l| {
            if l.expires <= now {
                reclaimed.push(l.uuid);
            }
            l.expires > now
        });
    }

    fn acquire(&mut self, user: &str, key: Option<&str>, now: u64, may_evict: bool) -> Decision {
        self.drop_expired_of(user, now);
        let ttl = self.ttl;
        if let Some(k) = key {
            if let Some(l) = self
                .leases
                .iter_mut()
                .find(|l| l.user == user && l.key.as_deref() == Some(k))
            {
                l.touched = l.touched.max(now);
                l.expires = l.expires.max(now + ttl);
                return Decision::Reuse(l.uuid);
            }
        }
        let limit = self.limit_for(user);
        let mine: Vec<&ModelLease> = self.leases.iter().filter(|l| l.user == user).collect();
        let active = mine.len() as u32;
        let mut evict = None;
        // Dry-run goes on past a refusal (it grants), and reports the first one.
        let mut refused = None;
        // Enforce mode, not allowed to evict where the policy would: the answer unless
        // the global limit refuses first.
        let mut would_evict = None;
        if active >= limit {
            let retry = mine
                .iter()
                .map(|l| l.expires)
                .min()
                .map_or(1, |e| e.saturating_sub(now).max(1));
            if self.policy != Policy::Reject && limit > 0 && active == limit {
                // Dry-run never refuses for a quota: there it is the eviction it reports.
                if may_evict || self.dry_run {
                    evict = mine
                        .iter()
                        .min_by_key(|l| match self.policy {
                            Policy::EvictIdle => (l.touched, l.uuid),
                            _ => (0, l.uuid),
                        })
                        .map(|l| l.uuid);
                } else {
                    would_evict = Some(Decision::Refuse(RefusalReason::UserLimit, retry, true));
                }
            } else {
                if !self.dry_run {
                    self.rejected += 1;
                    return Decision::Refuse(RefusalReason::UserLimit, retry, false);
                }
                refused = Some(Decision::Refuse(RefusalReason::UserLimit, retry, false));
            }
        }
        if let Some(g) = self.global {
            let freed = u32::from(evict.is_some() || would_evict.is_some());
            if self.leases.len() as u32 - freed >= g {
                self.drop_expired(now);
            }
            if self.leases.len() as u32 - freed >= g {
                let retry = self
                    .leases
                    .iter()
                    .map(|l| l.expires)
                    .min()
                    .map_or(1, |e| e.saturating_sub(now).max(1));
                // Refused before anything is evicted.
                if !self.dry_run {
                    self.rejected += 1;
                }
                return refused.unwrap_or(Decision::Refuse(
                    RefusalReason::GlobalLimit,
                    retry,
                    false,
                ));
            }
        }
        // Not counted: the host asks again, allowed to evict.
        would_evict.or(refused).unwrap_or(Decision::Grant { evict })
    }
}

fn check_against_model(reg: &Registry<SeededEntropy>, model: &Model) {
    reg.check_invariants();
    type Row = (u128, String, Option<String>, u64, u64, u64);
    let mut have: Vec<Row> = reg
        .leases()
        .map(|l| {
            (
                l.uuid,
                l.user.to_owned(),
                l.connection_key.map(str::to_owned),
                l.acquired_at,
                l.touched_at,
                l.expires_at,
            )
        })
        .collect();
    let mut want: Vec<Row> = model
        .leases
        .iter()
        .map(|l| {
            (
                l.uuid,
                l.user.clone(),
                l.key.clone(),
                l.acquired,
                l.touched,
                l.expires,
            )
        })
        .collect();
    have.sort();
    want.sort();
    assert_eq!(have, want, "registry and model disagree on the lease table");
    // Dry-run grants past the limits: it only counts (checked where it decides).
    if model.dry_run {
        return;
    }
    for user in 0..4 {
        let name = format!("user{user}");
        let n = model.leases.iter().filter(|l| l.user == name).count() as u32;
        let bound = model
            .highest
            .get(&name)
            .copied()
            .unwrap_or(0)
            .max(model.limit);
        assert!(
            n <= bound,
            "{name} holds {n} leases over its highest limit {bound}"
        );
    }
    if let Some(g) = model.global {
        assert!(model.leases.len() as u32 <= g);
    }
}

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        Just(Policy::Reject),
        Just(Policy::EvictOldest),
        Just(Policy::EvictIdle)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn registry_matches_the_model(
        limit in 0u32..4,
        global in proptest::option::of(1u32..8),
        ttl in 5u64..150,
        policy in policy(),
        dry_run in proptest::bool::weighted(0.25),
        seed in any::<u64>(),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let patch = OptionsPatch {
            per_user_limit: Some(limit),
            global_limit: Some(global),
            ttl_ms: Some(ttl),
            on_limit: Some(policy),
            mode: Some(if dry_run { Mode::DryRun } else { Mode::Enforce }),
            ..Default::default()
        };
        let mut reg = Registry::new(Options::default().patched(&patch).unwrap(), SeededEntropy::new(seed));
        let mut model = Model { dry_run, limit, overrides: HashMap::new(), highest: HashMap::new(), global, ttl, policy, leases: Vec::new(), issued: Vec::new(), reclaimed: Vec::new(), rejected: 0 };
        let mut now = 1_000u64;
        // Dry-run: (user-limit refusals, global-limit refusals, evictions) it reported.
        let mut dry = (0u64, 0u64, 0u64);
        for op in ops {
            match op {
                Op::Acquire { user, key, dt, evict } => {
                    now += dt;
                    let name = format!("user{user}");
                    let key = key.map(|k| format!("socket{k}"));
                    let earlier = model.reclaimed.len();
                    let expected = model.acquire(&name, key.as_deref(), now, evict);
                    let got = reg.acquire_with(&name, key.as_deref(), now, evict).unwrap();
                    // The expired leases this acquire dropped, of any user, whatever it
                    // answered (sweep lists them again below).
                    let mut reclaimed = reg.last_reclaimed().to_vec();
                    let mut dropped = model.reclaimed[earlier..].to_vec();
                    reclaimed.sort_unstable();
                    dropped.sort_unstable();
                    prop_assert_eq!(reclaimed, dropped);
                    if !dry_run {
                        prop_assert_eq!(reg.stats().counters.rejected(), model.rejected);
                    }
                    // Dry-run grants what enforce mode would refuse or evict for, and
                    // counts what enforce mode would have done.
                    let expected = match expected {
                        Decision::Refuse(reason, _, _) if dry_run => {
                            match reason {
                                RefusalReason::GlobalLimit => dry.1 += 1,
                                _ => dry.0 += 1,
                            }
                            Decision::Grant { evict: None }
                        }
                        Decision::Grant { evict: Some(_) } if dry_run => {
                            dry.2 += 1;
                            Decision::Grant { evict: None }
                        }
                        other => other,
                    };
                    if dry_run {
                        let c = reg.stats().counters;
                        prop_assert_eq!((c.rejected_user_limit, c.rejected_global_limit, c.evicted), dry);
                    }
                    match (expected, got) {
                        (Decision::Reuse(uuid), Acquired::Granted { handle, reused: true, evicted }) => {
                            prop_assert_eq!(reg.lease(handle).unwrap().uuid, uuid);
                            prop_assert!(evicted.is_empty());
                        }
                        (Decision::Grant { evict }, Acquired::Granted { handle, reused: false, evicted }) => {
                            prop_assert_eq!(evicted, evict.into_iter().collect::<Vec<_>>());
                            if let Some(v) = evict {
                                model.leases.retain(|l| l.uuid != v);
                            }
                            let uuid = reg.lease(handle).unwrap().uuid;
                            prop_assert!(model.issued.iter().all(|&old| old < uuid), "ids increase");
                            model.issued.push(uuid);
                            model.leases.push(ModelLease { uuid, user: name, key, acquired: now, touched: now, expires: now + model.ttl });
                        }
                        (Decision::Refuse(reason, retry, evictable), Acquired::Refused(r)) => {
                            prop_assert_eq!(r.reason, reason);
                            prop_assert_eq!(r.retry_after_ms, retry);
                            prop_assert_eq!(r.evictable, evictable);
                        }
                        (e, g) => prop_assert!(false, "model {:?} vs registry {:?}", e, g),
                    }
                }
                Op::Release { pick, kind, dt } => {
                    now += dt;
                    if model.issued.is_empty() { continue; }
                    let uuid = model.issued[pick % model.issued.len()];
                    let text = id::format(["conn", "run", "thread"][kind as usize], uuid);
                    let live = model.leases.iter().any(|l| l.uuid == uuid);
                    prop_assert_eq!(reg.release(&text, now).unwrap(), live);
                    model.leases.retain(|l| l.uuid != uuid);
                }
                Op::Touch { pick, dt } => {
                    now += dt;
                    if model.issued.is_empty() { continue; }
                    let uuid = model.issued[pick % model.issued.len()];
                    let expected = match model.leases.iter_mut().find(|l| l.uuid == uuid) {
                        Some(l) if l.expires > now => {
                            l.touched = l.touched.max(now);
                            l.expires = l.expires.max(now + model.ttl);
                            true
                        }
                        _ => false,
                    };
                    prop_assert_eq!(reg.touch(&id::format("conn", uuid), now).unwrap(), expected);
                }
                Op::Sweep { dt } => {
                    now += dt;
                    // Every lease that expired, whether this sweep or an acquire reclaimed
                    // it, comes back exactly once.
                    let swept: Vec<u128> = reg.sweep(now);
                    model.drop_expired(now);
                    let mut expected = std::mem::take(&mut model.reclaimed);
                    let mut got = swept;
                    expected.sort_unstable();
                    got.sort_unstable();
                    prop_assert_eq!(got, expected);
                }
                Op::ClockBack { dt } => {
                    now = now.saturating_sub(dt);
                }
                Op::SetTtl { ttl } => {
                    reg.set_limits(&OptionsPatch { ttl_ms: Some(ttl), ..Default::default() }).unwrap();
                    model.ttl = ttl;
                }
                Op::SnapshotRestore { seed } => {
                    let bytes = reg.snapshot();
                    let counters = reg.stats().counters;
                    let limits = reg.options().user_limits.clone();
                    // Options are the host's to pass again; the snapshot keeps the leases,
                    // counters, per-user overrides and the id generator.
                    let again = OptionsPatch { ttl_ms: Some(model.ttl), ..patch.clone() };
                    reg = Registry::restore(&bytes, &again, SeededEntropy::new(seed)).unwrap();
                    prop_assert_eq!(reg.stats().counters, counters);
                    // The same content: leases (checked below), counters, overrides. The bytes
                    // can differ only in the order of the overrides (a hash map's).
                    prop_assert_eq!(&reg.options().user_limits, &limits);
                    prop_assert_eq!(reg.snapshot().len(), bytes.len());
                    // Leases an acquire reclaimed lazily are reported by the next sweep of
                    // the registry that reclaimed them; a snapshot does not carry that list
                    // (their sockets belonged to the process the snapshot came from).
                    model.reclaimed.clear();
                }
                Op::SetUserLimit { user, limit } => {
                    let name = format!("user{user}");
                    reg.set_user_limit(&name, limit).unwrap();
                    match limit {
                        Some(n) => {
                            model.overrides.insert(name.clone(), n);
                            let h = model.highest.entry(name).or_insert(0);
                            *h = (*h).max(n);
                        }
                        None => {
                            model.overrides.remove(&name);
                        }
                    }
                }
                Op::ReleaseUnknown => {
                    let before = reg.stats().counters.unknown_releases;
                    prop_assert!(!reg.release(&id::format("conn", 0x1234), now).unwrap());
                    prop_assert_eq!(reg.stats().counters.unknown_releases, before + 1);
                }
            }
            check_against_model(&reg, &model);
        }
        // Releasing everything empties the table.
        for l in model.leases.clone() {
            prop_assert!(reg.release(&id::format("thread", l.uuid), now).unwrap());
        }
        prop_assert_eq!(reg.active(), 0);
        prop_assert_eq!(reg.stats().users, 0);
        prop_assert_eq!(reg.leases().count(), 0);
        reg.check_invariants();
    }
}
