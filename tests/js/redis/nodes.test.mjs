// Two demo servers (separate processes, `node examples/node/server.mjs` with REDIS_URL)
// sharing one real redis-server, limit 5 per user: the quota holds across both, releases
// and evictions cross nodes, a SIGKILLed node's leases expire, Redis outages follow the
// fail mode, and AOF keeps every lease across a Redis crash. Short TTLs; every wait polls
// a state with a bound, never a duration.
import { test as nodeTest } from 'node:test';
import assert from 'node:assert/strict';
import { deriveId } from 'socket-lease';
import { createRedisLeaseStore } from 'socket-lease/redis';
import { closed, connect, echo, getText, liveLeases, open, startNode, startRedis, waitFor } from './harness.mjs';

/** @param {string} name @param {(t: import('node:test').TestContext) => unknown} fn */
const test = (name, fn) => nodeTest(name, { timeout: 90_000 }, fn);

/** @param {{ wsUrl: string }} node @param {string} user */
const wsUrl = (node, user) => `${node.wsUrl}?user=${encodeURIComponent(user)}`;

/**
 * Opens `n` sockets for `user` through `node`, one after the other; returns them with
 * their lease ids (from the echo).
 * @param {{ wsUrl: string }} node
 * @param {string} user
 * @param {number} n
 */
async function openMany(node, user, n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const ws = await open(wsUrl(node, user));
    out.push({ ws, leaseId: (await echo(ws, `hello ${i}`)).leaseId });
  }
  return out;
}

/** @param {import('../node/helpers.mjs').ConnectResult} r */
function status(r) {
  return r.ok ? 101 : r.status;
}

/** @param {{ url: string }} node */
async function health(node) {
  return JSON.parse((await getText(`${node.url}/healthz`)).text);
}

test('limit 5 across two servers: 3 through A and 2 through B are accepted, the 6th gets 429 on either', async (t) => {
  const redis = await startRedis(t);
  const [a, b] = await Promise.all([startNode(t, redis), startNode(t, redis)]);
  const held = [...(await openMany(a, 'ann', 3)), ...(await openMany(b, 'ann', 2))];
  assert.equal(new Set(held.map((h) => h.leaseId)).size, 5);

  for (const node of [a, b]) {
    const r = await connect(wsUrl(node, 'ann'));
    assert.equal(status(r), 429);
    if (r.ok) return;
    assert.ok(Number(r.headers['retry-after']) >= 1, 'Retry-After in seconds');
    assert.deepEqual(JSON.parse(r.body), { reason: 'user-limit', limit: 5, active: 5 });
  }
  // Another user is not affected, and every socket still echoes.
  (await open(wsUrl(b, 'bea'))).close();
  for (const h of held) assert.equal((await echo(h.ws, 'still')).data, 'still');
  assert.equal(await liveLeases(redis.admin(), 'ann'), 5);
  assert.equal((await health(a)).activeLeases + (await health(b)).activeLeases, 5, 'each node reports its own leases');
});

test('release through either node by any derived id; idempotent; the holder closes its socket', async (t) => {
  const redis = await startRedis(t);
  const [a, b] = await Promise.all([startNode(t, redis), startNode(t, redis)]);
  const onA = await openMany(a, 'cal', 3);
  const onB = await openMany(b, 'cal', 2);

  // A socket closed on A is released by A: B gets the slot.
  onA[0].ws.close();
  await closed(onA[0].ws);
  await waitFor(async () => (await liveLeases(redis.admin(), 'cal')) === 4, 'released through A');
  const extra = await open(wsUrl(b, 'cal'));
  assert.equal(status(await connect(wsUrl(a, 'cal'))), 429);
  // ...and one closed on B is released by B: A gets it.
  extra.close();
  await closed(extra);
  await waitFor(async () => (await liveLeases(redis.admin(), 'cal')) === 4, 'released through B');
  const again = await open(wsUrl(a, 'cal'));

  // A third host (this test) releases a lease held on A by its run id, then by its
  // thread id and its conn id: the first is a release, the others are no-ops.
  const third = createRedisLeaseStore({ url: redis.url, perUserLimit: 5, logLevel: 'silent' });
  t.after(() => third.close());
  assert.ok(await third.ready(10_000));
  const target = onA[1];
  const code = closed(target.ws);
  assert.equal(await third.release(deriveId(target.leaseId, 'run')), true);
  assert.equal(await third.release(deriveId(target.leaseId, 'thread')), false);
  assert.equal(await third.release(target.leaseId), false);
  assert.equal((await code).code, 4009, 'A closed the socket whose lease is gone');
  assert.equal((await third.stats()).unknownReleases, 2);
  // And through B's side of things: the slot is free for B.
  const fromB = await open(wsUrl(b, 'cal'));
  assert.equal(status(await connect(wsUrl(b, 'cal'))), 429);
  assert.equal(await liveLeases(redis.admin(), 'cal'), 5);
  for (const ws of [again, fromB, onA[2].ws, ...onB.map((h) => h.ws)]) ws.close();
  await waitFor(async () => (await liveLeases(redis.admin(), 'cal')) === 0, 'all released');
});

