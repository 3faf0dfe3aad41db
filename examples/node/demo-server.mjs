// The demo host: one HTTP server with the socket-lease guard on `/ws`, an echo handler,
// metrics, health, a per-user view for the demo page, and static files. `server.mjs` is
// its command line; tests and the benchmark start it in-process through createDemoServer.
import http from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createEventLogger, createLeaseGuard } from 'socket-lease/node';
import { createRedisLeaseStore } from 'socket-lease/redis';

/** Application-level heartbeat shared with the Workers adapter (js/cloudflare/protocol.mjs). */
const HEARTBEAT_PING = '{"type":"ping"}';
const HEARTBEAT_PONG = '{"type":"pong"}';

const ROOT = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));

// URL prefix -> folder. /pkg/ and /js/ let the browser page load the package's own
// browser build; nothing else of the repository is reachable.
const STATIC_MOUNTS = /** @type {const} */ ([
  ['/pkg/', 'pkg'],
  ['/js/', 'js'],
  ['/', 'www'],
]);

/** @type {Record<string, string>} */
const CONTENT_TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.cjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.ts': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
};

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
  // With a Redis URL the quota holds across every host sharing that Redis (and prefix).
  const redisStore =
    options.redisUrl && !options.guard?.store
      ? createRedisLeaseStore({
          url: options.redisUrl,
          prefix: options.redisPrefix,
          failMode: options.redisFailMode ?? 'closed',
          perUserLimit: options.limit ?? 20,
          ttlMs: options.ttlMs ?? 90_000,
          onLimit: options.policy ?? 'reject',
          globalLimit: options.globalLimit ?? null,
          logger: options.logger,
          logLevel: options.logLevel,
          onEvent: createEventLogger({ logger: options.logger, level: options.logLevel }),
        })
      : null;
  if (redisStore && !(await redisStore.ready(options.redisReadyMs ?? 5000))) {
    const log = options.logger ?? console;
    if (options.logLevel !== 'silent') {
      log.error?.(JSON.stringify({ level: 'error', msg: 'Redis not reachable at start-up; serving with the fail mode until it is', failMode: options.redisFailMode ?? 'closed' }));
    }
  }
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
    ...(options.guard?.store
      ? {}
      : redisStore
        ? { store: redisStore }
        : {
          registry: {
            perUserLimit: options.limit ?? 20,
            ttlMs: options.ttlMs ?? 90_000,
            onLimit: options.policy ?? 'reject',
            globalLimit: options.globalLimit ?? null,
          },
        }),
    ...options.guard,
  });
  const store = /** @type {any} */ (guard.store);

  guard.wss.on('connection', (ws) => {
    // The lease belongs to the socket; messages only read its id, never acquire.
    const leaseId = guard.leaseIdOf(ws);
    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        ws.send(JSON.stringify({ type: 'error', error: 'only text messages are echoed', leaseId }));
        return;
      }
      // A client that never reads makes every reply queue here: past maxBufferedBytes the
      // guard closes its socket (4010) and the echo stops serving it.
      if (!guard.writable(ws)) return;
      const text = data.toString();
      // The Workers adapter's hibernation-friendly heartbeat; answering it here lets one
      // client heartbeat against both hosts (this host also pings at the protocol level).
      if (text === HEARTBEAT_PING) {
        ws.send(HEARTBEAT_PONG);
        return;
      }
      ws.send(JSON.stringify({ type: 'echo', data: text, leaseId }));
    });
  });

  const server = http.createServer((req, res) => {
    route(req, res).catch((err) => {
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.destroy();
      console.error(JSON.stringify({ level: 'error', msg: 'request failed', url: req.url, error: String(err) }));
    });
  });
  guard.attach(server, { path: '/ws' });

  let closing = false;
  const adminToken = options.adminToken ?? null;
  const adminHeader = adminToken === null ? null : `Bearer ${adminToken}`;

  /**
   * The admin routes (/metrics, /api/users/:id) show who is connected and how often: with
   * a token set, only a request carrying it sees them.
   * @param {http.IncomingMessage} req
   */
  function admitted(req) {
    return adminHeader === null || timingSafeEqualText(req.headers.authorization ?? '', adminHeader);
  }

  /**
   * @param {http.IncomingMessage} req
   * @param {http.ServerResponse} res
   */
  async function route(req, res) {
    const url = new URL(req.url ?? '/', 'http://demo');
    const pathname = url.pathname;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return sendJson(res, 405, { error: 'method not allowed' });
    }
    if ((pathname === '/metrics' || pathname.startsWith('/api/users/')) && !admitted(req)) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="socket-lease admin"');
      return sendJson(res, 401, { error: 'this admin route needs Authorization: Bearer <SOCKET_LEASE_ADMIN_TOKEN>' });
    }
    if (pathname === '/metrics') {
      // Read before the status line goes out: a store whose metrics() rejects must give a
      // 500 (route's catch), not a 200 cut short that a scraper could half-parse.
      const text = await guard.metrics();
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : text);
      return;
    }
    if (pathname === '/healthz') {
      // Counts, not an error: the incident's health endpoint failed exactly when needed.
      const s = typeof store.stats === 'function' ? await store.stats() : {};
      const g = guard.stats();
      return sendJson(res, closing ? 503 : 200, {
        status: closing ? 'shutting-down' : 'ok',
        activeLeases: s.active,
        users: s.users,
        socketsOpen: g.socketsOpen,
        uptimeMs: Date.now() - startedAt,
        // A shared store: whether Redis is usable, and this host's id in it.
        ...(s.redis ? { redis: s.redis, nodeId: s.nodeId } : {}),
      });
    }
    if (pathname.startsWith('/api/users/')) {
      let userId;
      try {
        userId = decodeURIComponent(pathname.slice('/api/users/'.length));
      } catch {
        return sendJson(res, 400, { error: 'malformed user id' });
      }
      if (typeof store.userStats !== 'function') return sendJson(res, 501, { error: 'the store has no per-user view' });
      let stats;
      try {
        stats = await store.userStats(userId, Date.now());
      } catch (err) {
        if (/** @type {any} */ (err)?.code === 'INVALID_USER_ID') return sendJson(res, 400, { error: String(/** @type {Error} */ (err).message) });
        if (/** @type {any} */ (err)?.code === 'REDIS_UNAVAILABLE') return sendJson(res, 503, { error: 'the lease store (Redis) is unavailable' });
        throw err;
      }
      let socketsOpen = 0;
      for (const ws of guard.sockets()) if (guard.userIdOf(ws) === userId) socketsOpen++;
      return sendJson(res, 200, {
        userId,
        active: stats.active,
        limit: stats.limit,
        socketsOpen,
        // What this host last answered the user's refused upgrade (a browser cannot read
        // the 429 itself), or null.
        lastRefusal: guard.lastRefusal(userId),
        leases: stats.leases.map((/** @type {import('socket-lease').Lease} */ l) => ({
          id: l.id,
          runId: l.runId,
          threadId: l.threadId,
          acquiredAt: l.acquiredAt,
          touchedAt: l.touchedAt,
          expiresAt: l.expiresAt,
        })),
      });
    }
    if (pathname === '/ws') {
      // A plain GET on the WebSocket path: say what it is instead of a 404.
      return sendJson(res, 426, { error: 'this endpoint speaks WebSocket: ws://HOST:PORT/ws?user=<id>' });
    }
    return serveStatic(req, res, pathname);
  }

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

