// The Node host against the first things an attacker tries: huge frames, a client that
// never reads, forged Origins riding a cookie, verifyClient refusals under evict-oldest,
// lone surrogates in user ids, refusal floods in the log, and the admin routes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket, WebSocketServer } from 'ws';
import { createLeaseGuard } from 'socket-lease/node';
import { DEFAULT_MAX_PAYLOAD } from 'socket-lease/lifecycle';
import { closed, connect, echo, getText, memoryLogger, open, startDemo, startGuard, waitFor } from './helpers.mjs';

/** @param {import('../../../examples/node/demo-server.mjs').DemoServer} demo */
const registryOf = (demo) => /** @type {import('socket-lease').LeaseRegistry} */ (/** @type {unknown} */ (demo.guard.store));

test('a 90 MB frame is refused with 1009 before it is buffered; the host keeps serving, and a 2 MB frame gets 1009 too', async (t) => {
  const demo = await startDemo(t, { limit: 5, heartbeatMs: 60_000 });
  const other = await open(`${demo.wsUrl}?user=bystander`);
  for (const size of [90_000_000, 2_000_000, DEFAULT_MAX_PAYLOAD + 1]) {
    const ws = await open(`${demo.wsUrl}?user=mallory`);
    const code = closed(ws);
    // Only the frame header and a first chunk are sent: the server must refuse on the
    // announced length, not after buffering 90 MB.
    ws.send(Buffer.alloc(size, 1), { binary: false });
    assert.equal((await code).code, 1009, `a frame of ${size} bytes`);
  }
  // A frame at the limit is served.
  const ok = await open(`${demo.wsUrl}?user=mallory`);
  const atLimit = 'x'.repeat(DEFAULT_MAX_PAYLOAD - 100);
  assert.equal((await echo(ok, atLimit)).data, atLimit);
  assert.equal((await echo(other, 'still here')).data, 'still here');
  assert.equal(registryOf(demo).userStats('mallory').active, 1, 'the refused sockets gave their leases back');
  ok.close();
  other.close();
  await Promise.all([closed(ok), closed(other)]);
  await waitFor(() => registryOf(demo).stats().active === 0, 'all released');
  const health = JSON.parse((await getText(`${demo.url}/healthz`)).text);
  assert.equal(health.status, 'ok');
});

