// The demo's HTTP side and echo protocol, written once for every demo host (Node + ws,
// Bun, Deno, crossws, Socket.IO). Fetch-style: `app.fetch(request)` answers the routes
// below with a `Response`; each host serves it in its own way and puts its WebSocket
// adapter on `/ws`. Uses node:fs and node:path only for the static files, which Node,
// Bun and Deno all provide.
//
//   GET /metrics            (admin) Prometheus text: the store's series and the host's
//   GET /healthz            counts, never an error: the incident's health check failed when needed
//   GET /api/users/:id      (admin) one user's leases, open sockets and last refusal
//   GET /ws                 426: this path speaks WebSocket
//   GET /, /pkg/, /js/      www/, and read-only the package's build so the page can load it
import { realpath, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Application-level heartbeat shared with the Workers adapter (js/cloudflare/protocol.mjs). */
export const HEARTBEAT_PING = '{"type":"ping"}';
export const HEARTBEAT_PONG = '{"type":"pong"}';

/**
 * The demo's answer to one text message: the heartbeat's pong, or the echo.
 * @param {string} text
 * @param {string | undefined} leaseId
 */
export function echoReply(text, leaseId) {
  // The Workers adapter's hibernation-friendly heartbeat; answering it here lets one
  // client heartbeat against every host (hosts that can also ping at the protocol level).
  if (text === HEARTBEAT_PING) return HEARTBEAT_PONG;
  return JSON.stringify({ type: 'echo', data: text, leaseId });
}

/** The reply to a binary message, which the demo does not echo. @param {string | undefined} leaseId */
export function binaryReply(leaseId) {
  return JSON.stringify({ type: 'error', error: 'only text messages are echoed', leaseId });
}

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
 * What the routes need from the host: the guard of `socket-lease/node` has exactly this,
 * and every other demo host exposes the same from its adapter.
 * @typedef {object} DemoHost
 * @property {() => Promise<string>} metrics
 * @property {() => { socketsOpen: number }} stats
 * @property {() => Iterable<unknown>} sockets
 * @property {(socket: any) => string | undefined} userIdOf
 * @property {(userId: string) => unknown} lastRefusal
 */

/**
 * `transport` is what the host's sockets speak, reported in /healthz so that the page's
 * live tab knows how to connect: 'websocket' (`/ws?user=<id>`, every host but one) or
 * 'socket.io' (`/socket.io/`, examples/socketio/server.mjs).
 * @param {{ host: DemoHost, store: any, adminToken?: string | null, isClosing: () => boolean, startedAt?: number, transport?: 'websocket' | 'socket.io' }} options
 */
export function createDemoApp({ host, store, adminToken = null, isClosing, startedAt = Date.now(), transport = 'websocket' }) {
  const adminHeader = adminToken === null ? null : `Bearer ${adminToken}`;

  /**
   * The admin routes (/metrics, /api/users/:id) show who is connected and how often:
   * with a token set, only a request carrying it sees them.
   * @param {Request} request
   */
  function admitted(request) {
    return adminHeader === null || constantTimeEqual(request.headers.get('authorization') ?? '', adminHeader);
  }

  /**
   * @param {Request} request
   * @returns {Promise<Response>}
   */
  async function route(request) {
    const url = new URL(request.url);
    const pathname = url.pathname;
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      return json(request, 405, { error: 'method not allowed' }, { allow: 'GET, HEAD' });
    }
    if ((pathname === '/metrics' || pathname.startsWith('/api/users/')) && !admitted(request)) {
      return json(
        request,
        401,
        { error: 'this admin route needs Authorization: Bearer <SOCKET_LEASE_ADMIN_TOKEN>' },
        { 'www-authenticate': 'Bearer realm="socket-lease admin"' },
      );
    }
    if (pathname === '/metrics') {
      // Read before the status line goes out: a store whose metrics() rejects must give a
      // 500, not a 200 cut short that a scraper could half-parse.
      const text = await host.metrics();
      return new Response(request.method === 'HEAD' ? null : text, {
        headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'cache-control': 'no-store' },
      });
    }
    if (pathname === '/healthz') {
      // Counts, not an error: the incident's health endpoint failed exactly when needed.
      const s = typeof store.stats === 'function' ? await store.stats() : {};
      const closing = isClosing();
      return json(request, closing ? 503 : 200, {
        status: closing ? 'shutting-down' : 'ok',
        activeLeases: s.active,
        users: s.users,
        socketsOpen: host.stats().socketsOpen,
        uptimeMs: Date.now() - startedAt,
        transport,
        // A shared store: whether Redis is usable, and this host's id in it.
        ...(s.redis ? { redis: s.redis, nodeId: s.nodeId } : {}),
      });
    }
    if (pathname.startsWith('/api/users/')) {
      let userId;
      try {
        userId = decodeURIComponent(pathname.slice('/api/users/'.length));
      } catch {
        return json(request, 400, { error: 'malformed user id' });
      }
      if (typeof store.userStats !== 'function') return json(request, 501, { error: 'the store has no per-user view' });
      let stats;
      try {
        stats = await store.userStats(userId, Date.now());
      } catch (err) {
        if (/** @type {any} */ (err)?.code === 'INVALID_USER_ID') return json(request, 400, { error: String(/** @type {Error} */ (err).message) });
        if (/** @type {any} */ (err)?.code === 'REDIS_UNAVAILABLE') return json(request, 503, { error: 'the lease store (Redis) is unavailable' });
        throw err;
      }
      let socketsOpen = 0;
      for (const ws of host.sockets()) if (host.userIdOf(ws) === userId) socketsOpen++;
      return json(request, 200, {
        userId,
        active: stats.active,
        limit: stats.limit,
        socketsOpen,
        // What this host last answered the user's refused upgrade (a browser cannot read
        // the 429 itself), or null.
        lastRefusal: host.lastRefusal(userId),
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
      return json(request, 426, { error: 'this endpoint speaks WebSocket: ws://HOST:PORT/ws?user=<id>' });
    }
    return serveStatic(request, pathname);
  }

  return {
    /**
     * Answers one HTTP request (never an upgrade: the host routes `/ws` upgrades to its
     * adapter first). A failure is a 500 and one error line, never a crash.
     * @param {Request} request
     * @returns {Promise<Response>}
     */
    async fetch(request) {
      try {
        return await route(request);
      } catch (err) {
        console.error(JSON.stringify({ level: 'error', msg: 'request failed', url: request.url, error: String(err) }));
        return json(request, 500, { error: 'internal error' });
      }
    },
  };
}

/**
 * @param {Request} request
 * @param {number} status
 * @param {unknown} body
 * @param {Record<string, string>} [headers]
 */
function json(request, status, body, headers = {}) {
  const payload = JSON.stringify(body);
  return new Response(request.method === 'HEAD' ? null : payload, {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers },
  });
}

