// What an acquire removed, and an acquire that may not evict.
//
// - `reclaimed`: expired leases an acquire dropped lazily (the user's own, and anyone's
//   when it made room at the global limit), for the host to close those sockets at once.
//   `lastReclaimed()` on the handle path; `lastRemovedCount()` says cheaply whether there
//   is anything to read at all.
// - `evict: false`: phase one of a two-phase admission. Where the policy would evict, it
//   refuses with `evictable: true` (-4 on the handle path) and changes nothing: no
//   eviction, no touch, not counted as rejected, no `rejected` event.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { LeaseRegistry, LeaseError } from 'socket-lease';

const T0 = 1_700_000_000_000;
const TTL = 1_000;

const require = createRequire(import.meta.url);
// A separate instance of the raw generated bindings (see lane.test.mjs), to check that
// the lane answers what the checked binding answers.
const bindings = require.resolve('../../../pkg/nodejs/socket_lease.js');
const packaged = require.cache[bindings];
delete require.cache[bindings];
/** @type {typeof import('socket-lease')} */
const raw = require(bindings);
if (packaged) require.cache[bindings] = packaged;
/** @type {any} */ (raw).__registerErrorClass(LeaseError);

/** @param {any} r */
const lease = (r) => {
  assert.equal(r.ok, true, JSON.stringify(r));
  return r.lease;
};

test('an acquire reports the expired leases it reclaimed, of its user and of others at the global limit', () => {
  for (const Reg of [LeaseRegistry, raw.LeaseRegistry]) {
    const reg = new Reg({ perUserLimit: 2, globalLimit: 3, ttlMs: TTL });
    const a1 = lease(reg.acquire('alice', { now: T0 }));
    const a2 = lease(reg.acquire('alice', { now: T0 + 100 }));
    const b = lease(reg.acquire('bob', { now: T0 + 200 }));
    const quiet = /** @type {any} */ (reg.acquire('carol', { now: T0 + 300 }));
    // The common case: nothing to close.
    assert.equal(quiet.ok, false, 'global limit');
    assert.equal('reclaimed' in quiet, false, 'a refusal that reclaimed nothing has no list');
    assert.equal(reg.lastRemovedCount(), 0);
    // alice's first lease expired at T0 + 1000: her next acquire drops it and says so.
    const r = /** @type {any} */ (reg.acquire('alice', { now: T0 + 1_050 }));
    assert.deepEqual(r.reclaimed, [a1.id]);
    assert.deepEqual(r.evicted, []);
    assert.deepEqual(reg.lastReclaimed(), [a1.id]);
    assert.equal(reg.lastRemovedCount(), 1);
    // At the global limit an acquire makes room from anyone's expired leases.
    const c = /** @type {any} */ (reg.acquire('carol', { now: T0 + 1_300 }));
    assert.deepEqual([...c.reclaimed].sort(), [a2.id, b.id].sort());
    assert.equal(reg.lastRemovedCount(), 2);
    // The next acquire that reclaims nothing has an empty list, and a count of 0.
    assert.deepEqual(/** @type {any} */ (reg.acquire('dave', { now: T0 + 1_301 })).reclaimed, []);
    assert.equal(reg.lastRemovedCount(), 0);
    assert.deepEqual(reg.lastReclaimed(), []);
    // sweep still lists them (for hosts that close only what sweep reports).
    assert.deepEqual([...reg.sweep(T0 + 1_301)].sort(), [a1.id, a2.id, b.id].sort());
    reg.free();
  }
});

