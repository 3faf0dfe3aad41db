// socket-lease/crossws: crossws hooks that hold one lease per WebSocket, for every crossws
// adapter (Node's ws, Bun, Deno, uWebSockets) and so for h3, Nitro, Nuxt and srvx, which
// serve WebSockets through crossws. Everything a connection goes through (admission, the
// lease, renewal, eviction, release, refusal answers, close codes, logs, metrics) is the
// lifecycle's (js/lifecycle/lifecycle.mjs); this file translates crossws's hooks into it,
// through crossws's public hook and peer API only:
//
//   upgrade(request)   admission (phase one); a refusal is returned as a Response (429
//                      with Retry-After, 403, 401, ...); the Connection travels to open()
//                      in the peer's context. The user's own upgrade runs after ours.
//   open(peer)         phase two: the runtime accepted the socket; commits the eviction.
//   message / pong     activity and liveness; close / error: release exactly once.
//
// Runtime-neutral on purpose (no `node:` import): the same hooks run on every crossws
// adapter. What differs between adapters (who can ping, who reports bufferedAmount) is
// read from the peer, never from the runtime's name.
// By the package's own name, not relative paths: on Node and Bun both resolve to the
// CommonJS instances, so option errors are socket-lease's own LeaseError class there.
import { LeaseRegistry } from 'socket-lease';
import {
  CLOSE_REASONS,
  CloseCodes,
  Connection,
  ConnectionLifecycle,
  DEFAULT_MAX_PAYLOAD,
  LIFECYCLE_OPTIONS,
  LeaseHost,
  STATUS_TEXT,
  checkMs,
  invalidOption,
  isThenable,
  isTooBig,
  loggedRegistry,
  makeLog,
} from 'socket-lease/lifecycle';

/** @typedef {import('./index.js').LeaseGuardOptions} LeaseGuardOptions */
/** @typedef {import('./index.js').LeaseHooksOptions} LeaseHooksOptions */
/** @typedef {import('crossws').Hooks} Hooks */
/** @typedef {import('crossws').Peer} Peer */
/** @typedef {import('socket-lease/lifecycle').Refusal} Refusal */

const WHERE = 'socket-lease/crossws';
const invalid = (/** @type {string} */ message) => invalidOption(WHERE, message);

const GUARD_OPTIONS = [...LIFECYCLE_OPTIONS, 'registry', 'maxPayload', 'heartbeat'];
const HEARTBEATS = ['auto', 'ping', 'runtime'];

// Where a connection's state lives: in the peer's context, the one per-connection object
// crossws hands from upgrade() to every later hook on every adapter, under a symbol
// (nothing of the user's context is shadowed, JSON.stringify(peer.context) leaves it out).
// One fixed-shape record, set once: the context object never changes shape afterwards.
const ENTRY = Symbol('socket-lease connection');

class Entry {
  /** The user's open() was called: their message/close/error hooks may run. */
  served = false;
  /** @type {Promise<boolean> | null} while an eviction is committed to an asynchronous store: whether the peer is served */
  opening = null;
  /** @param {Connection} conn */
  constructor(conn) {
    this.conn = conn;
  }
}

const OPEN = 1;
const WS_KEY = /^[+/0-9A-Za-z]{22}==$/;

/**
 * Why the runtime would refuse this handshake, checked on the Web request before any quota
 * work: an upgrade the runtime refuses after our hook never reaches open(), and would hold
 * its lease until the upgrade timeout gave it back.
 * @param {Request} request
 * @returns {string | null}
 */
function handshakeProblem(request) {
  if (request.method !== 'GET') return 'method must be GET';
  const headers = request.headers;
  const upgrade = headers.get('upgrade');
  if (upgrade === null || upgrade.toLowerCase() !== 'websocket') return 'Upgrade header must be websocket';
  const key = headers.get('sec-websocket-key');
  if (key === null || !WS_KEY.test(key)) return 'missing or invalid Sec-WebSocket-Key';
  const version = headers.get('sec-websocket-version');
  if (version !== '13' && version !== '8') return 'missing or invalid Sec-WebSocket-Version';
  return null;
}

