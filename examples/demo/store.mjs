// The lease store every demo host uses, from the demo's settings: the in-memory
// LeaseRegistry of this process, or with a Redis URL (or a Redis Cluster's nodes) the store
// shared by every host on that Redis (and prefix). Written once, so each demo only passes the result to its adapter.
import { eventLogger, invalidOption } from 'socket-lease/lifecycle';
import { createRedisLeaseStore } from 'socket-lease/redis';

/**
 * @typedef {object} DemoStoreSettings
 * @property {number} [limit]           per-user limit (default 20)
 * @property {number} [ttlMs]           default 90000
 * @property {'reject' | 'evict-oldest' | 'evict-idle'} [policy]
 * @property {number | null} [globalLimit]
 * @property {import('socket-lease/lifecycle').LogLevel} [logLevel]
 * @property {import('socket-lease/lifecycle').Logger} [logger]
 * @property {string | null} [redisUrl]
 * @property {string[] | null} [redisClusterNodes]  "host:port" of some nodes of a Redis Cluster
 * @property {'closed' | 'open'} [redisFailMode]  default closed
 * @property {string} [redisPrefix]     default socket-lease:
 * @property {number} [redisReadyMs]    how long start-up waits for Redis (default 5000); the fail mode applies after that
 */

/**
 * Adapter options naming the store: `{ store }` (Redis) or `{ registry }` (the adapter
 * creates the LeaseRegistry and logs its events), and the Redis store to close last.
 * @param {DemoStoreSettings} options
 */
export async function demoStore(options) {
  if (!options.redisUrl && !options.redisClusterNodes) {
    return {
      adapterOptions: {
        registry: {
          perUserLimit: options.limit ?? 20,
          ttlMs: options.ttlMs ?? 90_000,
          onLimit: options.policy ?? 'reject',
          globalLimit: options.globalLimit ?? null,
        },
      },
      redisStore: null,
    };
  }
  const redisStore = createRedisLeaseStore({
    ...(options.redisClusterNodes ? { cluster: { nodes: options.redisClusterNodes } } : { url: options.redisUrl ?? undefined }),
    prefix: options.redisPrefix,
    failMode: options.redisFailMode ?? 'closed',
    perUserLimit: options.limit ?? 20,
    ttlMs: options.ttlMs ?? 90_000,
    onLimit: options.policy ?? 'reject',
    globalLimit: options.globalLimit ?? null,
    logger: options.logger,
    logLevel: options.logLevel,
    onEvent: eventLogger({ logger: options.logger, level: options.logLevel }, (m) => invalidOption('socket-lease demo', m)),
  });
  if (!(await redisStore.ready(options.redisReadyMs ?? 5000)) && options.logLevel !== 'silent') {
    const log = options.logger ?? console;
    log.error?.(
      JSON.stringify({
        level: 'error',
        msg: 'Redis not reachable at start-up; serving with the fail mode until it is',
        failMode: options.redisFailMode ?? 'closed',
      }),
    );
  }
  return { adapterOptions: { store: redisStore }, redisStore };
}
