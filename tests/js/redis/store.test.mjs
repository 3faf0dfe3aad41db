// socket-lease/redis in process: two or more stores (= nodes) against a real redis-server
// that each test starts on a free loopback port. The contract of LeaseRegistry (shapes,
// errors, ids from the core), the keys and their TTLs, one round trip per operation,
// Redis's clock, pub/sub revocations, timeouts and both fail modes.
import { test as nodeTest } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { LeaseError, LeaseRegistry, deriveId, parseId, sameLease } from 'socket-lease';
import { RedisLeaseStore } from 'socket-lease/redis';
import { commandCalls, liveLeases, memoryLogger, openStore, startRedis, waitFor } from './harness.mjs';

/** @param {string} name @param {(t: import('node:test').TestContext) => unknown} fn */
const test = (name, fn) => nodeTest(name, { timeout: 60_000 }, fn);

/** @param {import('ioredis').Redis} admin */
async function redisNow(admin) {
  const [sec, usec] = await admin.time();
  return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
}

/**
 * @template T
 * @param {Promise<T>} promise
 * @param {string} what
 * @returns {Promise<T>} fails instead of hanging when the promise never settles
 */
function settles(promise, what, ms = 10_000) {
  /** @type {NodeJS.Timeout | undefined} */
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`hung: ${what}`)), ms);
  });
  return /** @type {Promise<T>} */ (Promise.race([promise, timeout]).finally(() => clearTimeout(timer)));
}

test("import and require give one module; the result shapes are the core's; ids come from the core", async (t) => {
  const required = createRequire(import.meta.url)('socket-lease/redis');
  assert.equal(required.RedisLeaseStore, RedisLeaseStore);
  const redis = await startRedis(t);
  const admin = redis.admin();
  const a = await openStore(t, redis, { perUserLimit: 2, ttlMs: 60_000 });

  const before = await redisNow(admin);
  // A host clock far in the past is ignored: expiry is Redis's TIME plus the TTL.
  const r = await a.acquire('ana', { now: 1 });
  const after = await redisNow(admin);
  assert.equal(r.ok, true);
  if (!r.ok) return;
  assert.deepEqual(Object.keys(r).sort(), ['evicted', 'lease', 'ok', 'reclaimed', 'reused']);
  assert.deepEqual(r.evicted, []);
  assert.deepEqual(r.reclaimed, []);
  assert.equal(r.reused, false);
  const { lease } = r;
  assert.deepEqual(Object.keys(lease).sort(), ['acquiredAt', 'connectionId', 'expiresAt', 'id', 'runId', 'threadId', 'touchedAt', 'userId']);
  assert.equal(lease.id, lease.connectionId);
  assert.equal(parseId(lease.id).kind, 'conn');
  assert.equal(lease.runId, deriveId(lease.id, 'run'));
  assert.equal(lease.threadId, deriveId(lease.id, 'thread'));
  assert.ok(sameLease(lease.runId, lease.threadId));
  assert.ok(lease.acquiredAt >= before && lease.acquiredAt <= after, 'acquiredAt is Redis time');
  assert.equal(lease.expiresAt - lease.acquiredAt, 60_000);
  assert.equal(Number(await admin.zscore('socket-lease:u:ana', lease.id)), lease.expiresAt);

  assert.equal((await a.acquire('ana')).ok, true);
  const refused = await a.acquire('ana');
  assert.equal(refused.ok, false);
  if (refused.ok) return;
  assert.deepEqual(Object.keys(refused).sort(), ['active', 'limit', 'ok', 'reason', 'retryAfterMs']);
  assert.equal(refused.reason, 'user-limit');
  assert.equal(refused.limit, 2);
  assert.equal(refused.active, 2);
  assert.ok(refused.retryAfterMs > 0 && refused.retryAfterMs <= 60_000);

  const s = await a.stats();
  assert.equal(s.active, 2);
  assert.equal(s.users, 1);
  assert.equal(s.acquired, 2);
  assert.equal(s.rejected, 1);
  assert.equal(s.redis, 'up');
  const u = await a.userStats('ana');
  assert.equal(u.active, 2);
  assert.equal(u.limit, 2);
  assert.equal(u.leases[0].id, lease.id, 'oldest first');
});

