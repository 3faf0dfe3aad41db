// Runs examples/cloudflare unchanged in miniflare (real workerd) on 127.0.0.1 and gives
// the tests real WebSocket clients. Not a test file itself (no .test.mjs).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { Miniflare } from 'miniflare';
import WebSocket from 'ws';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const EXAMPLE_CONFIG = path.join(ROOT, 'examples/cloudflare/wrangler.toml');
// The example wrapped with test-only hooks (lost closes, storage limits, a storage view).
const HOOKS_WORKER = path.join(ROOT, 'tests/js/cloudflare/hooks-worker.mjs');

// wrangler is imported only for its reader of wrangler.toml; it must not phone home.
process.env.WRANGLER_SEND_METRICS = 'false';
const wrangler = await import('wrangler');

/**
 * @typedef {object} ExampleOptions
 * @property {Record<string, string | undefined>} [vars] overrides of [vars]; undefined unsets
 * @property {string} [persistDir] keep Durable Object storage here (default: in memory)
 * @property {boolean} [testHooks] run tests/js/cloudflare/hooks-worker.mjs, the example
 *   with test-only hooks, instead of the example itself
 * @property {'sqlite' | 'kv'} [storage] the object's storage kind: 'sqlite' (as
 *   wrangler.toml declares) or 'kv', a KV-backed class; with testHooks, 'kv' also enforces
 *   that kind's production limits, which local workerd does not
 */

/**
 * Miniflare options for the example, read from its wrangler.toml by wrangler itself, so
 * the bindings, vars, compatibility date and module rules tested are the ones deployed.
 * @param {Record<string, string | undefined>} vars overrides of [vars]; undefined unsets
 * @param {ExampleOptions} opts
 */
function exampleOptions(vars, opts) {
  const { workerOptions, main } = wrangler.unstable_getMiniflareWorkerOptions(EXAMPLE_CONFIG);
  const bindings = { ...workerOptions.bindings };
  if (opts.testHooks && opts.storage === 'kv') bindings.TEST_STORAGE_LIMITS = 'kv';
  for (const [k, v] of Object.entries(vars)) {
    if (v === undefined) delete bindings[k];
    else bindings[k] = v;
  }
  /** @type {Record<string, any>} */
  const durableObjects = { ...workerOptions.durableObjects };
  if (opts.storage) {
    for (const [name, d] of Object.entries(durableObjects)) {
      durableObjects[name] = { ...d, useSQLite: opts.storage === 'sqlite' };
    }
  }
  return {
    ...workerOptions,
    bindings,
    durableObjects,
    scriptPath: opts.testHooks ? HOOKS_WORKER : main,
    modules: true,
    // Module names relative to the repo root, so worker.js's '../../js/...' resolves.
    modulesRoot: ROOT,
    // Wrangler bundles; miniflare loads the files as they are, and the package's .js files
    // (the wasm-bindgen glue) are ES modules. The .wasm rule comes from wrangler.toml.
    modulesRules: [{ type: 'ESModule', include: ['**/*.js', '**/*.mjs'] }, ...(workerOptions.modulesRules ?? [])],
  };
}

/**
 * Starts the example Worker in workerd.
 * @param {ExampleOptions} [opts]
 */
export async function startExample(opts = {}) {
  /** @param {Record<string, string | undefined>} vars */
  const options = (vars) => ({
    ...exampleOptions(vars, opts),
    host: '127.0.0.1',
    port: 0,
    // false: in memory, gone with the instance; a path: on disk, for restarts.
    durableObjectsPersist: opts.persistDir ?? false,
  });
  const mf = new Miniflare(options(opts.vars ?? {}));
  let base;
  try {
    base = (await mf.ready).href.replace(/\/$/, '');
  } catch (e) {
    // A failed start (e.g. pkg/ not built) must not leave workerd running and the test
    // process waiting on it.
    await mf.dispose().catch(() => {});
    throw e;
  }
  /** @type {Set<WebSocket>} */
  const clients = new Set();
  return {
    mf,
    get base() {
      return base;
    },
    /**
     * Restarts the runtime with other [vars] overrides (storage is kept only when
     * persisted).
     * @param {Record<string, string | undefined>} vars
     */
    async setVars(vars) {
      await mf.setOptions(options(vars));
      base = (await mf.ready).href.replace(/\/$/, '');
    },
    /** @param {string} user */
    wsUrl: (user) => `${base.replace(/^http/, 'ws')}/ws?user=${encodeURIComponent(user)}`,
    /**
     * @param {string} user
     * @param {import('ws').ClientOptions} [opts] e.g. `{ origin }` or `{ headers }`
     */
    connect: (user, opts) => connect(`${base.replace(/^http/, 'ws')}/ws?user=${encodeURIComponent(user)}`, clients, opts),
    /** @param {string} user */
    async stats(user) {
      const res = await fetch(`${base}/api/users/${encodeURIComponent(user)}`);
      if (res.status !== 200) throw new Error(`stats for ${user}: HTTP ${res.status} ${await res.text()}`);
      return /** @type {Promise<any>} */ (res.json());
    },
    /**
     * The keys in `user`'s object storage and the size of each value, and the stored meta
     * record (testHooks only).
     * @param {string} user
     * @returns {Promise<{ sizes: Record<string, number>, meta: any, alarm: number | null }>}
     */
    async storage(user) {
      const res = await fetch(`${base}/__test/storage?user=${encodeURIComponent(user)}`);
      if (res.status !== 200) throw new Error(`storage of ${user}: HTTP ${res.status} ${await res.text()}`);
      return /** @type {Promise<any>} */ (res.json());
    },
    /**
     * Stops workerd (miniflare kills it) before touching the clients, so the objects hear
     * no close event: what a crash or an eviction with open sockets looks like.
     */
    async dispose() {
      await mf.dispose();
      for (const ws of clients) ws.terminate();
      clients.clear();
    },
  };
}