/**
 * Compares two strings in time that does not depend on where they differ, so a token
 * cannot be guessed a character at a time.
 * @param {string} a
 * @param {string} b
 */
function constantTimeEqual(a, b) {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < y.length; i++) diff |= (x[i] ?? 0) ^ y[i];
  return diff === 0;
}

/**
 * Read-only files from the mounts; anything resolving outside its folder (`..`,
 * symlinks) is a 404, as is a folder without index.html.
 * @param {Request} request
 * @param {string} pathname
 */
async function serveStatic(request, pathname) {
  let decoded;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    return json(request, 400, { error: 'malformed path' });
  }
  if (decoded.includes('\0')) return json(request, 400, { error: 'malformed path' });
  const mount = STATIC_MOUNTS.find(([prefix]) => decoded.startsWith(prefix));
  if (!mount) return json(request, 404, { error: 'not found' });
  const base = path.join(ROOT, mount[1]);
  let file = path.join(base, decoded.slice(mount[0].length));
  try {
    const baseReal = await realpath(base);
    file = await realpath(file);
    if ((await stat(file)).isDirectory()) file = await realpath(path.join(file, 'index.html'));
    if (file !== baseReal && !file.startsWith(baseReal + path.sep)) return json(request, 404, { error: 'not found' });
    const info = await stat(file);
    if (!info.isFile()) return json(request, 404, { error: 'not found' });
    const headers = {
      'content-type': CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream',
      'content-length': String(info.size),
      'cache-control': 'no-cache',
      'x-content-type-options': 'nosniff',
    };
    // The demo's files are small (the largest is the .wasm, ~150 KB): read whole.
    return new Response(request.method === 'HEAD' ? null : await readFile(file), { headers });
  } catch (err) {
    const code = /** @type {NodeJS.ErrnoException} */ (err).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return json(request, 404, { error: 'not found' });
    throw err;
  }
}
