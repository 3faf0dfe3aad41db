'use strict';
// The Node host of socket-lease: a guard between an HTTP server's `upgrade` event and a
// `ws` server in noServer mode. It decides quota BEFORE the upgrade (so a refusal is a
// plain HTTP 429 a client can act on, never a 1011 after the fact), gives every accepted
// socket exactly one lease, and gives it back exactly once on every way a socket can end.
//
// Written as CommonJS on purpose: index.mjs re-exports this file, so `import` and
// `require` share one module instance on every Node >= 20 (require(esm) is not there
// before 20.19), the same scheme as the package's main loader.
//
// Every store call is awaited, so a store whose methods return promises (a shared Redis
// store) can replace the in-memory LeaseRegistry without changing the guard.

const { STATUS_CODES } = require('node:http');
const path = require('node:path');
const { WebSocketServer, WebSocket } = require('ws');
// ws's own header parsers, so the guard refuses exactly what ws would refuse. They are not
// in ws's `exports`, hence the file paths; package.json pins ws to one exact version, and
// these files have kept their names and exports through ws 8.
const WS_LIB = path.join(path.dirname(require.resolve('ws')), 'lib');
const subprotocol = require(path.join(WS_LIB, 'subprotocol.js'));
const extension = require(path.join(WS_LIB, 'extension.js'));
const PerMessageDeflate = require(path.join(WS_LIB, 'permessage-deflate.js'));
const { LeaseRegistry, LeaseError } = require('../node.cjs');

/** @typedef {import('./index.js').LeaseStore} LeaseStore */
/** @typedef {import('./index.js').LeaseGuardOptions} LeaseGuardOptions */
/** @typedef {import('./index.js').GuardStats} GuardStats */
/** @typedef {import('./index.js').GuardLogger} GuardLogger */
/** @typedef {import('./index.js').LogLevel} LogLevel */
/** @typedef {import('./index.js').EventLoggerOptions} EventLoggerOptions */
/** @typedef {import('./index.js').RevokedLease} RevokedLease */
/** @typedef {import('./index.js').LastRefusal} LastRefusal */
/** @typedef {import('socket-lease').Lease} Lease */
/** @typedef {import('socket-lease').LeaseEvent} LeaseEvent */
/** @typedef {import('node:http').IncomingMessage} IncomingMessage */
/** @typedef {import('node:http').Server} HttpServer */
/** @typedef {import('node:stream').Duplex} Duplex */

const CloseCodes = Object.freeze({
  GOING_AWAY: /** @type {1001} */ (1001),
  EVICTED: /** @type {4008} */ (4008),
  LEASE_EXPIRED: /** @type {4009} */ (4009),
});

// Reasons travel in the close frame (at most 123 bytes); clients may show them.
const CLOSE_REASONS = {
  [CloseCodes.GOING_AWAY]: 'server shutting down',
  [CloseCodes.EVICTED]: 'lease evicted: a newer connection of this user took the slot',
  [CloseCodes.LEASE_EXPIRED]: 'lease expired or revoked; reconnect',
};

/** @type {Record<LogLevel, number>} */
const LEVELS = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

// Levels of the core's events: near-limit is the alarm the incident lacked, so it warns.
/** @type {Record<LeaseEvent['type'], Exclude<LogLevel, 'silent'>>} */
const EVENT_LEVELS = {
  'near-limit': 'warn',
  'limit-reached': 'warn',
  rejected: 'warn',
  evicted: 'info',
  expired: 'info',
};

// The same checks `ws` (WebSocketServer#handleUpgrade) makes before it upgrades, in its
// order, done before acquiring: a request ws would refuse must never take a lease, and
// with evict-oldest must never evict the user's live socket for nothing.
const WS_KEY = /^[+/0-9A-Za-z]{22}==$/;

/**
 * @param {IncomingMessage} req
 * @param {import('ws').WebSocketServer} wss
 * @returns {string | null} why ws would refuse the handshake, or null
 */
function handshakeProblem(req, wss) {
  if (req.method !== 'GET') return 'method must be GET';
  const upgrade = req.headers.upgrade;
  if (upgrade === undefined || upgrade.toLowerCase() !== 'websocket') return 'Upgrade header must be websocket';
  const key = req.headers['sec-websocket-key'];
  if (key === undefined || !WS_KEY.test(key)) return 'missing or invalid Sec-WebSocket-Key';
  const version = Number(req.headers['sec-websocket-version']);
  if (version !== 13 && version !== 8) return 'missing or invalid Sec-WebSocket-Version';
  if (!wss.shouldHandle(req)) return 'not a path the ws server handles';
  const protocols = req.headers['sec-websocket-protocol'];
  if (protocols !== undefined) {
    try {
      subprotocol.parse(protocols);
    } catch {
      return 'invalid Sec-WebSocket-Protocol';
    }
  }
  // ws reads extensions only when it has permessage-deflate on (its default is off).
  const options = /** @type {any} */ (wss).options;
  const extensions = req.headers['sec-websocket-extensions'];
  if (options?.perMessageDeflate && extensions !== undefined) {
    try {
      const offers = extension.parse(extensions);
      if (offers[PerMessageDeflate.extensionName]) {
        // accept() only checks and picks parameters; no zlib stream is made.
        new PerMessageDeflate({ ...options.perMessageDeflate, isServer: true, maxPayload: options.maxPayload }).accept(offers[PerMessageDeflate.extensionName]);
      }
    } catch {
      return 'invalid or unacceptable Sec-WebSocket-Extensions';
    }
  }
  return null;
}

/**
 * @param {unknown} value
 * @param {string} name
 * @param {number} min
 */
