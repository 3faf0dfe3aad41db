// Shared pieces of the Node host tests: real servers on ephemeral 127.0.0.1 ports, real
// `ws` clients and raw TCP peers, and bounded polling instead of timed assertions.
import { Console } from 'node:console';
import http from 'node:http';
import { EventEmitter } from 'node:events';
import { Writable } from 'node:stream';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { LeaseRegistry } from 'socket-lease';
import { createLeaseGuard } from 'socket-lease/node';
import { createDemoServer } from '../../../examples/node/demo-server.mjs';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * A demo server torn down after the test.
 * @param {import('node:test').TestContext} t
 * @param {import('../../../examples/node/demo-server.mjs').DemoServerOptions} [options]
 */
export async function startDemo(t, options = {}) {
  const demo = await createDemoServer({ logLevel: 'silent', ...options });
  t.after(() => demo.close());
  return demo;
}

/**
 * @typedef {{ ok: true, ws: WebSocket } | { ok: false, status: number, headers: import('node:http').IncomingHttpHeaders, body: string }} ConnectResult
 */

/**
 * Opens a WebSocket; resolves with the socket, or with the HTTP refusal (status, headers,
 * body) when the server answers the upgrade with something other than 101.
 * @param {string} url
 * @param {import('ws').ClientOptions} [options]
 * @returns {Promise<ConnectResult>}
 */
export function connect(url, options) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    ws.once('open', () => resolve({ ok: true, ws }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => {
        resolve({ ok: false, status: res.statusCode ?? 0, headers: res.headers, body });
        ws.terminate();
      });
    });
    ws.once('error', reject);
  });
}

/**
 * @param {string} url
 * @param {import('ws').ClientOptions} [options]
 */
export async function open(url, options) {
  const r = await connect(url, options);
  if (!r.ok) throw new Error(`expected an open socket, got HTTP ${r.status} ${r.body}`);
  return r.ws;
}

/**
 * Sends one text message and waits for its echo.
 * @param {WebSocket} ws
 * @param {string} text
 * @returns {Promise<{ type: string, data: string, leaseId: string }>}
 */
export function echo(ws, text) {
  return new Promise((resolve, reject) => {
    /** @param {import('ws').RawData} data */
    const onMessage = (data) => {
      ws.off('close', onClose);
      resolve(JSON.parse(data.toString()));
    };
    const onClose = () => {
      ws.off('message', onMessage);
      reject(new Error('socket closed before the echo'));
    };
    ws.once('message', onMessage);
    ws.once('close', onClose);
    ws.send(text);
  });
}

/**
 * Resolves with the close code and reason the client saw.
 * @param {WebSocket} ws
 * @returns {Promise<{ code: number, reason: string }>}
 */
export function closed(ws) {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve({ code: -1, reason: 'already closed' });
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

/**
 * Polls `condition` until it holds; fails with `what` after `timeoutMs`. The bound only
 * keeps a broken build from hanging: assertions are about state, never elapsed time.
 * @param {() => boolean | Promise<boolean>} condition
 * @param {string} what
 * @param {number} [timeoutMs]
 */
export async function waitFor(condition, what, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

// Shared with the conformance suite, which needs the same raw peer.
export { rawHandshake } from '../conformance/lib.mjs';

/**
 * @param {string} url
 */
export async function getText(url) {
  const res = await fetch(url);
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/**
 * One sample's value from Prometheus text; labels as `{reason="user-limit"}`.
 * @param {string} text
 * @param {string} series name plus optional label set, exactly as printed
 */
export function metric(text, series) {
  for (const line of text.split('\n')) {
    if (line.startsWith(series + ' ')) return Number(line.slice(series.length + 1));
  }
  throw new Error(`no sample ${series} in metrics`);
}

/**
 * A second, asynchronous store: the in-memory registry behind promises that settle on a
 * later turn of the event loop, the way a networked store (Redis) would. Proves the guard
 * awaits every store call instead of assuming synchronous answers.
 */
export class AsyncStore {
  /** @param {import('socket-lease').LeaseRegistryOptions} options */
  constructor(options) {
    this.registry = new LeaseRegistry(options);
  }
  /** @template T @param {() => T} fn @returns {Promise<T>} */
  #later(fn) {
    return new Promise((resolve, reject) =>
      setImmediate(() => {
        try {
          resolve(fn());
        } catch (err) {
          reject(err);
        }
      }),
    );
  }
  /** @param {string} userId @param {{ now?: number }} [o] */
  acquire(userId, o) {
    return this.#later(() => this.registry.acquire(userId, o));
  }
  /** @param {string} id @param {number} [now] */
  release(id, now) {
    return this.#later(() => this.registry.release(id, now));
  }
  /** @param {string} id @param {number} [now] */
  touch(id, now) {
    return this.#later(() => this.registry.touch(id, now));
  }
  /** @param {number} [now] */
  sweep(now) {
    return this.#later(() => this.registry.sweep(now));
  }
  metrics() {
    return this.#later(() => this.registry.metrics());
  }
  stats() {
    return this.#later(() => this.registry.stats());
  }
  /** @param {string} userId @param {number} [now] */
  userStats(userId, now) {
    return this.#later(() => this.registry.userStats(userId, now));
  }
}

/**
 * The environment for a child process: this one's, without the variables that configure
 * the demo server (HOST, PORT, SOCKET_LEASE_*) or switch it to a Redis store (REDIS_URL,
 * REDIS_CLUSTER_NODES),
 * so a machine's environment cannot change a test's result; plus what the test sets.
 * @param {NodeJS.ProcessEnv} [env]
 * @returns {NodeJS.ProcessEnv}
 */
export function childEnv(env = {}) {
  /** @type {NodeJS.ProcessEnv} */
  const clean = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name === 'HOST' || name === 'PORT' || name === 'REDIS_URL' || name === 'REDIS_CLUSTER_NODES' || name.startsWith('SOCKET_LEASE_')) continue;
    clean[name] = value;
  }
  return { ...clean, ...env };
}