/**
 * The path of an absolute request URL, without `new URL` (a microsecond per upgrade).
 * @param {string} url
 */
function pathOf(url) {
  const scheme = url.indexOf('://');
  const start = scheme === -1 ? 0 : url.indexOf('/', scheme + 3);
  if (start === -1) return '/';
  let end = url.length;
  for (let i = start; i < url.length; i++) {
    const c = url.charCodeAt(i);
    if (c === 63 /* ? */ || c === 35 /* # */) {
      end = i;
      break;
    }
  }
  return url.slice(start, end);
}

/** @param {Refusal} r */
function toResponse(r) {
  return new Response(r.body, { status: r.status, statusText: STATUS_TEXT[r.status], headers: r.headers });
}

/**
 * Whether this peer's adapter can send a protocol ping. crossws's base Peer class has a
 * `ping` that only warns ("not supported by this adapter"); adapters that can ping (Node's
 * ws, Bun, uWebSockets) override it in their Peer subclass. So: the class that defines
 * `ping` must itself extend another class. Cached per peer class.
 * @type {WeakMap<object, boolean>}
 */
const pingable = new WeakMap();
/** @param {any} peer */
function canPing(peer) {
  const proto = Object.getPrototypeOf(peer);
  let known = pingable.get(proto);
  if (known === undefined) {
    let owner = proto;
    while (owner !== null && !Object.hasOwn(owner, 'ping')) owner = Object.getPrototypeOf(owner);
    const parent = owner === null ? null : Object.getPrototypeOf(owner);
    known = parent !== null && parent !== Object.prototype;
    pingable.set(proto, known);
  }
  return known;
}

/**
 * Bytes of a message's raw data (a string counts its UTF-8 bytes, computed only when its
 * length alone cannot decide), compared with `max`.
 * @param {unknown} raw
 * @param {number} max
 */
function overMax(raw, max) {
  if (typeof raw === 'string') {
    // UTF-8 takes at least one and at most three bytes per UTF-16 unit.
    if (raw.length > max) return true;
    if (raw.length * 3 <= max) return false;
    return new TextEncoder().encode(raw).length > max;
  }
  const r = /** @type {any} */ (raw);
  const size = r?.byteLength ?? r?.size ?? r?.length ?? 0;
  return typeof size === 'number' && size > max;
}

class LeaseGuard extends LeaseHost {
  /** @type {import('./index.js').LeaseStore} */ store;
  /** @type {ConnectionLifecycle} */ #lc;
  #maxPayload;
  /** @type {'auto' | 'ping' | 'runtime'} */ #heartbeat;
  /** @type {any} */ #renewer = null;
  #log;
  #bypassLogged = false;