test('SIGKILL one server: its leases expire after the TTL and the user connects through the other', async (t) => {
  const redis = await startRedis(t);
  const [a, b] = await Promise.all([startNode(t, redis), startNode(t, redis)]);
  await openMany(a, 'dan', 3);
  const onB = await openMany(b, 'dan', 2);
  assert.equal(status(await connect(wsUrl(b, 'dan'))), 429);

  a.child.kill('SIGKILL');
  await a.exited;
  // Nothing tells B that A died: the leases simply stop being touched and expire.
  await waitFor(async () => (await liveLeases(redis.admin(), 'dan')) === 2, "A's leases expired", 30_000);
  const more = await openMany(b, 'dan', 3);
  assert.equal(status(await connect(wsUrl(b, 'dan'))), 429, 'the limit still holds');
  for (const h of [...onB, ...more]) assert.equal((await echo(h.ws, 'ok')).data, 'ok');
});

test('evict-oldest across nodes: a connect on B evicts the oldest socket, held by A, which gets 4008', async (t) => {
  const redis = await startRedis(t);
  const env = { SOCKET_LEASE_POLICY: 'evict-oldest' };
  const [a, b] = await Promise.all([startNode(t, redis, env), startNode(t, redis, env)]);
  const onA = await openMany(a, 'eve', 3);
  const onB = await openMany(b, 'eve', 2);
  const oldest = closed(onA[0].ws);
  const newest = await open(wsUrl(b, 'eve'));
  const { code, reason } = await oldest;
  assert.equal(code, 4008);
  assert.match(reason, /evicted/);
  for (const h of [...onA.slice(1), ...onB]) assert.equal((await echo(h.ws, 'alive')).data, 'alive');
  assert.equal((await echo(newest, 'new')).data, 'new');
  assert.equal(await liveLeases(redis.admin(), 'eve'), 5);
});

test('50 concurrent connects for one user across both servers never exceed the limit', async (t) => {
  const redis = await startRedis(t);
  const [a, b] = await Promise.all([startNode(t, redis), startNode(t, redis)]);
  const admin = redis.admin();
  let most = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      most = Math.max(most, await liveLeases(admin, 'fay'));
    }
  })();
  const results = await Promise.all(Array.from({ length: 50 }, (_, i) => connect(wsUrl(i % 2 ? a : b, 'fay'))));
  sampling = false;
  await sampler;
  const statuses = results.map(status);
  assert.equal(statuses.filter((s) => s === 101).length, 5);
  assert.equal(statuses.filter((s) => s === 429).length, 45);
  assert.ok(most <= 5, `at most 5 live leases sampled, saw ${most}`);
  assert.equal(await liveLeases(admin, 'fay'), 5);
  const open101 = /** @type {Array<{ ok: true, ws: import('ws').WebSocket }>} */ (results.filter((r) => r.ok));
  assert.equal((await health(a)).socketsOpen + (await health(b)).socketsOpen, 5);
  for (const r of open101) r.ws.close();
  await waitFor(async () => (await liveLeases(admin, 'fay')) === 0, 'all released');
});

