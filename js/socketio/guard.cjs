'use strict';
// The Socket.IO host of socket-lease: a middleware for `io.use()`. Everything a connection
// goes through (admission, the lease, renewal, eviction, release, refusal answers, close
// codes, logs, metrics) is the lifecycle's (js/lifecycle/lifecycle.mjs); this file only
// translates between it and Socket.IO's public API: the middleware's `next(err)`, the
// namespace's `connection` event, the socket's `disconnect`, and engine.io's `heartbeat`,
// `data`, `packetCreate` and `flush` events.
//
// What differs from a raw WebSocket host, and why:
// - A refusal cannot be an HTTP answer: the engine.io connection exists before any
//   middleware runs. It is Socket.IO's `connect_error`, whose `data` carries the same
//   status, reason, limit, active and retry time as the HTTP refusal of the other hosts.
// - Socket.IO has no close codes. The socket is told why in a `socket-lease:closed` event
//   ({ code, reason }, the codes of every host) and then disconnected.
// - engine.io pings itself (pingInterval / pingTimeout) and closes a peer that misses a
//   pong; the lifecycle does not ping (a driver without `ping`) and each pong renews the
//   lease.
//
// CommonJS on purpose, like js/node/guard.cjs: index.mjs re-exports it, so `import` and
// `require` share one instance.

const { LeaseRegistry } = require('../node.cjs');
const { Connection, ConnectionLifecycle, LIFECYCLE_OPTIONS, LeaseHost, invalidOption, isThenable, loggedRegistry } = require('../lifecycle/lifecycle.cjs');
const { CloseCodes, CLOSE_REASONS } = require('../lifecycle/protocol.cjs');
const { makeLog } = require('../lifecycle/log.cjs');

/** @typedef {import('./index.js').LeaseGuardOptions} LeaseGuardOptions */
/** @typedef {import('./index.js').LeaseRefusalData} LeaseRefusalData */
/** @typedef {import('../lifecycle/protocol.mjs').Refusal} Refusal */
/** @typedef {import('socket.io').Socket} Socket */

const WHERE = 'socket-lease/socket.io';
const invalid = (/** @type {string} */ message) => invalidOption(WHERE, message);
const GUARD_OPTIONS = [...LIFECYCLE_OPTIONS, 'registry'];

/** The event an evicted (or otherwise closed) socket receives before its disconnect. */
const CLOSED_EVENT = 'socket-lease:closed';

/** The Connection of a socket this guard admitted, under a symbol on the Socket.IO socket. */
const CONN = Symbol('socket-lease connection');

/**
 * What the guard keeps per engine.io connection it has sockets on (one per namespace
 * joined over it): the write-side accounting is the connection's, shared by its sockets.
 * Under the guard's own symbol on the engine socket, and on its current transport.
 * @typedef {object} EngineState
 * @property {Connection[]} conns  the leases of the guard's sockets over this connection
 * @property {number} unflushed    bytes of packets created and not yet handed to the transport
 * @property {number} inFlight     bytes handed to the transport and not yet written out
 * @property {any} transport       the transport whose `drain` is listened to
 */

/** @param {any} packet an engine.io packet: its data is a string (text) or binary */
function packetBytes(packet) {
  const data = packet.data;
  if (data === undefined || data === null) return 1;
  return typeof data === 'string' ? Buffer.byteLength(data) : (data.byteLength ?? 0);
}

class LeaseGuard extends LeaseHost {
  /** @type {import('./index.js').LeaseStore} */ store;
  /** @type {import('./index.js').LeaseGuard['middleware']} */ middleware;
  #lc;
  #touchOnMessage;
  /** This guard's key on engine sockets and transports (two guards on one server keep apart). */
  #key = Symbol('socket-lease engine state');
  /**
   * engine.io listeners, made once per guard rather than once per socket: each finds its
   * state under #key on `this` (the engine socket; the transport for `drain`).
   * @type {Record<'heartbeat' | 'data' | 'packetCreate' | 'flush' | 'upgrade' | 'drain', (this: any, arg?: any) => void>}
   */
  #on;
  /** The socket's `disconnect` listener (`this` is the socket). @type {(this: any) => void} */
  #onDisconnect;
  /** Namespaces whose `connection` event this guard listens to. @type {WeakSet<object>} */
  #namespaces = new WeakSet();
  #warnedTtl = false;
  /** @type {import('../lifecycle/log.mjs').LogFn} */ #log;

