// JS half of the boundary, shared by every loader. This file is the source: the Node
// loader's CommonJS copy (js/runtime.cjs) is generated from it by scripts/build.sh,
// because Node 20 cannot load one file from both `require` and browsers.
import {
  ALPHABET,
  CONN,
  GRANTED_ACQUIRED_AT,
  GRANTED_EVENTS,
  GRANTED_EVICTED,
  GRANTED_EXPIRES_AT,
  GRANTED_RECLAIMED,
  GRANTED_REUSED,
  GRANTED_SHAPE,
  GRANTED_TOUCHED_AT,
  GRANTED_UUID,
  IDS_AT,
  INPUT,
  LAST_UUID,
  LEASE_ID_UUID,
  MAX_ID_LEN,
  PARSED_KIND_LEN,
  PARSED_UUID,
  PARSED_VERSION,
  REFUSED_ACTIVE,
  REFUSED_EVENTS,
  REFUSED_LIMIT,
  REFUSED_RECLAIMED,
  REFUSED_RETRY_AFTER_MS,
  RUN,
  SUFFIX_LEN,
  THREAD,
} from './layout.generated.mjs';

/**
 * Thrown by socket-lease for misuse (bad input). A quota refusal is never an error: it
 * is `{ ok: false, ... }`. The wasm core constructs this class (the loader registers it),
 * so `instanceof LeaseError` holds and `code` is stable.
 */
export class LeaseError extends Error {
  /**
   * @param {string} message
   * @param {import('../pkg/web/socket_lease.js').LeaseErrorCode} code
   */
  constructor(message, code) {
    super(message);
    this.name = 'LeaseError';
    this.code = code;
  }
}

/** @param {unknown} v */
const kind = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/** Where a ParsedId keeps the UUID it was parsed from (four 32-bit numbers, high first:
 * four fields rather than an array, which would be one more allocation per parse) and
 * its text once made. */
const W0 = Symbol('uuid bits 96-127');
const W1 = Symbol('uuid bits 64-95');
const W2 = Symbol('uuid bits 32-63');
const W3 = Symbol('uuid bits 0-31');
const UUID = Symbol('uuid');

/** Char codes of the lowercase hex digits. */
const HEX = Array.from('0123456789abcdef', (c) => c.charCodeAt(0));

/**
 * The canonical hyphenated lowercase spelling of a UUID given as four 32-bit numbers,
 * high first (8-4-4-4-12 digits). Spelling only: the wasm core parsed and checked it.
 * @param {number} a @param {number} b @param {number} c @param {number} d
 */
function uuidText(a, b, c, d) {
  const x = (/** @type {number} */ w, /** @type {number} */ shift) => HEX[(w >>> shift) & 15];
  // prettier-ignore
  return String.fromCharCode(
    x(a, 28),
    x(a, 24),
    x(a, 20),
    x(a, 16),
    x(a, 12),
    x(a, 8),
    x(a, 4),
    x(a, 0),
    45,
    x(b, 28),
    x(b, 24),
    x(b, 20),
    x(b, 16),
    45,
    x(b, 12),
    x(b, 8),
    x(b, 4),
    x(b, 0),
    45,
    x(c, 28),
    x(c, 24),
    x(c, 20),
    x(c, 16),
    45,
    x(c, 12),
    x(c, 8),
    x(c, 4),
    x(c, 0),
    x(d, 28),
    x(d, 24),
    x(d, 20),
    x(d, 16),
    x(d, 12),
    x(d, 8),
    x(d, 4),
    x(d, 0),
  );
}

/** Char codes of the suffix alphabet, in value order. */
const B32 = Array.from(ALPHABET, (c) => c.charCodeAt(0));
// The ids of a lease are its kind's prefix joined to one suffix string: the engine keeps
// such a join as a pair of pointers until the text is read, so an id nobody reads costs
// next to nothing, and one written back into the lane to release it is flattened once.
const CONN_ = `${CONN}_`;
const RUN_ = `${RUN}_`;
const THREAD_ = `${THREAD}_`;
/**
 * The 26-character suffix of a UUID given as four 32-bit numbers, high first: the 128
 * bits in 5-bit groups, the first group holding the top 3 (src/id/base32.rs encodes the
 * same way; tests/js/core/lease-ids.test.mjs holds them to each other).
 * @param {number} a @param {number} b @param {number} c @param {number} d
 */
