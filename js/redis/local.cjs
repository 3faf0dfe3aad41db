'use strict';
// While Redis is away: this node's leases in a core LeaseRegistry, which decides what
// the quota rules decide (the limit, reuse by connection key, near-limit and
// limit-reached, expiry and reclaim) exactly as the in-memory registry does, on the host
// clock. Redis's scripts are the rules of the other engine; nothing here repeats them.
//
// Made when an outage starts (and at start-up, before Redis first answers) from the
// leases this node holds, which it then mirrors until Redis is back. Leases accepted
// here get the core's ids (TypeIDs, `conn_…`) and are written to Redis when it returns.
// The leases held from before get ids of the core's making too, which never leave this
// file: it answers with the ids the store knows.
//
// Policy and global limit are not the store's: this node sees only its own leases, so it
// never evicts (it refuses at the limit) and applies no global limit.

const { LeaseRegistry } = require('../node.cjs');

/** @typedef {import('socket-lease').LeaseEvent} LeaseEvent */
/** @typedef {import('./options.cjs').QuotaOptions} QuotaOptions */
/** @typedef {import('./held.cjs').Held} Held */
/**
 * @typedef {{ ok: true, id: string, reused: boolean, acquiredAt: number, touchedAt: number, expiresAt: number, reclaimed: string[] }
 *   | { ok: false, reason: import('socket-lease').RefusalReason, limit: number, active: number, retryAfterMs: number, reclaimed: string[] }} LocalAcquire
 */

const { maxLimit: MAX_LIMIT } = LeaseRegistry.coreLimits();

class LocalQuota {
  #registry;
  /** The store's id of each lease -> the registry's. @type {Map<string, string>} */
  #toCore = new Map();
  /** The registry's id -> the store's. @type {Map<string, string>} */
  #fromCore = new Map();
  /** @type {Record<string, number>} */
  #userLimits;
  /** Taking in a lease granted elsewhere: its refusals and limit events are not news. */
  #adopting = false;
  #onEvent;

