'use strict';
// The leases whose sockets this node holds: what it sweeps, reconciles, writes back after
// an outage and is told about when another node removes one. Bookkeeping only: which
// lease may be granted, reused or expired is decided by Redis's scripts, or while Redis
// is away by the core (local.cjs).

/**
 * @typedef {object} Held
 * @property {string} userId
 * @property {number} acquiredAt      Redis's time (the host's for a lease accepted while Redis was away)
 * @property {number} renewedAt       host clock when the lease was last renewed: confirmed by Redis, or
 *                                    touched here while Redis was away (sweep asks Redis about stale
 *                                    ones; an outage starts their expiry from it, never by comparing the
 *                                    host clock with Redis's times)
 * @property {boolean} local          accepted while Redis was away (failMode "open"); not in Redis yet
 * @property {string} connectionKey   '' for none
 * @property {number} [indexedAt]     in a Redis Cluster, host clock when this node last wrote the lease's
 *                                    id index entry (0: to write again), see keys.cjs
 */

class HeldLeases {
  /** @type {Map<string, Held>} */
  #leases = new Map();
  /** Leases per user. @type {Map<string, number>} */
  #users = new Map();
  /** Most leases held at once since start. */
  highWater = 0;

  get size() {
    return this.#leases.size;
  }

  /** Users with at least one lease held here. */
  get users() {
    return this.#users.size;
  }

  /**
   * Leases held here for `userId`.
   * @param {string} userId
   */
  countOf(userId) {
    return this.#users.get(userId) ?? 0;
  }

  /** @param {string} id */
  get(id) {
    return this.#leases.get(id);
  }

  /** @param {string} id */
  has(id) {
    return this.#leases.has(id);
  }

  entries() {
    return this.#leases.entries();
  }

  keys() {
    return this.#leases.keys();
  }

  /**
   * @param {string} id
   * @param {Held} held
   */
  add(id, held) {
    this.#leases.set(id, held);
    this.#users.set(held.userId, (this.#users.get(held.userId) ?? 0) + 1);
    if (this.#leases.size > this.highWater) this.highWater = this.#leases.size;
  }

  /**
   * @param {string} id
   * @returns {Held | undefined} what was held, if it was
   */
  delete(id) {
    const held = this.#leases.get(id);
    if (!held) return undefined;
    this.#leases.delete(id);
    const n = /** @type {number} */ (this.#users.get(held.userId));
    if (n > 1) this.#users.set(held.userId, n - 1);
    else this.#users.delete(held.userId);
    return held;
  }

  /** Leases accepted while Redis was away and not written back yet. */
  countLocal() {
    let n = 0;
    for (const held of this.#leases.values()) if (held.local) n++;
    return n;
  }
}

module.exports = { HeldLeases };
