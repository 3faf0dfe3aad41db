// The Worker side: routes `GET /ws` upgrades to the user's Durable Object. Identity comes
// from the host (`userId(request, env)`), never from this module: a real host reads a
// verified session or token, the example reads `?user=` for the demo.
import { originCheck } from '../lifecycle/origin.mjs';
import { ConfigError, readConfig } from './config.mjs';
import { INTERNAL_ORIGIN, MAX_MAX_PAYLOAD, MAX_PAYLOAD_HEADER, USER_HEADER, encodeUserId, errorAnswer } from './protocol.mjs';

/** @typedef {import('./index.js').SocketLeaseWorkerOptions} SocketLeaseWorkerOptions */

// The core refuses longer user ids; checking here first means a bad id never creates an
// object. The core's bound (LeaseRegistry.coreLimits().maxUserIdBytes), kept as a number:
// the Worker's modules load in Node tests without the .wasm, and
// tests/js/cloudflare/protocol.test.mjs holds it to the core's.
const MAX_USER_ID_BYTES = 256;
const utf8 = new TextEncoder();

/** @typedef {(origin: string | null, request: Request) => boolean | Promise<boolean>} OriginCheck */

/**
 * The checked options: `allowedOrigins` compiled, `maxPayload` validated. Computed once
 * per options object (createSocketLeaseWorker does it at start, so a bad option fails the
 * deploy, not a request).
 * @type {WeakMap<SocketLeaseWorkerOptions, { origins: OriginCheck | null, maxPayload: number | undefined }>}
 */
const checkedOptions = new WeakMap();

/**
 * @param {SocketLeaseWorkerOptions} options
 * @throws {TypeError} naming the bad option
 */
function checkOptions(options) {
  let checked = checkedOptions.get(options);
  if (checked) return checked;
  const invalid = (/** @type {string} */ message) => new TypeError(`socket-lease/cloudflare: ${message}`);
  const origins = originCheck(options.allowedOrigins, invalid);
  const { maxPayload } = options;
  if (maxPayload !== undefined && (!Number.isSafeInteger(maxPayload) || maxPayload < 1 || maxPayload > MAX_MAX_PAYLOAD)) {
    throw invalid(`maxPayload must be an integer from 1 to ${MAX_MAX_PAYLOAD} (bytes), got ${String(maxPayload)}`);
  }
  checked = { origins, maxPayload };
  checkedOptions.set(options, checked);
  return checked;
}

/**
 * The check of SOCKET_LEASE_ALLOWED_ORIGINS, compiled once per value (readConfig has
 * validated it).
 * @type {{ key: string, check: OriginCheck | null } | null}
 */
let envOrigins = null;

/** @param {readonly string[] | undefined} list */
function envOriginCheck(list) {
  const key = list === undefined ? '' : list.join(',');
  if (envOrigins?.key !== key) {
    envOrigins = { key, check: originCheck(list, (message) => new ConfigError(message)) };
  }
  return envOrigins.check;
}

/**
 * Whether the upgrade's `Origin` passes every check configured: the option and the env
 * var each restrict, so when both are set an origin must pass both. No check: allowed.
 * @param {Request} request
 * @param {Array<OriginCheck | null>} checks
 */
async function originAllowed(request, checks) {
  const origin = request.headers.get('origin');
  for (const check of checks) {
    if (check && !(await check(origin, request))) return false;
  }
  return true;
}

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
 * @param {number} [maxPayload] for a connect: the socket's limit
 */
function callObject(ns, userId, path, headers, maxPayload) {
  const h = new Headers(headers);
  // Always overwritten: the object trusts this header because only the Worker can set it.
  // Encoded, so any id checkUserId let through is carried exactly (see USER_HEADER).
  h.set(USER_HEADER, /** @type {string} */ (encodeUserId(userId)));
  // Likewise never the client's.
  if (maxPayload === undefined) h.delete(MAX_PAYLOAD_HEADER);
  else h.set(MAX_PAYLOAD_HEADER, String(maxPayload));
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
  if (!user) return errorAnswer(400, 'MISSING_USER', `no user id: use ${usage}`);
  return checkUserId(user);
}

/**
 * @param {unknown} user
 * @returns {Response | null} an error answer, or null when the id is usable
 */
