// The connection lifecycle of socket-lease, written once for every host. A host adapter
// (ws on Node, Bun, Deno, crossws, ...) only translates its runtime's events into calls
// here; everything a connection goes through is decided in this file:
//
//   admit(request, origin)   Origin check, identity, the host's verify hook, then phase one
//                            of the quota decision. Answers a refusal (status, Retry-After,
//                            JSON body) or a Connection that may hold its lease already.
//   open(conn, socket)       phase two, once every host check passed and the socket exists:
//                            commits the eviction phase one only planned, registers the
//                            socket, closes the sockets of leases the store dropped.
//   cancel(conn)             a host check refused after admit: gives back what phase one
//                            took. Never evicts, never touches another lease.
//   message / pong / closed / error      activity, liveness, release exactly once.
//   close()                  refuses new upgrades, closes every socket with 1001, releases
//                            every lease, waits (bounded) for the store.
//
// Two-phase admission: phase one asks the store for a lease that evicts nobody. Under the
// limit it is granted at once (the common case, one store call). At the limit under an
// evicting policy the store answers "evictable", and the eviction is made only in open(),
// after the handshake checks, verifyClient and the host's hooks have passed: a refused
// handshake never evicts a live socket (a cross-site page riding the user's cookie could
// otherwise kick the user's real sockets again and again).
//
// Runtime-neutral: no `node:` import and no WebSocket library. Timers are the global
// setTimeout/setInterval; sockets are reached only through the adapter's driver.

import { LeaseError } from '../runtime.mjs';
import { CloseCodes, CLOSE_REASONS, DEFAULT_MAX_BUFFERED, refusal } from './protocol.mjs';
import { originCheck } from './origin.mjs';
import { RateLimitedLog, eventLogger, makeLog } from './log.mjs';
import { ConnList, LeaseIndex } from './tables.mjs';

/** @typedef {import('./protocol.mjs').Refusal} Refusal */
/** @typedef {import('./protocol.mjs').RefusalStatus} RefusalStatus */

/**
 * Misuse of an option: a LeaseError with the same stable code as the core's and the Redis
 * store's option errors, so a host can tell it from a failure at run time.
 * @param {string} where  the module named in the message (`socket-lease/node`)
 * @param {string} message
 */
export function invalidOption(where, message) {
  return new LeaseError(`${where}: invalid option: ${message}`, 'INVALID_OPTION');
}

/**
 * @param {unknown} value
 * @param {string} name
 * @param {number} min
 * @param {(message: string) => Error} invalid
 */
export function checkMs(value, name, min, invalid) {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > 2 ** 31 - 1) {
    throw invalid(`${name} must be an integer from ${min} to ${2 ** 31 - 1}, got ${String(value)}`);
  }
  return value;
}

/** @param {unknown} value @returns {value is PromiseLike<any>} */
export function isThenable(value) {
  return value !== null && typeof value === 'object' && typeof (/** @type {any} */ (value).then) === 'function';
}

/** @param {unknown} value */
const isObject = (value) => value !== null && typeof value === 'object';

/** A short description of an unexpected value, for error messages. @param {unknown} value */
function describe(value) {
  if (value === undefined) return 'undefined';
  try {
    const text = JSON.stringify(value);
    return text === undefined ? typeof value : text.length > 80 ? `${text.slice(0, 80)}...` : text;
  } catch {
    return typeof value;
  }
}

/** `readyState` values of the WebSocket API, shared by ws, Bun, Deno and workerd. */
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

/** Connection.list: which of the lifecycle's lists a connection is on. */
const PENDING_LIST = 1;
const OPEN_LIST = 2;

/**
 * How the lifecycle reaches the adapter's sockets. Given once, so a connection costs no
 * object of its own beyond its record.
 * @typedef {object} SocketDriver
 * @property {(socket: any, code: number, reason: string) => void} close      start a close handshake
 * @property {(socket: any) => void} terminate                                 drop the connection now
 * @property {((socket: any) => void) | null} [ping]   a protocol ping; without it the
 *   runtime keeps sockets alive itself (an idle timeout) and pongs are reported by the adapter
 * @property {(socket: any) => number} [bufferedAmount]   bytes queued unsent
 * @property {(socket: any) => number} [readyState]       default `socket.readyState`
 * @property {(fn: () => void) => void} [afterIO]         runs fn once I/O already received
 *   has been read (Node: two setImmediate hops); default setTimeout(fn, 0)
 * @property {(conn: Connection) => boolean} [abandoned]   whether an admitted request that
 *   has not opened is already dead (its client left), so its lease goes back before
 *   upgradeTimeoutMs; asked about each pending connection on every reap (see #reap)
 */

/**
 * One connection, from its admission to its release. The adapter holds it between
 * `admit` and `open`/`cancel`; after `open` it can find it again with `connectionOf`.
 */
export class Connection {
  /** The lease id (`conn_…`); '' until phase two granted it. */
  leaseId = '';
  /** The registry's handle on the fast path, -1 otherwise. */
  handle = -1;
  /** @type {import('socket-lease').Lease | null} the full lease, when the store gave one */
  lease = null;
  /** @type {any} the adapter's socket, once open */
  socket = null;
  /** Answered the last ping. */
  alive = true;
  /** The store dropped the lease (evicted, expired, revoked): never release it again. */
  storeGone = false;
  /** @type {number} the close code for a lease dropped before its socket opened */
  goneCode = CloseCodes.EVICTED;
  /** Released (or known gone) and forgotten. */
  finished = false;
  /** Phase two must acquire, evicting: phase one only learnt that an eviction would admit. */
  evict = false;
  /** Clock value of the last touch by a message, for messageTouchMs. */
  lastTouch = 0;
  /** Heartbeat ticks seen while CLOSING. */
  closingTicks = 0;
  /** @type {((reason: 'shutting-down' | 'upgrade-timeout') => void) | null} set by the adapter: answer the raw request, the lifecycle gave up on it */
  onAbandon = null;
  /** Date.now() when its request arrived: one that neither opens nor is cancelled within upgradeTimeoutMs of it is given back (#reap). */
  admittedAt = 0;
  /** @type {any} the adapter's own handle on the request until it opens (what `driver.abandoned` looks at) */
  host = null;
  /** @type {Connection | null} the lifecycle's list links (tables.mjs ConnList): pending, then open */
  listPrev = null;
  /** @type {Connection | null} */
  listNext = null;
  /** Which of the lifecycle's lists holds it: 0 none, PENDING or OPEN. */
  list = 0;

  /** @param {string} userId */
  constructor(userId) {
    this.userId = userId;
  }
}

/**
 * @typedef {object} LifecycleOptions
 * @property {import('./index.js').LeaseStore} store
 * @property {(request: any) => string | null | undefined | Promise<string | null | undefined>} userId
 * @property {import('./origin.mjs').AllowedOrigins} [allowedOrigins]
 * @property {(request: any, userId: string) => boolean | Promise<boolean>} [verify]
 * @property {number} [heartbeatMs]
 * @property {number} [sweepMs]
 * @property {number | false} [messageTouchMs]
 * @property {number} [closeGraceMs]
 * @property {number} [upgradeTimeoutMs]
 * @property {number} [refusalMemory]
 * @property {number} [maxBufferedBytes]
 * @property {import('./log.mjs').Logger} [logger]
 * @property {import('./log.mjs').LogLevel} [logLevel]
 * @property {number} [logIntervalMs]
 * @property {number} [logBurst]
 * @property {() => number} [clock]
 */

