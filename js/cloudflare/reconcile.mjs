// Keeping the registry and the sockets one to one: each OPEN socket holds a live lease
// and each live lease has an OPEN socket. Close events are not trusted to arrive
// (workerd, like every host we target, has reports of lost closes), and the runtime
// answers heartbeats without waking the object, so the socket list and the runtime's
// timestamps are the truth the registry is brought back to.
import { CLOSE_LEASE_EXPIRED } from './protocol.mjs';
import { attachmentOf, closeLeases, closeWith, openSockets } from './sockets.mjs';

/** @typedef {import('../../pkg/web/socket_lease.js').LeaseRegistry} Registry */

// How long a count of OPEN sockets that matched the leases is trusted by connects at the
// limit. Counting visits every socket, and a reconnect storm at the limit would pay that
// on every refused request; with this, at most once a second. The price: a close event
// lost within that second can cause refusals for up to a second (Retry-After is at least
// one), after which the next connect counts again and reconciles.
const OPEN_COUNT_TRUST_MS = 1000;

/**
 * Reclaims expired leases (also those the last acquire reclaimed lazily) and closes
 * their sockets. Returns their ids.
 * @param {DurableObjectState} ctx
 * @param {Registry} reg
 * @param {number} now
 * @returns {string[]}
 */
export function closeExpired(ctx, reg, now) {
  const expired = reg.sweep(now);
  closeLeases(ctx, expired, CLOSE_LEASE_EXPIRED);
  return expired;
}

/**
 * Touches the lease at `now`. When the registry says it already expired, the runtime's
 * record of the last auto-answered heartbeat may be newer than what the registry knows;
 * apply that first, then retry.
 * @param {DurableObjectState} ctx
 * @param {Registry} reg
 * @param {WebSocket} ws
 * @param {string} leaseId
 * @param {number} now
 */
export function touchLease(ctx, reg, ws, leaseId, now) {
  if (reg.touch(leaseId, now)) return true;
  const heard = ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? 0;
  return heard > 0 && heard <= now && reg.touch(leaseId, heard) && reg.touch(leaseId, now);
}

/**
 * Applies every socket's latest sign of life, releases leases without an OPEN socket,
 * closes sockets without a lease, then expires and closes what is past its TTL. Visits
 * every socket. Returns what the object must write (released and expired leases) and
 * the expiries of the leases left, for the alarm.
 * @param {DurableObjectState} ctx
 * @param {Registry} reg
 * @param {number} now
 * @returns {{ released: string[], expired: string[], expiries: Iterable<number> }}
 */
export function reconcile(ctx, reg, now) {
  const ttlMs = reg.getOptions().ttlMs;
  /** @type {string[]} */
  const live = [];
  /** @type {Map<string, number>} lease id -> expiry, for the alarm */
  const expiries = new Map();
  for (const ws of openSockets(ctx)) {
    const att = attachmentOf(ws);
    const lease = att ? reg.getLease(att.leaseId) : null;
    if (!att || !lease) {
      closeWith(ws, CLOSE_LEASE_EXPIRED);
      continue;
    }
    // Signs of life, oldest first (a lease cannot be extended once expired, so the
    // older one must renew it before the newer one can): the last one this object
    // applied, kept in the attachment (a wake has applied it already, see wake.mjs), and
    // the last heartbeat the runtime answered without waking us.
    const autoAnswered = ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? 0;
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
  const expired = closeExpired(ctx, reg, now);
  for (const id of expired) expiries.delete(id);
  return { released, expired, expiries: expiries.values() };
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
 */
export class AcquireCheck {
  /** When a connect at the limit last counted as many OPEN sockets as leases. */
  #openMatchedAt = -Infinity;

  /**
   * @param {DurableObjectState} ctx
   * @param {Registry} reg
   * @param {number} now
   * @param {number | null} alarmAt
   */
  mustReconcile(ctx, reg, now, alarmAt) {
    const active = reg.stats().active;
    if (active === 0) return ctx.getWebSockets().length > 0;
    if (alarmAt === null || now >= alarmAt) return true;
    const options = reg.getOptions();
    if (active < options.perUserLimit) return false;
    if (options.onLimit === 'evict-idle') return true;
    if (now - this.#openMatchedAt < OPEN_COUNT_TRUST_MS) return false;
    if (openSockets(ctx).length !== active) return true;
    this.#openMatchedAt = now;
    return false;
  }
}
