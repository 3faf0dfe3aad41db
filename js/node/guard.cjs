'use strict';
// The Node host of socket-lease: `ws` in noServer mode behind an HTTP server's `upgrade`
// event. Everything a connection goes through (admission, the lease, renewal, eviction,
// release, refusal answers, close codes, logs, metrics) is the lifecycle's
// (js/lifecycle/lifecycle.mjs); this file only translates between it and ws, through ws's
// public API: `handleUpgrade`, `shouldHandle`, `connection`, and the socket's events.
//
// Written as CommonJS on purpose: index.mjs re-exports this file, so `import` and
// `require` share one module instance on every Node >= 20 (require(esm) is not there
// before 20.19), the same scheme as the package's main loader.

require('../peer.cjs').assertPeer('ws', 'socket-lease/node');
const { WebSocketServer } = require('ws');
const { LeaseRegistry } = require('../node.cjs');
const {
  Connection,
  ConnectionLifecycle,
  LIFECYCLE_OPTIONS,
  LeaseHost,
  checkMs,
  invalidOption,
  isThenable,
  loggedRegistry,
} = require('../lifecycle/lifecycle.cjs');
const { CloseCodes, DEFAULT_MAX_PAYLOAD, STATUS_TEXT, isTooBig } = require('../lifecycle/protocol.cjs');
const { eventLogger } = require('../lifecycle/log.cjs');

/** @typedef {import('./index.js').LeaseGuardOptions} LeaseGuardOptions */
/** @typedef {import('./index.js').GuardStats} GuardStats */
/** @typedef {import('./index.js').EventLoggerOptions} EventLoggerOptions */
/** @typedef {import('../lifecycle/protocol.mjs').Refusal} Refusal */
/** @typedef {import('ws').WebSocket} WebSocket */
/** @typedef {import('node:http').IncomingMessage} IncomingMessage */
/** @typedef {import('node:http').Server} HttpServer */
/** @typedef {import('node:stream').Duplex} Duplex */

const WHERE = 'socket-lease/node';
const invalid = (/** @type {string} */ message) => invalidOption(WHERE, message);

const GUARD_OPTIONS = [...LIFECYCLE_OPTIONS, 'registry', 'wss', 'maxPayload'];

// The checks of the handshake itself that ws makes first, made here before any quota
// work so that garbage costs no lease. Everything else ws checks (subprotocols,
// extensions, verifyClient) comes after admission and before the commit: a request ws
// refuses gives back what admission took and never evicts.
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
  return null;
}

/** How the lifecycle reaches a ws socket. @type {import('../lifecycle/lifecycle.mjs').SocketDriver} */
const DRIVER = {
  close: (ws, code, reason) => ws.close(code, reason),
  terminate: (ws) => ws.terminate(),
  ping: (ws) => ws.ping(),
  bufferedAmount: (ws) => ws.bufferedAmount,
  // A ws server with allowSynchronousEvents: false emits a pong one setImmediate after
  // reading it: two hops see every pong that had arrived.
  afterIO: (fn) => void setImmediate(() => setImmediate(fn)),
};

// One listener of each kind for every socket (no closures per connection): ws calls them
// with `this` = the socket, which carries its lifecycle and connection.
const LIFECYCLE = Symbol('socket-lease lifecycle');
const CONN = Symbol('socket-lease connection');
/** @this {any} */
function onClose() {
  this[LIFECYCLE].closed(this[CONN]);
}
/** @this {any} @param {Error} err */
function onError(err) {
  // ws has already answered (1009 for a frame over maxPayload, 1002 for a protocol error)
  // and closes the socket within its closeTimeout; the lease goes back now.
  if (isTooBig(err)) this[LIFECYCLE].tooBig(this[CONN]);
  else this[LIFECYCLE].error(this[CONN], err);
}
/** @this {any} */
function onPong() {
  this[LIFECYCLE].pong(this[CONN]);
}
/** @this {any} */
function onMessage() {
  this[LIFECYCLE].message(this[CONN]);
}
function noop() {}
/** What handleUpgrade answers when the upgrade is over by the time it returns. */
const DONE = Promise.resolve();