test('release through either node by any derived id; idempotent; unknown ids are counted, malformed ones throw', async (t) => {
  const redis = await startRedis(t);
  const a = await openStore(t, redis, { perUserLimit: 5, kinds: ['job'] });
  const b = await openStore(t, redis, { perUserLimit: 5, kinds: ['job'] });
  /** @type {import('socket-lease/redis').RevokedLease[]} */
  const revokedOnA = [];
  a.on('revoked', (e) => revokedOnA.push(e));

  const r = await a.acquire('bo');
  assert.ok(r.ok);
  if (!r.ok) return;
  assert.equal(r.lease.ids?.job, deriveId(r.lease.id, 'job'));
  assert.equal(await b.touch(r.lease.threadId), true, 'touch from the other node by thread id');
  assert.equal(await b.release(r.lease.threadId), true, 'released on B by its thread id');
  assert.equal(await a.release(r.lease.runId), false, 'again on A by its run id: already gone');
  assert.equal(await b.release(r.lease.id), false);
  assert.equal(await a.touch(r.lease.id), false);
  await waitFor(() => revokedOnA.length === 1, 'A told that B released its lease');
  assert.deepEqual(revokedOnA[0], { leaseId: r.lease.id, reason: 'released' });

  const r2 = await a.acquire('bo');
  assert.ok(r2.ok);
  if (!r2.ok) return;
  assert.equal(await b.release(deriveId(r2.lease.id, 'job')), true, 'an extra kind is a lease id too');
  // A kind this deployment does not use names no lease, as in the core.
  assert.equal(await b.release(deriveId(r2.lease.id, 'other')), false);
  await assert.rejects(b.release('conn_not-an-id'), (err) => err instanceof LeaseError && err.code === 'INVALID_ID');
  await assert.rejects(b.release(/** @type {any} */ (42)), (err) => err instanceof LeaseError && err.code === 'INVALID_ID');

  assert.equal((await a.stats()).unknownReleases, 1);
  assert.equal((await b.stats()).unknownReleases, 2);
  assert.equal((await b.stats()).released, 2);
  await waitFor(async () => (await a.stats()).active === 0, 'A forgot the leases B released');
});

test("user ids and options are checked with the core's rules and messages", async (t) => {
  const redis = await startRedis(t);
  const s = await openStore(t, redis);
  const registry = new LeaseRegistry();
  t.after(() => registry.free());
  const cases = [42, null, undefined, '', 'x'.repeat(256), 'x'.repeat(257), 'é'.repeat(128), 'é'.repeat(129), '😀'.repeat(64), '😀'.repeat(65)];
  for (const userId of cases) {
    /** @type {unknown} */ let core = null;
    /** @type {unknown} */ let ours = null;
    try {
      registry.acquire(/** @type {any} */ (userId));
    } catch (err) {
      core = err;
    }
    try {
      await s.acquire(/** @type {any} */ (userId));
    } catch (err) {
      ours = err;
    }
    const label = typeof userId === 'string' ? `${userId.length} units` : String(userId);
    if (core === null) {
      assert.equal(ours, null, label);
    } else {
      assert.ok(ours instanceof LeaseError, label);
      assert.equal(/** @type {LeaseError} */ (ours).code, /** @type {LeaseError} */ (core).code, label);
      assert.equal(/** @type {LeaseError} */ (ours).message, /** @type {LeaseError} */ (core).message, label);
    }
  }
  await assert.rejects(s.acquire('u', /** @type {any} */ ({ bogus: 1 })), (err) => err instanceof LeaseError && err.code === 'INVALID_OPTION');
  await assert.rejects(s.acquire('u', { connectionKey: '' }), (err) => err instanceof LeaseError && err.code === 'INVALID_OPTION');
  for (const bad of [
    { maxUsers: 10 },
    { ttlMs: 0 },
    { onLimit: 'nope' },
    { unknownOption: 1 },
    { failMode: 'sometimes' },
    { mode: 'dry-run' },
    { prefix: '' },
    { commandTimeoutMs: 0 },
  ]) {
    assert.throws(
      () => new RedisLeaseStore(/** @type {any} */ ({ url: redis.url, ...bad })),
      (err) => err instanceof LeaseError && err.code === 'INVALID_OPTION',
      JSON.stringify(bad),
    );
  }
});

