// The guard's upgrade path when the host's parts misbehave: a store answer that breaks the
// contract, a clock that throws, identity or a store that never answers, upgrades after
// close(), handshakes ws would refuse, async verifyClient. Real HTTP servers and `ws`
// clients on 127.0.0.1; every lease acquired is accounted for in the registry's stats.
import { test as nodeTest } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { WebSocketServer } from 'ws';
import { createEventLogger, createLeaseGuard } from 'socket-lease/node';
import { AsyncStore, SharedStore, closed, connect, echo, open, rawHandshake, startGuard, waitFor, within } from './helpers.mjs';

/**
 * Bounded, so a regression fails instead of hanging the run; far above a normal run
 * (under a second each).
 * @param {string} name @param {(t: import('node:test').TestContext) => unknown} fn
 */
const test = (name, fn) => nodeTest(name, { timeout: 20_000 }, fn);

/**
 * A raw TCP client that sends one handshake (plus `extra` header lines) and never closes
 * its side: `response` is all the server wrote, `ended` resolves when the server closed.
 * @param {string} wsUrl
 * @param {string} [extra]
 */
function rawUpgrade(wsUrl, extra = '') {
  const url = new URL(wsUrl);
  const socket = net.connect(Number(url.port), url.hostname);
  socket.on('error', () => {});
  let response = '';
  socket.setEncoding('latin1').on('data', (d) => (response += d));
  /** @type {Promise<void>} */
  const ended = new Promise((resolve) => socket.once('close', () => resolve()));
  socket.write(
    `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
  );
  return { socket, ended, response: () => response };
}

/** Every acquired lease was given back exactly once (or reclaimed by the store). */
function assertNoLeak(/** @type {LeaseRegistry} */ registry) {
  const s = registry.stats();
  assert.equal(s.active, 0, 'no active lease left');
  assert.equal(s.unknownReleases, 0, 'no lease released twice or released unknown');
  assert.equal(s.released + s.expired + s.evicted, s.acquired, 'every lease accounted for');
}

/** An asynchronous store whose acquire answers are rewritten by the test. */
class RewritingStore extends AsyncStore {
  /** @type {(answer: any) => any} */ rewrite = (answer) => answer;
  /** @param {string} userId @param {{ now?: number }} [o] */
  async acquire(userId, o) {
    return this.rewrite(await super.acquire(userId, o));
  }
}

test('a store answer that breaks the contract is a 500 internal-error, and a lease it granted is released', async (t) => {
  const store = new RewritingStore({ perUserLimit: 5 });
  const { guard, url } = await startGuard(t, { store, heartbeatMs: 60_000 });

  // A lease without `evicted`: the lease exists in the store and must be given back.
  store.rewrite = ({ evicted: _evicted, ...rest }) => rest;
  const r = await connect(`${url}?user=ann`);
  assert.ok(!r.ok);
  assert.equal(r.status, 500);
  assert.deepEqual(JSON.parse(r.body), { reason: 'internal-error' });
  await waitFor(() => store.registry.stats().released === 1, 'the granted lease released');
  assertNoLeak(store.registry);

  // A refusal without a finite retryAfterMs would send `Retry-After: NaN`.
  // (The fixture gives back the lease it hides from the guard.)
  /** @param {any} answer */
  const hide = (answer) => {
    if (answer.ok) store.registry.release(answer.lease.id);
  };
  store.rewrite = (answer) => {
    hide(answer);
    return { ok: false, reason: 'user-limit', limit: 5, active: 5 };
  };
  const nan = await connect(`${url}?user=ann`);
  assert.ok(!nan.ok);
  assert.equal(nan.status, 500);
  assert.equal(nan.headers['retry-after'], undefined);

  // Nothing usable at all.
  store.rewrite = (answer) => {
    hide(answer);
    return null;
  };
  const nothing = await connect(`${url}?user=ann`);
  assert.ok(!nothing.ok);
  assert.equal(nothing.status, 500);

  const s = guard.stats();
  assert.equal(s.upgrades[500], 3);
  assert.equal(s.storeErrors, 3);
  assert.equal(s.socketsOpen, 0);

  // The store is fine again: the user still has the whole limit.
  store.rewrite = (answer) => answer;
  const sockets = [];
  for (let i = 0; i < 5; i++) sockets.push(await open(`${url}?user=ann`));
  for (const ws of sockets) ws.close();
  await Promise.all(sockets.map(closed));
  await waitFor(() => store.registry.stats().active === 0, 'all released');
  assertNoLeak(store.registry);
});

test("a clock that throws after the acquire: 500, and the lease is released with the store's own time", async (t) => {
  let calls = 0;
  const clock = () => {
    // The first read (the acquire's `now`) works; the next one throws, past the acquire.
    if (++calls === 2) throw new Error('clock broke');
    return Date.now();
  };
  const { guard, url } = await startGuard(t, { registry: { perUserLimit: 5 }, clock, heartbeatMs: 60_000 });
  const registry = /** @type {LeaseRegistry} */ (/** @type {unknown} */ (guard.store));
  const r = await connect(`${url}?user=bob`);
  assert.ok(!r.ok);
  assert.equal(r.status, 500);
  assert.deepEqual(JSON.parse(r.body), { reason: 'internal-error' });
  assert.equal(registry.stats().acquired, 1);
  assertNoLeak(registry);
  // The next upgrade works (the clock answers again).
  const ws = await open(`${url}?user=bob`);
  assert.equal((await echo(ws, 'hi')).data, 'hi');
  ws.close();
  await closed(ws);
  await waitFor(() => registry.stats().active === 0, 'released on close');
  assertNoLeak(registry);
});

/** An asynchronous store whose acquire waits until the test opens the gate. */
class GatedStore extends AsyncStore {
  /** @type {Array<() => void>} */ gates = [];
  /** @param {string} userId @param {{ now?: number }} [o] */
  async acquire(userId, o) {
    await new Promise((resolve) => this.gates.push(() => resolve(undefined)));
    return super.acquire(userId, o);
  }
  openAll() {
    for (const open of this.gates.splice(0)) open();
  }
}

test('upgradeTimeoutMs: identity that never answers gets 503 upgrade-timeout with Retry-After, and the socket is dropped', async (t) => {
  assert.throws(() => createLeaseGuard({ userId: () => 'a', upgradeTimeoutMs: 0 }), /upgradeTimeoutMs must be an integer/);
  const { guard, url } = await startGuard(t, { userId: () => new Promise(() => {}), upgradeTimeoutMs: 150, registry: { perUserLimit: 5 } });
  const results = await Promise.all([connect(`${url}?user=cy`), connect(`${url}?user=cy`)]);
  for (const r of results) {
    assert.ok(!r.ok);
    assert.equal(r.status, 503);
    assert.equal(r.headers['retry-after'], '1');
    assert.deepEqual(JSON.parse(r.body), { reason: 'upgrade-timeout' });
  }
  assert.equal(guard.stats().pendingUpgrades, 0);
  assert.equal(guard.stats().upgrades[503], 2);

  // A client that never closes its side: the server answers and closes the connection.
  const raw = rawUpgrade(`${url}?user=cy`);
  t.after(() => raw.socket.destroy());
  await raw.ended;
  assert.match(raw.response(), /^HTTP\/1\.1 503 /);
  assert.equal(guard.stats().pendingUpgrades, 0);
});

test('upgradeTimeoutMs: a store that answers after the timeout has its lease released at once', async (t) => {
  const store = new GatedStore({ perUserLimit: 5 });
  const { guard, url } = await startGuard(t, { store, upgradeTimeoutMs: 150 });
  const r = await connect(`${url}?user=dee`);
  assert.ok(!r.ok);
  assert.equal(r.status, 503);
  assert.deepEqual(JSON.parse(r.body), { reason: 'upgrade-timeout' });
  assert.equal(store.gates.length, 1, 'the acquire is still pending');
  store.openAll();
  await waitFor(() => store.registry.stats().released === 1, 'the late lease released');
  assert.equal(store.registry.stats().acquired, 1);
  assertNoLeak(store.registry);
  assert.equal(guard.stats().socketsOpen, 0);
});

test('close() answers upgrades still pending after closeGraceMs with 503 shutting-down and does not wait for them', async (t) => {
  const store = new GatedStore({ perUserLimit: 5 });
  const { guard, url } = await startGuard(t, { store, upgradeTimeoutMs: 600_000, closeGraceMs: 100 });
  const pending = connect(`${url}?user=eve`);
  await waitFor(() => store.gates.length === 1, 'the acquire pending');
  await guard.close();
  const r = await pending;
  assert.ok(!r.ok);
  assert.equal(r.status, 503);
  assert.equal(r.headers['retry-after'], '1');
  assert.deepEqual(JSON.parse(r.body), { reason: 'shutting-down' });
  assert.equal(guard.stats().pendingUpgrades, 0);
  store.openAll();
  await waitFor(() => store.registry.stats().released === 1, 'the late lease released');
  assertNoLeak(store.registry);
});

test('after close(), a new upgrade is still answered 503 shutting-down with Retry-After: 1 until the host detaches', async (t) => {
  const { guard, url } = await startGuard(t, { registry: { perUserLimit: 5 } });
  await guard.close();
  const r = await connect(`${url}?user=fay`);
  assert.ok(!r.ok);
  assert.equal(r.status, 503);
  assert.equal(r.headers['retry-after'], '1');
  assert.equal(r.headers['content-type'], 'application/json');
  assert.deepEqual(JSON.parse(r.body), { reason: 'shutting-down' });
  assert.equal(guard.stats().upgrades[503], 1);
});

test('a handshake ws refuses (subprotocols, extensions) after admission evicts no live socket and leaves no lease', async (t) => {
  // Two-phase admission: at the limit under evict-oldest, admission only plans the
  // eviction; ws then refuses the handshake with its own 400, and nothing is committed.
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: true });
  const { guard, url } = await startGuard(t, { wss, registry: { perUserLimit: 1, onLimit: 'evict-oldest' }, heartbeatMs: 60_000 });
  const registry = /** @type {LeaseRegistry} */ (/** @type {unknown} */ (guard.store));
  const live = await open(`${url}?user=gil`);
  for (const header of [
    'Sec-WebSocket-Protocol: a,,b',
    'Sec-WebSocket-Protocol: a b',
    'Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=99',
    'Sec-WebSocket-Extensions: permessage-deflate;;',
  ]) {
    const raw = rawUpgrade(`${url}?user=gil`, `${header}\r\n`);
    t.after(() => raw.socket.destroy());
    await raw.ended;
    assert.match(raw.response(), /^HTTP\/1\.1 400 /, header);
  }
  await waitFor(() => guard.stats().cancelled === 4, 'the four refused admissions given back');
  assert.equal(registry.stats().acquired, 1, 'no lease taken for the refused handshakes');
  assert.equal(registry.stats().evicted, 0, 'nothing evicted for them');
  assert.equal(guard.stats().closes[4008], 0);
  assert.equal((await echo(live, 'still here')).data, 'still here');
  // A valid handshake still takes the slot (evict-oldest), with ws's own deflate offer.
  const evicted = closed(live);
  const next = await open(`${url}?user=gil`, { perMessageDeflate: true });
  assert.equal((await evicted).code, 4008);
  assert.match(next.extensions, /permessage-deflate/);
  next.close();
  await closed(next);
  await waitFor(() => registry.stats().active === 0, 'released');
  assertNoLeak(registry);
});

test("an upgrade for a path the host's ws server does not handle (its `path` option) is a 400 before any lease", async (t) => {
  const wss = new WebSocketServer({ noServer: true, path: '/elsewhere' });
  const { guard, url } = await startGuard(t, { wss, registry: { perUserLimit: 1 } });
  const r = await connect(`${url}?user=hal`);
  assert.ok(!r.ok);
  assert.equal(r.status, 400);
  assert.equal(JSON.parse(r.body).reason, 'bad-handshake');
  assert.equal(/** @type {LeaseRegistry} */ (/** @type {unknown} */ (guard.store)).stats().acquired, 0);
  assert.equal(guard.stats().upgrades[400], 1);
});

test('close() does not wait past closeGraceMs for a store release that never settles; it counts and logs what it left', async (t) => {
  /** A store whose releases hang, as a backend that stopped answering would. */
  class HangingReleaseStore extends AsyncStore {
    /** @param {string} _id */
    release(_id) {
      return new Promise(() => {});
    }
  }
  const store = new HangingReleaseStore({ perUserLimit: 5 });
  /** @type {any[]} */
  const lines = [];
  const logger = { error: (/** @type {string} */ line) => lines.push(JSON.parse(line)) };
  const { guard, url } = await startGuard(t, { store, closeGraceMs: 100, logger, logLevel: 'error', heartbeatMs: 60_000 });
  const ws = await open(`${url}?user=ida`);
  const code = closed(ws);
  await within(guard.close(), 'close() with a release pending');
  assert.equal((await code).code, 1001);
  assert.equal(guard.stats().storeCallsAbandoned, 1);
  assert.ok(
    lines.some((l) => /store calls still pending/.test(l.msg) && l.pending === 1),
    JSON.stringify(lines),
  );
});

/**
 * A host wss whose asynchronous verifyClient waits until the test lets it answer.
 * @returns {{ wss: WebSocketServer, waiting: () => number, pass: () => void }}
 */
function gatedWss() {
  /** @type {Array<() => void>} */
  const gates = [];
  const wss = new WebSocketServer({
    noServer: true,
    verifyClient: (_info, done) => gates.push(() => done(true)),
  });
  return {
    wss,
    waiting: () => gates.length,
    pass: () => {
      for (const go of gates.splice(0)) go();
    },
  };
}

test('a host wss with an async verifyClient: a lease swept meanwhile closes the socket with 4009 when ws hands it over', async (t) => {
  let now = Date.now();
  const { wss, waiting, pass } = gatedWss();
  const { guard, url } = await startGuard(t, { wss, clock: () => now, sweepMs: 10, heartbeatMs: 60_000, registry: { perUserLimit: 5, ttlMs: 60_000 } });
  const registry = /** @type {LeaseRegistry} */ (/** @type {unknown} */ (guard.store));
  const pending = open(`${url}?user=jo`);
  await waitFor(() => waiting() === 1, 'verifyClient waiting');
  now += 61_000;
  await waitFor(() => registry.stats().expired === 1, 'the sweep expired the lease');
  pass();
  const ws = await pending;
  assert.deepEqual(await closed(ws), { code: 4009, reason: 'lease expired or revoked; reconnect' });
  await waitFor(() => guard.stats().pendingUpgrades === 0, 'upgrade settled');
  assert.equal(guard.stats().socketsOpen, 0);
  assert.equal(guard.stats().closes[4009], 1);
  assertNoLeak(registry);
});

test('a host wss with an async verifyClient: close() meanwhile answers 503 and no socket opens without a lease afterwards', async (t) => {
  const { wss, waiting, pass } = gatedWss();
  const { guard, url } = await startGuard(t, { wss, closeGraceMs: 100, registry: { perUserLimit: 5 } });
  const registry = /** @type {LeaseRegistry} */ (/** @type {unknown} */ (guard.store));
  const pending = connect(`${url}?user=kai`);
  await waitFor(() => waiting() === 1, 'verifyClient waiting');
  await guard.close();
  const r = await pending;
  assert.ok(!r.ok);
  assert.equal(r.status, 503);
  assert.deepEqual(JSON.parse(r.body), { reason: 'shutting-down' });
  assertNoLeak(registry);
  // verifyClient answers after close() resolved: nothing is accepted.
  /** @type {unknown[]} */
  const connections = [];
  wss.on('connection', (ws) => connections.push(ws));
  pass();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(connections.length, 0);
  assert.equal(guard.stats().socketsOpen, 0);
  assertNoLeak(registry);
});

test('bad options throw a LeaseError with code INVALID_OPTION that names the option', () => {
  const userId = () => 'a';
  /** @type {Array<[Record<string, unknown>, RegExp]>} */
  const cases = [
    [{}, /userId\(req\) is required/],
    [{ userId, heartbeatMS: 5_000 }, /unknown option "heartbeatMS"/],
    [{ userId, clock: 5 }, /clock must be a function/],
    [{ userId, logger: 5 }, /logger must be/],
    [{ userId, logger: {} }, /logger must be/],
    [{ userId, wss: {} }, /wss must be a ws WebSocketServer/],
    [{ userId, wss: new WebSocketServer({ port: 0, autoPong: true, noServer: false, server: undefined, host: '127.0.0.1' }) }, /noServer: true/],
    [{ userId, logLevel: 'constructor' }, /logLevel must be one of/],
    [{ userId, logLevel: 'loud' }, /logLevel must be one of/],
    [{ userId, heartbeatMs: 0 }, /heartbeatMs must be an integer/],
    [{ userId, upgradeTimeoutMs: 1.5 }, /upgradeTimeoutMs must be an integer/],
    [{ userId, store: {}, registry: {} }, /either store or registry/],
    [{ userId, store: { acquire() {} } }, /no release\(\) method/],
    [{ userId, store: 5 }, /store must be an object/],
  ];
  for (const [options, message] of cases) {
    assert.throws(
      () => {
        const guard = createLeaseGuard(/** @type {any} */ (options));
        void guard.close();
      },
      (/** @type {any} */ err) => err.name === 'LeaseError' && err.code === 'INVALID_OPTION' && message.test(err.message),
      `${JSON.stringify(Object.keys(options))} ${message}`,
    );
  }
  for (const options of cases) if (options[0].wss instanceof WebSocketServer) options[0].wss.close();
  assert.throws(() => createEventLogger({ level: /** @type {any} */ ('toString') }), { code: 'INVALID_OPTION' });
});

test('userId(req) returning something other than a string or nothing is a 500 identity-error logged at error, not a 401', async (t) => {
  /** @type {any[]} */
  const lines = [];
  const logger = { error: (/** @type {string} */ line) => lines.push(JSON.parse(line)) };
  const { guard, url } = await startGuard(t, { userId: () => /** @type {any} */ (42), logger, logLevel: 'error', registry: { perUserLimit: 5 } });
  const r = await connect(`${url}?user=x`);
  assert.ok(!r.ok);
  assert.equal(r.status, 500);
  assert.deepEqual(JSON.parse(r.body), { reason: 'identity-error' });
  assert.equal(guard.stats().upgrades[500], 1);
  assert.ok(
    lines.some((l) => l.level === 'error' && /must return a string/.test(l.msg) && l.got === 'number'),
    JSON.stringify(lines),
  );
});

test("userId(req): a slow async answer is waited for; a throw (sync or async) is a 500 identity-error; guard.handleUpgrade works from the host's own upgrade handler", async (t) => {
  const server = http.createServer();
  /** @type {Record<string, (req: import('node:http').IncomingMessage) => unknown>} */
  const identities = {
    slow: () => new Promise((resolve) => setTimeout(() => resolve('slow-user'), 50)),
    throws: () => {
      throw new Error('session store down');
    },
    rejects: async () => {
      throw new Error('token check failed');
    },
  };
  const guard = createLeaseGuard({
    userId: (req) => /** @type {any} */ (identities[new URL(req.url ?? '/', 'http://x').searchParams.get('id') ?? '']?.(req) ?? null),
    registry: { perUserLimit: 5 },
    logLevel: 'silent',
  });
  /** @type {Promise<void>[]} */
  const handled = [];
  // The host routes upgrades itself (no attach()).
  server.on('upgrade', (req, socket, head) => handled.push(guard.handleUpgrade(req, socket, head)));
  guard.wss.on('connection', (ws) => ws.on('message', (data) => ws.send(JSON.stringify({ type: 'echo', data: String(data), userId: guard.userIdOf(ws) }))));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  t.after(async () => {
    await guard.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(() => resolve(undefined)));
  });
  const base = `ws://127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (server.address()).port}/any`;

  const ws = await open(`${base}?id=slow`);
  assert.deepEqual(await echo(ws, 'hi'), { type: 'echo', data: 'hi', userId: 'slow-user' });
  for (const id of ['throws', 'rejects']) {
    const r = await connect(`${base}?id=${id}`);
    assert.ok(!r.ok);
    assert.equal(r.status, 500, id);
    assert.deepEqual(JSON.parse(r.body), { reason: 'identity-error' });
  }
  const none = await connect(`${base}?id=nobody`);
  assert.ok(!none.ok);
  assert.equal(none.status, 401);
  assert.deepEqual(JSON.parse(none.body), { reason: 'unauthorized' });
  assert.deepEqual(guard.stats().upgrades, { 101: 1, 400: 0, 401: 1, 403: 0, 429: 0, 500: 2, 503: 0 });
  // handleUpgrade's promise never rejects, and has resolved for every request answered.
  await Promise.all(handled);
  ws.close();
  await closed(ws);
});

