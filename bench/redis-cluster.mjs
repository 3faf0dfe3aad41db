// `node bench/redis-cluster.mjs`: socket-lease/redis on a local Redis Cluster (3 masters,
// 3 replicas: scripts/redis-cluster.mjs) beside one standalone Redis, in one run: acquire +
// release pairs per second, heartbeat touches per second, and the Redis CPU each costs,
// per shard (each redis-server's own INFO cpu), with how the users spread over the shards.
// The figures docs/performance.md ("Redis Cluster: capacity") turns into shard counts.
//
//   node bench/redis-cluster.mjs [--time-ms 2000] [--rounds 3] [--users 3000] [--limit 5]
//                                [--in-flight 1,64] [--json target/bench/redis-cluster.json]
//
// Targets: "standalone" (the store's defaults: batches of up to 16 operations per script
// call), "standalone, batchSize 1" (one script call per operation, as in a cluster), a
// cluster of 3 masters without replicas (the cluster's own cost) and with one replica each
// (what replication adds, on the masters and on the replicas), one after the other. A
// store in a cluster sends 4 commands per pair where one Redis takes 2: the acquire script
// and the id index entry (SET, in parallel), the release script and the entry's DEL (in
// parallel). Each phase runs for --time-ms with N operations in flight (N workers, each
// one after the other); users round robin, so no acquire is refused. The summary of each
// figure is the median round. On this machine (2 cores) six redis-servers, their
// replication and the client share two cores: throughput here says nothing about scaling,
// the CPU per operation on each shard is what carries over.
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { createRedisLeaseStore } from 'socket-lease/redis';
import { launchCluster } from '../scripts/redis-cluster.mjs';
import { launchRedis } from '../scripts/redis-server.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    'time-ms': { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '3' },
    users: { type: 'string', default: '3000' },
    limit: { type: 'string', default: '5' },
    'in-flight': { type: 'string', default: '1,64' },
    json: { type: 'string', default: path.join(ROOT, 'target/bench/redis-cluster.json') },
  },
});
const TIME_MS = Number(values['time-ms']);
const ROUNDS = Number(values.rounds);
const USERS = Number(values.users);
const LIMIT = Number(values.limit);
const IN_FLIGHT = values['in-flight'].split(',').map(Number);
for (const [name, n] of Object.entries({ TIME_MS, ROUNDS, USERS, LIMIT, ...Object.fromEntries(IN_FLIGHT.map((v, i) => [`IN_FLIGHT[${i}]`, v])) })) {
  if (!Number.isInteger(n) || n < 1) throw new Error(`bench/redis-cluster: bad ${name}: ${n}`);
}
const users = Array.from({ length: USERS }, (_, i) => `user-${i}`);

/** Redis's own CPU time so far (INFO cpu: user + sys), in microseconds. @param {Redis} admin */
async function cpuUs(admin) {
  const info = await admin.info('cpu');
  return (Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1] ?? 0) + Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1] ?? 0)) * 1e6;
}

/** @param {number[]} xs */
function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Runs `op` for TIME_MS with `inFlight` workers; returns how many completed.
 * @param {number} inFlight
 * @param {(i: number) => Promise<void>} op  i: a running count (picks the user)
 */
async function drive(inFlight, op) {
  let next = 0;
  let done = 0;
  const deadline = Date.now() + TIME_MS;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (Date.now() < deadline) {
        await op(next++);
        done++;
      }
    }),
  );
  return done;
}

/**
 * One target's measurements.
 * @param {string} name
 * @param {import('socket-lease/redis').RedisLeaseStoreOptions} connection
 * @param {Array<{ port: number, role: 'master' | 'replica', admin: Redis }>} servers
 * @param {(user: string) => Promise<number>} shardOf  the port of the master that holds a user
 */
