// The quota rules once per engine: the Redis store decides through its Lua scripts while
// Redis is up, and through a core LeaseRegistry (js/redis/local.cjs) while it is away.
// Both must answer as the in-memory registry does: the same refusals of bad ids, the same
// near-limit / limit-reached / rejected events at the same counts, and, while Redis is
// away, the core's expiry, reclaim and Retry-After. Against a real redis-server, and
// against a store whose Redis never answers (nothing listens on 127.0.0.1:1).
import { test as nodeTest } from 'node:test';
import assert from 'node:assert/strict';
import { LeaseError, LeaseRegistry } from 'socket-lease';
import { createRedisLeaseStore } from 'socket-lease/redis';
import { liveLeases, openStore, startRedis, waitFor } from './harness.mjs';

/** @param {string} name @param {(t: import('node:test').TestContext) => unknown} fn */
const test = (name, fn) => nodeTest(name, { timeout: 60_000 }, fn);

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** @typedef {import('socket-lease').LeaseEvent} LeaseEvent */

/**
 * A store whose Redis never answers: every call takes the fail mode from the start.
 * @param {import('node:test').TestContext} t
 * @param {import('socket-lease/redis').RedisLeaseStoreOptions} options
 */
function awayStore(t, options) {
  const s = createRedisLeaseStore({ url: 'redis://127.0.0.1:1', failMode: 'open', logLevel: 'silent', commandTimeoutMs: 100, ...options });
  t.after(() => s.close());
  assert.equal(s.available, false);
  return s;
}

/** The error a call throws or rejects with, as `{ code, message }`, or null. */
async function failure(/** @type {() => unknown} */ f) {
  try {
    await f();
    return null;
  } catch (err) {
    assert.ok(err instanceof LeaseError, String(err));
    return { code: err.code, message: err.message };
  }
}

/** Per limit, the users that have it as an override (one for plain acquires, one for keyed ones). */
const LIMITS = [1, 2, 3, 4, 5, 7, 10];
const RATIOS = [0.01, 0.3, 0.5, 0.6, 0.8, 0.99, 1];
const userLimits = Object.fromEntries(
  LIMITS.flatMap((n) => [
    [`limit-${n}`, n],
    [`limit-${n}-keyed`, n],
  ]),
);

/**
 * The events of `limit + 1` acquires of one user, in order: [type, active, limit].
 * @param {(user: string) => unknown} acquire
 * @param {LeaseEvent[]} events where the registry or store under test puts its events
 * @param {string} user
 * @param {number} limit
 */
async function eventsOf(acquire, events, user, limit) {
  events.length = 0;
  for (let i = 0; i <= limit; i++) await acquire(user);
  return events.map((e) => [e.type, e.active, e.limit]);
}

test('near-limit, limit-reached and rejected fire at the counts the core fires them, through Redis and while Redis is away', async (t) => {
  const redis = await startRedis(t);
  for (const warnRatio of RATIOS) {
    /** @type {LeaseEvent[]} */ const coreEvents = [];
    /** @type {LeaseEvent[]} */ const upEvents = [];
    /** @type {LeaseEvent[]} */ const awayEvents = [];
    const core = new LeaseRegistry({ userLimits, warnRatio, onEvent: (e) => coreEvents.push(e) });
    t.after(() => core.free());
    const options = { userLimits, warnRatio, prefix: `ratio-${warnRatio}:` };
    const up = await openStore(t, redis, { ...options, onEvent: (e) => upEvents.push(e) });
    const away = awayStore(t, { ...options, onEvent: (e) => awayEvents.push(e) });
    for (const limit of LIMITS) {
      const user = `limit-${limit}`;
      const expected = await eventsOf((u) => core.acquire(u), coreEvents, user, limit);
      assert.ok(
        expected.some(([type]) => type === 'near-limit'),
        `ratio ${warnRatio}, limit ${limit}: the core warned`,
      );
      // Plain acquires go through the batch script (or acquire_alone.lua), keyed ones
      // through the acquire script: both sides of near.lua.
      assert.deepEqual(await eventsOf((u) => up.acquire(u), upEvents, user, limit), expected, `Redis, ratio ${warnRatio}, limit ${limit}`);
      let key = 0;
      assert.deepEqual(
        await eventsOf((u) => up.acquire(u, { connectionKey: `k${key++}` }), upEvents, `${user}-keyed`, limit),
        expected,
        `Redis, keyed, ratio ${warnRatio}, limit ${limit}`,
      );
      assert.deepEqual(await eventsOf((u) => away.acquire(u), awayEvents, user, limit), expected, `Redis away, ratio ${warnRatio}, limit ${limit}`);
    }
    const upStats = await up.stats();
    const awayStats = await away.stats();
    assert.equal(upStats.nearLimitEvents, 2 * LIMITS.length);
    assert.equal(awayStats.nearLimitEvents, LIMITS.length, 'counted while Redis is away too');
    assert.equal(awayStats.rejected, LIMITS.length);
    assert.ok((await away.metrics()).includes(`\nsocket_lease_near_limit_total ${LIMITS.length}\n`));
  }
});