/**
 * The LeaseRegistry an adapter makes from its `registry` option (when no `store` is
 * given): its events are logged, rate-limited, through the adapter's logger, and an
 * `onEvent` in the options is called too. `Registry` is the class of the adapter's own
 * loader (Node's, Deno's), so its errors are the LeaseError its users import.
 * @param {new (options: any) => any} Registry
 * @param {{ registry?: Record<string, any>, logger?: import('./log.mjs').Logger, logLevel?: import('./log.mjs').LogLevel }} options
 * @param {(message: string) => Error} invalid
 */
export function loggedRegistry(Registry, options, invalid) {
  const logEvent = eventLogger({ logger: options.logger, level: options.logLevel }, invalid);
  const hostOnEvent = options.registry?.onEvent;
  return new Registry({
    ...options.registry,
    onEvent: (/** @type {any} */ event) => {
      logEvent(event);
      hostOnEvent?.(event);
    },
  });
}

/** Option names the lifecycle itself reads (adapters add their own). */
export const LIFECYCLE_OPTIONS = Object.freeze([
  'store',
  'userId',
  'allowedOrigins',
  'verify',
  'heartbeatMs',
  'sweepMs',
  'messageTouchMs',
  'closeGraceMs',
  'upgradeTimeoutMs',
  'refusalMemory',
  'maxBufferedBytes',
  'logger',
  'logLevel',
  'logIntervalMs',
  'logBurst',
  'clock',
]);

/** Levels of the lifecycle's own refusal lines, by reason; each rate-limited per reason. */
/** @type {Record<string, import('./log.mjs').LineLevel>} */
const REFUSAL_LEVELS = {
  'origin-not-allowed': 'warn',
  forbidden: 'info',
  'identity-error': 'error',
  'verify-error': 'error',
  'upgrade-timeout': 'warn',
  'internal-error': 'error',
};

