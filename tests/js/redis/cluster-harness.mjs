// A Redis Cluster for the cluster tests (scripts/redis-cluster.mjs: 3 masters and 3
// replicas on 127.0.0.1, in temp dirs), shared by the tests of one file: started before
// the first, destroyed after the last, every key flushed between them.
import { after, before, beforeEach } from 'node:test';
import { launchCluster } from '../../../scripts/redis-cluster.mjs';
import { commandCalls } from '../../../scripts/redis-server.mjs';
import { startDemo } from './harness.mjs';

/**
 * The file's cluster (call at the top level of a test file). Before each test it is
 * healthy (every slot served by a live master) and empty.
 * @returns {() => import('../../../scripts/redis-cluster.mjs').RedisCluster}
 */
export function useCluster() {
  /** @type {import('../../../scripts/redis-cluster.mjs').RedisCluster | null} */
  let cluster = null;
  before(async () => {
    cluster = await launchCluster();
  });
  after(async () => {
    await cluster?.destroy();
  });
  beforeEach(async () => {
    const c = /** @type {NonNullable<typeof cluster>} */ (cluster);
    await c.waitHealthy();
    await c.flushAll();
  });
  return () => {
    if (!cluster) throw new Error('the cluster did not start');
    return cluster;
  };
}

/**
 * A store (one node) on the cluster, torn down after the test, connected before it is
 * returned.
 * @param {import('node:test').TestContext} t
 * @param {import('../../../scripts/redis-cluster.mjs').RedisCluster} cluster
 * @param {import('socket-lease/redis').RedisLeaseStoreOptions} [options]
 */
export async function openClusterStore(t, cluster, options = {}) {
  const { createRedisLeaseStore } = await import('socket-lease/redis');
  const s = createRedisLeaseStore({ cluster: { nodes: cluster.nodes }, logLevel: 'silent', ...options });
  t.after(() => s.close());
  if (!(await s.ready(15_000))) throw new Error('the store did not connect to the cluster');
  return s;
}

/**
 * The route key of a user (the key every script about it names, keys.cjs), spelled out.
 * @param {string} user
 * @param {string} [prefix]
 */
export function userKey(user, prefix = 'socket-lease:') {
  return `${prefix}{${user.replaceAll('}', '') || '_'}}u:${user}`;
}

/**
 * Calls of each command across every master (INFO commandstats, scripts' calls included).
 * @param {import('../../../scripts/redis-cluster.mjs').RedisCluster} cluster
 */
export async function clusterCalls(cluster) {
  /** @type {Record<string, number>} */
  const sum = {};
  for (const port of await cluster.masterPorts()) {
    for (const [name, n] of Object.entries(await commandCalls(cluster.admin(port)))) sum[name] = (sum[name] ?? 0) + n;
  }
  return sum;
}

/**
 * A demo server (`node examples/node/server.mjs`) on the cluster (REDIS_CLUSTER_NODES),
 * killed after the test.
 * @param {import('node:test').TestContext} t
 * @param {import('../../../scripts/redis-cluster.mjs').RedisCluster} cluster
 * @param {Record<string, string>} [env]
 */
export function startClusterNode(t, cluster, env = {}) {
  return startDemo(t, { REDIS_CLUSTER_NODES: cluster.nodesEnv, SOCKET_LEASE_TTL_MS: '3000', SOCKET_LEASE_HEARTBEAT_MS: '500', ...env });
}