test('a refused acquire reports what it reclaimed too', () => {
  for (const Reg of [LeaseRegistry, raw.LeaseRegistry]) {
    const reg = new Reg({ perUserLimit: 3, ttlMs: TTL });
    const old = lease(reg.acquire('alice', { now: T0 }));
    reg.acquire('alice', { now: T0 + 500 });
    reg.acquire('alice', { now: T0 + 500 });
    reg.setUserLimit('alice', 1); // lowered: she stays over it after the reclaim
    const r = /** @type {any} */ (reg.acquire('alice', { now: T0 + 1_000 }));
    assert.deepEqual(r, { ok: false, reason: 'user-limit', limit: 1, active: 2, retryAfterMs: 500, reclaimed: [old.id] });
    assert.deepEqual(reg.lastRefusal(), { ok: false, reason: 'user-limit', limit: 1, active: 2, retryAfterMs: 500 });
    assert.equal(reg.lastRemovedCount(), 1);
    reg.free();
  }
});

test('the handle path: lastRemovedCount() is 0 in the common case; lastReclaimed() and lastEvicted() name the rest', () => {
  const reg = new LeaseRegistry({ perUserLimit: 1, onLimit: 'evict-oldest', ttlMs: TTL });
  const h1 = reg.acquireHandle('u', undefined, T0);
  assert.equal(reg.lastRemovedCount(), 0);
  const first = reg.handleLeaseId(h1);
  const h2 = reg.acquireHandle('u', undefined, T0 + 10); // evicts the first
  assert.equal(reg.lastRemovedCount(), 1);
  assert.deepEqual(reg.lastEvicted(), [first]);
  assert.deepEqual(reg.lastReclaimed(), []);
  const second = reg.handleLeaseId(h2);
  reg.acquireHandle('u', 'tab', T0 + 5_000); // the second expired: reclaimed, not evicted
  assert.equal(reg.lastRemovedCount(), 1);
  assert.deepEqual(reg.lastEvicted(), []);
  assert.deepEqual(reg.lastReclaimed(), [second]);
  reg.acquireHandle('v', undefined, T0 + 5_001);
  assert.equal(reg.lastRemovedCount(), 0, 'reset by the next acquire');
  assert.deepEqual(reg.lastReclaimed(), []);
  // An acquire that throws changes nothing, what the last one removed included.
  reg.acquireHandle('u', undefined, T0 + 9_000);
  assert.equal(reg.lastRemovedCount(), 1);
  assert.throws(() => reg.acquireHandle(''), LeaseError);
  assert.equal(reg.lastRemovedCount(), 1);
});

test('evict: false where the policy would evict: an evictable refusal that changes nothing', () => {
  for (const onLimit of /** @type {const} */ (['evict-oldest', 'evict-idle'])) {
    for (const Reg of [LeaseRegistry, raw.LeaseRegistry]) {
      /** @type {any[]} */
      const events = [];
      const reg = new Reg({ perUserLimit: 2, onLimit, ttlMs: TTL, onEvent: (e) => events.push(e) });
      const first = lease(reg.acquire('u', { now: T0 }));
      reg.acquire('u', { now: T0 + 100 });
      events.length = 0;
      const before = JSON.stringify([reg.stats(), reg.userStats('u', T0 + 200)]);
      const r = reg.acquire('u', { now: T0 + 200, evict: false });
      assert.deepEqual(r, { ok: false, reason: 'user-limit', limit: 2, active: 2, retryAfterMs: 800, evictable: true }, `${onLimit} ${Reg.name}`);
      assert.deepEqual(reg.lastRefusal(), r);
      // Nothing evicted, touched, counted (rejected stays 0) or reported.
      assert.equal(JSON.stringify([reg.stats(), reg.userStats('u', T0 + 200)]), before);
      assert.equal(reg.stats().rejected, 0);
      assert.deepEqual(events, []);
      // The same through the handle path: its own code, -4.
      assert.equal(reg.acquireHandle('u', undefined, T0 + 200, false), -4);
      assert.deepEqual(reg.lastRefusal(), r);
      assert.equal(reg.lastRemovedCount(), 0);
      assert.equal(JSON.stringify([reg.stats(), reg.userStats('u', T0 + 200)]), before);
      // Phase two commits the eviction.
      const ok = /** @type {any} */ (reg.acquire('u', { now: T0 + 300, evict: true }));
      assert.deepEqual(ok.evicted, [first.id]);
      assert.deepEqual(
        events.map((e) => e.type),
        ['evicted', 'limit-reached'],
      );
      reg.free();
    }
  }
});