  /**
   * @param {QuotaOptions} quota
   * @param {(event: LeaseEvent) => void} onEvent the registry's events, with the store's lease ids
   */
  constructor(quota, onEvent) {
    this.#userLimits = quota.userLimits;
    this.#onEvent = onEvent;
    this.#registry = new LeaseRegistry({
      perUserLimit: quota.perUserLimit,
      userLimits: quota.userLimits,
      ttlMs: quota.ttlMs,
      warnRatio: quota.warnRatio,
      onLimit: 'reject',
      // The store has no bound on users (Redis's maxmemory is); neither has this table.
      maxUsers: MAX_LIMIT,
      onEvent: (event) => this.#event(event),
    });
  }

  /**
   * `adopt` for every lease this node holds, when the table is made.
   * @param {Iterable<[string, Held]>} held
   * @returns {string[]} what `adopt` returns, for all of them
   */
  adoptAll(held) {
    // Oldest renewal first: the registry's expiry queue then stays in order.
    const leases = [...held].sort((a, b) => a[1].renewedAt - b[1].renewedAt);
    /** @type {string[]} */
    const reclaimed = [];
    for (const [id, h] of leases) reclaimed.push(...this.adopt(id, h));
    return reclaimed;
  }

  /** @param {LeaseEvent} event */
  #event(event) {
    if (this.#adopting && event.type !== 'expired') return;
    if (event.leaseId !== undefined) event.leaseId = this.#fromCore.get(event.leaseId) ?? event.leaseId;
    this.#onEvent(event);
  }

  /**
   * @param {string} id the store's
   * @param {string} coreId the registry's
   */
  #link(id, coreId) {
    this.#toCore.set(id, coreId);
    this.#fromCore.set(coreId, id);
  }

  /**
   * The store's ids of leases the registry removed, which this table no longer holds.
   * @param {Iterable<string>} coreIds
   */
  #gone(coreIds) {
    /** @type {string[]} */
    const out = [];
    for (const coreId of coreIds) {
      const id = this.#fromCore.get(coreId);
      if (id === undefined) continue; // reported before (reclaimed, then listed by sweep)
      this.#fromCore.delete(coreId);
      this.#toCore.delete(id);
      out.push(id);
    }
    return out;
  }

  /**
   * Takes in a lease this node holds that was granted before (by Redis, or here during an
   * earlier outage): it counts toward its user's limit, keeps its connection key, and
   * expires a TTL after its last renewal. Taken in even above the limit (this node may
   * still hold leases that Redis already reclaimed): the limit applies to new leases.
   * @param {string} id
   * @param {Held} held
   * @returns {string[]} leases of the same user that had expired by its last renewal
   *   (the registry reclaimed them; the sweep lists them too)
   */
  adopt(id, held) {
    const reg = this.#registry;
    const { userId, connectionKey, renewedAt: now } = held;
    /** @type {string[]} */
    const reclaimed = [];
    /** @param {{ connectionKey?: string, now: number }} options */
    const acquire = (options) => {
      const r = reg.acquire(userId, options);
      if (r.reclaimed) reclaimed.push(...r.reclaimed);
      return r;
    };
    this.#adopting = true;
    try {
      let options = connectionKey ? { connectionKey, now } : { now };
      let r = acquire(options);
      if (r.ok && r.reused) {
        // Another lease held here has this key (the key moved, and this node has not
        // heard yet): this one counts, without it.
        options = { now };
        r = acquire(options);
      }
      if (!r.ok) {
        reg.setUserLimit(userId, MAX_LIMIT);
        r = acquire(options);
        reg.setUserLimit(userId, Object.hasOwn(this.#userLimits, userId) ? this.#userLimits[userId] : null);
      }
      if (r.ok && r.lease) this.#link(id, r.lease.id);
    } finally {
      this.#adopting = false;
    }
    return this.#gone(reclaimed);
  }

  /**
   * A new lease for `userId`, or the one its connection key already has, decided by the
   * registry at `now` (host clock).
   * @param {string} userId
   * @param {string} connectionKey '' for none
   * @param {number} now
   * @returns {LocalAcquire}
   */
  acquire(userId, connectionKey, now) {
    const r = this.#registry.acquire(userId, connectionKey ? { connectionKey, now } : { now });
    const reclaimed = r.reclaimed ? this.#gone(r.reclaimed) : [];
    if (!r.ok) return { ok: false, reason: r.reason, limit: r.limit, active: r.active, retryAfterMs: r.retryAfterMs, reclaimed };
    const lease = /** @type {import('socket-lease').Lease} */ (r.lease);
    let id = this.#fromCore.get(lease.id);
    if (id === undefined) {
      id = lease.id;
      this.#link(id, id);
    }
    return { ok: true, id, reused: r.reused, acquiredAt: lease.acquiredAt, touchedAt: lease.touchedAt, expiresAt: lease.expiresAt, reclaimed };
  }

  /**
   * The heartbeat: `false` when the lease has expired (its socket was silent for the TTL)
   * or is not here.
   * @param {string} id
   * @param {number} now
   */
  touch(id, now) {
    const coreId = this.#toCore.get(id);
    return coreId !== undefined && this.#registry.touch(coreId, now);
  }

  /**
   * Whether the lease is here and unexpired at `now`.
   * @param {string} id
   * @param {number} now
   */
  alive(id, now) {
    const coreId = this.#toCore.get(id);
    const lease = coreId === undefined ? null : this.#registry.getLease(coreId);
    return lease !== null && lease.expiresAt > now;
  }

  /**
   * The lease is no longer this node's (released, revoked, expired in Redis).
   * @param {string} id
   * @param {number} now
   */
  drop(id, now) {
    const coreId = this.#toCore.get(id);
    if (coreId === undefined) return;
    this.#toCore.delete(id);
    this.#fromCore.delete(coreId);
    this.#registry.release(coreId, now);
  }

  /**
   * Removes the leases that expired by `now` and returns their ids. (Those an acquire or
   * an adoption reclaimed were returned then, and are not listed again.)
   * @param {number} now
   */
  sweep(now) {
    return this.#gone(this.#registry.sweep(now));
  }

  free() {
    this.#registry.free();
  }
}

module.exports = { LocalQuota };
