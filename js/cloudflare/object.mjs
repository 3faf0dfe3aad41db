// The Durable Object that owns one user's leases. One object per user (the Worker routes
// with `idFromName(userId)`), so each object's registry holds a single user and the
// runtime's per-object limits (32,768 sockets, ~1,000 requests/s) apply per user.
//
// Invariant kept on every wake and every alarm: each OPEN socket holds a live lease and
// each live lease has an OPEN socket (reconcile.mjs). This file answers the runtime's
// events; the rest has its own module: wake.mjs (the registry rebuilt from storage),
// books.mjs (what is written, and the alarm), storage.mjs (the layout), sockets.mjs,
// views.mjs (stats and metrics), protocol.mjs (what clients see).
import { DurableObject } from 'cloudflare:workers';
import { LeaseRegistry, LeaseError } from '../workerd.mjs';
import { refusal } from '../lifecycle/protocol.mjs';
import { Books } from './books.mjs';
import { LEASE_PREFIX } from './storage.mjs';
import {
  CLOSE_EVICTED,
  CLOSE_LEASE_EXPIRED,
  CLOSE_MESSAGE_TOO_BIG,
  DEFAULT_MAX_PAYLOAD,
  HEARTBEAT_PING,
  HEARTBEAT_PONG,
  MAX_PAYLOAD_HEADER,
  USER_HEADER,
  decodeUserId,
  errorAnswer,
  json,
  refusalResponse,
} from './protocol.mjs';
import { AcquireCheck, closeExpired, reconcile, touchLease } from './reconcile.mjs';
import { answerClose, attachmentOf, closeLeases, closeQuietly, closeWith, payloadLimit, tooBig } from './sockets.mjs';
import { metricsText, statsView } from './views.mjs';
import { wake } from './wake.mjs';

/** @typedef {import('../../pkg/web/socket_lease.js').LeaseRegistry} Registry */
/** @typedef {import('./index.js').SocketAttachment} SocketAttachment */
/** @typedef {import('./config.mjs').ConfigError} ConfigError */

/**
 * A Durable Object class holding one user's `LeaseRegistry`. Export it from your Worker
 * under the `class_name` of a `durable_objects` binding (see examples/cloudflare).
 *
 * @extends {DurableObject<Record<string, unknown>>}
 */