  /** @param {LeaseGuardOptions} options */
  constructor(options) {
    super();
    if (options === null || typeof options !== 'object') throw invalid('options must be an object with userId(socket)');
    for (const name of Object.keys(options)) {
      if (name === 'maxPayload')
        throw invalid("maxPayload is the Socket.IO server's own maxHttpBufferSize option: set it there (new Server(http, { maxHttpBufferSize: 65536 }))");
      if (!GUARD_OPTIONS.includes(name)) throw invalid(`unknown option "${name}"; known: ${GUARD_OPTIONS.join(', ')}`);
    }
    if (typeof options.userId !== 'function') throw invalid('userId(socket) is required; the guard never invents identity');
    if (options.store && options.registry) throw invalid('give either store or registry, not both');
    if (options.registry !== undefined && (options.registry === null || typeof options.registry !== 'object')) {
      throw invalid('registry must be an object of LeaseRegistry options');
    }
    /** @type {any} */
    const store = options.store ?? loggedRegistry(LeaseRegistry, options, invalid);
    const { registry: _registry, ...lifecycleOptions } = options;
    const key = this.#key;
    /** How the lifecycle reaches a Socket.IO socket. @type {import('../lifecycle/lifecycle.mjs').SocketDriver} */
    const driver = {
      close(socket, code, reason) {
        // Socket.IO has no close codes: say why first, in order on the same connection, then
        // disconnect. The client sees `socket-lease:closed`, then a disconnect with the reason
        // "io server disconnect" (socket.io-client does not reconnect from it by itself).
        socket.emit(CLOSED_EVENT, { code, reason });
        // This socket's namespace only: an engine.io connection may carry the user's other
        // sockets (other namespaces), one of them the very socket whose admission evicted
        // this one. A peer that does not read (4010) and the host's shutdown (1001) end the
        // whole connection: its buffers are the connection's, and nothing is left to serve.
        socket.disconnect(code === CloseCodes.BACKPRESSURE || code === CloseCodes.GOING_AWAY);
      },
      terminate(socket) {
        const engine = socket.conn;
        const req = engine.request;
        // A WebSocket opened directly (not upgraded from polling): its handshake request's TCP
        // connection is the WebSocket's own, so dropping it is safe and frees its buffers now.
        // A polling request's connection may be a keep-alive one serving other requests.
        if (engine.transport?.name === 'websocket' && String(req?.headers?.upgrade).toLowerCase() === 'websocket') req.socket?.destroy();
        engine.close(true);
      },
      bufferedAmount(socket) {
        const state = /** @type {EngineState | undefined} */ (socket.conn[key]);
        return state ? state.unflushed + state.inFlight : 0;
      },
      // A disconnect is synchronous in Socket.IO, but after disconnect(true) engine.io waits
      // for its unsent packets before it closes the connection: closing (2) until it has, so
      // a peer that never reads them is terminated after closeGraceMs.
      readyState: (socket) => (socket.connected ? 1 : socket.conn.readyState === 'closing' ? 2 : 3),
      // An admitted socket still in a later middleware whose client left: its engine
      // connection is no longer open, and it will never connect.
      abandoned: (conn) => conn.host !== null && conn.host.conn.readyState !== 'open',
    };
    const lc = new ConnectionLifecycle({ ...lifecycleOptions, store }, driver, WHERE);
    this.#lc = lc;
    this.lifecycle = lc;
    const self = this;
    this.#on = {
      // engine.io's own liveness: `heartbeat` on every pong (protocol v4; a client ping in v3).
      heartbeat() {
        for (const conn of this[key].conns) lc.pong(conn);
      },
      data() {
        for (const conn of this[key].conns) lc.message(conn);
      },
      packetCreate(packet) {
        this[key].unflushed += packetBytes(packet);
      },
      flush() {
        const state = this[key];
        state.inFlight += state.unflushed;
        state.unflushed = 0;
      },
      upgrade(transport) {
        self.#useTransport(this[key], transport);
      },
      // The transport wrote out everything it was handed (engine.io hands it the next batch
      // only after this).
      drain() {
        this[key].inFlight = 0;
      },
    };
    this.#onDisconnect = function () {
      self.#disconnected(this);
    };
    this.#log = makeLog(options.logger, options.logLevel, invalid);
    this.store = store;
    this.#touchOnMessage = options.messageTouchMs !== false;
    this.middleware = (socket, next) => this.#admit(socket, next);
    // Admitted sockets a later middleware refused, or whose client left before the
    // connect: the lifecycle gives back what phase one took within a second (the driver's
    // `abandoned`), or after upgradeTimeoutMs while the engine connection stays open
    // (Socket.IO tells a middleware nothing of a later one's refusal).
  }

  /**
   * @param {Socket} socket
   * @param {(err?: Error) => void} next
   */
  #admit(socket, next) {
    this.#watch(socket);
    const admitted = this.#lc.admitNow(socket, socket.handshake.headers.origin);
    if (!isThenable(admitted)) return this.#admitted(admitted, socket, next);
    admitted.then((a) => this.#admitted(a, socket, next));
  }

  /**
   * @param {Connection | Refusal} admitted
   * @param {Socket} socket
   * @param {(err?: Error) => void} next
   */
  #admitted(admitted, socket, next) {
    if (!(admitted instanceof Connection)) return next(this.#refusalError(admitted));
    if (socket.conn.readyState !== 'open') {
      // The client left while identity or the store answered: Socket.IO drops the socket.
      this.#lc.cancel(admitted);
      return next();
    }
    /** @type {any} */ (socket)[CONN] = admitted;
    admitted.host = socket;
    next();
  }

  /**
   * The refusal as Socket.IO's `connect_error`: `message` is the reason, `data` the same
   * answer as the HTTP refusal of the other hosts.
   * @param {Refusal} r
   */
  #refusalError(r) {
    const body = JSON.parse(r.body);
    // The store's answer in milliseconds (Retry-After has whole seconds only); null where
    // the refusal says nothing about retrying (401, 403, ...).
    const retryAfterMs = r.retryAfterMs;
    /** @type {LeaseRefusalData} */
    const data = { status: r.status, reason: r.reason, limit: body.limit ?? null, active: body.active ?? null, retryAfterMs };
    return Object.assign(new Error(r.reason), { data });
  }

  /**
   * Listens (once per namespace, before the host's own listeners) for the sockets that
   * passed every middleware: phase two of their admission.
   * @param {Socket} socket
   */
  #watch(socket) {
    const nsp = /** @type {any} */ (socket.nsp);
    if (this.#namespaces.has(nsp)) return;
    this.#namespaces.add(nsp);
    nsp.prependListener('connection', (/** @type {Socket} */ s) => this.#connected(s));
    if (!this.#warnedTtl) {
      this.#warnedTtl = true;
      const { pingInterval, pingTimeout } = nsp.server.engine?.opts ?? {};
      const ttlMs = /** @type {any} */ (this.store).getOptions?.()?.ttlMs;
      // A pong renews the lease every pingInterval; engine.io waits pingTimeout for it.
      if (typeof ttlMs === 'number' && typeof pingInterval === 'number' && ttlMs <= pingInterval + pingTimeout) {
        this.#log('warn', 'ttlMs is not above pingInterval + pingTimeout: live but quiet sockets may lose their leases', { ttlMs, pingInterval, pingTimeout });
      }
    }
  }

  /** @param {Socket} socket */
  #connected(socket) {
    const conn = /** @type {Connection | undefined} */ (/** @type {any} */ (socket)[CONN]);
    if (!conn) {
      // connectionStateRecovery restored the socket without running the middlewares
      // (`skipMiddlewares`, on by default): admitted here, or it would be served without a
      // lease. Any other socket without one is not ours (its namespace has no guard).
      if (/** @type {any} */ (socket).recovered === true) this.#admitRecovered(socket);
      return;
    }
    // One given up on meanwhile (upgradeTimeoutMs) is ours: open() disconnects it.
    if (conn.socket !== null) return;
    this.#serve(socket, conn);
  }

  /**
   * A recovered socket, already connected: admitted now, as the middleware would have. It
   * can no longer get a connect_error: a refusal is a `socket-lease:closed` (code 4029 for a
   * quota refusal, 1008 for any other; `refusal` holds what a connect_error's data would)
   * and a disconnect. With an asynchronous store its events wait for the decision.
   * @param {Socket} socket
   */
  #admitRecovered(socket) {
    const admitted = this.#lc.admitNow(socket, socket.handshake.headers.origin);
    if (!isThenable(admitted)) return this.#recovered(socket, admitted);
    const decided = admitted.then((a) => this.#recovered(socket, a));
    socket.use((_packet, next) => void decided.then((ok) => ok && next()));
    return decided;
  }

  /**
   * @param {Socket} socket
   * @param {Connection | Refusal} admitted
   * @returns {boolean} whether the socket is served
   */
  #recovered(socket, admitted) {
    if (!(admitted instanceof Connection)) {
      const quota = admitted.status === 429;
      const code = quota ? CloseCodes.LIMIT_REACHED : 1008;
      socket.emit(CLOSED_EVENT, {
        code,
        reason: quota ? CLOSE_REASONS[CloseCodes.LIMIT_REACHED] : admitted.reason,
        refusal: this.#refusalError(admitted).data,
      });
      socket.disconnect();
      return false;
    }
    if (!socket.connected) {
      this.#lc.cancel(admitted);
      return false;
    }
    /** @type {any} */ (socket)[CONN] = admitted;
    this.#serve(socket, admitted);
    return admitted.socket === socket && !admitted.finished;
  }

  /**
   * An admitted socket connected: its listeners, then phase two.
   * @param {Socket} socket
   * @param {Connection} conn
   */
  #serve(socket, conn) {
    conn.host = null;
    socket.on('disconnect', this.#onDisconnect);
    const engine = /** @type {any} */ (socket.conn);
    /** @type {EngineState | undefined} */
    let state = engine[this.#key];
    if (state === undefined) {
      // The first of this guard's sockets over this engine.io connection.
      state = { conns: [], unflushed: 0, inFlight: 0, transport: null };
      engine[this.#key] = state;
      const on = this.#on;
      engine.on('heartbeat', on.heartbeat);
      if (this.#touchOnMessage) engine.on('data', on.data);
      engine.on('packetCreate', on.packetCreate);
      engine.on('flush', on.flush);
      engine.on('upgrade', on.upgrade);
      this.#useTransport(state, engine.transport);
    }
    state.conns.push(conn);
    // Refused in phase two (4029, or 1001 while closing): disconnected before the host's
    // own `connection` listeners run; the `disconnect` above then releases nothing twice.
    const opened = this.#lc.open(conn, socket);
    if (opened !== true && opened !== false) {
      // A planned eviction going to an asynchronous store (Redis): Socket.IO emits
      // `connection` to the host's listeners now, so hold the socket's incoming events
      // until the lease is committed (leaseIdOf() and writable() answer from then on).
      socket.use((_packet, next) => void opened.then((ok) => ok && next()));
    }
  }

  /**
   * Follows the engine.io connection to its current transport (a polling one upgraded to
   * WebSocket): its `drain` says when what it was handed is written out.
   * @param {EngineState} state
   * @param {any} transport
   */
  #useTransport(state, transport) {
    const old = state.transport;
    if (old) {
      old.removeListener('drain', this.#on.drain);
      old[this.#key] = undefined;
    }
    state.transport = transport;
    transport[this.#key] = state;
    transport.on('drain', this.#on.drain);
  }

  /**
   * The socket disconnected, for whatever reason: its lease is released once; the engine
   * listeners go with the last of this guard's sockets over the connection.
   * @param {any} socket
   */
  #disconnected(socket) {
    const conn = /** @type {Connection} */ (socket[CONN]);
    const engine = socket.conn;
    const state = /** @type {EngineState | undefined} */ (engine[this.#key]);
    if (state) {
      const at = state.conns.indexOf(conn);
      if (at !== -1) state.conns.splice(at, 1);
      if (state.conns.length === 0) {
        const on = this.#on;
        engine.removeListener('heartbeat', on.heartbeat);
        engine.removeListener('data', on.data);
        engine.removeListener('packetCreate', on.packetCreate);
        engine.removeListener('flush', on.flush);
        engine.removeListener('upgrade', on.upgrade);
        state.transport?.removeListener('drain', on.drain);
        if (state.transport) state.transport[this.#key] = undefined;
        engine[this.#key] = undefined;
      }
    }
    this.#lc.closed(conn);
  }

  close() {
    // Admitted sockets still in a later middleware are cancelled by the lifecycle; if one
    // connects after all, open() disconnects it with 1001.
    return this.#lc.close();
  }
}

/** @param {LeaseGuardOptions} options */
function createLeaseGuard(options) {
  return new LeaseGuard(options);
}

// Compile-time checks that the implementation matches the published declarations.
/** @type {typeof import('./index.js').LeaseGuard} */
const checkedClass = LeaseGuard;
/** @type {typeof import('./index.js').createLeaseGuard} */
const checkedFactory = createLeaseGuard;
/** @type {typeof import('./index.js').CloseCodes} */
const checkedCodes = CloseCodes;
/** @type {typeof import('./index.js').CLOSED_EVENT} */
const checkedEvent = CLOSED_EVENT;
/** @type {typeof import('./index.js').CLOSE_REASONS} */
const checkedReasons = CLOSE_REASONS;

module.exports = {
  LeaseGuard: checkedClass,
  createLeaseGuard: checkedFactory,
  CloseCodes: checkedCodes,
  CLOSED_EVENT: checkedEvent,
  CLOSE_REASONS: checkedReasons,
};