test('ids the core refuses are refused identically through Redis, while Redis is away, and by the core (code and message)', async (t) => {
  const redis = await startRedis(t);
  const up = await openStore(t, redis);
  const away = awayStore(t, {});
  const core = new LeaseRegistry();
  t.after(() => core.free());
  const { maxUserIdBytes } = LeaseRegistry.coreLimits();
  const bad = [
    '',
    '\ud800',
    `x\udc00`,
    `${'x'.repeat(200)}\ud800`,
    'x'.repeat(maxUserIdBytes + 1),
    'é'.repeat(maxUserIdBytes / 2 + 1),
    '😀'.repeat(maxUserIdBytes / 4 + 1),
    42,
    null,
  ];
  for (const value of bad) {
    const what = typeof value === 'string' ? `${value.length} units` : String(value);
    const user = await failure(() => core.acquire(/** @type {any} */ (value)));
    assert.equal(user?.code, 'INVALID_USER_ID', what);
    assert.deepEqual(await failure(() => up.acquire(/** @type {any} */ (value))), user, `Redis: ${what}`);
    assert.deepEqual(await failure(() => away.acquire(/** @type {any} */ (value))), user, `away: ${what}`);
    // (A null key is no key to the core; the store has always refused it: not compared.)
    if (value === null) continue;
    const key = await failure(() => core.acquire('u', { connectionKey: /** @type {any} */ (value) }));
    assert.equal(key?.code, 'INVALID_OPTION', what);
    assert.deepEqual(await failure(() => up.acquire('u', { connectionKey: /** @type {any} */ (value) })), key, `Redis, key: ${what}`);
    assert.deepEqual(await failure(() => away.acquire('u', { connectionKey: /** @type {any} */ (value) })), key, `away, key: ${what}`);
  }
  // The longest ids are accepted by all three.
  for (const longest of ['x'.repeat(maxUserIdBytes), 'é'.repeat(maxUserIdBytes / 2), '😀'.repeat(maxUserIdBytes / 4)]) {
    assert.equal(core.acquire(longest).ok, true);
    assert.equal((await up.acquire(longest)).ok, true);
    assert.equal((await away.acquire(longest, { connectionKey: longest })).ok, true);
  }
  assert.equal((await away.stats()).heldLocally, 3, 'nothing refused was taken');
});