async function measure(name, connection, servers, shardOf) {
  const store = createRedisLeaseStore({ ...connection, perUserLimit: LIMIT, ttlMs: 90_000, logLevel: 'warn' });
  if (!(await store.ready(15_000))) throw new Error(`${name}: the store did not connect`);
  const masters = servers.filter((s) => s.role === 'master');
  // Which master holds each user: the share of operations each shard gets.
  /** @type {Map<number, number>} */
  const usersPerShard = new Map();
  for (const user of users) {
    const port = await shardOf(user);
    usersPerShard.set(port, (usersPerShard.get(port) ?? 0) + 1);
  }
  const cpuAll = async () => Promise.all(servers.map((s) => cpuUs(s.admin)));

  /**
   * @param {number} ops
   * @param {number[]} before
   * @param {number[]} after
   */
  const cpuPerOp = (ops, before, after) => {
    const perServer = servers.map((s, i) => ({ port: s.port, role: s.role, us: after[i] - before[i] }));
    const mastersUs = perServer.filter((s) => s.role === 'master').reduce((sum, s) => sum + s.us, 0);
    const replicasUs = perServer.filter((s) => s.role === 'replica').reduce((sum, s) => sum + s.us, 0);
    return {
      mastersUsPerOp: mastersUs / ops,
      replicasUsPerOp: replicasUs / ops,
      // Each master's CPU over the operations that went to it (its share of the users).
      perShard: masters.map((m) => {
        const share = (usersPerShard.get(m.port) ?? 0) / USERS;
        const us = /** @type {{ us: number }} */ (perServer.find((s) => s.port === m.port)).us;
        return { port: m.port, share, usPerOp: share > 0 ? us / (ops * share) : 0 };
      }),
    };
  };

  const rows = [];
  for (const inFlight of IN_FLIGHT) {
    /** @type {Array<{ pairsPerSec: number, touchesPerSec: number, pair: ReturnType<typeof cpuPerOp>, touch: ReturnType<typeof cpuPerOp>, clientUsPerPair: number }>} */
    const rounds = [];
    for (let round = 0; round < ROUNDS; round++) {
      // Pairs: acquire, then release by the holder.
      let before = await cpuAll();
      const client0 = process.cpuUsage();
      let started = performance.now();
      const pairs = await drive(inFlight, async (i) => {
        const r = await store.acquire(users[i % USERS]);
        if (!r.ok) throw new Error(`${name}: refused ${JSON.stringify(r)}`);
        if (!(await store.release(r.lease.id))) throw new Error(`${name}: release failed`);
      });
      let seconds = (performance.now() - started) / 1000;
      const client = process.cpuUsage(client0);
      const pair = cpuPerOp(pairs, before, await cpuAll());
      const pairsPerSec = pairs / seconds;

      // Heartbeats: one lease per user held, touched round robin.
      /** @type {string[]} */
      const held = [];
      for (const user of users) {
        const r = await store.acquire(user);
        if (!r.ok) throw new Error(`${name}: refused`);
        held.push(r.lease.id);
      }
      before = await cpuAll();
      started = performance.now();
      const touches = await drive(inFlight, async (i) => {
        if (!(await store.touch(held[i % USERS]))) throw new Error(`${name}: touch failed`);
      });
      seconds = (performance.now() - started) / 1000;
      const touch = cpuPerOp(touches, before, await cpuAll());
      await Promise.all(held.map((id) => store.release(id)));
      rounds.push({ pairsPerSec, touchesPerSec: touches / seconds, pair, touch, clientUsPerPair: (client.user + client.system) / pairs });
    }
    const mid = (/** @type {(r: (typeof rounds)[number]) => number} */ f) => median(rounds.map(f));
    const row = {
      target: name,
      inFlight,
      pairsPerSec: Math.round(mid((r) => r.pairsPerSec)),
      touchesPerSec: Math.round(mid((r) => r.touchesPerSec)),
      pair: {
        mastersUsPerOp: +mid((r) => r.pair.mastersUsPerOp).toFixed(2),
        replicasUsPerOp: +mid((r) => r.pair.replicasUsPerOp).toFixed(2),
        perShard: masters.map((m, i) => ({
          port: m.port,
          share: +rounds[0].pair.perShard[i].share.toFixed(3),
          usPerOp: +mid((r) => r.pair.perShard[i].usPerOp).toFixed(2),
        })),
      },
      touch: {
        mastersUsPerOp: +mid((r) => r.touch.mastersUsPerOp).toFixed(2),
        replicasUsPerOp: +mid((r) => r.touch.replicasUsPerOp).toFixed(2),
        perShard: masters.map((m, i) => ({
          port: m.port,
          share: +rounds[0].touch.perShard[i].share.toFixed(3),
          usPerOp: +mid((r) => r.touch.perShard[i].usPerOp).toFixed(2),
        })),
      },
      clientUsPerPair: +mid((r) => r.clientUsPerPair).toFixed(1),
    };
    rows.push(row);
    console.log(
      `${name.padEnd(26)} ${String(inFlight).padStart(3)} in flight: ${String(row.pairsPerSec).padStart(6)} pairs/s, Redis ${row.pair.mastersUsPerOp} us/pair on masters (+${row.pair.replicasUsPerOp} replicas); ` +
        `${String(row.touchesPerSec).padStart(6)} touches/s, ${row.touch.mastersUsPerOp} us/touch; per shard ${row.pair.perShard.map((s) => `${(s.share * 100).toFixed(0)}% ${s.usPerOp} us/pair`).join(', ')}`,
    );
  }
  const left = await store.stats();
  await store.close();
  if (left.held !== 0) throw new Error(`${name}: ${left.held} leases left held`);
  return rows;
}