test('a refusal with retryAfterMs 0 still sends Retry-After: 1 (a client must not retry in a busy loop)', async (t) => {
  const store = new RewritingStore({ perUserLimit: 5 });
  store.rewrite = (answer) => {
    if (answer.ok) store.registry.release(answer.lease.id);
    return { ok: false, reason: 'user-limit', limit: 5, active: 5, retryAfterMs: 0 };
  };
  const { guard, url } = await startGuard(t, { store });
  const r = await connect(`${url}?user=lu`);
  assert.ok(!r.ok);
  assert.equal(r.status, 429);
  assert.equal(r.headers['retry-after'], '1');
  assert.equal(guard.lastRefusal('lu')?.retryAfterS, 1);
});

test("a lease revoked by another host while ws finishes the upgrade: the socket gets that reason's code (4009 for released), not 4008", async (t) => {
  /** The shared store (helpers.mjs), remembering its last lease. */
  class RecordingStore extends SharedStore {
    lastLeaseId = '';
    /** @param {string} userId @param {{ now?: number }} [o] */
    async acquire(userId, o) {
      const answer = await super.acquire(userId, o);
      if (answer.ok) this.lastLeaseId = answer.lease.id;
      return answer;
    }
  }
  const store = new RecordingStore({ perUserLimit: 5 });
  const { wss, waiting, pass } = gatedWss();
  const { guard, url } = await startGuard(t, { store, wss, heartbeatMs: 60_000 });
  const pending = open(`${url}?user=mo`);
  await waitFor(() => waiting() === 1, 'verifyClient waiting');
  store.removeElsewhere(store.lastLeaseId, 'released');
  pass();
  const ws = await pending;
  assert.equal((await closed(ws)).code, 4009);
  await waitFor(() => guard.stats().socketsOpen === 0, 'forgotten');
  assert.equal(guard.stats().released, 0, 'the revoked lease is not released again');
  assertNoLeak(store.registry);
});