function checkMs(value, name, min) {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > 2 ** 31 - 1) {
    throw invalidOption(`${name} must be an integer from ${min} to ${2 ** 31 - 1}, got ${String(value)}`);
  }
  return value;
}

/**
 * Misuse of the guard's options: a LeaseError with the same stable code as the core's and
 * the Redis store's option errors, so a host can tell it from a failure at run time.
 * @param {string} message
 */
function invalidOption(message) {
  return new LeaseError(`socket-lease/node: invalid option: ${message}`, 'INVALID_OPTION');
}

const GUARD_OPTIONS = [
  'userId', 'store', 'registry', 'wss', 'heartbeatMs', 'sweepMs', 'messageTouchMs', 'closeGraceMs',
  'upgradeTimeoutMs', 'refusalMemory', 'logger', 'logLevel', 'clock',
];

/** @param {unknown} value @returns {boolean} (not a type predicate: callers keep their `any`) */
const isObject = (value) => value !== null && typeof value === 'object';

/**
 * One function that writes a JSON line to a console-like logger, or fields + message to a
 * pino-like one. A throwing logger never breaks the caller (it runs on disconnect paths).
 *
 * @param {GuardLogger | undefined} logger
 * @param {LogLevel | undefined} level
 * @returns {(level: Exclude<LogLevel, 'silent'>, msg: string, fields: Record<string, unknown>) => void}
 */
function makeLog(logger, level = 'info') {
  // hasOwn: `in` would accept inherited names ('constructor', 'toString').
  if (typeof level !== 'string' || !Object.hasOwn(LEVELS, level)) {
    throw invalidOption(`logLevel must be one of ${Object.keys(LEVELS).join(', ')}, got ${String(level)}`);
  }
  if (logger !== undefined && !(isObject(logger) && ['debug', 'info', 'warn', 'error', 'log'].some((m) => typeof (/** @type {any} */ (logger))[m] === 'function'))) {
    throw invalidOption('logger must be a console-like or pino-like object (with debug/info/warn/error or log methods)');
  }
  const min = LEVELS[level];
  const sink = logger ?? console;
  const anySink = /** @type {any} */ (sink);
  const structured = typeof anySink.child === 'function' && typeof anySink.levels === 'object';
  return (lvl, msg, fields) => {
    if (LEVELS[lvl] < min) return;
    const write = sink[lvl] ?? sink.log;
    if (typeof write !== 'function') return;
    try {
      if (structured) write.call(sink, fields, msg);
      else write.call(sink, JSON.stringify({ level: lvl, time: new Date().toISOString(), msg, ...fields }));
    } catch {
      // Logging must never turn a release into a failure.
    }
  };
}

/**
 * @param {EventLoggerOptions} [options]
 * @returns {(event: LeaseEvent) => void}
 */
function createEventLogger(options = {}) {
  const log = makeLog(options.logger, options.level);
  return (event) => log(EVENT_LEVELS[event.type] ?? 'info', 'socket-lease event', { event: event.type, ...event, type: undefined });
}

/**
 * @param {unknown} value
 * @returns {value is PromiseLike<unknown>}
 */
function isThenable(value) {
  return value !== null && typeof value === 'object' && typeof (/** @type {any} */ (value).then) === 'function';
}

/**
 * @typedef {object} Conn
 * @property {string} leaseId
 * @property {number} handle              the registry's handle on the fast path, -1 otherwise
 * @property {Lease | null} lease         the full lease: from `acquire`, or looked up on first `leaseOf`
 * @property {string} userId
 * @property {WebSocket | null} ws       null until the upgrade completes
 * @property {boolean} alive             answered the last ping
 * @property {boolean} storeGone         the store already dropped the lease (evicted, expired): do not release
 * @property {4008 | 4009} goneCode      the close code for a lease dropped before its upgrade finished
 * @property {boolean} finished          released (or known gone) and forgotten
 * @property {number} lastTouch          clock value of the last touch, for messageTouchMs
 * @property {number} closingTicks       heartbeat ticks seen while CLOSING
 */

/**
 * One upgrade request the guard has not finished with: waiting for identity, the store,
 * or ws (an asynchronous verifyClient).
 * @typedef {object} PendingUpgrade
 * @property {Duplex} socket
 * @property {boolean} done              answered, accepted or abandoned: nothing more is written
 * @property {NodeJS.Timeout | null} timer  upgradeTimeoutMs
 * @property {Promise<void>} settled     what handleUpgrade returns
 * @property {() => void} settle
 */

class LeaseGuard {
  /** @type {LeaseStore} */ store;
  /** @type {import('./index.js').LeaseGuard['wss']} */ wss;

