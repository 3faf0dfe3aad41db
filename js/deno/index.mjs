// The Deno host of socket-lease: `Deno.serve` with `Deno.upgradeWebSocket`. Everything a
// connection goes through (admission, the lease, renewal, eviction, release, refusal
// answers, close codes, logs, metrics) is the lifecycle's (js/lifecycle/lifecycle.mjs);
// this file only translates between it and Deno's web-standard WebSocket.
//
//   lease.upgrade(request, hooks)   admission first: a refusal is an HTTP Response
//                                   (429 + Retry-After, 401, 403, ...) and no WebSocket is
//                                   made; admitted, Deno.upgradeWebSocket checks the
//                                   handshake (a throw gives back what admission took)
//   socket `open`                   phase two: lifecycle.open commits a planned eviction
//   `message` / `close` / `error`   activity, release exactly once
//
// The heartbeat is Deno's own. Deno's WebSocket has no ping(): with `idleTimeout` set,
// the runtime pings a peer that sent nothing for idleTimeout/2 and closes it (1001, "No
// response from ping frame.") when nothing arrives for another idleTimeout/2; its pongs
// never reach JS. The adapter sets idleTimeout to 2 x heartbeatMs, so a socket still OPEN
// at a heartbeat tick has shown it is alive within the last two intervals: the driver's
// `ping` reports exactly that to the lifecycle as a pong, which renews the lease of a
// quiet live socket, and a dead one is closed by Deno (its lease released on `close`).
//
// Runtime-neutral ESM: no `node:` import. The core comes from core.mjs (no --allow-read).
import { LeaseRegistry } from './core.mjs';
import { Connection, ConnectionLifecycle, LIFECYCLE_OPTIONS, LeaseHost, checkMs, invalidOption, isThenable, loggedRegistry } from '../lifecycle/lifecycle.mjs';
import { CloseCodes, CLOSE_REASONS, DEFAULT_MAX_PAYLOAD } from '../lifecycle/protocol.mjs';

/** @typedef {import('./index.js').DenoLeaseOptions} DenoLeaseOptions */
/** @typedef {import('./index.js').UpgradeHooks} UpgradeHooks */
/** @typedef {import('../lifecycle/protocol.mjs').Refusal} Refusal */

const WHERE = 'socket-lease/deno';
const invalid = (/** @type {string} */ message) => invalidOption(WHERE, message);
const OPTIONS = [...LIFECYCLE_OPTIONS, 'registry', 'maxPayload'];
const HOOKS = ['protocol', 'onOpen', 'onMessage', 'onClose', 'onError'];

// The handshake checks Deno.upgradeWebSocket makes, made before any quota work so that
// garbage costs no lease. The rest (Connection header, a subprotocol the client did not
// offer) is Deno's, after admission: its throw gives back what admission took.
const WS_KEY = /^[+/0-9A-Za-z]{22}==$/;
/** @param {Request} req @returns {string | null} */
function handshakeProblem(req) {
  if (req.method !== 'GET') return 'method must be GET';
  if (req.headers.get('upgrade')?.toLowerCase() !== 'websocket') return 'Upgrade header must be websocket';
  if (!WS_KEY.test(req.headers.get('sec-websocket-key') ?? '')) return 'missing or invalid Sec-WebSocket-Key';
  if (req.headers.get('sec-websocket-version') !== '13') return 'missing or invalid Sec-WebSocket-Version';
  return null;
}

// Per-socket state lives on the socket under three symbols (one set of listeners per
// adapter, no closure per connection: listeners get the socket as `this`). Each property
// added to a socket costs a shape change and may grow its property store, so the
// adapter's own lifecycle and host are reached through the listeners' closure instead.
const CONN = Symbol('socket-lease connection');
const USER = Symbol('socket-lease hooks');
const STATE = Symbol('socket-lease state');
const QUEUE = Symbol('socket-lease frames held while opening');
// STATE: admitted, Deno finishing the handshake; open() committing an eviction with an
// asynchronous store (frames are held); served (the host's hooks run); ended without
// being served; closed.
const PENDING = 0;
const OPENING = 1;
const SERVED = 2;
const UNSERVED = 3;
const CLOSED = 4;
/**
 * Whether a message is over `max` bytes (UTF-8 for text).
 * @param {unknown} data
 * @param {number} max
 */
