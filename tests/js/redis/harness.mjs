// Real redis-server processes for the tests: each on a free 127.0.0.1 port, in its own
// temp dir, without persistence unless a test asks for AOF; stopped, restarted, paused
// and cleaned up by the test that started it. Never a system Redis.
import { Redis } from 'ioredis';
import { launchRedis } from '../../../scripts/redis-server.mjs';

export { commandCalls } from '../../../scripts/redis-server.mjs';
import { run } from '../node/helpers.mjs';

export { closed, connect, echo, getText, memoryLogger, metric, open, run, waitFor } from '../node/helpers.mjs';

/**
 * @typedef {import('../../../scripts/redis-server.mjs').RedisProcess & { admin: () => Redis }} RedisServer
 *   plus `admin()`: a plain client for assertions (closed after the test)
 */

/**
 * A redis-server (scripts/redis-server.mjs) that lives as long as the test.
 * @param {import('node:test').TestContext} t
 * @param {{ aof?: boolean }} [options]
 * @returns {Promise<RedisServer>}
 */
export async function startRedis(t, options = {}) {
  const redis = await launchRedis(options);
  /** @type {Redis[]} */
  const admins = [];
  t.after(async () => {
    for (const client of admins) client.disconnect();
    await redis.destroy();
  });
  return {
    ...redis,
    admin() {
      const client = new Redis({ port: redis.port, host: '127.0.0.1', lazyConnect: false, maxRetriesPerRequest: 1 });
      client.on('error', () => {});
      admins.push(client);
      return client;
    },
  };
}

/**
 * Live leases of one user as Redis holds them right now (ZCOUNT over the user's set
 * against Redis's own clock).
 * @param {Redis} admin
 * @param {string} userId
 * @param {string} [prefix]
 */
export async function liveLeases(admin, userId, prefix = 'socket-lease:') {
  const [sec, usec] = await admin.time();
  const now = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
  return admin.zcount(`${prefix}u:${userId}`, `(${now}`, '+inf');
}

/**
 * Two (or more) demo servers as separate processes (`node examples/node/server.mjs`)
 * sharing one Redis; killed after the test.
 * @param {import('node:test').TestContext} t
 * @param {RedisServer} redis
 * @param {Record<string, string>} [env]
 */
export function startNode(t, redis, env = {}) {
  return startDemo(t, { REDIS_URL: redis.url, SOCKET_LEASE_TTL_MS: '2000', SOCKET_LEASE_HEARTBEAT_MS: '400', ...env });
}

/**
 * A demo server process (`node examples/node/server.mjs`) on a free port, limit 5, with
 * `env` on top (the store's settings); killed after the test.
 * @param {import('node:test').TestContext} t
 * @param {Record<string, string>} env
 */
export async function startDemo(t, env) {
  const proc = run(t, ['examples/node/server.mjs'], {
    HOST: '127.0.0.1',
    PORT: '0',
    SOCKET_LEASE_LIMIT: '5',
    SOCKET_LEASE_LOG_LEVEL: 'warn',
    ...env,
  });
  const url = await proc.url();
  return { ...proc, url, wsUrl: `${url.replace('http', 'ws')}/ws` };
}

/**
 * A store (one node) torn down after the test, connected before it is returned.
 * @param {import('node:test').TestContext} t
 * @param {{ url: string }} redis
 * @param {import('socket-lease/redis').RedisLeaseStoreOptions} [options]
 */
export async function openStore(t, redis, options = {}) {
  const { createRedisLeaseStore } = await import('socket-lease/redis');
  const s = createRedisLeaseStore({ url: redis.url, logLevel: 'silent', ...options });
  t.after(() => s.close());
  if (!(await s.ready(10_000))) throw new Error('the store did not connect');
  return s;
}
