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
// cannot choose it.
export const USER_HEADER = 'x-socket-lease-user';

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
