// socket-lease/redis when Redis goes away and comes back, and at the edges of its contract:
// what happens while the write-back after an outage is on its way, a write-back that
// fails half-way after a restart, an outage longer than the TTL, a host clock far from
// Redis's, a Redis that refuses this node from the start, bad arguments, and the order of
// calls issued together. Each against a real redis-server (stopped, paused, restarted).
import { test as nodeTest } from 'node:test';
import assert from 'node:assert/strict';
import { LeaseRegistry } from 'socket-lease';
import { liveLeases, memoryLogger, openStore, startRedis, waitFor } from './harness.mjs';

/** @param {string} name @param {(t: import('node:test').TestContext) => unknown} fn */
const test = (name, fn) => nodeTest(name, { timeout: 60_000 }, fn);

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
/** One turn of the event loop (I/O included), so a loop of local calls does not starve it. */
const turn = () => new Promise((resolve) => setImmediate(resolve));

/**
 * Live leases in Redis of the users `user-0` … `user-(n-1)`, summed.
 * @param {import('ioredis').Redis} admin @param {number} users
 */
async function liveOf(admin, users) {
  let total = 0;
  for (let i = 0; i < users; i++) total += await liveLeases(admin, `user-${i}`);
  return total;
}

test('acquires and releases made while the write-back after an outage is on its way reach Redis before it is used again', async (t) => {
  const redis = await startRedis(t);
  const admin = redis.admin();
  const USERS = 400;
  // A paused Redis keeps its connections, so the store learns that it is back from its
  // probe; a slow one (2 s) runs one write-back, not one after another (a second would
  // take what the first missed, and hide it).
  const a = await openStore(t, redis, { failMode: 'open', perUserLimit: 1000, commandTimeoutMs: 300, probeMs: 2000 });
  /** @type {string[]} */
  const ids = [];
  for (let i = 0; i < 2000; i++) {
    const r = await a.acquire(`user-${i % USERS}`);
    assert.ok(r.ok);
    if (r.ok) ids.push(r.lease.id);
  }

  redis.pause();
  // This call times out: the store takes Redis for gone, and (failMode open) accepts it
  // locally, as every acquire from here on until Redis is back.
  const first = await a.acquire('user-0');
  assert.ok(first.ok);
  if (first.ok) ids.push(first.lease.id);
  assert.equal((await a.stats()).redis, 'down');

  // Calls keep coming while Redis returns and the store writes its leases back: local
  // acquires, and releases of leases written before the outage. Counted: the scenario
  // must really put calls inside the write-back.
  let running = true;
  let duringRecovery = 0;
  let recovering = false;
  const traffic = (async () => {
    let i = 0;
    while (running) {
      const r = await a.acquire(`user-${i % USERS}`);
      if (r.ok) ids.push(r.lease.id);
      const victim = ids.shift();
      if (victim) await a.release(victim);
      if (recovering && (await a.stats()).redis === 'down') duringRecovery++;
      i++;
      await turn();
    }
  })();
  await sleep(50);
  recovering = true;
  redis.resume();
  await waitFor(async () => (await a.stats()).redis === 'up', 'the store uses Redis again');
  running = false;
  await traffic;
  assert.ok(duringRecovery > 0, 'calls were made between Redis returning and the store using it again');

  // Nothing stays behind: no lease only on this node, no release waiting, and Redis holds
  // exactly the leases this node holds.
  await waitFor(
    async () => {
      const s = await a.stats();
      return s.heldLocally === 0 && s.pendingReleases === 0;
    },
    'every local lease written back and every release sent',
    10_000,
  );
  const s = await a.stats();
  assert.equal(await liveOf(admin, USERS), s.held);
  assert.equal(s.held, ids.length);
});