test('Redis stopped mid-run, failMode closed: 503 on both; after Redis restarts, live sockets are written back and quotas hold', async (t) => {
  const redis = await startRedis(t);
  const [a, b] = await Promise.all([startNode(t, redis), startNode(t, redis)]);
  const before = await openMany(a, 'gil', 2);

  await redis.stop();
  for (const node of [a, b]) {
    const r = await connect(wsUrl(node, 'gil'));
    assert.equal(status(r), 503);
    if (!r.ok) assert.equal(JSON.parse(r.body).reason, 'store-unavailable');
  }
  assert.equal((await health(a)).redis, 'down');
  for (const h of before) assert.equal((await echo(h.ws, 'up')).data, 'up', 'existing sockets keep working');

  await redis.start();
  await waitFor(async () => (await health(a)).redis === 'up' && (await health(b)).redis === 'up', 'both nodes back', 30_000);
  // Redis came back empty (no persistence): A wrote its two live leases back.
  assert.equal(await liveLeases(redis.admin(), 'gil'), 2);
  await openMany(b, 'gil', 2);
  await openMany(a, 'gil', 1);
  assert.equal(status(await connect(wsUrl(b, 'gil'))), 429);
  assert.equal(status(await connect(wsUrl(a, 'gil'))), 429);
});

test('Redis stopped mid-run, failMode open: both accept; after Redis restarts, quotas are enforced again', async (t) => {
  const redis = await startRedis(t);
  const env = { SOCKET_LEASE_REDIS_FAIL_MODE: 'open' };
  const [a, b] = await Promise.all([startNode(t, redis, env), startNode(t, redis, env)]);
  const before = await openMany(a, 'hob', 2);

  await redis.stop();
  const duringA = await openMany(a, 'hob', 2);
  const duringB = await openMany(b, 'hob', 2);
  assert.equal(duringA.length + duringB.length, 4, 'accepted without Redis');

  await redis.start();
  await waitFor(async () => (await health(a)).redis === 'up' && (await health(b)).redis === 'up', 'both nodes back', 30_000);
  // Six live sockets, all written back: over the limit, so new connects are refused...
  assert.equal(await liveLeases(redis.admin(), 'hob'), 6);
  assert.equal(status(await connect(wsUrl(a, 'hob'))), 429);
  assert.equal(status(await connect(wsUrl(b, 'hob'))), 429);
  // ...until the user is under it again.
  for (const h of [before[0], duringB[0]]) {
    h.ws.close();
    await closed(h.ws);
  }
  await waitFor(async () => (await liveLeases(redis.admin(), 'hob')) === 4, 'two released');
  await openMany(b, 'hob', 1);
  assert.equal(status(await connect(wsUrl(a, 'hob'))), 429);
});

test('with AOF, a Redis crash and restart loses no lease', async (t) => {
  const redis = await startRedis(t, { aof: true });
  const env = { SOCKET_LEASE_TTL_MS: '10000', SOCKET_LEASE_HEARTBEAT_MS: '1000' };
  const [a, b] = await Promise.all([startNode(t, redis, env), startNode(t, redis, env)]);
  const held = [...(await openMany(a, 'ivy', 3)), ...(await openMany(b, 'ivy', 2))];

  // Freeze both servers so that nothing can write the leases back: what Redis has after
  // the restart is what its AOF kept.
  for (const node of [a, b]) node.child.kill('SIGSTOP');
  t.after(() => {
    for (const node of [a, b]) node.child.kill('SIGCONT');
  });
  await redis.stop('SIGKILL');
  await redis.start();
  const admin = redis.admin();
  const ids = await admin.zrange('socket-lease:u:ivy', 0, -1);
  assert.deepEqual(ids.sort(), held.map((h) => h.leaseId).sort());
  assert.equal(await liveLeases(admin, 'ivy'), 5);
  for (const node of [a, b]) node.child.kill('SIGCONT');

  await waitFor(async () => (await health(a)).redis === 'up' && (await health(b)).redis === 'up', 'both nodes back', 30_000);
  assert.equal(status(await connect(wsUrl(a, 'ivy'))), 429);
  assert.equal(status(await connect(wsUrl(b, 'ivy'))), 429);
  for (const h of held) assert.equal((await echo(h.ws, 'kept')).data, 'kept');
});
