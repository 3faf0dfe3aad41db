// What the Durable Object writes: its lease records and meta record (the layout is
// storage.mjs's), and its one alarm. Every write is one atomic batch of a few records,
// whatever the number of leases; counters changed by a refusal wait for the alarm (at
// most META_WRITE_DELAY_MS), so a reconnect storm costs no write per request.
import { LEASE_PREFIX, META_KEY, chunks, leaseRecord, metaRecord } from './storage.mjs';

/** @typedef {import('../../pkg/web/socket_lease.js').LeaseRegistry} Registry */

// How long a counter change that wrote nothing (a refusal) may wait for the alarm to
// write the meta record: a reconnect storm costs one write per second, not one per
// request, and the counters reach storage before the object can hibernate.
const META_WRITE_DELAY_MS = 1000;

export class Books {
  /** @type {string | null} the one user this object serves, once it has served one */
  userId = null;
  /** @type {string | null} the newest lease id issued, kept in the meta record */
  lastId = null;
  /** @type {number | null} the alarm time we last set, to avoid rewriting it */
  alarmAt = null;
  /** Whether the registry's counters changed since the meta record was last written. */
  #metaDirty = false;
  /** When the alarm must write them, if #metaDirty. */
  #metaDueAt = 0;
  #ctx;
  #registry;

  /**
   * @param {DurableObjectState} ctx
   * @param {() => Registry} registry the object's registry (replaced on wake)
   */
  constructor(ctx, registry) {
    this.#ctx = ctx;
    this.#registry = registry;
  }

  /** Whether the meta record waits to be written (by the alarm, or by any `store`). */
  get metaDirty() {
    return this.#metaDirty;
  }

  /**
   * Counters changed without a write (a refusal): has the alarm write the meta record
   * within META_WRITE_DELAY_MS, unless a write is already due. Any `store` writes it too.
   * @param {number} now
   */
  async countersChanged(now) {
    if (this.#metaDirty || this.userId === null) return;
    this.#metaDirty = true;
    this.#metaDueAt = now + META_WRITE_DELAY_MS;
    await this.setAlarm(now, []);
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
  async store(put, remove, keys = []) {
    const reg = this.#registry();
    /** @type {Array<[string, unknown]>} */
    const entries = [];
    const wasDirty = this.#metaDirty;
    if (this.userId !== null) {
      entries.push([META_KEY, metaRecord(reg.stats(), this.userId, this.lastId)]);
      this.#metaDirty = false;
    }
    const deletes = [...keys];
    for (const id of put) {
      const lease = reg.getLease(id);
      if (lease) entries.push([LEASE_PREFIX + id, leaseRecord(lease)]);
      else deletes.push(LEASE_PREFIX + id);
    }
    for (const id of remove) deletes.push(LEASE_PREFIX + id);
    const storage = this.#ctx.storage;
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
   * written (`countersChanged`); none when no lease is held and nothing waits, so an idle
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
  async setAlarm(now, expiries, { exact = false } = {}) {
    const reg = this.#registry();
    const margin = Math.floor(reg.getOptions().ttlMs / 4);
    let next = Infinity;
    for (const expiresAt of expiries) {
      const refreshAt = expiresAt - margin;
      next = Math.min(next, refreshAt > now ? refreshAt : expiresAt);
    }
    // Counters waiting to be written keep the alarm, whatever the leases.
    if (this.#metaDirty) next = Math.min(next, this.#metaDueAt);
    const storage = this.#ctx.storage;
    if (next === Infinity) {
      if (this.alarmAt !== null && (exact || reg.stats().active === 0)) {
        await storage.deleteAlarm();
        this.alarmAt = null;
      }
      return;
    }
    const at = Math.max(next, now + 1);
    if (this.alarmAt === null || at < this.alarmAt || (exact && this.alarmAt <= now)) {
      await storage.setAlarm(at);
      this.alarmAt = at;
    }
  }
}
