// What a client and a Worker can rely on: close codes, the heartbeat pair, the echo shape,
// and the JSON error answers. Kept in one file so the README, the Node host and the tests
// can name the same values.

/**
 * Close code for a socket whose lease was taken by a newer connection under the
 * `evict-oldest` / `evict-idle` policies. Same code as the Node guard, so one client
 * handles both hosts.
 */
export const CLOSE_EVICTED = 4008;

/**
 * Close code for a socket whose lease expired: the peer sent nothing (no message, no
 * heartbeat) for longer than the TTL, or its lease was already gone when it spoke.
 * The client may reconnect at once: its slot is free.
 */
export const CLOSE_LEASE_EXPIRED = 4009;

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
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers },
  });
}
