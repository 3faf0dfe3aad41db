// A private Redis Cluster for the cluster tests (tests/js/redis/cluster.test.mjs) and the
// cluster benchmark (bench/redis-cluster.mjs): redis-server processes on free 127.0.0.1
// ports (scripts/redis-server.mjs, each in its own temp dir, no persistence), joined by
// `redis-cli --cluster create … --cluster-replicas N --cluster-yes`. Never a system Redis.
// Every wait polls the cluster's own state with a bound, never a duration.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort, launchRedis } from './redis-server.mjs';

const exec = promisify(execFile);

/**
 * @typedef {object} ClusterNodeInfo one line of CLUSTER NODES
 * @property {string} id
 * @property {number} port
 * @property {'master' | 'replica'} role
 * @property {string | null} masterId  a replica's master
 * @property {boolean} failed   flagged fail (or handshake/noaddr)
 * @property {Array<[number, number]>} slots  a master's slot ranges
 */

/**
 * @param {string} text CLUSTER NODES
 * @returns {ClusterNodeInfo[]}
 */
function parseNodes(text) {
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const [id, addr, flags, master, , , , , ...slots] = line.trim().split(' ');
      const port = Number(addr.split('@')[0].split(':').pop());
      const f = flags.split(',');
      return {
        id,
        port,
        role: /** @type {'master' | 'replica'} */ (f.includes('master') ? 'master' : 'replica'),
        masterId: master === '-' ? null : master,
        failed: f.includes('fail') || f.includes('handshake') || f.includes('noaddr'),
        slots: slots
          .filter((s) => !s.startsWith('['))
          .map((s) => {
            const [a, b] = s.split('-').map(Number);
            return /** @type {[number, number]} */ ([a, b ?? a]);
          }),
      };
    });
}

/**
 * @param {() => Promise<boolean>} check
 * @param {string} what
 * @param {number} timeoutMs
 */