// prettier-ignore
const suffixOf = (a, b, c, d) =>
  String.fromCharCode(
    B32[a >>> 29],
    B32[(a >>> 24) & 31],
    B32[(a >>> 19) & 31],
    B32[(a >>> 14) & 31],
    B32[(a >>> 9) & 31],
    B32[(a >>> 4) & 31],
    B32[((a << 1) | (b >>> 31)) & 31],
    B32[(b >>> 26) & 31],
    B32[(b >>> 21) & 31],
    B32[(b >>> 16) & 31],
    B32[(b >>> 11) & 31],
    B32[(b >>> 6) & 31],
    B32[(b >>> 1) & 31],
    B32[((b << 4) | (c >>> 28)) & 31],
    B32[(c >>> 23) & 31],
    B32[(c >>> 18) & 31],
    B32[(c >>> 13) & 31],
    B32[(c >>> 8) & 31],
    B32[(c >>> 3) & 31],
    B32[((c << 2) | (d >>> 30)) & 31],
    B32[(d >>> 25) & 31],
    B32[(d >>> 20) & 31],
    B32[(d >>> 15) & 31],
    B32[(d >>> 10) & 31],
    B32[(d >>> 5) & 31],
    B32[d & 31],
  );

/** Returns its argument from the constructor, so a subclass's private fields go on it. */
class Carrier {
  /** @param {object} o */
  constructor(o) {
    // biome-ignore lint/correctness/noConstructorReturn: the point of this class
    return o;
  }
}
/**
 * The mark a registry puts on a lease object it returned: which registry (by a serial
 * number, so the lease does not keep the registry alive), the lease's handle and the id
 * it was granted with. In private fields, so the lease stays a plain object to everyone
 * else: not in its keys, JSON, spread, `structuredClone` or `deepEqual`; a copy or a
 * Proxy of it has no mark and is released by its `id`, like any object.
 */
