// socket-lease/crossws against the real crossws Node adapter (crossws/adapters/node on a
// node:http server, ws clients over 127.0.0.1): refusal answers, composition with the
// user's own hooks, two-phase admission, release exactly once, heartbeat, 1009, close().
// The srvx demo host is exercised by the conformance suite (hosts.mjs: crossws).
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import WebSocket from 'ws';
import crossws from 'crossws/adapters/node';
import { defineHooks } from 'crossws';
import { LeaseError, LeaseRegistry } from 'socket-lease';
import { CloseCodes, createLeaseGuard } from 'socket-lease/crossws';
import net from 'node:net';
import { AsyncStore, closed, connect, echo, open, waitFor } from '../node/helpers.mjs';

const userOf = (/** @type {Request} */ request) => new URL(request.url).searchParams.get('user');

/**
 * A node:http server with crossws's Node adapter serving `guard.hooks(userHooks)`.
 * @param {import('node:test').TestContext} t
 * @param {Partial<import('socket-lease/crossws').LeaseGuardOptions>} [options]
 * @param {Partial<import('crossws').Hooks>} [userHooks]
 * @param {{ node?: import('crossws/adapters/node').NodeOptions, path?: string }} [more]
 */
async function start(t, options = {}, userHooks = echoHooks(), more = {}) {
  const defaults = options.store ? {} : { registry: { perUserLimit: 2, ttlMs: 60_000 } };
  const guard = createLeaseGuard({ userId: userOf, ...defaults, logLevel: 'silent', ...options });
  const adapter = crossws({ hooks: guard.hooks(userHooks, { path: more.path ?? '/ws' }), ...guard.nodeOptions(more.node) });
  const server = http.createServer((_req, res) => res.end('http'));
  server.on('upgrade', (req, socket, head) => void adapter.handleUpgrade(req, socket, head));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  t.after(async () => {
    await guard.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const store = /** @type {LeaseRegistry} */ (guard.store);
  return { guard, store, url: (/** @type {string} */ user) => `ws://127.0.0.1:${port}/ws?user=${encodeURIComponent(user)}`, port };
}

/**
 * Sends `text` on a raw TCP connection and resolves with everything the server answered
 * before closing it.
 * @param {number} port
 * @param {string} text
 */
function rawRequest(port, text) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(text));
    let answer = '';
    socket.on('data', (d) => (answer += d.toString('latin1')));
    socket.once('error', reject);
    socket.once('close', () => resolve(answer));
  });
}

/** The demo's echo, checking writable() first. */
function echoHooks() {
  /** @type {import('socket-lease/crossws').LeaseGuard | null} */
  let guard = null;
  const hooks = defineHooks({
    message(peer, message) {
      if (guard && !guard.writable(peer)) return;
      peer.send(JSON.stringify({ type: 'echo', data: message.text(), leaseId: guard?.leaseIdOf(peer) }));
    },
  });
  return Object.assign(hooks, { bind: (/** @type {any} */ g) => (guard = g) });
}