export class ConnectionLifecycle {
  /** @type {import('./index.js').LeaseStore} */ store;
  #where;
  #userId;
  #origins;
  #verify;
  #heartbeatMs;
  #sweepMs;
  /** @type {number | false} */ #messageTouchMs;
  #closeGraceMs;
  #upgradeTimeoutMs;
  #refusalMemory;
  #maxBuffered;
  /** @type {(() => number) | null} */ #clock;
  /** @type {SocketDriver} */ #driver;
  /**
   * The store when it is an in-process LeaseRegistry with the handle API: its fast path
   * builds no JS objects and no id strings (a number per socket; the id is made only
   * when asked for). Any other store goes through the awaited object API.
   * @type {any}
   */
  #registry = null;
  /** The registry's `lastRemovedCount`, when it has one. @type {(() => number) | null} */
  #removedCount = null;
  /** The registry's `lastLeaseId` (the id the acquire just granted, spelled from bytes it left in JS's reach), when it has one. @type {(() => string | null) | null} */
  #lastLeaseId = null;
  #log;
  #limited;
  // Per-connection bookkeeping without Map or Set (see tables.mjs for why).
  /** Open and registered, from open() until released. @type {ConnList<Connection>} */ #open = new ConnList(OPEN_LIST);
  /** Admitted, neither opened nor cancelled yet. @type {ConnList<Connection>} */ #pending = new ConnList(PENDING_LIST);
  /** Every connection holding a lease, by lease id. @type {LeaseIndex<Connection>} */ #byLease = new LeaseIndex();
  /**
   * The property an open socket's connection is kept under, for connectionOf: on the
   * socket itself, because a WeakMap's table retains young entries as a Map's does
   * (tables.mjs); one symbol per lifecycle, so two lifecycles never read each other's.
   */
  #connKey = Symbol('socket-lease connection');
  /** Admissions still waiting for identity, verify or the store. @type {Set<Promise<unknown>>} */ #admitting = new Set();
  /** @type {Set<Promise<unknown>>} */ #pendingStoreCalls = new Set();
  /** @type {any} */ #heartbeatTimer = null;
  /** @type {any} */ #sweepTimer = null;
  /** @type {any} */ #reapTimer = null;
  #sweeping = false;
  /** @type {Promise<void> | null} */ #closePromise = null;
  /** Resolves when close() stops waiting for admissions in flight: they are answered 503. */
  #giveUp = /** @type {{ promise: Promise<'shutting-down'>, resolve: () => void }} */ (deferred('shutting-down'));
  /** @type {Array<() => void>} */ #storeDetachers = [];
  /**
   * The last refusal of each recently refused user, least recently refused first (a Map
   * keeps insertion order), capped at #refusalMemory entries. A browser's WebSocket sees a
   * refused upgrade only as code 1006; this is where a host can read the real answer.
   * @type {Map<string, import('./index.js').LastRefusal>}
   */
  #refusals = new Map();
  #refusalSeq = 0;
  #stats = {
    upgrades: /** @type {Record<string, number>} */ ({ 101: 0, 400: 0, 401: 0, 403: 0, 429: 0, 500: 0, 503: 0 }),
    refusals: /** @type {Record<string, number>} */ ({}),
    released: 0,
    cancelled: 0,
    upgradeTimeouts: 0,
    heartbeatTicks: 0,
    heartbeatTimeouts: 0,
    closes: /** @type {Record<string, number>} */ ({ 1001: 0, 1009: 0, 4008: 0, 4009: 0, 4010: 0, 4029: 0 }),
    storeErrors: 0,
    storeUnavailable: 0,
    storeCallsAbandoned: 0,
  };

  /**
   * @param {LifecycleOptions} options  checked here (the adapter checks option names)
   * @param {SocketDriver} driver
   * @param {string} where  the module named in errors and logs (`socket-lease/node`)
   */
  constructor(options, driver, where) {
    this.#where = where;
    const invalid = (/** @type {string} */ message) => invalidOption(where, message);
    if (typeof options.userId !== 'function') throw invalid('userId(request) is required; the host never invents identity');
    if (!isObject(options.store)) throw invalid('store must be an object');
    for (const method of /** @type {const} */ (['acquire', 'release', 'touch', 'sweep'])) {
      if (typeof (/** @type {any} */ (options.store)[method]) !== 'function') throw invalid(`the store has no ${method}() method`);
    }
    if (options.verify !== undefined && typeof options.verify !== 'function') throw invalid('verify must be a function (request, userId) => boolean');
    if (options.clock !== undefined && typeof options.clock !== 'function') {
      throw invalid(`clock must be a function returning milliseconds, got ${typeof options.clock}`);
    }
    this.#userId = options.userId;
    this.#origins = originCheck(options.allowedOrigins, invalid);
    this.#verify = options.verify ?? null;
    this.#heartbeatMs = checkMs(options.heartbeatMs ?? 30_000, 'heartbeatMs', 10, invalid);
    this.#sweepMs = checkMs(options.sweepMs ?? this.#heartbeatMs, 'sweepMs', 10, invalid);
    this.#closeGraceMs = checkMs(options.closeGraceMs ?? 2_000, 'closeGraceMs', 0, invalid);
    this.#upgradeTimeoutMs = checkMs(options.upgradeTimeoutMs ?? 10_000, 'upgradeTimeoutMs', 1, invalid);
    this.#refusalMemory = checkMs(options.refusalMemory ?? 1_000, 'refusalMemory', 0, invalid);
    this.#maxBuffered = checkMs(options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED, 'maxBufferedBytes', 1, invalid);
    const touchMs = options.messageTouchMs ?? 1_000;
    this.#messageTouchMs = touchMs === false ? false : checkMs(touchMs, 'messageTouchMs', 0, invalid);
    // Without a host clock the store's own Date.now() is the same time, and leaving `now`
    // out spares the wasm core reading an options object on every call.
    this.#clock = options.clock ?? null;
    this.#log = makeLog(options.logger, options.logLevel, invalid);
    this.#limited = new RateLimitedLog(this.#log, {
      burst: options.logBurst === undefined ? undefined : checkMs(options.logBurst, 'logBurst', 0, invalid),
      intervalMs: options.logIntervalMs === undefined ? undefined : checkMs(options.logIntervalMs, 'logIntervalMs', 1, invalid),
    });
    this.#driver = driver;
    this.store = options.store;
    const fast = /** @type {any} */ (this.store);
    if (
      ['acquireHandle', 'releaseHandle', 'touchHandle', 'renewHandle', 'handleLeaseId', 'lastEvicted', 'lastRefusal'].every(
        (m) => typeof fast[m] === 'function',
      )
    ) {
      this.#registry = fast;
      if (typeof fast.lastRemovedCount === 'function') this.#removedCount = fast.lastRemovedCount;
      if (typeof fast.lastLeaseId === 'function') this.#lastLeaseId = fast.lastLeaseId;
    }
    // A store shared by several hosts tells this one about its leases that another host
    // removed (evicted, released, reclaimed), so the socket here is closed at once.
    if (typeof fast.on === 'function') {
      /** @param {import('./index.js').RevokedLease} event */
      const onRevoked = (event) => this.#revoked(event);
      fast.on('revoked', onRevoked);
      this.#storeDetachers.push(() => (fast.off ?? fast.removeListener)?.call(fast, 'revoked', onRevoked));
    }
    const ttlMs = fast.getOptions?.()?.ttlMs;
    if (typeof ttlMs === 'number' && ttlMs <= this.#heartbeatMs) {
      this.#log('warn', 'ttlMs is not above heartbeatMs: live but quiet sockets will lose their leases', { ttlMs, heartbeatMs: this.#heartbeatMs });
    }
    this.#heartbeatTimer = unref(setInterval(() => this.#heartbeat(), this.#heartbeatMs));
    this.#sweepTimer = unref(setInterval(() => void this.#sweep(), this.#sweepMs));
    // One timer for every admitted request of every adapter: a runtime may never report a
    // handshake it did not finish (Deno, Bun: a peer gone before the 101), or a later check
    // may hold it (Socket.IO's next middleware); what admission took goes back within
    // upgradeTimeoutMs plus half of it (at most one second more).
    this.#reapTimer = unref(setInterval(() => this.#reap(), Math.min(1_000, Math.max(10, Math.floor(this.#upgradeTimeoutMs / 2)))));
  }

  /** Milliseconds allowed for one upgrade (identity, verify, store, the runtime's handshake). */
  get upgradeTimeoutMs() {
    return this.#upgradeTimeoutMs;
  }

  get closeGraceMs() {
    return this.#closeGraceMs;
  }

  /** Whether `close()` has been called. */
  get closing() {
    return this.#closePromise !== null;
  }

  /** How many sockets are open and registered (stats().socketsOpen, without building the stats). */
  get openCount() {
    return this.#open.size;
  }

  // ------------------------------------------------------------------ admission

  /**
   * Phase one. Resolves to a Connection (admitted: the adapter runs its remaining checks,
   * then calls `open` or `cancel`) or to a Refusal to answer before any WebSocket exists.
   * Never rejects; bounded by `upgradeTimeoutMs`.
   * @param {any} request  the runtime's request, passed to `userId`, `verify` and `allowedOrigins`
   * @param {string | null | undefined} origin  the request's Origin header
   * @returns {Promise<Connection | Refusal>}
   */
  admit(request, origin) {
    const answer = this.admitNow(request, origin);
    return isThenable(answer) ? answer : Promise.resolve(answer);
  }

  /**
   * `admit`, answered at once when the Origin check, identity, verify and the store all
   * answer synchronously (an in-process registry and a cookie or token read: the usual
   * case), with no promise and no timer. As soon as one of them returns a promise, the
   * rest of the admission goes on asynchronously and the answer is a promise, bounded by
   * `upgradeTimeoutMs` and given up by `close()` after `closeGraceMs`, exactly as `admit`.
   * The decisions are the same either way: both run the steps of #admit.
   * @param {any} request
   * @param {string | null | undefined} origin
   * @returns {Connection | Refusal | Promise<Connection | Refusal>}
   */
  admitNow(request, origin) {
    if (this.#closePromise) return this.#refuse(503, { reason: 'shutting-down' }, 1000);
    /** @type {Connection | Refusal | Promise<Connection | Refusal>} */
    let answer;
    try {
      answer = this.#checkOrigin(request, origin ?? null, Date.now());
    } catch (err) {
      return this.#admissionFailed(err);
    }
    return isThenable(answer) ? this.#admitLater(answer) : answer;
  }

  /**
   * The asynchronous rest of an admission, `pending` (the steps from the first answer
   * that was a promise), bounded by upgradeTimeoutMs and by close().
   * @param {Promise<Connection | Refusal>} pending
   * @returns {Promise<Connection | Refusal>}
   */
  #admitLater(pending) {
    const admission = pending.then(undefined, (err) => this.#admissionFailed(err));
    this.#admitting.add(admission);
    /** @type {any} */
    let timer;
    const timeout = new Promise((resolve) => {
      timer = unref(setTimeout(() => resolve(null), this.#upgradeTimeoutMs));
    });
    return Promise.race([admission, timeout, this.#giveUp.promise]).then((result) => {
      clearTimeout(timer);
      this.#admitting.delete(admission);
      if (result !== null && result !== 'shutting-down') return /** @type {Connection | Refusal} */ (result);
      // Identity, verify or the store did not answer in time (or close() stopped
      // waiting). A lease granted later is given back where it arrives.
      void admission.then((late) => {
        if (late instanceof Connection) this.cancel(late);
      });
      return result === null ? this.#refuse(503, { reason: 'upgrade-timeout' }, 1000) : this.#refuse(503, { reason: 'shutting-down' }, 1000);
    });
  }

  /** An admission that threw (a store that broke its contract, a clock that threw): 500. @param {unknown} err */
  #admissionFailed(err) {
    this.#log('error', 'admission failed', { error: String(err) });
    return this.#refuse(500, { reason: 'internal-error' });
  }

  // The steps of an admission, in order: the Origin check, identity, verify, the store.
  // Each step calls the host's hook (or the store), then hands its answer to the check
  // that follows it: at once when the answer is a value, once it settles when it is a
  // promise (then a rejection goes where a throw goes). A fully synchronous admission
  // runs through all of them in one call, allocating nothing of its own but the
  // Connection; the decisions are the same either way. (A generator did this before, at
  // about 290 bytes and a resumption per connection: see js/lifecycle/tables.mjs for why
  // allocation per connection counts.)

  /**
   * @template T
   * @param {PromiseLike<unknown>} pending
   * @param {(value: any) => T | Promise<T>} onValue
   * @param {(err: unknown) => T | Promise<T>} onError
   * @returns {Promise<T>}
   */
  #after(pending, onValue, onError) {
    return Promise.resolve(pending).then(onValue, onError);
  }

  /**
   * @param {any} request
   * @param {string | null} origin
   * @param {number} started  Date.now() when the request arrived: upgradeTimeoutMs counts from it
   * @returns {Connection | Refusal | Promise<Connection | Refusal>}
   */
  #checkOrigin(request, origin, started) {
    if (!this.#origins) return this.#identify(request, started);
    let allowed;
    try {
      allowed = this.#origins(origin, request);
    } catch (err) {
      return this.#originFailed(err);
    }
    if (isThenable(allowed)) {
      return this.#after(
        allowed,
        (a) => this.#originChecked(a, request, started),
        (err) => this.#originFailed(err),
      );
    }
    return this.#originChecked(allowed, request, started);
  }

  /** @param {unknown} err */
  #originFailed(err) {
    this.#log('error', 'allowedOrigins threw', { error: String(err) });
    return this.#refuse(500, { reason: 'internal-error' });
  }

  /**
   * @param {unknown} allowed
   * @param {any} request
   * @param {number} started
   */
  #originChecked(allowed, request, started) {
    // Before identity and quota: a forged page costs nothing and changes nothing.
    if (allowed !== true) return this.#refuse(403, { reason: 'origin-not-allowed' });
    return this.#identify(request, started);
  }

  /**
   * @param {any} request
   * @param {number} started
   * @returns {Connection | Refusal | Promise<Connection | Refusal>}
   */
  #identify(request, started) {
    let userId;
    try {
      userId = this.#userId(request);
    } catch (err) {
      return this.#identityFailed(err);
    }
    if (isThenable(userId)) {
      return this.#after(
        userId,
        (u) => this.#identified(u, request, started),
        (err) => this.#identityFailed(err),
      );
    }
    return this.#identified(userId, request, started);
  }

  /** @param {unknown} err */
  #identityFailed(err) {
    this.#log('error', 'userId(request) threw', { error: String(err) });
    return this.#refuse(500, { reason: 'identity-error' });
  }

  /**
   * @param {unknown} userId
   * @param {any} request
   * @param {number} started
   */
  #identified(userId, request, started) {
    if (userId === null || userId === undefined || userId === '') return this.#refuse(401, { reason: 'unauthorized' });
    if (typeof userId !== 'string') {
      // A host bug, not an anonymous client: a 401 would hide it behind a debug line.
      this.#log('error', 'userId(request) must return a string, null or undefined', { got: typeof userId });
      return this.#refuse(500, { reason: 'identity-error' });
    }
    if (!this.#verify) return this.#take(userId, started);
    let ok;
    try {
      ok = this.#verify(request, userId);
    } catch (err) {
      return this.#verifyFailed(err);
    }
    if (isThenable(ok)) {
      return this.#after(
        ok,
        (v) => this.#verified(v, userId, started),
        (err) => this.#verifyFailed(err),
      );
    }
    return this.#verified(ok, userId, started);
  }

  /** @param {unknown} err */
  #verifyFailed(err) {
    this.#log('error', 'verify(request, userId) threw', { error: String(err) });
    return this.#refuse(500, { reason: 'verify-error' });
  }

  /**
   * @param {unknown} ok
   * @param {string} userId
   * @param {number} started
   */
  #verified(ok, userId, started) {
    if (ok !== true) return this.#refuse(403, { reason: 'forbidden' }, undefined, userId);
    return this.#take(userId, started);
  }

  /**
   * Phase one of the quota decision.
   * @param {string} userId
   * @param {number} started
   * @returns {Connection | Refusal | Promise<Connection | Refusal>}
   */
  #take(userId, started) {
    if (this.#closePromise) return this.#refuseUser(userId, 503, { reason: 'shutting-down' }, 1000);
    const conn = new Connection(userId);
    /** @type {any} */
    let answer;
    try {
      answer = this.#acquire(conn, false);
    } catch (err) {
      return this.#takeFailed(err, userId);
    }
    if (isThenable(answer)) {
      return this.#after(
        answer,
        (a) => this.#taken(a, conn, started),
        (err) => this.#takeFailed(err, userId),
      );
    }
    return this.#taken(answer, conn, started);
  }

  /**
   * @param {unknown} err
   * @param {string} userId
   */
  #takeFailed(err, userId) {
    const code = /** @type {any} */ (err)?.code;
    if (code === 'INVALID_USER_ID') return this.#refuse(400, { reason: 'invalid-user-id' });
    // A store that broke its contract: a bug, answered 500 by admit(), not an outage.
    if (code === 'INVALID_STORE_ANSWER') throw err;
    this.#storeError('acquire', err);
    return this.#refuseUser(userId, 503, { reason: 'store-unavailable' }, 1000);
  }

  /**
   * @param {Refusal | null} answer  null: `conn` holds its lease (or may take it in phase two)
   * @param {Connection} conn
   * @param {number} started
   * @returns {Connection | Refusal}
   */
  #taken(answer, conn, started) {
    if (answer !== null) return answer;
    try {
      conn.lastTouch = this.#now();
    } catch (err) {
      // A host clock that throws: nothing is held past this point (admit answers 500).
      this.cancel(conn);
      throw err;
    }
    if (this.#closePromise) {
      this.cancel(conn);
      return this.#refuseUser(conn.userId, 503, { reason: 'shutting-down' }, 1000);
    }
    conn.admittedAt = started;
    this.#pending.add(conn);
    return conn;
  }

  /**
   * Asks the store for `conn`'s lease: phase one (`evict` false: an eviction is only
   * planned, `conn.evict`) or phase two. Returns null when `conn` holds its lease or may
   * take it in phase two, or the refusal to answer. Closes the sockets of leases the store
   * dropped on the way (evicted; reclaimed because they had expired).
   * @param {Connection} conn
   * @param {boolean} evict
   * @returns {Refusal | null | Promise<Refusal | null>}
   */
  #acquire(conn, evict) {
    const registry = this.#registry;
    if (registry) {
      const handle = registry.acquireHandle(conn.userId, undefined, this.#storeNow(), evict);
      // Whether this acquire removed any lease: one number instead of two arrays built
      // in wasm per acquire (a registry without lastRemovedCount is always asked).
      const removed = this.#removedCount ? this.#removedCount.call(registry) !== 0 : true;
      if (handle >= 0) {
        conn.handle = handle;
        // The id without a second call into wasm where the registry can give it.
        conn.leaseId = (this.#lastLeaseId ? this.#lastLeaseId.call(registry) : null) ?? registry.handleLeaseId(handle);
        if (removed) {
          this.#dropped(registry.lastEvicted(), CloseCodes.EVICTED);
          this.#dropped(registry.lastReclaimed?.() ?? [], CloseCodes.LEASE_EXPIRED);
        }
        this.#track(conn);
        return null;
      }
      if (removed) this.#dropped(registry.lastReclaimed?.() ?? [], CloseCodes.LEASE_EXPIRED);
      return this.#refusalOf(conn, registry.lastRefusal(), evict);
    }
    const now = this.#storeNow();
    const options = now === undefined ? { evict } : { now, evict };
    const answer = this.store.acquire(conn.userId, options);
    return isThenable(answer) ? Promise.resolve(answer).then((a) => this.#answered(conn, a, evict)) : this.#answered(conn, answer, evict);
  }

  /**
   * A store's acquire answer, checked against the LeaseStore contract (a broken store is a
   * bug answered 500, never a lease held by nobody).
   * @param {Connection} conn
   * @param {any} answer
   * @param {boolean} evict
   */
  #answered(conn, answer, evict) {
    if (answer?.ok === true) {
      if (typeof answer.lease?.id !== 'string' || answer.lease.id === '') {
        throw this.#badAnswer('acquire answered ok without a lease id (lease.id must be a non-empty string)');
      }
      conn.leaseId = answer.lease.id;
      conn.lease = answer.lease;
      // From here the lease is held: a malformed rest of the answer must not leak it.
      this.#track(conn);
      // `reclaimed` is newer than the LeaseStore contract: a store without it reclaims nothing.
      const evicted = answer.evicted;
      const reclaimed = answer.reclaimed ?? [];
      if (!isIdList(evicted) || !isIdList(reclaimed)) {
        this.#finish(conn);
        throw this.#badAnswer(`acquire's evicted and reclaimed must be arrays of lease ids, got ${describe(evicted)} and ${describe(reclaimed)}`);
      }
      this.#dropped(evicted, CloseCodes.EVICTED);
      this.#dropped(reclaimed, CloseCodes.LEASE_EXPIRED);
      return null;
    }
    if (isIdList(answer?.reclaimed)) this.#dropped(answer.reclaimed, CloseCodes.LEASE_EXPIRED);
    return this.#refusalOf(conn, answer, evict);
  }

  /**
   * @param {Connection} conn
   * @param {any} answer  the store's refusal
   * @param {boolean} evict  whether this was phase two
   * @returns {Refusal | null}
   */
  #refusalOf(conn, answer, evict) {
    if (answer?.ok !== false || typeof answer.reason !== 'string') {
      throw this.#badAnswer(`acquire answered neither a lease nor a refusal: ${describe(answer)}`);
    }
    if (typeof answer.retryAfterMs !== 'number' || !Number.isFinite(answer.retryAfterMs) || answer.retryAfterMs < 0) {
      throw this.#badAnswer(`a refusal's retryAfterMs must be a finite number >= 0, got ${describe(answer.retryAfterMs)}`);
    }
    if (!evict && answer.evictable === true) {
      // The policy would evict to admit: planned now, made in open().
      conn.evict = true;
      return null;
    }
    const { reason, limit, active } = answer;
    return this.#refuseUser(conn.userId, 429, { reason, limit, active }, answer.retryAfterMs);
  }

  /**
   * Phase two: every check of the host passed and the socket exists. Commits a planned
   * eviction, then registers the socket. Returns whether the socket is now served; when
   * not, the lifecycle already closed it with the code that says why (4029 when the
   * slot went to another connection meanwhile, 4008/4009 when the lease was dropped,
   * 1001 when shutting down). A promise only when a planned eviction goes to an
   * asynchronous store.
   * @param {Connection} conn
   * @param {any} socket
   * @returns {boolean | Promise<boolean>}
   */
  open(conn, socket) {
    this.#pending.delete(conn);
    conn.socket = socket;
    if (!conn.finished && !this.#closePromise && conn.evict) {
      conn.evict = false;
      /** @type {any} */
      let refused;
      try {
        refused = this.#acquire(conn, true);
      } catch (err) {
        refused = Promise.reject(err);
      }
      if (isThenable(refused)) {
        return Promise.resolve(refused).then(
          (r) => this.#opened(conn, socket, r),
          (err) => this.#openFailed(conn, socket, err),
        );
      }
      return this.#opened(conn, socket, refused);
    }
    return this.#opened(conn, socket, null);
  }

  /**
   * @param {Connection} conn
   * @param {any} socket
   * @param {Refusal | null} refused
   */
  #opened(conn, socket, refused) {
    if (refused) {
      // Lost the slot between admission and now: a close the client can act on, with
      // when to retry in the reason (a 429 can no longer be sent).
      conn.finished = true;
      this.#stats.closes[CloseCodes.LIMIT_REACHED]++;
      const retry = refused.headers['retry-after'];
      this.#closeRaw(socket, CloseCodes.LIMIT_REACHED, `${CLOSE_REASONS[CloseCodes.LIMIT_REACHED]} (retry after ${retry} s)`);
      return false;
    }
    // Meanwhile the sweep may have dropped the lease, or close() begun. Registering the
    // socket would keep it open without a lease, or past close(): close it instead.
    if (conn.finished || this.#closePromise) {
      const code = conn.storeGone ? conn.goneCode : this.#closePromise ? CloseCodes.GOING_AWAY : CloseCodes.LEASE_EXPIRED;
      this.#finish(conn);
      this.#stats.closes[code]++;
      this.#closeRaw(socket, code, CLOSE_REASONS[/** @type {import('./protocol.mjs').CloseCode} */ (code)]);
      return false;
    }
    this.#open.add(conn);
    if ((isObject(socket) || typeof socket === 'function') && Object.isExtensible(socket)) socket[this.#connKey] = conn;
    this.#stats.upgrades[101]++;
    if (conn.storeGone) {
      this.#closeSocket(conn, conn.goneCode);
      return false;
    }
    return true;
  }

  /**
   * @param {Connection} conn
   * @param {any} socket
   * @param {unknown} err
   */
  #openFailed(conn, socket, err) {
    this.#storeError('acquire', err);
    conn.finished = true;
    this.#closeRaw(socket, 1011, 'lease store unavailable');
    return false;
  }

  /**
   * A host check refused the request after `admit`: gives back the lease phase one took.
   * Nothing else changes: no eviction was made, no other lease was touched.
   * @param {Connection} conn
   */
  cancel(conn) {
    if (conn.finished) return;
    this.#stats.cancelled++;
    this.#pending.delete(conn);
    conn.evict = false;
    if (conn.leaseId !== '' || conn.handle >= 0) this.#finish(conn);
    else conn.finished = true;
  }

  /**
   * A refusal the adapter decides itself (a malformed handshake, a path it does not
   * serve), counted and logged as the lifecycle's own.
   * @param {RefusalStatus} status
   * @param {{ reason: string } & Record<string, unknown>} body
   * @param {number} [retryAfterMs]
   */
  refuse(status, body, retryAfterMs) {
    return this.#refuse(status, body, retryAfterMs);
  }

  // ------------------------------------------------------------------ open sockets

  /**
   * A message arrived: activity (what `evict-idle` ranks by), renewing the lease at most
   * once per `messageTouchMs`.
   * @param {Connection} conn
   */
  message(conn) {
    if (this.#messageTouchMs === false || conn.finished) return;
    const now = this.#now();
    if (now - conn.lastTouch >= this.#messageTouchMs) {
      conn.lastTouch = now;
      this.#touch(conn, true);
    }
  }

  /**
   * The peer answered a ping (or the runtime reported a pong): alive, and the lease is
   * renewed without counting as activity.
   * @param {Connection} conn
   */
  pong(conn) {
    conn.alive = true;
    this.#touch(conn, false);
  }

  /**
   * The socket closed, for whatever reason: the lease is released once.
   * @param {Connection} conn
   */
  closed(conn) {
    this.#finish(conn);
  }

  /**
   * The socket failed (a protocol error, a frame over maxPayload). The runtime closes it;
   * the lease is released now rather than when the close finally arrives.
   * @param {Connection} conn
   * @param {unknown} err
   */
  error(conn, err) {
    this.#log('debug', 'socket error', { leaseId: conn.leaseId, error: String(err) });
    this.#finish(conn);
  }

  /**
   * A message over the adapter's maxPayload: the runtime (or the adapter) closes the socket
   * with 1009. Counted with the lifecycle's closes, logged at a rate a client cannot flood,
   * and the lease released now rather than when the close finally arrives.
   * @param {Connection} conn
   */
  tooBig(conn) {
    if (conn.finished) return;
    this.#stats.closes[CloseCodes.MESSAGE_TOO_BIG]++;
    this.#limited.write('message-too-big', 'info', 'message over maxPayload; socket closed with 1009', { userId: conn.userId, leaseId: conn.leaseId });
    this.#finish(conn);
  }

  /**
   * Whether the socket can take more data. When more than `maxBufferedBytes` wait unsent
   * (a peer that does not read), the socket is closed with 4010 and terminated if the
   * close cannot be delivered within `closeGraceMs` either; answers false from then on.
   * @param {Connection} conn
   */
  writable(conn) {
    if (conn.finished || conn.socket === null) return false;
    const amount = this.#driver.bufferedAmount?.(conn.socket) ?? 0;
    if (amount <= this.#maxBuffered) return true;
    this.#log('info', 'peer is not reading; closing', { userId: conn.userId, leaseId: conn.leaseId, bufferedAmount: amount });
    const socket = conn.socket;
    this.#closeSocket(conn, CloseCodes.BACKPRESSURE);
    // The close frame queues behind what the peer does not read: drop the connection
    // unless it is gone within the grace. Release now: the slot is not the peer's to keep.
    this.#finish(conn);
    unref(
      setTimeout(() => {
        if (this.#readyState(socket) !== CLOSED) this.#driver.terminate(socket);
      }, this.#closeGraceMs),
    );
    return false;
  }

  /** @param {any} socket */
  connectionOf(socket) {
    if (socket === null || socket === undefined) return undefined;
    const conn = socket[this.#connKey];
    if (conn !== undefined) return this.#open.has(conn) ? conn : undefined;
    // A socket that takes no properties (frozen, a primitive): found by walking the open list.
    if (typeof socket === 'object' || typeof socket === 'function' ? Object.isExtensible(socket) : false) return undefined;
    return this.#open.toArray().find((c) => c.socket === socket);
  }

  sockets() {
    return this.#open
      .toArray()
      .map((conn) => conn.socket)
      .values();
  }

  /** @param {string} userId */
  lastRefusal(userId) {
    const r = this.#refusals.get(userId);
    return r ? { ...r } : null;
  }

  /**
   * The full lease of an open socket. Built once per socket on the registry's fast path
   * (which works with handles); its times are those of that moment.
   * @param {Connection} conn
   */
  leaseOf(conn) {
    if (!conn.lease && this.#registry && !conn.finished) conn.lease = this.#registry.getLease(conn.leaseId);
    return conn.lease ?? undefined;
  }

  /** @returns {import('./index.js').LifecycleStats} */
  stats() {
    const s = this.#stats;
    return {
      socketsOpen: this.#open.size,
      pendingUpgrades: this.#pending.size + this.#admitting.size,
      upgrades: /** @type {any} */ ({ ...s.upgrades }),
      refusals: { ...s.refusals },
      released: s.released,
      cancelled: s.cancelled,
      upgradeTimeouts: s.upgradeTimeouts,
      heartbeatTicks: s.heartbeatTicks,
      heartbeatTimeouts: s.heartbeatTimeouts,
      closes: /** @type {any} */ ({ ...s.closes }),
      storeErrors: s.storeErrors,
      storeUnavailable: s.storeUnavailable,
      storeCallsAbandoned: s.storeCallsAbandoned,
      logLinesSuppressed: this.#limited.suppressed,
      closing: this.#closePromise !== null,
    };
  }

  /** The store's metrics plus the lifecycle's own series, as Prometheus text. */
  async metrics() {
    let core = '';
    if (typeof this.store.metrics === 'function') core = await this.store.metrics();
    if (core && !core.endsWith('\n')) core += '\n';
    const s = this.#stats;
    const lines = [
      '# HELP socket_lease_sockets_open WebSocket connections the host holds open.',
      '# TYPE socket_lease_sockets_open gauge',
      `socket_lease_sockets_open ${this.#open.size}`,
      '# HELP socket_lease_upgrades_total Upgrade requests answered, by HTTP status (101 = accepted).',
      '# TYPE socket_lease_upgrades_total counter',
      ...Object.entries(s.upgrades).map(([status, n]) => `socket_lease_upgrades_total{status="${status}"} ${n}`),
      '# HELP socket_lease_refusals_total Upgrade requests refused, by reason (every one counted; the log lines are rate-limited).',
      '# TYPE socket_lease_refusals_total counter',
      ...Object.entries(s.refusals).map(([reason, n]) => `socket_lease_refusals_total{reason="${reason}"} ${n}`),
      '# HELP socket_lease_heartbeat_timeouts_total Sockets terminated because they missed a pong.',
      '# TYPE socket_lease_heartbeat_timeouts_total counter',
      `socket_lease_heartbeat_timeouts_total ${s.heartbeatTimeouts}`,
      '# HELP socket_lease_guard_closes_total Sockets closed by the host, by close code.',
      '# TYPE socket_lease_guard_closes_total counter',
      ...Object.entries(s.closes).map(([code, n]) => `socket_lease_guard_closes_total{code="${code}"} ${n}`),
      '# HELP socket_lease_store_errors_total Store calls that threw or rejected (other than those counted in socket_lease_store_unavailable_total).',
      '# TYPE socket_lease_store_errors_total counter',
      `socket_lease_store_errors_total ${s.storeErrors}`,
      "# HELP socket_lease_store_unavailable_total Store calls refused because the store's backend was unavailable (code REDIS_UNAVAILABLE).",
      '# TYPE socket_lease_store_unavailable_total counter',
      `socket_lease_store_unavailable_total ${s.storeUnavailable}`,
      '# HELP socket_lease_log_lines_suppressed_total Log lines a client could trigger that the rate limit left out (each summarised in a "suppressed" line).',
      '# TYPE socket_lease_log_lines_suppressed_total counter',
      `socket_lease_log_lines_suppressed_total ${this.#limited.suppressed}`,
    ];
    return core + lines.join('\n') + '\n';
  }

  /**
   * Stops the timers, refuses new upgrades (503), gives up on admissions still pending
   * after `closeGraceMs`, closes every socket with 1001 (terminating those that do not
   * finish the close handshake within `closeGraceMs`), releases every lease, and waits
   * (bounded by `closeGraceMs`) for the store. Idempotent.
   * @param {() => Promise<void>} [afterSockets]  the adapter's own shutdown, run last
   */
  close(afterSockets) {
    if (this.#closePromise) return this.#closePromise;
    clearInterval(this.#heartbeatTimer);
    clearInterval(this.#sweepTimer);
    clearInterval(this.#reapTimer);
    for (const detach of this.#storeDetachers.splice(0)) detach();
    this.#closePromise = this.#shutdown(afterSockets);
    return this.#closePromise;
  }

  /** @param {(() => Promise<void>) | undefined} afterSockets */
  async #shutdown(afterSockets) {
    // Admissions in flight see `closing` when their await returns and answer 503, giving
    // back what they acquired; wait for them, bounded in case identity or the store hangs.
    await settledWithin([...this.#admitting], this.#closeGraceMs);
    this.#giveUp.resolve();
    // Admitted requests the runtime has not finished upgrading (an asynchronous
    // verifyClient): the adapter answers them now, and what they hold is given back.
    for (const conn of this.#pending.toArray()) {
      conn.onAbandon?.('shutting-down');
      this.cancel(conn);
    }
    const conns = this.#open.toArray();
    for (const conn of conns) this.#closeSocket(conn, CloseCodes.GOING_AWAY);
    const closed = conns.map((conn) => this.#whenClosed(conn));
    await settledWithin(closed, this.#closeGraceMs);
    for (const conn of conns) if (this.#readyState(conn.socket) !== CLOSED) this.#driver.terminate(conn.socket);
    await settledWithin(closed, this.#closeGraceMs);
    // Backstop: whatever did not report `close` is released here, so shutdown never
    // leaves a lease behind even if a close event went missing.
    for (const conn of this.#byLease.values()) this.#finish(conn);
    // Bounded too: a store whose release never settles (a backend that stopped answering)
    // must not hang the host's shutdown. What is left is counted and logged, not waited for.
    await settledWithin([...this.#pendingStoreCalls], this.#closeGraceMs);
    const abandoned = this.#pendingStoreCalls.size;
    if (abandoned > 0) {
      this.#stats.storeCallsAbandoned += abandoned;
      this.#log('error', 'close(): store calls still pending after closeGraceMs; not waiting for them', {
        pending: abandoned,
        closeGraceMs: this.#closeGraceMs,
      });
    }
    this.#limited.flush(true);
    await afterSockets?.();
  }

  /** Closed sockets are awaited by polling their state: the driver has no events. @param {Connection} conn */
  #whenClosed(conn) {
    return new Promise((resolve) => {
      const check = () => {
        if (conn.finished || this.#readyState(conn.socket) === CLOSED) resolve(undefined);
        else setTimeout(check, 10);
      };
      check();
    });
  }

  // ------------------------------------------------------------------ internals

  /**
   * The store granted `conn` its lease. A connection that ended while the store decided
   * (its socket closed during an asynchronous phase two) must not keep it: it is given
   * back at once, or it would count against the user until its TTL.
   * @param {Connection} conn
   */
  #track(conn) {
    if (conn.finished) {
      conn.finished = false;
      this.#finish(conn);
      return;
    }
    this.#byLease.set(conn.leaseId, conn);
  }

  /**
   * Sockets of leases the store dropped (evicted, reclaimed): closed with `code`, never
   * released again (that would count as an unknown release, the store's leak detector).
   * @param {string[]} ids
   * @param {4008 | 4009} code
   */
  #dropped(ids, code) {
    for (let i = 0; i < ids.length; i++) {
      const conn = this.#byLease.get(ids[i]);
      if (!conn || conn.finished) continue;
      conn.storeGone = true;
      conn.goneCode = code;
      if (this.#open.has(conn)) this.#closeSocket(conn, code);
    }
  }

  /**
   * Another host removed this lease: close its socket with 4008 for an eviction, 4009
   * otherwise, and never release it again.
   * @param {import('./index.js').RevokedLease} event
   */
  #revoked(event) {
    const conn = this.#byLease.get(event?.leaseId);
    if (!conn || conn.finished) return;
    const code = event.reason === 'evicted' ? CloseCodes.EVICTED : CloseCodes.LEASE_EXPIRED;
    this.#log('info', 'lease removed by another host; closing its socket', { userId: conn.userId, leaseId: conn.leaseId, reason: event.reason, code });
    this.#dropped([conn.leaseId], code);
  }

  /**
   * @param {Connection} conn
   * @param {number} code
   */
  #closeSocket(conn, code) {
    const socket = conn.socket;
    if (socket === null) return;
    const state = this.#readyState(socket);
    if (state === CLOSING || state === CLOSED) return;
    this.#stats.closes[code] = (this.#stats.closes[code] ?? 0) + 1;
    this.#closeRaw(socket, code, CLOSE_REASONS[/** @type {import('./protocol.mjs').CloseCode} */ (code)]);
  }

  /**
   * @param {any} socket
   * @param {number} code
   * @param {string} reason
   */
  #closeRaw(socket, code, reason) {
    try {
      this.#driver.close(socket, code, reason);
    } catch {
      this.#driver.terminate(socket);
    }
  }

  /** @param {any} socket */
  #readyState(socket) {
    return this.#driver.readyState ? this.#driver.readyState(socket) : socket.readyState;
  }

  /**
   * Releases the lease once and forgets the connection. Idempotent: every way a socket
   * ends comes here, and only the first counts.
   * @param {Connection} conn
   */
  #finish(conn) {
    if (conn.finished) return;
    conn.finished = true;
    // An admitted connection the sweep or a revocation ended before it opened.
    this.#pending.delete(conn);
    this.#byLease.delete(conn.leaseId);
    this.#open.delete(conn);
    if (conn.storeGone || (conn.leaseId === '' && conn.handle < 0)) return;
    this.#stats.released++;
    /** @type {number | undefined} */
    let now;
    try {
      now = this.#storeNow();
    } catch (err) {
      // A clock that throws must not cost the release: the store then uses its own time.
      this.#log('error', "clock() threw; releasing with the store's own time", { leaseId: conn.leaseId, error: String(err) });
    }
    const registry = this.#registry;
    if (registry && conn.handle >= 0) {
      // The registry answers synchronously: #call without a closure per release.
      try {
        registry.releaseHandle(conn.handle, now);
      } catch (err) {
        this.#storeError('release', err);
      }
    } else this.#call('release', () => this.store.release(conn.leaseId, now));
  }

  /**
   * Renews the lease. `activity`: a message (what `evict-idle` ranks by); otherwise a
   * pong, which renews without counting as activity where the store can tell the two
   * apart (LeaseRegistry's renewHandle, a store's `renew`); other stores get a touch.
   * @param {Connection} conn
   * @param {boolean} activity
   */
  #touch(conn, activity) {
    if (conn.finished || conn.storeGone) return;
    const registry = this.#registry;
    const store = /** @type {any} */ (this.store);
    const touch =
      registry && conn.handle >= 0
        ? activity
          ? () => registry.touchHandle(conn.handle, this.#storeNow())
          : () => registry.renewHandle(conn.handle, this.#storeNow())
        : !activity && typeof store.renew === 'function'
          ? () => store.renew(conn.leaseId, this.#storeNow())
          : () => this.store.touch(conn.leaseId, this.#storeNow());
    this.#call('touch', touch, (ok) => {
      if (ok === false && !conn.finished && !conn.storeGone) {
        conn.storeGone = true;
        this.#closeSocket(conn, CloseCodes.LEASE_EXPIRED);
      }
    });
  }

  #now() {
    return this.#clock ? this.#clock() : Date.now();
  }

  /** `now` for a store call: the host's clock, or undefined for the store's own. */
  #storeNow() {
    return this.#clock ? this.#clock() : undefined;
  }

  /**
   * Admitted connections that neither opened nor were cancelled within upgradeTimeoutMs,
   * or whose request the adapter's driver says is dead: the adapter answers the request
   * if it still can (`onAbandon`), and what admission took goes back. A connection that
   * opens after all is closed by open() (it is finished).
   */
  #reap() {
    if (this.#pending.size === 0) return;
    const deadline = Date.now() - this.#upgradeTimeoutMs;
    const driver = this.#driver;
    for (const conn of this.#pending.toArray()) {
      let gone = conn.admittedAt <= deadline;
      if (!gone && driver.abandoned) {
        try {
          gone = driver.abandoned(conn) === true;
        } catch (err) {
          this.#log('error', 'the driver threw in abandoned(); the request is given up', { error: String(err) });
          gone = true;
        }
      }
      if (!gone) continue;
      const answer = conn.onAbandon;
      conn.onAbandon = null;
      this.#stats.upgradeTimeouts++;
      this.cancel(conn);
      try {
        answer?.('upgrade-timeout');
      } catch (err) {
        this.#log('error', "the adapter's onAbandon threw", { error: String(err) });
      }
    }
  }

  #heartbeat() {
    this.#stats.heartbeatTicks++;
    this.#limited.flush();
    const ping = this.#driver.ping;
    /** @type {Connection[]} */
    const suspects = [];
    for (const conn of this.#open.toArray()) {
      const state = this.#readyState(conn.socket);
      if (state === CLOSED) {
        // A close event that never came: reclaim anyway.
        this.#finish(conn);
      } else if (state === CLOSING) {
        // We (or the peer) started a close handshake that is not finishing.
        if (++conn.closingTicks >= 2) this.#driver.terminate(conn.socket);
      } else if (!ping) {
        // The runtime keeps the socket alive (its idle timeout); nothing to ask.
      } else if (!conn.alive) {
        suspects.push(conn);
      } else {
        this.#ping(conn);
      }
    }
    if (suspects.length === 0) return;
    // Decide after this turn's I/O has been read: when our own event loop stalled past an
    // interval, timers run before I/O, and a pong may be waiting unread. A live peer must
    // not pay for the server's stall.
    const tick = this.#stats.heartbeatTicks;
    const afterIO = this.#driver.afterIO ?? ((/** @type {() => void} */ fn) => void setTimeout(fn, 0));
    afterIO(() => {
      // A stall as long as an interval again, and a later tick has run meanwhile: it saw
      // the pongs read since and pinged those sockets again. Its decision stands in for this one.
      if (this.#stats.heartbeatTicks !== tick) return;
      for (const conn of suspects) {
        if (conn.finished || this.#readyState(conn.socket) !== OPEN) continue;
        if (conn.alive) {
          this.#ping(conn);
          continue;
        }
        this.#stats.heartbeatTimeouts++;
        this.#log('info', 'heartbeat timeout; terminating', { userId: conn.userId, leaseId: conn.leaseId });
        this.#driver.terminate(conn.socket);
        // The runtime reports the close; releasing now does not wait for it.
        this.#finish(conn);
      }
    });
  }

  /** @param {Connection} conn */
  #ping(conn) {
    conn.alive = false;
    try {
      /** @type {(socket: any) => void} */ (this.#driver.ping)(conn.socket);
    } catch {
      this.#driver.terminate(conn.socket);
    }
  }

  async #sweep() {
    if (this.#sweeping) return;
    this.#sweeping = true;
    try {
      const ids = await this.store.sweep(this.#storeNow());
      for (const id of ids) {
        const conn = this.#byLease.get(id);
        if (!conn || conn.finished) continue;
        conn.storeGone = true;
        conn.goneCode = CloseCodes.LEASE_EXPIRED;
        if (this.#open.has(conn)) this.#closeSocket(conn, CloseCodes.LEASE_EXPIRED);
        // Not open yet (the runtime is finishing the handshake): open() closes it.
        else this.#finish(conn);
      }
    } catch (err) {
      this.#storeError('sweep', err);
    } finally {
      this.#sweeping = false;
    }
  }

  /**
   * Runs a store call that may return a value or a promise; tracks promises so close()
   * can wait for them, and counts failures instead of throwing on a disconnect path.
   * @template T
   * @param {string} what
   * @param {() => T | Promise<T>} call
   * @param {(value: T) => void} [then]
   */
  #call(what, call, then) {
    let value;
    try {
      value = call();
    } catch (err) {
      this.#storeError(what, err);
      return;
    }
    if (!isThenable(value)) {
      then?.(/** @type {T} */ (value));
      return;
    }
    const pending = Promise.resolve(value).then(
      (v) => then?.(v),
      (err) => this.#storeError(what, err),
    );
    this.#pendingStoreCalls.add(pending);
    void pending.finally(() => this.#pendingStoreCalls.delete(pending));
  }

  /**
   * @param {string} what
   * @param {unknown} err
   */
  #storeError(what, err) {
    // A store whose backend is down and that refuses on purpose (socket-lease/redis in
    // failMode "closed") logs the outage itself, once. Each refusal is then an expected
    // 503, not a failure of the store: counted apart, and at debug.
    if (/** @type {any} */ (err)?.code === 'REDIS_UNAVAILABLE') {
      this.#stats.storeUnavailable++;
      this.#log('debug', 'store unavailable', { call: what, error: String(err) });
      return;
    }
    this.#stats.storeErrors++;
    this.#limited.write(`store-error:${what}`, 'error', 'store call failed', { call: what, error: String(err) });
  }

  /**
   * A store answer that breaks the LeaseStore contract: a bug in the store, answered 500.
   * @param {string} problem
   */
  #badAnswer(problem) {
    this.#stats.storeErrors++;
    return Object.assign(new Error(`${this.#where}: store.${problem}`), { code: 'INVALID_STORE_ANSWER' });
  }

  /**
   * A refusal, counted exactly and logged within the rate limit of its reason.
   * @param {RefusalStatus} status
   * @param {{ reason: string } & Record<string, unknown>} body
   * @param {number} [retryAfterMs]
   * @param {string | null} [userId]
   * @returns {Refusal}
   */
  #refuse(status, body, retryAfterMs, userId = null) {
    const s = this.#stats;
    s.upgrades[status] = (s.upgrades[status] ?? 0) + 1;
    s.refusals[body.reason] = (s.refusals[body.reason] ?? 0) + 1;
    this.#limited.write(`refused:${body.reason}`, REFUSAL_LEVELS[body.reason] ?? 'debug', 'upgrade refused', { status, ...body });
    return refusal(status, body, retryAfterMs, userId);
  }

  /**
   * #refuse for a known user, remembering the answer for lastRefusal(userId).
   * @param {string} userId
   * @param {429 | 503} status
   * @param {{ reason: string, limit?: number, active?: number }} body
   * @param {number} retryAfterMs
   */
  #refuseUser(userId, status, body, retryAfterMs) {
    const answer = this.#refuse(status, body, retryAfterMs, userId);
    if (this.#refusalMemory > 0) {
      const refusals = this.#refusals;
      refusals.delete(userId);
      refusals.set(userId, {
        status,
        reason: body.reason,
        limit: body.limit ?? null,
        active: body.active ?? null,
        retryAfterMs,
        retryAfterS: Number(answer.headers['retry-after']),
        at: this.#now(),
        seq: ++this.#refusalSeq,
      });
      if (refusals.size > this.#refusalMemory) refusals.delete(/** @type {string} */ (refusals.keys().next().value));
    }
    return answer;
  }
}

/**
 * What every adapter's guard answers about its sockets (the demo app's host view), written
 * once: an adapter's class extends it and sets `lifecycle` in its constructor. Keyed by
 * the adapter's own socket (a ws, a Bun or Deno WebSocket, a crossws peer, a Socket.IO
 * socket).
 */
export class LeaseHost {
  /** @type {ConnectionLifecycle} the adapter's lifecycle, set by its constructor */
  lifecycle = /** @type {any} */ (null);

  /**
   * The full lease of an open socket (`undefined` once it closed or its lease is gone).
   * @param {any} socket
   */
  leaseOf(socket) {
    const conn = this.lifecycle.connectionOf(socket);
    return conn ? this.lifecycle.leaseOf(conn) : undefined;
  }

  /** The socket's lease id (`conn_…`), without building the lease object. @param {any} socket */
  leaseIdOf(socket) {
    return this.lifecycle.connectionOf(socket)?.leaseId;
  }

  /** The user the socket was admitted for. @param {any} socket */
  userIdOf(socket) {
    return this.lifecycle.connectionOf(socket)?.userId;
  }

  /**
   * Whether the socket can take more data: false once more than `maxBufferedBytes` wait
   * unsent (the peer does not read), and then the socket is being closed with 4010.
   * @param {any} socket
   */
  writable(socket) {
    const conn = this.lifecycle.connectionOf(socket);
    return conn ? this.lifecycle.writable(conn) : false;
  }

  /** The sockets held open. */
  sockets() {
    return this.lifecycle.sockets();
  }

  /** The user's last refused upgrade, or null. @param {string} userId */
  lastRefusal(userId) {
    return this.lifecycle.lastRefusal(userId);
  }

  stats() {
    return this.lifecycle.stats();
  }

  metrics() {
    return this.lifecycle.metrics();
  }
}

/**
 * @template T
 * @param {T} value
 * @returns {{ promise: Promise<T>, resolve: () => void }}
 */
function deferred(value) {
  /** @type {() => void} */
  let resolve = () => {};
  const promise = new Promise((r) => {
    resolve = () => r(value);
  });
  return { promise, resolve };
}

/** @param {unknown} v @returns {v is string[]} */
function isIdList(v) {
  return Array.isArray(v) && v.every((id) => typeof id === 'string');
}

/**
 * Timers must not keep a process alive on their own (Node, Bun, Deno); elsewhere
 * (browsers, workerd) there is nothing to do. close() clears them anyway.
 * @template T
 * @param {T} timer
 * @returns {T}
 */
function unref(timer) {
  const t = /** @type {any} */ (timer);
  if (typeof t?.unref === 'function') t.unref();
  // Deno's timers are numbers, unref'd through the runtime.
  else if (typeof t === 'number') /** @type {any} */ (globalThis).Deno?.unrefTimer?.(t);
  return timer;
}

/**
 * Waits for all promises to settle, or for `ms`, whichever is first.
 * @param {Promise<unknown>[]} promises
 * @param {number} ms
 */
async function settledWithin(promises, ms) {
  if (promises.length === 0) return;
  /** @type {any} */
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  await Promise.race([Promise.allSettled(promises), timeout]);
  clearTimeout(timer);
}