test('every key carries the prefix and a TTL; prefixes keep deployments apart', async (t) => {
  const redis = await startRedis(t);
  const admin = redis.admin();
  const ttlMs = 5_000;
  const keyGraceMs = 1_000;
  const a = await openStore(t, redis, { prefix: 'app1:', perUserLimit: 2, ttlMs, keyGraceMs, onLimit: 'evict-oldest' });
  const b = await openStore(t, redis, { prefix: 'app1:', perUserLimit: 2, ttlMs, keyGraceMs, onLimit: 'evict-oldest' });
  // With a global limit the store keeps the global index too.
  const other = await openStore(t, redis, { prefix: 'app2:', perUserLimit: 2, ttlMs, keyGraceMs, globalLimit: 100 });
  await a.acquire('cy');
  await a.acquire('cy', { connectionKey: 'tab-1' });
  await b.acquire('cy'); // evicts A's oldest: a tombstone and a message for A
  await b.acquire('dee');
  await b.sweep();
  assert.equal((await other.acquire('cy')).ok, true, 'the other prefix has its own quota');

  const keys = await admin.keys('*');
  assert.ok(keys.length >= 8, `keys: ${keys.join(', ')}`);
  for (const key of keys) {
    assert.ok(key.startsWith('app1:') || key.startsWith('app2:'), key);
    const pttl = await admin.pttl(key);
    assert.ok(pttl > 0 && pttl <= ttlMs + keyGraceMs, `${key} has TTL ${pttl}`);
  }
  for (const kind of ['u:cy', 'c:cy', 'u:dee']) assert.ok(keys.includes(`app1:${kind}`), kind);
  assert.ok(!keys.includes('app1:all'), 'no global key without a global limit');
  assert.ok(keys.includes('app2:all'), 'the global index with one');
  assert.ok(
    keys.some((k) => k.startsWith('app1:l:conn_')),
    'lease records',
  );
  assert.ok(
    keys.some((k) => k.startsWith('app1:x:conn_')),
    'the eviction tombstone',
  );
  assert.equal((await a.stats()).active + (await b.stats()).active, 3);
  assert.equal((await other.stats()).deploymentActive, 1);
});

test('one round trip per operation: a single EVALSHA each, EVAL only after Redis forgot the script', async (t) => {
  const redis = await startRedis(t);
  const a = await openStore(t, redis, { perUserLimit: 3 });
  const monitor = await redis.admin().monitor();
  /** @type {string[]} */
  const calls = [];
  monitor.on('monitor', (_time, args, source) => {
    if (source !== 'lua') calls.push(String(args[0]).toLowerCase());
  });
  // MONITOR starts asynchronously: wait until a marker shows up.
  const marker = redis.admin();
  await waitFor(async () => {
    await marker.ping();
    return calls.includes('ping');
  }, 'MONITOR running');
  calls.length = 0;

  const n = 20;
  const ids = [];
  for (let i = 0; i < n; i++) {
    const r = await a.acquire(`user${i % 4}`);
    if (r.ok) ids.push(r.lease.id);
  }
  for (const id of ids) await a.touch(id);
  for (const id of ids) await a.release(id);
  // Every lease was renewed recently: the sweep has nothing to ask Redis.
  assert.deepEqual(await a.sweep(), []);
  await waitFor(() => calls.length >= n + 2 * ids.length, 'every call seen');
  assert.deepEqual([...new Set(calls)], ['evalsha']);
  assert.equal(calls.length, n + 2 * ids.length);

  calls.length = 0;
  await marker.script('FLUSH');
  const r = await a.acquire('after-flush');
  assert.equal(r.ok, true, 'NOSCRIPT falls back to EVAL');
  await a.acquire('after-flush');
  await waitFor(() => calls.filter((c) => c !== 'script').length >= 3, 'calls seen');
  assert.deepEqual(
    calls.filter((c) => c !== 'script'),
    ['evalsha', 'eval', 'evalsha'],
  );
  monitor.disconnect();
});