test('refusals are Responses with the lifecycle status, Retry-After and JSON body; nothing is held', async (t) => {
  const { url, store, port, guard } = await start(t, { allowedOrigins: ['https://app.example'] });
  const a = await open(url('alice'));
  const b = await open(url('alice'));
  const over = await connect(url('alice'));
  assert.equal(over.ok, false);
  if (over.ok) return;
  assert.equal(over.status, 429);
  assert.match(String(over.headers['retry-after']), /^[1-9]\d*$/);
  assert.deepEqual(JSON.parse(over.body), { reason: 'user-limit', limit: 2, active: 2 });
  assert.equal(guard.lastRefusal('alice')?.status, 429);

  const forged = await connect(url('alice'), { origin: 'https://evil.example' });
  assert.ok(!forged.ok && forged.status === 403 && JSON.parse(forged.body).reason === 'origin-not-allowed');
  const anonymous = await connect(`ws://127.0.0.1:${port}/ws`);
  assert.ok(!anonymous.ok && anonymous.status === 401 && JSON.parse(anonymous.body).reason === 'unauthorized');
  const tooLong = await connect(url('u'.repeat(300)));
  assert.ok(!tooLong.ok && tooLong.status === 400 && JSON.parse(tooLong.body).reason === 'invalid-user-id');
  const elsewhere = await connect(`ws://127.0.0.1:${port}/other?user=bob`);
  assert.ok(!elsewhere.ok && elsewhere.status === 404 && JSON.parse(elsewhere.body).reason === 'not-found');

  // A handshake ws would refuse after our hook (a bad key) is refused before any quota work.
  const raw = await rawRequest(
    port,
    'GET /ws?user=carol HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
  assert.match(raw, /^HTTP\/1\.1 400 /);
  assert.match(raw, /"reason":"bad-handshake"/);
  assert.equal(store.stats().active, 2, "only alice's two sockets hold leases");
  a.close();
  b.close();
  await waitFor(() => store.stats().active === 0, 'both leases released');
  assert.equal(store.stats().unknownReleases, 0);
});

test("the user's hooks run after ours: upgrade after admission (its refusal gives the lease back), open/message/close with the lease", async (t) => {
  /** @type {string[]} */
  const seen = [];
  /** @type {any} */
  let g = null;
  const userHooks = defineHooks({
    upgrade(request) {
      const user = userOf(request);
      seen.push(`upgrade ${user} active=${g.store.stats().active}`);
      const mode = new URL(request.url).searchParams.get('mode');
      if (mode === 'refuse') return new Response('no', { status: 418 });
      if (mode === 'throw') throw new Response('no', { status: 451 });
      return { context: { room: 'lobby' }, headers: { 'x-room': 'lobby' } };
    },
    open(peer) {
      seen.push(`open ${g.userIdOf(peer)} ${peer.context.room} lease=${g.leaseIdOf(peer)?.slice(0, 5)}`);
    },
    message(peer, message) {
      peer.send(`${g.leaseIdOf(peer)} ${message.text()}`);
    },
    close(peer) {
      // Ours ran first: the lease is already back.
      seen.push(`close lease=${String(g.leaseIdOf(peer))} active=${g.store.stats().active}`);
    },
  });
  const { guard, url, store } = await start(t, { registry: { perUserLimit: 1, onLimit: 'evict-oldest' } }, userHooks);
  g = guard;

  const held = await open(url('lee'));
  // At the limit under evict-oldest, admitted (eviction planned), then refused by the user:
  // the held socket stays, and nothing is left behind.
  const refused = await connect(`${url('lee')}&mode=refuse`);
  assert.ok(!refused.ok && refused.status === 418);
  const thrown = await connect(`${url('lee')}&mode=throw`);
  assert.ok(!thrown.ok && thrown.status === 451);
  assert.equal(held.readyState, WebSocket.OPEN, 'a handshake the user refused evicted nobody');
  assert.equal(store.stats().evicted, 0);
  assert.equal(guard.stats().cancelled, 2);
  assert.equal(store.stats().active, 1);

  // Refused by us: the user's upgrade is never asked.
  const before = seen.length;
  const anonymous = await connect(url('').replace('?user=', ''));
  assert.ok(!anonymous.ok && anonymous.status === 401);
  assert.equal(seen.length, before);

  const ws = new WebSocket(url('dave'));
  const upgraded = once(ws, 'upgrade');
  const opened = once(ws, 'open');
  const [response] = await upgraded;
  assert.equal(response.headers['x-room'], 'lobby', "the user's upgrade headers are sent");
  await opened;
  ws.send('hi');
  const [reply] = await once(ws, 'message');
  assert.match(String(reply), /^conn_[0-9a-z]{26} hi$/);
  ws.close();
  await closed(ws);
  held.close();
  await waitFor(() => seen.filter((s) => s.startsWith('close')).length === 2, "the user's close hooks");
  assert.ok(seen.includes('upgrade dave active=2'), `the user's upgrade ran after admission took dave's lease (lee holds the other): ${seen}`);
  assert.ok(seen.includes('open dave lobby lease=conn_'), "open sees the lease and the user's context");
  assert.deepEqual(
    seen.filter((s) => s.startsWith('close')).map((s) => s.replace(/active=\d/, 'active=?')),
    ['close lease=undefined active=?', 'close lease=undefined active=?'],
  );
  await waitFor(() => store.stats().active === 0, 'released');
  assert.equal(store.stats().released, 2);
  assert.equal(store.stats().unknownReleases, 0, 'released exactly once');
});

test('evict-oldest: the oldest socket is closed with 4008 once the new one is open', async (t) => {
  const { url, store } = await start(t, { registry: { perUserLimit: 2, onLimit: 'evict-oldest' } });
  const first = await open(url('erin'));
  const second = await open(url('erin'));
  const third = await open(url('erin'));
  const c = await closed(first);
  assert.equal(c.code, CloseCodes.EVICTED);
  assert.equal(second.readyState, WebSocket.OPEN);
  assert.equal(third.readyState, WebSocket.OPEN);
  assert.equal(store.stats().active, 2);
  second.close();
  third.close();
  await waitFor(() => store.stats().active === 0, 'released');
  assert.equal(store.stats().unknownReleases, 0);
});

test('an asynchronous store: the eviction is committed in open() and messages meanwhile wait for it', async (t) => {
  const asyncStore = new AsyncStore({ perUserLimit: 1, ttlMs: 60_000, onLimit: 'evict-oldest' });
  const hooks = echoHooks();
  const { url, guard } = await start(t, { store: asyncStore }, hooks);
  hooks.bind(guard);
  const old = await open(url('frank'));
  const ws = new WebSocket(url('frank'));
  // Sent the moment the socket opens, while the eviction is still being committed.
  ws.once('open', () => ws.send('early'));
  const [reply] = await once(ws, 'message');
  const echoed = JSON.parse(String(reply));
  assert.equal(echoed.data, 'early');
  assert.match(echoed.leaseId, /^conn_/);
  assert.equal((await closed(old)).code, CloseCodes.EVICTED);
  ws.close();
  await waitFor(async () => (await asyncStore.stats()).active === 0, 'released');
  assert.equal((await asyncStore.stats()).unknownReleases, 0);
});

test('an upgrade the runtime refuses after our hook (ws verifyClient) gives its lease back and evicts nothing', async (t) => {
  const { url, store, guard } = await start(t, { upgradeTimeoutMs: 200, registry: { perUserLimit: 1, onLimit: 'evict-oldest' } }, echoHooks(), {
    node: { serverOptions: { verifyClient: (/** @type {any} */ info) => !info.req.url.includes('mode=refuse') } },
  });
  const held = await open(url('mo'));
  const refused = await connect(`${url('mo')}&mode=refuse`);
  assert.ok(!refused.ok && refused.status === 401, 'ws answered its own 401');
  await waitFor(() => guard.stats().cancelled === 1, 'the pending admission to be given back');
  assert.equal(store.stats().active, 1);
  const again = await connect(`${url('mo')}&mode=refuse`);
  assert.ok(!again.ok && again.status === 401);
  assert.equal(held.readyState, WebSocket.OPEN);
  assert.equal(store.stats().evicted, 0);
  held.close();
  await waitFor(() => store.stats().active === 0, 'released');
});

test('heartbeat auto on Node pings through peer.ping(): a silent peer is terminated, a live one kept and renewed', async (t) => {
  const { url, store, guard } = await start(t, { heartbeatMs: 100, registry: { perUserLimit: 5, ttlMs: 400 } });
  const live = await open(url('gina'));
  const silent = await open(url('gina'), { autoPong: false });
  let pings = 0;
  live.on('ping', () => pings++);
  const c = await closed(silent);
  assert.equal(c.code, 1006, 'terminated without a close frame');
  await waitFor(() => store.stats().active === 1, "the silent peer's lease released");
  await delay(900); // more than two TTLs without a message
  assert.equal(live.readyState, WebSocket.OPEN);
  assert.ok(pings >= 3, `pings reached the live peer (${pings})`);
  assert.equal(store.stats().expired, 0, 'pongs renewed the live lease');
  assert.ok(guard.stats().heartbeatTimeouts >= 1);
  live.close();
  await waitFor(() => store.stats().active === 0, 'released');
});

test('heartbeat runtime: no pings from the guard, open sockets renewed while the runtime keeps them', async (t) => {
  const { url, store } = await start(t, { heartbeat: 'runtime', heartbeatMs: 100, registry: { perUserLimit: 5, ttlMs: 400 } });
  const ws = await open(url('hank'), { autoPong: false });
  let pings = 0;
  ws.on('ping', () => pings++);
  await delay(900);
  // crossws's idleTimeout (30 s, kept by nodeOptions() in this mode) has not fired yet.
  assert.equal(pings, 0, 'the guard sent no ping');
  assert.equal(ws.readyState, WebSocket.OPEN);
  assert.equal(store.stats().expired, 0, 'renewed without pongs');
  ws.close();
  await waitFor(() => store.stats().active === 0, 'released');
});

test('maxPayload goes to ws through nodeOptions(): a larger frame is closed with 1009 and its lease released', async (t) => {
  const { url, store } = await start(t, { maxPayload: 1024 });
  const big = await open(url('ivy'));
  const other = await open(url('ivy'));
  big.send('x'.repeat(2048));
  assert.equal((await closed(big)).code, 1009);
  await waitFor(() => store.stats().active === 1, 'the lease released');
  assert.equal((await echo(other, 'small')).data, 'small');
  other.close();
  await waitFor(() => store.stats().active === 0, 'released');
  assert.equal(store.stats().unknownReleases, 0);
});

test('close(): 1001 to every peer, every lease released, later upgrades 503', async (t) => {
  const { url, store, guard } = await start(t);
  const sockets = [await open(url('jo')), await open(url('jo')), await open(url('kim'))];
  const codes = Promise.all(sockets.map(closed));
  await guard.close();
  assert.deepEqual(
    (await codes).map((c) => c.code),
    [1001, 1001, 1001],
  );
  assert.equal(store.stats().active, 0);
  const late = await connect(url('jo'));
  assert.ok(!late.ok && late.status === 503 && JSON.parse(late.body).reason === 'shutting-down');
  assert.match(String(late.headers['retry-after']), /^\d+$/);
});

test('option errors are LeaseError INVALID_OPTION', () => {
  const code = { code: 'INVALID_OPTION' };
  assert.throws(
    () => createLeaseGuard(/** @type {any} */ ({ userId: userOf, heartbeatMS: 10 })),
    (err) => err instanceof LeaseError && err.code === 'INVALID_OPTION',
  );
  assert.throws(() => createLeaseGuard(/** @type {any} */ ({})), code);
  assert.throws(() => createLeaseGuard(/** @type {any} */ ({ userId: userOf, heartbeat: 'sometimes' })), code);
  assert.throws(() => createLeaseGuard({ userId: userOf, maxPayload: 0 }), code);
  assert.throws(() => createLeaseGuard({ userId: userOf, store: new LeaseRegistry(), registry: {} }), code);
  const guard = createLeaseGuard({ userId: userOf, logLevel: 'silent' });
  try {
    assert.throws(() => guard.hooks({}, { path: 'ws' }), code);
    assert.throws(() => guard.hooks({}, /** @type {any} */ ({ route: '/ws' })), code);
    assert.throws(() => guard.hooks(/** @type {any} */ (null)), code);
    const node = guard.nodeOptions({ serverOptions: { maxPayload: 1 << 30 } });
    assert.equal(node.serverOptions?.maxPayload, 65536, "the guard's maxPayload wins");
    assert.equal(node.idleTimeout, 0, "crossws's own ping off while the guard pings");
    assert.equal(/** @type {any} */ (node.serverOptions)?.clientTracking, false, "ws's clients Set off: crossws never reads it");
    assert.equal(
      /** @type {any} */ (guard.nodeOptions({ serverOptions: /** @type {any} */ ({ clientTracking: true }) }).serverOptions)?.clientTracking,
      true,
      'yours wins',
    );
  } finally {
    void guard.close();
  }
});
