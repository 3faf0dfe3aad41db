// Test-only wrapper of examples/cloudflare/worker.js, loaded by the harness when a test
// asks for `testHooks`. It imports the example unchanged and adds, in a subclass that
// exists only here (no production path knows about any of it):
//
// - lost close events: a client that sends LOSE_CLOSE gets its socket marked, and the
//   runtime's webSocketClose / webSocketError for that socket are then swallowed, as on a
//   host that never delivers them. Only reconciliation can reclaim its lease.
// - production storage limits: with the var TEST_STORAGE_LIMITS = "kv", every storage
//   call is checked against the limits of a KV-backed Durable Object class (128 KiB per
//   value, 2 KiB per key, 128 keys per call), which local workerd does not enforce.
// - failed writes: with the var TEST_FAIL_PUT_USER = "<id>", every storage put that
//   writes that user's meta record fails, so a connect of that user cannot store its lease.
// - GET /__test/ws?userJson=<JSON string>[&binding=<name>][&maxPayload=<n>][&origins=<JSON>]:
//   the upgrade route with the id taken as JSON, so a test can send ids no URL decodes to
//   (a lone surrogate) or make userId() throw (JSON that does not parse), with another
//   binding name, to see a missing binding answered, and with the `maxPayload` and
//   `allowedOrigins` options (`origins`: a JSON array, or "fn:<origin>" for a function
//   allowing that one origin and requests without Origin, asynchronously).
// - alarms that do nothing: with the var TEST_NO_ALARM = "1", the object's alarm handler
//   returns at once, as an alarm that has not run yet (late) would leave things, so only a
//   request can reclaim an expired lease.
// - GET /__test/connect-as?user=<id>&header=<value>: a connect sent to <id>'s object with
//   the user header set to <value> as is, as a host routing by something other than
//   idFromName(userId) (or forging the header) would.
// - GET /__test/scans?user=<id>: how many times this instance of that user's object called
//   ctx.getWebSockets() without a tag, i.e. visited every socket.
// - GET /__test/storage?user=<id>: the keys of that user's object storage and the size of
//   each value, to check the layout, and the stored meta record.
// - GET /__test/legacy?user=<id>&leases=<n>: replaces that user's storage with the layout
//   of older versions of the adapter (one core snapshot holding n leases), then resets the
//   object (ctx.abort, answered 500), so the next request rebuilds it from that layout.
import worker, { SocketLeaseObject as ExampleObject } from '../../../examples/cloudflare/worker.js';
import { handleSocketLease } from '../../../js/cloudflare/index.mjs';
import { LeaseRegistry } from '../../../js/workerd.mjs';

// workerd accepts only handlers and classes as exports of the main module, so the tests
// spell these two messages out themselves.
/** Sent by a test client to have its socket's close event lost. */
const LOSE_CLOSE = '{"type":"test:lose-close"}';
/** The answer to LOSE_CLOSE once the mark is in the socket's attachment. */
const CLOSE_WILL_BE_LOST = '{"type":"test:close-will-be-lost"}';

const KV_MAX_VALUE_BYTES = 128 * 1024;
const KV_MAX_KEY_BYTES = 2048;
const KV_MAX_KEYS_PER_CALL = 128;

/**
 * Approximately what the runtime's V8 serialization of a value weighs: exact for bytes,
 * the JSON length for plain records (within a few bytes of the real encoding).
 * @param {unknown} value
 */
function valueSize(value) {
  if (value instanceof Uint8Array || value instanceof ArrayBuffer) return value.byteLength;
  if (typeof value === 'string') return new TextEncoder().encode(value).length;
  return new TextEncoder().encode(JSON.stringify(value) ?? '').length;
}

/** @param {string} key */
function checkKey(key) {
  const size = new TextEncoder().encode(key).length;
  if (size > KV_MAX_KEY_BYTES) throw new RangeError(`Keys cannot be larger than ${KV_MAX_KEY_BYTES} bytes. A key of size ${size} was provided.`);
}

/** @param {unknown[]} keys */
function checkCount(keys) {
  if (keys.length > KV_MAX_KEYS_PER_CALL) {
    throw new RangeError(`Maximum number of keys is ${KV_MAX_KEYS_PER_CALL}. You provided ${keys.length}.`);
  }
}

