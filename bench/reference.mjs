// A pure-JS reference implementation of the lease registry's core semantics, written the
// way a good JS engineer would write it without socket-lease: `Map`s and `Set`s, one
// object per lease, a binary min-heap of leases by expiry (each lease knows its position), TypeID strings
// as keys. It is the baseline the benchmark (bench/core.mjs) compares the package against,
// so it is meant to be fast and correct, not a straw man; tests/js/bench/reference.test.mjs
// checks it against the package operation by operation.
//
// Same semantics as `LeaseRegistry` for what it covers: per-user limits (`perUserLimit`,
// `userLimits`), `globalLimit`, `maxUsers`, `ttlMs` with expiry at `now >= expiresAt`;
// expired leases of a user dropped before counting (correctness never waits for a
// sweep); one lease per (user, connectionKey); ids `conn_`/`run_`/`thread_` over one
// UUIDv7 (TypeID suffix shared); release by any derived id, idempotent, unknown releases
// counted; `touch`; `sweep` costing what expired. Left out: eviction policies, dry-run,
// events, metrics, snapshots.

const KINDS = new Set(['conn', 'run', 'thread']);
const PREFIX_RE = /^[a-z]([a-z_]{0,61}[a-z])?$/;
const SUFFIX_RE = /^[0-7][0-9a-hjkmnp-tv-z]{25}$/;
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

/** Char codes of the alphabet: an id is built by one `String.fromCharCode` call, flat. */
const CODES = Array.from(ALPHABET, (c) => c.charCodeAt(0));

export class ReferenceLeaseError extends Error {
  /** @param {string} message @param {string} code */
  constructor(message, code) {
    super(message);
    this.name = 'ReferenceLeaseError';
    this.code = code;
  }
}

/**
 * UUIDv7 TypeID suffixes (RFC 9562 section 6.2 method 1): a 12-bit counter in `rand_a`,
 * re-seeded at random each millisecond, 62 fresh random bits in `rand_b` from a buffer of
 * `crypto.getRandomValues`; a counter overflow or a clock stepping back carries into the
 * timestamp, so suffixes from one generator strictly increase.
 */
export class SuffixGenerator {
  #random = new Uint32Array(2048);
  #next = 2048;
  #ms = -1;
  #counter = 0;
  /** The first 10 suffix characters are exactly the 48-bit timestamp: cached per ms. */
  #head = new Array(10).fill(0);

  #rand() {
    if (this.#next === this.#random.length) {
      crypto.getRandomValues(this.#random);
      this.#next = 0;
    }
    return this.#random[this.#next++];
  }

  /** @param {number} now milliseconds since the epoch */
  next(now) {
    if (now > this.#ms) {
      this.#setMs(now);
    } else if (++this.#counter > 0xfff) {
      this.#setMs(this.#ms + 1);
    }
    const r1 = this.#rand();
    const r2 = this.#rand();
    // 80 bits after the timestamp: version 7 (4), counter (12), variant 0b10 (2), rand_b
    // (62: r1's top 30 bits, r2's 32), as 16 characters of 5 bits.
    const a = (7 << 16) | (this.#counter << 4) | (2 << 2) | (r1 >>> 30);
    const b = (r1 >>> 10) & 0xfffff;
    const c = ((r1 & 0xff) << 12) | (r2 >>> 20);
    const d = r2 & 0xfffff;
    const h = this.#head;
    const C = CODES;
    return String.fromCharCode(
      h[0],
      h[1],
      h[2],
      h[3],
      h[4],
      h[5],
      h[6],
      h[7],
      h[8],
      h[9],
      C[a >>> 15],
      C[(a >>> 10) & 31],
      C[(a >>> 5) & 31],
      C[a & 31],
      C[b >>> 15],
      C[(b >>> 10) & 31],
      C[(b >>> 5) & 31],
      C[b & 31],
      C[c >>> 15],
      C[(c >>> 10) & 31],
      C[(c >>> 5) & 31],
      C[c & 31],
      C[d >>> 15],
      C[(d >>> 10) & 31],
      C[(d >>> 5) & 31],
      C[d & 31],
    );
  }

  /** @param {number} ms */
  #setMs(ms) {
    this.#ms = ms;
    // Top bit clear, so a millisecond has at least 2048 ids before it carries.
    this.#counter = this.#rand() & 0x7ff;
    for (let i = 0; i < 10; i++) this.#head[i] = CODES[Math.floor(ms / 2 ** (45 - 5 * i)) % 32];
  }
}

/**
 * @typedef {object} Lease
 * @property {string} id the lease id, `conn_<suffix>`
 * @property {string} suffix
 * @property {string} userId
 * @property {string | undefined} connectionKey
 * @property {number} acquiredAt
 * @property {number} touchedAt
 * @property {number} expiresAt
 * @property {boolean} live
 * @property {number} heapIndex position in the expiry heap, -1 once removed
 */

