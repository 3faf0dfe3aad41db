// socket-lease/redis on a real Redis Cluster (3 masters, 3 replicas, redis-server on
// 127.0.0.1 ports, joined by redis-cli --cluster create): one user's keys on one shard,
// users over every shard, releases and touches by any id from any node (through the id
// index), eviction notices to the holder, two demo hosts sharing the cluster, a slot
// moved while leases are live, and a master killed mid-run. One cluster for the file,
// flushed between tests; the failover test runs last, since it leaves a master dead.
import { test as nodeTest } from 'node:test';
import assert from 'node:assert/strict';
import { createRedisLeaseStore } from 'socket-lease/redis';
import { clusterCalls, openClusterStore, startClusterNode, useCluster, userKey } from './cluster-harness.mjs';
import { connect, echo, getText, open, waitFor } from './harness.mjs';

/** @param {string} name @param {(t: import('node:test').TestContext) => unknown} fn */
const test = (name, fn) => nodeTest(name, { timeout: 120_000 }, fn);

const cluster = useCluster();

/** @param {() => unknown} fn */
function invalidOption(fn) {
  assert.throws(fn, (/** @type {any} */ err) => err.code === 'INVALID_OPTION' && /invalid option/.test(err.message));
}

test('the cluster option is checked: globalLimit, url or redis beside it, a prefix with braces and bad nodes are INVALID_OPTION', () => {
  const nodes = cluster().nodes;
  invalidOption(() => createRedisLeaseStore({ cluster: { nodes }, globalLimit: 10 }));
  assert.throws(() => createRedisLeaseStore({ cluster: { nodes }, globalLimit: 10 }), /globalLimit is not supported with a Redis Cluster/);
  invalidOption(() => createRedisLeaseStore({ cluster: { nodes }, url: 'redis://127.0.0.1:6379' }));
  invalidOption(() => createRedisLeaseStore({ cluster: { nodes }, redis: {} }));
  invalidOption(() => createRedisLeaseStore({ cluster: { nodes }, prefix: 'app{1}:' }));
  invalidOption(() => createRedisLeaseStore({ cluster: { nodes: [] } }));
  invalidOption(() => createRedisLeaseStore({ cluster: { nodes: ['127.0.0.1'] } }));
  invalidOption(() => createRedisLeaseStore({ cluster: { nodes: ['127.0.0.1:0'] } }));
  invalidOption(() => createRedisLeaseStore({ cluster: { nodes: [{ host: '127.0.0.1', port: '7000' }] } }));
  invalidOption(() => createRedisLeaseStore({ cluster: /** @type {any} */ (['127.0.0.1:7000']) }));
  invalidOption(() => createRedisLeaseStore({ cluster: /** @type {any} */ ({ nodes, extra: 1 }) }));
  invalidOption(() => createRedisLeaseStore({ cluster: { nodes, options: /** @type {any} */ (5) } }));
});

test("every key of a user is in its slot, users spread over all three shards, and each user's limit holds", async (t) => {
  const c = cluster();
  const store = await openClusterStore(t, c, { perUserLimit: 2, connectionKey: undefined });
  // Users with braces too: the tag drops '}', and a user of braces only still has one slot.
  const users = [...Array.from({ length: 24 }, (_, i) => `user-${i}`), 'a}b', '}}', '{x}', 'zoë'];
  /** @type {Map<number, number>} users per master */
  const perShard = new Map();
  for (const user of users) {
    const first = await store.acquire(user);
    const second = await store.acquire(user, { connectionKey: `${user}-tab` });
    assert.ok(first.ok && second.ok, user);
    const third = await store.acquire(user);
    assert.equal(third.ok, false, `${user}: the limit of 2`);
    if (!third.ok) assert.equal(third.reason, 'user-limit');

    const { slot, port } = await c.whereIs(userKey(user));
    perShard.set(port, (perShard.get(port) ?? 0) + 1);
    // The user's set, both records and the connection key map are on that master, in that slot.
    const admin = c.admin(port);
    const tag = `socket-lease:{${user.replaceAll('}', '') || '_'}}`;
    for (const key of [`${tag}u:${user}`, `${tag}l:${first.lease?.id}`, `${tag}l:${second.lease?.id}`, `${tag}c:${user}`]) {
      assert.equal((await c.whereIs(key)).slot, slot, key);
      assert.equal(await admin.exists(key), 1, `${key} on the user's master`);
    }
    assert.equal(await admin.zcard(`${tag}u:${user}`), 2);
  }
  const masters = await c.masterPorts();
  assert.equal(masters.length, 3);
  for (const port of masters) assert.ok((perShard.get(port) ?? 0) >= 3, `users on master ${port}: ${perShard.get(port) ?? 0} of ${users.length}`);
});