class Mark extends Carrier {
  #serial;
  #token;
  #id;
  /** @param {object} lease @param {number} serial @param {number} token @param {string} id */
  constructor(lease, serial, token, id) {
    super(lease);
    this.#serial = serial;
    this.#token = token;
    this.#id = id;
  }
  /**
   * The handle of `lease` when the registry numbered `serial` marked it and its `id` is
   * still the one it was granted with, else -1 (release it by its id).
   * @param {any} lease @param {number} serial
   */
  static token(lease, serial) {
    if (!(#serial in lease) || lease.#serial !== serial) return -1;
    try {
      return lease.#id === /** @type {{ id?: unknown }} */ (lease).id ? lease.#token : -1;
    } catch {
      return -1; // an `id` getter put on it that throws: the checked binding says so
    }
  }
}
/** A registry's serial number, for `Mark`: given on first use, never reused. */
class Serial extends Carrier {
  static #next = 0;
  #serial = ++Serial.#next;
  /** @param {object} registry */
  static of(registry) {
    return #serial in registry ? registry.#serial : new Serial(registry).#serial;
  }
}

/** Kinds remembered as checked by `newId`; past this many, new kinds are checked each time. */
const KIND_CACHE = 256;

/** A lone surrogate, read code point by code point (`u`): a pair is one astral code point. */
const LONE_SURROGATE = /[\ud800-\udfff]/u;
const isWellFormed = /** @type {{ isWellFormed?: (this: string) => boolean }} */ (String.prototype).isWellFormed;
/**
 * Whether `s` is well-formed UTF-16 (no lone surrogate): `String.prototype.isWellFormed`
 * where the engine has it (Node 20, workerd, browsers since 2023), else the same answer
 * from a regular expression.
 * @type {(s: string) => boolean}
 */
const wellFormed = typeof isWellFormed === 'function' ? (s) => isWellFormed.call(s) : (s) => !LONE_SURROGATE.test(s);

/**
 * Wires the loader's wasm bindings up: registers `LeaseError`, checks the fast path's
 * argument types, and routes the hot calls over the lane (src/wasm/lane.rs): their
 * strings are written (UTF-8) into one fixed buffer in linear memory and their results
 * read back from it with `String.fromCharCode`, instead of wasm-bindgen's malloc +
 * encode + free per argument and TextDecoder per result. Whatever the lane does not carry (over-long input, an
 * explicit NaN time, an unusual options object) and every error take the generated,
 * fully checked binding, so results and errors are the same either way.
 *
 * Patches methods of the generated class (which ones, and why, is said once, at
 * `const proto` below). Returns `newId` and `parseId` to export in place of the
 * generated ones.
 * @param {any} wasm the generated bindings (ESM namespace or CommonJS exports)
 * @returns {{ newId: typeof import('../pkg/web/socket_lease.js').newId, parseId: typeof import('../pkg/web/socket_lease.js').parseId }}
 */
export function install(wasm) {
  const lanes = ['__lane', '__newIdLane', '__parseIdLane'];
  const methods = [
    '__acquireLane',
    '__acquireLeaseLane',
    '__dispatch',
    '__releaseLane',
    '__releaseIdLane',
    '__touchIdLane',
    '__handleLeaseIdLane',
    '__lastLeaseIdLane',
    '__busy',
    'lastReclaimed',
    'lastLeaseId',
  ];
  const missing = [...lanes.filter((f) => typeof wasm[f] !== 'function'), ...methods.filter((m) => typeof wasm.LeaseRegistry?.prototype?.[m] !== 'function')];
  if (missing.length) throw new Error(`socket-lease: the WebAssembly build lacks ${missing.join(', ')}; rebuild it (npm run build)`);
  wasm.__registerErrorClass(LeaseError);

  // Where the lane is; what is where in it is in js/layout.generated.mjs.
  /** @type {[WebAssembly.Memory, number]} */
  const [memory, address] = wasm.__lane();
  const capacity = INPUT;
  let bytes = new Uint8Array(memory.buffer);
  let data = new DataView(memory.buffer);
  let input = bytes.subarray(address, address + capacity);
  // A grown memory detaches the old views (a typed array's length becomes 0).
  const view = () => {
    if (bytes.byteLength === 0) {
      bytes = new Uint8Array(memory.buffer);
      data = new DataView(memory.buffer);
      input = bytes.subarray(address, address + capacity);
    }
    return bytes;
  };
  const encoder = new TextEncoder();
  /**
   * Writes `s` as UTF-8 at lane offset `at` and returns its length in bytes, or -1 if
   * it does not fit or is not well-formed UTF-16. `encodeInto` (like wasm-bindgen's
   * glue) would write a lone surrogate as U+FFFD, making "\ud800" and "\ufffd" one user:
   * such a string takes the checked binding instead, which refuses it (src/wasm/convert.rs
   * holds the rule, so the message and code are the same on every path). Only text
   * that is not ASCII can hold one, and only such text is longer in UTF-8 than in
   * UTF-16 units, so ASCII (the usual ids, however long) is never checked.
   * @param {string} s @param {number} at
   */
  const putUtf8 = (s, at) => {
    const { read, written } = encoder.encodeInto(s, at === 0 ? input : input.subarray(at));
    if (read !== s.length) return -1;
    return written === read || wellFormed(s) ? written : -1;
  };
  /**
   * `putUtf8`, with a plain loop for short ASCII strings (user ids, mostly), which beats
   * `encodeInto`'s fixed cost below about two dozen characters (measured).
   * @param {string} s @param {number} at
   */
  const put = (s, at) => {
    if (input.length === 0) view();
    const n = s.length;
    if (n > 24 || at + n > capacity) return putUtf8(s, at);
    // Into the lane's own view (offsets from 0), not the whole memory's.
    const b = input;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c > 0x7f) return putUtf8(s, at);
      b[at + i] = c;
    }
    return n;
  };
  /** The 26-character (`SUFFIX_LEN`) suffix the wasm half wrote at lane offset `at`. */
  const suffixAt = (/** @type {number} */ at) => {
    const b = view();
    const p = address + at;
    // prettier-ignore
    return String.fromCharCode(
      b[p],
      b[p + 1],
      b[p + 2],
      b[p + 3],
      b[p + 4],
      b[p + 5],
      b[p + 6],
      b[p + 7],
      b[p + 8],
      b[p + 9],
      b[p + 10],
      b[p + 11],
      b[p + 12],
      b[p + 13],
      b[p + 14],
      b[p + 15],
      b[p + 16],
      b[p + 17],
      b[p + 18],
      b[p + 19],
      b[p + 20],
      b[p + 21],
      b[p + 22],
      b[p + 23],
      b[p + 24],
      b[p + 25],
    );
  };
  /** Whether `now` can go on the lane: absent, or a number that is not NaN. The lane
   * always gets a time: ours (`Date.now()`, cheaper than wasm calling out for it) when
   * none was given. Anything else takes the checked binding, which says what is wrong. */
  const laneNow = (/** @type {unknown} */ now) => now === undefined || now === null || (typeof now === 'number' && now === now);

