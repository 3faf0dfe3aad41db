// socket-lease/deno against the real Deno (the devDependency's binary): each test starts
// tests/js/deno/fixture.mjs with its own options (--allow-net and --allow-env only) and
// talks to it over HTTP and WebSocket on 127.0.0.1. The host contract every host shares
// is tests/js/conformance (host `deno`); this file covers what is Deno's own: refusal
// answers as Responses, two-phase admission around Deno.upgradeWebSocket, Deno's
// idleTimeout as the heartbeat, maxPayload counted in the message handler, release on
// every path, option errors, and the loader's permissions.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { CLOSE_REASONS } from 'socket-lease/lifecycle';
import { ROOT, connect, startHost, waitFor, within } from '../conformance/lib.mjs';

const DENO = path.join(ROOT, 'node_modules/.bin/deno');
const SLACK_MS = 8000;

/** @type {Set<{ stop: () => Promise<void> }>} */
const running = new Set();
after(async () => {
  await Promise.allSettled([...running].map((p) => p.stop()));
});

/**
 * Starts the fixture with these adapter options (JSON) and fixture flags.
 * @param {Record<string, unknown>} options
 * @param {{ asyncUserMs?: number }} [flags]
 */
async function host(options, flags = {}) {
  const proc = await startHost(
    { name: 'deno-fixture', command: [DENO, 'run', '--no-prompt', '--allow-net=127.0.0.1', '--allow-env', 'tests/js/deno/fixture.mjs'] },
    { SL_FIXTURE: JSON.stringify({ options, ...flags }) },
  );
  running.add(proc);
  const ws = proc.url.replace(/^http/, 'ws');
  /** @type {Set<WebSocket>} */
  const clients = new Set();
  const h = {
    proc,
    clients,
    /** @param {string} path */
    get: async (path) => {
      const res = await fetch(`${proc.url}${path}`);
      if (res.status !== 200) throw new Error(`GET ${path}: ${res.status}`);
      return res.json();
    },
    /** @param {string} user */
    url: (user) => `${ws}/ws?user=${encodeURIComponent(user)}`,
    /** @param {string} user @param {{ origin?: string, autoPong?: boolean }} [o] */
    connect: (user, o = {}) => connect(h.url(user), { ...o, track: clients }),
    /** @param {string} user @param {{ origin?: string, autoPong?: boolean }} [o] */
    open: async (user, o) => {
      const r = await h.connect(user, o);
      if (!r.ok) assert.fail(`connect for ${user} refused: ${r.status} ${r.text}`);
      return r.client;
    },
    state: () => h.get('/state'),
    /** @param {string} user */
    user: (user) => h.get(`/user/${encodeURIComponent(user)}`),
    stop: async () => {
      for (const c of clients) c.terminate();
      await proc.stop();
      running.delete(proc);
    },
  };
  return h;
}

/**
 * A request written by hand on a TCP connection (fetch may not send Upgrade), answered
 * with its status and body.
 * @param {string} wsUrl  ws://host:port/path?query
 * @param {Record<string, string>} headers
 * @returns {Promise<{ status: number, head: string, body: string }>}
 */
function rawRequest(wsUrl, headers) {
  const url = new URL(wsUrl);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname);
    socket.once('error', reject);
    const lines = Object.entries({ host: url.host, ...headers }).map(([k, v]) => `${k}: ${v}\r\n`);
    socket.write(`GET ${url.pathname}${url.search} HTTP/1.1\r\n${lines.join('')}\r\n`);
    let text = '';
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end === -1) return;
      const head = text.slice(0, end);
      const length = Number(/^content-length: (\d+)/im.exec(head)?.[1] ?? 0);
      if (text.length - end - 4 < length) return;
      socket.destroy();
      resolve({ status: Number(head.slice(9, 12)), head, body: text.slice(end + 4, end + 4 + length) });
    });
  });
}