/** @typedef {{ leases: Set<Lease>, keys: Map<string, Lease> | null }} User */

/**
 * @typedef {object} ReferenceOptions
 * @property {number} [perUserLimit]
 * @property {Record<string, number>} [userLimits]
 * @property {number | null} [globalLimit]
 * @property {number} [ttlMs]
 * @property {number} [maxUsers]
 */

export class ReferenceRegistry {
  /** @type {Map<string, Lease>} suffix -> lease */
  #bySuffix = new Map();
  /** @type {Map<string, User>} only users holding leases */
  #users = new Map();
  /** @type {Lease[]} min-heap on `expiresAt`; each lease knows its index, so a release
   * takes it out at once (lazy deletion would keep released leases reachable, which in a
   * garbage-collected heap costs more than the O(log n) removal) */
  #heap = [];
  /** @type {string[]} lease ids reclaimed by `acquire`, reported by the next sweep */
  #pendingExpired = [];
  #ids = new SuffixGenerator();
  #counters = { acquired: 0, released: 0, expired: 0, rejected: 0, unknownReleases: 0 };

  /** @param {ReferenceOptions} [options] */
  constructor({ perUserLimit = 20, userLimits = {}, globalLimit = null, ttlMs = 90_000, maxUsers = 1_000_000 } = {}) {
    this.perUserLimit = perUserLimit;
    this.userLimits = new Map(Object.entries(userLimits));
    this.globalLimit = globalLimit;
    this.ttlMs = ttlMs;
    this.maxUsers = maxUsers;
  }

  /**
   * @param {string} userId
   * @param {{ connectionKey?: string, now?: number }} [options]
   */
  acquire(userId, { connectionKey, now = Date.now() } = {}) {
    if (typeof userId !== 'string' || userId.length === 0) {
      throw new ReferenceLeaseError('user id must be a non-empty string', 'INVALID_USER_ID');
    }
    const limit = this.userLimits.get(userId) ?? this.perUserLimit;
    let user = this.#users.get(userId);
    if (user) {
      for (const lease of user.leases) {
        if (lease.expiresAt <= now) {
          this.#remove(lease);
          this.#counters.expired++;
          this.#pendingExpired.push(lease.id);
        }
      }
      const existing = connectionKey === undefined ? undefined : user.keys?.get(connectionKey);
      if (existing) {
        this.touch(existing, now);
        return { ok: true, lease: existing, reused: true };
      }
      if (user.leases.size === 0) user = undefined;
    }
    if (!user && this.#users.size >= this.maxUsers) {
      this.#purge(now);
      if (this.#users.size >= this.maxUsers) {
        return this.#refuse('user-table-full', this.maxUsers, this.#users.size, this.#nextExpiry(now));
      }
    }
    const userActive = user ? user.leases.size : 0;
    if (userActive >= limit) {
      let earliest = Infinity;
      for (const lease of /** @type {User} */ (user).leases) earliest = Math.min(earliest, lease.expiresAt);
      return this.#refuse('user-limit', limit, userActive, userActive ? Math.max(1, earliest - now) : 1);
    }
    if (this.globalLimit !== null && this.#bySuffix.size >= this.globalLimit) {
      this.#purge(now);
      if (this.#bySuffix.size >= this.globalLimit) {
        return this.#refuse('global-limit', this.globalLimit, this.#bySuffix.size, this.#nextExpiry(now));
      }
    }

    const suffix = this.#ids.next(now);
    /** @type {Lease} */
    const lease = {
      id: 'conn_' + suffix,
      suffix,
      userId,
      connectionKey,
      acquiredAt: now,
      touchedAt: now,
      expiresAt: now + this.ttlMs,
      live: true,
      heapIndex: -1,
    };
    user = this.#users.get(userId);
    if (!user) {
      user = { leases: new Set(), keys: null };
      this.#users.set(userId, user);
    }
    user.leases.add(lease);
    if (connectionKey !== undefined) (user.keys ??= new Map()).set(connectionKey, lease);
    this.#bySuffix.set(suffix, lease);
    this.#push(lease);
    this.#counters.acquired++;
    return { ok: true, lease, reused: false };
  }

  /**
   * Releases a lease given as its object (as a host that kept it would) or by any of its
   * ids. `false`, and counted, when unknown or already released.
   * @param {Lease | string} leaseOrId
   * @param {number} [_now] accepted for symmetry with the package; release needs no clock
   */
  release(leaseOrId, _now) {
    const lease = typeof leaseOrId === 'string' ? this.#resolve(leaseOrId) : leaseOrId;
    if (!lease?.live) {
      this.#counters.unknownReleases++;
      return false;
    }
    this.#remove(lease);
    this.#counters.released++;
    return true;
  }