test('a write-back that fails half-way after a Redis restart is redone as one: no live socket is taken for removed', async (t) => {
  const redis = await startRedis(t);
  const { logger, lines } = memoryLogger();
  // Reconnects every 1.5 s: after the restart there is time to pause Redis's writes
  // before this node is back.
  const a = await openStore(t, redis, { commandTimeoutMs: 300, probeMs: 100, logger, logLevel: 'warn', redis: { retryStrategy: () => 1500 } });
  /** @type {import('socket-lease/redis').RevokedLease[]} */
  const revoked = [];
  a.on('revoked', (e) => revoked.push(e));
  for (let i = 0; i < 50; i++) assert.ok((await a.acquire(`user-${i}`)).ok);

  await redis.stop();
  await waitFor(async () => (await a.stats()).redis === 'down', 'the store notices the outage');
  await redis.start(); // a new run: empty
  const admin = redis.admin();
  await admin.call('CLIENT', 'PAUSE', '2500', 'WRITE');

  await waitFor(async () => (await a.stats()).redis === 'up', 'the store uses Redis again', 15_000);
  assert.ok(
    lines.some((l) => l.level === 'warn' && /could not put this node's leases back/.test(l.msg)),
    'a write-back failed while Redis paused its writes (the scenario happened)',
  );
  assert.deepEqual(revoked, [], 'no live lease taken for removed by another node');
  assert.equal(await liveOf(admin, 50), 50, 'every lease written back');
});

test('an outage longer than the TTL: leases whose sockets kept heartbeating are written back, not revoked', async (t) => {
  const redis = await startRedis(t);
  const ttlMs = 500;
  const a = await openStore(t, redis, { ttlMs, keyGraceMs: 0, commandTimeoutMs: 200, probeMs: 50 });
  /** @type {import('socket-lease/redis').RevokedLease[]} */
  const revoked = [];
  a.on('revoked', (e) => revoked.push(e));
  const alive = await a.acquire('user-0');
  const silent = await a.acquire('user-1');
  assert.ok(alive.ok && silent.ok);
  if (!alive.ok || !silent.ok) return;

  redis.pause();
  // The outage lasts three TTLs (user sets and records expire in Redis meanwhile); one
  // socket heartbeats through it, the other does not.
  const until = Date.now() + 3 * ttlMs;
  while (Date.now() < until) {
    assert.equal(await a.touch(alive.lease.id), true);
    await sleep(ttlMs / 5);
  }
  assert.deepEqual(await a.sweep(), [silent.lease.id], 'the silent lease expired on this node, by its own clock');
  redis.resume();

  await waitFor(async () => (await a.stats()).redis === 'up', 'the store uses Redis again');
  assert.deepEqual(revoked, []);
  assert.equal(await liveLeases(redis.admin(), 'user-0'), 1, 'the heartbeating lease is in Redis again');
  assert.equal(await a.touch(alive.lease.id), true);
});

test('while Redis is away, expiry compares host times with host times: a host clock minutes ahead of Redis expires nothing', async (t) => {
  const redis = await startRedis(t);
  const realNow = Date.now.bind(Date);
  t.mock.method(Date, 'now', () => realNow() + 120_000);
  const a = await openStore(t, redis, { ttlMs: 60_000, commandTimeoutMs: 200, probeMs: 50 });
  const r = await a.acquire('user-0');
  assert.ok(r.ok);
  if (!r.ok) return;
  assert.ok(Math.abs(r.lease.acquiredAt - realNow()) < 60_000, "the lease's times are Redis's, not the skewed host's");

  redis.pause();
  // An acquire times out: Redis is gone (failMode closed refuses). From then on the sweep
  // expires locally what was not renewed within the TTL: this lease was renewed (by
  // Redis) a moment ago.
  await assert.rejects(a.acquire('user-1'), (/** @type {any} */ err) => err.code === 'REDIS_UNAVAILABLE');
  assert.equal((await a.stats()).redis, 'down');
  assert.deepEqual(await a.sweep(), [], 'renewed a moment ago: nothing expired');
  assert.equal(await a.touch(r.lease.id), true, 'renewed on this node while Redis is away');
  assert.deepEqual(await a.sweep(), []);
  redis.resume();
  await waitFor(async () => (await a.stats()).redis === 'up', 'the store uses Redis again');
  assert.equal(await liveLeases(redis.admin(), 'user-0'), 1);
});

test('a Redis that refuses this node from the start (wrong password) is logged at the default level, and the refusal carries the cause', async (t) => {
  const redis = await startRedis(t);
  const admin = redis.admin();
  await admin.config('SET', 'requirepass', 'not-this-node');
  const { logger, lines } = memoryLogger();
  const { createRedisLeaseStore } = await import('socket-lease/redis');
  const a = createRedisLeaseStore({ url: redis.url, logger, commandTimeoutMs: 300 });
  t.after(() => a.close());
  assert.equal(await a.ready(1500), false);
  await waitFor(() => lines.some((l) => l.level === 'error' && /NOAUTH|WRONGPASS|auth/i.test(JSON.stringify(l))), 'an error line that says why');
  await assert.rejects(
    a.acquire('user-0'),
    (/** @type {any} */ err) => err.code === 'REDIS_UNAVAILABLE' && /NOAUTH|WRONGPASS|auth/i.test(String(err.cause?.message ?? err.cause)),
  );
  assert.equal(lines.filter((l) => l.level === 'error').length, 1, 'said once, not once per retry');
});

test('bad arguments are refused as the in-memory registry refuses them; a closed store and a stalled Redis answer with codes', async (t) => {
  const redis = await startRedis(t);
  const a = await openStore(t, redis, { commandTimeoutMs: 200, probeMs: 50 });
  const core = new LeaseRegistry();
  const r = await a.acquire('user-0');
  assert.ok(r.ok);
  if (!r.ok) return;
  const id = r.lease.id;

  /** The same error (code and message) from the store as from the core, for the same call. */
  const same = async (/** @type {() => Promise<unknown>} */ store, /** @type {() => unknown} */ inMemory) => {
    let expected;
    try {
      inMemory();
      assert.fail('the in-memory registry accepted it');
    } catch (err) {
      expected = /** @type {any} */ (err);
    }
    await assert.rejects(store, (/** @type {any} */ err) => err.code === expected.code && err.message === expected.message);
  };
  for (const bad of [NaN, -1, '5', Infinity, 2 ** 53]) {
    await same(
      () => a.acquire('user-0', { now: /** @type {any} */ (bad) }),
      () => core.acquire('user-0', { now: /** @type {any} */ (bad) }),
    );
    await same(
      () => a.release(id, /** @type {any} */ (bad)),
      () => core.release(id, /** @type {any} */ (bad)),
    );
    await same(
      () => a.touch(id, /** @type {any} */ (bad)),
      () => core.touch(id, /** @type {any} */ (bad)),
    );
    await same(
      () => a.sweep(/** @type {any} */ (bad)),
      () => core.sweep(/** @type {any} */ (bad)),
    );
    await same(
      () => a.userStats('user-0', /** @type {any} */ (bad)),
      () => core.userStats('user-0', /** @type {any} */ (bad)),
    );
  }
  await same(
    () => a.acquire('user-0', /** @type {any} */ ('abc')),
    () => core.acquire('user-0', /** @type {any} */ ('abc')),
  );
  assert.equal(await liveLeases(redis.admin(), 'user-0'), 1, 'nothing was written by a refused call');

  // A stalled Redis: userStats answers REDIS_UNAVAILABLE (a host answers 503), not
  // ioredis's bare timeout.
  redis.pause();
  await assert.rejects(a.userStats('user-0'), (/** @type {any} */ err) => err.code === 'REDIS_UNAVAILABLE');
  redis.resume();
  await waitFor(async () => (await a.stats()).redis === 'up', 'the store uses Redis again');

  await a.close();
  await assert.rejects(a.acquire('user-0'), (/** @type {any} */ err) => err.code === 'STORE_CLOSED');
});

test('calls issued together reach Redis in the order they were made, with or without a connection key', async (t) => {
  const redis = await startRedis(t);
  const a = await openStore(t, redis, { perUserLimit: 1 });
  const first = await a.acquire('user-0');
  assert.ok(first.ok);
  if (!first.ok) return;
  // Not awaited: the release is made first, so the keyed acquire finds the slot free.
  const released = a.release(first.lease.id);
  const keyed = a.acquire('user-0', { connectionKey: 'tab-1' });
  assert.equal(await released, true);
  const again = await keyed;
  assert.equal(again.ok, true, 'the keyed acquire ran after the release');

  // And the other way round: a keyed release, then a plain acquire.
  if (!again.ok) return;
  const releasedKeyed = a.release(again.lease.id);
  const plain = a.acquire('user-0');
  assert.equal(await releasedKeyed, true);
  assert.equal((await plain).ok, true, 'the plain acquire ran after the keyed release');
});