/**
 * A peer that completed the handshake and then never writes again (no close frame back,
 * no pong): `ended` resolves when the server drops its TCP connection.
 * @param {import('node:test').TestContext} t
 * @param {string} wsUrl
 */
async function silentPeer(t, wsUrl) {
  const { socket, status } = await rawHandshake(wsUrl);
  assert.equal(status, 101);
  t.after(() => socket.destroy());
  let ended = false;
  socket.on('close', () => (ended = true));
  socket.on('error', () => {});
  // Read (and drop) what the server sends, so its FIN is seen; never answer.
  socket.resume();
  return { socket, ended: () => ended };
}

test("close(): a peer that never answers the close frame has its TCP connection dropped by the guard, not left to ws's closeTimeout", async (t) => {
  // ws's own closeTimeout is out of reach here: only the guard's terminate can end it.
  const wss = new WebSocketServer({ noServer: true, closeTimeout: 600_000 });
  const { guard, url } = await startGuard(t, { wss, closeGraceMs: 100, heartbeatMs: 60_000, registry: { perUserLimit: 5 } });
  const registry = /** @type {LeaseRegistry} */ (/** @type {unknown} */ (guard.store));
  const peer = await silentPeer(t, `${url}?user=ned`);
  await waitFor(() => guard.stats().socketsOpen === 1, 'accepted');
  await within(guard.close(), 'close()');
  await waitFor(peer.ended, "the silent peer's connection dropped");
  assert.equal(guard.stats().closes[1001], 1);
  assertNoLeak(registry);
});

