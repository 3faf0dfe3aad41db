// socket-lease/redis: lone surrogates refused before Redis is asked, the expired leases an
// acquire reclaimed (`reclaimed`), and an acquire that may not evict (`evict: false`), as
// in the core (tests/js/core/well-formed.test.mjs, admission.test.mjs).
import { test as nodeTest } from 'node:test';
import assert from 'node:assert/strict';
import { LeaseError, LeaseRegistry } from 'socket-lease';
import { createRedisLeaseStore } from 'socket-lease/redis';
import { commandCalls, liveLeases, openStore, startRedis, waitFor } from './harness.mjs';

/** @param {string} name @param {(t: import('node:test').TestContext) => unknown} fn */
const test = (name, fn) => nodeTest(name, { timeout: 60_000 }, fn);

const ILL_FORMED = ['\ud800', '\udbff', '\udc00', 'a\ud800b', 'é\udfff', `${'x'.repeat(90)}\ud800`];

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

/** @param {import('ioredis').Redis} admin */
async function scriptCalls(admin) {
  const calls = await commandCalls(admin);
  return (calls.evalsha ?? 0) + (calls.eval ?? 0);
}

test('lone surrogates in user ids and connection keys are refused before any Redis call, as the core refuses them', async (t) => {
  const redis = await startRedis(t);
  const admin = redis.admin();
  const s = await openStore(t, redis, { perUserLimit: 1 });
  const core = new LeaseRegistry({ perUserLimit: 1 });
  t.after(() => core.free());
  await s.acquire('\ufffd'); // the user each of them used to become
  const before = await scriptCalls(admin);
  for (const bad of ILL_FORMED) {
    const what = JSON.stringify(bad);
    const user = await failure(() => s.acquire(bad));
    assert.equal(user?.code, 'INVALID_USER_ID', what);
    assert.deepEqual(user, await failure(() => core.acquire(bad)), `${what}: the core's code and message`);
    assert.deepEqual(await failure(() => s.acquire(bad, { evict: false })), user, what);
    assert.deepEqual(await failure(() => s.userStats(bad)), await failure(() => core.userStats(bad)), `userStats ${what}`);
    const key = await failure(() => s.acquire('u', { connectionKey: bad }));
    assert.equal(key?.code, 'INVALID_OPTION', what);
    assert.deepEqual(key, await failure(() => core.acquire('u', { connectionKey: bad })), `key ${what}: the core's code and message`);
  }
  assert.equal(await scriptCalls(admin), before, 'Redis was not asked');
  // Well-formed ids, U+FFFD and emoji included, are users of their own.
  for (const user of ['😀', '\ud83d\ude01', 'a\ufffdb']) assert.equal((await s.acquire(user)).ok, true, user);
  assert.equal((await s.acquire('\ufffd')).ok, false, 'its own limit');
  assert.equal(await liveLeases(admin, '\ufffd'), 1);
});

test('connectionKey null is no key, as in the core: an unkeyed lease each time', async (t) => {
  const redis = await startRedis(t);
  const s = await openStore(t, redis, { perUserLimit: 3 });
  const core = new LeaseRegistry({ perUserLimit: 3 });
  t.after(() => core.free());
  for (const store of [s, core]) {
    const a = await store.acquire('nul', { connectionKey: null });
    const b = await store.acquire('nul', /** @type {any} */ ({ connectionKey: null, evict: null }));
    assert.ok(a.ok && b.ok);
    assert.equal(a.ok && b.ok && (a.reused || b.reused), false, 'two leases, neither reused');
    assert.notEqual(a.ok && a.lease.id, b.ok && b.lease.id);
    assert.equal(a.ok && 'connectionKey' in a.lease, false);
    assert.equal((await store.userStats('nul')).active, 2);
  }
});

test('the fail-open local path refuses lone surrogates too', async (t) => {
  // Nothing listens on port 1: Redis is away from the start.
  const s = createRedisLeaseStore({ url: 'redis://127.0.0.1:1', failMode: 'open', perUserLimit: 1, logLevel: 'silent', commandTimeoutMs: 100 });
  t.after(() => s.close());
  assert.equal(s.available, false);
  for (const bad of ILL_FORMED) {
    assert.equal((await failure(() => s.acquire(bad)))?.code, 'INVALID_USER_ID', JSON.stringify(bad));
    assert.equal((await failure(() => s.acquire('u', { connectionKey: bad })))?.code, 'INVALID_OPTION', JSON.stringify(bad));
  }
  const local = await s.acquire('\ufffd', { evict: false });
  assert.equal(local.ok, true, 'accepted locally');
  assert.deepEqual(local.ok && [local.evicted, local.reclaimed], [[], []]);
  assert.equal((await s.acquire('😀')).ok, true, 'another user');
  assert.equal((await s.stats()).heldLocally, 2);
});