  /**
   * Extends the lease's expiry; `false` when unknown, released or already expired.
   * @param {Lease | string} leaseOrId
   * @param {number} [now]
   */
  touch(leaseOrId, now = Date.now()) {
    const lease = typeof leaseOrId === 'string' ? this.#resolve(leaseOrId) : leaseOrId;
    if (!lease?.live || now >= lease.expiresAt) return false;
    lease.touchedAt = Math.max(lease.touchedAt, now);
    const next = now + this.ttlMs;
    if (next !== lease.expiresAt) {
      lease.expiresAt = next;
      this.#fix(lease.heapIndex);
    }
    return true;
  }

  /**
   * Removes every lease expired at `now`; returns their ids and those reclaimed lazily by
   * `acquire` since the last sweep.
   * @param {number} [now]
   */
  sweep(now = Date.now()) {
    this.#purge(now);
    const ids = this.#pendingExpired;
    this.#pendingExpired = [];
    return ids;
  }

  /** The lease named by any derived id, or `null`. @param {string} anyId */
  getLease(anyId) {
    return this.#resolve(anyId) ?? null;
  }

  stats() {
    return { active: this.#bySuffix.size, users: this.#users.size, ...this.#counters };
  }

  /** Entries in the expiry heap (for the churn test). */
  get expiryEntries() {
    return this.#heap.length;
  }

  // ----- internals -------------------------------------------------------------------

  /** @param {string} anyId */
  #resolve(anyId) {
    if (typeof anyId !== 'string') throw new ReferenceLeaseError('id must be a string', 'INVALID_ID');
    const sep = anyId.lastIndexOf('_');
    const kind = anyId.slice(0, Math.max(sep, 0));
    const suffix = anyId.slice(sep + 1);
    if ((sep !== -1 && !PREFIX_RE.test(kind)) || !SUFFIX_RE.test(suffix)) {
      throw new ReferenceLeaseError(`not a TypeID: ${JSON.stringify(anyId)}`, 'INVALID_ID');
    }
    return KINDS.has(kind) ? this.#bySuffix.get(suffix) : undefined;
  }

  /** @param {Lease} lease */
  #remove(lease) {
    lease.live = false;
    this.#heapRemove(lease.heapIndex);
    this.#bySuffix.delete(lease.suffix);
    const user = /** @type {User} */ (this.#users.get(lease.userId));
    user.leases.delete(lease);
    if (lease.connectionKey !== undefined) user.keys?.delete(lease.connectionKey);
    if (user.leases.size === 0) this.#users.delete(lease.userId);
  }

  /**
   * @param {string} reason @param {number} limit @param {number} active @param {number} retryAfterMs
   * @returns {{ ok: false, reason: string, limit: number, active: number, retryAfterMs: number }}
   */
  #refuse(reason, limit, active, retryAfterMs) {
    this.#counters.rejected++;
    return { ok: false, reason, limit, active, retryAfterMs };
  }

  /** @param {number} now */
  #purge(now) {
    const heap = this.#heap;
    while (heap.length > 0 && heap[0].expiresAt <= now) {
      const lease = heap[0];
      this.#remove(lease);
      this.#counters.expired++;
      this.#pendingExpired.push(lease.id);
    }
  }

  /** Milliseconds until the next lease anywhere expires (at least 1). @param {number} now */
  #nextExpiry(now) {
    return this.#heap.length > 0 ? Math.max(1, this.#heap[0].expiresAt - now) : 1;
  }

  /** @param {Lease} lease */
  #push(lease) {
    lease.heapIndex = this.#heap.push(lease) - 1;
    this.#siftUp(lease.heapIndex);
  }

  /** @param {number} i */
  #heapRemove(i) {
    const heap = this.#heap;
    const removed = heap[i];
    const last = /** @type {Lease} */ (heap.pop());
    removed.heapIndex = -1;
    if (last !== removed) {
      heap[i] = last;
      last.heapIndex = i;
      this.#fix(i);
    }
  }

  /** Restores the heap order around `i` after its key changed. @param {number} i */
  #fix(i) {
    if (i > 0 && this.#heap[(i - 1) >> 1].expiresAt > this.#heap[i].expiresAt) this.#siftUp(i);
    else this.#siftDown(i);
  }

  /** @param {number} i */
  #siftUp(i) {
    const heap = this.#heap;
    const lease = heap[i];
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent].expiresAt <= lease.expiresAt) break;
      heap[i] = heap[parent];
      heap[i].heapIndex = i;
      i = parent;
    }
    heap[i] = lease;
    lease.heapIndex = i;
  }

  /** @param {number} i */
  #siftDown(i) {
    const heap = this.#heap;
    const lease = heap[i];
    const n = heap.length;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && heap[child + 1].expiresAt < heap[child].expiresAt) child++;
      if (heap[child].expiresAt >= lease.expiresAt) break;
      heap[i] = heap[child];
      heap[i].heapIndex = i;
      i = child;
    }
    heap[i] = lease;
    lease.heapIndex = i;
  }
}