function overMax(data, max) {
  // A string's UTF-8 length is from 1 to 3 bytes per code unit: counted only in between.
  if (typeof data === 'string') return data.length > max || (data.length * 3 > max && utf8Length(data) > max);
  const d = /** @type {any} */ (data);
  return (d.byteLength ?? d.size) > max;
}

/** UTF-8 length of a string. @param {string} s */
function utf8Length(s) {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    // Each unit of a surrogate pair: 2 of the pair's 4 bytes; other non-ASCII: 2 or 3.
    if (c >= 0x80) n += c < 0x800 || (c >= 0xd800 && c <= 0xdfff) ? 1 : 2;
  }
  return n;
}

const NO_HOOKS = Object.freeze({});

/**
 * @param {Refusal} r
 * @returns {Response}
 */
function refusalResponse(r) {
  return new Response(r.body, { status: r.status, headers: r.headers });
}

class DenoLease extends LeaseHost {
  /** @type {import('./index.js').LeaseStore} */ store;
  #lc;
  #idleTimeout;
  /** The largest message accepted, in bytes (UTF-8 for text). @type {number} */
  #max;
  /**
   * The socket listeners, made once per adapter (`this` is the socket).
   * @type {{ open: (this: any) => void, message: (this: any, event: MessageEvent) => void, close: (this: any, event: CloseEvent) => void, error: (this: any, event: Event) => void }}
   */
  #on;
  /** @type {(req: Request, options: { protocol?: string, idleTimeout: number }) => { socket: WebSocket, response: Response }} */
  #upgradeWebSocket;
  /** Deno.upgradeWebSocket's options without a subprotocol: one object for every upgrade. */
  #upgradeOptions;
  /** Whether the Origin header is read: only with allowedOrigins (a header read costs). */
  #readOrigin;