test('policies across nodes: evict-idle evicts the least recently touched, and its node is told', async (t) => {
  const redis = await startRedis(t);
  const options = /** @type {const} */ ({ perUserLimit: 2, onLimit: 'evict-idle', ttlMs: 60_000 });
  const a = await openStore(t, redis, options);
  const b = await openStore(t, redis, options);
  /** @type {import('socket-lease/redis').RevokedLease[]} */
  const revokedOnB = [];
  b.on('revoked', (e) => revokedOnB.push(e));
  const first = await a.acquire('di');
  const second = await b.acquire('di');
  assert.ok(first.ok && second.ok);
  if (!first.ok || !second.ok) return;
  // Touch the older one later, so the younger becomes the idle one.
  const admin = redis.admin();
  await waitFor(
    async () => (await a.touch(first.lease.id)) && Number(await admin.zscore('socket-lease:u:di', first.lease.id)) > second.lease.expiresAt,
    'first touched after second',
  );
  const third = await a.acquire('di');
  assert.ok(third.ok);
  if (!third.ok) return;
  assert.deepEqual(third.evicted, [second.lease.id]);
  await waitFor(() => revokedOnB.length === 1, 'B told');
  assert.deepEqual(revokedOnB[0], { leaseId: second.lease.id, reason: 'evicted' });
  assert.equal(await b.touch(second.lease.id), false);
  assert.equal((await a.stats()).evicted, 1);
  assert.equal((await b.stats()).revocations.evicted, 1);
});

test('connection keys give the same lease back, from any node; the global limit counts every node', async (t) => {
  const redis = await startRedis(t);
  const a = await openStore(t, redis, { perUserLimit: 3, globalLimit: 4 });
  const b = await openStore(t, redis, { perUserLimit: 3, globalLimit: 4 });
  const one = await a.acquire('ed', { connectionKey: 'tab' });
  const again = await b.acquire('ed', { connectionKey: 'tab' });
  assert.ok(one.ok && again.ok);
  if (!one.ok || !again.ok) return;
  assert.equal(again.lease.id, one.lease.id);
  assert.equal(again.reused, true);
  assert.equal(again.lease.connectionKey, 'tab');
  assert.equal((await a.userStats('ed')).active, 1);

  assert.ok((await a.acquire('fi')).ok);
  assert.ok((await b.acquire('fi')).ok);
  assert.ok((await b.acquire('gus')).ok);
  const refused = await a.acquire('hal');
  assert.equal(refused.ok, false);
  if (refused.ok) return;
  assert.equal(refused.reason, 'global-limit');
  assert.equal(refused.limit, 4);
  assert.equal(refused.active, 4);
  assert.equal(await b.release(one.lease.runId), true);
  assert.equal((await a.acquire('hal')).ok, true, 'a slot freed on B is usable on A');
});

test('a connection key lives as long as its lease: touches renew it past ttl + keyGraceMs, and asking again reuses the lease', async (t) => {
  const redis = await startRedis(t);
  const admin = redis.admin();
  // keyGraceMs 0: the key's hash would expire ttlMs after the acquire unless touches renew it.
  const options = { perUserLimit: 3, ttlMs: 600, keyGraceMs: 0 };
  const a = await openStore(t, redis, options);
  const b = await openStore(t, redis, options);
  const first = await a.acquire('kai', { connectionKey: 'tab' });
  assert.ok(first.ok);
  if (!first.ok) return;
  // Heartbeats (every poll, far more often than the TTL) until Redis's clock is well past
  // the moment the acquire's TTL on the hash ran out.
  await waitFor(async () => {
    assert.equal(await a.touch(first.lease.id), true, 'the lease stays alive while touched');
    return (await redisNow(admin)) > first.lease.acquiredAt + 2 * options.ttlMs;
  }, 'touched past ttl + keyGraceMs');
  assert.equal(await admin.hget('socket-lease:c:kai', 'tab'), first.lease.id, 'the key still names the lease');
  const again = await b.acquire('kai', { connectionKey: 'tab' });
  assert.ok(again.ok);
  if (!again.ok) return;
  assert.equal(again.reused, true);
  assert.equal(again.lease.id, first.lease.id);
  assert.equal(await liveLeases(admin, 'kai'), 1, 'never a second lease for the same key');

  // An entry lost while its lease lives (Redis evicting the hash under maxmemory, say)
  // comes back with the next touch.
  assert.equal(await admin.del('socket-lease:c:kai'), 1);
  assert.equal(await a.touch(first.lease.id), true);
  assert.equal(await admin.hget('socket-lease:c:kai', 'tab'), first.lease.id, 'put back by the touch');
  const pttl = await admin.pttl('socket-lease:c:kai');
  assert.ok(pttl > 0 && pttl <= options.ttlMs, `with the lease's TTL (${pttl})`);
});

