// The Bun host of socket-lease: `Bun.serve({ fetch, websocket })`. Everything a connection
// goes through (admission, the lease, renewal, eviction, release, refusal answers, close
// codes, logs, metrics) is the lifecycle's (js/lifecycle/lifecycle.mjs); this file only
// translates between it and Bun: `upgrade()` runs inside your `fetch` and answers a
// refusal as a Response before `server.upgrade`, and `websocket()` wraps your handlers.
//
// The CommonJS builds of the core and the lifecycle on purpose: Bun resolves
// `import 'socket-lease'` through the `node` condition to js/node.mjs, which re-exports
// node.cjs, so this adapter's LeaseError is the very class an application imports.

import core from '../node.cjs';
import lifecycle from '../lifecycle/lifecycle.cjs';
import protocol from '../lifecycle/protocol.cjs';
import log from '../lifecycle/log.cjs';

const { LeaseRegistry } = core;
const { Connection, ConnectionLifecycle, LIFECYCLE_OPTIONS, LeaseHost, checkMs, invalidOption, isThenable, loggedRegistry } = lifecycle;
const { CloseCodes, DEFAULT_MAX_BUFFERED, DEFAULT_MAX_PAYLOAD, STATUS_TEXT } = protocol;
const { makeLog } = log;

/** @typedef {import('./index.js').BunLeaseOptions} BunLeaseOptions */
/** @typedef {import('./index.js').BunServerWebSocket<any>} Socket */
/** @typedef {import('../lifecycle/protocol.mjs').Refusal} Refusal */
/** @typedef {import('../lifecycle/lifecycle.mjs').Connection} Conn */

const WHERE = 'socket-lease/bun';
const invalid = (/** @type {string} */ message) => invalidOption(WHERE, message);
const OPTIONS = [...LIFECYCLE_OPTIONS, 'registry', 'maxPayload'];
const HANDLERS = ['open', 'message', 'close', 'drain', 'ping', 'pong', 'perMessageDeflate', 'publishToSelf'];
// Bun's own knobs that the adapter sets from its options: given twice they would disagree.
const OWNED = {
  maxPayloadLength: 'use the maxPayload option',
  backpressureLimit: 'it is derived from maxBufferedBytes',
  closeOnBackpressureLimit: 'it is derived from maxBufferedBytes',
  idleTimeout: 'the adapter pings every heartbeatMs instead (docs/bun.md)',
  sendPings: 'the adapter pings every heartbeatMs instead (docs/bun.md)',
};

// Where a socket is, in its `ws.data` (symbol keys: never clash with the host's data).
const STATE = Symbol('socket-lease state');
const PENDING_CLOSE = Symbol('socket-lease pending close');
const QUEUED = Symbol('socket-lease messages before open');
const ADMITTED = 0; // server.upgrade accepted it; Bun has not called open yet
const OPENING = 1; // open() waits for an asynchronous store to commit an eviction
const SERVED = 2; // the host's open ran: its handlers get the socket's events
const ENDED = 3;
const OPEN = 1;
const CLOSING = 2;

// Bun's close() reports the socket closed at once (readyState 3, the `close` handler runs
// inside the call) but keeps the TCP connection until the close frame has been written,
// and terminate() is a no-op from then on. Measured: a peer that does not read kept its
// connection for 15 s and more while it went on sending, with 1 MiB queued. So a close
// with data still queued waits for the queue to drain (Bun's `drain` event) and reports
// CLOSING meanwhile; the lifecycle terminates a socket that stays CLOSING (writable():
// after closeGraceMs; the heartbeat: after two ticks; close(): after closeGraceMs).
/** @type {import('../lifecycle/lifecycle.mjs').SocketDriver} */
const DRIVER = {
  close(ws, code, reason) {
    if (ws.getBufferedAmount() > 0) ws.data[PENDING_CLOSE] ??= [code, reason];
    else ws.close(code, reason);
  },
  terminate: (ws) => ws.terminate(),
  ping: (ws) => ws.ping(),
  bufferedAmount: (ws) => ws.getBufferedAmount(),
  readyState: (ws) => (ws.data[PENDING_CLOSE] !== undefined && ws.readyState === OPEN ? CLOSING : ws.readyState),
};

// The checks Bun's server.upgrade makes (it answers false otherwise), made before any
// quota work so that garbage costs no lease and no store call.
const WS_KEY = /^[+/0-9A-Za-z]{22}==$/;
/** @param {Request} req @returns {string | null} */
function handshakeProblem(req) {
  if (req.method !== 'GET') return 'method must be GET';
  if (req.headers.get('upgrade')?.toLowerCase() !== 'websocket') return 'Upgrade header must be websocket';
  if (!WS_KEY.test(req.headers.get('sec-websocket-key') ?? '')) return 'missing or invalid Sec-WebSocket-Key';
  if (req.headers.get('sec-websocket-version') !== '13') return 'Sec-WebSocket-Version must be 13';
  return null;
}