  /** @param {LeaseGuardOptions} options */
  constructor(options) {
    super();
    if (options === null || typeof options !== 'object') throw invalid('options must be an object with userId(request)');
    // A misspelt option (heartbeatMS) would otherwise be ignored without a word.
    for (const name of Object.keys(options)) {
      if (!GUARD_OPTIONS.includes(name)) throw invalid(`unknown option "${name}"; known: ${GUARD_OPTIONS.join(', ')}`);
    }
    if (typeof options.userId !== 'function') throw invalid('userId(request) is required; the guard never invents identity');
    if (options.store && options.registry) throw invalid('give either store or registry, not both');
    if (options.registry !== undefined && (options.registry === null || typeof options.registry !== 'object')) {
      throw invalid('registry must be an object of LeaseRegistry options');
    }
    const heartbeat = options.heartbeat ?? 'auto';
    if (!HEARTBEATS.includes(heartbeat)) throw invalid(`heartbeat must be ${HEARTBEATS.join(', ')}, got ${String(heartbeat)}`);
    this.#heartbeat = heartbeat;
    this.#maxPayload = checkMs(options.maxPayload ?? DEFAULT_MAX_PAYLOAD, 'maxPayload', 1, invalid);

    /** @type {any} */
    const store = options.store ?? loggedRegistry(LeaseRegistry, options, invalid);
    const { registry: _r, maxPayload: _m, heartbeat: _h, ...lifecycleOptions } = options;
    /** @type {import('socket-lease/lifecycle').SocketDriver} */
    const driver = {
      close: (peer, code, reason) => peer.close(code, reason),
      terminate: (peer) => peer.terminate(),
      ping: heartbeat === 'runtime' ? null : (peer) => this.#ping(peer),
      bufferedAmount: (peer) => peer.bufferedAmount ?? 0,
      // crossws's websocket proxy: readyState on every adapter (polyfilled where missing).
      readyState: (peer) => peer.websocket?.readyState ?? OPEN,
      // Node: a pong already read is emitted within two setImmediate hops (ws's
      // allowSynchronousEvents: false defers by one). Elsewhere the lifecycle's setTimeout(0).
      afterIO: typeof setImmediate === 'function' ? (fn) => void setImmediate(() => setImmediate(fn)) : undefined,
    };
    this.#lc = new ConnectionLifecycle({ ...lifecycleOptions, store }, driver, WHERE);
    this.lifecycle = this.#lc;
    this.store = store;
    this.#log = makeLog(options.logger, options.logLevel, invalid);
    // An admitted upgrade the runtime refuses after our hook without telling any hook (ws's
    // verifyClient) reaches no hook at all: the lifecycle gives its admission back after
    // upgradeTimeoutMs.
    if (heartbeat === 'runtime') {
      // The runtime pings and closes dead peers itself (crossws's idleTimeout): a socket
      // still open is alive, so its lease is renewed on every heartbeat.
      this.#renewer = setInterval(() => this.#renewAll(), options.heartbeatMs ?? 30_000);
      this.#renewer.unref?.();
    }
  }

