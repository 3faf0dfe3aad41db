// The Durable Object that owns one user's leases. One object per user (the Worker routes
// with `idFromName(userId)`), so each object's registry holds a single user and the
// runtime's per-object limits (32,768 sockets, ~1,000 requests/s) apply per user.
//
// Invariant kept on every wake and every alarm: each OPEN socket holds a live lease and
// each live lease has an OPEN socket. Close events are not trusted to arrive (workerd, like
// every host we target, has reports of lost closes), so the socket list is the truth.
import { DurableObject } from 'cloudflare:workers';
import { LeaseRegistry, LeaseError, parseId } from '../workerd.mjs';
import { refusal } from '../lifecycle/protocol.mjs';
import { ConfigError, DEFAULT_TTL_MS, readConfig, registryOptions } from './config.mjs';
import {
  LEASE_PREFIX,
  LEGACY_SNAPSHOT_KEY,
  LEGACY_USER_KEY,
  META_KEY,
  chunks,
  encodeSnapshot,
  isLeaseRecord,
  isMetaRecord,
  leaseRecord,
  metaRecord,
} from './storage.mjs';
import {
  CLOSE_EVICTED,
  CLOSE_LEASE_EXPIRED,
  CLOSE_MESSAGE_TOO_BIG,
  CLOSE_REASONS,
  DEFAULT_MAX_PAYLOAD,
  HEARTBEAT_PING,
  HEARTBEAT_PONG,
  MAX_MAX_PAYLOAD,
  MAX_PAYLOAD_HEADER,
  USER_HEADER,
  decodeUserId,
  errorAnswer,
  json,
  refusalResponse,
} from './protocol.mjs';

/** @typedef {import('../../pkg/web/socket_lease.js').LeaseRegistry} Registry */
/** @typedef {import('./index.js').SocketAttachment} SocketAttachment */
/** @typedef {import('./index.js').SocketLeaseConfig} SocketLeaseConfig */

// Close codes no frame carries: the runtime reports them when the connection ended
// without a close frame (1006) or TLS failed (1015), so there is no handshake to complete.
const NO_FRAME_CLOSE_CODES = new Set([1006, 1015]);
// A close frame without a code is reported as 1005, which may not be sent back.
const NO_STATUS_CODE = 1005;
// How long a counter change that wrote nothing (a refusal) may wait for the alarm to
// write the meta record: a reconnect storm costs one write per second, not one per
// request, and the counters reach storage before the object can hibernate.
const META_WRITE_DELAY_MS = 1000;
// How long a count of OPEN sockets that matched the leases is trusted by connects at the
// limit. Counting visits every socket, and a reconnect storm at the limit would pay that
// on every refused request; with this, at most once a second. The price: a close event
// lost within that second can cause refusals for up to a second (Retry-After is at least
// one), after which the next connect counts again and reconciles.
const OPEN_COUNT_TRUST_MS = 1000;

/**
 * @param {WebSocket} ws
 * @returns {SocketAttachment | null}
 */
