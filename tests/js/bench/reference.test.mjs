// The benchmark's pure-JS reference (bench/reference.mjs) must really enforce what the
// package enforces, or the comparison in bench/core.mjs is not honest. These tests check
// its behaviour directly and then against the package, operation by operation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LeaseRegistry, parseId, deriveId } from 'socket-lease';
import { ReferenceRegistry, SuffixGenerator } from '../../../bench/reference.mjs';

const T0 = 1_700_000_000_000;

/** @param {ReturnType<ReferenceRegistry['acquire']>} r */
function leaseOf(r) {
  assert.equal(r.ok, true, `expected a grant, got ${JSON.stringify(r)}`);
  return /** @type {{ ok: true, lease: import('../../../bench/reference.mjs').Lease }} */ (r).lease;
}

test('ids are valid TypeIDs over UUIDv7, strictly increasing, also past counter overflow and a clock step back', () => {
  const gen = new SuffixGenerator();
  let prev = '';
  const times = [T0, T0, T0 + 1, T0 - 5_000, T0 + 2];
  for (const now of times) {
    for (let i = 0; i < 5000; i++) {
      const s = gen.next(now);
      assert.ok(s > prev, `${s} after ${prev}`);
      prev = s;
    }
  }
  const parsed = parseId('conn_' + gen.next(T0 + 10_000));
  assert.equal(parsed.kind, 'conn');
  assert.equal(parsed.version, 7);
  assert.match(parsed.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  // 5000 ids per millisecond overflow the 12-bit counter, which carries into the
  // timestamp; the clock step back does not move it backwards either.
  assert.ok(parsed.timestampMs >= T0 + 10_000);
});

test('enforces the per-user limit and answers when to retry', () => {
  const reg = new ReferenceRegistry({ perUserLimit: 3, ttlMs: 10_000, userLimits: { vip: 5 } });
  const leases = [0, 1, 2].map((i) => leaseOf(reg.acquire('alice', { now: T0 + i })));
  assert.deepEqual(reg.acquire('alice', { now: T0 + 100 }), {
    ok: false,
    reason: 'user-limit',
    limit: 3,
    active: 3,
    retryAfterMs: 9_900,
  });
  assert.equal(reg.acquire('bob', { now: T0 + 100 }).ok, true, 'other users are unaffected');
  for (let i = 0; i < 5; i++) leaseOf(reg.acquire('vip', { now: T0 }));
  assert.equal(reg.acquire('vip', { now: T0 }).ok, false);
  assert.equal(reg.release(leases[1]), true);
  assert.equal(reg.acquire('alice', { now: T0 + 200 }).ok, true, 'a release frees a slot');
  assert.equal(reg.stats().rejected, 2);
});

test('releases by any derived id, once; unknown releases are counted; malformed ids throw', () => {
  const reg = new ReferenceRegistry();
  const a = leaseOf(reg.acquire('alice', { now: T0 }));
  const b = leaseOf(reg.acquire('alice', { now: T0 }));
  assert.equal(reg.getLease('thread_' + a.suffix), a);
  assert.equal(reg.release('run_' + a.suffix), true);
  assert.equal(reg.release('thread_' + a.suffix), false);
  assert.equal(reg.release(a.id), false);
  assert.equal(reg.release(a), false);
  assert.equal(reg.release('user_' + b.suffix), false, 'another kind names no lease');
  assert.equal(reg.release(b), true);
  assert.deepEqual({ ...reg.stats() }, { active: 0, users: 0, acquired: 2, released: 2, expired: 0, rejected: 0, unknownReleases: 4 });
  for (const bad of ['conn_' + a.suffix.toUpperCase(), 'conn_8' + a.suffix.slice(1), 'conn_', '_' + a.suffix, 'Conn_' + a.suffix]) {
    assert.throws(() => reg.release(bad), { code: 'INVALID_ID' }, bad);
  }
});

test('leases expire at acquire + TTL: sweep reports them, and an acquire at the limit never waits for it', () => {
  const reg = new ReferenceRegistry({ perUserLimit: 2, ttlMs: 1_000 });
  const a = leaseOf(reg.acquire('alice', { now: T0 }));
  const b = leaseOf(reg.acquire('alice', { now: T0 + 500 }));
  assert.deepEqual(reg.sweep(T0 + 999), []);
  assert.equal(reg.touch(b, T0 + 900), true);
  assert.deepEqual(reg.sweep(T0 + 1_000), [a.id]);
  assert.equal(reg.release(a), false, 'an expired lease is gone');
  assert.equal(reg.touch(b, T0 + 1_900), false, 'expired at touch + TTL');
  // No sweep: the acquire reclaims the expired lease before counting.
  leaseOf(reg.acquire('alice', { now: T0 + 1_900 }));
  leaseOf(reg.acquire('alice', { now: T0 + 1_900 }));
  assert.equal(reg.acquire('alice', { now: T0 + 1_900 }).ok, false);
  assert.deepEqual(reg.sweep(T0 + 1_900), [b.id], 'the lazily reclaimed lease is reported once');
  assert.equal(reg.stats().expired, 2);
});

test('one lease per connection key; global limit and user-table bound', () => {
  const reg = new ReferenceRegistry({ perUserLimit: 1, globalLimit: 3, maxUsers: 2, ttlMs: 1_000 });
  const first = leaseOf(reg.acquire('alice', { connectionKey: 'k', now: T0 }));
  for (let i = 1; i < 10; i++) assert.equal(leaseOf(reg.acquire('alice', { connectionKey: 'k', now: T0 + i })), first);
  assert.equal(first.expiresAt, T0 + 9 + 1_000, 'reuse touches');
  leaseOf(reg.acquire('bob', { now: T0 }));
  assert.deepEqual(reg.acquire('carol', { now: T0 }), { ok: false, reason: 'user-table-full', limit: 2, active: 2, retryAfterMs: 1_000 });
  const big = new ReferenceRegistry({ perUserLimit: 10, globalLimit: 2, ttlMs: 1_000 });
  leaseOf(big.acquire('a', { now: T0 }));
  leaseOf(big.acquire('b', { now: T0 + 10 }));
  assert.deepEqual(big.acquire('c', { now: T0 + 10 }), { ok: false, reason: 'global-limit', limit: 2, active: 2, retryAfterMs: 990 });
  assert.equal(big.acquire('c', { now: T0 + 1_000 }).ok, true, 'the global limit reclaims expired leases first');
});

test('churn does not grow the expiry heap', () => {
  const reg = new ReferenceRegistry({ ttlMs: 60_000 });
  for (let i = 0; i < 200_000; i++) {
    const lease = leaseOf(reg.acquire(`u${i % 1000}`, { now: T0 + (i >> 6) }));
    if (i % 3 === 0) reg.touch(lease, T0 + (i >> 6) + 1);
    reg.release(lease);
  }
  assert.equal(reg.stats().active, 0);
  assert.ok(reg.expiryEntries <= 1024 + 2, `heap holds ${reg.expiryEntries} entries`);
});

test('same decisions as the package, operation by operation (random sequences)', () => {
  let seed = 0x2545f491;
  const rand = (/** @type {number} */ n) => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  for (let round = 0; round < 20; round++) {
    const options = { perUserLimit: 1 + rand(4), ttlMs: 50 + rand(200), maxUsers: 3 + rand(8), globalLimit: 5 + rand(20) };
    const pkg = new LeaseRegistry(options);
    const ref = new ReferenceRegistry(options);
    /** @type {{ lease: import('../../../bench/reference.mjs').Lease, id: string }[]} */
    const held = [];
    let now = T0;
    for (let step = 0; step < 2_000; step++) {
      const op = rand(10);
      const where = `round ${round} step ${step} op ${op}`;
      if (op < 5) {
        const user = `u${rand(12)}`;
        const key = rand(4) === 0 ? `k${rand(3)}` : undefined;
        const p = pkg.acquire(user, { connectionKey: key, now });
        const r = ref.acquire(user, { connectionKey: key, now });
        assert.equal(r.ok, p.ok, where);
        if (p.ok && r.ok) {
          assert.equal(r.reused, p.reused, where);
          if (!p.reused) held.push({ lease: r.lease, id: p.lease.id });
        } else {
          // The decision, not the package's report of the expired leases it reclaimed on
          // the way (`reclaimed`, which the reference does not keep).
          const { reclaimed: _reclaimed, ...decision } = /** @type {any} */ (p);
          assert.deepEqual(r, decision, where);
        }
      } else if (op < 8 && held.length > 0) {
        const { lease, id } = held.splice(rand(held.length), 1)[0];
        const kind = ['conn', 'run', 'thread'][rand(3)];
        assert.equal(ref.release(`${kind}_${lease.suffix}`, now), pkg.release(deriveId(id, kind), now), where);
      } else if (op === 8 && held.length > 0) {
        const { lease, id } = held[rand(held.length)];
        assert.equal(ref.touch(lease, now), pkg.touch(id, now), where);
      } else {
        now += rand(60);
        if (rand(3) === 0) assert.equal(ref.sweep(now).length, pkg.sweep(now).length, where);
      }
      const ps = pkg.stats();
      const rs = ref.stats();
      for (const k of /** @type {const} */ (['active', 'users', 'acquired', 'released', 'expired', 'rejected', 'unknownReleases'])) {
        assert.equal(rs[k], ps[k], `${where}: ${k}`);
      }
    }
    pkg.free();
  }
});