/**
 * Runs a Node script as a child process; `exited` resolves with its exit code and output.
 * Killed after the test if still running.
 * @param {import('node:test').TestContext} t
 * @param {string[]} args
 * @param {NodeJS.ProcessEnv} [env]  on top of childEnv(): only what the test sets
 */
export function run(t, args, env = {}) {
  const child = spawn(process.execPath, args, { cwd: ROOT, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
  /** @type {Promise<{ code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string }>} */
  const exited = new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return {
    child,
    exited,
    stdout: () => stdout,
    stderr: () => stderr,
    /** Waits for the server's "listening on http://..." line. */
    async url() {
      await waitFor(() => /listening on (http:\/\/\S+)/.test(stdout) || child.exitCode !== null, 'the server to print its URL', 20_000);
      const m = /listening on (http:\/\/\S+)/.exec(stdout);
      if (!m) throw new Error(`server did not start: ${stderr}`);
      return m[1];
    },
  };
}

/**
 * A logger that is really `console`, writing JSON lines into memory (the guard's and the
 * stores' log format); returns the parsed lines. The stream's write completes
 * synchronously, so a line is there as soon as it has been logged.
 */
export function memoryLogger() {
  /** @type {any[]} */
  const lines = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: new Console({ stdout: stream, stderr: stream }), lines };
}

/** The asynchronous in-memory store plus the event side of a store shared by several hosts. */
export class SharedStore extends AsyncStore {
  events = new EventEmitter();
  /** @param {'revoked'} event @param {(e: import('socket-lease/node').RevokedLease) => void} listener */
  on(event, listener) {
    this.events.on(event, listener);
    return this;
  }
  /** @param {'revoked'} event @param {(e: import('socket-lease/node').RevokedLease) => void} listener */
  off(event, listener) {
    this.events.off(event, listener);
    return this;
  }
  /**
   * What another host did: the lease is gone from the shared store, and this host is told.
   * @param {string} leaseId
   * @param {import('socket-lease/node').RevokedLease['reason']} reason
   */
  removeElsewhere(leaseId, reason) {
    this.registry.release(leaseId);
    this.events.emit('revoked', { leaseId, reason });
  }
}

/**
 * A guard attached to a real HTTP server on an ephemeral loopback port (upgrades at /ws),
 * echoing text messages as the demo does unless `echo` is false; closed (guard, then
 * server) after the test. Identity is `?user=` unless `options.userId` says otherwise.
 * @param {import('node:test').TestContext} t
 * @param {Partial<import('socket-lease/node').LeaseGuardOptions>} options
 * @param {{ echo?: boolean }} [how]
 */
export async function startGuard(t, options, how = {}) {
  const server = http.createServer((_req, res) => res.writeHead(426).end());
  const guard = createLeaseGuard({ userId: (req) => new URL(req.url ?? '/', 'http://x').searchParams.get('user'), logLevel: 'silent', ...options });
  guard.attach(server, { path: '/ws' });
  if (how.echo !== false) {
    guard.wss.on('connection', (ws) => {
      ws.on('message', (data) => ws.send(JSON.stringify({ type: 'echo', data: String(data), leaseId: guard.leaseIdOf(ws) })));
    });
  }
  // Upgraded (or upgrading) sockets are no longer the HTTP server's to close: a test that
  // failed with one still open must not hang in server.close().
  /** @type {Set<import('node:net').Socket>} */
  const sockets = new Set();
  server.on('connection', (socket) => sockets.add(socket));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  t.after(async () => {
    await within(guard.close(), 'guard.close() in teardown').catch(() => {});
    for (const socket of sockets) socket.destroy();
    // A test's in-memory store (AsyncStore) is freed only after the guard's last release.
    const inner = /** @type {any} */ (options.store)?.registry;
    if (inner instanceof LeaseRegistry) inner.free();
    await new Promise((resolve) => server.close(() => resolve(undefined)));
  });
  return { server, guard, url: `ws://127.0.0.1:${port}/ws` };
}

/**
 * Resolves as `promise` does, or fails naming `what` after `ms`: a regression that hangs
 * fails here instead of hanging the run (the bound is not the assertion).
 * @template T @param {Promise<T>} promise @param {string} what @param {number} [ms]
 * @returns {Promise<T>}
 */
export function within(promise, what, ms = 10_000) {
  /** @type {NodeJS.Timeout | undefined} */
  let timer;
  const bound = new Promise((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for: ${what}`)), ms);
  });
  return /** @type {Promise<T>} */ (Promise.race([promise, bound]).finally(() => clearTimeout(timer)));
}