test('evict: false where no eviction helps: the usual refusal, counted, without evictable', () => {
  for (const Reg of [LeaseRegistry, raw.LeaseRegistry]) {
    /** @type {any[]} */
    const events = [];
    const reg = new Reg({ perUserLimit: 1, ttlMs: TTL, onEvent: (e) => events.push(e) });
    reg.acquire('u', { now: T0 });
    const r = reg.acquire('u', { now: T0 + 1, evict: false });
    assert.deepEqual(r, { ok: false, reason: 'user-limit', limit: 1, active: 1, retryAfterMs: 999 }, 'reject policy');
    assert.equal(reg.acquireHandle('u', undefined, T0 + 1, false), -1);
    assert.equal(reg.stats().rejected, 2);
    assert.deepEqual(events.filter((e) => e.type === 'rejected').length, 2);
    reg.free();

    // The global limit, full even once the user's oldest lease would go.
    const global = new Reg({ perUserLimit: 1, globalLimit: 2, onLimit: 'evict-oldest', ttlMs: TTL });
    global.acquire('a', { now: T0 });
    global.acquire('b', { now: T0 });
    assert.deepEqual(global.acquire('c', { now: T0 + 1, evict: false }), { ok: false, reason: 'global-limit', limit: 2, active: 2, retryAfterMs: 999 });
    assert.equal(global.acquireHandle('c', undefined, T0 + 1, false), -2);
    // ...while for a's second lease, evicting a's first would make room: evictable.
    assert.equal(global.acquireHandle('a', undefined, T0 + 1, false), -4);
    assert.equal(global.stats().rejected, 2);
    global.free();
  }
});

test('evict: false in dry-run: granted, and the eviction it would take reported, as without it', () => {
  /** @type {any[]} */
  const events = [];
  const reg = new LeaseRegistry({ perUserLimit: 1, onLimit: 'evict-oldest', mode: 'dry-run', onEvent: (e) => events.push(e) });
  const first = lease(reg.acquire('u', { now: T0 }));
  const r = /** @type {any} */ (reg.acquire('u', { now: T0 + 1, evict: false }));
  assert.equal(r.ok, true);
  assert.deepEqual(r.evicted, [], 'the lease stays');
  assert.ok(events.some((e) => e.type === 'evicted' && e.dryRun && e.leaseId === first.id));
  assert.equal(reg.stats().evicted, 1);
  assert.ok(reg.acquireHandle('u', undefined, T0 + 2, false) >= 0);
});

test('evict must be a boolean (null or undefined: the default)', () => {
  const reg = new LeaseRegistry({ perUserLimit: 5 });
  for (const bad of [0, 1, 'false', {}, []]) {
    assert.throws(
      () => reg.acquire('u', { evict: /** @type {any} */ (bad) }),
      (e) => e instanceof LeaseError && e.code === 'INVALID_OPTION' && /evict must be a boolean/.test(e.message),
    );
    assert.throws(
      () => reg.acquireHandle('u', undefined, T0, /** @type {any} */ (bad)),
      (e) => e instanceof LeaseError && e.code === 'INVALID_OPTION' && /evict must be a boolean/.test(e.message),
    );
  }
  assert.equal(reg.stats().active, 0);
  for (const ok of [undefined, null, true, false]) {
    assert.equal(/** @type {any} */ (reg.acquire('u', { now: T0, evict: /** @type {any} */ (ok) })).ok, true);
    assert.ok(reg.acquireHandle('v', undefined, T0, /** @type {any} */ (ok)) >= 0);
  }
  assert.throws(() => reg.acquire('u', /** @type {any} */ ({ evicts: false })), /known: connectionKey, now, evict/);
});
