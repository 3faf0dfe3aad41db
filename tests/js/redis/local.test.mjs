// js/redis/local.cjs, the Redis store's quota while Redis is away, on its own: a core
// LeaseRegistry that takes in the leases a node already holds (ids of the store's
// making, granted by Redis) and answers with those ids. No Redis needed: the store's side
// of an outage is in rules.test.mjs and outage.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { LeaseError, LeaseRegistry, newId, parseId } from 'socket-lease';

const require = createRequire(import.meta.url);
const { LocalQuota } = require('../../../js/redis/local.cjs');

const T0 = 1_700_000_000_000;
const quota = (/** @type {Partial<import('../../../js/redis/options.cjs').QuotaOptions>} */ o = {}) => ({
  perUserLimit: 2,
  userLimits: {},
  globalLimit: null,
  ttlMs: 1000,
  policy: /** @type {const} */ ('evict-oldest'),
  warnRatio: 0.5,
  kinds: [],
  ...o,
});
/** A lease the store holds, granted by Redis (its id minted by the store, not the registry). */
const held = (/** @type {string} */ userId, /** @type {number} */ renewedAt, connectionKey = '') => ({
  userId,
  acquiredAt: renewedAt,
  renewedAt,
  local: false,
  connectionKey,
});

/** @param {ReturnType<typeof quota>} q */
function make(q) {
  /** @type {import('socket-lease').LeaseEvent[]} */
  const events = [];
  const local = new LocalQuota(q, (/** @type {import('socket-lease').LeaseEvent} */ e) => events.push(e));
  return { local, events };
}

test('leases held before count toward the limit, keep their keys and ids, and expire a TTL after their last renewal', (t) => {
  const { local, events } = make(quota());
  t.after(() => local.free());
  const a = newId('conn');
  const b = newId('conn');
  assert.deepEqual(
    local.adoptAll([
      [a, held('u', T0, 'tab')],
      [b, held('v', T0 + 100)],
    ]),
    [],
  );
  assert.deepEqual(events, [], 'taking leases in is not news: no near-limit, no limit-reached');

  // The key a Redis-granted lease has is reused, with the store's id.
  const again = local.acquire('u', 'tab', T0 + 200);
  assert.ok(again.ok && again.reused && again.id === a, JSON.stringify(again));
  assert.equal(again.ok && again.expiresAt, T0 + 200 + 1000, 'reuse renews it');

  // u holds 1 of 2: one more, then the core's refusal, policy "reject" whatever the store's.
  // A new lease: the registry's id, a TypeID like every other.
  const second = local.acquire('u', '', T0 + 300);
  assert.ok(second.ok && !second.reused);
  assert.equal(second.ok && parseId(second.id).kind, 'conn');
  // u holds 2 of 2: the core's refusal (policy "reject", whatever the store's).
  const third = local.acquire('u', '', T0 + 300);
  assert.deepEqual(
    !third.ok && [third.reason, third.limit, third.active, third.retryAfterMs],
    ['user-limit', 2, 2, 900],
    "retryAfterMs: until the user's earliest lease expires (renewed at T0 + 200, TTL 1000)",
  );
  // The threshold (1 of 2) was reached by the lease taken in: no near-limit for it then,
  // nor now.
  assert.deepEqual(
    events.map((e) => [e.type, e.userId, e.active]),
    [
      ['limit-reached', 'u', 2],
      ['rejected', 'u', 2],
    ],
  );

  // b was last renewed at T0 + 100: expired at T0 + 1100, reported once, by the store's id.
  assert.equal(local.alive(b, T0 + 1099), true);
  assert.equal(local.touch(b, T0 + 1100), false, 'too late: the core does not extend an expired lease');
  assert.equal(local.alive(b, T0 + 1100), false);
  assert.deepEqual(local.sweep(T0 + 1100), [b]);
  assert.deepEqual(local.sweep(T0 + 1100), []);
  const expired = events.find((e) => e.type === 'expired');
  assert.equal(expired?.leaseId, b, "events name leases by the store's ids");
});

