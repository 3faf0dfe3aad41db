// What a client can rely on from every socket-lease host, whatever runtime serves it: the
// close codes, the reasons sent with them, the refusal answers (status, Retry-After, JSON
// body) and the default bounds. Written once here; the Node, Bun, Deno, crossws and
// Cloudflare adapters all answer with these values, so one client handles every host.
//
// Runtime-neutral: no `node:` import, nothing but the language.

/** Close codes a host sends. A quota decision is never a 1011 ("internal error"). */
export const CloseCodes = Object.freeze({
  /** The server is shutting down (`close()`); reconnect later, possibly to another node. */
  GOING_AWAY: /** @type {1001} */ (1001),
  /** A frame was larger than `maxPayload`. Sent by the runtime's own frame parser. */
  MESSAGE_TOO_BIG: /** @type {1009} */ (1009),
  /** The lease was evicted (`evict-oldest` / `evict-idle`) for a newer connection of the user. */
  EVICTED: /** @type {4008} */ (4008),
  /** The lease expired or the store no longer knows it (touch refused, sweep, reclaimed): reconnect. */
  LEASE_EXPIRED: /** @type {4009} */ (4009),
  /** The peer does not read: more than `maxBufferedBytes` waited unsent, so the host stopped serving it. */
  BACKPRESSURE: /** @type {4010} */ (4010),
  /**
   * The upgrade was admitted, but when the host's checks had passed and the eviction was
   * to be made, the user's slot was gone (another connection won it in between). Rare;
   * the reason carries when to retry, as a 429 would.
   */
  LIMIT_REACHED: /** @type {4029} */ (4029),
});

/** @typedef {typeof CloseCodes[keyof typeof CloseCodes]} CloseCode */

/**
 * Reasons travel in the close frame (at most 123 bytes of UTF-8); clients may show them.
 * @type {Readonly<Record<CloseCode, string>>}
 */
export const CLOSE_REASONS = Object.freeze({
  [CloseCodes.GOING_AWAY]: 'server shutting down',
  [CloseCodes.MESSAGE_TOO_BIG]: 'message too big',
  [CloseCodes.EVICTED]: 'lease evicted: a newer connection of this user took the slot',
  [CloseCodes.LEASE_EXPIRED]: 'lease expired or revoked; reconnect',
  [CloseCodes.BACKPRESSURE]: 'too much unread data: the client is not reading',
  [CloseCodes.LIMIT_REACHED]: 'connection limit reached; retry later',
});

/**
 * Default largest message a host accepts: 64 KiB. Chat and control messages are a few
 * hundred bytes to a few KiB; 64 KiB leaves room for a pasted document or a batch of
 * events, while the runtime never has to assemble more than that per socket (ws's own
 * default, 100 MiB, let one client kill the demo with a 90 MB frame). Larger payloads
 * belong on HTTP uploads, not in a frame. Past it the runtime closes with 1009.
 */
export const DEFAULT_MAX_PAYLOAD = 64 * 1024;

/**
 * Default bound on data waiting unsent to one socket: 1 MiB, sixteen full-size messages.
 * A client that never reads makes every send queue in the server's memory; past this the
 * host stops serving the socket and closes it with 4010 (terminating it if the close
 * cannot be delivered either), so a thousand such clients cost at most about 1 GiB.
 */
export const DEFAULT_MAX_BUFFERED = 1024 * 1024;

/** Status texts for the refusals a host answers. */
export const STATUS_TEXT = Object.freeze({
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
});

/** @typedef {keyof typeof STATUS_TEXT} RefusalStatus */

/**
 * A refused upgrade, before any WebSocket exists: what the adapter writes in its
 * runtime's way (a raw HTTP response on Node, a `Response` elsewhere).
 * @typedef {object} Refusal
 * @property {false} ok
 * @property {RefusalStatus} status
 * @property {string} reason        also in the body; stable, for clients and metrics
 * @property {Record<string, string>} headers   lower-case names
 * @property {string} body          JSON
 * @property {string | null} userId  the user, when identity had named one
 * @property {number | null} retryAfterMs  when a retry can succeed (429, 503), as the store
 *   said, before rounding to the whole seconds of Retry-After; null otherwise
 */

/**
 * Builds a refusal. `retryAfterMs` (for 429 and 503) becomes `Retry-After` in whole
 * seconds, at least 1: HTTP has no finer unit, and 0 would invite a retry loop.
 * @param {RefusalStatus} status
 * @param {{ reason: string } & Record<string, unknown>} body
 * @param {number} [retryAfterMs]
 * @param {string | null} [userId]
 * @returns {Refusal}
 */
export function refusal(status, body, retryAfterMs, userId = null) {
  /** @type {Record<string, string>} */
  const headers = { 'content-type': 'application/json', 'cache-control': 'no-store' };
  if (retryAfterMs !== undefined) headers['retry-after'] = String(retryAfterSeconds(retryAfterMs));
  return { ok: false, status, reason: body.reason, headers, body: JSON.stringify(body), userId, retryAfterMs: retryAfterMs ?? null };
}

/** @param {number} ms */
export function retryAfterSeconds(ms) {
  return Math.max(1, Math.ceil(ms / 1000));
}

/**
 * Whether a socket error is ws's for a message over its maxPayload (ws has then sent 1009),
 * as ws reports it (by its code, not its class: the lifecycle imports no WebSocket library)
 * or as crossws passes it on: crossws's node adapter wraps it in a WSError whose message is
 * the original's text, code and cause lost (crossws 0.4), so there the text is all there is.
 * @param {unknown} err
 */
export function isTooBig(err) {
  const e = /** @type {any} */ (err);
  if (e?.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' || e?.cause?.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') return true;
  return e?.name === 'WSError' && typeof e.message === 'string' && e.message.includes('Max payload size exceeded');
}
