// socket-lease/socket.io end to end: a real Socket.IO server on an ephemeral 127.0.0.1
// port, real socket.io-client sockets and raw engine.io peers. Every scenario checks the
// leak detector too: the store never sees an unknown release, so each lease was released
// exactly once.
import { test as nodeTest } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createRequire } from 'node:module';
import { setTimeout as delay } from 'node:timers/promises';
import { Server } from 'socket.io';
import { Manager } from 'socket.io-client';
import { LeaseError, LeaseRegistry } from 'socket-lease';
import { CLOSED_EVENT, CLOSE_REASONS, CloseCodes, LeaseGuard, createLeaseGuard } from 'socket-lease/socket.io';
import { connect, nonReadingPeer, silentPeer, waitFor } from './helpers.mjs';

/** Bounded, so a regression in a disconnect path fails instead of hanging the run. */
const test = (/** @type {string} */ name, /** @type {(t: import('node:test').TestContext) => unknown} */ fn) => nodeTest(name, { timeout: 60_000 }, fn);

/**
 * A Socket.IO server with the guard, torn down after the test (clients, io, guard).
 * @param {import('node:test').TestContext} t
 * @param {{ guard?: Partial<import('socket-lease/socket.io').LeaseGuardOptions>, registry?: import('socket-lease').LeaseRegistryOptions, io?: Partial<import('socket.io').ServerOptions>, before?: (socket: any, next: (err?: Error) => void) => void, after?: (socket: any, next: (err?: Error) => void) => void }} [o]
 */