  /*
   * What is patched on the class wasm-bindgen generates, and why. This is the one place
   * that says it (docs/design/boundary-layout.md links here). Each replaced method keeps
   * the generated one as its fallback; none is patched where wasm-bindgen can produce the
   * shape needed at the same cost.
   *
   * - acquireHandle, releaseHandle, acquire, release, touch, handleLeaseId, lastLeaseId:
   *   the lane. JS writes their strings into linear memory before the call and reads
   *   their results back as bytes (js/layout.generated.mjs says where), and spells ids
   *   from the UUID bytes only when they are asked for; generated glue can do none of
   *   it (it mallocs, encodes and frees per string argument, and decodes every string it
   *   returns). `release` and `touch` also take the lease object `acquire` returned.
   * - touchHandle, renewHandle (and handleLeaseId): a type check. The glue hands a number
   *   parameter to wasm as it is, and the engine coerces anything (null, '' and [] all
   *   name handle 0). Taking a JsValue lets Rust check instead, but costs an externref
   *   table slot per argument and a Result: measured 210 ns per touchHandle against 57.
   * - free: deferred while an onEvent callback of this registry runs (the generated
   *   free() drops its pointer before wasm could refuse).
   *
   * On the prototype, not in a subclass: the generated `LeaseRegistry.restore` makes
   * instances of the generated class, which a subclass's methods would not reach.
   */
  const proto = wasm.LeaseRegistry.prototype;
  const acquireHandle = proto.acquireHandle;
  const releaseHandle = proto.releaseHandle;
  const touchHandle = proto.touchHandle;
  const acquireLane = proto.__acquireLane;
  const releaseLane = proto.__releaseLane;
  /**
   * The registry whose `acquireHandle` left its grant in the lane's `last` record (kept
   * until the next such acquire, of any registry), or null: then `lastLeaseId` asks wasm.
   * @type {unknown}
   */
  let lastOwner = null;
  /**
   * What `__acquireLane` answered for `registry`, which wrote its grant (not a refusal)
   * into the `last` record once its events had gone out: callbacks acquiring meanwhile
   * set `lastOwner` before this, so it ends as this registry or, refused, not it.
   * @param {unknown} registry @param {number} r
   */
  const laneAcquired = (registry, r) => {
    if (r >= 0) lastOwner = registry;
    else if (lastOwner === registry) lastOwner = null;
    return r;
  };
  /** @param {unknown} now */
  const checkNow = (now) => {
    if (now !== undefined && now !== null && typeof now !== 'number') {
      throw new LeaseError(`invalid time: now must be a number of milliseconds, got ${kind(now)}`, 'INVALID_TIME');
    }
  };
  /** @param {unknown} handle */
  const checkHandle = (handle) => {
    if (typeof handle !== 'number') {
      throw new LeaseError(`invalid id: a lease handle must be a number, got ${kind(handle)}`, 'INVALID_ID');
    }
  };
  // The generated glue would silently coerce a wrong type (or throw a bare TypeError),
  // so the fast path's types are checked here, once, before the call.
  /** @this {unknown} @param {unknown} userId @param {unknown} connectionKey @param {unknown} now @param {unknown} evict */
  const acquireChecked = function (userId, connectionKey, now, evict) {
    if (typeof userId !== 'string') {
      throw new LeaseError(`invalid user id: user id must be a string, got ${kind(userId)}`, 'INVALID_USER_ID');
    }
    const keyed = connectionKey !== undefined && connectionKey !== null;
    if (keyed && typeof connectionKey !== 'string') {
      throw new LeaseError(`invalid option: connectionKey must be a string, got ${kind(connectionKey)}`, 'INVALID_OPTION');
    }
    checkNow(now);
    if (evict !== undefined && evict !== null && typeof evict !== 'boolean') {
      throw new LeaseError(`invalid option: evict must be a boolean, got ${kind(evict)}`, 'INVALID_OPTION');
    }
    const userLen = laneNow(now) ? put(userId, 0) : -1;
    const keyLen = userLen >= 0 && keyed ? put(/** @type {string} */ (connectionKey), userLen) : -1;
    if (userLen >= 0 && (!keyed || keyLen >= 0)) {
      const r = acquireLane.call(this, userLen, keyLen, now ?? Date.now(), evict === false ? 1 : 0);
      if (r === r) return laneAcquired(this, r);
    }
    // The checked binding leaves its grant to wasm's memory of it, not the lane's.
    if (lastOwner === this) lastOwner = null;
    return acquireHandle.call(this, userId, keyed ? connectionKey : undefined, now ?? undefined, evict ?? undefined);
  };
  /** @this {unknown} @param {unknown} handle @param {unknown} now */
  const releaseChecked = function (handle, now) {
    checkHandle(handle);
    checkNow(now);
    if (laneNow(now)) {
      const r = releaseLane.call(this, handle, now ?? Date.now());
      if (r === r) return r === 1;
    }
    return releaseHandle.call(this, handle, now ?? undefined);
  };
  // The common calls first, with nothing to check but types (no connection key; a time
  // that is a number, or none); anything else, and whatever the lane refuses, takes the
  // checked wrappers above, which decide exactly as before.
  proto.acquireHandle = function (
    /** @type {unknown} */ userId,
    /** @type {unknown} */ connectionKey,
    /** @type {unknown} */ now,
    /** @type {unknown} */ evict,
  ) {
    // `evict: false` too: the host lifecycle's phase one asks that on every connection.
    if (
      typeof userId === 'string' &&
      connectionKey === undefined &&
      (typeof now === 'number' ? now === now : now === undefined) &&
      (evict === undefined || evict === false)
    ) {
      const n = put(userId, 0);
      if (n >= 0) {
        const r = acquireLane.call(this, n, -1, now ?? Date.now(), evict === false ? 1 : 0);
        if (r === r) return laneAcquired(this, r);
      }
    }
    return acquireChecked.call(this, userId, connectionKey, now, evict);
  };
  proto.releaseHandle = function (/** @type {unknown} */ handle, /** @type {unknown} */ now) {
    if (typeof handle === 'number' && (typeof now === 'number' ? now === now : now === undefined)) {
      const r = releaseLane.call(this, handle, now ?? Date.now());
      if (r === r) return r === 1;
    }
    return releaseChecked.call(this, handle, now);
  };
  /**
   * A by-handle method with its argument types checked (touchHandle, renewHandle).
   * @param {(this: unknown, handle: unknown, now: unknown) => boolean} method
   */
  const checkedByHandle = (method) =>
    /** @this {unknown} @param {unknown} handle @param {unknown} now */
    function (handle, now) {
      checkHandle(handle);
      checkNow(now);
      return method.call(this, handle, now ?? undefined);
    };
  proto.touchHandle = checkedByHandle(touchHandle);
  proto.renewHandle = checkedByHandle(proto.renewHandle);
  /**
   * The suffix of the UUID at lane offset `at` (little-endian, as the wasm half wrote it).
   * The caller has called `view()` since its last call into wasm.
   */
  const suffixOfUuidAt = (/** @type {number} */ at) => {
    const u = address + at;
    return suffixOf(data.getUint32(u + 12, true), data.getUint32(u + 8, true), data.getUint32(u + 4, true), data.getUint32(u, true));
  };
  // The glue would coerce any argument to a number (null, '' and [] all named handle 0).
  const handleLeaseIdLane = proto.__handleLeaseIdLane;
  proto.handleLeaseId = function (/** @type {unknown} */ handle) {
    checkHandle(handle);
    if (handleLeaseIdLane.call(this, handle) !== 1) return null;
    view();
    return CONN_ + suffixOfUuidAt(LEASE_ID_UUID);
  };
  // Spelled from the bytes the acquire left, when asked (no call into wasm unless an
  // acquire of another registry, or the checked binding's, came since).
  const lastLeaseIdLane = proto.__lastLeaseIdLane;
  proto.lastLeaseId = function () {
    if (lastOwner !== this) {
      if (lastLeaseIdLane.call(this) !== 1) return null;
      lastOwner = this;
    }
    view();
    return CONN_ + suffixOfUuidAt(LAST_UUID);
  };
  // free() from an onEvent callback (a callback may call anything): the registry is in
  // use further up the stack, and the generated free() would drop its pointer before the
  // wasm side refuses, leaving a registry that is neither usable nor ever returned. It
  // runs instead once the call has returned. (`using` calls free too.)
  const free = proto.free;
  const busy = proto.__busy;
  proto.free = function () {
    if (lastOwner === this) lastOwner = null;
    if (this.__wbg_ptr && busy.call(this)) {
      const ptr = this.__wbg_ptr;
      queueMicrotask(() => {
        if (this.__wbg_ptr === ptr) free.call(this);
      });
      return;
    }
    free.call(this);
  };

