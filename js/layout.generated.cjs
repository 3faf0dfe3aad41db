'use strict';
// GENERATED from src/wasm/layout.rs by its test (`UPDATE_LAYOUT=1 cargo test --lib layout` rewrites it); do not edit.
// The lane's byte layout (src/wasm/lane.rs): where each lane call leaves what the JS
// half reads. Names are `<RECORD>_<FIELD>` offsets into the lane.
/** Bytes the lane carries. */
const CAPACITY = 1024;
/** Input is written from offset 0 and takes at most this many bytes. */
const INPUT = 512;
/** Where `newId`'s suffixes go, `SUFFIX_LEN` bytes each. */
const IDS_AT = 512;
/** How many suffixes fit from `IDS_AT` on. */
const IDS_ROOM = 19;
/** Characters of an id's suffix. */
const SUFFIX_LEN = 26;
/** The longest TypeID, in characters (a 63-character kind, `_`, the suffix). */
const MAX_ID_LEN = 90;
/** The lease's 26-character suffix (its ids are `conn_`, `run_`, `thread_` and it). */
const GRANTED_SUFFIX = 0;
/** 1: the connection key matched a lease the user holds, which is returned. */
const GRANTED_REUSED = 26;
/** 1: leases were evicted to admit it (read them with `lastEvicted`). */
const GRANTED_EVICTED = 27;
/**
 * 0: the lease is these fields; 1: extra kinds are configured (read the lease
 * with `getLease`); 2: no lease (`lease: null`).
 */
const GRANTED_SHAPE = 28;
/** 1: events wait for `__dispatch`. */
const GRANTED_EVENTS = 29;
/** 1: expired leases were reclaimed (read them with `lastReclaimed`). */
const GRANTED_RECLAIMED = 30;
/** `acquiredAt`, ms. */
const GRANTED_ACQUIRED_AT = 32;
/** `touchedAt`, ms. */
const GRANTED_TOUCHED_AT = 40;
/** `expiresAt`, ms. */
const GRANTED_EXPIRES_AT = 48;
/** 1: events wait for `__dispatch`. */
const REFUSED_EVENTS = 29;
/** 1: expired leases were reclaimed (read them with `lastReclaimed`). */
const REFUSED_RECLAIMED = 30;
/** The refusal's `limit`. */
const REFUSED_LIMIT = 32;
/** The refusal's `active`. */
const REFUSED_ACTIVE = 40;
/** The refusal's `retryAfterMs`. */
const REFUSED_RETRY_AFTER_MS = 48;
/** Length of the kind in bytes (0: a bare suffix). */
const PARSED_KIND_LEN = 36;
/** The UUID's version. */
const PARSED_VERSION = 37;
/** The UUID. */
const PARSED_UUID = 40;
/** Every record's fields with their sizes and types (for tests and tools). */
const RECORDS = {
  /** What `__acquireLeaseLane` writes for a granted acquire. */
  granted: {
    SUFFIX: { at: 0, size: 26, type: 'ascii' },
    REUSED: { at: 26, size: 1, type: 'u8' },
    EVICTED: { at: 27, size: 1, type: 'u8' },
    SHAPE: { at: 28, size: 1, type: 'u8' },
    EVENTS: { at: 29, size: 1, type: 'u8' },
    RECLAIMED: { at: 30, size: 1, type: 'u8' },
    ACQUIRED_AT: { at: 32, size: 8, type: 'f64' },
    TOUCHED_AT: { at: 40, size: 8, type: 'f64' },
    EXPIRES_AT: { at: 48, size: 8, type: 'f64' },
  },
  /** What `__acquireLeaseLane` writes for a refused acquire. */
  refused: {
    EVENTS: { at: 29, size: 1, type: 'u8' },
    RECLAIMED: { at: 30, size: 1, type: 'u8' },
    LIMIT: { at: 32, size: 8, type: 'f64' },
    ACTIVE: { at: 40, size: 8, type: 'f64' },
    RETRY_AFTER_MS: { at: 48, size: 8, type: 'f64' },
  },
  /** What `__parseIdLane` writes for a valid id. */
  parsed: {
    KIND_LEN: { at: 36, size: 1, type: 'u8' },
    VERSION: { at: 37, size: 1, type: 'u8' },
    UUID: { at: 40, size: 16, type: 'u128' },
  },
};
module.exports = { CAPACITY, INPUT, IDS_AT, IDS_ROOM, SUFFIX_LEN, MAX_ID_LEN, GRANTED_SUFFIX, GRANTED_REUSED, GRANTED_EVICTED, GRANTED_SHAPE, GRANTED_EVENTS, GRANTED_RECLAIMED, GRANTED_ACQUIRED_AT, GRANTED_TOUCHED_AT, GRANTED_EXPIRES_AT, REFUSED_EVENTS, REFUSED_RECLAIMED, REFUSED_LIMIT, REFUSED_ACTIVE, REFUSED_RETRY_AFTER_MS, PARSED_KIND_LEN, PARSED_VERSION, PARSED_UUID, RECORDS };
