// The Durable Object that owns one user's leases. One object per user (the Worker routes
// with `idFromName(userId)`), so each object's registry holds a single user and the
// runtime's per-object limits (32,768 sockets, ~1,000 requests/s) apply per user.
//
// Invariant kept on every wake and every alarm: each OPEN socket holds a live lease and
// each live lease has an OPEN socket. Close events are not trusted to arrive (workerd, like
// every host we target, has reports of lost closes), so the socket list is the truth.
import { DurableObject } from 'cloudflare:workers';
import { LeaseRegistry, LeaseError } from '../workerd.mjs';
import { ConfigError, readConfig, registryOptions } from './config.mjs';
import {
  CLOSE_EVICTED,
  CLOSE_LEASE_EXPIRED,
  HEARTBEAT_PING,
  HEARTBEAT_PONG,
  USER_HEADER,
  json,
} from './protocol.mjs';

/** @typedef {import('../../pkg/web/socket_lease.js').LeaseRegistry} Registry */
/** @typedef {import('./index.js').SocketAttachment} SocketAttachment */
/** @typedef {import('./index.js').SocketLeaseConfig} SocketLeaseConfig */

// Storage keys. The snapshot is the core's own versioned, checksummed format with
// absolute expiry times, so a restore needs no clock translation.
const SNAPSHOT_KEY = 'socket-lease:snapshot';
const USER_KEY = 'socket-lease:user';

// Close codes no frame carries: the runtime reports them when the connection ended
// without a close frame (1006) or TLS failed (1015), so there is no handshake to complete.
const NO_FRAME_CLOSE_CODES = new Set([1006, 1015]);
// A close frame without a code is reported as 1005, which may not be sent back.
const NO_STATUS_CODE = 1005;