/** A refusal as the Response `fetch` returns. @param {Refusal} r */
function respond(r) {
  return new Response(r.body, { status: r.status, statusText: STATUS_TEXT[r.status], headers: r.headers });
}

/** @template {object} [T={}] */
class BunLease extends LeaseHost {
  /** @type {import('./index.js').LeaseStore} */ store;
  #lc;
  #log;
  #maxPayload;
  #backpressureLimit;

  /** @param {BunLeaseOptions} options */
  constructor(options) {
    super();
    if (options === null || typeof options !== 'object') throw invalid('options must be an object with userId(req)');
    // A misspelt option (heartbeatMS) would otherwise be ignored without a word.
    for (const name of Object.keys(options)) {
      if (!OPTIONS.includes(name)) throw invalid(`unknown option "${name}"; known: ${OPTIONS.join(', ')}`);
    }
    if (typeof options.userId !== 'function') throw invalid('userId(req) is required; the adapter never invents identity');
    if (options.store && options.registry) throw invalid('give either store or registry, not both');
    if (options.registry !== undefined && (options.registry === null || typeof options.registry !== 'object')) {
      throw invalid('registry must be an object of LeaseRegistry options');
    }
    this.#maxPayload = checkMs(options.maxPayload ?? DEFAULT_MAX_PAYLOAD, 'maxPayload', 1, invalid);
    /** @type {any} */
    const store = options.store ?? loggedRegistry(LeaseRegistry, options, invalid);
    const { registry: _registry, maxPayload: _maxPayload, ...lifecycleOptions } = options;
    this.#lc = new ConnectionLifecycle({ ...lifecycleOptions, store }, DRIVER, WHERE);
    this.lifecycle = this.#lc;
    this.#log = makeLog(options.logger, options.logLevel, invalid);
    this.store = store;
    // writable(ws) is the graceful bound (4010 at maxBufferedBytes). Bun's limit is the
    // backstop for sends that never asked: past twice the bound Bun drops the connection,
    // rather than keep it open while send() silently drops messages (its default).
    const maxBuffered = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED;
    this.#backpressureLimit = Math.min(2 * maxBuffered, 2 ** 32 - 1);
  }

