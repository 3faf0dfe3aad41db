// The Worker side: routes `GET /ws` upgrades to the user's Durable Object. Identity comes
// from the host (`userId(request, env)`), never from this module: a real host reads a
// verified session or token, the example reads `?user=` for the demo.
import { ConfigError, readConfig } from './config.mjs';
import { INTERNAL_ORIGIN, USER_HEADER, encodeUserId, json } from './protocol.mjs';

/** @typedef {import('./index.js').SocketLeaseWorkerOptions} SocketLeaseWorkerOptions */

// The core refuses longer user ids; checking here first means a bad id never creates an
// object.
const MAX_USER_ID_BYTES = 256;
const utf8 = new TextEncoder();

/**
 * @param {Record<string, unknown>} env
 * @param {string} binding
 * @returns {DurableObjectNamespace}
 */
function namespaceOf(env, binding) {
  const ns = /** @type {any} */ (env)[binding];
  if (!ns || typeof ns.idFromName !== 'function') {
    throw new ConfigError(`the Durable Object binding ${binding} is missing (add it under durable_objects.bindings)`);
  }
  return ns;
}

/**
 * @param {DurableObjectNamespace} ns
 * @param {string} userId
 * @param {string} path
 * @param {HeadersInit} [headers]
 */
function callObject(ns, userId, path, headers) {
  const h = new Headers(headers);
  // Always overwritten: the object trusts this header because only the Worker can set it.
  // Encoded, so any id checkUserId let through is carried exactly (see USER_HEADER).
  h.set(USER_HEADER, /** @type {string} */ (encodeUserId(userId)));
  return ns.get(ns.idFromName(userId)).fetch(`${INTERNAL_ORIGIN}${path}`, { headers: h });
}

/**
 * For the read-only views, where the id is named in the request (not an identity): none
 * named is a malformed request, not a failed authentication.
 * @param {string | null} user
 * @param {string} usage
 * @returns {Response | null}
 */
function checkNamedUser(user, usage) {
  if (!user) return json(400, { error: `no user id: use ${usage}`, code: 'MISSING_USER' });
  return checkUserId(user);
}

/**
 * @param {unknown} user
 * @returns {Response | null} an error answer, or null when the id is usable
 */
function checkUserId(user) {
  if (typeof user !== 'string' || user === '') {
    return json(401, { error: 'no user: the host could not identify this request', code: 'UNAUTHENTICATED' });
  }
  if (utf8.encode(user).length > MAX_USER_ID_BYTES) {
    return json(400, { error: `user id is longer than ${MAX_USER_ID_BYTES} bytes`, code: 'INVALID_USER_ID' });
  }
  if (encodeUserId(user) === null) {
    return json(400, { error: 'user id is not well-formed Unicode (it holds a lone surrogate)', code: 'INVALID_USER_ID' });
  }
  return null;
}

/**
 * Handles the socket-lease routes of `request`, or returns `null` for any other path so
 * the host can serve it.
 *
 * - `path` (default `/ws`): `GET` with `Upgrade: websocket`; 101 on acceptance, 429 with
 *   `Retry-After` and `{ reason, limit, active }` on refusal (the Node guard's shape);
 *   every other answer is `{ error, code }`: 401 without a user, 426 without the upgrade
 *   header, 500 `INVALID_CONFIG` on bad env vars.
 * - `statsPath` (off unless set, e.g. `/api/users/`): `GET <statsPath><userId>` answers that
 *   user's leases as JSON; 400 `MISSING_USER` without an id. Protect it like any admin route.
 * - `metricsPath` (off unless set, e.g. `/metrics`): `GET <metricsPath>?user=<id>` answers
 *   that user's object's Prometheus text; 400 `MISSING_USER` without `?user=`.
 *
 * @param {Request} request
 * @param {Record<string, unknown>} env
 * @param {SocketLeaseWorkerOptions} options
 * @returns {Promise<Response | null>}
 */
export async function handleSocketLease(request, env, options) {
  const url = new URL(request.url);
  const path = options.path ?? '/ws';
  const binding = options.binding ?? 'SOCKET_LEASE';
  try {
    if (url.pathname === path) {
      if (request.method !== 'GET') return json(405, { error: 'use GET', code: 'METHOD_NOT_ALLOWED' }, { allow: 'GET' });
      if ((request.headers.get('upgrade') ?? '').toLowerCase() !== 'websocket') {
        return json(426, { error: 'expected a WebSocket upgrade', code: 'UPGRADE_REQUIRED' }, { upgrade: 'websocket' });
      }
      // Checked before routing so a bad deploy answers clearly without waking objects.
      readConfig(env);
      const ns = namespaceOf(env, binding);
      const user = await options.userId(request, env);
      const bad = checkUserId(user);
      if (bad) return bad;
      // Forward the client's upgrade headers; the object answers 101 with the socket.
      return await callObject(ns, /** @type {string} */ (user), '/connect', request.headers);
    }
    if (options.statsPath && request.method === 'GET' && url.pathname.startsWith(options.statsPath)) {
      const ns = namespaceOf(env, binding);
      let user;
      try {
        user = decodeURIComponent(url.pathname.slice(options.statsPath.length));
      } catch {
        return json(400, { error: 'malformed user id in path', code: 'INVALID_USER_ID' });
      }
      const bad = checkNamedUser(user, `GET ${options.statsPath}<userId>`);
      if (bad) return bad;
      return await callObject(ns, user, '/stats');
    }
    if (options.metricsPath && request.method === 'GET' && url.pathname === options.metricsPath) {
      const ns = namespaceOf(env, binding);
      const user = url.searchParams.get('user');
      const bad = checkNamedUser(user, `GET ${options.metricsPath}?user=<userId>`);
      if (bad) return bad;
      return await callObject(ns, /** @type {string} */ (user), '/metrics');
    }
  } catch (e) {
    if (e instanceof ConfigError) return json(500, { error: e.message, code: e.code });
    throw e;
  }
  return null;
}

/**
 * A complete Worker `fetch` handler: socket-lease routes first, then `options.fallback`
 * (or 404).
 * @param {SocketLeaseWorkerOptions & { fallback?: (request: Request, env: any, ctx: ExecutionContext) => Response | Promise<Response> }} options
 * @returns {{ fetch(request: Request, env: any, ctx: ExecutionContext): Promise<Response> }}
 */
export function createSocketLeaseWorker(options) {
  if (typeof options?.userId !== 'function') {
    throw new TypeError('createSocketLeaseWorker: options.userId(request, env) is required (the host supplies identity)');
  }
  return {
    async fetch(request, env, ctx) {
      const answer = await handleSocketLease(request, env, options);
      if (answer) return answer;
      if (options.fallback) return options.fallback(request, env, ctx);
      return json(404, { error: 'not found', code: 'NOT_FOUND' });
    },
  };
}
