// What a client and a Worker can rely on: close codes, the heartbeat pair, the echo shape,
// and the JSON error answers. The close codes, their reasons and the refusal bodies are
// every host's (js/lifecycle/protocol.mjs, the one place they are written); this file
// names them for the Cloudflare adapter and adds what only this host has.
import { CLOSE_REASONS, CloseCodes, DEFAULT_MAX_PAYLOAD, STATUS_TEXT, refusal } from '../lifecycle/protocol.mjs';

export { CLOSE_REASONS, CloseCodes, DEFAULT_MAX_PAYLOAD };

/**
 * Close code for a socket whose lease was taken by a newer connection under the
 * `evict-oldest` / `evict-idle` policies. Every host's code, so one client handles all.
 */
export const CLOSE_EVICTED = CloseCodes.EVICTED;

/**
 * Close code for a socket whose lease expired: the peer sent nothing (no message, no
 * heartbeat) for longer than the TTL, or its lease was already gone when it spoke.
 * The client may reconnect at once: its slot is free.
 */
export const CLOSE_LEASE_EXPIRED = CloseCodes.LEASE_EXPIRED;

/**
 * Close code for a socket that sent a message larger than `maxPayload`: the object does
 * not process it, closes the socket and frees its lease at once.
 */
export const CLOSE_MESSAGE_TOO_BIG = CloseCodes.MESSAGE_TOO_BIG;

/**
 * The largest `maxPayload`: 32 MiB, the largest message workerd itself accepts (it
 * closes with 1009 above that before any handler runs; it was 1 MiB before late 2025).
 * A larger setting could never take effect.
 */
export const MAX_MAX_PAYLOAD = 32 * 1024 * 1024;

/**
 * The heartbeat a client sends. The runtime answers it with `HEARTBEAT_PONG` without
 * waking the Durable Object (`setWebSocketAutoResponse`), so it must match byte for byte.
 */
export const HEARTBEAT_PING = '{"type":"ping"}';

/** The runtime's answer to `HEARTBEAT_PING`. */
export const HEARTBEAT_PONG = '{"type":"pong"}';

/** Largest per-user limit: a Durable Object holds at most 32,768 WebSockets. */
export const MAX_SOCKETS_PER_OBJECT = 32768;

// The Worker names the user for the object in this header. Durable Objects are reachable
// only through the Worker's binding, and the Worker always overwrites it, so a client
// cannot choose it. The value is the id percent-encoded (encodeUserId): a header value
// cannot hold control characters (Headers.set throws) and the runtime trims its leading
// and trailing whitespace, while a user id may hold both and must reach the object as the
// same string the Worker routed by.
export const USER_HEADER = 'x-socket-lease-user';

// The Worker's `maxPayload` for the socket being connected, in bytes (digits). Set (or
// removed) by the Worker on every connect, like USER_HEADER, so a client cannot choose
// it; the object keeps it in the socket's attachment.
export const MAX_PAYLOAD_HEADER = 'x-socket-lease-max-payload';

/**
 * The header value for `userId`, or null when the id is not well-formed Unicode (a lone
 * surrogate, which percent-encoding cannot express and no UTF-8 store keeps intact).
 * @param {string} userId
 * @returns {string | null}
 */
export function encodeUserId(userId) {
  try {
    return encodeURIComponent(userId);
  } catch {
    return null;
  }
}

/**
 * The user id carried by a header value from encodeUserId, or null when there is none or
 * it is not percent-encoded UTF-8.
 * @param {string | null} value
 * @returns {string | null}
 */
export function decodeUserId(value) {
  if (!value) return null;
  try {
    return decodeURIComponent(value);
  } catch {
    return null;
  }
}

// The object is addressed only by these internal URLs, so the host's public paths can be
// anything.
export const INTERNAL_ORIGIN = 'https://socket-lease.internal';

/**
 * A JSON answer, never cached (quota answers change from one second to the next).
 * @param {number} status
 * @param {unknown} body
 * @param {Record<string, string>} [headers]
 */
export function json(status, body, headers = {}) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers },
  });
}

/**
 * The stable `reason` of each error `code`: the Node host's names where it has the same
 * answer (`unauthorized`, `invalid-user-id`, `internal-error`, `not-found`), so a client
 * reads `reason` alone whatever the host.
 */
export const ERROR_REASONS = Object.freeze({
  INVALID_USER_ID: 'invalid-user-id',
  MISSING_USER: 'missing-user',
  UNAUTHENTICATED: 'unauthorized',
  ORIGIN_NOT_ALLOWED: 'origin-not-allowed',
  NOT_FOUND: 'not-found',
  METHOD_NOT_ALLOWED: 'method-not-allowed',
  UPGRADE_REQUIRED: 'upgrade-required',
  INVALID_CONFIG: 'invalid-config',
  IDENTITY_ERROR: 'identity-error',
  WRONG_OBJECT: 'wrong-object',
  INTERNAL_ERROR: 'internal-error',
});

/**
 * A `Response` for a refusal built by js/lifecycle/protocol.mjs (`refusal()`).
 * @param {import('../lifecycle/protocol.mjs').Refusal} r
 * @param {Record<string, string>} [headers] more headers (e.g. `allow`)
 */
export function refusalResponse(r, headers = {}) {
  return new Response(r.body, { status: r.status, headers: { ...r.headers, ...headers } });
}

/**
 * An error answer: `{ reason, error, code }`. `reason` is stable and every host's (see
 * ERROR_REASONS); `error` is for people; `code` is this adapter's older stable field, kept.
 * @param {number} status
 * @param {string} code  an ErrorCode, or a core LeaseError code
 * @param {string} error
 * @param {Record<string, string>} [headers]
 */
export function errorAnswer(status, code, error, headers = {}) {
  const reason = /** @type {Record<string, string>} */ (ERROR_REASONS)[code] ?? code.toLowerCase().replaceAll('_', '-');
  const body = { reason, error, code };
  if (Object.hasOwn(STATUS_TEXT, status)) {
    return refusalResponse(refusal(/** @type {import('../lifecycle/protocol.mjs').RefusalStatus} */ (status), body), headers);
  }
  // 405 and 426: not refusals of a lease, but the same shape and headers.
  return json(status, body, headers);
}