  // The object path (`acquire`, `release`, `touch`) on the lane: the result objects are
  // built here from the lane's bytes, in the shape and key order of the checked binding.
  const acquire = proto.acquire;
  const release = proto.release;
  const touch = proto.touch;
  const acquireLeaseLane = proto.__acquireLeaseLane;
  const dispatch = proto.__dispatch;
  const releaseIdLane = proto.__releaseIdLane;
  const touchIdLane = proto.__touchIdLane;
  /** @type {Record<number, import('../pkg/web/socket_lease.js').RefusalReason>} */
  const REASONS = { [-1]: 'user-limit', [-2]: 'global-limit', [-3]: 'user-table-full', [-4]: 'user-limit' };
  // What `readOptions` found when the lane can take the options: set at its very end (a
  // getter it ran may have called `acquire` itself) and read at once by `acquire`.
  /** @type {string[]} */
  let readKeys = [];
  /** @type {unknown} */
  let readKey;
  /** @type {unknown} */
  let readNow;
  /** @type {unknown} */
  let readEvict;
  /**
   * Reads `acquire`'s options as the checked binding reads them: own enumerable keys,
   * each read once. Keys or a getter that throw are an INVALID_OPTION with the checked
   * binding's message (a throwing connectionKey read as undefined would grant an unkeyed
   * lease on every call). Returns null when the lane can take them (they are then in
   * `readKeys`, `readKey`, `readNow`, `readEvict`; `readCopy()` copies them), else a plain
   * copy of what was read, for the checked binding.
   * @param {object} options
   * @returns {Record<string, unknown> | null}
   */
  const readOptions = (options) => {
    /** @type {string[]} */
    let keys;
    try {
      keys = Object.keys(options);
    } catch {
      throw new LeaseError("invalid option: the options' keys could not be read (listing them threw)", 'INVALID_OPTION');
    }
    /** @type {unknown} */
    let key;
    /** @type {unknown} */
    let now;
    /** @type {unknown} */
    let evict;
    // Made only when the checked binding will need it: an unknown key came.
    /** @type {Record<string, unknown> | null} */
    let copy = null;
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      /** @type {unknown} */
      let value;
      try {
        value = /** @type {Record<string, unknown>} */ (options)[k];
      } catch {
        throw new LeaseError(`invalid option: reading "${k}" threw`, 'INVALID_OPTION');
      }
      if (copy !== null) copy[k] = value;
      else if (k === 'now') now = value;
      else if (k === 'connectionKey') key = value;
      else if (k === 'evict') evict = value;
      else {
        copy = copyOf(keys, i, key, now, evict);
        copy[k] = value;
      }
    }
    if (copy !== null) return copy;
    const laneTakes =
      (key === undefined || key === null || typeof key === 'string') && laneNow(now) && (evict === undefined || evict === null || typeof evict === 'boolean');
    if (!laneTakes) return copyOf(keys, keys.length, key, now, evict);
    readKeys = keys;
    readKey = key;
    readNow = now;
    readEvict = evict;
    return null;
  };
  /**
   * A plain object of the first `n` of `keys` (each `now`, `connectionKey` or `evict`),
   * with the values read for them.
   * @param {string[]} keys @param {number} n @param {unknown} key @param {unknown} now @param {unknown} evict
   */
  const copyOf = (keys, n, key, now, evict) => {
    /** @type {Record<string, unknown>} */
    const copy = {};
    for (let i = 0; i < n; i++) copy[keys[i]] = keys[i] === 'now' ? now : keys[i] === 'connectionKey' ? key : evict;
    return copy;
  };
  /** What the checked binding gets when the lane took the options but refused the call. */
  const readCopy = () => copyOf(readKeys, readKeys.length, readKey, readNow, readEvict);
  const getLease = proto.getLease;
  const lastEvicted = proto.lastEvicted;
  const lastReclaimed = proto.lastReclaimed;
  proto.acquire = function (/** @type {unknown} */ userId, /** @type {unknown} */ options) {
    // Getters run once: what falls back to the checked binding gets a copy of what was
    // read (`given`, or `readCopy()` when the lane took the options).
    /** @type {unknown} */
    let given = options;
    let read = false;
    let laneTakes = options === undefined || options === null;
    /** @type {string | undefined} */
    let key;
    /** @type {number | undefined} */
    let now;
    let keep = 0;
    if (options !== null && typeof options === 'object' && !Array.isArray(options)) {
      const copy = readOptions(options);
      if (copy === null) {
        read = laneTakes = true;
        key = /** @type {string | null | undefined} */ (readKey) ?? undefined;
        now = /** @type {number | null | undefined} */ (readNow) ?? undefined;
        keep = readEvict === false ? 1 : 0;
      } else given = copy;
    }
    // `put` refuses (-1) what the lane cannot carry faithfully, a lone surrogate included:
    // the checked binding then answers, or throws.
    const userLen = laneTakes && typeof userId === 'string' ? put(userId, 0) : -1;
    const keyLen = userLen < 0 || key === undefined ? -1 : put(key, userLen);
    const r = userLen < 0 || (key !== undefined && keyLen < 0) ? NaN : acquireLeaseLane.call(this, userLen, keyLen, now ?? Date.now(), keep);
    if (r !== r) return acquire.call(this, userId, read ? readCopy() : given);
    const user = /** @type {string} */ (userId);
    const b = view();
    const p = address;
    // Everything is read from the lane before anything else is called (which could
    // write to it, or grow the memory).
    const events = b[p + (r < 0 ? REFUSED_EVENTS : GRANTED_EVENTS)] === 1;
    const reclaimed = b[p + (r < 0 ? REFUSED_RECLAIMED : GRANTED_RECLAIMED)] === 1;
    try {
      if (r < 0) {
        /** @type {import('../pkg/web/socket_lease.js').AcquireResult} */
        const refusal = {
          ok: false,
          reason: REASONS[r],
          limit: data.getFloat64(p + REFUSED_LIMIT, true),
          active: data.getFloat64(p + REFUSED_ACTIVE, true),
          retryAfterMs: data.getFloat64(p + REFUSED_RETRY_AFTER_MS, true),
        };
        if (r === -4) refusal.evictable = true;
        if (reclaimed) refusal.reclaimed = lastReclaimed.call(this);
        return refusal;
      }
      const reused = b[p + GRANTED_REUSED] === 1;
      const evicted = b[p + GRANTED_EVICTED] === 1;
      const shape = b[p + GRANTED_SHAPE];
      const suffix = suffixOfUuidAt(GRANTED_UUID);
      const id = CONN_ + suffix;
      /** @type {import('../pkg/web/socket_lease.js').Lease | null} */
      let lease = null;
      if (shape === 0) {
        lease = {
          id,
          connectionId: id,
          runId: RUN_ + suffix,
          threadId: THREAD_ + suffix,
          userId: user,
          acquiredAt: data.getFloat64(p + GRANTED_ACQUIRED_AT, true),
          touchedAt: data.getFloat64(p + GRANTED_TOUCHED_AT, true),
          expiresAt: data.getFloat64(p + GRANTED_EXPIRES_AT, true),
        };
        if (key !== undefined) lease.connectionKey = key;
      } else if (shape === 1) {
        // Extra kinds: the lease (with its `ids`) as the checked binding builds it. The
        // class's own method, not a subclass's override.
        lease = getLease.call(this, id);
      }
      // Marked, so that `release(lease)` and `touch(lease)` need not spell and parse its id.
      if (lease !== null) new Mark(lease, Serial.of(this), r, id);
      return /** @type {import('../pkg/web/socket_lease.js').AcquireResult} */ ({
        ok: true,
        lease,
        evicted: evicted ? lastEvicted.call(this) : [],
        reclaimed: reclaimed ? lastReclaimed.call(this) : [],
        reused,
      });
    } finally {
      if (events) dispatch.call(this);
    }
  };
  /**
   * `release` or `touch` by id or by the lease `acquire` returned: a lease this registry
   * marked goes by its handle (`byHandle` answers 1, 0, or NaN where the checked binding
   * would throw); a string over the lane (`lane`, the same answers); anything else, and
   * whatever those refuse, through the checked `method` (which takes a lease by its `id`).
   * @param {(this: unknown, len: number, now: number) => number} lane
   * @param {(this: unknown, handle: number, now: number) => number} byHandle
   * @param {(this: unknown, anyId: unknown, now: unknown) => boolean} method
   */
  const byId = (lane, byHandle, method) =>
    /** @this {unknown} @param {unknown} anyId @param {unknown} now */
    function (anyId, now) {
      if (laneNow(now)) {
        const t = /** @type {number | undefined} */ (now) ?? Date.now();
        if (typeof anyId === 'string') {
          const len = put(anyId, 0);
          const r = len < 0 ? NaN : lane.call(this, len, t);
          if (r === r) return r === 1;
        } else if (typeof anyId === 'object' && anyId !== null) {
          const handle = Mark.token(anyId, Serial.of(/** @type {object} */ (this)));
          const r = handle < 0 ? NaN : byHandle.call(this, handle, t);
          if (r === r) return r === 1;
        }
      }
      return method.call(this, anyId, now);
    };
  proto.release = byId(releaseIdLane, releaseLane, release);
  proto.touch = byId(
    touchIdLane,
    /** @this {unknown} @param {number} handle @param {number} t */
    function (handle, t) {
      return touchHandle.call(this, handle, t) ? 1 : 0;
    },
    touch,
  );

  const checkedNewId = wasm.newId;
  const checkedParseId = wasm.parseId;
  const newIdLane = wasm.__newIdLane;
  const parseIdLane = wasm.__parseIdLane;
  /** kind -> `kind_` (or '' for the bare suffix), for kinds already checked. */
  const prefixes = new Map();
  // Suffixes made ahead for the clock's current millisecond (see `__newIdLane`): the
  // next one is at lane offset IDS_AT + SUFFIX_LEN * next, while next < end.
  const AHEAD = 16;
  let aheadMs = -1;
  let next = 0;
  let end = 0;
  /** @param {string} kind @param {number} [now] @returns {string} */
  const newId = (kind, now) => {
    const prefix = prefixes.get(kind);
    if (prefix !== undefined) {
      if (now === undefined) {
        const t = Date.now();
        if (t !== aheadMs || next === end) {
          end = newIdLane(t, AHEAD);
          aheadMs = t;
          next = 0;
        }
        if (next < end) return prefix + suffixAt(IDS_AT + SUFFIX_LEN * next++);
      } else if (typeof now === 'number' && now === now) {
        next = end = 0; // made another way: what was made ahead must not be handed out after it
        if (newIdLane(now, 1) === 1) return prefix + suffixAt(IDS_AT);
      }
    }
    next = end = 0;
    // The checked binding throws for a bad kind or time; a kind it accepted is remembered.
    const id = checkedNewId(kind, now);
    if (prefixes.size < KIND_CACHE) prefixes.set(kind, kind === '' ? '' : `${kind}_`);
    return id;
  };
  /**
   * What `parseId` returns: `kind`, `suffix`, `timestampMs` and `version` are own data
   * properties; `uuid` is an accessor that makes the string when first read and keeps
   * it. Making a 36-character string in JS was over a third of a parse, and most callers
   * read the kind, suffix or time. `toJSON` and Node's inspect show all five; a spread
   * or `structuredClone` copies the four own ones (use `toJSON()` for a plain object).
   * Its state is under symbol keys, not private fields: a Proxy of it (a framework's
   * reactive wrapper) must still read `uuid`.
   */
  class ParsedId {
    /**
     * @param {string} kind @param {string} suffix @param {number} timestampMs @param {number} version
     * @param {number} a @param {number} b @param {number} c @param {number} d the UUID, 32 bits each, high first
     */
    constructor(kind, suffix, timestampMs, version, a, b, c, d) {
      this.kind = kind;
      this.suffix = suffix;
      this.timestampMs = timestampMs;
      this.version = version;
      // The UUID as parsed (the public fields may be reassigned).
      this[W0] = a;
      this[W1] = b;
      this[W2] = c;
      this[W3] = d;
      /** @type {string | undefined} */
      this[UUID] = undefined;
    }
    get uuid() {
      /** @type {string | undefined} */
      let uuid = this[UUID];
      if (uuid !== undefined) return uuid;
      uuid = uuidText(this[W0], this[W1], this[W2], this[W3]);
      try {
        this[UUID] = uuid;
      } catch {
        // Frozen: made again on the next read.
      }
      return uuid;
    }
    set uuid(/** @type {string} */ value) {
      this[UUID] = value;
    }
    toJSON() {
      return { kind: this.kind, suffix: this.suffix, uuid: this.uuid, timestampMs: this.timestampMs, version: this.version };
    }
    /**
     * Node's `util.inspect` (console.log): all five parts, `uuid` included.
     * @param {number} depth @param {{ depth?: number | null }} options @param {(v: unknown, o: object) => string} inspect
     */
    [Symbol.for('nodejs.util.inspect.custom')](depth, options, inspect) {
      if (depth < 0) return '[ParsedId]';
      const deeper = options.depth === null || options.depth === undefined ? options.depth : options.depth - 1;
      return `ParsedId ${inspect(this.toJSON(), { ...options, depth: deeper })}`;
    }
  }
  /** @param {string} id @returns {import('../pkg/web/socket_lease.js').ParsedId} */
  const parseId = (id) => {
    // Anything longer than a TypeID can be is refused by the checked binding.
    const len = typeof id === 'string' && id.length <= MAX_ID_LEN ? put(id, 0) : -1;
    if (len >= 0) {
      const timestampMs = parseIdLane(len);
      if (timestampMs >= 0) {
        const b = view();
        const p = address;
        const k = b[p + PARSED_KIND_LEN];
        const u = p + PARSED_UUID;
        // prettier-ignore
        return new ParsedId(
          k === 0 ? '' : id.slice(0, k),
          k === 0 ? id : id.slice(k + 1),
          timestampMs,
          b[p + PARSED_VERSION],
          data.getUint32(u + 12, true),
          data.getUint32(u + 8, true),
          data.getUint32(u + 4, true),
          data.getUint32(u, true),
        );
      }
    }
    return checkedParseId(id);
  };
  return { newId, parseId };
}
