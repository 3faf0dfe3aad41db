// GENERATED from src/wasm/layout.rs by its test (`UPDATE_LAYOUT=1 cargo test --lib layout` rewrites it); do not edit.
// The lane's byte layout (src/wasm/lane.rs): where each lane call leaves what the JS
// half reads. Names are `<RECORD>_<FIELD>` offsets into the lane.
/** Bytes the lane carries. */
export const CAPACITY = 1024;
/** Input is written from offset 0 and takes at most this many bytes. */
export const INPUT = 512;
/** Where `newId`'s suffixes go, `SUFFIX_LEN` bytes each. */
export const IDS_AT = 512;
/** How many suffixes fit from `IDS_AT` on. */
export const IDS_ROOM = 19;
/** Characters of an id's suffix. */
export const SUFFIX_LEN = 26;
/** The longest TypeID, in characters (a 63-character kind, `_`, the suffix). */
export const MAX_ID_LEN = 90;
/** The lease's 26-character suffix (its ids are `conn_`, `run_`, `thread_` and it). */
export const GRANTED_SUFFIX = 0;
/** 1: the connection key matched a lease the user holds, which is returned. */
export const GRANTED_REUSED = 26;
/** 1: leases were evicted to admit it (read them with `lastEvicted`). */
export const GRANTED_EVICTED = 27;
/**
 * 0: the lease is these fields; 1: extra kinds are configured (read the lease
 * with `getLease`); 2: no lease (`lease: null`).
 */
export const GRANTED_SHAPE = 28;
/** 1: events wait for `__dispatch`. */
export const GRANTED_EVENTS = 29;
/** 1: expired leases were reclaimed (read them with `lastReclaimed`). */
export const GRANTED_RECLAIMED = 30;
/** `acquiredAt`, ms. */
export const GRANTED_ACQUIRED_AT = 32;
/** `touchedAt`, ms. */
export const GRANTED_TOUCHED_AT = 40;
/** `expiresAt`, ms. */
export const GRANTED_EXPIRES_AT = 48;
/** 1: events wait for `__dispatch`. */
export const REFUSED_EVENTS = 29;
/** 1: expired leases were reclaimed (read them with `lastReclaimed`). */
export const REFUSED_RECLAIMED = 30;
/** The refusal's `limit`. */
export const REFUSED_LIMIT = 32;
/** The refusal's `active`. */
export const REFUSED_ACTIVE = 40;
/** The refusal's `retryAfterMs`. */
export const REFUSED_RETRY_AFTER_MS = 48;
/** Length of the kind in bytes (0: a bare suffix). */
export const PARSED_KIND_LEN = 36;
/** The UUID's version. */
export const PARSED_VERSION = 37;
/** The UUID. */
export const PARSED_UUID = 40;
/** Every record's fields with their sizes and types (for tests and tools). */
export const RECORDS = {
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