test('a connection key names the newest lease given for it: removing an older lease of the key (evicted, released by its holder or by another node) leaves it alone', async (t) => {
  const redis = await startRedis(t);
  const admin = redis.admin();
  const options = /** @type {const} */ ({ perUserLimit: 4, onLimit: 'evict-oldest', ttlMs: 60_000 });
  const a = await openStore(t, redis, options);
  const b = await openStore(t, redis, options);
  const ckey = 'socket-lease:c:lev';
  // A key names two live leases only when its mapping was lost while the older lease lived
  // (as when touches did not renew it, or Redis evicted the hash under maxmemory): lose it
  // by hand before each new acquire, so the key gets three older leases and a newest one.
  const leases = [];
  for (let i = 0; i < 4; i++) {
    if (i > 0) assert.equal(await admin.del(ckey), 1);
    const r = await a.acquire('lev', { connectionKey: 'tab' });
    assert.ok(r.ok && !r.reused);
    if (r.ok) leases.push(r.lease);
  }
  const [oldest, older, old, newest] = leases;
  assert.equal(await admin.hget(ckey, 'tab'), newest.id);

  // At the limit, a plain acquire on B evicts the oldest (dropped in Lua with its key).
  const plain = await b.acquire('lev');
  assert.ok(plain.ok);
  if (!plain.ok) return;
  assert.deepEqual(plain.evicted, [oldest.id]);
  assert.equal(await admin.hget(ckey, 'tab'), newest.id, 'kept after an eviction');
  // The holder's release passes the key it knows.
  assert.equal(await a.release(older.id), true);
  assert.equal(await admin.hget(ckey, 'tab'), newest.id, "kept after the holder's release");
  // Another node's release reads the key from the record.
  assert.equal(await b.release(old.runId), true);
  assert.equal(await admin.hget(ckey, 'tab'), newest.id, "kept after another node's release");

  const again = await b.acquire('lev', { connectionKey: 'tab' });
  assert.ok(again.ok);
  if (!again.ok) return;
  assert.equal(again.reused, true);
  assert.equal(again.lease.id, newest.id);
  assert.equal(await liveLeases(admin, 'lev'), 2, 'the newest keyed lease and the plain one');
  // Released in turn, the newest lease takes its key with it.
  assert.equal(await a.release(newest.id), true);
  assert.equal(await admin.hexists(ckey, 'tab'), 0);
});

