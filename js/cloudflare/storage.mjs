// How a user's leases are laid out in Durable Object storage.
//
// One small record per lease, under its own key, plus one small meta record:
//
//   socket-lease:lease:<conn_...>  { acquiredAt, touchedAt, expiresAt, connectionKey? }  ~100 B
//   socket-lease:meta              { format, userId, lastId, counters }                  ~250 B
//
// A connect writes its lease's record and the meta record; a release deletes the record
// and rewrites the meta record. Every write is therefore a few hundred bytes whatever the
// number of leases, which fits both storage kinds (KV-backed classes: 128 KiB per value
// and 2 KiB per key; SQLite-backed: 2 MB per key and value) up to the 32,768 sockets an
// object can hold. (The adapter used to rewrite one snapshot of the whole registry on every
// connect and release: ~50 B per lease, so 1.6 MB near the cap, over the KV-backed limit
// above ~2,700 leases.)
//
// Retention: when the last lease is released, the meta record stays (with no alarm, so an
// idle user costs this storage and no wake-up): ~250 B plus the user id, per user that ever
// connected, for as long as the object exists. It holds the counters, which must never go
// back (Prometheus counters), and the newest lease id. Deleting it when the user goes idle
// would reset both; a host that must forget a user (e.g. on account deletion) deletes that
// user's object storage itself.
//
// On wake the records are read back with one `list({ prefix })` and turned into the core's
// snapshot format (version 2, documented in src/registry/snapshot.rs), so that
// `LeaseRegistry.restore` rebuilds the registry with the same lease ids the sockets carry.
// Kept free of runtime imports so that Node tests can check it against the core.

/** Keys of the per-lease records: this prefix and the lease id (`conn_...`). */
export const LEASE_PREFIX = 'socket-lease:lease:';
/** Key of the meta record. */
export const META_KEY = 'socket-lease:meta';
/** Keys of the layout before per-lease records (one snapshot value); read once to migrate. */
export const LEGACY_SNAPSHOT_KEY = 'socket-lease:snapshot';
export const LEGACY_USER_KEY = 'socket-lease:user';
/** Version of this layout, in the meta record. */
export const STORAGE_FORMAT = 2;
/**
 * Keys per `put`/`delete` call: the KV-backed storage API takes at most 128. Larger
 * batches are split into calls issued without an `await` in between, which the runtime
 * coalesces into one atomic write.
 */
export const MAX_KEYS_PER_CALL = 128;

/**
 * @typedef {object} LeaseRecord
 * @property {number} acquiredAt
 * @property {number} touchedAt
 * @property {number} expiresAt
 * @property {string} [connectionKey]
 */

/**
 * @typedef {object} Counters the core's counters, as `registry.stats()` names them
 * @property {number} acquired
 * @property {number} released
 * @property {number} expired
 * @property {number} evicted
 * @property {number} rejected
 * @property {number} unknownReleases
 * @property {number} nearLimitEvents
 * @property {number} reconciled
 * @property {number} highWater
 */

/**
 * @typedef {object} MetaRecord
 * @property {number} format STORAGE_FORMAT
 * @property {string} userId the one user this object serves
 * @property {string | null} lastId the newest lease id ever issued (ids after a restore
 *   must sort after it)
 * @property {Counters} counters
 */

const COUNTER_NAMES = /** @type {const} */ ([
  'acquired',
  'released',
  'expired',
  'evicted',
  'rejected',
  'unknownReleases',
  'nearLimitEvents',
  'reconciled',
  'highWater',
]);

/**
 * The record stored for a lease, from the registry's view of it.
 * @param {{ acquiredAt: number, touchedAt: number, expiresAt: number, connectionKey?: string }} lease
 * @returns {LeaseRecord}
 */
export function leaseRecord(lease) {
  /** @type {LeaseRecord} */
  const rec = { acquiredAt: lease.acquiredAt, touchedAt: lease.touchedAt, expiresAt: lease.expiresAt };
  if (typeof lease.connectionKey === 'string') rec.connectionKey = lease.connectionKey;
  return rec;
}

