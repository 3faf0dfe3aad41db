// The Durable Object's WebSockets: what each carries (its attachment), how large a
// message may be, and closing them, which must never throw on a path where the socket is
// already on its way out.
import { CLOSE_REASONS, MAX_MAX_PAYLOAD } from './protocol.mjs';

/** @typedef {import('./index.js').SocketAttachment} SocketAttachment */

// Close codes no frame carries: the runtime reports them when the connection ended
// without a close frame (1006) or TLS failed (1015), so there is no handshake to complete.
const NO_FRAME_CLOSE_CODES = new Set([1006, 1015]);
// A close frame without a code is reported as 1005, which may not be sent back.
const NO_STATUS_CODE = 1005;

/**
 * @param {WebSocket} ws
 * @returns {SocketAttachment | null}
 */
export function attachmentOf(ws) {
  try {
    const att = ws.deserializeAttachment();
    return att && typeof att.leaseId === 'string' ? att : null;
  } catch {
    return null;
  }
}

/**
 * A `maxPayload` carried by the Worker's header or a socket's attachment, or null when
 * there is none or it is out of range.
 * @param {unknown} value
 * @returns {number | null}
 */
export function payloadLimit(value) {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 1 && n <= MAX_MAX_PAYLOAD ? n : null;
}

/**
 * Whether `message` is larger than `limit` bytes: a string by its UTF-8 length (what came
 * over the wire), a binary one by its length. The UTF-8 length is only counted when the
 * string's length cannot decide (each UTF-16 unit is 1 to 3 bytes of UTF-8).
 * @param {string | ArrayBuffer} message
 * @param {number} limit
 */
export function tooBig(message, limit) {
  if (typeof message !== 'string') return message.byteLength > limit;
  if (message.length > limit) return true;
  if (message.length * 3 <= limit) return false;
  let bytes = 0;
  for (let i = 0; i < message.length; i++) {
    const c = message.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < message.length && (message.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      // A surrogate pair: one code point, four bytes.
      bytes += 4;
      i++;
    } else bytes += 3;
    if (bytes > limit) return true;
  }
  return false;
}

/**
 * Closing a socket that is already closing throws; on every path here the socket is on
 * its way out anyway, so that is not an error.
 * @param {WebSocket} ws
 * @param {number} [code]
 * @param {string} [reason]
 */
export function closeQuietly(ws, code, reason) {
  try {
    ws.close(code, reason);
  } catch {
    // already closing or closed
  }
}

/**
 * `closeQuietly` with one of every host's close codes and its reason.
 * @param {WebSocket} ws
 * @param {import('../lifecycle/protocol.mjs').CloseCode} code
 */
export function closeWith(ws, code) {
  closeQuietly(ws, code, CLOSE_REASONS[code]);
}

/**
 * Closes the sockets of these leases (each socket is tagged with its lease id) with
 * `code` and its reason.
 * @param {DurableObjectState} ctx
 * @param {Iterable<string>} leaseIds
 * @param {import('../lifecycle/protocol.mjs').CloseCode} code
 */
export function closeLeases(ctx, leaseIds, code) {
  for (const id of leaseIds) {
    for (const ws of ctx.getWebSockets(id)) closeWith(ws, code);
  }
}

/**
 * Answers the peer's close. The hibernation API does not answer a close frame for us on
 * every compatibility date; without this the client waits in CLOSING and reports 1006.
 * 1005 means the peer sent a close frame without a code: answer with one without a code
 * too.
 * @param {WebSocket} ws
 * @param {number} code
 * @param {string} reason
 */
export function answerClose(ws, code, reason) {
  if (code === NO_STATUS_CODE) closeQuietly(ws);
  else if (!NO_FRAME_CLOSE_CODES.has(code)) closeQuietly(ws, code, reason);
}

/**
 * The OPEN sockets (CLOSING and CLOSED ones are on their way out).
 * @param {DurableObjectState} ctx
 */
export function openSockets(ctx) {
  return ctx.getWebSockets().filter((ws) => ws.readyState === WebSocket.OPEN);
}