test("a lease not touched within the TTL expires by Redis's clock; its node learns it from the sweep or from another node", async (t) => {
  const redis = await startRedis(t);
  const events = /** @type {import('socket-lease').LeaseEvent[]} */ ([]);
  const a = await openStore(t, redis, { perUserLimit: 1, ttlMs: 300 });
  const b = await openStore(t, redis, { perUserLimit: 1, ttlMs: 300, onEvent: (e) => events.push(e) });
  /** @type {import('socket-lease/redis').RevokedLease[]} */
  const revokedOnA = [];
  a.on('revoked', (e) => revokedOnA.push(e));

  const held = await a.acquire('ida');
  assert.ok(held.ok);
  if (!held.ok) return;
  assert.equal((await b.acquire('ida')).ok, false, 'limit 1, held on A');
  // No timing assertion: poll until B is let in, which happens once the lease expired.
  await waitFor(async () => (await b.acquire('ida')).ok, 'B admitted after the TTL');
  await waitFor(() => revokedOnA.length === 1, 'A told its lease expired');
  assert.deepEqual(revokedOnA[0], { leaseId: held.lease.id, reason: 'expired' });
  assert.equal(await a.touch(held.lease.id), false);
  assert.equal((await b.stats()).expired, 1);
  assert.ok(events.some((e) => e.type === 'rejected' && e.reason === 'user-limit'));

  // A node's own expired leases come back from its sweep (for the guard to close).
  const own = await a.acquire('jo');
  assert.ok(own.ok);
  if (!own.ok) return;
  /** @type {string[]} */
  const swept = [];
  await waitFor(async () => {
    swept.push(...(await a.sweep()));
    return swept.length > 0;
  }, 'the sweep reports the expired lease');
  assert.deepEqual(swept, [own.lease.id]);
  assert.equal(await liveLeases(redis.admin(), 'jo'), 0);
});

test("events: near-limit (edge-triggered), limit-reached, rejected; metrics has the core's series and the store's", async (t) => {
  const redis = await startRedis(t);
  const events = /** @type {import('socket-lease').LeaseEvent[]} */ ([]);
  const a = await openStore(t, redis, { perUserLimit: 5, warnRatio: 0.6, onEvent: (e) => events.push(e) });
  const ids = [];
  for (let i = 0; i < 6; i++) {
    const r = await a.acquire('kim');
    if (r.ok) ids.push(r.lease.id);
  }
  assert.deepEqual(
    events.map((e) => e.type),
    ['near-limit', 'limit-reached', 'rejected'],
  );
  assert.equal(events[0].active, 3);
  assert.equal(events[2].reason, 'user-limit');
  await a.release(ids[0]);
  await a.acquire('kim');
  assert.equal(events.filter((e) => e.type === 'near-limit').length, 1, 'still above the threshold: no new near-limit');

  const m = await a.metrics();
  for (const series of [
    'socket_lease_active_leases 5',
    'socket_lease_users 1',
    'socket_lease_acquired_total 6',
    'socket_lease_released_total 1',
    'socket_lease_near_limit_total 1',
    'socket_lease_rejected_total{reason="user-limit"} 1',
    'socket_lease_redis_up 1',
  ]) {
    assert.ok(m.includes(`\n${series}\n`), series);
  }
  assert.ok(!m.includes('kim'), 'no user id in metrics');
});

test('never hang: a stalled Redis fails calls within the command timeout (closed: refuse; held leases kept), then recovers', async (t) => {
  const redis = await startRedis(t);
  const { logger, lines } = memoryLogger();
  const a = await openStore(t, redis, { perUserLimit: 3, commandTimeoutMs: 200, probeMs: 50, logger, logLevel: 'info' });
  const held = await a.acquire('lu');
  assert.ok(held.ok);
  if (!held.ok) return;

  redis.pause();
  t.after(() => redis.resume());
  await assert.rejects(settles(a.acquire('lu'), 'acquire on a stalled Redis'), (err) => /** @type {any} */ (err).code === 'REDIS_UNAVAILABLE');
  assert.equal(a.available, false);
  // Refused at once now, without waiting for Redis again.
  await assert.rejects(settles(a.acquire('lu'), 'acquire while unavailable'), (err) => /** @type {any} */ (err).code === 'REDIS_UNAVAILABLE');
  assert.equal(await settles(a.touch(held.lease.id), 'touch'), true, 'a held lease is renewed locally');
  assert.equal(await settles(a.release(held.lease.id), 'release'), true, 'released later');
  const s = await settles(a.stats(), 'stats');
  assert.equal(s.redis, 'down');
  // The held lease, and the lease of the acquire that timed out (it runs when Redis wakes).
  assert.equal(s.pendingReleases, 2);
  assert.ok((await settles(a.metrics(), 'metrics')).includes('\nsocket_lease_redis_up 0\n'));
  assert.ok(
    lines.some((l) => l.level === 'error' && /Redis unavailable; failMode closed/.test(l.msg)),
    'one clear error line',
  );
  assert.equal(lines.filter((l) => l.level === 'error').length, 1, 'once per outage, not per call');

  redis.resume();
  await waitFor(() => a.available, 'available again');
  assert.equal(await liveLeases(redis.admin(), 'lu'), 0, 'the deferred releases reached Redis, after the stalled acquire ran');
  assert.ok((await a.acquire('lu')).ok);
  assert.ok(lines.some((l) => l.level === 'info' && /quotas are enforced across nodes again/.test(l.msg)));
});

