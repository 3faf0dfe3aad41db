//! Behaviour of the lease registry, natively, with a fake clock.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::{conn, grant, registry};
use socket_lease::id;
use socket_lease::registry::events::{EventKind, RefusalReason};
use socket_lease::registry::options::{Mode, OptionsPatch, Policy};
use socket_lease::registry::Acquired;
use socket_lease::LeaseError;

fn limit(n: u32) -> OptionsPatch {
    OptionsPatch {
        per_user_limit: Some(n),
        ttl_ms: Some(1_000),
        ..Default::default()
    }
}

fn refused(r: Acquired) -> socket_lease::registry::events::Refusal {
    match r {
        Acquired::Refused(r) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn limit_is_enforced_and_refusal_says_when_to_retry() {
    let mut reg = registry(limit(2));
    grant(&mut reg, "alice", 100);
    grant(&mut reg, "alice", 300);
    let r = refused(reg.acquire("alice", None, 400).unwrap());
    assert_eq!(r.reason, RefusalReason::UserLimit);
    assert_eq!((r.limit, r.active), (2, 2));
    assert_eq!(r.retry_after_ms, 700, "earliest lease expires at 1100");
    // Other users are unaffected.
    grant(&mut reg, "bob", 400);
    assert_eq!(reg.stats().counters.rejected_user_limit, 1);
    reg.check_invariants();
}

#[test]
fn same_connection_key_returns_the_same_lease() {
    let mut reg = registry(limit(1));
    let a = reg.acquire("alice", Some("sock-1"), 0).unwrap();
    let b = reg.acquire("alice", Some("sock-1"), 500).unwrap();
    let (
        Acquired::Granted {
            handle: ha,
            reused: false,
            ..
        },
        Acquired::Granted {
            handle: hb,
            reused: true,
            ..
        },
    ) = (a, b)
    else {
        panic!("expected a new lease then a reused one");
    };
    assert_eq!(ha, hb);
    assert_eq!(
        reg.lease(hb).unwrap().expires_at,
        1_500,
        "reuse touches the lease"
    );
    // A thousand "messages" on one connection never consume a second lease.
    for t in 0..1_000 {
        assert!(matches!(
            reg.acquire("alice", Some("sock-1"), 600 + t).unwrap(),
            Acquired::Granted { reused: true, .. }
        ));
    }
    assert_eq!(reg.active(), 1);
    // The same key for another user is another connection.
    grant(&mut reg, "bob", 600);
    assert!(matches!(
        reg.acquire("bob", Some("sock-1"), 600).unwrap(),
        Acquired::Refused(_)
    ));
    reg.check_invariants();
}

#[test]
fn release_accepts_any_derived_id_and_is_idempotent() {
    let mut reg = registry(limit(5));
    for kind in ["conn", "run", "thread"] {
        let uuid = grant(&mut reg, "alice", 0);
        let any = id::format(kind, uuid);
        assert!(reg.release(&any, 1).unwrap(), "{kind}");
        assert!(!reg.release(&any, 2).unwrap(), "second release of {kind}");
    }
    assert_eq!(reg.stats().counters.released, 3);
    assert_eq!(reg.stats().counters.unknown_releases, 3);
    // A well-formed id of a kind this registry never issues does not resolve.
    let uuid = grant(&mut reg, "alice", 0);
    assert!(!reg.release(&id::format("user", uuid), 1).unwrap());
    assert_eq!(reg.active(), 1);
    // A malformed id is misuse.
    assert!(matches!(
        reg.release("conn_nope", 1),
        Err(LeaseError::InvalidId(_))
    ));
    assert_eq!(reg.active(), 1);
    reg.check_invariants();
}

#[test]
fn touch_extends_and_expired_leases_are_reclaimed_lazily_and_reported() {
    let mut reg = registry(limit(1));
    let uuid = grant(&mut reg, "alice", 0);
    assert!(reg.touch(&conn(uuid), 900).unwrap());
    assert!(
        matches!(
            reg.acquire("alice", None, 1_500).unwrap(),
            Acquired::Refused(_)
        ),
        "touched at 900, alive until 1900"
    );
    assert!(
        !reg.touch(&conn(uuid), 1_900).unwrap(),
        "expired exactly at its expiry"
    );
    // The next acquire drops the expired lease before counting: no sweep needed.
    let fresh = grant(&mut reg, "alice", 1_901);
    assert_ne!(fresh, uuid);
    assert_eq!(reg.stats().counters.expired, 1);
    // ...and the sweep still tells the host which socket to close.
    assert_eq!(reg.sweep(1_902), vec![uuid]);
    assert!(reg.sweep(1_903).is_empty());
    let events = reg.take_events();
    assert!(events
        .iter()
        .any(|e| e.kind == EventKind::Expired && e.lease == Some(uuid)));
    reg.check_invariants();
}

#[test]
fn sweep_returns_exactly_what_expired() {
    let mut reg = registry(OptionsPatch {
        per_user_limit: Some(100),
        ttl_ms: Some(100),
        ..Default::default()
    });
    let mut early = Vec::new();
    for i in 0..50 {
        early.push(grant(&mut reg, &format!("u{i}"), 0));
    }
    let late: Vec<u128> = (0..50)
        .map(|i| grant(&mut reg, &format!("u{i}"), 50))
        .collect();
    let mut swept = reg.sweep(100);
    swept.sort();
    early.sort();
    assert_eq!(swept, early);
    assert_eq!(reg.active(), 50);
    assert!(reg.sweep(149).is_empty());
    assert_eq!(reg.sweep(150).len(), late.len());
    assert_eq!(reg.stats().users, 0);
    reg.check_invariants();
}

#[test]
fn reconcile_releases_what_the_host_no_longer_holds() {
    let mut reg = registry(limit(5));
    let a = grant(&mut reg, "alice", 0);
    let b = grant(&mut reg, "alice", 0);
    let c = grant(&mut reg, "bob", 0);
    // A bad id anywhere in the list changes nothing.
    assert!(reg.reconcile(&[conn(a), "garbage".into()], 1).is_err());
    assert_eq!(reg.active(), 3);
    let released = reg
        .reconcile(&[conn(a), id::format("thread", c)], 1)
        .unwrap();
    assert_eq!(released, vec![b]);
    assert_eq!(reg.stats().counters.reconciled, 1);
    reg.check_invariants();
}

#[test]
fn evict_oldest_and_evict_idle_pick_the_right_victim() {
    for (policy, expected) in [(Policy::EvictOldest, 0usize), (Policy::EvictIdle, 1usize)] {
        let mut reg = registry(OptionsPatch {
            on_limit: Some(policy),
            ..limit(3)
        });
        let ids: Vec<u128> = (0..3).map(|i| grant(&mut reg, "alice", i * 10)).collect();
        reg.touch(&conn(ids[0]), 50).unwrap(); // the oldest is the most recently touched
        let Acquired::Granted { evicted, .. } = reg.acquire("alice", None, 60).unwrap() else {
            panic!()
        };
        assert_eq!(evicted, vec![ids[expected]], "{policy:?}");
        assert_eq!(reg.active(), 3);
        assert_eq!(reg.stats().counters.evicted, 1);
        assert!(reg
            .take_events()
            .iter()
            .any(|e| e.kind == EventKind::Evicted && e.lease == Some(ids[expected])));
        reg.check_invariants();
    }
}

#[test]
fn lowering_a_limit_keeps_leases_and_refuses_until_under() {
    for policy in [Policy::Reject, Policy::EvictOldest] {
        let mut reg = registry(OptionsPatch {
            on_limit: Some(policy),
            ..limit(4)
        });
        let ids: Vec<u128> = (0..4).map(|_| grant(&mut reg, "alice", 0)).collect();
        reg.set_limits(&OptionsPatch {
            per_user_limit: Some(2),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(reg.active(), 4, "nothing dropped");
        assert!(
            matches!(reg.acquire("alice", None, 1).unwrap(), Acquired::Refused(_)),
            "{policy:?}"
        );
        reg.release(&conn(ids[0]), 1).unwrap();
        reg.release(&conn(ids[1]), 1).unwrap();
        reg.release(&conn(ids[2]), 1).unwrap();
        grant(&mut reg, "alice", 2);
        reg.check_invariants();
    }
}

#[test]
fn per_user_overrides_apply_and_clear() {
    let mut reg = registry(limit(1));
    reg.set_user_limit("vip", Some(3)).unwrap();
    for _ in 0..3 {
        grant(&mut reg, "vip", 0);
    }
    assert!(matches!(
        reg.acquire("vip", None, 0).unwrap(),
        Acquired::Refused(_)
    ));
    reg.set_user_limit("vip", None).unwrap();
    assert_eq!(reg.options().limit_for("vip"), 1);
    reg.set_user_limit("blocked", Some(0)).unwrap();
    assert_eq!(refused(reg.acquire("blocked", None, 0).unwrap()).limit, 0);
}

#[test]
fn global_limit_reclaims_expired_leases_before_refusing() {
    let mut reg = registry(OptionsPatch {
        global_limit: Some(Some(2)),
        ..limit(5)
    });
    grant(&mut reg, "a", 0);
    grant(&mut reg, "b", 500);
    let r = refused(reg.acquire("c", None, 600).unwrap());
    assert_eq!(
        (r.reason, r.limit, r.active, r.retry_after_ms),
        (RefusalReason::GlobalLimit, 2, 2, 400)
    );
    // At 1000 "a" has expired; the acquire reclaims it instead of refusing.
    grant(&mut reg, "c", 1_000);
    assert_eq!(reg.active(), 2);
    reg.check_invariants();
}

#[test]
fn user_table_is_bounded() {
    let mut reg = registry(OptionsPatch {
        max_users: Some(2),
        ..limit(5)
    });
    grant(&mut reg, "a", 0);
    grant(&mut reg, "b", 0);
    grant(&mut reg, "a", 0); // existing users still acquire
    let r = refused(reg.acquire("c", None, 10).unwrap());
    assert_eq!(r.reason, RefusalReason::UserTableFull);
    grant(&mut reg, "c", 1_000); // "b" expired at 1000 and left the table
}

#[test]
fn dry_run_reports_but_never_refuses() {
    let mut reg = registry(OptionsPatch {
        mode: Some(Mode::DryRun),
        ..limit(1)
    });
    grant(&mut reg, "alice", 0);
    grant(&mut reg, "alice", 0);
    assert_eq!(reg.active(), 2);
    assert_eq!(reg.stats().counters.rejected_user_limit, 1);
    let events = reg.take_events();
    assert!(events
        .iter()
        .any(|e| e.kind == EventKind::Rejected && e.dry_run));
}

#[test]
fn near_limit_fires_once_per_crossing() {
    let mut reg = registry(limit(5)); // warn at ceil(5 * 0.8) = 4
    let ids: Vec<u128> = (0..5).map(|_| grant(&mut reg, "alice", 0)).collect();
    let kinds: Vec<EventKind> = reg.take_events().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![EventKind::NearLimit, EventKind::LimitReached]);
    reg.release(&conn(ids[4]), 1).unwrap();
    grant(&mut reg, "alice", 1); // still at/above 4 in between: no new near-limit
    reg.release(&conn(ids[0]), 1).unwrap();
    reg.release(&conn(ids[1]), 1).unwrap(); // now 3: below the threshold
    grant(&mut reg, "alice", 2); // back to 4: crosses again
    assert_eq!(reg.stats().counters.near_limit_events, 2);
}

#[test]
fn bad_options_are_refused_with_the_field_named() {
    use socket_lease::registry::options::Options;
    let cases = [
        OptionsPatch {
            ttl_ms: Some(0),
            ..Default::default()
        },
        OptionsPatch {
            warn_ratio: Some(f64::NAN),
            ..Default::default()
        },
        OptionsPatch {
            warn_ratio: Some(1.5),
            ..Default::default()
        },
        OptionsPatch {
            max_users: Some(0),
            ..Default::default()
        },
        OptionsPatch {
            per_user_limit: Some(u32::MAX),
            ..Default::default()
        },
        OptionsPatch {
            kinds: Some(vec!["Bad".into()]),
            ..Default::default()
        },
        OptionsPatch {
            kinds: Some(vec!["run".into()]),
            ..Default::default()
        },
    ];
    for patch in cases {
        let err = Options::default()
            .patched(&patch)
            .expect_err("must be refused");
        assert_eq!(err.code(), "INVALID_OPTION", "{err}");
    }
}

#[test]
fn bad_user_ids_and_keys_are_refused_and_change_nothing() {
    let mut reg = registry(limit(5));
    for user in ["", &"x".repeat(257)] {
        assert!(matches!(
            reg.acquire(user, None, 0),
            Err(LeaseError::InvalidUserId(_))
        ));
    }
    assert!(matches!(
        reg.acquire("alice", Some(""), 0),
        Err(LeaseError::InvalidOption(_))
    ));
    grant(&mut reg, &"é".repeat(128), 0); // 256 bytes of UTF-8 is the maximum
    assert_eq!(reg.stats().counters.acquired, 1);
}

#[test]
fn extra_kinds_resolve_to_the_lease() {
    let mut reg = registry(OptionsPatch {
        kinds: Some(vec!["session".into()]),
        ..limit(5)
    });
    let uuid = grant(&mut reg, "alice", 0);
    assert!(reg.release(&id::format("session", uuid), 1).unwrap());
    assert!(reg
        .set_limits(&OptionsPatch {
            kinds: Some(vec![]),
            ..Default::default()
        })
        .is_err());
}

#[test]
fn snapshot_round_trip_keeps_leases_counters_and_monotonic_ids() {
    let mut reg = registry(limit(3));
    reg.set_user_limit("vip", Some(7)).unwrap();
    let a = grant(&mut reg, "alice", 10);
    let _ = reg.acquire("alice", Some("sock"), 20).unwrap();
    let b = grant(&mut reg, "vip", 30);
    reg.release(&conn(a), 40).unwrap();
    let bytes = reg.snapshot();
    let mut restored = socket_lease::registry::Registry::restore(
        &bytes,
        &OptionsPatch::default(),
        socket_lease::id::SeededEntropy::new(9),
    )
    .unwrap();
    restored.check_invariants();
    assert_eq!(restored.stats(), reg.stats());
    assert_eq!(restored.options().limit_for("vip"), 7);
    let before: Vec<_> = reg
        .leases()
        .map(|l| (l.uuid, l.user.to_owned(), l.expires_at))
        .collect();
    let mut after: Vec<_> = restored
        .leases()
        .map(|l| (l.uuid, l.user.to_owned(), l.expires_at))
        .collect();
    let mut before = before;
    before.sort();
    after.sort();
    assert_eq!(before, after);
    // The connection key still resolves; the next id sorts after every restored one.
    assert!(matches!(
        restored.acquire("alice", Some("sock"), 50).unwrap(),
        Acquired::Granted { reused: true, .. }
    ));
    let next = grant(&mut restored, "carol", 0);
    assert!(next > b);
    assert!(restored.release(&id::format("thread", b), 60).unwrap());
}

#[test]
fn damaged_snapshots_are_refused_whole() {
    let mut reg = registry(limit(3));
    grant(&mut reg, "alice", 0);
    let _ = reg.acquire("bob", Some("k"), 0).unwrap();
    let bytes = reg.snapshot();
    let restore = |b: &[u8]| {
        socket_lease::registry::Registry::restore(
            b,
            &OptionsPatch::default(),
            socket_lease::id::SeededEntropy::new(1),
        )
    };
    for len in 0..bytes.len() {
        let err = restore(&bytes[..len])
            .err()
            .expect("truncated snapshot refused");
        assert_eq!(err.code(), "INVALID_SNAPSHOT");
    }
    for i in 0..bytes.len() {
        for bit in [0x01u8, 0x80] {
            let mut bad = bytes.clone();
            bad[i] ^= bit;
            let err = restore(&bad)
                .err()
                .unwrap_or_else(|| panic!("flip at byte {i} accepted"));
            assert_eq!(err.code(), "INVALID_SNAPSHOT");
        }
    }
    let mut future = bytes.clone();
    future[4] = 3;
    let err = restore(&future).err().unwrap();
    assert!(err.to_string().contains("version 3"), "{err}");
    // Options that cannot hold the snapshot are refused too.
    let err = socket_lease::registry::Registry::restore(
        &bytes,
        &OptionsPatch {
            max_users: Some(1),
            ..Default::default()
        },
        socket_lease::id::SeededEntropy::new(1),
    )
    .err()
    .unwrap();
    assert_eq!(err.code(), "INVALID_SNAPSHOT");
}

#[test]
fn metrics_expose_every_series_without_user_ids() {
    let mut reg = registry(limit(1));
    grant(&mut reg, "secret-user", 0);
    let _ = reg.acquire("secret-user", None, 0).unwrap();
    let s = reg.stats();
    let text = socket_lease::registry::metrics::render(s.active, s.users, &s.counters);
    for series in [
        "socket_lease_active_leases 1",
        "socket_lease_users 1",
        "socket_lease_acquired_total 1",
        "socket_lease_released_total 0",
        "socket_lease_rejected_total{reason=\"user-limit\"} 1",
        "socket_lease_expired_total 0",
        "socket_lease_evicted_total 0",
        "socket_lease_unknown_release_total 0",
        "socket_lease_near_limit_total 1",
    ] {
        assert!(
            text.lines().any(|l| l == series),
            "missing {series}\n{text}"
        );
    }
    assert!(!text.contains("secret-user"));
}

#[test]
fn churn_does_not_grow_the_expiry_heap_without_bound() {
    let mut reg = registry(OptionsPatch {
        per_user_limit: Some(10),
        ttl_ms: Some(1_000_000),
        ..Default::default()
    });
    for i in 0..200_000u64 {
        let uuid = grant(&mut reg, "alice", i);
        reg.touch(&conn(uuid), i).unwrap();
        reg.release(&conn(uuid), i).unwrap();
    }
    assert_eq!(reg.active(), 0);
    assert_eq!(reg.stats().users, 0);
    // 400,000 heap pushes happened; stale entries are compacted away.
    assert!(
        reg.expiry_entries() <= 1_024 + 1,
        "heap kept {} entries",
        reg.expiry_entries()
    );
    reg.check_invariants();
}

#[test]
fn user_entries_go_with_their_last_lease() {
    let mut reg = registry(limit(2));
    let long = "a-user-id-longer-than-the-inline-twenty-two-bytes";
    let mut ids: Vec<u128> = (0..20_000)
        .map(|i| grant(&mut reg, &format!("user{i}"), 0))
        .collect();
    ids.push(grant(&mut reg, long, 0));
    assert_eq!(reg.user_entries(), 20_001);
    for uuid in &ids {
        assert!(reg.release(&conn(*uuid), 1).unwrap());
    }
    assert_eq!(reg.stats().users, 0);
    assert_eq!(reg.user_entries(), 0, "idle users keep no entry");
    reg.check_invariants();
    // Users come back (reusing dropped entries) and are counted as before.
    for i in (0..20_000).step_by(97) {
        grant(&mut reg, &format!("user{i}"), 2);
        grant(&mut reg, &format!("user{i}"), 2);
        assert!(matches!(
            reg.acquire(&format!("user{i}"), None, 2).unwrap(),
            Acquired::Refused(_)
        ));
    }
    grant(&mut reg, long, 2);
    assert_eq!(reg.user_leases(long, 2).1.len(), 1);
    reg.check_invariants();
}

#[test]
fn an_immediate_release_leaves_no_expiry_entry() {
    let mut reg = registry(limit(5));
    let held = grant(&mut reg, "alice", 0);
    for i in 0..10_000u64 {
        let uuid = grant(&mut reg, &format!("user{}", i % 300), i);
        assert!(reg.release(&conn(uuid), i).unwrap());
    }
    assert_eq!(reg.expiry_entries(), 1, "only the held lease is scheduled");
    assert_eq!(reg.sweep(1_000), vec![held]);
    reg.check_invariants();
}

#[test]
fn a_slot_reused_at_the_same_expiry_is_swept_once() {
    let mut reg = registry(limit(5));
    let a = grant(&mut reg, "alice", 0);
    let b = grant(&mut reg, "bob", 0);
    // a's entry is no longer the newest, so it stays behind; the next lease takes a's
    // slot and expires at the same time: two entries name that slot and time.
    assert!(reg.release(&conn(a), 0).unwrap());
    let c = grant(&mut reg, "carol", 0);
    assert_eq!(reg.expiry_entries(), 3);
    reg.check_invariants();
    let mut swept = reg.sweep(1_000);
    swept.sort();
    let mut want = vec![b, c];
    want.sort();
    assert_eq!(swept, want);
    assert_eq!(reg.stats().counters.expired, 2);
    assert_eq!(reg.expiry_entries(), 0);
    reg.check_invariants();
}

#[test]
fn churn_within_one_millisecond_keeps_one_expiry_entry_per_lease() {
    // Each release frees a slot that the next acquire takes again, expiring at the same
    // time as the entry the released lease left behind: both entries look current.
    let mut reg = registry(limit(5));
    let mut held: Vec<u128> = (0..2_000)
        .map(|i| grant(&mut reg, &format!("user{i}"), 7))
        .collect();
    for i in 0..20_000usize {
        let k = (i * 7919) % held.len();
        assert!(reg.release(&conn(held[k]), 7).unwrap());
        held[k] = grant(&mut reg, &format!("user{}", i % 3_000), 7);
        assert!(
            reg.expiry_entries() <= 2 * held.len() + 1_025,
            "{} expiry entries for {} leases",
            reg.expiry_entries(),
            held.len()
        );
    }
    reg.check_invariants();
    let mut swept = reg.sweep(1_007);
    swept.sort();
    held.sort();
    assert_eq!(swept, held);
    assert_eq!(reg.expiry_entries(), 0);
}

#[test]
fn evicting_a_users_only_lease_keeps_the_user() {
    let mut reg = registry(OptionsPatch {
        on_limit: Some(Policy::EvictOldest),
        ..limit(1)
    });
    let first = grant(&mut reg, "alice", 0);
    match reg.acquire("alice", None, 1).unwrap() {
        Acquired::Granted { evicted, .. } => assert_eq!(evicted, vec![first]),
        other => panic!("expected a grant, got {other:?}"),
    }
    assert_eq!(reg.stats().users, 1);
    assert_eq!(reg.user_leases("alice", 1).1.len(), 1);
    reg.check_invariants();
}

#[test]
fn a_touch_never_shortens_a_lease() {
    let mut reg = registry(limit(1));
    let uuid = grant(&mut reg, "alice", 0);
    assert!(reg.touch(&conn(uuid), 500).unwrap());
    assert!(
        reg.touch(&conn(uuid), 100).unwrap(),
        "a late heartbeat still counts"
    );
    let lease = reg.leases().next().unwrap();
    assert_eq!((lease.touched_at, lease.expires_at), (500, 1_500));
    reg.set_limits(&OptionsPatch {
        ttl_ms: Some(100),
        ..Default::default()
    })
    .unwrap();
    assert!(reg.touch(&conn(uuid), 600).unwrap());
    assert_eq!(
        reg.leases().next().unwrap().expires_at,
        1_500,
        "a lower TTL applies from the next renewal that extends"
    );
}

#[test]
fn sweep_returns_every_lease_it_reclaims_beyond_the_lazy_list_cap() {
    // More than the 65,536 ids kept for leases reclaimed lazily by acquires: what the
    // sweep itself reclaims must all come back, or the host never closes those sockets.
    let mut reg = registry(OptionsPatch {
        per_user_limit: Some(100),
        ttl_ms: Some(1_000),
        ..Default::default()
    });
    let n = 100_000;
    for i in 0..n {
        grant(&mut reg, &format!("user-{}", i % 5_000), 100);
    }
    let swept = reg.sweep(2_000);
    assert_eq!(swept.len(), n);
    assert_eq!(
        swept.iter().collect::<std::collections::HashSet<_>>().len(),
        n,
        "each once"
    );
    assert_eq!(reg.stats().counters.expired, n as u64);
    assert!(reg.sweep(2_000).is_empty());
    reg.check_invariants();
}

#[test]
fn snapshots_keep_their_id_kinds_and_version_1_still_reads() {
    use socket_lease::registry::Registry;
    let with_kinds = OptionsPatch {
        kinds: Some(vec!["chat".into()]),
        ..limit(5)
    };
    let mut reg = registry(with_kinds.clone());
    let a = grant(&mut reg, "alice", 100);
    let bytes = reg.snapshot();
    let restore = |patch: &OptionsPatch| {
        Registry::restore(&bytes, patch, socket_lease::id::SeededEntropy::new(9))
    };

    // The kinds come back with the leases: a lease is still known by its `chat_` id.
    let mut back = restore(&OptionsPatch::default()).unwrap();
    assert_eq!(back.options().kinds, vec!["chat".to_string()]);
    assert!(back.release(&id::format("chat", a), 200).unwrap());
    // Repeating them is fine; changing them is refused (as setLimits refuses it).
    assert!(restore(&with_kinds).is_ok());
    let err = restore(&OptionsPatch {
        kinds: Some(vec!["room".into()]),
        ..Default::default()
    })
    .err()
    .unwrap();
    assert_eq!(err.code(), "INVALID_OPTION");
    assert!(
        err.to_string()
            .contains("have kinds [chat]; restore cannot change them to [room]"),
        "{err}"
    );

    // A version-1 snapshot (no kinds) of the same registry without kinds still reads,
    // and takes its kinds from the options.
    let mut plain = registry(limit(5));
    let b = grant(&mut plain, "bob", 100);
    let v2 = plain.snapshot();
    let v1 = to_version_1(&v2);
    let mut old =
        Registry::restore(&v1, &with_kinds, socket_lease::id::SeededEntropy::new(9)).unwrap();
    assert_eq!(old.options().kinds, vec!["chat".to_string()]);
    assert!(old.release(&id::format("chat", b), 200).unwrap());
    old.check_invariants();
}

/// A version-2 snapshot with no kinds, rewritten as version 1 wrote it: the same bytes
/// without the kind count, with its header and checksum redone.
fn to_version_1(v2: &[u8]) -> Vec<u8> {
    const HEADER: usize = 10;
    let len = u32::from_le_bytes(v2[6..10].try_into().unwrap()) as usize;
    let payload = &v2[HEADER..HEADER + len];
    // generator (8 + 4), counters, then the overrides: find the kind count after them by
    // walking the overrides (none here) from the end of the counters.
    let counters_end = {
        let plain = registry(limit(5));
        let empty = plain.snapshot();
        let empty_len = u32::from_le_bytes(empty[6..10].try_into().unwrap()) as usize;
        // An empty registry's payload ends with: overrides (4), kinds (4), lease count (4).
        empty_len - 12
    };
    let overrides_end = counters_end + 4;
    assert_eq!(
        &payload[counters_end..overrides_end],
        &[0, 0, 0, 0],
        "no overrides"
    );
    assert_eq!(
        &payload[overrides_end..overrides_end + 4],
        &[0, 0, 0, 0],
        "no kinds"
    );
    let mut body = Vec::new();
    body.extend_from_slice(&payload[..overrides_end]);
    body.extend_from_slice(&payload[overrides_end + 4..]);
    let mut out = Vec::new();
    out.extend_from_slice(b"SLSN");
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

#[test]
fn evict_oldest_evicts_the_first_granted_even_when_the_clock_stepped_back() {
    let mut reg = registry(OptionsPatch {
        on_limit: Some(Policy::EvictOldest),
        ttl_ms: Some(60_000),
        ..limit(2)
    });
    let first = grant(&mut reg, "alice", 10_000);
    let second = grant(&mut reg, "alice", 5_000); // the host clock went back 5 s
    let (_, listed) = reg.user_leases("alice", 5_000);
    assert_eq!(
        listed[0].uuid, first,
        "userStats lists the first granted first"
    );
    match reg.acquire("alice", None, 6_000).unwrap() {
        Acquired::Granted { evicted, .. } => assert_eq!(evicted, vec![first]),
        other => panic!("expected an eviction, got {other:?}"),
    }
    assert!(
        reg.touch(&conn(second), 6_000).unwrap(),
        "the second lease stays"
    );
    reg.check_invariants();
}

#[test]
fn dry_run_reports_one_refusal_per_acquire_over_both_limits() {
    let mut reg = registry(OptionsPatch {
        mode: Some(Mode::DryRun),
        global_limit: Some(Some(1)),
        ..limit(1)
    });
    reg.set_collect_events(true);
    grant(&mut reg, "alice", 100);
    // Over the user limit and the global limit at once: enforce mode would answer the
    // user limit; dry-run grants and reports that one refusal, once.
    grant(&mut reg, "alice", 200);
    let c = reg.stats().counters;
    assert_eq!((c.rejected_user_limit, c.rejected_global_limit), (1, 0));
    let rejected = reg
        .take_events()
        .into_iter()
        .filter(|e| e.kind == EventKind::Rejected)
        .count();
    assert_eq!(rejected, 1);
}

#[test]
fn dry_run_with_an_evict_policy_reports_the_eviction_enforce_mode_would_make() {
    for policy in [Policy::EvictOldest, Policy::EvictIdle] {
        let mut reg = registry(OptionsPatch {
            mode: Some(Mode::DryRun),
            on_limit: Some(policy),
            global_limit: Some(Some(2)),
            ..limit(2)
        });
        reg.set_collect_events(true);
        let first = grant(&mut reg, "alice", 100);
        let second = grant(&mut reg, "alice", 200);
        // evict-idle picks the least recently touched: make that the second lease.
        assert!(reg.touch(&conn(first), 300).unwrap());
        let _ = reg.take_events();
        // At the limit (and the global limit): enforce mode would evict, not refuse, and
        // the eviction would make room under the global limit too.
        grant(&mut reg, "alice", 400);
        let c = reg.stats().counters;
        assert_eq!(
            (c.evicted, c.rejected_user_limit, c.rejected_global_limit),
            (1, 0, 0),
            "{policy:?}"
        );
        let would = if policy == Policy::EvictIdle {
            second
        } else {
            first
        };
        let events = reg.take_events();
        assert_eq!(events.len(), 1, "{policy:?}: {events:?}");
        assert_eq!(
            (events[0].kind, events[0].lease, events[0].dry_run),
            (EventKind::Evicted, Some(would), true)
        );
        // Named, not done: every lease is still there.
        assert_eq!(reg.active(), 3);
        assert!(reg.touch(&conn(would), 500).unwrap());
        // Above the limit enforce mode would refuse (an eviction swaps one for one only
        // at exactly the limit), and dry-run reports that.
        grant(&mut reg, "alice", 600);
        let c = reg.stats().counters;
        assert_eq!((c.evicted, c.rejected_user_limit), (1, 1), "{policy:?}");
    }
}

#[test]
fn near_limit_fires_once_while_evictions_keep_a_user_at_its_limit() {
    let mut reg = registry(OptionsPatch {
        on_limit: Some(Policy::EvictOldest),
        ..limit(2)
    });
    reg.set_collect_events(true);
    for t in 0..10 {
        grant(&mut reg, "alice", 100 + t);
    }
    assert_eq!(reg.stats().counters.near_limit_events, 1);
    let near = reg
        .take_events()
        .into_iter()
        .filter(|e| e.kind == EventKind::NearLimit)
        .count();
    assert_eq!(near, 1);
    // Below the threshold and back: a new edge.
    let (_, leases) = reg.user_leases("alice", 200);
    let ids: Vec<u128> = leases.iter().map(|l| l.uuid).collect();
    for uuid in ids {
        assert!(reg.release(&conn(uuid), 200).unwrap());
    }
    grant(&mut reg, "alice", 300);
    grant(&mut reg, "alice", 301);
    assert_eq!(reg.stats().counters.near_limit_events, 2);
    reg.check_invariants();
}

#[test]
fn renew_extends_a_lease_without_counting_as_activity() {
    let mut reg = registry(OptionsPatch {
        on_limit: Some(Policy::EvictIdle),
        ttl_ms: Some(1_000),
        ..limit(2)
    });
    let busy = grant(&mut reg, "alice", 100);
    let quiet = grant(&mut reg, "alice", 200);
    let handle = |reg: &socket_lease::registry::Registry<_>, uuid| {
        reg.resolve(&conn(uuid)).unwrap().unwrap()
    };
    // Both answer keep-alives; only `busy` has activity.
    let (hb, hq) = (handle(&reg, busy), handle(&reg, quiet));
    assert!(reg.touch_handle(hb, 500));
    assert!(reg.renew_handle(hq, 900));
    assert!(reg.renew_handle(hb, 900));
    // Renewed: alive past its first expiry (200 + 1000).
    assert!(reg.touch(&conn(quiet), 1_500).is_ok_and(|alive| alive));
    let mut reg2 = registry(OptionsPatch {
        on_limit: Some(Policy::EvictIdle),
        ttl_ms: Some(1_000),
        ..limit(2)
    });
    let busy = grant(&mut reg2, "bob", 100);
    let quiet = grant(&mut reg2, "bob", 200);
    let (hb, hq) = (handle(&reg2, busy), handle(&reg2, quiet));
    assert!(reg2.touch_handle(hb, 500));
    assert!(reg2.renew_handle(hq, 900));
    assert!(reg2.renew_handle(hb, 900));
    // evict-idle picks the lease idle longest by activity, not the last keep-alive.
    match reg2.acquire("bob", None, 1_100).unwrap() {
        Acquired::Granted { evicted, .. } => assert_eq!(evicted, vec![quiet]),
        other => panic!("expected an eviction, got {other:?}"),
    }
    reg2.check_invariants();
}

fn evicting(policy: Policy, n: u32) -> OptionsPatch {
    OptionsPatch {
        on_limit: Some(policy),
        ..limit(n)
    }
}

#[test]
fn an_acquire_that_may_not_evict_says_an_eviction_would_admit_and_changes_nothing() {
    for policy in [Policy::EvictOldest, Policy::EvictIdle] {
        let mut reg = registry(evicting(policy, 2));
        let first = grant(&mut reg, "alice", 0);
        grant(&mut reg, "alice", 100);
        let _ = reg.take_events();
        let before = (reg.snapshot(), reg.stats());
        let r = refused(reg.acquire_with("alice", None, 200, false).unwrap());
        assert_eq!(
            (r.reason, r.limit, r.active, r.retry_after_ms, r.evictable),
            (RefusalReason::UserLimit, 2, 2, 800, true),
            "{policy:?}"
        );
        // Not a rejection: nothing counted, no event, no lease evicted or touched.
        assert_eq!((reg.snapshot(), reg.stats()), before, "{policy:?}");
        assert!(reg.take_events().is_empty(), "{policy:?}");
        // Phase two commits the eviction the first phase announced.
        let Acquired::Granted { evicted, .. } = reg.acquire_with("alice", None, 300, true).unwrap()
        else {
            panic!("{policy:?}: phase two is granted");
        };
        assert_eq!(evicted, vec![first], "{policy:?}");
        reg.check_invariants();
    }
}

#[test]
fn where_no_eviction_would_help_an_acquire_that_may_not_evict_gets_the_usual_refusal() {
    // The reject policy.
    let mut reg = registry(limit(1));
    grant(&mut reg, "alice", 0);
    let r = refused(reg.acquire_with("alice", None, 10, false).unwrap());
    assert!(!r.evictable);
    assert_eq!(reg.stats().counters.rejected_user_limit, 1);
    // A user above a lowered limit: evicting one lease would not bring it under.
    let mut reg = registry(evicting(Policy::EvictOldest, 2));
    grant(&mut reg, "alice", 0);
    grant(&mut reg, "alice", 0);
    reg.set_user_limit("alice", Some(1)).unwrap();
    let r = refused(reg.acquire_with("alice", None, 10, false).unwrap());
    assert!(!r.evictable);
    assert_eq!(reg.stats().counters.rejected_user_limit, 1);
    // The global limit, full even after the eviction: refused as the acquire that may
    // evict would be, before evicting.
    let mut reg = registry(OptionsPatch {
        global_limit: Some(Some(2)),
        ..evicting(Policy::EvictOldest, 1)
    });
    grant(&mut reg, "alice", 0);
    grant(&mut reg, "bob", 0);
    let r = refused(reg.acquire_with("carol", None, 10, false).unwrap());
    assert_eq!((r.reason, r.evictable), (RefusalReason::GlobalLimit, false));
    // ...whereas at the global limit with room once alice's lease goes, it is evictable.
    let r = refused(reg.acquire_with("alice", None, 10, false).unwrap());
    assert_eq!((r.reason, r.evictable), (RefusalReason::UserLimit, true));
    assert_eq!(reg.stats().counters.rejected(), 1);
}

#[test]
fn in_dry_run_an_acquire_that_may_not_evict_is_granted_and_reports_the_eviction() {
    let mut reg = registry(OptionsPatch {
        mode: Some(Mode::DryRun),
        ..evicting(Policy::EvictOldest, 1)
    });
    let first = grant(&mut reg, "alice", 0);
    let _ = reg.take_events();
    let Acquired::Granted { evicted, .. } = reg.acquire_with("alice", None, 10, false).unwrap()
    else {
        panic!("dry-run grants");
    };
    assert!(evicted.is_empty(), "the lease stays");
    assert_eq!(reg.active(), 2);
    assert_eq!(reg.stats().counters.evicted, 1);
    let events = reg.take_events();
    assert!(events
        .iter()
        .any(|e| e.kind == EventKind::Evicted && e.dry_run && e.lease == Some(first)));
}

#[test]
fn an_acquire_names_the_expired_leases_it_reclaimed() {
    let mut reg = registry(OptionsPatch {
        global_limit: Some(Some(3)),
        ..limit(2)
    });
    let a1 = grant(&mut reg, "alice", 0);
    let a2 = grant(&mut reg, "alice", 100);
    let b = grant(&mut reg, "bob", 200);
    assert!(
        reg.last_reclaimed().is_empty(),
        "nothing in the common case"
    );
    // The acquiring user's expired leases go first (a1 at 1000; a2 lives to 1100).
    grant(&mut reg, "alice", 1_050);
    assert_eq!(reg.last_reclaimed(), &[a1]);
    // The next acquire, which reclaims nothing, says so (refused: alice holds 2 of 2).
    refused(reg.acquire("alice", None, 1_060).unwrap());
    assert!(reg.last_reclaimed().is_empty());
    // At the global limit room is made from any user's expired leases: a2 (1100) and
    // bob's (1200) by 1300, for carol.
    grant(&mut reg, "carol", 1_300);
    let mut got = reg.last_reclaimed().to_vec();
    got.sort_unstable();
    assert_eq!(got, vec![a2, b]);
    // An error changes nothing, the list of the last acquire included.
    assert!(reg.acquire("", None, 1_300).is_err());
    assert_eq!(reg.last_reclaimed().len(), 2);
    // sweep still lists every lease an acquire reclaimed since the last sweep.
    let mut swept = reg.sweep(1_300);
    swept.sort_unstable();
    let mut want = vec![a1, a2, b];
    want.sort_unstable();
    assert_eq!(swept, want);
    reg.check_invariants();

    // A refused acquire names what it reclaimed too: alice over a lowered limit.
    let mut reg = registry(limit(3));
    let old = grant(&mut reg, "alice", 0);
    grant(&mut reg, "alice", 500);
    grant(&mut reg, "alice", 500);
    reg.set_user_limit("alice", Some(1)).unwrap();
    let r = refused(reg.acquire("alice", None, 1_000).unwrap());
    assert_eq!((r.active, r.limit), (2, 1));
    assert_eq!(reg.last_reclaimed(), &[old]);
}