test('two nodes: the limit holds across them; release and touch by any derived id from the other node (index + script: 2 round trips), idempotent; an eviction reaches the holder', async (t) => {
  const c = cluster();
  const a = await openClusterStore(t, c, { perUserLimit: 3, onLimit: 'evict-oldest' });
  const b = await openClusterStore(t, c, { perUserLimit: 3, onLimit: 'evict-oldest', kinds: ['job'] });
  const onA = [await a.acquire('ann'), await a.acquire('ann')];
  const onB = await b.acquire('ann');
  assert.ok(onA.every((r) => r.ok) && onB.ok);
  assert.equal((await a.userStats('ann')).active, 3);

  // B releases A's lease by its run id: one GET of the id index, one script.
  const lease = /** @type {import('socket-lease').Lease} */ (onA[0].ok && onA[0].lease);
  const before = await clusterCalls(c);
  assert.equal(await b.release(lease.runId), true);
  const after = await clusterCalls(c);
  // (commandstats counts the commands scripts run too: the script reads the record.)
  assert.equal((after.get ?? 0) - (before.get ?? 0), 2, "the GET of the index, and the script's of the record");
  assert.equal((after.evalsha ?? 0) - (before.evalsha ?? 0), 1, 'one script');
  // Idempotent, from either node and by any id.
  assert.equal(await b.release(lease.threadId), false);
  assert.equal(await a.release(lease.id), false);
  await waitFor(() => a.stats().then((s) => s.revocations.released === 1), 'A told on its channel');
  assert.equal((await a.userStats('ann')).active, 2);

  // The holder needs no index: one script, which reads nothing but the user's set.
  const mine = await a.acquire('cat');
  const beforeOwn = await clusterCalls(c);
  assert.equal(await a.release(/** @type {import('socket-lease').Lease} */ (mine.ok && mine.lease).id), true);
  const afterOwn = await clusterCalls(c);
  assert.equal((afterOwn.get ?? 0) - (beforeOwn.get ?? 0), 0, 'no GET');
  assert.equal((afterOwn.evalsha ?? 0) - (beforeOwn.evalsha ?? 0), 1, 'one script');

  // A touches B's lease by its thread id: found through the index too.
  const bLease = /** @type {import('socket-lease').Lease} */ (onB.ok && onB.lease);
  assert.equal(await a.touch(bLease.threadId), true);
  assert.equal(await a.touch('conn_01h2xcejqtf2nbrexx3vqjhp41'), false, 'an id nobody minted');

  // At the limit, B's acquire evicts A's oldest lease: A hears of it on its channel.
  /** @type {import('socket-lease/redis').RevokedLease[]} */
  const revoked = [];
  a.on('revoked', (e) => revoked.push(e));
  assert.ok((await b.acquire('ann')).ok);
  const evicting = await b.acquire('ann');
  assert.ok(evicting.ok);
  const victim = /** @type {import('socket-lease').Lease} */ (onA[1].ok && onA[1].lease);
  assert.deepEqual(evicting.evicted, [victim.id]);
  await waitFor(() => revoked.length === 1, 'the eviction notice');
  assert.deepEqual(revoked, [{ leaseId: victim.id, reason: 'evicted' }]);
  assert.equal((await a.stats()).held, 0);
  assert.equal((await b.userStats('ann')).active, 3);
});