test('failMode open: accepts while Redis is down (per-node limit, logged loudly), writes the leases back when it returns', async (t) => {
  const redis = await startRedis(t);
  const { logger, lines } = memoryLogger();
  const a = await openStore(t, redis, { perUserLimit: 2, failMode: 'open', commandTimeoutMs: 300, probeMs: 50, logger, logLevel: 'info' });
  const b = await openStore(t, redis, { perUserLimit: 2, failMode: 'open', commandTimeoutMs: 300, probeMs: 50 });
  const before = await a.acquire('mo');
  assert.ok(before.ok);

  await redis.stop();
  const during = await settles(a.acquire('mo'), 'acquire with Redis down');
  assert.equal(during.ok, true, 'accepted');
  const onB = await settles(b.acquire('mo'), 'acquire on B');
  assert.equal(onB.ok, true, 'B sees only its own leases');
  const third = await a.acquire('mo');
  assert.equal(third.ok, false, 'but each node applies the limit to what it holds');
  assert.ok(lines.some((l) => l.level === 'error' && /failMode open: ACCEPTING/.test(l.msg)));
  assert.ok(lines.some((l) => l.level === 'warn' && /accepted a connection tracked on this node only/.test(l.msg)));
  assert.equal((await a.stats()).heldLocally, 1);

  await redis.start();
  await waitFor(() => a.available && b.available, 'both back');
  // Redis restarted without persistence: every live lease was written back, above the limit.
  assert.equal(await liveLeases(redis.admin(), 'mo'), 3);
  assert.equal((await a.stats()).heldLocally, 0);
  const refused = await a.acquire('mo');
  assert.equal(refused.ok, false, 'quota enforced again');
  if (during.ok) assert.equal(await b.release(during.lease.runId), true, 'a lease accepted offline is a normal lease now');
});

test('operations issued together go to Redis in batches; each stays atomic and gets its own answer', async (t) => {
  const redis = await startRedis(t);
  const a = await openStore(t, redis, { perUserLimit: 3, onLimit: 'reject' });
  const b = await openStore(t, redis, { perUserLimit: 3, onLimit: 'reject', batchSize: 5 });
  const admin = redis.admin();
  // Redis's own count of the scripts it ran (nothing but these two stores runs one here).
  const before = await commandCalls(admin);

  // 40 users x 5 attempts, half through each node, all issued at once.
  const attempts = [];
  for (let u = 0; u < 40; u++) for (let i = 0; i < 5; i++) attempts.push((i % 2 ? a : b).acquire(`batch-${u}`));
  const results = await Promise.all(attempts);
  for (let u = 0; u < 40; u++) {
    const mine = results.slice(u * 5, u * 5 + 5);
    assert.equal(mine.filter((r) => r.ok).length, 3, `user ${u}: exactly the limit granted`);
    for (const r of mine) if (!r.ok) assert.equal(r.reason, 'user-limit');
  }
  const leases = results.flatMap((r) => (r.ok ? [r.lease] : []));
  assert.equal(new Set(leases.map((l) => l.id)).size, 120);
  // Released through the other node by run id, touched through both, all at once.
  const touched = await Promise.all(leases.map((l, i) => (i % 2 ? b : a).touch(l.threadId)));
  assert.ok(touched.every(Boolean));
  const released = await Promise.all(leases.map((l, i) => (i % 2 ? a : b).release(l.runId)));
  assert.ok(released.every(Boolean));
  assert.deepEqual(await Promise.all(leases.slice(0, 10).map((l) => a.release(l.id))), Array(10).fill(false));
  const after = await commandCalls(admin);
  // Each round was issued in one turn, so each node sends ceil(its operations / its
  // batchSize) calls per round (A: the default 16, B: 5). Acquires: A 80 (2 of each user's
  // 5), B 120; touches and releases: 60 each; then A's 10 repeated releases.
  const calls = (/** @type {number} */ n, /** @type {number} */ size) => Math.ceil(n / size);
  const expected = calls(80, 16) + calls(120, 5) + 2 * (calls(60, 16) + calls(60, 5)) + calls(10, 16);
  assert.equal((after.evalsha ?? 0) - (before.evalsha ?? 0), expected, `450 operations in ${expected} script calls`);
  assert.equal((after.eval ?? 0) - (before.eval ?? 0), 0, 'every script was loaded');
  for (let u = 0; u < 40; u++) assert.equal(await liveLeases(admin, `batch-${u}`), 0);
});