  /** @param {DenoLeaseOptions} options */
  constructor(options) {
    super();
    if (options === null || typeof options !== 'object') throw invalid('options must be an object with userId(request)');
    // A misspelt option (heartbeatMS) would otherwise be ignored without a word.
    for (const name of Object.keys(options)) {
      if (!OPTIONS.includes(name)) throw invalid(`unknown option "${name}"; known: ${OPTIONS.join(', ')}`);
    }
    if (typeof options.userId !== 'function') throw invalid('userId(request) is required; the host never invents identity');
    if (options.store && options.registry) throw invalid('give either store or registry, not both');
    if (options.registry !== undefined && (options.registry === null || typeof options.registry !== 'object')) {
      throw invalid('registry must be an object of LeaseRegistry options');
    }
    const deno = /** @type {any} */ (globalThis).Deno;
    if (typeof deno?.upgradeWebSocket !== 'function') throw invalid('Deno.upgradeWebSocket is not available: socket-lease/deno runs under Deno');
    this.#upgradeWebSocket = deno.upgradeWebSocket;
    this.#max = checkMs(options.maxPayload ?? DEFAULT_MAX_PAYLOAD, 'maxPayload', 1, invalid);

    /** @type {any} */
    const store = options.store ?? loggedRegistry(LeaseRegistry, options, invalid);
    const { registry: _registry, maxPayload: _maxPayload, ...lifecycleOptions } = options;
    /** How the lifecycle reaches a Deno socket. @type {import('../lifecycle/lifecycle.mjs').SocketDriver} */
    const driver = {
      close: (ws, code, reason) => ws.close(code, reason),
      // Deno cannot drop an upgraded connection: there is no terminate(), close() of a
      // CLOSING socket does nothing, and a peer that never answers the close frame keeps it
      // CLOSING (measured: until the peer goes). What can be done is stop serving it: its
      // lease is released and the socket forgotten. (A close with unsent data queued does
      // drop the TCP connection, measured too: a peer that does not read (4010) is cut off.)
      terminate: (ws) => lc.closed(ws[CONN]),
      // Deno pinged it itself (idleTimeout) and would have closed it had nothing come back.
      ping: (ws) => {
        if (ws.readyState === 1) lc.pong(ws[CONN]);
      },
      bufferedAmount: (ws) => ws.bufferedAmount,
    };
    const lc = new ConnectionLifecycle({ ...lifecycleOptions, store }, driver, WHERE);
    this.#lc = lc;
    const host = this;
    this.#on = {
      open() {
        host.#opened(this);
      },
      message(event) {
        const state = this[STATE];
        if (state === SERVED) host.#deliver(this, event);
        else if (state === OPENING) this[QUEUE].push(event);
      },
      close(event) {
        const state = this[STATE];
        this[STATE] = CLOSED;
        // Closed before it was served (the peer left during the handshake): nothing was committed.
        if (state === PENDING) lc.cancel(this[CONN]);
        else lc.closed(this[CONN]);
        if (state === SERVED) this[USER].onClose?.(this, event);
      },
      error(event) {
        const state = this[STATE];
        if (state === PENDING) {
          // Deno reports a failed upgrade (the client left before the 101) with `error` only.
          this[STATE] = UNSERVED;
          lc.cancel(this[CONN]);
          return;
        }
        // Deno closes the socket itself (idle timeout, protocol error); the lease goes back now.
        lc.error(this[CONN], /** @type {any} */ (event).message ?? 'error');
        if (state === SERVED) this[USER].onError?.(this, event);
      },
    };
    this.lifecycle = this.#lc;
    this.store = store;
    // Deno pings after idleTimeout/2 of silence and closes after idleTimeout: one
    // heartbeat interval each, as the Node host's ping and missed-pong check.
    this.#idleTimeout = (2 * (options.heartbeatMs ?? 30_000)) / 1000;
    this.#upgradeOptions = Object.freeze({ idleTimeout: this.#idleTimeout });
    this.#readOrigin = options.allowedOrigins !== undefined;
    // Handshakes Deno never finishes (the handler did not return the upgrade's response,
    // or the client left before it) fire no event at all: the lifecycle gives their
    // admission back after upgradeTimeoutMs, and open() closes one that opens after all.
  }

  /**
   * @param {Request} req
   * @param {UpgradeHooks} [hooks]
   * @returns {Response | Promise<Response>}
   */
  upgrade(req, hooks = NO_HOOKS) {
    const problem = handshakeProblem(req);
    if (problem) return refusalResponse(this.#lc.refuse(400, { reason: 'bad-handshake', message: problem }));
    if (hooks !== NO_HOOKS) {
      for (const name of Object.keys(hooks)) if (!HOOKS.includes(name)) throw invalid(`unknown upgrade hook "${name}"; known: ${HOOKS.join(', ')}`);
    }
    // Answered at once when identity, verify, the Origin check and the store are
    // synchronous (the usual case); otherwise once they answer.
    const admitted = this.#lc.admitNow(req, this.#readOrigin ? req.headers.get('origin') : null);
    if (isThenable(admitted)) return admitted.then((a) => this.#admitted(a, req, hooks, true));
    return this.#admitted(admitted, req, hooks, false);
  }

  /**
   * @param {Connection | Refusal} admitted
   * @param {Request} req
   * @param {UpgradeHooks} hooks
   * @param {boolean} later  admission waited for a promise: the client may have left
   * @returns {Response}
   */
  #admitted(admitted, req, hooks, later) {
    if (!(admitted instanceof Connection)) return refusalResponse(admitted);
    if (later && req.signal.aborted) {
      // A socket made now would never open nor report anything.
      this.#lc.cancel(admitted);
      return new Response(null, { status: 499 });
    }
    let upgraded;
    try {
      upgraded = this.#upgradeWebSocket(
        req,
        hooks.protocol === undefined ? this.#upgradeOptions : { protocol: hooks.protocol, idleTimeout: this.#idleTimeout },
      );
    } catch (err) {
      // Deno refused the handshake (a subprotocol the client did not offer, a missing
      // Connection: upgrade): give back, evict nothing.
      this.#lc.cancel(admitted);
      return refusalResponse(this.#lc.refuse(400, { reason: 'bad-handshake', message: String(/** @type {any} */ (err)?.message ?? err) }));
    }
    const ws = /** @type {any} */ (upgraded.socket);
    ws[CONN] = admitted;
    ws[USER] = hooks;
    ws[STATE] = PENDING;
    // Registered before the host's own listeners (added in onOpen at the earliest), so the
    // lease is gone by the time the host's `close` listener runs.
    const on = this.#on;
    ws.addEventListener('open', on.open);
    ws.addEventListener('message', on.message);
    ws.addEventListener('close', on.close);
    ws.addEventListener('error', on.error);
    return upgraded.response;
  }

  /**
   * One message of a served socket: the size bound, activity, then the host's hook.
   * @param {any} ws
   * @param {MessageEvent} event
   */
  #deliver(ws, event) {
    const conn = ws[CONN];
    if (conn.finished) return; // released (evicted, expired, cut off): never served again
    if (overMax(event.data, this.#max)) {
      // Deno has no frame-size option and has already received the whole message; the
      // bound stops it here, before the host's code sees it.
      ws.close(CloseCodes.MESSAGE_TOO_BIG, CLOSE_REASONS[CloseCodes.MESSAGE_TOO_BIG]);
      this.#lc.tooBig(conn);
      return;
    }
    this.#lc.message(conn);
    ws[USER].onMessage?.(ws, event);
  }

  /** Deno opened the socket: phase two. @param {any} ws */
  #opened(ws) {
    if (ws[STATE] !== PENDING) return;
    const conn = ws[CONN];
    // Given up on meanwhile (upgradeTimeoutMs): conn is finished, and open() closes the
    // socket with the code that says why.
    const opened = this.#lc.open(conn, ws);
    if (opened === true) return this.#serve(ws);
    if (opened === false) {
      ws[STATE] = UNSERVED;
      return undefined;
    }
    // A planned eviction is being committed with an asynchronous store: hold the frames
    // that arrive meanwhile rather than serve a socket that may not get the slot.
    ws[STATE] = OPENING;
    ws[QUEUE] = [];
    return opened.then((ok) => {
      const held = ws[QUEUE];
      ws[QUEUE] = undefined;
      if (ws[STATE] !== OPENING) return; // closed meanwhile
      if (!ok) {
        ws[STATE] = UNSERVED;
        return;
      }
      this.#serve(ws);
      for (const event of held) if (ws[STATE] === SERVED) this.#deliver(ws, event);
    });
  }

  /** @param {any} ws */
  #serve(ws) {
    ws[STATE] = SERVED;
    try {
      ws[USER].onOpen?.(ws);
    } catch (err) {
      // As a throwing `connection` listener on Node: the socket is not served.
      this.#lc.error(ws[CONN], err);
      ws.close(1011, 'internal error');
    }
  }

  close() {
    // Handshakes Deno is still finishing: their response is out, so there is nothing to
    // answer; close() gives back their leases, and open() closes them with 1001.
    return this.#lc.close();
  }
}

/** @param {DenoLeaseOptions} options */
function createDenoLease(options) {
  return new DenoLease(options);
}

// Compile-time checks that the implementation matches the published declarations
// (index.d.ts): tsc fails here when the two drift apart.
/** @type {typeof import('./index.js').DenoLease} */
const checkedClass = DenoLease;
/** @type {typeof import('./index.js').createDenoLease} */
const checkedFactory = createDenoLease;
/** @type {typeof import('./index.js').CloseCodes} */
const checkedCodes = CloseCodes;

export { checkedClass as DenoLease, checkedFactory as createDenoLease, checkedCodes as CloseCodes };
export { LeaseRegistry, LeaseError, newId, parseId, deriveId, sameLease, idFromUuid } from './core.mjs';