/**
 * `wss.clients` of the ws server the guard creates: the sockets the guard serves, read from
 * the lifecycle, in place of ws's own Set (the server is made with clientTracking off).
 * That Set gains and loses an entry per connection, and a hash table churned that way keeps
 * every connection's garbage alive through V8's young-generation collections (see
 * js/lifecycle/tables.mjs); measured, the guarded server's scavenges took 2.1 instead of
 * 4.2 us per connection without it. A socket is in it from the `connection` event until
 * its `close` (or until the guard cuts it off for not reading, 4010). Read-only: the add
 * and delete calls ws itself makes change nothing.
 * @implements {ReadonlySet<WebSocket>}
 */
class GuardClients {
  #lc;
  /** @param {ConnectionLifecycle} lc */
  constructor(lc) {
    this.#lc = lc;
  }
  get size() {
    return this.#lc.openCount;
  }
  /** @param {WebSocket} ws */
  has(ws) {
    return this.#lc.connectionOf(ws) !== undefined;
  }
  /** @param {(value: WebSocket, key: WebSocket, set: ReadonlySet<WebSocket>) => void} fn @param {unknown} [thisArg] */
  forEach(fn, thisArg) {
    for (const ws of this.#lc.sockets()) fn.call(thisArg, ws, ws, this);
  }
  values() {
    return this.#lc.sockets();
  }
  keys() {
    return this.#lc.sockets();
  }
  /** @returns {SetIterator<[WebSocket, WebSocket]>} */
  entries() {
    return /** @type {any} */ (Array.from(this.#lc.sockets(), (ws) => /** @type {[WebSocket, WebSocket]} */ ([ws, ws])).values());
  }
  [Symbol.iterator]() {
    return this.#lc.sockets();
  }
  get [Symbol.toStringTag]() {
    return 'GuardClients';
  }
  /** ws's own call when it completes an upgrade: the lifecycle keeps the sockets. */
  add() {
    return this;
  }
  /** ws's own call when a socket closes: the lifecycle keeps the sockets. */
  delete() {
    return false;
  }
}

class LeaseGuard extends LeaseHost {
  /** @type {import('./index.js').LeaseStore} */ store;
  /** @type {import('./index.js').LeaseGuard['wss']} */ wss;
  #lc;
  #ownsWss;
  #touchOnMessage;

  /** @param {LeaseGuardOptions} options */
  constructor(options) {
    super();
    if (options === null || typeof options !== 'object') throw invalid('options must be an object with userId(req)');
    // A misspelt option (heartbeatMS) would otherwise be ignored without a word.
    for (const name of Object.keys(options)) {
      if (!GUARD_OPTIONS.includes(name)) throw invalid(`unknown option "${name}"; known: ${GUARD_OPTIONS.join(', ')}`);
    }
    if (typeof options.userId !== 'function') throw invalid('userId(req) is required; the guard never invents identity');
    if (options.store && options.registry) throw invalid('give either store or registry, not both');
    if (options.registry !== undefined && (options.registry === null || typeof options.registry !== 'object')) {
      throw invalid('registry must be an object of LeaseRegistry options');
    }
    const wss = /** @type {any} */ (options.wss);
    if (wss !== undefined) {
      if (
        !(
          wss !== null &&
          typeof wss === 'object' &&
          ['handleUpgrade', 'shouldHandle', 'emit', 'on'].every((m) => typeof wss[m] === 'function') &&
          wss.options?.noServer === true
        )
      ) {
        throw invalid('wss must be a ws WebSocketServer created with { noServer: true }');
      }
      if (options.maxPayload !== undefined) throw invalid('maxPayload applies to the WebSocketServer the guard creates; give yours its own maxPayload');
    }
    const maxPayload = checkMs(options.maxPayload ?? DEFAULT_MAX_PAYLOAD, 'maxPayload', 1, invalid);

    /** @type {any} */
    const store = options.store ?? loggedRegistry(LeaseRegistry, options, invalid);
    const { registry: _registry, wss: _wss, maxPayload: _maxPayload, ...lifecycleOptions } = options;
    this.#lc = new ConnectionLifecycle({ ...lifecycleOptions, store }, DRIVER, WHERE);
    this.lifecycle = this.#lc;
    this.store = store;
    this.#touchOnMessage = options.messageTouchMs !== false;
    this.#ownsWss = !options.wss;
    // closeTimeout bounds how long a socket we closed (eviction, expiry, 1009) may linger
    // when the peer never answers the close frame; ws's own default is 30 s.
    // (closeTimeout is newer than @types/ws, hence the cast.)
    const wsOptions = /** @type {import('ws').ServerOptions} */ ({
      noServer: true,
      maxPayload,
      closeTimeout: Math.max(this.#lc.closeGraceMs, 1000),
      clientTracking: false,
    });
    if (options.wss) this.wss = options.wss;
    else {
      this.wss = /** @type {any} */ (new WebSocketServer(wsOptions));
      Object.defineProperty(this.wss, 'clients', { value: new GuardClients(this.#lc), enumerable: true });
    }
  }

  /**
   * @param {IncomingMessage} req
   * @param {Duplex} socket
   * @param {Buffer} head
   * @returns {Promise<void>}
   */
  handleUpgrade(req, socket, head) {
    // Node removes its own error listener from an upgraded socket; without one, a reset
    // during the handshake would crash the process.
    socket.on('error', noop);
    const problem = handshakeProblem(req, /** @type {any} */ (this.wss));
    if (problem) {
      respond(socket, this.#lc.refuse(400, { reason: 'bad-handshake', message: problem }));
      return DONE;
    }
    // Answered at once when identity, verify, the Origin check and the store are
    // synchronous (the usual case): then the whole upgrade runs in this call, with no
    // promise and no timer; otherwise it goes on when they answer.
    const admitted = this.#lc.admitNow(req, req.headers.origin);
    if (!isThenable(admitted)) {
      // A throw (a host's `connection` listener is caught further in) stays a rejection,
      // as on the asynchronous path.
      try {
        return this.#admitted(admitted, req, socket, head) ?? DONE;
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return admitted.then((a) => this.#admitted(a, req, socket, head));
  }

  /**
   * @param {Connection | Refusal} admitted
   * @param {IncomingMessage} req
   * @param {Duplex} socket
   * @param {Buffer} head
   * @returns {Promise<void> | undefined}
   */
  #admitted(admitted, req, socket, head) {
    if (!(admitted instanceof Connection)) {
      respond(socket, admitted);
      return undefined;
    }
    // The client may have gone while identity or the store answered.
    if (socket.destroyed || !socket.writable) {
      this.#lc.cancel(admitted);
      socket.destroy();
      return undefined;
    }
    return this.#handOver(admitted, req, socket, head);
  }

  /**
   * Gives an admitted request to ws, which makes the rest of its checks (subprotocols,
   * extensions, verifyClient) and upgrades it, or refuses it itself.
   * @param {Connection} conn
   * @param {IncomingMessage} req
   * @param {Duplex} socket
   * @param {Buffer} head
   * @returns {Promise<void> | undefined}  a promise only while ws holds the request
   */
  #handOver(conn, req, socket, head) {
    /** @type {(() => void) | null} set while ws holds the request */
    let settle = null;
    let over = false;
    const end = () => {
      if (over) return false;
      over = true;
      if (settle !== null) {
        socket.removeListener('close', onEarlyClose);
        conn.onAbandon = null;
        settle();
      }
      return true;
    };
    // ws refused the request (its own answer went out) or the peer left: nothing was
    // committed, so nothing but phase one's lease is given back.
    const onEarlyClose = () => {
      if (end()) this.#lc.cancel(conn);
    };
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      if (!end()) {
        // Given up on meanwhile (upgrade timeout, close()): already answered and cancelled.
        ws.terminate();
        return;
      }
      socket.removeListener('error', noop);
      this.#accept(conn, ws, req);
    });
    // ws upgraded synchronously (the usual case): nothing to wait for, no listener, no timer.
    if (over) return undefined;
    // ws refused it synchronously (its answer is being written; the socket's `close`
    // comes later, always asynchronously) or holds it for an asynchronous verifyClient.
    // Either way the request ends with `close` or the callback above; an asynchronous
    // verifyClient is bounded by upgradeTimeoutMs from admission (Node's HTTP timeouts no
    // longer apply to an upgrade): the lifecycle then cancels the admission and calls
    // onAbandon, as close() does.
    socket.once('close', onEarlyClose);
    conn.onAbandon = (reason) => {
      if (end()) respond(socket, this.#lc.refuse(503, { reason }, 1000));
    };
    return new Promise((resolve) => {
      settle = () => resolve(undefined);
    });
  }

  /**
   * @param {Connection} conn
   * @param {WebSocket} ws
   * @param {IncomingMessage} req
   */
  #accept(conn, ws, req) {
    const w = /** @type {any} */ (ws);
    w[LIFECYCLE] = this.#lc;
    w[CONN] = conn;
    // Registered first (ahead even of ws's own, which asks `wss.clients.size` when the
    // server is closing), so the lease is gone by the time the host's own `close`
    // listener runs; and an `error` listener always, or a protocol error would throw out
    // of ws's emitter and crash the process.
    // (Not `once`: ws emits `close` exactly once, and `once` wraps every listener.)
    ws.prependListener('close', onClose);
    ws.on('error', onError);
    const opened = this.#lc.open(conn, ws);
    if (opened === true) return this.#serve(conn, ws, req);
    if (opened === false) return undefined;
    // A planned eviction is being committed with an asynchronous store: hold the frames
    // that arrive meanwhile rather than emit them to no listener.
    ws.pause();
    return opened.then((ok) => {
      if (!ok) return;
      ws.resume();
      this.#serve(conn, ws, req);
    });
  }

  /**
   * @param {Connection} conn
   * @param {WebSocket} ws
   * @param {IncomingMessage} req
   */
  #serve(conn, ws, req) {
    ws.on('pong', onPong);
    if (this.#touchOnMessage) ws.on('message', onMessage);
    try {
      this.wss.emit('connection', ws, req);
    } catch (err) {
      this.#lc.error(conn, err);
      ws.terminate();
    }
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
        socket.on('error', noop);
        respond(socket, this.#lc.refuse(404, { reason: 'not-found' }));
        return;
      }
      void this.handleUpgrade(req, socket, head);
    };
    server.on('upgrade', onUpgrade);
    return () => void server.removeListener('upgrade', onUpgrade);
  }

  close() {
    // attach()'s listeners stay until the host detaches them: an upgrade that arrives after
    // close() is still answered 503 shutting-down, instead of falling through to the HTTP
    // server's request handler or hanging with no `upgrade` listener at all.
    return this.#lc.close(async () => {
      if (this.#ownsWss) await new Promise((resolve) => this.wss.close(() => resolve(undefined)));
    });
  }
}

/**
 * A complete HTTP/1.1 response on the raw upgrade socket, then close it.
 * @param {Duplex} socket
 * @param {Refusal} r
 */
function respond(socket, r) {
  if (socket.destroyed) return;
  const head = [
    `HTTP/1.1 ${r.status} ${STATUS_TEXT[r.status]}`,
    'Connection: close',
    `Content-Length: ${Buffer.byteLength(r.body)}`,
    ...Object.entries(r.headers).map(([name, value]) => `${name}: ${value}`),
  ];
  socket.once('finish', () => socket.destroy());
  socket.end(`${head.join('\r\n')}\r\n\r\n${r.body}`);
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

/** @param {LeaseGuardOptions} options */
function createLeaseGuard(options) {
  return new LeaseGuard(options);
}

/**
 * @param {EventLoggerOptions} [options]
 */
function createEventLogger(options = {}) {
  return eventLogger(options, invalid);
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