/**
 * The meta record for a registry's current counters.
 * @param {object} stats `registry.stats()`
 * @param {string} userId
 * @param {string | null} lastId
 * @returns {MetaRecord}
 */
export function metaRecord(stats, userId, lastId) {
  const named = /** @type {Record<string, unknown>} */ (stats);
  /** @type {Record<string, number>} */
  const counters = {};
  for (const name of COUNTER_NAMES) {
    const v = named[name];
    counters[name] = typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : 0;
  }
  return { format: STORAGE_FORMAT, userId, lastId, counters: /** @type {Counters} */ (/** @type {unknown} */ (counters)) };
}

/**
 * Whether a stored value is a usable lease record (anything else is dropped on wake: a
 * lease we cannot read must not hold a slot).
 * @param {unknown} v
 * @returns {v is LeaseRecord}
 */
export function isLeaseRecord(v) {
  if (v === null || typeof v !== 'object') return false;
  const r = /** @type {Record<string, unknown>} */ (v);
  const time = (/** @type {unknown} */ t) => typeof t === 'number' && Number.isSafeInteger(t) && t >= 0;
  return (
    time(r.acquiredAt) &&
    time(r.touchedAt) &&
    time(r.expiresAt) &&
    /** @type {number} */ (r.acquiredAt) <= /** @type {number} */ (r.touchedAt) &&
    /** @type {number} */ (r.touchedAt) <= /** @type {number} */ (r.expiresAt) &&
    (r.connectionKey === undefined || typeof r.connectionKey === 'string')
  );
}

/**
 * @param {unknown} v
 * @returns {v is MetaRecord}
 */
export function isMetaRecord(v) {
  if (v === null || typeof v !== 'object') return false;
  const m = /** @type {Record<string, unknown>} */ (v);
  return (
    m.format === STORAGE_FORMAT &&
    typeof m.userId === 'string' &&
    (m.lastId === null || typeof m.lastId === 'string') &&
    m.counters !== null &&
    typeof m.counters === 'object'
  );
}

// --- the core's snapshot format, version 2 (src/registry/snapshot.rs) -----------------
//
//   "SLSN" | version u16 | payload length u32 | payload | CRC-32 (ISO-HDLC) of all before
//   payload: generator last_ms u64, counter u32 | 11 counters u64 | overrides u32 (+ each)
//            | extra id kinds u32 (+ each str) | lease count u32 | per lease: uuid u128, user str, key flag u8 (+ str),
//              acquired u64, touched u64, expires u64
//   integers little-endian; str = u16 byte length + UTF-8

const SNAPSHOT_VERSION = 2;
// The core clamps the generator counter to its 26 bits; the largest value makes the next
// id carry into the following millisecond, so new ids sort after every restored one.
const COUNTER_CARRY = 0xffffffff;

/** @type {Uint32Array | null} */
let crcTable = null;

/**
 * CRC-32 (ISO-HDLC, the zlib one), as the core computes it.
 * @param {Uint8Array} bytes
 */