  /**
   * @param {Request} req
   * @param {import('./index.js').BunUpgradeServer} server
   * @param {import('./index.js').BunUpgradeOptions<T>} [options]
   * @returns {Response | undefined | Promise<Response | undefined>}
   */
  upgrade(req, server, options) {
    const data = options?.data;
    if (data !== undefined && (data === null || typeof data !== 'object' || 'lease' in data)) {
      throw invalid('upgrade(req, server, { data }): data must be an object without a "lease" key (ws.data.lease is the lease)');
    }
    const problem = handshakeProblem(req);
    if (problem) return respond(this.#lc.refuse(400, { reason: 'bad-handshake', message: problem }));
    // Answered at once when identity, verify, the Origin check and the store are
    // synchronous (the usual case): no promise, no timer.
    const admitted = this.#lc.admitNow(req, req.headers.get('origin'));
    if (isThenable(admitted)) return admitted.then((a) => this.#admitted(a, req, server, options));
    return this.#admitted(admitted, req, server, options);
  }

  /**
   * @param {Conn | Refusal} admitted
   * @param {Request} req
   * @param {import('./index.js').BunUpgradeServer} server
   * @param {import('./index.js').BunUpgradeOptions<T> | undefined} options
   */
  #admitted(admitted, req, server, options) {
    if (!(admitted instanceof Connection)) return respond(/** @type {Refusal} */ (admitted));
    // One shape for every socket's data (the symbol fields set up front).
    const data = { ...options?.data, lease: admitted, [STATE]: ADMITTED, [PENDING_CLOSE]: undefined, [QUEUED]: undefined };
    let upgraded;
    try {
      const headers = options?.headers;
      upgraded = server.upgrade(req, headers === undefined ? { data } : { data, headers });
    } catch (err) {
      // A Bun.serve without a websocket handler, upgrade() called twice: a host bug.
      this.#lc.cancel(admitted);
      throw err;
    }
    if (upgraded) return undefined;
    // Bun refused what handshakeProblem let through (or the client left meanwhile).
    this.#lc.cancel(admitted);
    return respond(this.#lc.refuse(400, { reason: 'bad-handshake', message: 'Bun refused the WebSocket handshake' }));
  }

  /**
   * @param {import('./index.js').BunLeaseHandlers<T>} [handlers]
   * @returns {import('./index.js').BunWebSocketHandler<import('./index.js').LeaseData<T>>}
   */
  websocket(handlers = {}) {
    if (handlers === null || typeof handlers !== 'object') throw invalid('websocket(handlers): handlers must be an object');
    for (const name of Object.keys(handlers)) {
      if (Object.hasOwn(OWNED, name)) throw invalid(`websocket(handlers): ${name} is set by the adapter: ${OWNED[/** @type {keyof OWNED} */ (name)]}`);
      if (!HANDLERS.includes(name)) throw invalid(`websocket(handlers): unknown key "${name}"; known: ${HANDLERS.join(', ')}`);
    }
    const lc = this.#lc;
    const logLine = this.#log;
    const h = /** @type {any} */ (handlers);
    /** @param {Socket} ws */
    const serve = (ws) => {
      const data = ws.data;
      data[STATE] = SERVED;
      try {
        h.open?.(ws);
      } catch (err) {
        // The host could not set the socket up: it is not kept without its handler's state
        // (and its close handler is not called for an open that failed). Not rethrown: Bun
        // exits the process on a throw from a websocket handler (measured), and one
        // socket's failed set-up must not drop every other user's, as on the Node host.
        data[STATE] = ENDED;
        logLine('error', "the host's open handler threw; socket terminated", { userId: data.lease.userId, leaseId: data.lease.leaseId, error: String(err) });
        lc.error(data.lease, err);
        ws.terminate();
        return;
      }
      // What arrived while an eviction was being committed, in order.
      const queued = data[QUEUED];
      if (queued === undefined) return;
      data[QUEUED] = undefined;
      for (const message of queued) if (data[STATE] === SERVED) handler.message(ws, message);
    };
    /** @type {import('./index.js').BunWebSocketHandler<any>} */
    const handler = {
      maxPayloadLength: this.#maxPayload,
      backpressureLimit: this.#backpressureLimit,
      closeOnBackpressureLimit: true,
      idleTimeout: 0,
      sendPings: false,
      open(ws) {
        const opened = lc.open(ws.data.lease, ws);
        if (opened === true) return serve(ws);
        if (opened === false) return undefined;
        // A planned eviction is being committed with an asynchronous store. Bun cannot
        // pause a socket: its messages until then are queued (see message).
        ws.data[STATE] = OPENING;
        return opened.then((ok) => (ok && ws.data[STATE] === OPENING ? serve(ws) : undefined));
      },
      message(ws, message) {
        const data = ws.data;
        if (data[STATE] === OPENING) {
          (data[QUEUED] ??= []).push(message);
          return undefined;
        }
        // Not served, or a close is waiting for the buffer to drain: nothing for the host.
        if (data[STATE] !== SERVED || data[PENDING_CLOSE] !== undefined) return undefined;
        lc.message(data.lease);
        return h.message?.(ws, message);
      },
      close(ws, code, reason) {
        const data = ws.data;
        const served = data[STATE] === SERVED;
        data[STATE] = ENDED;
        // Registered first, so the lease is gone by the time the host's handler runs.
        if (data.lease.socket === null) lc.cancel(data.lease);
        // Bun closed it for a message over maxPayloadLength: the peer saw 1009, the handler
        // gets 1006 with this reason (measured on Bun 1.4.5; a peer cannot send 1006).
        else if (code === 1006 && reason === 'Received too big message') lc.tooBig(data.lease);
        else lc.closed(data.lease);
        return served ? h.close?.(ws, code, reason) : undefined;
      },
      drain(ws) {
        const pending = ws.data[PENDING_CLOSE];
        if (pending !== undefined && ws.getBufferedAmount() === 0) {
          ws.close(pending[0], pending[1]);
          return undefined;
        }
        return ws.data[STATE] === SERVED ? h.drain?.(ws) : undefined;
      },
      pong(ws, payload) {
        const data = ws.data;
        if (data[STATE] === SERVED) lc.pong(data.lease);
        return h.pong?.(ws, payload);
      },
    };
    if (h.ping !== undefined) handler.ping = h.ping;
    if (h.perMessageDeflate !== undefined) handler.perMessageDeflate = h.perMessageDeflate;
    if (h.publishToSelf !== undefined) handler.publishToSelf = h.publishToSelf;
    return handler;
  }

  close() {
    return this.#lc.close();
  }
}

/**
 * @template {object} [T={}]
 * @param {BunLeaseOptions} options
 * @returns {BunLease<T>}
 */
function createBunLease(options) {
  return new BunLease(options);
}

// Compile-time checks that the implementation matches the published declarations
// (index.d.ts): tsc fails here when the two drift apart.
/** @type {typeof import('./index.js').BunLease} */
const checkedClass = BunLease;
/** @type {typeof import('./index.js').createBunLease} */
const checkedFactory = createBunLease;
/** @type {typeof import('./index.js').CloseCodes} */
const checkedCodes = CloseCodes;

export { checkedClass as BunLease, checkedFactory as createBunLease, checkedCodes as CloseCodes };