test('acquire names every expired lease of the user it removed, whichever node held it', async (t) => {
  const redis = await startRedis(t);
  const admin = redis.admin();
  const ttlMs = 300;
  const a = await openStore(t, redis, { perUserLimit: 3, ttlMs });
  const b = await openStore(t, redis, { perUserLimit: 3, ttlMs });
  /** @type {string[]} */
  const revoked = [];
  b.on('revoked', (e) => revoked.push(`${e.reason} ${e.leaseId}`));
  const mine = await a.acquire('u'); // the batched path
  const theirs = await b.acquire('u', { connectionKey: 'tab' }); // the keyed path
  assert.ok(mine.ok && theirs.ok);
  if (!mine.ok || !theirs.ok) return;
  await waitFor(async () => (await liveLeases(admin, 'u')) === 0, 'both leases expired in Redis');
  const r = await a.acquire('u');
  assert.equal(r.ok, true);
  if (!r.ok) return;
  assert.deepEqual([...r.reclaimed].sort(), [mine.lease.id, theirs.lease.id].sort());
  assert.deepEqual(r.evicted, []);
  await waitFor(() => revoked.length > 0, 'the other node told');
  assert.deepEqual(revoked, [`expired ${theirs.lease.id}`]);
  // This node's own one is reported by its next sweep too, as the core does.
  assert.deepEqual(await a.sweep(), [mine.lease.id]);
  // The common case: nothing reclaimed.
  const quiet = await a.acquire('u', { connectionKey: 'k' });
  assert.deepEqual(quiet.ok && quiet.reclaimed, []);

  // A refusal names what it reclaimed (only when it reclaimed some): a node with a
  // lower limit finds the user over it once the expired lease is gone. (Nodes with
  // other options than their peers' only for the test: a short-lived lease beside two
  // long ones.)
  const strict = await openStore(t, redis, { perUserLimit: 1, ttlMs });
  const long = await openStore(t, redis, { perUserLimit: 3, ttlMs: 60_000 });
  const old = await a.acquire('v');
  await long.acquire('v');
  await long.acquire('v');
  await waitFor(async () => (await liveLeases(admin, 'v')) === 2, 'the short one expired');
  const refused = await strict.acquire('v');
  assert.equal(refused.ok, false);
  assert.deepEqual(!refused.ok && [refused.reason, refused.active, refused.reclaimed], ['user-limit', 2, [old.ok && old.lease.id]]);
  const plain = await strict.acquire('v');
  assert.equal('reclaimed' in plain, false);
});

test('evict: false where the policy would evict: an evictable refusal that changes nothing, then phase two evicts', async (t) => {
  const redis = await startRedis(t);
  const admin = redis.admin();
  for (const onLimit of /** @type {const} */ (['evict-oldest', 'evict-idle'])) {
    /** @type {string[]} */
    const events = [];
    const s = await openStore(t, redis, { perUserLimit: 2, onLimit, ttlMs: 60_000, prefix: `${onLimit}:`, onEvent: (e) => events.push(e.type) });
    const first = await s.acquire('u');
    await s.acquire('u', { connectionKey: 'tab' });
    events.length = 0;
    const keys = async () => Promise.all([admin.zrange(`${onLimit}:u:u`, 0, -1, 'WITHSCORES'), admin.hgetall(`${onLimit}:c:u`)]);
    const before = await keys();
    const r = await s.acquire('u', { evict: false });
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.deepEqual({ ...r, retryAfterMs: 0 }, { ok: false, reason: 'user-limit', limit: 2, active: 2, retryAfterMs: 0, evictable: true }, onLimit);
    assert.ok(r.retryAfterMs > 0);
    // With a connection key too (the keyed script).
    const keyed = await s.acquire('u', { evict: false, connectionKey: 'other' });
    assert.equal(!keyed.ok && keyed.evictable, true);
    assert.deepEqual(await keys(), before, 'nothing written');
    assert.equal((await s.stats()).rejected, 0, 'not counted as rejected');
    assert.deepEqual(events, [], 'no rejected event');
    const ok = await s.acquire('u', { evict: true });
    assert.deepEqual(ok.ok && ok.evicted, [first.ok && first.lease.id]);
  }
});

test('evict: false where no eviction helps: the usual refusal, counted; evict is checked', async (t) => {
  const redis = await startRedis(t);
  const reject = await openStore(t, redis, { perUserLimit: 1, prefix: 'reject:' });
  await reject.acquire('u');
  assert.deepEqual(Object.keys(await reject.acquire('u', { evict: false })).sort(), ['active', 'limit', 'ok', 'reason', 'retryAfterMs']);
  assert.equal((await reject.stats()).rejected, 1);

  const global = await openStore(t, redis, { perUserLimit: 1, globalLimit: 2, onLimit: 'evict-oldest', prefix: 'global:' });
  await global.acquire('a');
  await global.acquire('b');
  const full = await global.acquire('c', { evict: false });
  assert.deepEqual(!full.ok && [full.reason, 'evictable' in full], ['global-limit', false], 'the global limit, full even after an eviction');
  const room = await global.acquire('a', { evict: false });
  assert.deepEqual(!room.ok && [room.reason, room.evictable], ['user-limit', true], "evicting a's lease would make room");
  assert.equal((await global.stats()).rejected, 1);

  for (const bad of [0, 'no', {}]) {
    const err = await failure(() => reject.acquire('u', /** @type {any} */ ({ evict: bad })));
    assert.equal(err?.code, 'INVALID_OPTION');
    assert.match(String(err?.message), /evict must be a boolean/);
  }
  assert.match(String((await failure(() => reject.acquire('u', /** @type {any} */ ({ evicts: false }))))?.message), /known: connectionKey, now, evict/);
});