/** @param {unknown} value */
function checkValue(value) {
  const size = valueSize(value);
  // The runtime allows 32 bytes of serialization tags on top of the advertised limit.
  if (size > KV_MAX_VALUE_BYTES + 32) {
    throw new RangeError(`Values cannot be larger than ${KV_MAX_VALUE_BYTES} bytes. A value of size ${size} was provided.`);
  }
}

/**
 * `storage` with some of its methods wrapped: each wrapper gets the original method (bound
 * to the real storage) and the call's arguments; every other property passes through.
 * @param {DurableObjectStorage} storage
 * @param {Record<string, (original: (...args: any[]) => any, ...args: any[]) => any>} wrappers
 */
function interceptStorage(storage, wrappers) {
  return new Proxy(storage, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const original = value.bind(target);
      const wrap = typeof prop === 'string' && Object.hasOwn(wrappers, prop) ? wrappers[prop] : undefined;
      return wrap ? (/** @type {any[]} */ ...args) => wrap(original, ...args) : original;
    },
  });
}

/**
 * The storage of a KV-backed class in production: same calls, with its limits enforced.
 * @param {DurableObjectStorage} storage
 */
function withKvLimits(storage) {
  /** @param {(...args: any[]) => any} original @param {any} keys @param {any[]} rest */
  const countChecked = (original, keys, ...rest) => {
    if (Array.isArray(keys)) checkCount(keys);
    return original(keys, ...rest);
  };
  return interceptStorage(storage, {
    put(original, keyOrEntries, ...rest) {
      if (typeof keyOrEntries === 'string') {
        checkKey(keyOrEntries);
        checkValue(rest[0]);
      } else {
        const entries = Object.entries(keyOrEntries);
        checkCount(entries);
        for (const [k, v] of entries) {
          checkKey(k);
          checkValue(v);
        }
      }
      return original(keyOrEntries, ...rest);
    },
    get: countChecked,
    delete: countChecked,
  });
}

/**
 * The object's state with its storage replaced by the limit-checking one. (The state
 * itself must stay the runtime's own object: the base class checks its type.)
 * @param {DurableObjectState} ctx
 * @param {Record<string, unknown>} env
 */
function testCtx(ctx, env) {
  let storage = ctx.storage;
  if (env.TEST_STORAGE_LIMITS === 'kv') storage = withKvLimits(storage);
  if (typeof env.TEST_FAIL_PUT_USER === 'string') storage = withFailingPuts(storage, env.TEST_FAIL_PUT_USER);
  if (storage !== ctx.storage) Object.defineProperty(ctx, 'storage', { value: storage, configurable: true });
  return ctx;
}

/** Calls of ctx.getWebSockets() without a tag (each visits every socket), per object. */
const socketScans = new WeakMap();

/**
 * Counts the untagged getWebSockets() calls of this object (an own property shadowing the
 * runtime's method, which it calls unchanged).
 * @param {DurableObjectState} ctx
 */
function countScans(ctx) {
  const original = ctx.getWebSockets.bind(ctx);
  socketScans.set(ctx, 0);
  Object.defineProperty(ctx, 'getWebSockets', {
    configurable: true,
    value: (/** @type {string | undefined} */ tag) => {
      if (tag === undefined) socketScans.set(ctx, socketScans.get(ctx) + 1);
      return original(tag);
    },
  });
}

/**
 * Storage whose `put` fails (a rejected promise, as a failed write is reported) whenever
 * it would write the meta record of `user`: every write of a lease for that user fails.
 * @param {DurableObjectStorage} storage
 * @param {string} user
 */
function withFailingPuts(storage, user) {
  return interceptStorage(storage, {
    put(original, keyOrEntries, ...rest) {
      const meta = typeof keyOrEntries === 'object' ? keyOrEntries['socket-lease:meta'] : undefined;
      if (meta?.userId === user) return Promise.reject(new Error('test: injected storage failure'));
      return original(keyOrEntries, ...rest);
    },
  });
}

/** @param {WebSocket} ws */
function closeIsLost(ws) {
  try {
    return ws.deserializeAttachment()?.testLoseClose === true;
  } catch {
    return false;
  }
}

export class SocketLeaseObject extends ExampleObject {
  /**
   * @param {DurableObjectState} ctx
   * @param {Record<string, unknown>} env
   */
  constructor(ctx, env) {
    const state = testCtx(ctx, env);
    countScans(state);
    super(state, env);
  }