test('heartbeat: a socket whose close handshake never finishes (evicted, silent peer) is terminated after two ticks', async (t) => {
  const wss = new WebSocketServer({ noServer: true, closeTimeout: 600_000 });
  const { guard, url } = await startGuard(t, { wss, heartbeatMs: 200, registry: { perUserLimit: 1, onLimit: 'evict-oldest' } });
  const registry = /** @type {LeaseRegistry} */ (/** @type {unknown} */ (guard.store));
  const peer = await silentPeer(t, `${url}?user=ola`);
  const next = await open(`${url}?user=ola`);
  assert.equal(guard.stats().closes[4008], 1, 'the silent peer was evicted, not timed out');
  await waitFor(peer.ended, "the evicted silent peer's connection dropped");
  assert.equal(guard.stats().heartbeatTimeouts, 0, 'ended as CLOSING, not as a missed pong');
  next.close();
  await closed(next);
  await waitFor(() => registry.stats().active === 0, 'released');
  assertNoLeak(registry);
});

test('heartbeat: a socket already CLOSED whose close event never reached the guard is reclaimed on the next tick', async (t) => {
  // No client tracking, so the guard's is the only `close` listener the host can lose.
  const wss = new WebSocketServer({ noServer: true, clientTracking: false });
  const { guard, url } = await startGuard(t, { wss, heartbeatMs: 50, registry: { perUserLimit: 5 } });
  const registry = /** @type {LeaseRegistry} */ (/** @type {unknown} */ (guard.store));
  // A host handler that (wrongly) drops every close listener: the guard never hears `close`.
  wss.prependListener('connection', (ws) => ws.removeAllListeners('close'));
  const ws = await open(`${url}?user=pia`);
  await waitFor(() => guard.stats().socketsOpen === 1, 'accepted');
  ws.close();
  await closed(ws);
  await waitFor(() => guard.stats().socketsOpen === 0 && registry.stats().active === 0, 'reclaimed by the heartbeat');
  assertNoLeak(registry);
});

test("messageTouchMs: messages renew the lease at most once per interval of the guard's clock", async (t) => {
  class CountingStore extends AsyncStore {
    touches = 0;
    /** @param {string} id @param {number} [now] */
    touch(id, now) {
      this.touches++;
      return super.touch(id, now);
    }
  }
  const store = new CountingStore({ perUserLimit: 5, ttlMs: 600_000 });
  let now = Date.now();
  const { url } = await startGuard(t, { store, clock: () => now, messageTouchMs: 1_000, heartbeatMs: 60_000 });
  const ws = await open(`${url}?user=quin`);
  for (let i = 0; i < 10; i++) await echo(ws, `m${i}`);
  assert.equal(store.touches, 0, 'no touch within the first interval');
  now += 1_000;
  for (let i = 0; i < 10; i++) await echo(ws, `n${i}`);
  assert.equal(store.touches, 1, 'one touch for the next interval, however many messages');
  ws.close();
  await closed(ws);
  await waitFor(() => store.registry.stats().active === 0, 'released');
  assertNoLeak(store.registry);
});