async function until(check, what, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // a node still starting or just killed: ask again
    }
    if (Date.now() > deadline) throw new Error(`Redis Cluster: ${what} not reached within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Starts a cluster of `masters` masters with `replicas` replicas each.
 * @param {{ masters?: number, replicas?: number, nodeTimeoutMs?: number, timeoutMs?: number }} [options]
 *   nodeTimeoutMs: cluster-node-timeout (how long a master may be silent before its
 *   replica takes over; default 1000)
 */
export async function launchCluster(options = {}) {
  const masters = options.masters ?? 3;
  const replicas = options.replicas ?? 1;
  const timeoutMs = options.timeoutMs ?? 60_000;
  const count = masters * (1 + replicas);
  /** @type {import('./redis-server.mjs').RedisProcess[]} */
  const servers = [];
  /** @type {Map<number, Redis>} */
  const clients = new Map();

  /** @param {number} port a plain connection to one node (not following redirections) */
  function admin(port) {
    let client = clients.get(port);
    if (!client) {
      client = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, lazyConnect: false, retryStrategy: () => 200 });
      client.on('error', () => {});
      clients.set(port, client);
    }
    return client;
  }

  const live = () => servers.filter((s) => s.pid() !== undefined && alive.has(s.port));
  /** Ports of the nodes this harness has not killed. @type {Set<number>} */
  const alive = new Set();

  async function destroy() {
    for (const client of clients.values()) client.disconnect();
    clients.clear();
    await Promise.all(servers.map((s) => s.destroy()));
  }

  try {
    for (let i = 0; i < count; i++) {
      // The cluster bus gets a port of its own (the default, port + 10000, may be taken
      // or beyond 65535).
      const bus = await freePort();
      const server = await launchRedis({
        args: [
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          'nodes.conf',
          '--cluster-node-timeout',
          String(options.nodeTimeoutMs ?? 1000),
          '--cluster-port',
          String(bus),
        ],
      });
      servers.push(server);
      alive.add(server.port);
    }
    await exec('redis-cli', ['--cluster', 'create', ...servers.map((s) => `127.0.0.1:${s.port}`), '--cluster-replicas', String(replicas), '--cluster-yes'], {
      timeout: timeoutMs,
    });
  } catch (err) {
    await destroy();
    throw err;
  }

  /** The cluster as a live node sees it. */
  async function topology() {
    for (const s of live()) {
      try {
        return parseNodes(String(await admin(s.port).call('CLUSTER', 'NODES')));
      } catch {
        // killed or not answering: ask another
      }
    }
    throw new Error('Redis Cluster: no node answers');
  }

  /**
   * Every live node says cluster_state:ok and agrees that each slot has a live master,
   * and every live replica's link to its master is up (so a failover can succeed).
   */
  async function healthy() {
    for (const s of live()) {
      const info = String(await admin(s.port).call('CLUSTER', 'INFO'));
      if (!/cluster_state:ok/.test(info)) return false;
      const nodes = parseNodes(String(await admin(s.port).call('CLUSTER', 'NODES')));
      let covered = 0;
      for (const n of nodes) {
        if (n.role !== 'master' || n.slots.length === 0) continue;
        if (n.failed || !alive.has(n.port)) return false;
        for (const [a, b] of n.slots) covered += b - a + 1;
      }
      if (covered !== 16384) return false;
      const me = nodes.find((n) => n.port === s.port);
      if (me?.role === 'replica' && !/master_link_status:up/.test(String(await admin(s.port).info('replication')))) return false;
    }
    return true;
  }

  const cluster = {
    masters,
    replicas,
    /** "host:port" of every node started (ioredis and the demo take any of them). */
    nodes: servers.map((s) => `127.0.0.1:${s.port}`),
    /** The same as REDIS_CLUSTER_NODES. */
    nodesEnv: servers.map((s) => `127.0.0.1:${s.port}`).join(','),
    /** @param {number} port */
    admin,
    topology,
    /** Waits until the cluster serves every slot from a live master and replicas are linked. */
    waitHealthy: (ms = timeoutMs) => until(healthy, 'a healthy cluster', ms),
    /** Ports of the masters that hold slots now. */
    async masterPorts() {
      return (await topology()).filter((n) => n.role === 'master' && n.slots.length > 0 && !n.failed).map((n) => n.port);
    },
    /**
     * The slot of a key (CLUSTER KEYSLOT, Redis's own hash) and the port of the master
     * that serves it now.
     * @param {string} key
     */
    async whereIs(key) {
      const s = live()[0];
      const slot = Number(await admin(s.port).call('CLUSTER', 'KEYSLOT', key));
      const owner = (await topology()).find((n) => n.role === 'master' && !n.failed && n.slots.some(([a, b]) => slot >= a && slot <= b));
      return { slot, port: owner?.port ?? 0 };
    },
    /** FLUSHALL on every master (replicas follow). */
    async flushAll() {
      await Promise.all((await this.masterPorts()).map((port) => admin(port).flushall()));
    },
    /**
     * The redis-server process on a port (its pid, for CPU figures; stop/start).
     * @param {number} port
     */
    server(port) {
      const s = servers.find((x) => x.port === port);
      if (!s) throw new Error(`no node on port ${port}`);
      return s;
    },
    /**
     * SIGKILL one node: what a crashed master looks like to the rest of the cluster.
     * @param {number} port
     */
    async kill(port) {
      alive.delete(port);
      clients.get(port)?.disconnect();
      clients.delete(port);
      await this.server(port).stop('SIGKILL');
    },
    /**
     * Moves one slot to another master the way redis-cli reshard does: IMPORTING on the
     * target, MIGRATING on the source, MIGRATE its keys a few at a time, then the slot is
     * the target's on every master. `midway` runs after the first batch of keys moved,
     * while the slot is still migrating.
     * @param {number} slot
     * @param {number} toPort
     * @param {{ batch?: number, midway?: () => Promise<void> }} [opts]
     */
    async migrateSlot(slot, toPort, opts = {}) {
      const nodes = await topology();
      const from = nodes.find((n) => n.role === 'master' && !n.failed && n.slots.some(([a, b]) => slot >= a && slot <= b));
      const to = nodes.find((n) => n.port === toPort);
      if (!from || !to || to.role !== 'master') throw new Error(`cannot move slot ${slot} to ${toPort}`);
      if (from.port === toPort) return;
      const src = admin(from.port);
      const dst = admin(toPort);
      await dst.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', from.id);
      await src.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', to.id);
      let first = true;
      for (;;) {
        const keys = /** @type {string[]} */ (await src.call('CLUSTER', 'GETKEYSINSLOT', slot, opts.batch ?? 10));
        if (keys.length === 0) break;
        await src.call('MIGRATE', '127.0.0.1', toPort, '', 0, 5000, 'KEYS', ...keys);
        if (first && opts.midway) await opts.midway();
        first = false;
      }
      // The target first, then the source, then every other master (as redis-cli does).
      await dst.call('CLUSTER', 'SETSLOT', slot, 'NODE', to.id);
      await src.call('CLUSTER', 'SETSLOT', slot, 'NODE', to.id);
      for (const n of nodes) {
        if (n.role === 'master' && !n.failed && n.port !== from.port && n.port !== toPort && alive.has(n.port))
          await admin(n.port).call('CLUSTER', 'SETSLOT', slot, 'NODE', to.id);
      }
    },
    destroy,
  };
  try {
    await cluster.waitHealthy();
  } catch (err) {
    await destroy();
    throw err;
  }
  return cluster;
}

/** @typedef {Awaited<ReturnType<typeof launchCluster>>} RedisCluster */
