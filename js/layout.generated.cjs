'use strict';
// GENERATED from src/wasm/layout.rs by its test (`UPDATE_LAYOUT=1 cargo test --lib layout` rewrites it); do not edit.
// The lane's byte layout (src/wasm/lane.rs): where each lane call leaves what the JS
// half reads. Names are `<RECORD>_<FIELD>` offsets into the lane.
/** Bytes the lane carries. */
const CAPACITY = 1024;
/** Input is written from offset 0 and takes at most this many bytes. */
const INPUT = 512;
/** Where `newId`'s suffixes go, `SUFFIX_LEN` bytes each. */
const IDS_AT = 528;
/** How many suffixes fit from `IDS_AT` on. */
const IDS_ROOM = 19;
/** Characters of an id's suffix. */
const SUFFIX_LEN = 26;
/** The longest TypeID, in characters (a 63-character kind, `_`, the suffix). */
const MAX_ID_LEN = 90;
/** The suffix's alphabet, in value order (5 bits a character, the first holding the top 3 of the 128). */
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
/** The kind of a lease's own id, `id` (`connectionId`). */
const CONN = 'conn';
/** The kind of `runId`. */
const RUN = 'run';
/** The kind of `threadId`. */
const THREAD = 'thread';
/** The lease's id (its `conn_`, `run_` and `thread_` ids spell it). */
const GRANTED_UUID = 0;
/** 1: the connection key matched a lease the user holds, which is returned. */
const GRANTED_REUSED = 16;
/** 1: leases were evicted to admit it (read them with `lastEvicted`). */
const GRANTED_EVICTED = 17;
/**
 * 0: the lease is these fields; 1: extra kinds are configured (read the lease
 * with `getLease`); 2: no lease (`lease: null`).
 */
const GRANTED_SHAPE = 18;
/** 1: events wait for `__dispatch`. */
const GRANTED_EVENTS = 19;
/** 1: expired leases were reclaimed (read them with `lastReclaimed`). */
const GRANTED_RECLAIMED = 20;
/** `acquiredAt`, ms. */
const GRANTED_ACQUIRED_AT = 24;
/** `touchedAt`, ms. */
const GRANTED_TOUCHED_AT = 32;
/** `expiresAt`, ms. */
const GRANTED_EXPIRES_AT = 40;
/** 1: events wait for `__dispatch`. */
const REFUSED_EVENTS = 19;
/** 1: expired leases were reclaimed (read them with `lastReclaimed`). */
const REFUSED_RECLAIMED = 20;
/** The refusal's `limit`. */
const REFUSED_LIMIT = 24;
/** The refusal's `active`. */
const REFUSED_ACTIVE = 32;
/** The refusal's `retryAfterMs`. */
const REFUSED_RETRY_AFTER_MS = 40;
/** The UUID. */
const PARSED_UUID = 0;
/** Length of the kind in bytes (0: a bare suffix). */
const PARSED_KIND_LEN = 16;
/** The UUID's version. */
const PARSED_VERSION = 17;
/** The lease's id. */
const LEASE_ID_UUID = 0;
/** The lease's id. */
const LAST_UUID = 512;
/** Every record: its region (`scratch`: in `..INPUT`, read at once; `kept`: in `INPUT..IDS_AT`, kept until written again) and its fields with their sizes and types (for tests and tools). */
const RECORDS = {
  /** What `__acquireLeaseLane` writes for a granted acquire. */
  granted: {
    region: 'scratch',
    fields: {
      UUID: { at: 0, size: 16, type: 'u128' },
      REUSED: { at: 16, size: 1, type: 'u8' },
      EVICTED: { at: 17, size: 1, type: 'u8' },
      SHAPE: { at: 18, size: 1, type: 'u8' },
      EVENTS: { at: 19, size: 1, type: 'u8' },
      RECLAIMED: { at: 20, size: 1, type: 'u8' },
      ACQUIRED_AT: { at: 24, size: 8, type: 'f64' },
      TOUCHED_AT: { at: 32, size: 8, type: 'f64' },
      EXPIRES_AT: { at: 40, size: 8, type: 'f64' },
    },
  },
  /** What `__acquireLeaseLane` writes for a refused acquire. */
  refused: {
    region: 'scratch',
    fields: {
      EVENTS: { at: 19, size: 1, type: 'u8' },
      RECLAIMED: { at: 20, size: 1, type: 'u8' },
      LIMIT: { at: 24, size: 8, type: 'f64' },
      ACTIVE: { at: 32, size: 8, type: 'f64' },
      RETRY_AFTER_MS: { at: 40, size: 8, type: 'f64' },
    },
  },
  /** What `__parseIdLane` writes for a valid id. */
  parsed: {
    region: 'scratch',
    fields: {
      UUID: { at: 0, size: 16, type: 'u128' },
      KIND_LEN: { at: 16, size: 1, type: 'u8' },
      VERSION: { at: 17, size: 1, type: 'u8' },
    },
  },
  /** What `__handleLeaseIdLane` writes for a live handle. */
  lease_id: {
    region: 'scratch',
    fields: {
      UUID: { at: 0, size: 16, type: 'u128' },
    },
  },
  /**
   * What the last `acquireHandle` on the lane granted (`__acquireLane` writes it once
   * its events went out, `__lastLeaseIdLane` on demand): kept for `lastLeaseId()`,
   * until the next of either call, of any registry.
   */
  last: {
    region: 'kept',
    fields: {
      UUID: { at: 512, size: 16, type: 'u128' },
    },
  },
};
module.exports = { CAPACITY, INPUT, IDS_AT, IDS_ROOM, SUFFIX_LEN, MAX_ID_LEN, ALPHABET, CONN, RUN, THREAD, GRANTED_UUID, GRANTED_REUSED, GRANTED_EVICTED, GRANTED_SHAPE, GRANTED_EVENTS, GRANTED_RECLAIMED, GRANTED_ACQUIRED_AT, GRANTED_TOUCHED_AT, GRANTED_EXPIRES_AT, REFUSED_EVENTS, REFUSED_RECLAIMED, REFUSED_LIMIT, REFUSED_ACTIVE, REFUSED_RETRY_AFTER_MS, PARSED_UUID, PARSED_KIND_LEN, PARSED_VERSION, LEASE_ID_UUID, LAST_UUID, RECORDS };