test('lease records keep any user id and connection key intact (spaces, digits, "#", non-ASCII), read back by other nodes', async (t) => {
  const redis = await startRedis(t);
  const a = await openStore(t, redis, { perUserLimit: 2, onLimit: 'evict-oldest' });
  const b = await openStore(t, redis, { perUserLimit: 2, onLimit: 'evict-oldest' });
  const users = ['12 34#5 x', '#7 a', 'ü 0', ' lead'];
  for (const user of users) {
    const plain = await a.acquire(user);
    const keyed = await a.acquire(user, { connectionKey: '3 #k y' });
    assert.ok(plain.ok && keyed.ok);
    if (!plain.ok || !keyed.ok) return;
    // userStats reads every record (acquiredAt, connection key).
    const seen = await b.userStats(user);
    assert.equal(seen.active, 2);
    assert.deepEqual(
      seen.leases.map((l) => [l.id, l.acquiredAt, l.connectionKey]),
      [
        [plain.lease.id, plain.lease.acquiredAt, undefined],
        [keyed.lease.id, keyed.lease.acquiredAt, '3 #k y'],
      ],
    );
    // Another node touches and releases by a derived id: it finds the user in the record.
    assert.equal(await b.touch(keyed.lease.threadId), true);
    // evict-oldest reads acquiredAt from the records: the older plain lease goes.
    const third = await b.acquire(user);
    assert.ok(third.ok);
    if (!third.ok) return;
    assert.deepEqual(third.evicted, [plain.lease.id]);
    assert.equal(await b.release(keyed.lease.runId), true);
    assert.equal(await a.release(keyed.lease.id), false, 'already released by B');
    assert.equal(await a.acquire(user, { connectionKey: '3 #k y' }).then((r) => r.ok && !r.reused), true, 'the key was freed');
    assert.equal(await liveLeases(redis.admin(), user), 2);
  }
});

test('a batch that releases a lease and then touches or releases it again answers as separate calls would', async (t) => {
  const redis = await startRedis(t);
  const a = await openStore(t, redis, { perUserLimit: 3, batchSize: 16 });
  const b = await openStore(t, redis, { perUserLimit: 3, batchSize: 16 });
  const leases = [];
  for (let i = 0; i < 6; i++) {
    const r = await a.acquire(`same-batch-${i % 3}`);
    assert.ok(r.ok);
    if (r.ok) leases.push(r.lease);
  }
  // Issued in one turn on one node, so they go in batches, in order: per lease, a
  // release by the holder, then a touch and a second release of the same lease.
  const answers = await Promise.all(leases.flatMap((l) => [a.release(l.id), a.touch(l.runId), a.release(l.threadId)]));
  assert.deepEqual(
    answers,
    leases.flatMap(() => [true, false, false]),
  );
  assert.deepEqual(
    await Promise.all(leases.map((l) => b.release(l.runId))),
    leases.map(() => false),
    'and for another node too',
  );
  const admin = redis.admin();
  for (const l of leases) assert.equal(await admin.exists(`socket-lease:l:${l.id}`), 0, 'no record left behind');
  for (let u = 0; u < 3; u++) assert.equal(await liveLeases(admin, `same-batch-${u}`), 0);
  const stats = await a.stats();
  assert.equal(stats.released, 6);
  assert.equal(stats.active, 0);
});