/**
 * Compares two strings in time that does not depend on where they differ, so a token
 * cannot be guessed a character at a time.
 * @param {string} a
 * @param {string} b
 */
function timingSafeEqualText(a, b) {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * @param {http.ServerResponse} res
 * @param {number} status
 * @param {unknown} body
 */
function sendJson(res, status, body) {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(payload),
    'Cache-Control': 'no-store',
  });
  res.end(res.req.method === 'HEAD' ? undefined : payload);
}

/**
 * Read-only files from the mounts; anything resolving outside its folder (`..`,
 * symlinks) is a 404, as is a folder without index.html.
 * @param {http.IncomingMessage} req
 * @param {http.ServerResponse} res
 * @param {string} pathname
 */
async function serveStatic(req, res, pathname) {
  let decoded;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    return sendJson(res, 400, { error: 'malformed path' });
  }
  if (decoded.includes('\0')) return sendJson(res, 400, { error: 'malformed path' });
  const mount = STATIC_MOUNTS.find(([prefix]) => decoded.startsWith(prefix));
  if (!mount) return sendJson(res, 404, { error: 'not found' });
  const base = path.join(ROOT, mount[1]);
  let file = path.join(base, decoded.slice(mount[0].length));
  try {
    const baseReal = await realpath(base);
    file = await realpath(file);
    if ((await stat(file)).isDirectory()) file = await realpath(path.join(file, 'index.html'));
    if (file !== baseReal && !file.startsWith(baseReal + path.sep)) return sendJson(res, 404, { error: 'not found' });
    const info = await stat(file);
    if (!info.isFile()) return sendJson(res, 404, { error: 'not found' });
    res.writeHead(200, {
      'Content-Type': CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream',
      'Content-Length': info.size,
      'Cache-Control': 'no-cache',
      'X-Content-Type-Options': 'nosniff',
    });
    if (req.method === 'HEAD') return void res.end();
    createReadStream(file).on('error', () => res.destroy()).pipe(res);
  } catch (err) {
    const code = /** @type {NodeJS.ErrnoException} */ (err).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return sendJson(res, 404, { error: 'not found' });
    throw err;
  }
}