  #userId;
  #ownsWss;
  #heartbeatMs;
  #sweepMs;
  /** @type {number | false} */ #messageTouchMs;
  #closeGraceMs;
  #upgradeTimeoutMs;
  /** @type {(() => number) | null} */ #clock;
  /**
   * The store when it is an in-process LeaseRegistry with the handle API: its fast path
   * builds no JS objects and no id strings (a number per socket; the id is made only
   * when asked for), the cheapest way through the registry. Any other store goes through
   * the awaited object API.
   * @type {InstanceType<typeof LeaseRegistry> | null}
   */
  #registry = null;
  #log;
  /** @type {Map<WebSocket, Conn>} */ #byWs = new Map();
  /** @type {Map<string, Conn>} */ #byLease = new Map();
  /** @type {Set<PendingUpgrade>} */ #pendingUpgrades = new Set();
  /** Pending upgrades given to ws.handleUpgrade. @type {WeakSet<PendingUpgrade>} */ #handedOver = new WeakSet();
  /** @type {Set<Promise<unknown>>} */ #pendingStoreCalls = new Set();
  /** @type {NodeJS.Timeout | null} */ #heartbeatTimer = null;
  /** @type {NodeJS.Timeout | null} */ #sweepTimer = null;
  #sweeping = false;
  /** @type {Promise<void> | null} */ #closePromise = null;
  /** @type {Array<() => void>} */ #storeDetachers = [];
  /**
   * The last refusal of each recently refused user, least recently refused first (a Map
   * keeps insertion order), capped at #refusalMemory entries. A browser's WebSocket sees a
   * refused upgrade only as code 1006; this is where a host can read the real answer.
   * @type {Map<string, LastRefusal>}
   */
  #refusals = new Map();
  #refusalMemory;
  #refusalSeq = 0;
  #stats = {
    upgrades: { 101: 0, 400: 0, 401: 0, 429: 0, 500: 0, 503: 0 },
    released: 0,
    heartbeatTicks: 0,
    heartbeatTimeouts: 0,
    closes: { 1001: 0, 4008: 0, 4009: 0 },
    storeErrors: 0,
    storeUnavailable: 0,
    storeCallsAbandoned: 0,
  };

  /** @param {LeaseGuardOptions} options */
  constructor(options) {
    if (!isObject(options)) throw invalidOption('options must be an object with userId(req)');
    // A misspelt option (heartbeatMS) would otherwise be ignored without a word.
    for (const name of Object.keys(options)) {
      if (!GUARD_OPTIONS.includes(name)) throw invalidOption(`unknown option "${name}"; known: ${GUARD_OPTIONS.join(', ')}`);
    }
    if (typeof options.userId !== 'function') {
      throw invalidOption('userId(req) is required; the guard never invents identity');
    }
    if (options.store && options.registry) {
      throw invalidOption('give either store or registry, not both');
    }
    if (options.store !== undefined && !isObject(options.store)) throw invalidOption('store must be an object');
    if (options.registry !== undefined && !isObject(options.registry)) throw invalidOption('registry must be an object of LeaseRegistry options');
    if (options.clock !== undefined && typeof options.clock !== 'function') {
      throw invalidOption(`clock must be a function returning milliseconds, got ${typeof options.clock}`);
    }
    const wss = /** @type {any} */ (options.wss);
    if (
      wss !== undefined &&
      !(isObject(wss) && ['handleUpgrade', 'shouldHandle', 'emit', 'on'].every((m) => typeof wss[m] === 'function') && wss.options?.noServer === true)
    ) {
      throw invalidOption('wss must be a ws WebSocketServer created with { noServer: true }');
    }
    this.#userId = options.userId;
    this.#heartbeatMs = checkMs(options.heartbeatMs ?? 30_000, 'heartbeatMs', 10);
    this.#sweepMs = checkMs(options.sweepMs ?? this.#heartbeatMs, 'sweepMs', 10);
    this.#closeGraceMs = checkMs(options.closeGraceMs ?? 2_000, 'closeGraceMs', 0);
    this.#upgradeTimeoutMs = checkMs(options.upgradeTimeoutMs ?? 10_000, 'upgradeTimeoutMs', 1);
    this.#refusalMemory = checkMs(options.refusalMemory ?? 1_000, 'refusalMemory', 0);
    const touchMs = options.messageTouchMs ?? 1_000;
    this.#messageTouchMs = touchMs === false ? false : checkMs(touchMs, 'messageTouchMs', 0);
    // Without a host clock the store's own Date.now() is the same time, and leaving `now`
    // out spares the wasm core reading an options object on every call.
    this.#clock = options.clock ?? null;
    this.#log = makeLog(options.logger, options.logLevel);

    if (options.store) {
      this.store = options.store;
    } else {
      const logEvent = createEventLogger({ logger: options.logger, level: options.logLevel });
      const hostOnEvent = options.registry?.onEvent;
      this.store = new LeaseRegistry({
        ...options.registry,
        onEvent: (event) => {
          logEvent(event);
          hostOnEvent?.(event);
        },
      });
    }
    for (const method of /** @type {const} */ (['acquire', 'release', 'touch', 'sweep'])) {
      if (typeof this.store[method] !== 'function') {
        throw invalidOption(`the store has no ${method}() method`);
      }
    }
    const fast = /** @type {any} */ (this.store);
    if (
      this.store instanceof LeaseRegistry &&
      ['acquireHandle', 'releaseHandle', 'touchHandle', 'renewHandle', 'handleLeaseId', 'lastEvicted', 'lastRefusal'].every((m) => typeof fast[m] === 'function')
    ) {
      this.#registry = this.store;
    }
    // A store shared by several hosts tells this one about its leases that another host
    // removed (evicted, released, reclaimed), so the socket here is closed at once.
    const emitter = /** @type {any} */ (this.store);
    if (typeof emitter.on === 'function') {
      /** @param {RevokedLease} event */
      const onRevoked = (event) => this.#revoked(event);
      emitter.on('revoked', onRevoked);
      this.#storeDetachers.push(() => (emitter.off ?? emitter.removeListener)?.call(emitter, 'revoked', onRevoked));
    }
    const ttlMs = /** @type {any} */ (this.store).getOptions?.()?.ttlMs;
    if (typeof ttlMs === 'number' && ttlMs <= this.#heartbeatMs) {
      this.#log('warn', 'ttlMs is not above heartbeatMs: live but quiet sockets will lose their leases', { ttlMs, heartbeatMs: this.#heartbeatMs });
    }

    this.#ownsWss = !options.wss;
    // closeTimeout bounds how long a socket we closed (eviction, expiry) may linger when
    // the peer never answers the close frame; ws's own default is 30 s.
    // (closeTimeout is newer than @types/ws, hence the cast; the ESM and CJS views of
    // @types/ws are distinct types, hence the other.)
    const wsOptions = /** @type {import('ws').ServerOptions} */ ({ noServer: true, closeTimeout: Math.max(this.#closeGraceMs, 1000) });
    this.wss = options.wss ?? /** @type {any} */ (new WebSocketServer(wsOptions));

    // unref: an idle guard must not keep the process alive; close() stops them anyway.
    this.#heartbeatTimer = setInterval(() => this.#heartbeat(), this.#heartbeatMs).unref();
    this.#sweepTimer = setInterval(() => void this.#sweep(), this.#sweepMs).unref();
  }

  /**
   * @param {IncomingMessage} req
   * @param {Duplex} socket
   * @param {Buffer} head
   * @returns {Promise<void>}
   */
  handleUpgrade(req, socket, head) {
    /** @type {PendingUpgrade} */
    const up = { socket, done: false, timer: null, settled: Promise.resolve(), settle: noop };
    up.settled = new Promise((resolve) => (up.settle = () => resolve(undefined)));
    this.#pendingUpgrades.add(up);
    // Once a request is an `upgrade`, Node's HTTP timeouts no longer apply to its socket:
    // without this bound, a userId(req) or store call that never settles would hold the
    // socket (and the client) for good. unref: the socket itself keeps the process alive.
    up.timer = setTimeout(() => this.#abandon(up, 'upgrade-timeout'), this.#upgradeTimeoutMs).unref();
    this.#upgrade(up, req, socket, head).then(
      () => {
        // Handed to ws: settled when ws accepts it or the socket closes.
        if (!this.#handedOver.has(up)) this.#settleUpgrade(up);
      },
      (err) => {
        this.#log('error', 'upgrade failed', { error: String(err) });
        if (!up.done) this.#refuse(socket, 500, { reason: 'internal-error' });
        this.#settleUpgrade(up);
      },
    );
    return up.settled;
  }

  /** @param {PendingUpgrade} up */
  #settleUpgrade(up) {
    if (up.done) return;
    up.done = true;
    if (up.timer) clearTimeout(up.timer);
    this.#pendingUpgrades.delete(up);
    up.settle();
  }

  /**
   * Gives up on an upgrade still pending (timeout, or close() after its grace): answers 503
   * and drops the socket. A lease acquired later is released where the acquire returns.
   * @param {PendingUpgrade} up
   * @param {'upgrade-timeout' | 'shutting-down'} reason
   */
  #abandon(up, reason) {
    if (up.done) return;
    this.#settleUpgrade(up);
    this.#log('warn', 'upgrade abandoned: identity, the store or ws did not answer in time', { reason });
    this.#refuse(up.socket, 503, { reason }, 1);
  }

  /**
   * @param {HttpServer} server
   * @param {{ path?: string }} [options]
   */
  attach(server, options = {}) {
    const path = options.path;
    /** @param {IncomingMessage} req @param {Duplex} socket @param {Buffer} head */
    const onUpgrade = (req, socket, head) => {
      if (path !== undefined && pathOf(req.url) !== path) {
        socket.on('error', () => {});
        this.#respond(socket, 404, { reason: 'not-found' }, {}, false);
        return;
      }
      void this.handleUpgrade(req, socket, head);
    };
    server.on('upgrade', onUpgrade);
    return () => void server.removeListener('upgrade', onUpgrade);
  }

  /** @param {WebSocket} ws */
  leaseOf(ws) {
    const conn = this.#byWs.get(ws);
    if (!conn) return undefined;
    if (!conn.lease && this.#registry) conn.lease = this.#registry.getLease(conn.leaseId);
    return conn.lease ?? undefined;
  }

  /** @param {WebSocket} ws */
  leaseIdOf(ws) {
    return this.#byWs.get(ws)?.leaseId;
  }

  /** @param {WebSocket} ws */
  userIdOf(ws) {
    return this.#byWs.get(ws)?.userId;
  }

  sockets() {
    return this.#byWs.keys();
  }

  /**
   * @param {string} userId
   * @returns {LastRefusal | null}
   */
  lastRefusal(userId) {
    const r = this.#refusals.get(userId);
    return r ? { ...r } : null;
  }

  /** @returns {GuardStats} */
  stats() {
    const s = this.#stats;
    return {
      socketsOpen: this.#byWs.size,
      pendingUpgrades: this.#pendingUpgrades.size,
      upgrades: { ...s.upgrades },
      released: s.released,
      heartbeatTicks: s.heartbeatTicks,
      heartbeatTimeouts: s.heartbeatTimeouts,
      closes: { ...s.closes },
      storeErrors: s.storeErrors,
      storeUnavailable: s.storeUnavailable,
      storeCallsAbandoned: s.storeCallsAbandoned,
      closing: this.#closePromise !== null,
    };
  }

  async metrics() {
    let core = '';
    if (typeof this.store.metrics === 'function') core = await this.store.metrics();
    if (core && !core.endsWith('\n')) core += '\n';
    const s = this.#stats;
    const lines = [
      '# HELP socket_lease_sockets_open WebSocket connections the guard holds open.',
      '# TYPE socket_lease_sockets_open gauge',
      `socket_lease_sockets_open ${this.#byWs.size}`,
      '# HELP socket_lease_upgrades_total Upgrade requests answered by the guard, by HTTP status (101 = accepted).',
      '# TYPE socket_lease_upgrades_total counter',
      ...Object.entries(s.upgrades).map(([status, n]) => `socket_lease_upgrades_total{status="${status}"} ${n}`),
      '# HELP socket_lease_heartbeat_timeouts_total Sockets terminated because they missed a pong.',
      '# TYPE socket_lease_heartbeat_timeouts_total counter',
      `socket_lease_heartbeat_timeouts_total ${s.heartbeatTimeouts}`,
      '# HELP socket_lease_guard_closes_total Sockets closed by the guard, by close code.',
      '# TYPE socket_lease_guard_closes_total counter',
      ...Object.entries(s.closes).map(([code, n]) => `socket_lease_guard_closes_total{code="${code}"} ${n}`),
      '# HELP socket_lease_store_errors_total Store calls that threw or rejected (other than those counted in socket_lease_store_unavailable_total).',
      '# TYPE socket_lease_store_errors_total counter',
      `socket_lease_store_errors_total ${s.storeErrors}`,
      '# HELP socket_lease_store_unavailable_total Store calls refused because the store\'s backend was unavailable (code REDIS_UNAVAILABLE).',
      '# TYPE socket_lease_store_unavailable_total counter',
      `socket_lease_store_unavailable_total ${s.storeUnavailable}`,
    ];
    return core + lines.join('\n') + '\n';
  }

  close() {
    if (this.#closePromise) return this.#closePromise;
    if (this.#heartbeatTimer) clearInterval(this.#heartbeatTimer);
    if (this.#sweepTimer) clearInterval(this.#sweepTimer);
    this.#heartbeatTimer = this.#sweepTimer = null;
    // attach()'s listeners stay until the host detaches them: an upgrade that arrives after
    // close() is still answered 503 shutting-down, instead of falling through to the HTTP
    // server's request handler or hanging with no `upgrade` listener at all.
    for (const detach of this.#storeDetachers.splice(0)) detach();
    this.#closePromise = this.#shutdown();
    return this.#closePromise;
  }

  async #shutdown() {
    // Upgrades in flight see `closing` when their await returns and answer 503, releasing
    // what they acquired; wait for them, bounded in case the store hangs.
    await settledWithin([...this.#pendingUpgrades].map((up) => up.settled), this.#closeGraceMs);
    // Those still waiting (a hung identity or store call, a slow verifyClient) are answered
    // now rather than left holding their sockets past close().
    for (const up of [...this.#pendingUpgrades]) this.#abandon(up, 'shutting-down');
    const conns = [...this.#byWs.values()];
    for (const conn of conns) this.#closeSocket(conn, CloseCodes.GOING_AWAY);
    const closed = conns.map((conn) => closedPromise(/** @type {WebSocket} */ (conn.ws)));
    await settledWithin(closed, this.#closeGraceMs);
    for (const conn of conns) conn.ws?.terminate();
    await settledWithin(closed, this.#closeGraceMs);
    // Backstop: whatever did not report `close` is released here, so shutdown never
    // leaves a lease behind even if a close event went missing.
    for (const conn of [...this.#byLease.values()]) this.#finish(conn);
    // Bounded too: a store whose release never settles (a backend that stopped answering)
    // must not hang the host's shutdown. What is left is counted and logged, not waited for.
    await settledWithin([...this.#pendingStoreCalls], this.#closeGraceMs);
    const abandoned = this.#pendingStoreCalls.size;
    if (abandoned > 0) {
      this.#stats.storeCallsAbandoned += abandoned;
      this.#log('error', 'close(): store calls still pending after closeGraceMs; not waiting for them', { pending: abandoned, closeGraceMs: this.#closeGraceMs });
    }
    if (this.#ownsWss) await new Promise((resolve) => this.wss.close(() => resolve(undefined)));
  }

  /**
   * @param {PendingUpgrade} up
   * @param {IncomingMessage} req
   * @param {Duplex} socket
   * @param {Buffer} head
   */
  async #upgrade(up, req, socket, head) {
    // Node removes its own error listener from an upgraded socket; without one, a reset
    // during the handshake would crash the process.
    socket.on('error', noop);
    const problem = handshakeProblem(req, /** @type {any} */ (this.wss));
    if (problem) return this.#refuse(socket, 400, { reason: 'bad-handshake', message: problem });
    if (this.#closePromise) return this.#refuse(socket, 503, { reason: 'shutting-down' }, 1);

    /** @type {string | null | undefined} */
    let userId;
    try {
      userId = await this.#userId(req);
    } catch (err) {
      this.#log('error', 'userId(req) threw', { error: String(err) });
      if (up.done) return;
      return this.#refuse(socket, 500, { reason: 'identity-error' });
    }
    // Abandoned meanwhile (upgradeTimeoutMs, close()): already answered.
    if (up.done) return;
    if (userId === null || userId === undefined || userId === '') return this.#refuse(socket, 401, { reason: 'unauthorized' });
    if (typeof userId !== 'string') {
      // A host bug, not an anonymous client: a 401 would hide it behind a debug line.
      this.#log('error', 'userId(req) must return a string, null or undefined', { got: typeof userId });
      return this.#refuse(socket, 500, { reason: 'identity-error' });
    }
    if (socket.destroyed) return;
    if (this.#closePromise) return this.#refuseUser(socket, userId, 503, { reason: 'shutting-down' }, 1000);

    const registry = this.#registry;
    /** @type {{ handle: number, leaseId: string, lease: Lease | null } | null} */
    let held = null;
    /** @type {any} */ let answer;
    try {
      if (registry) {
        const handle = registry.acquireHandle(userId, undefined, this.#storeNow());
        if (handle >= 0) held = { handle, leaseId: '', lease: null };
        else answer = registry.lastRefusal();
      } else {
        answer = await (this.#clock ? this.store.acquire(userId, { now: this.#clock() }) : this.store.acquire(userId));
        if (answer?.ok === true && typeof answer.lease?.id === 'string' && answer.lease.id !== '') {
          held = { handle: -1, leaseId: answer.lease.id, lease: answer.lease };
        }
      }
    } catch (err) {
      if (/** @type {any} */ (err)?.code === 'INVALID_USER_ID') {
        return this.#refuse(socket, 400, { reason: 'invalid-user-id' });
      }
      this.#storeError('acquire', err);
      if (up.done) return;
      return this.#refuseUser(socket, userId, 503, { reason: 'store-unavailable' }, 1000);
    }

    if (!held) {
      if (up.done) return;
      if (answer?.ok === true) throw this.#badAnswer('acquire answered ok without a lease id (lease.id must be a non-empty string)');
      const refusal = answer;
      if (!refusal || refusal.ok !== false || typeof refusal.reason !== 'string') {
        throw this.#badAnswer(`acquire answered neither a lease nor a refusal: ${describe(answer)}`);
      }
      if (typeof refusal.retryAfterMs !== 'number' || !Number.isFinite(refusal.retryAfterMs) || refusal.retryAfterMs < 0) {
        throw this.#badAnswer(`a refusal's retryAfterMs must be a finite number >= 0, got ${describe(refusal.retryAfterMs)}`);
      }
      // The quota answer: explicit, before any WebSocket exists, with when to retry.
      const { reason, limit, active } = refusal;
      const seconds = Math.max(1, Math.ceil(refusal.retryAfterMs / 1000));
      this.#log('debug', 'upgrade refused', { userId, reason, limit, active, retryAfterS: seconds });
      return this.#refuseUser(socket, userId, 429, { reason, limit, active }, refusal.retryAfterMs);
    }

    // From here a lease is held: whatever throws before the socket is registered (a store
    // answer that breaks the contract, a throwing clock, a bug) must give it back, or it
    // stays counted against the user until the TTL (or for good, with a store that only
    // expires leases on touch). handleUpgrade's catch then answers 500.
    /** @type {Conn | null} */
    let conn = null;
    try {
      /** @type {unknown} */
      const evicted = registry ? registry.lastEvicted() : answer.evicted;
      if (!Array.isArray(evicted) || !evicted.every((id) => typeof id === 'string')) {
        throw this.#badAnswer(`acquire's evicted must be an array of lease ids, got ${describe(evicted)}`);
      }
      if (registry) held.leaseId = /** @type {string} */ (registry.handleLeaseId(held.handle));
      for (const id of evicted) this.#evicted(id);

      conn = {
        leaseId: held.leaseId,
        handle: held.handle,
        lease: held.lease,
        userId,
        ws: null,
        alive: true,
        storeGone: false,
        goneCode: CloseCodes.EVICTED,
        finished: false,
        lastTouch: this.#now(),
        closingTicks: 0,
      };
      this.#byLease.set(conn.leaseId, conn);
    } catch (err) {
      if (conn) this.#finish(conn);
      else this.#releaseHeld(held);
      throw err;
    }

    // Abandoned while the store decided: the socket was answered; give the lease back.
    if (up.done) {
      this.#finish(conn);
      return;
    }
    // The client may have gone, or shutdown begun, while we waited for the store.
    if (socket.destroyed || !socket.writable) {
      this.#finish(conn);
      socket.destroy();
      return;
    }
    if (this.#closePromise) {
      this.#finish(conn);
      return this.#refuseUser(socket, userId, 503, { reason: 'shutting-down' }, 1000);
    }

    // If ws drops the socket without calling back (peer sent FIN meanwhile), the socket's
    // close is the only signal left: release there.
    let upgraded = false;
    const onEarlyClose = () => {
      this.#settleUpgrade(up);
      if (!upgraded) this.#finish(conn);
    };
    socket.once('close', onEarlyClose);
    this.#handedOver.add(up);
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      upgraded = true;
      this.#settleUpgrade(up);
      socket.removeListener('close', onEarlyClose);
      socket.removeListener('error', noop);
      this.#accept(conn, ws, req);
    });
  }

  /**
   * @param {Conn} conn
   * @param {WebSocket} ws
   * @param {IncomingMessage} req
   */
  #accept(conn, ws, req) {
    // ws can call back late (a host wss with an asynchronous verifyClient): meanwhile the
    // sweep may have dropped the lease, or close() begun. Registering such a socket would
    // keep it open without a lease, or past close(): close it instead, with the code for
    // what happened.
    if (conn.finished || this.#closePromise) {
      const code = conn.storeGone ? conn.goneCode : this.#closePromise ? CloseCodes.GOING_AWAY : CloseCodes.LEASE_EXPIRED;
      this.#finish(conn);
      ws.on('error', () => ws.terminate());
      this.#stats.closes[code]++;
      ws.close(code, CLOSE_REASONS[code]);
      return;
    }
    conn.ws = ws;
    this.#byWs.set(ws, conn);
    this.#stats.upgrades[101]++;
    // Registered before the host's handlers, so the lease is gone by the time the host's
    // own `close` listener runs.
    ws.once('close', () => this.#finish(conn));
    // Without an `error` listener, a protocol error from the peer would throw out of
    // ws's emitter and crash the process. ws answers a protocol error with a close frame
    // and waits for the peer's (up to closeTimeout) before `close`; a peer that broke the
    // protocol is not waited for: release now and drop the TCP socket. `close` still
    // follows, and #finish ignores it.
    ws.on('error', (err) => {
      this.#log('debug', 'socket error; terminating', { leaseId: conn.leaseId, error: String(err) });
      this.#finish(conn);
      ws.terminate();
    });
    ws.on('pong', () => {
      conn.alive = true;
      // A keep-alive, not activity: every open socket answers pings, busy or idle.
      this.#touch(conn, false);
    });
    if (this.#messageTouchMs !== false) {
      const every = this.#messageTouchMs;
      ws.on('message', () => {
        if (this.#now() - conn.lastTouch >= every) this.#touch(conn);
      });
    }
    if (conn.storeGone) {
      // Evicted (or revoked) while the upgrade was finishing: the slot is gone.
      this.#closeSocket(conn, conn.goneCode);
      return;
    }
    try {
      this.wss.emit('connection', ws, req);
    } catch (err) {
      this.#log('error', 'connection handler threw; terminating the socket', { leaseId: conn.leaseId, error: String(err) });
      ws.terminate();
    }
  }

  /** @param {string} leaseId */
  #evicted(leaseId) {
    const conn = this.#byLease.get(leaseId);
    if (!conn) return;
    conn.storeGone = true;
    if (conn.ws) this.#closeSocket(conn, CloseCodes.EVICTED);
  }

  /**
   * Another host removed this lease: close its socket with 4008 for an eviction, 4009
   * otherwise, and never release it again.
   * @param {RevokedLease} event
   */
  #revoked(event) {
    const conn = this.#byLease.get(event?.leaseId);
    if (!conn || conn.finished) return;
    const code = event.reason === 'evicted' ? CloseCodes.EVICTED : CloseCodes.LEASE_EXPIRED;
    this.#log('info', 'lease removed by another host; closing its socket', { userId: conn.userId, leaseId: conn.leaseId, reason: event.reason, code });
    conn.storeGone = true;
    conn.goneCode = code;
    if (conn.ws) this.#closeSocket(conn, code);
  }

  /**
   * @param {Conn} conn
   * @param {1001 | 4008 | 4009} code
   */
  #closeSocket(conn, code) {
    const ws = conn.ws;
    if (!ws || ws.readyState === WebSocket.CLOSING || ws.readyState === WebSocket.CLOSED) return;
    this.#stats.closes[code]++;
    ws.close(code, CLOSE_REASONS[code]);
  }

  /**
   * Releases the lease once and forgets the connection. Idempotent: every disconnect path
   * (close, early close, shutdown backstop) ends here, and only the first one counts.
   * @param {Conn} conn
   */
  #finish(conn) {
    if (conn.finished) return;
    conn.finished = true;
    this.#byLease.delete(conn.leaseId);
    if (conn.ws) this.#byWs.delete(conn.ws);
    // A lease the store already dropped is not released again: that would count as an
    // unknown release, which is the store's leak detector.
    if (conn.storeGone) return;
    this.#stats.released++;
    const registry = this.#registry;
    this.#releaseHeld(conn);
  }

  /**
   * Gives a held lease back to the store. The time passed is the host's clock when it
   * answers; a clock that throws must not cost the release, so the store then uses its own.
   * @param {{ handle: number, leaseId: string }} held
   */
  #releaseHeld(held) {
    /** @type {number | undefined} */
    let now;
    try {
      now = this.#storeNow();
    } catch (err) {
      this.#log('error', 'clock() threw; releasing with the store\'s own time', { leaseId: held.leaseId, error: String(err) });
    }
    const registry = this.#registry;
    if (registry && held.handle >= 0) this.#call('release', () => registry.releaseHandle(held.handle, now));
    else this.#call('release', () => this.store.release(held.leaseId, now));
  }

  /**
   * A store answer that breaks the LeaseStore contract: a bug in the store, answered 500.
   * @param {string} problem
   */
  #badAnswer(problem) {
    this.#stats.storeErrors++;
    return Object.assign(new Error(`socket-lease/node: store.${problem}`), { code: 'INVALID_STORE_ANSWER' });
  }

  /**
   * Renews the lease. `activity`: a message (what `evict-idle` ranks by); otherwise a
   * pong, which renews without counting as activity where the store can tell the two
   * apart (LeaseRegistry's renewHandle, a store's `renew`); other stores get a touch.
   * @param {Conn} conn
   * @param {boolean} [activity]
   */
  #touch(conn, activity = true) {
    if (conn.finished || conn.storeGone) return;
    if (activity) conn.lastTouch = this.#now();
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

  #heartbeat() {
    this.#stats.heartbeatTicks++;
    /** @type {Conn[]} */
    const suspects = [];
    for (const conn of [...this.#byWs.values()]) {
      const ws = /** @type {WebSocket} */ (conn.ws);
      if (ws.readyState === WebSocket.CLOSED) {
        // A close event that never came: reclaim anyway.
        this.#finish(conn);
      } else if (ws.readyState === WebSocket.CLOSING) {
        // We (or the peer) started a close handshake that is not finishing.
        if (++conn.closingTicks >= 2) ws.terminate();
      } else if (!conn.alive) {
        suspects.push(conn);
      } else {
        this.#ping(conn);
      }
    }
    if (suspects.length === 0) return;
    // Decide after this turn's I/O has been read: when our own event loop stalled past an
    // interval, timers run before the poll phase, and a pong may be waiting unread in the
    // socket. A live peer must not pay for the server's stall. Two hops, because a ws
    // server with allowSynchronousEvents: false emits a pong one setImmediate after
    // reading it.
    const tick = this.#stats.heartbeatTicks;
    setImmediate(() => setImmediate(() => {
      // A stall as long as an interval again, and a later tick has run meanwhile: it saw
      // the pongs read since and pinged those sockets again (so `alive` is false once
      // more, though they answered). Its own decision stands in for this one.
      if (this.#stats.heartbeatTicks !== tick) return;
      for (const conn of suspects) {
        const ws = /** @type {WebSocket} */ (conn.ws);
        if (conn.finished || ws.readyState !== WebSocket.OPEN) continue;
        if (conn.alive) {
          this.#ping(conn);
          continue;
        }
        this.#stats.heartbeatTimeouts++;
        this.#log('info', 'heartbeat timeout; terminating', { userId: conn.userId, leaseId: conn.leaseId });
        ws.terminate();
      }
    }));
  }

  /** @param {Conn} conn */
  #ping(conn) {
    const ws = /** @type {WebSocket} */ (conn.ws);
    conn.alive = false;
    try {
      ws.ping();
    } catch {
      ws.terminate();
    }
  }

  async #sweep() {
    if (this.#sweeping) return;
    this.#sweeping = true;
    try {
      const ids = await this.store.sweep(this.#storeNow());
      for (const id of ids) {
        const conn = this.#byLease.get(id);
        if (!conn) continue;
        conn.storeGone = true;
        // For a socket ws has not handed over yet (asynchronous verifyClient): #accept
        // closes it with this code.
        conn.goneCode = CloseCodes.LEASE_EXPIRED;
        if (conn.ws) this.#closeSocket(conn, CloseCodes.LEASE_EXPIRED);
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
    // 503, not a failure of the store: counted apart, and at debug so that an outage does
    // not write one error line per connection attempt.
    if (/** @type {any} */ (err)?.code === 'REDIS_UNAVAILABLE') {
      this.#stats.storeUnavailable++;
      this.#log('debug', 'store unavailable', { call: what, error: String(err) });
      return;
    }
    this.#stats.storeErrors++;
    this.#log('error', 'store call failed', { call: what, error: String(err) });
  }

  /**
   * @param {Duplex} socket
   * @param {400 | 401 | 429 | 500 | 503} status
   * @param {Record<string, unknown>} body
   * @param {number} [retryAfterS]
   */
  #refuse(socket, status, body, retryAfterS) {
    this.#stats.upgrades[status]++;
    this.#respond(socket, status, body, retryAfterS === undefined ? {} : { 'Retry-After': String(retryAfterS) });
  }

  /**
   * #refuse for a known user, remembering the answer for lastRefusal(userId).
   * @param {Duplex} socket
   * @param {string} userId
   * @param {429 | 503} status
   * @param {{ reason: string, limit?: number, active?: number }} body
   * @param {number} retryAfterMs
   */
  #refuseUser(socket, userId, status, body, retryAfterMs) {
    const retryAfterS = Math.max(1, Math.ceil(retryAfterMs / 1000));
    if (this.#refusalMemory > 0) {
      const refusals = this.#refusals;
      refusals.delete(userId);
      refusals.set(userId, {
        status,
        reason: body.reason,
        limit: body.limit ?? null,
        active: body.active ?? null,
        retryAfterMs,
        retryAfterS,
        at: this.#now(),
        seq: ++this.#refusalSeq,
      });
      if (refusals.size > this.#refusalMemory) refusals.delete(/** @type {string} */ (refusals.keys().next().value));
    }
    this.#refuse(socket, status, body, retryAfterS);
  }

  /**
   * A complete HTTP/1.1 response on the raw upgrade socket, then close it.
   * @param {Duplex} socket
   * @param {number} status
   * @param {Record<string, unknown>} body
   * @param {Record<string, string>} headers
   * @param {boolean} [log]
   */
  #respond(socket, status, body, headers, log = true) {
    if (log && status !== 429) this.#log('debug', 'upgrade refused', { status, ...body });
    if (socket.destroyed) return;
    const payload = JSON.stringify(body);
    const head = [
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}`,
      'Connection: close',
      'Content-Type: application/json',
      'Cache-Control: no-store',
      `Content-Length: ${Buffer.byteLength(payload)}`,
      ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
    ];
    socket.once('finish', () => socket.destroy());
    socket.end(`${head.join('\r\n')}\r\n\r\n${payload}`);
  }
}

function noop() {}

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

/**
 * The path of a request target, without parsing it as a URL: `new URL` throws on some
 * targets a client can send (`http://[`), and a throw here would escape the `upgrade`
 * listener and take the process down.
 * @param {string | undefined} target
 */
function pathOf(target = '/') {
  const end = target.search(/[?#]/);
  return end === -1 ? target : target.slice(0, end);
}

/**
 * @param {WebSocket} ws
 * @returns {Promise<void>}
 */
function closedPromise(ws) {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
  return new Promise((resolve) => ws.once('close', () => resolve()));
}

/**
 * Waits for all promises to settle, or for `ms`, whichever is first.
 * @param {Promise<unknown>[]} promises
 * @param {number} ms
 */
async function settledWithin(promises, ms) {
  if (promises.length === 0) return;
  /** @type {NodeJS.Timeout | undefined} */
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  await Promise.race([Promise.allSettled(promises), timeout]);
  clearTimeout(timer);
}

/** @param {LeaseGuardOptions} options */
function createLeaseGuard(options) {
  return new LeaseGuard(options);
}

// Compile-time checks that the implementation matches the published declarations
// (index.d.ts): tsc fails here when the two drift apart.
/** @type {typeof import('./index.js').LeaseGuard} */
const checkedClass = LeaseGuard;
/** @type {typeof import('./index.js').createLeaseGuard} */
const checkedFactory = createLeaseGuard;
/** @type {typeof import('./index.js').createEventLogger} */
const checkedLogger = createEventLogger;
/** @type {typeof import('./index.js').CloseCodes} */
const checkedCodes = CloseCodes;

module.exports = { LeaseGuard: checkedClass, createLeaseGuard: checkedFactory, createEventLogger: checkedLogger, CloseCodes: checkedCodes };