test('the limit holds for one user across two demo hosts on the cluster (REDIS_CLUSTER_NODES)', async (t) => {
  const c = cluster();
  const [a, b] = await Promise.all([startClusterNode(t, c), startClusterNode(t, c)]);
  const ws = (/** @type {{ wsUrl: string }} */ node, /** @type {string} */ user) => `${node.wsUrl}?user=${encodeURIComponent(user)}`;
  const held = [];
  for (const node of [a, a, a, b, b]) {
    const socket = await open(ws(node, 'ann'));
    held.push({ socket, leaseId: (await echo(socket, 'hi')).leaseId });
  }
  assert.equal(new Set(held.map((h) => h.leaseId)).size, 5);
  for (const node of [a, b]) {
    const r = await connect(ws(node, 'ann'));
    assert.equal(r.ok ? 101 : r.status, 429);
    if (!r.ok) assert.deepEqual(JSON.parse(r.body), { reason: 'user-limit', limit: 5, active: 5 });
  }
  (await open(ws(b, 'bea'))).close();
  const health = JSON.parse((await getText(`${a.url}/healthz`)).text);
  assert.equal(health.redis, 'up');
  assert.equal(health.activeLeases, 3);
  // A socket closed on B frees a slot that A can give.
  held[4].socket.close();
  await waitFor(async () => (await connect(ws(a, 'ann'))).ok, 'the slot freed through B taken through A');
  for (const h of held) h.socket.close();
});

test('a slot moved to another master while leases are live: every lease stays touchable and releasable, from either node', async (t) => {
  const c = cluster();
  const a = await openClusterStore(t, c, { perUserLimit: 4 });
  const b = await openClusterStore(t, c, { perUserLimit: 4 });
  const users = ['mig-1', 'mig-2', 'mig-3'];
  /** @type {import('socket-lease').Lease[]} */
  const leases = [];
  for (const user of users) {
    for (let i = 0; i < 3; i++) {
      const r = await (i === 2 ? b : a).acquire(user, i === 1 ? { connectionKey: `${user}-k` } : undefined);
      assert.ok(r.ok);
      leases.push(r.lease);
    }
  }
  const masters = await c.masterPorts();
  for (const user of users) {
    const { slot, port } = await c.whereIs(userKey(user));
    const to = /** @type {number} */ (masters.find((p) => p !== port));
    // One key per MIGRATE: midway, the user's keys are on both masters. A heartbeat then
    // never says a live lease is gone: it renews through the cluster, or (a script that
    // met a moved key) locally while the store resyncs.
    await c.migrateSlot(slot, to, {
      batch: 1,
      midway: async () => {
        for (const l of leases) if (l.userId === user) assert.equal(await (leases.indexOf(l) % 3 === 2 ? b : a).touch(l.id), true, `midway touch of ${l.id}`);
      },
    });
    assert.equal((await c.whereIs(userKey(user))).port, to, `${user}'s slot moved`);
    assert.equal(await c.admin(to).zcard(userKey(user)), 3, `${user}'s set on the new master`);
  }
  await waitFor(() => a.available && b.available, 'both nodes use the cluster');
  for (const l of leases) {
    assert.equal(await a.touch(l.id), true, `touch ${l.id} (${l.userId})`);
    assert.equal(await b.touch(l.runId), true, `touch by run id from B (${l.userId})`);
  }
  // The limit still counts every lease, and a connection key still finds its lease.
  for (const user of users) {
    assert.ok((await a.acquire(user)).ok);
    const over = await b.acquire(user);
    assert.equal(over.ok, false, `${user} at its limit after the move`);
    const again = await a.acquire(user, { connectionKey: `${user}-k` });
    assert.ok(again.ok && again.reused, `${user}'s connection key`);
  }
  // Released by the other node than the holder, half of them by derived id.
  for (const [i, l] of leases.entries()) {
    const releaser = i % 3 === 2 ? a : b;
    assert.equal(await releaser.release(i % 2 ? l.threadId : l.id), true, `release ${l.id}`);
  }
  for (const user of users) assert.equal((await a.userStats(user)).active, 1);
});

