// The lifecycle's per-connection bookkeeping, kept out of Map and Set.
//
// Why: a Map or Set that gains and loses an entry for every connection rebuilds its hash
// table every few connections, and V8 leaves each replaced table pointing at its
// successor (for iterators still walking it), entries and all. Once one of those tables
// is in the old generation (after any full collection), every later table, and everything
// their entries reach (the connection, its socket, its request), survives each young
// collection and is copied and promoted until the next full one. Measured on Deno 2.9
// (bench/churn-deno.mjs, V8's sampling heap profiler counting what young collections
// kept): about 5 KB promoted per connection cycle with the Maps, 40 B for the bare server,
// and scavenges of 3-4 ms instead of 0.2 ms; the same bare server given one such Map
// and one full collection promoted 2.7 KB per cycle. The structures below allocate
// nothing per connection: a list threads through the connections themselves, and the
// lease-id index is an open-addressing table over plain arrays.

/**
 * A connection as the structures below see it: the lifecycle's Connection.
 * @typedef {{ listPrev: any, listNext: any, list: number }} Linked
 */

/**
 * An intrusive doubly-linked list of connections, oldest first. A connection is on at
 * most one list at a time (`list` says which); its links are cleared when it leaves, so a
 * connection that has ended (and may sit in the old generation) keeps no other alive.
 * @template {Linked} T
 */
export class ConnList {
  /** @type {T | null} */ #head = null;
  /** @type {T | null} */ #tail = null;
  size = 0;

  /** @param {number} tag  what `list` holds on this list's connections (not 0) */
  constructor(tag) {
    this.tag = tag;
  }

  /** @param {T} conn */
  has(conn) {
    return conn.list === this.tag;
  }

  /** Appends `conn` (already here: nothing changes). It must be on no other list. @param {T} conn */
  add(conn) {
    if (conn.list === this.tag) return;
    conn.list = this.tag;
    conn.listPrev = this.#tail;
    conn.listNext = null;
    if (this.#tail === null) this.#head = conn;
    else this.#tail.listNext = conn;
    this.#tail = conn;
    this.size++;
  }

  /** Removes `conn` if it is on this list; whether it was. @param {T} conn */
  delete(conn) {
    if (conn.list !== this.tag) return false;
    const prev = conn.listPrev;
    const next = conn.listNext;
    if (prev === null) this.#head = next;
    else prev.listNext = next;
    if (next === null) this.#tail = prev;
    else next.listPrev = prev;
    conn.listPrev = null;
    conn.listNext = null;
    conn.list = 0;
    this.size--;
    return true;
  }

  /** A snapshot, oldest first: callers may end connections while they walk it. @returns {T[]} */
  toArray() {
    /** @type {T[]} */
    const out = [];
    for (let c = this.#head; c !== null; c = c.listNext) out.push(c);
    return out;
  }
}

const EMPTY = null;
/** Smallest table; it never shrinks below this. */
const MIN_CAPACITY = 16;

/**
 * FNV-1a over the string's UTF-16 code units, then a final mix (linear probing needs the
 * low bits to depend on every unit). Lease ids come from the store, not from clients.
 * @param {string} s
 */
function hashOf(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  return h ^ (h >>> 12);
}

/**
 * Lease id -> value, the same contract as a Map<string, V> for get, set, delete and size,
 * without allocating per entry: linear probing over three arrays (keys, values, and each
 * key's hash, so that a delete's backward shift and a resize hash nothing again), deletion
 * by backward shift (no tombstones). Grows at half full; shrinks to half when under an
 * eighth full, so a spike of connections does not pin its table forever.
 * @template V
 */
export class LeaseIndex {
  /** @type {(string | null)[]} */ #keys;
  /** @type {(V | null)[]} */ #values;
  /** @type {number[]} */ #hashes;
  #mask;
  size = 0;

  constructor() {
    this.#keys = new Array(MIN_CAPACITY).fill(EMPTY);
    this.#values = new Array(MIN_CAPACITY).fill(EMPTY);
    this.#hashes = new Array(MIN_CAPACITY).fill(0);
    this.#mask = MIN_CAPACITY - 1;
  }

  /** The slot holding `key`, or -1. @param {string} key @param {number} hash */
  #find(key, hash) {
    const keys = this.#keys;
    const mask = this.#mask;
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const k = keys[i];
      if (k === EMPTY) return -1;
      if (k === key) return i;
    }
  }

  /** @param {unknown} key @returns {V | undefined} */
  get(key) {
    if (typeof key !== 'string' || this.size === 0) return undefined;
    const i = this.#find(key, hashOf(key));
    return i < 0 ? undefined : /** @type {V} */ (this.#values[i]);
  }

  /** @param {string} key @param {V} value */
  set(key, value) {
    const hash = hashOf(key);
    const at = this.#find(key, hash);
    if (at >= 0) {
      this.#values[at] = value;
      return this;
    }
    if ((this.size + 1) * 2 > this.#keys.length) this.#resize(this.#keys.length * 2);
    this.#insert(key, value, hash);
    this.size++;
    return this;
  }

  /** @param {string} key @param {V} value @param {number} hash */
  #insert(key, value, hash) {
    const keys = this.#keys;
    const mask = this.#mask;
    let i = hash & mask;
    while (keys[i] !== EMPTY) i = (i + 1) & mask;
    keys[i] = key;
    this.#values[i] = value;
    this.#hashes[i] = hash;
  }

  /** @param {string} key */
  delete(key) {
    if (typeof key !== 'string' || this.size === 0) return false;
    let hole = this.#find(key, hashOf(key));
    if (hole < 0) return false;
    const keys = this.#keys;
    const values = this.#values;
    const hashes = this.#hashes;
    const mask = this.#mask;
    // Backward shift: every entry after the hole in its probe run that may live in the
    // hole moves into it, so lookups never need tombstones.
    for (let i = (hole + 1) & mask; ; i = (i + 1) & mask) {
      const k = keys[i];
      if (k === EMPTY) break;
      const home = hashes[i] & mask;
      // Movable when its home is not in the cyclic range (hole, i].
      if (hole <= i ? home <= hole || home > i : home <= hole && home > i) {
        keys[hole] = k;
        values[hole] = values[i];
        hashes[hole] = hashes[i];
        hole = i;
      }
    }
    keys[hole] = EMPTY;
    values[hole] = EMPTY;
    this.size--;
    if (this.size * 8 < keys.length && keys.length > MIN_CAPACITY) this.#resize(keys.length / 2);
    return true;
  }

  /** The values, in no particular order. @returns {V[]} */
  values() {
    /** @type {V[]} */
    const out = [];
    const keys = this.#keys;
    for (let i = 0; i < keys.length; i++) if (keys[i] !== EMPTY) out.push(/** @type {V} */ (this.#values[i]));
    return out;
  }

  /** @param {number} capacity  a power of two */
  #resize(capacity) {
    const keys = this.#keys;
    const values = this.#values;
    const hashes = this.#hashes;
    this.#keys = new Array(capacity).fill(EMPTY);
    this.#values = new Array(capacity).fill(EMPTY);
    this.#hashes = new Array(capacity).fill(0);
    this.#mask = capacity - 1;
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      if (k !== EMPTY) this.#insert(k, /** @type {V} */ (values[i]), hashes[i]);
    }
  }
}
