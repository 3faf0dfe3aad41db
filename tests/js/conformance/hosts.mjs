// The hosts the conformance suite runs against. Everything host-specific lives here; the
// cases (conformance.test.mjs) only read these fields. To add a host (Bun, Deno,
// crossws, ...), add a descriptor: a command that starts it with the contract's env vars
// (HOST, PORT=0, SOCKET_LEASE_*, REDIS_URL) and prints
// `socket-lease demo listening on http://127.0.0.1:PORT` as its first stdout line, and
// say how it heartbeats, where its metrics are, and what it cannot do (with why).
// CONFORMANCE_HOSTS=node,cloudflare runs a subset.
import { launchRedis } from '../../../scripts/redis-server.mjs';

/**
 * Something a case needs that a host may lack. Each has the reason in `cannot`, and the
 * case is skipped on that host with the reason in the test output.
 * - graceful-shutdown: SIGTERM closes every socket with 1001, releases, exits 0 (case 9)
 * - admin-token: SOCKET_LEASE_ADMIN_TOKEN guards /metrics and /api/users/:id (case 12)
 * - bounded-send-buffer: a peer that never reads is cut off (case 8)
 * - rss-measurement: the host's memory can be read from /proc/<pid> and its descendants
 *   (case 8 still checks the cut-off without it)
 * @typedef {'graceful-shutdown' | 'admin-token' | 'bounded-send-buffer' | 'rss-measurement'} Capability
 */

/**
 * @typedef {object} HostDescriptor
 * @property {string} name
 * @property {string[]} command  argv, run from the repository root, in its own process group
 * @property {Record<string, string>} [env]  added to every start
 * @property {() => Promise<{ env: Record<string, string>, dispose: () => Promise<void> }>} [resources]
 *   started once before the host's cases (e.g. a redis-server), its env added to every
 *   start, disposed after them even when they fail
 * @property {(startIndex: number) => Record<string, string>} [startEnv]  added to one start
 *   (e.g. a fresh Redis key prefix, so cases sharing a Redis never see each other's leases)
 * @property {Record<string, string>} [unsupportedEnv]  contract variables never passed to
 *   this host, with why
 * @property {{ style: 'protocol' } | { style: 'application', everyMs: (ttlMs: number) => number }} heartbeat
 *   protocol: the host pings (SOCKET_LEASE_HEARTBEAT_MS) and the client answers pongs; a
 *   silent peer is one with autoPong off. application: the client must send the text
 *   {"type":"ping"} (every `everyMs(ttl)`); a silent peer is one that sends nothing
 * @property {'global' | 'per-user'} metrics  global: GET /metrics covers the host;
 *   per-user: GET /metrics?user=<id> covers one user
 * @property {boolean} healthz  GET /healthz is served
 * @property {boolean} sharedStore  leases live outside the process (Redis): after a
 *   shutdown they are checked through a second host started on the same store
 * @property {Partial<Record<Capability, string>>} cannot  what this host cannot do, and why
 */

const NODE_DEMO = [process.execPath, 'examples/node/server.mjs'];

/** @type {HostDescriptor[]} */
const ALL_HOSTS = [
  {
    name: 'node',
    command: NODE_DEMO,
    heartbeat: { style: 'protocol' },
    metrics: 'global',
    healthz: true,
    sharedStore: false,
    cannot: {},
  },
  {
    name: 'node-redis',
    command: NODE_DEMO,
    resources: async () => {
      const redis = await launchRedis();
      return { env: { REDIS_URL: redis.url }, dispose: () => redis.destroy() };
    },
    startEnv: (i) => ({ SOCKET_LEASE_REDIS_PREFIX: `conformance-${process.pid}-${i}:` }),
    heartbeat: { style: 'protocol' },
    metrics: 'global',
    healthz: true,
    sharedStore: true,
    cannot: {},
  },
  {
    // examples/deno/server.mjs under the Deno the devDependencies install, with the
    // permissions of `npm run start:deno`. Deno pings (idleTimeout = 2 x heartbeat, set by
    // socket-lease/deno) and closes a peer that does not answer: a pinging host.
    name: 'deno',
    command: [
      decodeURIComponent(new URL('../../../node_modules/.bin/deno', import.meta.url).pathname),
      'run',
      '--allow-net=127.0.0.1,0.0.0.0,localhost,[::1]',
      '--allow-read=.',
      '--allow-env',
      'examples/deno/server.mjs',
    ],
    heartbeat: { style: 'protocol' },
    metrics: 'global',
    healthz: true,
    sharedStore: false,
    cannot: {},
  },
  {
    name: 'cloudflare',
    command: [process.execPath, 'tests/js/conformance/launch-cloudflare.mjs'],
    unsupportedEnv: {
      SOCKET_LEASE_HEARTBEAT_MS:
        'refused by js/cloudflare/config.mjs (500 INVALID_CONFIG): a Durable Object cannot ping without waking; clients send {"type":"ping"}',
    },
    // docs/cloudflare.md: heartbeating peers use TTL/8.
    heartbeat: { style: 'application', everyMs: (ttlMs) => Math.max(100, Math.floor(ttlMs / 8)) },
    metrics: 'per-user',
    healthz: false,
    sharedStore: false,
    cannot: {
      'graceful-shutdown':
        'workerd has no shutdown hook for a Durable Object: disposing the runtime drops every socket without a close frame (1006), so no 1001 can be sent',
      'bounded-send-buffer':
        'a Workers WebSocket has no bufferedAmount (send() only enqueues; @cloudflare/workers-types), so the object cannot see that a peer does not read. ' +
        "Measured in local workerd: it kept reading a never-reading peer's 128 MiB of messages and queued every echo (launcher + workerd RSS +306 MiB), and never closed the connection",
      'admin-token':
        'js/cloudflare/config.mjs knows no SOCKET_LEASE_ADMIN_TOKEN; the example\'s /api/users/ and /metrics are unauthenticated ("protect them like admin routes", docs/cloudflare.md)',
    },
  },
  {
    // socket-lease/crossws hooks on srvx + crossws's Node adapter (examples/crossws/server.mjs).
    name: 'crossws',
    command: [process.execPath, 'examples/crossws/server.mjs'],
    heartbeat: { style: 'protocol' },
    metrics: 'global',
    healthz: true,
    sharedStore: false,
    cannot: {},
  },
  {
    // socket-lease/bun on Bun.serve (examples/bun/server.mjs); the adapter pings (docs/bun.md).
    name: 'bun',
    command: ['node_modules/.bin/bun', 'examples/bun/server.mjs'],
    heartbeat: { style: 'protocol' },
    metrics: 'global',
    healthz: true,
    sharedStore: false,
    cannot: {},
  },
];

const only = process.env.CONFORMANCE_HOSTS?.split(',')
  .map((s) => s.trim())
  .filter(Boolean);
if (only) {
  const unknown = only.filter((n) => !ALL_HOSTS.some((h) => h.name === n));
  if (unknown.length > 0) throw new Error(`CONFORMANCE_HOSTS names unknown hosts: ${unknown.join(', ')} (known: ${ALL_HOSTS.map((h) => h.name).join(', ')})`);
}

/** The hosts to run: all, or those CONFORMANCE_HOSTS names. */
export const HOSTS = only ? ALL_HOSTS.filter((h) => only.includes(h.name)) : ALL_HOSTS;