function attachmentOf(ws) {
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
function payloadLimit(value) {
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
function tooBig(message, limit) {
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
 * The UUID behind a lease id, or null for anything that is not a lease id.
 * @param {string} id
 * @returns {string | null}
 */
function uuidOf(id) {
  try {
    const parsed = parseId(id);
    return parsed.kind === 'conn' ? parsed.uuid : null;
  } catch {
    return null;
  }
}

/**
 * Closing a socket that is already closing throws; on every path here the socket is on
 * its way out anyway, so that is not an error.
 * @param {WebSocket} ws
 * @param {number} [code]
 * @param {string} [reason]
 */
function closeQuietly(ws, code, reason) {
  try {
    ws.close(code, reason);
  } catch {
    // already closing or closed
  }
}

/**
 * A Durable Object class holding one user's `LeaseRegistry`. Export it from your Worker
 * under the `class_name` of a `durable_objects` binding (see examples/cloudflare).
 *
 * @extends {DurableObject<Record<string, unknown>>}
 */
export class SocketLeaseObject extends DurableObject {
  /** @type {Registry} */
  #registry = new LeaseRegistry({ maxUsers: 1 });
  /** @type {string | null} */
  #userId = null;
  /** @type {ConfigError | null} */
  #configError = null;
  /** @type {number | null} the alarm time we last set, to avoid rewriting it */
  #alarmAt = null;
  /** @type {string | null} the newest lease id issued, kept in the meta record */
  #lastId = null;
  /** When this instance was constructed: it changes after each hibernation or eviction. */
  #startedAt = Date.now();
  /** Whether the registry's counters changed since the meta record was last written. */
  #metaDirty = false;
  /** When the alarm must write them, if #metaDirty. */
  #metaDueAt = 0;
  /** When a connect at the limit last counted as many OPEN sockets as leases. */
  #openMatchedAt = -Infinity;
  /** SOCKET_LEASE_MAX_PAYLOAD, for a socket whose attachment carries no limit. */
  #maxPayload = DEFAULT_MAX_PAYLOAD;

  /**
   * @param {DurableObjectState} ctx
   * @param {Record<string, unknown>} env
   */
  constructor(ctx, env) {
    super(ctx, env);
    // The runtime answers the heartbeat itself, without waking (or billing) this object;
    // the alarm reads when each socket last did so.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(HEARTBEAT_PING, HEARTBEAT_PONG));
    // No event runs before the registry is back from storage and reconciled with the
    // sockets that survived hibernation (or did not survive an eviction).
    ctx.blockConcurrencyWhile(() => this.#wake());
  }

  async #wake() {
    /** @type {{ maxUsers: number, ttlMs?: number }} */
    let options = { maxUsers: 1 };
    try {
      const config = readConfig(this.env);
      options = registryOptions(config);
      this.#maxPayload = config.maxPayload;
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      // New connections get a 500 naming the variable; the sockets already open keep
      // being tracked with the defaults, so a bad deploy does not leak them.
      this.#configError = e;
    }
    const storage = this.ctx.storage;
    const head = await storage.get([META_KEY, LEGACY_SNAPSHOT_KEY, LEGACY_USER_KEY]);
    const records = await storage.list({ prefix: LEASE_PREFIX });
    this.#alarmAt = await storage.getAlarm();
    const meta = head.get(META_KEY);
    const legacy = head.get(LEGACY_SNAPSHOT_KEY);
    /** @type {string[]} lease ids to write again (migration from the one-snapshot layout) */
    let rewrite = [];
    /** @type {string[]} storage keys to delete (unreadable records, the old layout) */
    const drop = [];

    this.#registry.free();
    if (isMetaRecord(meta)) {
      this.#userId = meta.userId;
      this.#lastId = meta.lastId;
      const renewedAt = this.#renewals();
      const ttlMs = options.ttlMs ?? DEFAULT_TTL_MS;
      /** @type {Array<{ id: string, uuid: string, record: import('./storage.mjs').LeaseRecord }>} */
      const leases = [];
      for (const [key, stored] of records) {
        const id = key.slice(LEASE_PREFIX.length);
        const uuid = uuidOf(id);
        if (uuid === null || !isLeaseRecord(stored)) {
          drop.push(key);
          continue;
        }
        // The record holds the expiry from the acquire; renewals since then are in the
        // socket's attachment. Apply them before the registry sees the lease: it cannot
        // extend a lease once expired, and the stored expiry may well have passed.
        const at = renewedAt.get(id);
        const record =
          at !== undefined && at > stored.touchedAt
            ? { ...stored, touchedAt: at, expiresAt: Math.max(stored.expiresAt, at + ttlMs) }
            : stored;
        leases.push({ id, uuid, record });
      }
      const lastIdMs = this.#lastId === null ? 0 : (uuidOf(this.#lastId) ? parseId(this.#lastId).timestampMs : 0);
      this.#registry = this.#restore(encodeSnapshot({ userId: meta.userId, counters: meta.counters, lastIdMs, leases }), options, drop, records.keys());
    } else if (legacy instanceof Uint8Array) {
      // Written by an older version of this adapter: one snapshot of the whole registry.
      // Restore it, then store it again in the per-lease layout and drop it.
      const user = head.get(LEGACY_USER_KEY);
      this.#userId = typeof user === 'string' ? user : null;
      this.#registry = this.#restore(legacy, options, drop, []);
      // Unexpired ones; the reconcile below sweeps the others.
      const leases = this.#userId === null ? [] : this.#registry.userStats(this.#userId).leases;
      rewrite = leases.map((/** @type {{ id: string }} */ l) => l.id);
      this.#lastId = rewrite.length > 0 ? rewrite[rewrite.length - 1] : null;
      drop.push(LEGACY_SNAPSHOT_KEY, LEGACY_USER_KEY);
    } else {
      // Nothing stored, or lease records without the meta record that is always written
      // with them: unreadable, so dropped (the reconcile closes their sockets).
      this.#registry = new LeaseRegistry(options);
      drop.push(...records.keys());
    }
    if (rewrite.length > 0 || drop.length > 0) await this.#store(rewrite, [], drop);
    await this.#reconcile(Date.now());
  }

  /**
   * The last renewal of each lease whose socket is still OPEN, from the attachments.
   * `seenAt` is only ever written after the lease was touched at that time, so it is
   * evidence that the lease was live then; a socket the object closed (expiry, eviction)
   * is no longer OPEN and renews nothing.
   * @returns {Map<string, number>}
   */
  #renewals() {
    const now = Date.now();
    /** @type {Map<string, number>} */
    const out = new Map();
    for (const ws of this.ctx.getWebSockets()) {
      if (ws.readyState !== WebSocket.OPEN) continue;
      const att = attachmentOf(ws);
      if (att && Number.isSafeInteger(att.seenAt)) out.set(att.leaseId, Math.min(att.seenAt, now));
    }
    return out;
  }

  /**
   * `LeaseRegistry.restore`, or an empty registry when the bytes are refused: a corrupt
   * store must not wedge the user. The reconcile that follows closes every socket without
   * a lease, so nothing stays open untracked.
   * @param {Uint8Array} bytes
   * @param {object} options
   * @param {string[]} drop collects the keys to delete when the bytes are refused
   * @param {Iterable<string>} keys the keys the bytes came from
   * @returns {Registry}
   */
  #restore(bytes, options, drop, keys) {
    try {
      return LeaseRegistry.restore(bytes, options);
    } catch (e) {
      if (!(e instanceof LeaseError)) throw e;
      console.error(JSON.stringify({ event: 'socket-lease.snapshot-invalid', code: e.code, message: e.message }));
      drop.push(...keys);
      return new LeaseRegistry(options);
    }
  }

  /** @param {Request} request */
  async fetch(request) {
    const { pathname } = new URL(request.url);
    if (pathname === '/connect') return this.#connect(request);
    if (pathname === '/stats') return json(200, this.#stats(decodeUserId(request.headers.get(USER_HEADER))));
    if (pathname === '/metrics') {
      return new Response(this.#metrics(), { headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' } });
    }
    return errorAnswer(404, 'NOT_FOUND', 'not found');
  }

  /** @param {Request} request */
  async #connect(request) {
    if (this.#configError) return errorAnswer(500, this.#configError.code, this.#configError.message);
    if ((request.headers.get('upgrade') ?? '').toLowerCase() !== 'websocket') {
      return errorAnswer(426, 'UPGRADE_REQUIRED', 'expected a WebSocket upgrade', { upgrade: 'websocket' });
    }
    const userId = decodeUserId(request.headers.get(USER_HEADER));
    if (!userId) return errorAnswer(400, 'INVALID_USER_ID', `missing or malformed ${USER_HEADER}`);
    if (this.#userId !== null && this.#userId !== userId) {
      // Only possible if a host routed by something other than idFromName(userId).
      return errorAnswer(500, 'WRONG_OBJECT', 'this object belongs to another user');
    }
    // The Worker's limit for this socket (its option, or the same env var we read).
    const maxPayload = payloadLimit(request.headers.get(MAX_PAYLOAD_HEADER)) ?? this.#maxPayload;

    const now = Date.now();
    // Settle the books against the sockets really held before deciding whenever that can
    // change the answer, so a lost close event never turns into a refusal (or an eviction
    // of a live socket). Otherwise skip it: it visits every socket, and a connect should
    // cost O(1) however many leases the user holds.
    if (this.#reconcileBeforeAcquire(now)) await this.#reconcile(now);

    let result;
    try {
      result = this.#registry.acquire(userId, { now });
    } catch (e) {
      if (e instanceof LeaseError) return errorAnswer(400, e.code, e.message);
      throw e;
    }
    if (!result.ok) {
      // A refusing acquire may still have reclaimed expired leases (the core keeps them
      // for the next sweep): their sockets are closed now, as on a grant, and their
      // records deleted with the counters.
      const expired = this.#closeExpired(now);
      // Otherwise the refusal counted in `rejected` is not written now, so a reconnect
      // storm costs no write per request, but not dropped either: lost on hibernation, the
      // counter would go back (a Prometheus counter reset). The alarm writes it within a
      // second.
      if (expired.length > 0) await this.#store([], expired);
      else await this.#countersChanged(now);
      return refusalResponse(
        refusal(429, { reason: result.reason, limit: result.limit, active: result.active }, result.retryAfterMs),
      );
    }

    for (const id of result.evicted) {
      for (const ws of this.ctx.getWebSockets(id)) closeQuietly(ws, CLOSE_EVICTED, CLOSE_REASONS[CLOSE_EVICTED]);
    }
    const { lease } = result;
    this.#userId = userId;
    this.#lastId = lease.id;
    // Leases the acquire dropped because they had expired (none when the reconcile ran).
    const expired = this.#closeExpired(now);
    /** @type {WebSocket | null} */
    let accepted = null;
    try {
      // Persist before accepting: if the write fails, no socket exists without a stored
      // lease. (Storage awaits keep the input gate shut, so no event slips in between, and
      // the output gate holds the 101 until the write is confirmed.) One record and the
      // meta record, plus a delete per evicted or expired lease: O(1) in the lease count.
      await this.#store([lease.id], [...result.evicted, ...expired]);
      await this.#alarmNoLaterThan(now, lease.expiresAt);

      const { 0: client, 1: server } = new WebSocketPair();
      // The lease id is the tag, so getWebSockets(leaseId) finds the socket to close on
      // eviction or expiry, even after hibernation.
      this.ctx.acceptWebSocket(server, [lease.id]);
      accepted = server;
      /** @type {SocketAttachment} */
      const attachment = {
        leaseId: lease.id,
        runId: lease.runId,
        threadId: lease.threadId,
        userId,
        acquiredAt: lease.acquiredAt,
        seenAt: now,
        maxPayload,
      };
      server.serializeAttachment(attachment);
      return new Response(null, { status: 101, webSocket: client });
    } catch (e) {
      return this.#rollBack(lease.id, accepted, now, e);
    }
  }

  /**
   * Undoes a granted lease whose socket could not be stored or accepted, so the slot is
   * free at once instead of held by no socket until the next reconcile. The evictions the
   * acquire made stand (those sockets are already closed).
   * @param {string} leaseId
   * @param {WebSocket | null} accepted the server side, if it was accepted before the failure
   * @param {number} now
   * @param {unknown} error
   */
  async #rollBack(leaseId, accepted, now, error) {
    const message = error instanceof Error ? error.message : String(error);
    console.error(JSON.stringify({ event: 'socket-lease.accept-failed', leaseId, message }));
    if (accepted) closeQuietly(accepted, 1011, 'the lease could not be recorded');
    this.#registry.release(leaseId, now);
    try {
      // Only this key, not a batch with the meta record: a storage that just failed may
      // fail a larger write again. The counters (acquired, released) go with the alarm.
      await this.ctx.storage.delete(LEASE_PREFIX + leaseId);
      await this.#countersChanged(now);
    } catch (e) {
      // A record left behind has no socket: the next wake reconciles it away.
      console.error(JSON.stringify({ event: 'socket-lease.rollback-failed', leaseId, message: e instanceof Error ? e.message : String(e) }));
    }
    return errorAnswer(500, 'INTERNAL_ERROR', `the connection could not be accepted: ${message}`);
  }

  /**
   * @param {WebSocket} ws
   * @param {string | ArrayBuffer} message
   */
  async webSocketMessage(ws, message) {
    const att = attachmentOf(ws);
    if (!att) {
      closeQuietly(ws, CLOSE_LEASE_EXPIRED, CLOSE_REASONS[CLOSE_LEASE_EXPIRED]);
      return;
    }
    const now = Date.now();
    if (tooBig(message, payloadLimit(att.maxPayload) ?? this.#maxPayload)) {
      // Not processed and no sign of life: the peer is closed with 1009 and its slot freed
      // now, not when (or if) its close event arrives. (The runtime has already received
      // the whole message: its own limit, 32 MiB, is what bounds that.)
      closeQuietly(ws, CLOSE_MESSAGE_TOO_BIG, CLOSE_REASONS[CLOSE_MESSAGE_TOO_BIG]);
      await this.#release(ws, now);
      return;
    }
    if (!this.#touch(ws, att.leaseId, now)) {
      // Expired (or reclaimed) before this message: close, free the slot, and let the
      // client reconnect at once.
      await this.#expire(now);
      closeQuietly(ws, CLOSE_LEASE_EXPIRED, CLOSE_REASONS[CLOSE_LEASE_EXPIRED]);
      return;
    }
    // Touches are never written to storage; the attachment survives hibernation, so this
    // is what the next wake renews the stored lease from. It costs no storage write.
    att.seenAt = now;
    ws.serializeAttachment(att);
    if (message === HEARTBEAT_PING) {
      // The runtime normally answers this without calling us; answer the same if not.
      ws.send(HEARTBEAT_PONG);
      return;
    }
    if (typeof message !== 'string') {
      // As the Node demo: the echo protocol is text; a binary frame still counts as life.
      ws.send(JSON.stringify({ type: 'error', error: 'only text messages are echoed', leaseId: att.leaseId }));
      return;
    }
    ws.send(JSON.stringify({ type: 'echo', data: message, leaseId: att.leaseId }));
  }

  /**
   * @param {WebSocket} ws
   * @param {number} code
   * @param {string} reason
   */
  async webSocketClose(ws, code, reason) {
    await this.#release(ws, Date.now());
    // The hibernation API does not answer a close frame for us on every compatibility
    // date; without this the client waits in CLOSING and reports 1006. 1005 means the peer
    // sent a close frame without a code: answer with one without a code too.
    if (code === NO_STATUS_CODE) closeQuietly(ws);
    else if (!NO_FRAME_CLOSE_CODES.has(code)) closeQuietly(ws, code, reason);
  }

  /** @param {WebSocket} ws */
  async webSocketError(ws) {
    await this.#release(ws, Date.now());
  }

  async alarm() {
    // The alarm that fired is spent; #reconcile sets the next one from the leases left.
    this.#alarmAt = null;
    if (this.#metaDirty) await this.#store([], []);
    await this.#reconcile(Date.now());
  }

  /**
   * Counters changed without a write (a refusal): has the alarm write the meta record
   * within META_WRITE_DELAY_MS, unless a write is already due. Any #store writes it too.
   * @param {number} now
   */
  async #countersChanged(now) {
    if (this.#metaDirty || this.#userId === null) return;
    this.#metaDirty = true;
    this.#metaDueAt = now + META_WRITE_DELAY_MS;
    await this.#setAlarm(now, []);
  }

  /**
   * Touches the lease at `now`. When the registry says it already expired, the runtime's
   * record of the last auto-answered heartbeat may be newer than what the registry knows;
   * apply that first, then retry.
   * @param {WebSocket} ws
   * @param {string} leaseId
   * @param {number} now
   */
  #touch(ws, leaseId, now) {
    if (this.#registry.touch(leaseId, now)) return true;
    const heard = this.ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? 0;
    return heard > 0 && heard <= now && this.#registry.touch(leaseId, heard) && this.#registry.touch(leaseId, now);
  }

  /**
   * @param {WebSocket} ws
   * @param {number} now
   */
  async #release(ws, now) {
    const att = attachmentOf(ws);
    // A lease we already reclaimed (evicted, expired, reconciled) is not released again:
    // that would count as an unknown release, the registry's leak signal.
    if (!att || this.#registry.getLease(att.leaseId) === null) return;
    this.#registry.release(att.leaseId, now);
    // Deleted before the close is answered (the output gate holds it until then).
    await this.#store([], [att.leaseId]);
    // The alarm stays where it is unless nothing is left: one that fires early just finds
    // nothing to do and moves itself, and recomputing it would visit every lease.
    if (this.#active() === 0) await this.#setAlarm(now, []);
  }

  /**
   * Whether a connect must reconcile before it acquires:
   * - an alarm is due (or missing while leases are held): some lease may be near or past
   *   its expiry with heartbeats the runtime answered that the registry has not seen, and
   *   the acquire would drop it as expired;
   * - the user is at its limit under `evict-idle`: the acquire will evict the lease
   *   touched longest ago, and the registry's touch times miss every heartbeat the
   *   runtime answered since the last reconcile, so it would pick a heartbeating socket
   *   over a silent one. The runtime's timestamps must be applied first, which visits
   *   every socket: an evicting connect costs O(sockets) under this policy;
   * - the user is at its limit and the OPEN sockets do not match the leases one to one:
   *   a close event went missing, and its lease would cause a refusal or an eviction.
   *   Counting visits every socket, so a count that matched is trusted for
   *   OPEN_COUNT_TRUST_MS: a storm of refused connects costs O(1) each, plus one count a
   *   second.
   * Otherwise the registry is exact enough to decide: every lease has its OPEN socket and
   * none is within a quarter TTL of its expiry (the alarm is set no later than that).
   * @param {number} now
   */
  #reconcileBeforeAcquire(now) {
    const active = this.#active();
    if (active === 0) return this.ctx.getWebSockets().length > 0;
    if (this.#alarmAt === null || now >= this.#alarmAt) return true;
    const options = this.#registry.getOptions();
    if (active < options.perUserLimit) return false;
    if (options.onLimit === 'evict-idle') return true;
    if (now - this.#openMatchedAt < OPEN_COUNT_TRUST_MS) return false;
    let open = 0;
    for (const ws of this.ctx.getWebSockets()) if (ws.readyState === WebSocket.OPEN) open++;
    if (open !== active) return true;
    this.#openMatchedAt = now;
    return false;
  }

  /** Live leases (the object serves one user, so the registry's total is that user's). */
  #active() {
    return this.#registry.stats().active;
  }

  /**
   * Applies every socket's latest sign of life, releases leases without an OPEN socket,
   * closes sockets without a lease, then expires and closes what is past its TTL, and sets
   * the alarm for what is left. Visits every socket: runs on wake, on the alarm, and on a
   * connect only when it can change the answer (#reconcileBeforeAcquire).
   * @param {number} now
   */
  async #reconcile(now) {
    const reg = this.#registry;
    const ttlMs = reg.getOptions().ttlMs;
    /** @type {string[]} */
    const live = [];
    /** @type {Map<string, number>} lease id -> expiry, for the alarm */
    const expiries = new Map();
    for (const ws of this.ctx.getWebSockets()) {
      // CLOSING/CLOSED sockets are on their way out: their leases are not kept alive.
      if (ws.readyState !== WebSocket.OPEN) continue;
      const att = attachmentOf(ws);
      const lease = att ? reg.getLease(att.leaseId) : null;
      if (!att || !lease) {
        closeQuietly(ws, CLOSE_LEASE_EXPIRED, CLOSE_REASONS[CLOSE_LEASE_EXPIRED]);
        continue;
      }
      // Signs of life, oldest first (a lease cannot be extended once expired, so the
      // older one must renew it before the newer one can): the last one this object
      // applied, kept in the attachment (a wake has applied it already, see #wake), and
      // the last heartbeat the runtime answered without waking us.
      const autoAnswered = this.ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? 0;
      let touchedAt = lease.touchedAt;
      let expiresAt = lease.expiresAt;
      for (const heard of att.seenAt <= autoAnswered ? [att.seenAt, autoAnswered] : [autoAnswered, att.seenAt]) {
        // Only forward, and never from the future (Workers' clocks stand still within an
        // event, so a timestamp may be newer than our `now`).
        if (heard > touchedAt && heard <= now && reg.touch(att.leaseId, heard)) {
          touchedAt = heard;
          expiresAt = Math.max(expiresAt, heard + ttlMs);
        }
      }
      if (touchedAt > att.seenAt) {
        // Renewals are not written to storage (that would be a write per lease per
        // alarm); the attachment, which survives hibernation at no storage cost, carries
        // them to the next wake instead.
        att.seenAt = touchedAt;
        ws.serializeAttachment(att);
      }
      live.push(att.leaseId);
      expiries.set(att.leaseId, expiresAt);
    }
    const released = reg.reconcile(live, now);
    const expired = this.#closeExpired(now);
    for (const id of expired) expiries.delete(id);
    if (released.length > 0 || expired.length > 0) await this.#store([], [...released, ...expired]);
    await this.#setAlarm(now, expiries.values(), { exact: true });
  }

  /** @param {number} now */
  async #expire(now) {
    const expired = this.#closeExpired(now);
    if (expired.length > 0) await this.#store([], expired);
    if (this.#active() === 0) await this.#setAlarm(now, []);
  }

  /**
   * Reclaims expired leases (also those the last acquire reclaimed lazily) and closes
   * their sockets. Returns their ids.
   * @param {number} now
   * @returns {string[]}
   */
  #closeExpired(now) {
    const expired = this.#registry.sweep(now);
    for (const id of expired) {
      for (const ws of this.ctx.getWebSockets(id)) closeQuietly(ws, CLOSE_LEASE_EXPIRED, CLOSE_REASONS[CLOSE_LEASE_EXPIRED]);
    }
    return expired;
  }

  /**
   * Writes the records of the leases in `put` (or deletes them when the registry no longer
   * holds them), deletes those in `remove` and the raw `keys`, and rewrites the meta
   * record, in one atomic batch: the calls (at most 128 keys each, the KV-backed limit)
   * are issued without an `await` in between, which the runtime coalesces.
   * @param {Iterable<string>} put lease ids
   * @param {Iterable<string>} remove lease ids
   * @param {Iterable<string>} [keys] storage keys
   */
  async #store(put, remove, keys = []) {
    const reg = this.#registry;
    /** @type {Array<[string, unknown]>} */
    const entries = [];
    const wasDirty = this.#metaDirty;
    if (this.#userId !== null) {
      entries.push([META_KEY, metaRecord(reg.stats(), this.#userId, this.#lastId)]);
      this.#metaDirty = false;
    }
    const deletes = [...keys];
    for (const id of put) {
      const lease = reg.getLease(id);
      if (lease) entries.push([LEASE_PREFIX + id, leaseRecord(lease)]);
      else deletes.push(LEASE_PREFIX + id);
    }
    for (const id of remove) deletes.push(LEASE_PREFIX + id);
    const storage = this.ctx.storage;
    /** @type {Promise<unknown>[]} */
    const writes = [];
    for (const batch of chunks(entries)) writes.push(storage.put(Object.fromEntries(batch)));
    for (const batch of chunks(deletes)) writes.push(storage.delete(batch));
    try {
      await Promise.all(writes);
    } catch (e) {
      // The meta record is still unwritten: if it was already waiting, the alarm set for
      // it tries again.
      this.#metaDirty ||= wasDirty;
      throw e;
    }
  }

  /**
   * One alarm, driven by the earliest lease expiry, or sooner when counters wait to be
   * written (#countersChanged); none when no lease is held and nothing waits, so an idle
   * user costs no wake-up. (It does keep its meta record in storage, for its counters:
   * see "Retention" in storage.mjs.)
   *
   * The alarm first runs a quarter TTL before a lease expires, to apply the heartbeats the
   * runtime answered meanwhile (the registry cannot extend a lease once it has expired,
   * and an alarm may run late). Only a lease that got no sign of life by then is looked at
   * again at its expiry, and closed if still silent. Touches only move expiries later, so
   * an alarm that fires early just finds nothing to do and moves itself; outside a full
   * reconcile the alarm is therefore only ever moved earlier.
   * @param {number} now
   * @param {Iterable<number>} expiries of every lease held (`exact`), or of some
   * @param {{ exact?: boolean }} [opts]
   */
  async #setAlarm(now, expiries, { exact = false } = {}) {
    const margin = Math.floor(this.#registry.getOptions().ttlMs / 4);
    let next = Infinity;
    for (const expiresAt of expiries) {
      const refreshAt = expiresAt - margin;
      next = Math.min(next, refreshAt > now ? refreshAt : expiresAt);
    }
    // Counters waiting to be written keep the alarm, whatever the leases.
    if (this.#metaDirty) next = Math.min(next, this.#metaDueAt);
    if (next === Infinity) {
      if (this.#alarmAt !== null && (exact || this.#active() === 0)) {
        await this.ctx.storage.deleteAlarm();
        this.#alarmAt = null;
      }
      return;
    }
    const at = Math.max(next, now + 1);
    if (this.#alarmAt === null || at < this.#alarmAt || (exact && this.#alarmAt <= now)) {
      await this.ctx.storage.setAlarm(at);
      this.#alarmAt = at;
    }
  }

  /**
   * @param {number} now
   * @param {number} expiresAt of a lease just granted
   */
  #alarmNoLaterThan(now, expiresAt) {
    return this.#setAlarm(now, [expiresAt]);
  }

  /** @param {string | null} asked the user the Worker routed by, for an object never connected */
  #stats(asked) {
    const now = Date.now();
    const user = this.#userId === null ? null : this.#registry.userStats(this.#userId, now);
    const open = this.ctx.getWebSockets().filter((ws) => ws.readyState === WebSocket.OPEN).length;
    // The shape of the Node demo's GET /api/users/:userId, plus the object's own details.
    return {
      userId: this.#userId ?? asked,
      active: user?.active ?? 0,
      limit: user?.limit ?? this.#registry.getOptions().perUserLimit,
      socketsOpen: open,
      leases: user?.leases ?? [],
      alarmAt: this.#alarmAt,
      objectStartedAt: this.#startedAt,
      // The object's clock when it answered, to read the lease times above against.
      now,
      stats: this.#registry.stats(),
    };
  }

  #metrics() {
    const open = this.ctx.getWebSockets().filter((ws) => ws.readyState === WebSocket.OPEN).length;
    return (
      this.#registry.metrics() +
      '# HELP socket_lease_sockets_open WebSockets this object holds open.\n' +
      '# TYPE socket_lease_sockets_open gauge\n' +
      `socket_lease_sockets_open ${open}\n`
    );
  }
}