test("while Redis is away, leases expire, are reclaimed and are refused by the core's rules", async (t) => {
  const ttlMs = 300;
  const away = awayStore(t, { perUserLimit: 1, ttlMs });
  /** @type {LeaseEvent[]} */
  const events = [];
  const s = awayStore(t, { perUserLimit: 1, ttlMs: 60_000, onEvent: (e) => events.push(e) });

  // Retry-After: until the user's lease expires, as the core says (not a fixed guess).
  const first = await s.acquire('ret');
  const refused = await s.acquire('ret');
  assert.ok(first.ok && !refused.ok);
  assert.ok(!refused.ok && refused.retryAfterMs > 59_000 && refused.retryAfterMs <= 60_000, JSON.stringify(refused));
  assert.deepEqual(
    events.map((e) => e.type),
    ['near-limit', 'limit-reached', 'rejected'],
  );

  // A lease silent for the TTL has expired: its touch says so (close the socket) ...
  const silent = await away.acquire('exp');
  assert.ok(silent.ok);
  if (!silent.ok) return;
  await sleep(ttlMs + 50);
  assert.equal(await away.touch(silent.lease.id), false, 'expired: not renewed');
  // ... the next acquire of its user reclaims it (and is granted, at a limit of 1) ...
  const next = await away.acquire('exp');
  assert.ok(next.ok);
  assert.deepEqual(next.ok && next.reclaimed, [silent.lease.id]);
  // ... and the sweep lists it, as the core's sweep lists what an acquire reclaimed.
  assert.deepEqual(await away.sweep(), [silent.lease.id]);
  assert.deepEqual(await away.sweep(), [], 'once');
  assert.equal(next.ok && (await away.release(next.lease.threadId)), true);

  // One that heartbeats stays; one that does not is swept.
  const kept = await away.acquire('hb-a');
  const dropped = await away.acquire('hb-b');
  assert.ok(kept.ok && dropped.ok);
  if (!kept.ok || !dropped.ok) return;
  for (let i = 0; i < 4; i++) {
    await sleep(ttlMs / 3);
    assert.equal(await away.touch(kept.lease.runId), true);
  }
  assert.deepEqual(await away.sweep(), [dropped.lease.id]);
  const stats = await away.stats();
  assert.equal(stats.expired, 2);
  assert.equal(stats.held, 1, 'kept');
  assert.equal(stats.released, 1);
});

test('an outage that starts while leases are held: they count, keep their keys, and near-limit is not said twice', async (t) => {
  const redis = await startRedis(t);
  /** @type {LeaseEvent[]} */
  const events = [];
  const a = await openStore(t, redis, {
    perUserLimit: 5,
    warnRatio: 0.6,
    failMode: 'open',
    commandTimeoutMs: 200,
    probeMs: 50,
    onEvent: (e) => events.push(e),
  });
  // Through Redis: "past" crosses its threshold (3 of 5), "below" stays under it (2).
  for (let i = 0; i < 3; i++) assert.ok((await a.acquire('past')).ok);
  const keyed = await a.acquire('below', { connectionKey: 'tab' });
  assert.ok((await a.acquire('below')).ok && keyed.ok);
  if (!keyed.ok) return;
  assert.deepEqual(
    events.map((e) => [e.type, e.userId, e.active]),
    [['near-limit', 'past', 3]],
  );

  await redis.stop();
  await waitFor(async () => (await a.stats()).redis === 'down', 'the store notices the outage');
  // The lease Redis granted for the key is the key's lease here too.
  const again = await a.acquire('below', { connectionKey: 'tab' });
  assert.ok(again.ok && again.reused && again.lease.id === keyed.lease.id, JSON.stringify(again));
  events.length = 0;
  assert.ok((await a.acquire('past')).ok, '4 of 5');
  assert.ok((await a.acquire('below')).ok, '3 of 5: crosses the threshold now');
  assert.ok((await a.acquire('past')).ok, '5 of 5');
  assert.equal((await a.acquire('past')).ok, false, 'the leases held from before count');
  assert.deepEqual(
    events.map((e) => [e.type, e.userId, e.active]),
    [
      ['near-limit', 'below', 3],
      ['limit-reached', 'past', 5],
      ['rejected', 'past', 5],
    ],
  );

  await redis.start();
  await waitFor(() => a.available, 'Redis used again');
  assert.equal(await liveLeases(redis.admin(), 'past'), 5, 'written back');
  assert.equal(await liveLeases(redis.admin(), 'below'), 3);
  assert.equal((await a.stats()).heldLocally, 0);
});