function checkUserId(user) {
  if (typeof user !== 'string' || user === '') {
    return errorAnswer(401, 'UNAUTHENTICATED', 'no user: the host could not identify this request');
  }
  if (utf8.encode(user).length > MAX_USER_ID_BYTES) {
    return errorAnswer(400, 'INVALID_USER_ID', `user id is longer than ${MAX_USER_ID_BYTES} bytes`);
  }
  if (encodeUserId(user) === null) {
    return errorAnswer(400, 'INVALID_USER_ID', 'user id is not well-formed Unicode (it holds a lone surrogate)');
  }
  return null;
}

/**
 * Handles the socket-lease routes of `request`, or returns `null` for any other path so
 * the host can serve it.
 *
 * - `path` (default `/ws`): `GET` with `Upgrade: websocket`; 101 on acceptance, 429 with
 *   `Retry-After` and `{ reason, limit, active }` on refusal (the Node guard's shape);
 *   every other answer is `{ reason, error, code }`: 403 `origin-not-allowed` for an
 *   `Origin` that `allowedOrigins` / SOCKET_LEASE_ALLOWED_ORIGINS does not list (decided
 *   here, before the object is called), 401 without a user, 426 without the upgrade
 *   header, 500 `INVALID_CONFIG` on bad env vars, 500 `IDENTITY_ERROR` when `userId()`
 *   throws.
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
  const checked = checkOptions(options);
  try {
    if (url.pathname === path) {
      if (request.method !== 'GET') return errorAnswer(405, 'METHOD_NOT_ALLOWED', 'use GET', { allow: 'GET' });
      if ((request.headers.get('upgrade') ?? '').toLowerCase() !== 'websocket') {
        return errorAnswer(426, 'UPGRADE_REQUIRED', 'expected a WebSocket upgrade', { upgrade: 'websocket' });
      }
      // Checked before routing so a bad deploy answers clearly without waking objects.
      const config = readConfig(env);
      const ns = namespaceOf(env, binding);
      // Before identity and before the object: a page of another site must cost no quota
      // work, evict nothing and write nothing (see allowedOrigins in index.d.ts).
      let allowed;
      try {
        allowed = await originAllowed(request, [checked.origins, envOriginCheck(config.allowedOrigins)]);
      } catch (e) {
        console.error(JSON.stringify({ event: 'socket-lease.origin-check-error', message: e instanceof Error ? e.message : String(e) }));
        return errorAnswer(500, 'INTERNAL_ERROR', 'allowedOrigins(origin, request) threw');
      }
      if (!allowed) return errorAnswer(403, 'ORIGIN_NOT_ALLOWED', 'this Origin may not open sockets here');
      let user;
      try {
        user = await options.userId(request, env);
      } catch (e) {
        // A host bug or an unreachable identity backend, not an anonymous client: a 401
        // would hide it.
        console.error(JSON.stringify({ event: 'socket-lease.identity-error', message: e instanceof Error ? e.message : String(e) }));
        return errorAnswer(500, 'IDENTITY_ERROR', 'userId(request, env) threw');
      }
      const bad = checkUserId(user);
      if (bad) return bad;
      // Forward the client's upgrade headers; the object answers 101 with the socket.
      const maxPayload = checked.maxPayload ?? config.maxPayload;
      return await callObject(ns, /** @type {string} */ (user), '/connect', request.headers, maxPayload);
    }
    if (options.statsPath && request.method === 'GET' && url.pathname.startsWith(options.statsPath)) {
      const ns = namespaceOf(env, binding);
      let user;
      try {
        user = decodeURIComponent(url.pathname.slice(options.statsPath.length));
      } catch {
        return errorAnswer(400, 'INVALID_USER_ID', 'malformed user id in path');
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
    if (e instanceof ConfigError) return errorAnswer(500, e.code, e.message);
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
  // Bad options fail here, when the Worker's module loads, not on a request.
  checkOptions(options);
  return {
    async fetch(request, env, ctx) {
      const answer = await handleSocketLease(request, env, options);
      if (answer) return answer;
      if (options.fallback) return options.fallback(request, env, ctx);
      return errorAnswer(404, 'NOT_FOUND', 'not found');
    },
  };
}