  /**
   * The lifecycle's ping. A peer whose adapter cannot ping (Deno, Cloudflare) is kept
   * alive by its runtime's own idle timeout: it is answered at once, renewing its lease.
   * @param {any} peer
   */
  #ping(peer) {
    if (this.#heartbeat === 'ping' || canPing(peer)) {
      peer.ping();
      return;
    }
    const conn = this.#lc.connectionOf(peer);
    if (conn) this.#lc.pong(conn);
  }

  #renewAll() {
    for (const peer of [...this.#lc.sockets()]) {
      const conn = this.#lc.connectionOf(peer);
      if (conn && (peer.websocket?.readyState ?? OPEN) === OPEN) this.#lc.pong(conn);
    }
  }

  /**
   * crossws hooks holding a lease per connection, composed with the user's own: their
   * `upgrade` runs after our admission (and may still refuse: what admission took is given
   * back, nothing is evicted); their `open`, `message`, `close` and `error` run after ours,
   * and only for sockets that hold a lease. Other hooks (`drain`, `ping`) are theirs.
   * @param {Partial<Hooks>} [userHooks]
   * @param {LeaseHooksOptions} [options]
   * @returns {Partial<Hooks>}
   */
  hooks(userHooks = {}, options = {}) {
    if (userHooks === null || typeof userHooks !== 'object') throw invalid('hooks(userHooks): userHooks must be an object of crossws hooks');
    if (options === null || typeof options !== 'object') throw invalid('hooks(userHooks, options): options must be an object');
    for (const name of Object.keys(options)) if (name !== 'path') throw invalid(`hooks(): unknown option "${name}"; known: path`);
    const path = options.path;
    if (path !== undefined && (typeof path !== 'string' || !path.startsWith('/'))) throw invalid(`hooks(): path must start with "/", got ${String(path)}`);
    const lc = this.#lc;
    const maxPayload = this.#maxPayload;
    const { upgrade: userUpgrade, open: userOpen, message: userMessage, close: userClose, error: userError, pong: userPong } = userHooks;

    /**
     * Admitted: the user's upgrade decides next, then the runtime accepts or refuses.
     * @param {Connection | Refusal} admitted
     * @param {any} request
     */
    const afterAdmission = (admitted, request) => {
      if (!(admitted instanceof Connection)) return toResponse(admitted);
      if (!userUpgrade) return accepted(admitted, undefined);
      let result;
      try {
        result = userUpgrade(request);
      } catch (err) {
        // A thrown Response is crossws's other way to refuse; anything else fails the upgrade.
        lc.cancel(admitted);
        throw err;
      }
      if (!isThenable(result)) return accepted(admitted, result);
      return Promise.resolve(result).then(
        (r) => accepted(admitted, r),
        (err) => {
          lc.cancel(admitted);
          throw err;
        },
      );
    };

    /**
     * @param {Connection} conn
     * @param {any} result  what the user's upgrade returned
     */
    const accepted = (conn, result) => {
      // Refused by the user (a Response), or upgraded by someone else (`handled`): no
      // crossws peer will ever hold this lease.
      if (result instanceof Response || result?.handled === true) {
        lc.cancel(conn);
        return result;
      }
      if (lc.closing) {
        lc.cancel(conn);
        return toResponse(lc.refuse(503, { reason: 'shutting-down' }, 1000));
      }
      const context = { ...result?.context, [ENTRY]: new Entry(conn) };
      return result ? { ...result, context } : { context };
    };

    /**
     * @param {any} peer
     * @param {Entry} entry
     */
    const serve = (peer, entry) => {
      entry.served = true;
      const conn = entry.conn;
      if (!userOpen) return undefined;
      /** @param {unknown} err */
      const failed = (err) => {
        // As the Node host does when a `connection` listener throws: no lease for a
        // socket the application could not set up.
        lc.error(conn, err);
        peer.terminate();
      };
      let r;
      try {
        r = userOpen(peer);
      } catch (err) {
        failed(err);
        throw err;
      }
      if (!isThenable(r)) return r;
      return Promise.resolve(r).then(undefined, (err) => {
        failed(err);
        throw err;
      });
    };

    /**
     * @param {any} peer
     * @param {Connection} conn
     * @param {any} message
     */
    const onMessage = (peer, conn, message) => {
      // The runtime's frame limit is the real bound (nodeOptions() sets ws's maxPayload);
      // this one stops the processing where an adapter has none (Deno, Cloudflare).
      if (overMax(message.rawData, maxPayload)) {
        peer.close(CloseCodes.MESSAGE_TOO_BIG, CLOSE_REASONS[CloseCodes.MESSAGE_TOO_BIG]);
        lc.tooBig(conn);
        return undefined;
      }
      lc.message(conn);
      return userMessage?.(peer, message);
    };

    /**
     * The socket is gone: release once (after an eviction still being committed).
     * @param {Entry | undefined} entry
     * @param {(conn: Connection) => void} end
     */
    const ended = (entry, end) => {
      if (!(entry instanceof Entry)) return;
      const conn = entry.conn;
      if (conn.socket === null) {
        // Closed before it was ever opened (an adapter that reports close without open).
        lc.cancel(conn);
        return;
      }
      if (entry.opening) void entry.opening.then(() => end(conn));
      else end(conn);
    };

    /** @type {Partial<Hooks>} */
    const hooks = {
      ...userHooks,
      upgrade: (request) => {
        if (path !== undefined && pathOf(request.url) !== path) return toResponse(lc.refuse(404, { reason: 'not-found' }));
        const problem = handshakeProblem(request);
        if (problem) return toResponse(lc.refuse(400, { reason: 'bad-handshake', message: problem }));
        // Answered at once when identity, verify, the Origin check and the store are
        // synchronous (the usual case): no promise, no timer.
        const admitted = lc.admitNow(request, request.headers.get('origin'));
        if (isThenable(admitted)) return admitted.then((a) => afterAdmission(a, request));
        return afterAdmission(admitted, request);
      },

      open: (peer) => {
        const entry = /** @type {any} */ (peer.context)?.[ENTRY];
        if (!(entry instanceof Entry)) {
          // Our upgrade hook did not run for this socket (replaced, or a route without
          // it): serving it would be a socket without a lease.
          if (!this.#bypassLogged) {
            this.#bypassLogged = true;
            this.#log('error', 'a socket opened without passing the socket-lease upgrade hook; closing it', { where: WHERE });
          }
          peer.close(1011, 'no lease: the socket-lease upgrade hook did not run');
          return undefined;
        }
        const conn = entry.conn;
        const opened = lc.open(conn, peer);
        if (opened === true) return serve(peer, entry);
        if (opened === false) return undefined;
        // A planned eviction is being committed with an asynchronous store: messages that
        // arrive meanwhile wait for it rather than reach a socket without a lease.
        const opening = Promise.resolve(opened).then((ok) => {
          entry.opening = null;
          return ok;
        });
        entry.opening = opening;
        return opening.then((ok) => (ok ? serve(peer, entry) : undefined));
      },

      message: (peer, message) => {
        const conn = lc.connectionOf(peer);
        if (conn !== undefined) return onMessage(peer, conn, message);
        const opening = /** @type {any} */ (peer.context)?.[ENTRY]?.opening;
        if (opening) {
          return opening.then((/** @type {boolean} */ ok) => {
            const c = ok ? lc.connectionOf(peer) : undefined;
            return c ? onMessage(peer, c, message) : undefined;
          });
        }
        // No lease (released: evicted, expired, cut off for backpressure, or never
        // opened): the socket is being closed, and is not served meanwhile.
        return undefined;
      },

      pong: (peer, data) => {
        const conn = lc.connectionOf(peer);
        if (conn !== undefined) lc.pong(conn);
        return userPong?.(peer, data);
      },

      close: (peer, details) => {
        const entry = /** @type {any} */ (peer.context)?.[ENTRY];
        ended(entry, (conn) => lc.closed(conn));
        if (entry?.served) return userClose?.(peer, details);
        return undefined;
      },

      error: (peer, error) => {
        const entry = /** @type {any} */ (peer.context)?.[ENTRY];
        // A frame over the runtime's limit (ws: 1009 already sent), a protocol error: the
        // runtime closes the socket; the lease goes back now.
        ended(entry, (conn) => (isTooBig(error) ? lc.tooBig(conn) : lc.error(conn, error)));
        if (entry?.served) return userError?.(peer, error);
        return undefined;
      },
    };
    return hooks;
  }

  /**
   * Options for crossws's Node adapter (`crossws/adapters/node`, or `options.node` of
   * crossws/server): ws's `maxPayload` (a larger frame is closed with 1009 before it is
   * buffered) and `closeTimeout`, and crossws's own `idleTimeout` off while the lifecycle
   * pings (one heartbeat, not two). Values given in `options` win, except maxPayload.
   * @param {import('crossws/adapters/node').NodeOptions} [options]
   */
  nodeOptions(options = {}) {
    return {
      idleTimeout: this.#heartbeat === 'runtime' ? undefined : 0,
      ...options,
      serverOptions: {
        // ws keeps a socket we closed this long when the peer never answers the close
        // frame (ws's own default is 30 s).
        closeTimeout: Math.max(this.#lc.closeGraceMs, 1000),
        // crossws never reads ws's `clients`; the Set, churned per connection, kept every
        // connection's garbage alive through V8's young collections (js/lifecycle/tables.mjs).
        clientTracking: false,
        ...options.serverOptions,
        maxPayload: this.#maxPayload,
      },
    };
  }

  close() {
    if (this.#renewer) clearInterval(this.#renewer);
    // Upgrades still pending are cancelled by the lifecycle (its own pending set).
    return this.#lc.close();
  }
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
/** @type {typeof import('./index.js').CloseCodes} */
const checkedCodes = CloseCodes;

export { checkedClass as LeaseGuard, checkedFactory as createLeaseGuard, checkedCodes as CloseCodes };