/**
 * A real WebSocket client. Resolves when the upgrade is answered: `{ ws }` with an open
 * socket, or `{ status, headers, body }` when the server refused it.
 * @param {string} url
 * @param {Set<WebSocket>} clients
 * @param {import('ws').ClientOptions} [opts] more client options (`origin`, `headers`)
 * @returns {Promise<{ ws: WebSocket, closed: Promise<{ code: number, reason: string, at: number }> } | { ws: null, status: number, headers: Record<string, string | string[] | undefined>, body: any }>}
 */
export function connect(url, clients, opts = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { handshakeTimeout: 10_000, ...opts });
    clients.add(ws);
    /** @type {Promise<{ code: number, reason: string, at: number }>} `at`: Date.now() when the close arrived */
    const closed = new Promise((done) => {
      ws.once('close', (code, reason) => {
        const at = Date.now();
        clients.delete(ws);
        done({ code, reason: reason.toString(), at });
      });
    });
    ws.once('open', () => resolve({ ws, closed }));
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => {
        clients.delete(ws);
        let body = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON: keep the text for the assertion message
        }
        resolve({ ws: null, status: res.statusCode ?? 0, headers: res.headers, body });
        // ws leaves a refused handshake to us: drop the HTTP connection.
        res.destroy();
      });
    });
    ws.once('error', (e) => {
      if (ws.readyState !== WebSocket.OPEN) reject(e);
    });
  });
}

/** The answer to the client heartbeat (docs/cloudflare.md); never the answer to a message. */
const HEARTBEAT_PONG = '{"type":"pong"}';

/**
 * Sends `text` and resolves with the next message other than a heartbeat answer, parsed.
 * @param {WebSocket} ws
 * @param {string} text
 * @returns {Promise<any>}
 */
export function roundTrip(ws, text) {
  return new Promise((resolve, reject) => {
    const onMessage = (/** @type {Buffer} */ data) => {
      const reply = data.toString();
      if (reply === HEARTBEAT_PONG && text !== '{"type":"ping"}') return;
      ws.off('message', onMessage);
      ws.off('close', onClose);
      resolve(JSON.parse(reply));
    };
    const onClose = (/** @type {number} */ code) => {
      ws.off('message', onMessage);
      reject(new Error(`closed with ${code} before the answer`));
    };
    ws.on('message', onMessage);
    ws.once('close', onClose);
    ws.send(text);
  });
}

/**
 * Polls `check` until it returns a truthy value, or fails after `timeoutMs`. Tests wait
 * for conditions, never for a fixed time.
 * @template T
 * @param {() => Promise<T> | T} check
 * @param {{ timeoutMs?: number, intervalMs?: number, what?: string }} [opts]
 * @returns {Promise<T>}
 */
export async function waitFor(check, { timeoutMs = 20_000, intervalMs = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(intervalMs);
  }
}

export { within } from '../conformance/lib.mjs';

/** A temp dir and its removal. */
export async function tempDir() {
  const dir = await mkdtemp(path.join(tmpdir(), 'socket-lease-cf-'));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

// The stable `reason` of each code (index.d.ts, ErrorReason): the Node host's names where
// it answers the same.
/** @type {Record<string, string>} */
const REASONS = {
  INVALID_USER_ID: 'invalid-user-id',
  MISSING_USER: 'missing-user',
  UNAUTHENTICATED: 'unauthorized',
  ORIGIN_NOT_ALLOWED: 'origin-not-allowed',
  NOT_FOUND: 'not-found',
  METHOD_NOT_ALLOWED: 'method-not-allowed',
  UPGRADE_REQUIRED: 'upgrade-required',
  INVALID_CONFIG: 'invalid-config',
  IDENTITY_ERROR: 'identity-error',
  WRONG_OBJECT: 'wrong-object',
  INTERNAL_ERROR: 'internal-error',
};

/**
 * The documented error shape: exactly `{ reason, error, code }`, with this code and its
 * reason, never cached.
 * @param {{ status: number, body: any, headers?: any }} res
 * @param {number} status
 * @param {string} code
 */
export function assertError(res, status, code) {
  assert.equal(res.status, status, JSON.stringify(res.body));
  assert.deepEqual(Object.keys(res.body).sort(), ['code', 'error', 'reason'], `the documented error shape: ${JSON.stringify(res.body)}`);
  assert.equal(res.body.code, code);
  assert.equal(res.body.reason, REASONS[code], `the reason of ${code}`);
  assert.equal(typeof res.body.error, 'string');
  if (res.headers) {
    const get = (/** @type {string} */ name) => (typeof res.headers.get === 'function' ? res.headers.get(name) : res.headers[name]);
    assert.equal(get('cache-control'), 'no-store');
    assert.match(get('content-type'), /^application\/json/);
  }
}