test('a client that never reads is cut off (4010) long before it has sent 64 MB, its lease released, and the host keeps serving', async (t) => {
  const maxBufferedBytes = 256 * 1024;
  const demo = await startDemo(t, { limit: 5, heartbeatMs: 60_000, maxBufferedBytes });
  const ws = await open(`${demo.wsUrl}?user=sloth`);
  // Stop reading: the kernel buffers fill, then every echo queues in the server.
  /** @type {net.Socket} */ (/** @type {any} */ (ws)._socket).pause();
  const message = 'y'.repeat(32 * 1024);
  let sent = 0;
  // Far more than the bound (and than loopback's socket buffers: a few MB), unless the
  // server cuts the client off first.
  while (demo.guard.stats().closes[4010] === 0 && sent < 64 * 1024 * 1024) {
    ws.send(message);
    sent += message.length;
    // Let the server read what was sent (and the client's own buffer drain).
    if (sent % (1024 * 1024) === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.ok(sent < 64 * 1024 * 1024, 'cut off before the client sent 64 MB');
  // The connection ends: the client sees it once it reads again (a paused socket holds
  // back its end-of-stream).
  const ended = new Promise((resolve) => ws.once('close', resolve));
  /** @type {net.Socket} */ (/** @type {any} */ (ws)._socket).resume();
  await ended;
  await waitFor(() => registryOf(demo).stats().active === 0, 'lease released');
  const s = demo.guard.stats();
  assert.equal(s.closes[4010], 1, 'closed for backpressure');
  assert.equal(s.socketsOpen, 0);
  // The host still serves.
  const next = await open(`${demo.wsUrl}?user=sloth`);
  assert.equal((await echo(next, 'hi')).data, 'hi');
  next.close();
  await closed(next);
});

test('allowedOrigins: a forged Origin is a 403 before any quota work and evicts nothing under evict-oldest; an allowed or absent Origin connects', async (t) => {
  const demo = await startDemo(t, { limit: 2, policy: 'evict-oldest', heartbeatMs: 60_000, allowedOrigins: ['https://app.example'] });
  const registry = registryOf(demo);
  const a = await open(`${demo.wsUrl}?user=carol`, { origin: 'https://app.example' });
  const b = await open(`${demo.wsUrl}?user=carol`);
  const acquired = registry.stats().acquired;
  for (const origin of ['https://evil.example', 'https://app.example.evil.example', 'null', 'http://app.example']) {
    const r = await connect(`${demo.wsUrl}?user=carol`, { origin });
    assert.ok(!r.ok, origin);
    assert.equal(r.status, 403, origin);
    assert.deepEqual(JSON.parse(r.body), { reason: 'origin-not-allowed' });
  }
  assert.equal(registry.stats().acquired, acquired, 'no quota work for a refused origin');
  assert.equal(registry.stats().evicted, 0);
  assert.equal((await echo(a, 'a')).data, 'a');
  assert.equal((await echo(b, 'b')).data, 'b');
  assert.equal(demo.guard.stats().refusals['origin-not-allowed'], 4);
  // An allowed origin at the limit takes the oldest slot, as the policy says.
  const evicted = closed(a);
  const c = await open(`${demo.wsUrl}?user=carol`, { origin: 'https://app.example' });
  assert.equal((await evicted).code, 4008);
  for (const ws of [b, c]) ws.close();
  await Promise.all([closed(b), closed(c)]);
  await waitFor(() => registry.stats().active === 0, 'all released');
});

test('a host verifyClient that refuses evicts nothing under evict-oldest and leaves no lease: the eviction is committed only after it passed', async (t) => {
  let refuse = true;
  const wss = new WebSocketServer({ noServer: true, verifyClient: (_info, done) => setImmediate(() => done(!refuse, 403)) });
  const { guard, url } = await startGuard(t, { wss, registry: { perUserLimit: 1, onLimit: 'evict-oldest' }, heartbeatMs: 60_000 }, { echo: false });
  wss.on('connection', (ws) => ws.on('message', (data) => ws.send(String(data))));
  const registry = /** @type {import('socket-lease').LeaseRegistry} */ (/** @type {unknown} */ (guard.store));
  refuse = false;
  const live = await open(`${url}?user=dan`);
  refuse = true;
  for (let i = 0; i < 20; i++) {
    const r = await connect(`${url}?user=dan`);
    assert.ok(!r.ok);
    assert.equal(r.status, 403);
  }
  await waitFor(() => guard.stats().cancelled === 20, 'twenty admissions given back');
  assert.equal(registry.stats().evicted, 0, 'the live socket was never evicted');
  assert.equal(registry.stats().acquired, 1, 'phase one took no lease at the limit');
  assert.equal(registry.userStats('dan').active, 1);
  const reply = new Promise((resolve) => live.once('message', (d) => resolve(String(d))));
  live.send('ping');
  assert.equal(await reply, 'ping');
  refuse = false;
  const evicted = closed(live);
  const next = await open(`${url}?user=dan`);
  assert.equal((await evicted).code, 4008);
  next.close();
  await closed(next);
  await waitFor(() => registry.stats().active === 0, 'released');
});

test('user ids with lone surrogates are 400 invalid-user-id, never folded into one quota with U+FFFD', async (t) => {
  const demo = await startDemo(t, { limit: 1, heartbeatMs: 60_000 });
  // A JSON claim can carry a lone surrogate; the demo reads the user from the query, so
  // the test goes through a guard whose identity returns the raw strings.
  const fffd = await open(`${demo.wsUrl}?user=${encodeURIComponent('\ufffd')}`);
  const { guard, url } = await startGuard(t, {
    userId: (req) => /** @type {string} */ (req.headers['x-user-json'] ? JSON.parse(String(req.headers['x-user-json'])) : null),
    registry: { perUserLimit: 1 },
  });
  for (const claim of ['"\\ud800"', '"\\udbff"', '"\\udc00"', '"a\\ud800b"']) {
    const r = await connect(url, { headers: { 'x-user-json': claim } });
    assert.ok(!r.ok, claim);
    assert.equal(r.status, 400, claim);
    assert.equal(JSON.parse(r.body).reason, 'invalid-user-id');
  }
  // U+FFFD itself and an astral character are ordinary, distinct users.
  const real = await open(url, { headers: { 'x-user-json': '"\\ufffd"' } });
  const emoji = await open(url, { headers: { 'x-user-json': '"\\ud83d\\ude00"' } });
  const store = /** @type {import('socket-lease').LeaseRegistry} */ (/** @type {unknown} */ (guard.store));
  assert.equal(store.stats().users, 2);
  for (const ws of [real, emoji, fffd]) ws.close();
  await Promise.all([closed(real), closed(emoji), closed(fffd)]);
});

test('300 refused upgrades at the limit: every one counted, at most a few log lines, then one "suppressed N" summary', async (t) => {
  const { logger, lines } = memoryLogger();
  const demo = await startDemo(t, { limit: 1, heartbeatMs: 60_000, logger, logLevel: 'debug', guard: { logIntervalMs: 60_000, logBurst: 3 } });
  const ws = await open(`${demo.wsUrl}?user=loop`);
  for (let i = 0; i < 300; i++) {
    const r = await connect(`${demo.wsUrl}?user=loop`);
    assert.equal(!r.ok && r.status, 429);
  }
  const s = demo.guard.stats();
  assert.equal(s.upgrades[429], 300);
  assert.equal(s.refusals['user-limit'], 300);
  const m = (await getText(`${demo.url}/metrics`)).text;
  assert.match(m, /^socket_lease_refusals_total\{reason="user-limit"\} 300$/m);
  assert.match(m, /^socket_lease_rejected_total\{reason="user-limit"\} 300$/m);
  const refusalLines = lines.filter((l) => l.msg === 'upgrade refused');
  const eventLines = lines.filter((l) => l.msg === 'socket-lease event' && l.event === 'rejected');
  assert.equal(refusalLines.length, 3, "the lifecycle's own refusal lines: the burst only");
  assert.equal(eventLines.length, 3, "the core's rejected events: the burst only");
  assert.ok(s.logLinesSuppressed >= 297);
  ws.close();
  await closed(ws);
  // close() writes the summaries of the intervals still open.
  await demo.close();
  const summaries = lines.filter((l) => /suppressed \d+ similar lines/.test(l.msg));
  assert.ok(
    summaries.some((l) => l.suppressed === 297 && l.key === 'refused:user-limit'),
    JSON.stringify(summaries),
  );
});

test('SOCKET_LEASE_ADMIN_TOKEN: /metrics and /api/users/:id need the bearer token; /healthz and the page stay open', async (t) => {
  const demo = await startDemo(t, { adminToken: 'tok-123' });
  for (const path of ['/metrics', '/api/users/alice']) {
    const plain = await fetch(`${demo.url}${path}`);
    assert.equal(plain.status, 401, path);
    assert.match(plain.headers.get('www-authenticate') ?? '', /^Bearer/);
    const wrong = await fetch(`${demo.url}${path}`, { headers: { authorization: 'Bearer tok-12' } });
    assert.equal(wrong.status, 401, path);
    const right = await fetch(`${demo.url}${path}`, { headers: { authorization: 'Bearer tok-123' } });
    assert.equal(right.status, 200, path);
  }
  assert.equal((await fetch(`${demo.url}/healthz`)).status, 200);
  assert.equal((await fetch(`${demo.url}/`)).status, 200);
});

test("maxPayload is an option of the guard's own ws server only, and checked", () => {
  const userId = () => 'u';
  assert.throws(() => createLeaseGuard({ userId, maxPayload: 0 }), { code: 'INVALID_OPTION' });
  assert.throws(() => createLeaseGuard({ userId, wss: new WebSocketServer({ noServer: true }), maxPayload: 10 }), {
    code: 'INVALID_OPTION',
    message: /maxPayload/,
  });
  assert.throws(() => createLeaseGuard({ userId, allowedOrigins: ['https://a.example/path'] }), { code: 'INVALID_OPTION', message: /allowedOrigins/ });
  assert.throws(() => createLeaseGuard({ userId, allowedOrigins: /** @type {any} */ ('https://a.example') }), { code: 'INVALID_OPTION' });
  const guard = createLeaseGuard({ userId, maxPayload: 1234, logLevel: 'silent' });
  assert.equal(/** @type {any} */ (guard.wss).options.maxPayload, 1234);
  void guard.close();
});

// Keep WebSocket referenced for the type of sockets above.
void WebSocket;

test('a lease an acquire reclaims lazily (expired, not yet swept) has its socket closed at once with 4009, not at the next sweep', async (t) => {
  let now = Date.now();
  const demo = await startDemo(t, { limit: 2, ttlMs: 1_000, heartbeatMs: 60_000, guard: { clock: () => now, sweepMs: 600_000 } });
  const stale = await open(`${demo.wsUrl}?user=lazy`);
  const staleId = demo.guard.leaseIdOf([...demo.guard.sockets()][0]);
  now += 5_000; // past the TTL; no sweep will run during the test
  const staleClosed = closed(stale);
  const fresh = await open(`${demo.wsUrl}?user=lazy`);
  const { code, reason } = await staleClosed;
  assert.equal(code, 4009);
  assert.match(reason, /expired/);
  assert.equal(demo.guard.stats().closes[4009], 1);
  const registry = registryOf(demo);
  assert.equal(registry.getLease(/** @type {string} */ (staleId)), null, 'the stale lease is gone from the store');
  assert.equal(registry.stats().expired, 1);
  assert.equal(registry.stats().unknownReleases, 0, 'the reclaimed lease was not released again');
  assert.equal((await echo(fresh, 'hi')).data, 'hi');
  fresh.close();
  await closed(fresh);
  await waitFor(() => registry.stats().active === 0, 'released');
});
