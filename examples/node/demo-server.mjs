// The Node demo host: one HTTP server with the socket-lease guard (ws) on `/ws` and the
// demo's shared HTTP routes (examples/demo/app.mjs: metrics, health, the per-user view,
// static files). `server.mjs` is its command line; tests and the benchmark start it
// in-process through createDemoServer.
import http from 'node:http';
import { createLeaseGuard } from 'socket-lease/node';
import { binaryReply, createDemoApp, echoReply } from '../demo/app.mjs';
import { demoStore } from '../demo/store.mjs';
import { serveFetch } from '../demo/node-http.mjs';

/**
 * @typedef {object} DemoServerOptions
 * @property {string} [host]            default 127.0.0.1
 * @property {number} [port]            default 0 (a free port)
 * @property {number} [limit]           per-user limit (default 20)
 * @property {number} [ttlMs]           default 90000
 * @property {number} [heartbeatMs]     default 30000
 * @property {'reject' | 'evict-oldest' | 'evict-idle'} [policy]
 * @property {number | null} [globalLimit]
 * @property {import('socket-lease/node').LogLevel} [logLevel]
 * @property {import('socket-lease/node').GuardLogger} [logger]
 * @property {string | null} [redisUrl]  share leases through this Redis (socket-lease/redis) instead of an in-memory registry
 * @property {'closed' | 'open'} [redisFailMode]  default closed
 * @property {string} [redisPrefix]     default socket-lease:
 * @property {number} [redisReadyMs]    how long start-up waits for Redis (default 5000); the fail mode applies after that
 * @property {string[]} [allowedOrigins] origins allowed to open sockets (default: any)
 * @property {number} [maxPayload]      largest message in bytes (default 65536); larger frames are closed with 1009
 * @property {number} [maxBufferedBytes] unsent bytes a socket may queue before it is closed with 4010 (default 1048576)
 * @property {string | null} [adminToken] when set, /metrics and /api/users/:id need `Authorization: Bearer <token>`
 * @property {Partial<import('socket-lease/node').LeaseGuardOptions>} [guard]  extra guard options (tests: sweepMs, clock, store, ...)
 */

/**
 * @typedef {object} DemoServer
 * @property {http.Server} server
 * @property {import('socket-lease/node').LeaseGuard} guard
 * @property {string} url            http://host:port
 * @property {string} wsUrl          ws://host:port/ws
 * @property {() => Promise<DemoStats>} close   releases everything and stops listening
 */

/**
 * @typedef {object} DemoStats
 * @property {import('socket-lease/node').GuardStats} guard
 * @property {unknown} store
 */

/**
 * @param {DemoServerOptions} [options]
 * @returns {Promise<DemoServer>}
 */
export async function createDemoServer(options = {}) {
  const startedAt = Date.now();
  const { adapterOptions, redisStore } = options.guard?.store ? { adapterOptions: {}, redisStore: null } : await demoStore(options);
  const guard = createLeaseGuard({
    // Demo identity only: a real host derives the user from its authentication (a
    // session cookie or a verified token), never from a query parameter.
    userId: (req) => new URL(req.url ?? '/', 'http://demo').searchParams.get('user'),
    heartbeatMs: options.heartbeatMs ?? 30_000,
    allowedOrigins: options.allowedOrigins,
    maxPayload: options.maxPayload,
    maxBufferedBytes: options.maxBufferedBytes,
    logger: options.logger,
    logLevel: options.logLevel,
    ...adapterOptions,
    ...options.guard,
  });
  const store = /** @type {any} */ (guard.store);

  guard.wss.on('connection', (ws) => {
    // The lease belongs to the socket; messages only read its id, never acquire.
    const leaseId = guard.leaseIdOf(ws);
    ws.on('message', (data, isBinary) => {
      // A client that never reads makes every reply queue here: past maxBufferedBytes the
      // guard closes its socket (4010) and the echo stops serving it.
      if (!guard.writable(ws)) return;
      ws.send(isBinary ? binaryReply(leaseId) : echoReply(data.toString(), leaseId));
    });
  });

  let closing = false;
  const app = createDemoApp({ host: guard, store, adminToken: options.adminToken ?? null, isClosing: () => closing, startedAt });
  const server = http.createServer((req, res) => void serveFetch(app.fetch, req, res));
  guard.attach(server, { path: '/ws' });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.removeListener('error', reject);
      resolve(undefined);
    });
  });
  const address = /** @type {import('node:net').AddressInfo} */ (server.address());
  const hostForUrl = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${hostForUrl}:${address.port}`;

  /** @type {Promise<DemoStats> | null} */
  let closed = null;
  function close() {
    closed ??= (async () => {
      closing = true;
      const stopped = new Promise((resolve) => server.close(() => resolve(undefined)));
      await guard.close();
      // Keep-alive HTTP connections would hold server.close() open.
      server.closeAllConnections();
      await stopped;
      const stats = { guard: guard.stats(), store: typeof store.stats === 'function' ? await store.stats() : null };
      await redisStore?.close();
      return stats;
    })();
    return closed;
  }

  return { server, guard, url, wsUrl: `ws://${hostForUrl}:${address.port}/ws`, close };
}