test("a lease held above the limit is taken in all the same (the limit applies to new ones), and its user's override comes back", (t) => {
  const { local, events } = make(quota({ perUserLimit: 5, userLimits: { over: 1 } }));
  t.after(() => local.free());
  const ids = [newId('conn'), newId('conn'), newId('conn')];
  local.adoptAll(ids.map((id, i) => [id, held('over', T0 + i)]));
  assert.deepEqual(events, []);
  for (const id of ids) assert.equal(local.alive(id, T0 + 10), true, 'each one is counted and live');
  const refused = local.acquire('over', '', T0 + 10);
  assert.deepEqual(!refused.ok && [refused.reason, refused.limit, refused.active], ['user-limit', 1, 3], 'the override of 1 is in force again');
  local.drop(ids[0], T0 + 20);
  local.drop(ids[1], T0 + 20);
  assert.equal(local.acquire('over', '', T0 + 20).ok, false, 'still at its limit of 1');
  local.drop(ids[2], T0 + 20);
  assert.equal(local.acquire('over', '', T0 + 20).ok, true);
});

test('two held leases with one connection key (the key moved, this node was not told yet) both count', (t) => {
  const { local } = make(quota({ perUserLimit: 3 }));
  t.after(() => local.free());
  const older = newId('conn');
  const newer = newId('conn');
  local.adoptAll([
    [older, held('k', T0, 'tab')],
    [newer, held('k', T0 + 1, 'tab')],
  ]);
  assert.equal(local.alive(older, T0 + 2) && local.alive(newer, T0 + 2), true);
  assert.equal(local.acquire('k', '', T0 + 2).ok, true);
  assert.equal(local.acquire('k', '', T0 + 2).ok, false, 'three held: at the limit');
});

test('an expired lease of the user is reclaimed when a lease is taken in or granted, and reported then, not again by the sweep', (t) => {
  const { local, events } = make(quota({ perUserLimit: 1 }));
  t.after(() => local.free());
  const stale = newId('conn');
  const fresh = newId('conn');
  assert.deepEqual(
    local.adoptAll([
      [fresh, held('r', T0 + 5000)],
      [stale, held('r', T0)],
    ]),
    [stale],
    'expired by the time the newer one was renewed',
  );
  assert.deepEqual(
    events.map((e) => [e.type, e.leaseId]),
    [['expired', stale]],
  );
  local.drop(fresh, T0 + 5001);
  const later = newId('conn');
  local.adopt(later, held('r', T0 + 5002));
  const r = local.acquire('r', '', T0 + 7000);
  assert.ok(r.ok);
  assert.deepEqual(r.reclaimed, [later]);
  assert.deepEqual(local.sweep(T0 + 7000), [], 'already reported');
});

test('LeaseRegistry.coreLimits() are the bounds the core enforces', () => {
  const { maxUserIdBytes, maxLimit, pendingExpiredCap } = LeaseRegistry.coreLimits();
  const refuses = (/** @type {() => unknown} */ f, /** @type {string} */ code) =>
    assert.throws(f, (/** @type {unknown} */ e) => e instanceof LeaseError && e.code === code);
  new LeaseRegistry({ perUserLimit: maxLimit }).free();
  refuses(() => new LeaseRegistry({ perUserLimit: maxLimit + 1 }), 'INVALID_OPTION');
  const reg = new LeaseRegistry();
  try {
    assert.equal(reg.acquire('é'.repeat(maxUserIdBytes / 2), { now: T0 }).ok, true);
    refuses(() => reg.acquire(`${'é'.repeat(maxUserIdBytes / 2)}x`, { now: T0 }), 'INVALID_USER_ID');
  } finally {
    reg.free();
  }
  // Lazily reclaimed ids wait for sweep() up to pendingExpiredCap: one more is not listed.
  const lazy = new LeaseRegistry({ perUserLimit: 1, ttlMs: 1 });
  try {
    for (let i = 0; i <= pendingExpiredCap; i++) lazy.acquireHandle(`u${i}`, undefined, T0);
    for (let i = 0; i <= pendingExpiredCap; i++) lazy.acquireHandle(`u${i}`, undefined, T0 + 10);
    assert.equal(lazy.sweep(T0 + 10).length, pendingExpiredCap);
  } finally {
    lazy.free();
  }
});

test("free() returns the local quota's registry", () => {
  const { local } = make(quota());
  assert.equal(local.acquire('x', '', T0).ok, true);
  local.free();
  assert.throws(() => local.acquire('x', '', T0));
});