/**
 * A cluster's measurements, the cluster started for them and destroyed after.
 * @param {number} replicas
 */
async function measureCluster(replicas) {
  const cluster = await launchCluster({ replicas });
  const kill = () => void cluster.destroy();
  process.once('exit', kill);
  try {
    const topo = await cluster.topology();
    const clusterServers = topo.filter((n) => !n.failed).map((n) => ({ port: n.port, role: n.role, admin: cluster.admin(n.port) }));
    // Sorted: masters first (the per-shard rows follow the masters' order).
    clusterServers.sort((a, b) => (a.role === b.role ? a.port - b.port : a.role === 'master' ? -1 : 1));
    /** slot -> master port @type {Map<number, number>} */
    const slotOwner = new Map();
    for (const n of topo) if (n.role === 'master') for (const [a, b] of n.slots) for (let s = a; s <= b; s++) slotOwner.set(s, n.port);
    const keyslot = cluster.admin(clusterServers[0].port);
    const name = replicas === 0 ? 'cluster, 3 masters' : `cluster, 3 masters + ${3 * replicas} replicas`;
    return await measure(name, { cluster: { nodes: cluster.nodes } }, clusterServers, async (user) => {
      const slot = Number(await keyslot.call('CLUSTER', 'KEYSLOT', `socket-lease:{${user}}u:${user}`));
      return slotOwner.get(slot) ?? 0;
    });
  } finally {
    process.removeListener('exit', kill);
    await cluster.destroy();
  }
}

const standalone = await launchRedis();
const killStandalone = () => void standalone.destroy();
process.once('exit', killStandalone);
/** @type {Awaited<ReturnType<typeof measure>>} */
const rows = [];
let version = '';
try {
  const sAdmin = new Redis({ port: standalone.port, host: '127.0.0.1' });
  sAdmin.on('error', () => {});
  version = /redis_version:(\S+)/.exec(await sAdmin.info('server'))?.[1] ?? '';
  const single = [{ port: standalone.port, role: /** @type {const} */ ('master'), admin: sAdmin }];
  rows.push(...(await measure('standalone', { url: `redis://127.0.0.1:${standalone.port}` }, single, async () => standalone.port)));
  rows.push(...(await measure('standalone, batchSize 1', { url: `redis://127.0.0.1:${standalone.port}`, batchSize: 1 }, single, async () => standalone.port)));
  sAdmin.disconnect();
} finally {
  process.removeListener('exit', killStandalone);
  await standalone.destroy();
}
rows.push(...(await measureCluster(0)));
rows.push(...(await measureCluster(1)));
const out = {
  date: new Date().toISOString(),
  machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? '', redis: version },
  method: { timeMs: TIME_MS, rounds: ROUNDS, users: USERS, limit: LIMIT, inFlight: IN_FLIGHT, masters: 3 },
  rows,
};
await mkdir(path.dirname(values.json), { recursive: true });
await writeFile(values.json, `${JSON.stringify(out, null, 2)}\n`);
console.log(`wrote ${path.relative(ROOT, values.json)}`);