test('a master killed mid-run: its replica takes over; leases the hosts hold are written back (even those replication lost), and no user is locked out past the TTL', async (t) => {
  const c = cluster();
  const ttlMs = 3000;
  const options = { perUserLimit: 3, ttlMs, probeMs: 100 };
  const a = await openClusterStore(t, c, options);
  const b = await openClusterStore(t, c, options);
  const masters = await c.masterPorts();
  const victim = masters[0];
  const topo = await c.topology();
  const victimId = /** @type {string} */ (topo.find((n) => n.port === victim)?.id);
  const replica = /** @type {number} */ (topo.find((n) => n.masterId === victimId && !n.failed)?.port);
  assert.ok(replica, 'the victim has a replica');

  // Users on every shard, and which are on the victim's.
  const users = Array.from({ length: 12 }, (_, i) => `fo-${i}`);
  /** @type {string[]} */
  const onVictim = [];
  for (const user of users) if ((await c.whereIs(userKey(user))).port === victim) onVictim.push(user);
  assert.ok(onVictim.length >= 1, 'some users on the victim');
  /** Each user's leases and the node that holds each. @type {Map<string, Array<{ lease: import('socket-lease').Lease, node: typeof a }>>} */
  const held = new Map();
  /**
   * @param {typeof a} node
   * @param {string} user
   */
  const take = async (node, user) => {
    const r = await node.acquire(user);
    assert.ok(r.ok, user);
    const list = held.get(user) ?? [];
    list.push({ lease: r.lease, node });
    held.set(user, list);
  };
  for (const user of users) {
    await take(a, user);
    await take(b, user);
  }
  // Replicated: the replica has every lease so far.
  await c.admin(victim).call('WAIT', 1, 5000);

  // The replica stops hearing its master: what is written now is on the master only. (A
  // stopped process still receives into its socket buffer: the master drops the link too,
  // and the stopped replica cannot ask again before the master dies.)
  c.server(replica).pause();
  await c.admin(victim).call('CLIENT', 'KILL', 'TYPE', 'replica');
  // A lease the new master will not have: its holder must write it back.
  const lost = onVictim[0];
  await take(a, lost);
  // A release the new master will not have: that lease comes back, held by nobody, until
  // it expires.
  const zUser = onVictim.at(-1) ?? lost;
  const zombie = /** @type {{ lease: import('socket-lease').Lease, node: typeof a }} */ (held.get(zUser)?.shift());
  assert.equal(await zombie.node.release(zombie.lease.id), true);

  await c.kill(victim);
  c.server(replica).resume();
  await c.waitHealthy();
  assert.ok(!(await c.masterPorts()).includes(victim));

  // Both nodes notice, write their leases back, and use the cluster again.
  await waitFor(
    async () => a.available && b.available && (await a.stats()).outages >= 1 && (await b.stats()).outages >= 1,
    'both nodes back after the failover',
    30_000,
  );
  const s = await a.stats();
  assert.equal(s.redis, 'up');
  for (const [user, leases] of held) {
    const live = new Set((await a.userStats(user)).leases.map((l) => l.id));
    for (const { lease } of leases) assert.ok(live.has(lease.id), `${user}: ${lease.id}, held by a host, is in the cluster`);
    for (const { lease, node } of leases) assert.equal(await node.touch(lease.id), true, `${user}: ${lease.id} touched by its holder`);
  }
  // Not locked out: within the TTL the zombie expires, and the user gets every slot the
  // hosts do not hold.
  const free = options.perUserLimit - /** @type {unknown[]} */ (held.get(zUser)).length;
  await waitFor(
    async () => {
      const got = [];
      for (let i = 0; i < free; i++) {
        const r = await b.acquire(zUser);
        if (r.ok) got.push(r.lease.id);
      }
      for (const id of got) await b.release(id);
      return got.length === free;
    },
    `${zUser} gets its ${free} free slots`,
    ttlMs * 3,
  );
});