export function crc32(bytes) {
  if (crcTable === null) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = crcTable[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

class Writer {
  constructor() {
    /** @type {number[]} */
    this.bytes = [];
  }
  /** @param {number} v */
  u8(v) {
    this.bytes.push(v & 0xff);
  }
  /** @param {number} v */
  u16(v) {
    this.u8(v);
    this.u8(v >>> 8);
  }
  /** @param {number} v */
  u32(v) {
    for (let i = 0; i < 4; i++) this.u8(Math.floor(v / 2 ** (8 * i)));
  }
  /** @param {number} v a safe non-negative integer */
  u64(v) {
    let big = BigInt(v);
    for (let i = 0; i < 8; i++) {
      this.u8(Number(big & 0xffn));
      big >>= 8n;
    }
  }
  /** @param {string} uuid hyphenated hex, most significant byte first */
  u128(uuid) {
    const hex = uuid.replace(/-/g, '');
    if (!/^[0-9a-f]{32}$/i.test(hex)) throw new TypeError(`not a UUID: ${uuid}`);
    for (let i = 30; i >= 0; i -= 2) this.u8(parseInt(hex.slice(i, i + 2), 16));
  }
  /** @param {Uint8Array} b a string's UTF-8 bytes */
  str(b) {
    this.u16(b.length);
    for (const x of b) this.u8(x);
  }
}

/**
 * The core snapshot (version 2) for one user's stored leases, for `LeaseRegistry.restore`.
 * Leases are written in id order, which is acquisition order.
 *
 * @param {object} state
 * @param {string} state.userId
 * @param {Counters | null} state.counters from the meta record (zeros when missing)
 * @param {number} state.lastIdMs timestamp of the newest id ever issued (0 when unknown)
 * @param {Array<{ id: string, uuid: string, record: LeaseRecord }>} state.leases
 * @returns {Uint8Array}
 */
export function encodeSnapshot({ userId, counters, lastIdMs, leases }) {
  const sorted = [...leases].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const utf8 = new TextEncoder();
  const user = utf8.encode(userId);
  const p = new Writer();
  // Generator state: no older than the newest restored lease either.
  let lastMs = lastIdMs;
  for (const l of sorted) lastMs = Math.max(lastMs, timestampOfUuid(l.uuid));
  p.u64(lastMs);
  p.u32(COUNTER_CARRY);
  const c = counters;
  const n = (/** @type {keyof Counters} */ k) => (c && Number.isSafeInteger(c[k]) && c[k] >= 0 ? c[k] : 0);
  // The object serves one user with no global limit, so every refusal is a user-limit one.
  for (const v of [n('acquired'), n('released'), n('expired'), n('evicted'), n('rejected'), 0, 0]) p.u64(v);
  for (const v of [n('unknownReleases'), n('nearLimitEvents'), n('reconciled'), n('highWater')]) p.u64(v);
  p.u32(0); // per-user overrides: this adapter sets none
  p.u32(0); // extra id kinds: nor these (its leases answer to conn_ ids only)
  p.u32(sorted.length);
  for (const { uuid, record } of sorted) {
    p.u128(uuid);
    p.str(user);
    if (typeof record.connectionKey === 'string') {
      p.u8(1);
      p.str(utf8.encode(record.connectionKey));
    } else {
      p.u8(0);
    }
    p.u64(record.acquiredAt);
    p.u64(record.touchedAt);
    p.u64(record.expiresAt);
  }
  const payload = p.bytes;
  const out = new Uint8Array(10 + payload.length + 4);
  out.set([0x53, 0x4c, 0x53, 0x4e]); // "SLSN"
  out[4] = SNAPSHOT_VERSION & 0xff;
  out[5] = SNAPSHOT_VERSION >>> 8;
  new DataView(out.buffer).setUint32(6, payload.length, true);
  out.set(payload, 10);
  new DataView(out.buffer).setUint32(10 + payload.length, crc32(out.subarray(0, 10 + payload.length)), true);
  return out;
}

/**
 * The unix ms timestamp of a UUIDv7 (its first 48 bits).
 * @param {string} uuid
 */
export function timestampOfUuid(uuid) {
  const hex = uuid.replace(/-/g, '').slice(0, 12);
  return /^[0-9a-f]{12}$/i.test(hex) ? parseInt(hex, 16) : 0;
}

/**
 * Splits `keys` into calls of at most MAX_KEYS_PER_CALL.
 * @template T
 * @param {T[]} items
 * @returns {T[][]}
 */
export function chunks(items) {
  /** @type {T[][]} */
  const out = [];
  for (let i = 0; i < items.length; i += MAX_KEYS_PER_CALL) out.push(items.slice(i, i + MAX_KEYS_PER_CALL));
  return out;
}