/** The headers of a well-formed WebSocket handshake. */
const HANDSHAKE = { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' };

describe('socket-lease/deno', { timeout: 120_000 }, () => {
  test('refusals are HTTP answers before any WebSocket: 429 + Retry-After, 401, 403, 400, with the JSON bodies of every host', async () => {
    const h = await host({ registry: { perUserLimit: 1, ttlMs: 30_000 }, allowedOrigins: ['http://good.example'] });
    try {
      const first = await h.open('alice');
      assert.equal((await first.echo('hi')).userId, 'alice');

      const limit = await h.connect('alice');
      assert.ok(!limit.ok);
      assert.equal(limit.status, 429);
      assert.match(String(limit.headers['retry-after']), /^\d+$/);
      // The registry's answer: the oldest lease expires in about ttlMs (30 s), unless renewed.
      assert.ok(Number(limit.headers['retry-after']) >= 29 && Number(limit.headers['retry-after']) <= 30, `Retry-After ${limit.headers['retry-after']}`);
      assert.match(String(limit.headers['content-type']), /^application\/json/);
      assert.deepEqual(limit.body, { reason: 'user-limit', limit: 1, active: 1 });

      const anonymous = await connect(h.url('x').replace(/\?.*$/, ''), { track: h.clients });
      assert.equal(!anonymous.ok && anonymous.status, 401);
      assert.deepEqual(!anonymous.ok && anonymous.body, { reason: 'unauthorized' });

      const forged = await h.connect('bob', { origin: 'http://evil.example' });
      assert.equal(!forged.ok && forged.status, 403);
      assert.deepEqual(!forged.ok && forged.body, { reason: 'origin-not-allowed' });

      const tooLong = await h.connect('u'.repeat(300));
      assert.equal(!tooLong.ok && tooLong.status, 400);
      assert.deepEqual(!tooLong.ok && tooLong.body, { reason: 'invalid-user-id' });

      // Not a WebSocket handshake: refused before identity and quota, as on Node.
      const plain = await rawRequest(h.url('carol'), {});
      assert.equal(plain.status, 400);
      assert.deepEqual(JSON.parse(plain.body), { reason: 'bad-handshake', message: 'Upgrade header must be websocket' });
      const version8 = await rawRequest(h.url('carol'), { ...HANDSHAKE, 'sec-websocket-version': '8' });
      assert.equal(version8.status, 400);
      assert.deepEqual(JSON.parse(version8.body), { reason: 'bad-handshake', message: 'missing or invalid Sec-WebSocket-Version' });

      const { lease, store } = await h.state();
      assert.equal(lease.upgrades['429'], 1);
      assert.equal(lease.upgrades['401'], 1);
      assert.equal(lease.upgrades['403'], 1);
      assert.equal(lease.upgrades['400'], 3);
      assert.deepEqual(lease.refusals, { 'user-limit': 1, unauthorized: 1, 'origin-not-allowed': 1, 'invalid-user-id': 1, 'bad-handshake': 2 });
      // Only the open socket's lease was ever taken.
      assert.equal(store.rejected, 1);
      assert.equal(store.acquired, 1);
      assert.equal(store.active, 1);
      assert.equal(lease.socketsOpen, 1);
    } finally {
      await h.stop();
    }
  });

  test('a handshake Deno refuses after admission (a subprotocol the client did not offer) gives the lease back and evicts nothing', async () => {
    const h = await host({ registry: { perUserLimit: 1, onLimit: 'evict-oldest' } });
    try {
      const held = await h.open('alice');
      const heldId = (await held.echo('held')).leaseId;
      const refused = await connect(`${h.url('alice')}&protocol=chat`, { track: h.clients });
      assert.ok(!refused.ok, 'Deno.upgradeWebSocket refuses a protocol the client did not offer');
      assert.equal(refused.status, 400);
      assert.equal(refused.body?.reason, 'bad-handshake');
      assert.match(String(refused.body?.message), /chat/);
      // Under evict-oldest at the limit, phase one only planned the eviction: the held
      // socket is still served, with the same lease.
      assert.equal((await held.echo('still here')).leaseId, heldId);
      const { lease, store } = await h.state();
      assert.equal(lease.cancelled, 1);
      assert.equal(store.evicted, 0);
      assert.equal(store.active, 1);
      assert.equal(held.ws.readyState, WebSocket.OPEN);
    } finally {
      await h.stop();
    }
  });

  test('evict-oldest: the oldest socket is closed with 4008 and the reason every host sends', async () => {
    const h = await host({ registry: { perUserLimit: 2, onLimit: 'evict-oldest' } });
    try {
      const a = await h.open('alice');
      const b = await h.open('alice');
      await a.echo('a');
      const bId = (await b.echo('b')).leaseId;
      const c = await h.open('alice');
      const cId = (await c.echo('c')).leaseId;
      const closed = await within(a.closed, SLACK_MS, 'the oldest socket to be evicted');
      assert.deepEqual(closed, { code: 4008, reason: CLOSE_REASONS[4008] });
      assert.equal((await b.echo('b again')).leaseId, bId);
      const user = await h.user('alice');
      assert.deepEqual(user.leases.map((/** @type {any} */ l) => l.id).sort(), [bId, cId].sort());
      const { lease, store } = await h.state();
      assert.equal(lease.closes['4008'], 1);
      assert.equal(store.evicted, 1);
      // The evicted lease is never released again (that would count as an unknown release).
      await waitFor(async () => (await h.state()).lease.socketsOpen === 2, 'the evicted socket to be forgotten', SLACK_MS);
      assert.equal((await h.state()).store.unknownReleases, 0);
    } finally {
      await h.stop();
    }
  });

  test('release exactly once: a client close, a TCP drop without a close frame, and a peer gone during the handshake', async () => {
    // upgradeTimeoutMs: a handshake Deno never finishes reports nothing (measured: a peer
    // that sent FIN while identity was pending gets no open, error nor close event, and
    // its request's signal is not aborted); the adapter gives it up after one to two of these.
    const h = await host({ registry: { perUserLimit: 5 }, upgradeTimeoutMs: 1000 }, { asyncUserMs: 300 });
    try {
      const a = await h.open('alice');
      await a.echo('a');
      const b = await h.open('alice');
      await b.echo('b');
      assert.equal((await h.state()).store.active, 2);
      a.ws.close(1000);
      assert.equal((await a.closed).code, 1000);
      /** @type {any} */ (b.ws)._socket.destroy();
      await waitFor(async () => (await h.state()).store.active === 0, 'both leases released', SLACK_MS);
      // Identity answers after 300 ms: this peer sends its handshake and leaves while
      // admission is pending. Admission still takes a lease, which must go back.
      const url = new URL(h.url('alice'));
      const leaving = net.connect(Number(url.port), url.hostname);
      leaving.on('error', () => {});
      leaving.write(
        `GET ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\n${Object.entries(HANDSHAKE)
          .map(([k, v]) => `${k}: ${v}\r\n`)
          .join('')}\r\n`,
      );
      await delay(50);
      leaving.destroy();
      await waitFor(async () => (await h.state()).lease.cancelled === 1, 'the abandoned handshake to be cancelled', SLACK_MS);
      const { lease, store } = await h.state();
      assert.equal(lease.released, 3, 'the two sockets and the cancelled admission: once each');
      assert.equal(store.acquired, 3, 'two sockets and the abandoned handshake');
      assert.equal(store.released, 3, 'every lease went back, once');
      assert.equal(store.active, 0);
      assert.equal(store.unknownReleases, 0, 'no lease released twice');
      assert.equal(lease.socketsOpen, 0);
      assert.equal(lease.pendingUpgrades, 0);
    } finally {
      await h.stop();
    }
  });
  test("the heartbeat is Deno's idleTimeout: a silent peer is closed (1001) within two intervals and released; a quiet live peer keeps its lease past the TTL", async () => {
    // heartbeatMs 200: idleTimeout 0.4 s. TTL 1000 ms: only the heartbeat can keep a
    // socket that sends nothing for 3 s.
    const h = await host({ registry: { perUserLimit: 5, ttlMs: 1000 }, heartbeatMs: 200 });
    try {
      const live = await h.open('alice');
      const silent = await h.open('alice', { autoPong: false });
      const liveId = (await live.echo('live')).leaseId;
      const silentId = (await silent.echo('silent')).leaseId;
      const lastFrame = Date.now();
      const closed = await within(silent.closed, 400 + SLACK_MS, 'Deno to close the silent peer');
      const after = Date.now() - lastFrame;
      // Deno's own close: pinged after 200 ms of silence, closed 200 ms later.
      assert.deepEqual(closed, { code: 1001, reason: 'No response from ping frame.' });
      assert.ok(after >= 350, `closed ${after} ms after the silent peer's last frame: not before Deno's idle timeout`);
      await waitFor(
        async () => !(await h.user('alice')).leases.some((/** @type {any} */ l) => l.id === silentId),
        "the silent peer's lease to be released",
        SLACK_MS,
      );
      const before = (await h.user('alice')).leases.find((/** @type {any} */ l) => l.id === liveId);
      assert.ok(before, 'the live peer holds its lease');
      await delay(3000);
      assert.equal(live.ws.readyState, WebSocket.OPEN, 'the live peer is still open after three TTLs without a message');
      const user = await h.user('alice');
      assert.deepEqual(
        user.leases.map((/** @type {any} */ l) => l.id),
        [liveId],
      );
      // A renewal without activity (the lifecycle's pong): the expiry moves, touchedAt (what
      // evict-idle ranks by) does not.
      assert.ok(user.leases[0].expiresAt > before.expiresAt + 2000, `renewed by the heartbeat: expiresAt ${before.expiresAt} -> ${user.leases[0].expiresAt}`);
      const { lease, store } = await h.state();
      assert.equal(store.expired, 0, 'no lease expired');
      assert.equal(lease.heartbeatTimeouts, 0, "Deno's idle closes are closes, not the lifecycle's heartbeat timeouts");
      assert.equal((await live.echo('still here')).leaseId, liveId);
    } finally {
      await h.stop();
    }
  });

  test('maxPayload is counted in UTF-8 bytes in the message handler: 1009, the lease released, other sockets served', async () => {
    const h = await host({ registry: { perUserLimit: 5 }, maxPayload: 4096 });
    try {
      const euro = await h.open('alice');
      const bystander = await h.open('alice');
      // 1365 x 3 bytes = 4095: fits. 1366 x 3 = 4098 bytes in only 1366 UTF-16 units: too big.
      assert.equal((await euro.echo('€'.repeat(1365))).data, '€'.repeat(1365));
      euro.ws.send('€'.repeat(1366));
      assert.deepEqual(await within(euro.closed, SLACK_MS, 'the 1009'), { code: 1009, reason: CLOSE_REASONS[1009] });
      const binary = await h.open('alice');
      binary.ws.send(Buffer.alloc(4097));
      assert.deepEqual(await within(binary.closed, SLACK_MS, 'the binary 1009'), { code: 1009, reason: CLOSE_REASONS[1009] });
      assert.equal((await bystander.echo('same user')).data, 'same user');
      await waitFor(async () => (await h.state()).store.active === 1, 'both leases released', SLACK_MS);
      assert.equal((await h.state()).store.unknownReleases, 0);
    } finally {
      await h.stop();
    }
  });

  test('close(): every socket closed with 1001, every lease released, later upgrades 503 with Retry-After', async () => {
    const h = await host({ registry: { perUserLimit: 5 } });
    try {
      const clients = [await h.open('alice'), await h.open('alice'), await h.open('bob')];
      await Promise.all(clients.map((c) => c.echo('hi')));
      const { lease, store } = await h.get('/close');
      assert.equal(lease.closing, true);
      assert.equal(store.active, 0);
      assert.equal(lease.socketsOpen, 0);
      assert.equal(lease.closes['1001'], 3);
      for (const c of clients) assert.deepEqual(await within(c.closed, SLACK_MS, 'a 1001'), { code: 1001, reason: CLOSE_REASONS[1001] });
      const late = await h.connect('carol');
      assert.equal(!late.ok && late.status, 503);
      assert.equal(!late.ok && late.headers['retry-after'], '1');
      assert.deepEqual(!late.ok && late.body, { reason: 'shutting-down' });
    } finally {
      await h.stop();
    }
  });

  test('option errors: LeaseError INVALID_OPTION, naming the option', async () => {
    const { stdout } = await promisify(execFile)(DENO, ['run', '--no-prompt', 'tests/js/deno/options.mjs'], { cwd: ROOT });
    const out = JSON.parse(stdout);
    for (const [name, r] of Object.entries(out)) {
      assert.equal(r.threw, true, `${name}: throws`);
      assert.equal(r.leaseError, true, `${name}: a LeaseError (${r.name}: ${r.message})`);
      assert.equal(r.code, 'INVALID_OPTION', `${name}: ${r.message}`);
    }
    assert.match(out['unknown option'].message, /^socket-lease\/deno: invalid option: unknown option "heartbeatMS"/);
    assert.match(out['no userId'].message, /userId/);
    assert.match(out['maxPayload 0'].message, /maxPayload/);
    assert.match(out['unknown hook'].message, /unknown upgrade hook "onmessage"/);
  });

  test('the core loads under Deno without --allow-read, through socket-lease/deno and through `socket-lease` (its deno condition), as one instance', async () => {
    /** @param {string[]} args */
    const run = (args) =>
      promisify(execFile)(DENO, ['run', '--no-prompt', ...args], { cwd: ROOT }).then(
        (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
        (/** @type {any} */ e) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
      );
    const deno = await run(['tests/js/deno/load-deno.mjs']);
    assert.equal(deno.code, 0, deno.stderr);
    const answer = JSON.parse(deno.stdout);
    assert.deepEqual({ ok: answer.ok, first: answer.first, second: answer.second }, { ok: true, first: true, second: false });
    assert.match(answer.id, /^conn_[0-9a-z]{26}$/);
    // Before the `deno` condition, `socket-lease` resolved to js/node.cjs under Deno: it
    // read the .wasm with fs (NotCapable without --allow-read), and its LeaseError was
    // another class than the adapter's.
    const root = await run(['tests/js/deno/load-root.mjs']);
    assert.equal(root.code, 0, root.stderr);
    const r = JSON.parse(root.stdout);
    assert.equal(r.ok, true, root.stdout);
    assert.deepEqual([r.first, r.second], [true, false]);
    assert.match(r.id, /^conn_[0-9a-z]{26}$/);
    assert.deepEqual(
      { sameRegistry: r.sameRegistry, sameError: r.sameError, adapterErrorIsLeaseError: r.adapterErrorIsLeaseError, code: r.code },
      { sameRegistry: true, sameError: true, adapterErrorIsLeaseError: true, code: 'INVALID_OPTION' },
    );
  });

  test('js/deno is runtime-neutral ESM: no node: import, no require', () => {
    const dir = path.join(ROOT, 'js/deno');
    for (const file of readdirSync(dir).filter((f) => /\.(mjs|js)$/.test(f))) {
      const text = readFileSync(path.join(dir, file), 'utf8');
      assert.doesNotMatch(text, /from\s+['"]node:|import\(\s*['"]node:|\brequire\(/, file);
    }
  });
});