  /** @param {Request} request */
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === '/__test/legacy') {
      const user = url.searchParams.get('user') ?? '';
      const n = Number(url.searchParams.get('leases'));
      const reg = new LeaseRegistry({ maxUsers: 1, perUserLimit: Math.max(1, n) });
      for (let i = 0; i < n; i++) reg.acquire(user);
      await this.ctx.storage.deleteAll();
      await this.ctx.storage.put({ 'socket-lease:snapshot': reg.snapshot(), 'socket-lease:user': user });
      reg.free();
      // Durable before the reset, which would drop unconfirmed writes.
      await this.ctx.storage.sync();
      this.ctx.abort('test: rebuild from the legacy storage layout');
    }
    if (url.pathname === '/__test/scans') {
      return Response.json({ scans: socketScans.get(this.ctx) });
    }
    if (url.pathname === '/__test/connect-as') {
      const headers = { upgrade: 'websocket', 'x-socket-lease-user': url.searchParams.get('header') ?? '' };
      return super.fetch(new Request('https://socket-lease.internal/connect', { headers }));
    }
    if (url.pathname === '/__test/storage') {
      const all = await this.ctx.storage.list();
      /** @type {Record<string, number>} */
      const sizes = {};
      for (const [key, value] of all) sizes[key] = valueSize(value);
      return Response.json({ sizes, meta: all.get('socket-lease:meta') ?? null, alarm: await this.ctx.storage.getAlarm() });
    }
    return super.fetch(request);
  }

  /**
   * @param {WebSocket} ws
   * @param {string | ArrayBuffer} message
   */
  async webSocketMessage(ws, message) {
    if (message === LOSE_CLOSE) {
      const att = ws.deserializeAttachment();
      ws.serializeAttachment({ ...att, testLoseClose: true });
      ws.send(CLOSE_WILL_BE_LOST);
      return;
    }
    return super.webSocketMessage(ws, message);
  }

  /**
   * @param {WebSocket} ws
   * @param {number} code
   * @param {string} reason
   * @param {boolean} wasClean
   */
  async webSocketClose(ws, code, reason, wasClean) {
    if (closeIsLost(ws)) return;
    return super.webSocketClose(ws, code, reason, wasClean);
  }

  /**
   * @param {WebSocket} ws
   * @param {unknown} error
   */
  async webSocketError(ws, error) {
    if (closeIsLost(ws)) return;
    return super.webSocketError(ws, error);
  }

  async alarm() {
    if (this.env.TEST_NO_ALARM === '1') return;
    return super.alarm();
  }
}

/**
 * The `allowedOrigins` option a test asked for in `origins`.
 * @param {string | null} text
 */
function originsOption(text) {
  if (text === null) return undefined;
  if (text.startsWith('fn:')) {
    const allowed = text.slice(3);
    return async (/** @type {string | null} */ origin) => origin === null || origin === allowed;
  }
  return JSON.parse(text);
}

export default {
  /**
   * @param {Request} request
   * @param {any} env
   * @param {ExecutionContext} ctx
   */
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (url.pathname === '/__test/ws') {
      // The adapter's upgrade route with a host identity that can return any string: the
      // id is JSON in ?userJson=, so a test can send what no URL decodes to (a lone
      // surrogate).
      const maxPayload = url.searchParams.get('maxPayload');
      const answer = await handleSocketLease(request, env, {
        path: '/__test/ws',
        binding: url.searchParams.get('binding') ?? undefined,
        userId: (/** @type {Request} */ r) => JSON.parse(new URL(r.url).searchParams.get('userJson') ?? 'null'),
        maxPayload: maxPayload === null ? undefined : Number(maxPayload),
        allowedOrigins: originsOption(url.searchParams.get('origins')),
      });
      return answer ?? new Response('not found', { status: 404 });
    }
    if (url.pathname.startsWith('/__test/')) {
      const user = url.searchParams.get('user') ?? '';
      const ns = env.SOCKET_LEASE;
      return ns.get(ns.idFromName(user)).fetch(`https://socket-lease.internal${url.pathname}${url.search}`);
    }
    return worker.fetch(request, env, ctx);
  },
};