export class SocketLeaseObject extends DurableObject {
  /** @type {Registry} */
  #registry = new LeaseRegistry({ maxUsers: 1 });
  #books = new Books(this.ctx, () => this.#registry);
  #acquireCheck = new AcquireCheck();
  /** @type {ConfigError | null} */
  #configError = null;
  /** When this instance was constructed: it changes after each hibernation or eviction. */
  #startedAt = Date.now();
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
    const woken = await wake(this.ctx, this.env);
    this.#registry.free();
    this.#registry = woken.registry;
    this.#configError = woken.configError;
    this.#maxPayload = woken.maxPayload;
    const books = this.#books;
    books.userId = woken.userId;
    books.lastId = woken.lastId;
    books.alarmAt = woken.alarmAt;
    if (woken.rewrite.length > 0 || woken.drop.length > 0) await books.store(woken.rewrite, [], woken.drop);
    await this.#reconcile(Date.now());
  }

  /** @param {Request} request */
  async fetch(request) {
    const { pathname } = new URL(request.url);
    if (pathname === '/connect') return this.#connect(request);
    if (pathname === '/stats') {
      const books = this.#books;
      const asked = decodeUserId(request.headers.get(USER_HEADER));
      return json(200, statsView(this.ctx, this.#registry, { userId: books.userId, asked, alarmAt: books.alarmAt, startedAt: this.#startedAt }));
    }
    if (pathname === '/metrics') {
      return new Response(metricsText(this.ctx, this.#registry), { headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' } });
    }
    return errorAnswer(404, 'NOT_FOUND', 'not found');
  }

  /** @param {Request} request */
  async #connect(request) {
    if (this.#configError) return errorAnswer(500, this.#configError.code, this.#configError.message);
    if ((request.headers.get('upgrade') ?? '').toLowerCase() !== 'websocket') {
      return errorAnswer(426, 'UPGRADE_REQUIRED', 'expected a WebSocket upgrade', { upgrade: 'websocket' });
    }
    const books = this.#books;
    const userId = decodeUserId(request.headers.get(USER_HEADER));
    if (!userId) return errorAnswer(400, 'INVALID_USER_ID', `missing or malformed ${USER_HEADER}`);
    if (books.userId !== null && books.userId !== userId) {
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
    if (this.#acquireCheck.mustReconcile(this.ctx, this.#registry, now, books.alarmAt)) await this.#reconcile(now);

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
      const expired = closeExpired(this.ctx, this.#registry, now);
      // Otherwise the refusal counted in `rejected` is not written now, so a reconnect
      // storm costs no write per request, but not dropped either: lost on hibernation, the
      // counter would go back (a Prometheus counter reset). The alarm writes it within a
      // second.
      if (expired.length > 0) await books.store([], expired);
      else await books.countersChanged(now);
      return refusalResponse(refusal(429, { reason: result.reason, limit: result.limit, active: result.active }, result.retryAfterMs));
    }

    closeLeases(this.ctx, result.evicted, CLOSE_EVICTED);
    const { lease } = result;
    books.userId = userId;
    books.lastId = lease.id;
    // Leases the acquire dropped because they had expired (none when the reconcile ran).
    const expired = closeExpired(this.ctx, this.#registry, now);
    /** @type {WebSocket | null} */
    let accepted = null;
    try {
      // Persist before accepting: if the write fails, no socket exists without a stored
      // lease. (Storage awaits keep the input gate shut, so no event slips in between, and
      // the output gate holds the 101 until the write is confirmed.) One record and the
      // meta record, plus a delete per evicted or expired lease: O(1) in the lease count.
      await books.store([lease.id], [...result.evicted, ...expired]);
      await books.setAlarm(now, [lease.expiresAt]);

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
      await this.#books.countersChanged(now);
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
      closeWith(ws, CLOSE_LEASE_EXPIRED);
      return;
    }
    const now = Date.now();
    if (tooBig(message, payloadLimit(att.maxPayload) ?? this.#maxPayload)) {
      // Not processed and no sign of life: the peer is closed with 1009 and its slot freed
      // now, not when (or if) its close event arrives. (The runtime has already received
      // the whole message: its own limit, 32 MiB, is what bounds that.)
      closeWith(ws, CLOSE_MESSAGE_TOO_BIG);
      await this.#release(ws, now);
      return;
    }
    if (!touchLease(this.ctx, this.#registry, ws, att.leaseId, now)) {
      // Expired (or reclaimed) before this message: close, free the slot, and let the
      // client reconnect at once.
      await this.#expire(now);
      closeWith(ws, CLOSE_LEASE_EXPIRED);
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
    answerClose(ws, code, reason);
  }

  /** @param {WebSocket} ws */
  async webSocketError(ws) {
    await this.#release(ws, Date.now());
  }

  async alarm() {
    // The alarm that fired is spent; #reconcile sets the next one from the leases left.
    this.#books.alarmAt = null;
    if (this.#books.metaDirty) await this.#books.store([], []);
    await this.#reconcile(Date.now());
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
    await this.#books.store([], [att.leaseId]);
    // The alarm stays where it is unless nothing is left: one that fires early just finds
    // nothing to do and moves itself, and recomputing it would visit every lease.
    if (this.#registry.stats().active === 0) await this.#books.setAlarm(now, []);
  }

  /**
   * Brings the registry back to the sockets (reconcile.mjs), writes what changed and sets
   * the alarm for what is left. Runs on wake, on the alarm, and on a connect only when it
   * can change the answer (AcquireCheck).
   * @param {number} now
   */
  async #reconcile(now) {
    const { released, expired, expiries } = reconcile(this.ctx, this.#registry, now);
    if (released.length > 0 || expired.length > 0) await this.#books.store([], [...released, ...expired]);
    await this.#books.setAlarm(now, expiries, { exact: true });
  }

  /** @param {number} now */
  async #expire(now) {
    const expired = closeExpired(this.ctx, this.#registry, now);
    if (expired.length > 0) await this.#books.store([], expired);
    if (this.#registry.stats().active === 0) await this.#books.setAlarm(now, []);
  }
}