// The same reason strings as the Node guard, so one client handles both hosts.
const EVICTED_REASON = 'lease evicted: a newer connection of this user took the slot';
const EXPIRED_REASON = 'lease expired or revoked; reconnect';

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
  /** When this instance was constructed: it changes after each hibernation or eviction. */
  #startedAt = Date.now();

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
    let options = { maxUsers: 1 };
    try {
      options = registryOptions(readConfig(this.env));
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      // New connections get a 500 naming the variable; the sockets already open keep
      // being tracked with the defaults, so a bad deploy does not leak them.
      this.#configError = e;
    }
    const stored = await this.ctx.storage.get([SNAPSHOT_KEY, USER_KEY]);
    const bytes = stored.get(SNAPSHOT_KEY);
    const user = stored.get(USER_KEY);
    this.#userId = typeof user === 'string' ? user : null;
    this.#alarmAt = await this.ctx.storage.getAlarm();
    if (bytes instanceof Uint8Array) {
      try {
        this.#registry.free();
        this.#registry = LeaseRegistry.restore(bytes, options);
      } catch (e) {
        if (!(e instanceof LeaseError)) throw e;
        // A corrupt snapshot must not wedge the user: start empty. The reconcile below
        // then closes every socket that has no lease, so nothing is held untracked.
        console.error(JSON.stringify({ event: 'socket-lease.snapshot-invalid', code: e.code, message: e.message }));
        this.#registry = new LeaseRegistry(options);
      }
    } else {
      this.#registry.free();
      this.#registry = new LeaseRegistry(options);
    }
    await this.#reconcile(Date.now());
  }

  /** @param {Request} request */
  async fetch(request) {
    const { pathname } = new URL(request.url);
    if (pathname === '/connect') return this.#connect(request);
    if (pathname === '/stats') return json(200, this.#stats(request.headers.get(USER_HEADER)));
    if (pathname === '/metrics') {
      return new Response(this.#metrics(), { headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' } });
    }
    return json(404, { error: 'not found', code: 'NOT_FOUND' });
  }

  /** @param {Request} request */
  async #connect(request) {
    if (this.#configError) return json(500, { error: this.#configError.message, code: this.#configError.code });
    if ((request.headers.get('upgrade') ?? '').toLowerCase() !== 'websocket') {
      return json(426, { error: 'expected a WebSocket upgrade', code: 'UPGRADE_REQUIRED' }, { upgrade: 'websocket' });
    }
    const userId = request.headers.get(USER_HEADER);
    if (!userId) return json(400, { error: `missing ${USER_HEADER}`, code: 'INVALID_USER_ID' });
    if (this.#userId !== null && this.#userId !== userId) {
      // Only possible if a host routed by something other than idFromName(userId).
      return json(500, { error: 'this object belongs to another user', code: 'WRONG_OBJECT' });
    }

    const now = Date.now();
    // Settle the books against the sockets really held before deciding: a lost close
    // event must never turn into a refusal.
    await this.#reconcile(now);

    let result;
    try {
      result = this.#registry.acquire(userId, { now });
    } catch (e) {
      if (e instanceof LeaseError) return json(400, { error: e.message, code: e.code });
      throw e;
    }
    if (!result.ok) {
      // Nothing is written on a refusal, so a reconnect storm costs no storage writes.
      const retryAfter = Math.max(1, Math.ceil(result.retryAfterMs / 1000));
      return json(
        429,
        { reason: result.reason, limit: result.limit, active: result.active },
        { 'retry-after': String(retryAfter) },
      );
    }

    for (const id of result.evicted) {
      for (const ws of this.ctx.getWebSockets(id)) closeQuietly(ws, CLOSE_EVICTED, EVICTED_REASON);
    }
    const { lease } = result;
    this.#userId = userId;
    // Persist before accepting: if the write fails, no socket exists without a stored
    // lease. (Storage awaits keep the input gate shut, so no event slips in between.)
    await this.#persist();
    await this.#scheduleAlarm(now);

    const { 0: client, 1: server } = new WebSocketPair();
    // The lease id is the tag, so getWebSockets(leaseId) finds the socket to close on
    // eviction or expiry, even after hibernation.
    this.ctx.acceptWebSocket(server, [lease.id]);
    /** @type {SocketAttachment} */
    const attachment = {
      leaseId: lease.id,
      runId: lease.runId,
      threadId: lease.threadId,
      userId,
      acquiredAt: lease.acquiredAt,
      seenAt: now,
    };
    server.serializeAttachment(attachment);
    return new Response(null, { status: 101, webSocket: client });
  }

  /**
   * @param {WebSocket} ws
   * @param {string | ArrayBuffer} message
   */
  async webSocketMessage(ws, message) {
    const att = attachmentOf(ws);
    if (!att) {
      closeQuietly(ws, CLOSE_LEASE_EXPIRED, EXPIRED_REASON);
      return;
    }
    const now = Date.now();
    if (!this.#touch(ws, att.leaseId, now)) {
      // Expired (or reclaimed) before this message: close, free the slot, and let the
      // client reconnect at once.
      await this.#expire(now);
      closeQuietly(ws, CLOSE_LEASE_EXPIRED, EXPIRED_REASON);
      return;
    }
    // The attachment survives hibernation; the registry's touch may not be persisted, so
    // this is what the next wake reads back. It costs no storage write.
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
    await this.#reconcile(Date.now());
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
    await this.#persist();
    await this.#scheduleAlarm(now);
  }

  /**
   * Applies every socket's latest sign of life, releases leases without an OPEN socket,
   * closes sockets without a lease, then expires and closes what is past its TTL.
   * @param {number} now
   */
  async #reconcile(now) {
    const reg = this.#registry;
    let changed = false;
    /** @type {string[]} */
    const live = [];
    for (const ws of this.ctx.getWebSockets()) {
      // CLOSING/CLOSED sockets are on their way out: their leases are not kept alive.
      if (ws.readyState !== WebSocket.OPEN) continue;
      const att = attachmentOf(ws);
      const lease = att ? reg.getLease(att.leaseId) : null;
      if (!att || !lease) {
        closeQuietly(ws, CLOSE_LEASE_EXPIRED, EXPIRED_REASON);
        continue;
      }
      const autoAnswered = this.ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? 0;
      const heard = Math.min(Math.max(att.seenAt, autoAnswered), now);
      // Only forward: touching at an older time would shorten the expiry. Persisted, so
      // that a wake after hibernation restores expiries no older than the last alarm.
      if (heard > lease.touchedAt && reg.touch(att.leaseId, heard)) changed = true;
      live.push(att.leaseId);
    }
    if (reg.reconcile(live, now).length > 0) changed = true;
    if (this.#closeExpired(now)) changed = true;
    if (changed) await this.#persist();
    await this.#scheduleAlarm(now);
  }

  /** @param {number} now */
  async #expire(now) {
    if (this.#closeExpired(now)) await this.#persist();
    await this.#scheduleAlarm(now);
  }

  /**
   * Reclaims expired leases (also those the last acquire reclaimed lazily) and closes
   * their sockets. Returns whether anything was reclaimed.
   * @param {number} now
   */
  #closeExpired(now) {
    const expired = this.#registry.sweep(now);
    for (const id of expired) {
      for (const ws of this.ctx.getWebSockets(id)) closeQuietly(ws, CLOSE_LEASE_EXPIRED, EXPIRED_REASON);
    }
    return expired.length > 0;
  }

  async #persist() {
    /** @type {Record<string, unknown>} */
    const entries = { [SNAPSHOT_KEY]: this.#registry.snapshot() };
    if (this.#userId !== null) entries[USER_KEY] = this.#userId;
    await this.ctx.storage.put(entries);
  }

  /**
   * One alarm, driven by the earliest lease expiry; none when no lease is held, so an idle
   * user costs nothing.
   *
   * The alarm first runs a quarter TTL before a lease expires, to apply the heartbeats the
   * runtime answered meanwhile (the registry cannot extend a lease once it has expired,
   * and an alarm may run late). Only a lease that got no sign of life by then is looked at
   * again at its expiry, and closed if still silent. Touches only move expiries later, so
   * an alarm that fires early just finds nothing to do and moves itself.
   * @param {number} now
   */
  async #scheduleAlarm(now) {
    const leases = this.#userId === null ? [] : this.#registry.userStats(this.#userId, now).leases;
    if (leases.length === 0) {
      if (this.#alarmAt !== null) {
        await this.ctx.storage.deleteAlarm();
        this.#alarmAt = null;
      }
      return;
    }
    const margin = Math.floor(this.#registry.getOptions().ttlMs / 4);
    let next = Infinity;
    for (const lease of leases) {
      const refreshAt = lease.expiresAt - margin;
      next = Math.min(next, refreshAt > now ? refreshAt : lease.expiresAt);
    }
    const at = Math.max(next, now + 1);
    if (this.#alarmAt === null || at < this.#alarmAt) {
      await this.ctx.storage.setAlarm(at);
      this.#alarmAt = at;
    }
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