async function start(t, o = {}) {
  const registry = new LeaseRegistry({ perUserLimit: 2, ttlMs: 60_000, ...o.registry });
  const guard = createLeaseGuard({ userId: (socket) => socket.handshake.auth.user ?? null, store: registry, logLevel: 'silent', ...o.guard });
  const server = http.createServer();
  const io = new Server(server, { transports: ['websocket'], ...o.io });
  if (o.before) io.use(o.before);
  io.use(guard.middleware);
  if (o.after) io.use(o.after);
  io.on('connection', (socket) => {
    socket.on('echo', (data) => {
      if (guard.writable(socket)) socket.emit('echo', { type: 'echo', data, leaseId: guard.leaseIdOf(socket) });
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const url = `http://127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (server.address()).port}`;
  /** @type {Set<import('socket.io-client').Socket>} */
  const clients = new Set();
  t.after(async () => {
    for (const c of clients) c.close();
    await guard.close();
    await new Promise((resolve) => io.close(() => resolve(undefined)));
  });
  return {
    guard,
    registry,
    io,
    url,
    /** @param {unknown} user @param {{ origin?: string }} [opts] */
    connect: (user, opts = {}) => connect(url, { user, track: clients, ...opts }),
    /** @param {unknown} user */
    async open(user) {
      const r = await connect(url, { user, track: clients });
      if (!r.ok) assert.fail(`refused: ${r.message} ${JSON.stringify(r.data)}`);
      return r.client;
    },
  };
}

/** Every acquired lease was given back exactly once (or reclaimed by the store). */
function assertNoLeak(/** @type {LeaseRegistry} */ registry) {
  const s = registry.stats();
  assert.equal(s.active, 0, 'no active lease left');
  assert.equal(s.unknownReleases, 0, 'no lease released twice or released unknown');
  assert.equal(s.released + s.expired + s.evicted, s.acquired, 'every lease accounted for');
}

test('import and require share one instance; option errors are LeaseError INVALID_OPTION', () => {
  const cjs = createRequire(import.meta.url)('socket-lease/socket.io');
  assert.equal(cjs.LeaseGuard, LeaseGuard);
  assert.equal(cjs.createLeaseGuard, createLeaseGuard);
  assert.equal(CLOSED_EVENT, 'socket-lease:closed');
  assert.deepEqual({ ...CloseCodes }, { GOING_AWAY: 1001, MESSAGE_TOO_BIG: 1009, EVICTED: 4008, LEASE_EXPIRED: 4009, BACKPRESSURE: 4010, LIMIT_REACHED: 4029 });
  /** @param {() => unknown} fn @param {RegExp} message */
  const invalid = (fn, message) =>
    assert.throws(fn, (/** @type {any} */ err) => err instanceof LeaseError && err.code === 'INVALID_OPTION' && message.test(err.message));
  invalid(() => createLeaseGuard(/** @type {any} */ ({})), /userId\(socket\) is required/);
  invalid(() => createLeaseGuard(/** @type {any} */ ({ userId: () => 'a', heartbeatMS: 1000 })), /unknown option "heartbeatMS"/);
  invalid(() => createLeaseGuard(/** @type {any} */ ({ userId: () => 'a', maxPayload: 1000 })), /maxHttpBufferSize/);
  invalid(() => createLeaseGuard({ userId: () => 'a', store: new LeaseRegistry(), registry: {} }), /either store or registry/);
  invalid(() => createLeaseGuard({ userId: () => 'a', maxBufferedBytes: 0 }), /maxBufferedBytes must be an integer/);
});

test('every refusal is a connect_error whose data has status, reason, limit, active and retryAfterMs', async (t) => {
  const s = await start(t, {
    guard: {
      allowedOrigins: ['http://good.example'],
      userId: (socket) => {
        const user = socket.handshake.auth.user;
        if (user === 'throws') throw new Error('identity backend down');
        return user ?? null;
      },
      verify: (_socket, user) => user !== 'banned',
    },
    registry: { perUserLimit: 2, ttlMs: 20_000 },
  });
  /** @param {import('./helpers.mjs').ConnectResult} r */
  const refusal = (r) => {
    assert.ok(!r.ok, 'refused');
    assert.equal(r.message, r.data.reason, 'the message is the reason');
    return r.data;
  };
  const none = { limit: null, active: null, retryAfterMs: null };
  assert.deepEqual(refusal(await s.connect(undefined)), { status: 401, reason: 'unauthorized', ...none });
  assert.deepEqual(refusal(await s.connect('u'.repeat(300))), { status: 400, reason: 'invalid-user-id', ...none });
  assert.deepEqual(refusal(await s.connect('alice', { origin: 'http://evil.example' })), { status: 403, reason: 'origin-not-allowed', ...none });
  assert.deepEqual(refusal(await s.connect('banned')), { status: 403, reason: 'forbidden', ...none });
  assert.deepEqual(refusal(await s.connect('throws')), { status: 500, reason: 'identity-error', ...none });
  assert.deepEqual(refusal(await s.connect(42)), { status: 500, reason: 'identity-error', ...none }, 'a user that is not a string is a host bug');

  await s.open('alice');
  await s.open('alice');
  const full = refusal(await s.connect('alice', { origin: 'http://good.example' }));
  assert.equal(full.status, 429);
  assert.equal(full.reason, 'user-limit');
  assert.equal(full.limit, 2);
  assert.equal(full.active, 2);
  // The store's own answer: when the oldest lease expires unless renewed (ttl 20 s).
  assert.ok(full.retryAfterMs > 15_000 && full.retryAfterMs <= 20_000, `retryAfterMs ${full.retryAfterMs}`);
  assert.equal(s.guard.lastRefusal('alice')?.retryAfterMs, full.retryAfterMs, 'the same answer as lastRefusal');

  await s.guard.close();
  assert.deepEqual(refusal(await s.connect('bob')), { status: 503, reason: 'shutting-down', limit: null, active: null, retryAfterMs: 1000 });
  assert.deepEqual(s.guard.stats().refusals, {
    unauthorized: 1,
    'invalid-user-id': 1,
    'origin-not-allowed': 1,
    forbidden: 1,
    'identity-error': 2,
    'user-limit': 1,
    'shutting-down': 1,
  });
  assertNoLeak(s.registry);
});

test('evict-oldest: the oldest socket is told 4008 with the reason, then disconnected; the newer one is served', async (t) => {
  const s = await start(t, { registry: { perUserLimit: 1, onLimit: 'evict-oldest' } });
  const old = await s.open('alice');
  const oldId = (await old.echo('old')).leaseId;
  const newer = await s.open('alice');
  assert.deepEqual(await old.told, { code: 4008, reason: CLOSE_REASONS[4008] });
  assert.equal(await old.disconnected, 'io server disconnect', 'socket.io-client does not reconnect from this by itself');
  const reply = await newer.echo('newer');
  assert.notEqual(reply.leaseId, oldId);
  assert.equal(s.registry.stats().active, 1);
  assert.equal(s.guard.stats().closes[4008], 1);
  newer.socket.disconnect();
  await waitFor(() => s.registry.stats().active === 0, 'the newer lease to be released');
  assertNoLeak(s.registry);
});

test('released on disconnect whatever the reason: client, server, transport close, ping timeout, io.close()', async (t) => {
  const s = await start(t, { registry: { perUserLimit: 5 }, io: { pingInterval: 200, pingTimeout: 200 } });
  const released = () => s.guard.stats().released;

  const byClient = await s.open('a');
  byClient.socket.disconnect();
  assert.equal(await byClient.disconnected, 'io client disconnect');
  await waitFor(() => released() === 1, 'the release after a client disconnect');

  const byServer = await s.open('a');
  const [serverSide] = s.guard.sockets();
  serverSide.disconnect();
  assert.equal(await byServer.disconnected, 'io server disconnect');
  assert.equal(released(), 2, 'released synchronously with the server disconnect');

  const dropped = await s.open('a');
  /** @type {any} */ (dropped.socket.io.engine.transport).ws._socket.destroy();
  assert.equal(await dropped.disconnected, 'transport close');
  await waitFor(() => released() === 3, 'the release after a TCP drop');

  // A peer whose engine stops answering pings: engine.io closes it after pingInterval +
  // pingTimeout, and its disconnect releases the lease. No ping of the guard's own.
  const silent = /** @type {any} */ (await silentPeer(s.url, 'a'));
  const since = Date.now();
  assert.equal(s.registry.stats().active, 1);
  await silent.closed;
  await waitFor(() => released() === 4, 'the release after a ping timeout');
  const took = Date.now() - since;
  assert.ok(took < 2000, `engine.io's ping timeout reclaimed the silent peer in ${took} ms`);
  assert.equal(s.guard.stats().heartbeatTimeouts, 0, "engine.io's heartbeat, not the lifecycle's");

  const shutdown = await Promise.all([s.open('a'), s.open('b')]);
  await new Promise((resolve) => s.io.close(() => resolve(undefined)));
  assert.deepEqual(await Promise.all(shutdown.map((c) => c.disconnected)), ['transport close', 'transport close']);
  assert.equal(released(), 6, 'io.close() without guard.close() releases through disconnect');
  assertNoLeak(s.registry);
});

test("the lease is renewed by engine.io's pongs; without them it expires and the socket is told 4009", async (t) => {
  // ttl 1 s, pings every 200 ms: an idle but live socket outlives several TTLs.
  const live = await start(t, { registry: { ttlMs: 1000 }, io: { pingInterval: 200, pingTimeout: 400 }, guard: { sweepMs: 100, messageTouchMs: false } });
  const idle = await live.open('alice');
  await delay(3000);
  assert.ok(idle.socket.connected, 'still connected after three TTLs without a message');
  assert.equal(live.registry.stats().expired, 0);
  assert.equal(live.registry.stats().active, 1);

  // Pings every 10 s: nothing renews the lease within its TTL, the sweep reclaims it.
  const quiet = await start(t, { registry: { ttlMs: 1000 }, io: { pingInterval: 10_000, pingTimeout: 5000 }, guard: { sweepMs: 100, messageTouchMs: false } });
  const unrenewed = await quiet.open('alice');
  assert.deepEqual(await unrenewed.told, { code: 4009, reason: CLOSE_REASONS[4009] });
  assert.equal(quiet.registry.stats().active, 0);
  assert.equal(quiet.registry.stats().unknownReleases, 0);
});

test('a later middleware that refuses: its connect_error reaches the client, nothing is evicted, the lease goes back', async (t) => {
  const s = await start(t, {
    registry: { perUserLimit: 1, onLimit: 'evict-oldest' },
    after: (socket, next) => (socket.handshake.auth.room === 'closed' ? next(Object.assign(new Error('room closed'), { data: { room: 'closed' } })) : next()),
  });
  const held = await s.open('alice');
  const heldId = (await held.echo('held')).leaseId;
  const refused = await connect(s.url, { auth: { user: 'alice', room: 'closed' } });
  assert.ok(!refused.ok);
  assert.equal(refused.message, 'room closed');
  // An eviction made for the refused socket would have reached `held` before this echo.
  assert.equal((await held.echo('still here')).leaseId, heldId);
  assert.equal(s.registry.stats().evicted, 0);
  await waitFor(() => s.guard.stats().cancelled === 1, "the refused socket's admission to be cancelled");
  assert.equal(s.registry.stats().active, 1);
  held.socket.disconnect();
  await waitFor(() => s.registry.stats().active === 0, 'the release');
  assertNoLeak(s.registry);
});

test('a later middleware slower than upgradeTimeoutMs: the admission is given back, and the socket that connects after all is disconnected, never served without a lease', async (t) => {
  const s = await start(t, {
    guard: { upgradeTimeoutMs: 200 },
    after: (socket, next) => void (socket.handshake.auth.slow ? delay(600).then(() => next()) : next()),
  });
  const r = await connect(s.url, { auth: { user: 'slow', slow: true } });
  // Before the fix the socket connected here and was served with no lease at all.
  assert.ok(r.ok, 'Socket.IO connects it once the slow middleware calls next()');
  const told = await r.client.told;
  assert.equal(told?.code, CloseCodes.LEASE_EXPIRED);
  assert.equal(s.guard.stats().upgradeTimeouts, 1);
  assert.equal(s.guard.stats().cancelled, 1);
  assert.equal(s.registry.stats().active, 0);
  assertNoLeak(s.registry);
});

test('a client that never reads is disconnected with 4010 once maxBufferedBytes wait unsent, its TCP connection dropped', async (t) => {
  const s = await start(t, { guard: { maxBufferedBytes: 65_536, closeGraceMs: 500 }, io: { maxHttpBufferSize: 1_000_000 } });
  const bystander = await s.open('bob');
  const peer = /** @type {any} */ (await nonReadingPeer(s.url, 'alice'));
  await waitFor(() => s.registry.stats().active === 2, "the peer's lease");
  let gone = false;
  peer.socket.once('close', () => (gone = true));
  const big = 'x'.repeat(16_384);
  for (let i = 0; i < 2000 && !gone && s.guard.stats().closes[4010] === 0; i++) {
    peer.send(`42${JSON.stringify(['echo', big])}`);
    if (i % 16 === 15) await delay(5);
  }
  await waitFor(() => s.guard.stats().closes[4010] === 1, 'the 4010 close');
  peer.socket.once('error', () => (gone = true));
  // A peer that does not read learns that its connection is gone by writing.
  await waitFor(() => gone || void peer.send('42["echo","?"]'), 'the TCP connection to be dropped (closeGraceMs 500)', 5000);
  assert.equal(s.registry.stats().active, 1, "the peer's lease released");
  assert.equal((await bystander.echo('fine')).data, 'fine', 'the server still serves others');
  bystander.socket.disconnect();
  await waitFor(() => s.registry.stats().active === 0, 'the release');
  assertNoLeak(s.registry);
});

test('a namespace disconnect over a shared engine connection leaves no engine listener behind', async (t) => {
  const s = await start(t);
  s.io.of('/other').on('connection', () => {});
  const manager = new Manager(s.url, { transports: ['websocket'], reconnection: false, forceNew: true });
  t.after(() => manager._close());
  const other = manager.socket('/other');
  await new Promise((resolve) => other.once('connect', resolve));
  const engine = /** @type {any} */ (Object.values(/** @type {any} */ (s.io.engine).clients)[0]);
  const before = engine.listenerCount('heartbeat') + engine.listenerCount('packetCreate');
  for (let i = 0; i < 5; i++) {
    const main = manager.socket('/', { auth: { user: 'alice' } });
    await new Promise((resolve) => main.once('connect', resolve));
    assert.equal(s.registry.stats().active, 1);
    main.disconnect();
    await waitFor(() => s.registry.stats().active === 0, 'the release');
  }
  assert.equal(engine.listenerCount('heartbeat') + engine.listenerCount('packetCreate'), before);
  assert.ok(other.connected, 'the other namespace is untouched');
  assertNoLeak(s.registry);
});

test('two guarded namespaces over one engine connection: one set of engine listeners, each lease renewed by its pongs until its own socket goes', async (t) => {
  const s = await start(t, { io: { pingInterval: 100, pingTimeout: 1000 } });
  const chat = s.io.of('/chat');
  chat.use(s.guard.middleware);
  chat.on('connection', () => {});
  const manager = new Manager(s.url, { transports: ['websocket'], reconnection: false, forceNew: true });
  t.after(() => manager._close());
  const main = manager.socket('/', { auth: { user: 'alice' } });
  await new Promise((resolve) => main.once('connect', resolve));
  const engine = /** @type {any} */ (Object.values(/** @type {any} */ (s.io.engine).clients)[0]);
  const perEngine = engine.listenerCount('heartbeat');
  const room = manager.socket('/chat', { auth: { user: 'alice' } });
  await new Promise((resolve) => room.once('connect', resolve));
  assert.equal(s.registry.stats().active, 2);
  assert.equal(engine.listenerCount('heartbeat'), perEngine, 'the second socket adds no engine listener');
  main.disconnect();
  await waitFor(() => s.registry.stats().active === 1, "the '/' lease to be released");
  const [held] = [...s.guard.sockets()];
  const id = /** @type {string} */ (s.guard.leaseIdOf(held));
  const expires = /** @type {any} */ (s.registry.getLease(id)).expiresAt;
  await waitFor(() => /** @type {any} */ (s.registry.getLease(id)).expiresAt > expires, "the '/chat' lease to be renewed by a pong");
  room.disconnect();
  await waitFor(() => s.registry.stats().active === 0, 'the release');
  assert.equal(engine.listenerCount('heartbeat'), perEngine - 1, 'the engine listeners went with the last socket');
  assertNoLeak(s.registry);
});

test("an eviction over a shared engine connection disconnects the evicted namespace's socket only: the socket that evicted it stays", async (t) => {
  const s = await start(t, { registry: { perUserLimit: 1, onLimit: 'evict-oldest' } });
  const chat = s.io.of('/chat');
  chat.use(s.guard.middleware);
  chat.on('connection', (socket) => socket.on('echo', (data) => socket.emit('echo', { data })));
  const manager = new Manager(s.url, { transports: ['websocket'], reconnection: false, forceNew: true });
  t.after(() => manager._close());
  const main = manager.socket('/', { auth: { user: 'alice' } });
  /** @type {any} */
  let told = null;
  main.on(CLOSED_EVENT, (d) => (told = d));
  await new Promise((resolve) => main.once('connect', resolve));
  const room = manager.socket('/chat', { auth: { user: 'alice' } });
  await new Promise((resolve) => room.once('connect', resolve));
  await waitFor(() => told !== null, "the '/' socket to be told");
  assert.equal(told.code, CloseCodes.EVICTED);
  await waitFor(() => !main.connected, "the '/' socket to be disconnected");
  // The evicting socket shares the engine connection: it must still be served.
  const reply = await new Promise((resolve, reject) => {
    room.once('echo', resolve);
    room.once('disconnect', (reason) => reject(new Error(`'/chat' disconnected: ${reason}`)));
    room.emit('echo', 'still here');
  });
  assert.deepEqual(reply, { data: 'still here' });
  assert.equal(s.registry.stats().active, 1);
  room.disconnect();
  await waitFor(() => s.registry.stats().active === 0, 'the release');
  assertNoLeak(s.registry);
});

test('connectionStateRecovery (skipMiddlewares): a recovered socket is admitted, with a lease of its own, or refused when another took the slot', async (t) => {
  const s = await start(t, { io: { connectionStateRecovery: { maxDisconnectionDuration: 10_000, skipMiddlewares: true } }, registry: { perUserLimit: 1 } });
  const { io: ioClient } = await import('socket.io-client');
  /** @param {string} user */
  const recovering = (user) => {
    const c = ioClient(s.url, { transports: ['websocket'], auth: { user }, reconnectionDelay: 50, reconnectionDelayMax: 50, forceNew: true });
    t.after(() => c.close());
    return c;
  };
  const a = recovering('rita');
  await new Promise((resolve) => a.once('connect', resolve));
  const firstId = s.guard.leaseIdOf([...s.guard.sockets()][0]);
  // An event from the server gives the client the offset it recovers from.
  await new Promise((resolve) => {
    a.once('echo', resolve);
    a.emit('echo', 'offset');
  });
  // The transport drops (not a disconnect the client asked for): it reconnects and Socket.IO
  // restores the socket without running the middlewares.
  /** @type {any} */ (a.io).engine.close();
  await new Promise((resolve) => a.once('connect', resolve));
  assert.equal(a.recovered, true, 'Socket.IO recovered the socket');
  await waitFor(() => s.registry.stats().active === 1 && s.registry.stats().released === 1, 'the old lease released, a new one held');
  const [served] = [...s.guard.sockets()];
  assert.match(String(s.guard.leaseIdOf(served)), /^conn_/);
  assert.notEqual(s.guard.leaseIdOf(served), firstId);
  // Recovered while another socket of the user holds the only slot: refused, disconnected.
  /** @type {any} */
  let told = null;
  a.on(CLOSED_EVENT, (d) => (told = d));
  /** @type {any} */ (a.io).engine.close();
  const b = await s.open('rita');
  await waitFor(() => told !== null, 'the recovered socket to be told');
  assert.equal(told.code, CloseCodes.LIMIT_REACHED);
  assert.equal(told.refusal.status, 429);
  assert.equal(told.refusal.reason, 'user-limit');
  assert.equal(typeof told.refusal.retryAfterMs, 'number');
  assert.equal((await b.echo('mine')).data, 'mine');
  assert.equal(s.registry.stats().active, 1);
  b.socket.disconnect();
  a.close();
  await waitFor(() => s.registry.stats().active === 0, 'the release');
  assertNoLeak(s.registry);
});

test("an asynchronous store committing an eviction: the socket's events wait until its lease is committed", async (t) => {
  // Each store call answers 30 ms later, as a remote store would.
  const registry = new LeaseRegistry({ perUserLimit: 1, onLimit: 'evict-oldest' });
  const later = (/** @type {() => unknown} */ fn) => new Promise((resolve) => setTimeout(() => resolve(fn()), 30));
  const store = {
    acquire: (/** @type {string} */ u, /** @type {any} */ o) => later(() => registry.acquire(u, o)),
    release: (/** @type {string} */ id) => later(() => registry.release(id)),
    touch: (/** @type {string} */ id) => later(() => registry.touch(id)),
    sweep: () => later(() => registry.sweep()),
  };
  const s = await start(t, { guard: { store } });
  const old = await s.open('alice');
  const oldId = (await old.echo('old')).leaseId;
  const newer = await s.open('alice');
  // Emitted at once after the connect: answered only once the eviction is committed, with
  // the new lease's id.
  const reply = await newer.echo('first');
  assert.match(reply.leaseId, /^conn_/);
  assert.notEqual(reply.leaseId, oldId);
  assert.equal((await old.told)?.code, 4008);
  newer.socket.disconnect();
  await waitFor(() => registry.stats().active === 0, 'the release');
  assertNoLeak(registry);
});
