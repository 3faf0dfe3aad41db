// The ws guard end to end: real demo servers on ephemeral 127.0.0.1 ports, real `ws`
// clients and raw TCP peers. Every scenario also checks the leak detector: the store
// never sees an unknown release, so each lease was released exactly once.
import { test as nodeTest } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { Writable } from 'node:stream';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { WebSocketServer } from 'ws';
import { LeaseRegistry } from 'socket-lease';
import { CloseCodes, createLeaseGuard, createEventLogger } from 'socket-lease/node';
import { AsyncStore, closed, connect, echo, getText, memoryLogger, metric, open, rawHandshake, run, startDemo, startGuard, waitFor } from './helpers.mjs';

/**
 * Every test is bounded, so a regression in a close or echo path fails instead of hanging
 * the run. The bound is far above any test's normal duration (a few seconds).
 * @param {string} name
 * @param {(t: import('node:test').TestContext) => unknown} fn
 */
const test = (name, fn) => nodeTest(name, { timeout: 60_000 }, fn);

/** @param {{ guard: import('socket-lease/node').LeaseGuard }} demo */
const registryOf = (demo) => /** @type {LeaseRegistry} */ (/** @type {unknown} */ (demo.guard.store));

/** Every acquired lease was given back exactly once (or reclaimed by the store). */
function assertNoLeak(/** @type {LeaseRegistry} */ registry) {
  const s = registry.stats();
  assert.equal(s.active, 0, 'no active lease left');
  assert.equal(s.unknownReleases, 0, 'no lease released twice or released unknown');
  assert.equal(s.released + s.expired + s.evicted, s.acquired, 'every lease accounted for');
}

/** A clock that moves forward one millisecond on every read, so "oldest" never ties. */
function steppingClock() {
  let now = Date.now();
  const clock = () => ++now;
  clock.jump = (/** @type {number} */ ms) => (now += ms);
  return clock;
}

test('the package exports the guard for import and require, one instance', () => {
  const require = createRequire(import.meta.url);
  const cjs = require('socket-lease/node');
  assert.equal(cjs.createLeaseGuard, createLeaseGuard);
  assert.deepEqual({ ...CloseCodes }, { GOING_AWAY: 1001, MESSAGE_TOO_BIG: 1009, EVICTED: 4008, LEASE_EXPIRED: 4009, BACKPRESSURE: 4010, LIMIT_REACHED: 4029 });
  assert.throws(() => createLeaseGuard(/** @type {any} */ ({})), /userId\(req\) is required/);
  assert.throws(() => createLeaseGuard({ userId: () => 'a', heartbeatMs: 0 }), /heartbeatMs must be an integer/);
  assert.throws(() => createLeaseGuard({ userId: () => 'a', logLevel: /** @type {any} */ ('loud') }), /logLevel must be one of/);
});

test('the incident: limit 5, 1,000 sequential connect/send/echo/close cycles, zero rejections, zero leases left', async (t) => {
  const demo = await startDemo(t, { limit: 5 });
  const registry = registryOf(demo);
  let rejections = 0;
  for (let i = 0; i < 1000; i++) {
    const r = await connect(`${demo.wsUrl}?user=alice`);
    if (!r.ok) {
      rejections++;
      continue;
    }
    const reply = await echo(r.ws, `message ${i}`);
    assert.equal(reply.type, 'echo');
    assert.equal(reply.data, `message ${i}`);
    assert.match(reply.leaseId, /^conn_[0-9a-z]{26}$/);
    r.ws.close(1000);
    await closed(r.ws);
  }
  assert.equal(rejections, 0);
  await waitFor(() => registry.stats().active === 0, 'every lease released');
  assert.equal(registry.stats().acquired, 1000);
  assert.equal(registry.stats().released, 1000);
  assertNoLeak(registry);
  assert.equal(demo.guard.stats().socketsOpen, 0);
});

test('6 concurrent sockets with limit 5: exactly one HTTP 429 with Retry-After and a JSON reason', async (t) => {
  const demo = await startDemo(t, { limit: 5, ttlMs: 60_000 });
  const results = await Promise.all(Array.from({ length: 6 }, () => connect(`${demo.wsUrl}?user=bob`)));
  const refused = results.filter((r) => !r.ok);
  assert.equal(refused.length, 1);
  const [r] = refused;
  assert.ok(!r.ok);
  assert.equal(r.status, 429);
  assert.match(String(r.headers['retry-after']), /^[1-9]\d*$/);
  assert.ok(Number(r.headers['retry-after']) <= 60, 'no later than the oldest lease can expire');
  assert.deepEqual(JSON.parse(r.body), { reason: 'user-limit', limit: 5, active: 5 });
  // No WebSocket was created for the refused request.
  assert.equal(demo.guard.stats().socketsOpen, 5);
  assert.equal(demo.guard.stats().upgrades[429], 1);
  for (const o of results) if (o.ok) o.ws.close();
  await waitFor(() => registryOf(demo).stats().active === 0, 'all released');
  assertNoLeak(registryOf(demo));
});

test('no user id: HTTP 401 before any upgrade; bad handshakes 400; other paths 404; a user id the core refuses 400', async (t) => {
  const demo = await startDemo(t);
  const noUser = await connect(demo.wsUrl);
  assert.ok(!noUser.ok);
  assert.equal(noUser.status, 401);
  assert.deepEqual(JSON.parse(noUser.body), { reason: 'unauthorized' });
  const tooLong = await connect(`${demo.wsUrl}?user=${'x'.repeat(300)}`);
  assert.ok(!tooLong.ok);
  assert.equal(tooLong.status, 400);
  assert.equal(JSON.parse(tooLong.body).reason, 'invalid-user-id');
  const elsewhere = await connect(`${demo.url.replace('http', 'ws')}/other?user=a`);
  assert.ok(!elsewhere.ok);
  assert.equal(elsewhere.status, 404);

  const { default: http } = await import('node:http');
  const status = await new Promise((resolve, reject) => {
    const req = http.request(`${demo.url}/ws?user=a`, { headers: { Connection: 'Upgrade', Upgrade: 'websocket' } });
    req.on('upgrade', () => reject(new Error('upgraded without a key')));
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(status, 400);
  // A request target `new URL` cannot parse must not crash the server: it is another path.
  const { default: net } = await import('node:net');
  const odd = await new Promise((resolve, reject) => {
    const c = net.connect(Number(new URL(demo.url).port), '127.0.0.1');
    let data = '';
    c.on('data', (d) => (data += d));
    c.on('end', () => resolve(data));
    c.on('error', reject);
    // Bounded: a server that crashed or ignored the request must fail the test, not hang it.
    c.setTimeout(5_000, () => c.destroy(new Error('no answer to an unparsable request target')));
    c.write(
      'GET http://[ HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
  });
  assert.match(String(odd), /^HTTP\/1\.1 404 /);
  assert.equal((await getText(`${demo.url}/healthz`)).status, 200, 'still serving');
  const s = registryOf(demo).stats();
  assert.equal(s.acquired, 0, 'no refused request ever took a lease');
  assert.deepEqual(demo.guard.stats().upgrades, { 101: 0, 400: 2, 401: 1, 403: 0, 404: 2, 429: 0, 500: 0, 503: 0 });
});

test('abrupt disconnects (no close frame, TCP reset, protocol error) are reclaimed at once; the user reconnects to the full limit', async (t) => {
  // A heartbeat (and sweep) far in the future: anything reclaimed here was reclaimed by
  // the disconnect itself, not by a timer. And a ws server whose closeTimeout (how long
  // ws waits for the peer to finish closing before it destroys the socket) is as far
  // away: a path that waited for it would not finish within this test.
  const wss = new WebSocketServer({ noServer: true, closeTimeout: 600_000 });
  t.after(() => wss.close());
  const demo = await startDemo(t, { limit: 5, heartbeatMs: 600_000, guard: { wss: /** @type {any} */ (wss) } });
  const registry = registryOf(demo);
  const url = `${demo.wsUrl}?user=carol`;

  // Client socket destroyed without a close frame.
  const dropped = await Promise.all(Array.from({ length: 5 }, () => open(url)));
  assert.equal(registry.userStats('carol').active, 5);
  for (const ws of dropped) ws.terminate();
  await waitFor(() => registry.userStats('carol').active === 0, 'terminated sockets released');

  // TCP reset (RST) from raw peers after a completed handshake.
  const reset = await Promise.all(Array.from({ length: 5 }, () => rawHandshake(url)));
  assert.ok(reset.every((p) => p.status === 101));
  await waitFor(() => registry.userStats('carol').active === 5, 'raw peers hold leases');
  for (const p of reset) p.socket.resetAndDestroy();
  await waitFor(() => registry.userStats('carol').active === 0, 'reset sockets released');

  // A protocol error: an unmasked client frame makes the server's ws emit `error`. ws
  // sends its close frame (1002) and FIN, then waits up to closeTimeout for the peer to
  // close its side. This peer reads nothing (rawHandshake paused it), so it never does:
  // the guard must release and drop the TCP socket at once instead of waiting.
  const rude = await rawHandshake(url);
  await waitFor(() => registry.userStats('carol').active === 1, 'rude peer holds a lease');
  const releasedBefore = demo.guard.stats().released;
  rude.socket.on('error', () => {}); // the server may reset the connection
  rude.socket.write(Buffer.from([0x81, 0x02, 0x68, 0x69]));
  await waitFor(() => registry.userStats('carol').active === 0, 'errored socket released');
  await waitFor(() => demo.guard.stats().socketsOpen === 0, 'errored socket forgotten');
  // The server dropped the connection: the peer sees it end as soon as it reads again.
  const rudeClosed = new Promise((resolve) => rude.socket.once('close', resolve));
  rude.socket.resume();
  await rudeClosed;
  assert.equal(demo.guard.stats().released, releasedBefore + 1, "released once, although ws's `close` followed the `error`");

  assert.equal(demo.guard.stats().heartbeatTicks, 0, 'reclaimed without any heartbeat');
  const again = await Promise.all(Array.from({ length: 5 }, () => connect(url)));
  assert.ok(
    again.every((r) => r.ok),
    'the full limit is available again',
  );
  for (const r of again) if (r.ok) r.ws.close();
  await waitFor(() => registry.stats().active === 0, 'all released');
  assertNoLeak(registry);
  assert.equal(registry.stats().acquired, 16);
});

// The heartbeat tests below run the guard's timers on node:test's mock timers: every
// heartbeat is a tick the test makes (t.mock.timers.tick), and between ticks the test
// waits for conditions (a pong sent, a lease touched). So "reclaimed on the second tick"
// and "a live client survives" hold on a loaded 2-core machine as on an idle one: no
// interval can fire while a same-process client has not had its turn yet.

/**
 * Mock setInterval (only: setTimeout and setImmediate stay real, for waitFor and the
 * guard's deferred decision) and return a function that fires one heartbeat interval.
 * @param {import('node:test').TestContext} t
 * @param {number} ms the heartbeat interval the demo is started with
 */
function mockHeartbeat(t, ms) {
  t.mock.timers.enable({ apis: ['setInterval'] });
  return () => t.mock.timers.tick(ms);
}

/** Each lease's touchedAt for a user, by lease id. */
/** Each lease's expiry: a pong renews it (without counting as activity: touchedAt stays). */
const renewals = (/** @type {LeaseRegistry} */ registry, /** @type {string} */ user, /** @type {number} */ now) =>
  new Map(registry.userStats(user, now).leases.map((l) => [l.id, l.expiresAt]));

test('half-open peers (no FIN, no pong) are reclaimed on the second heartbeat after they went silent; the user reconnects to the full limit', async (t) => {
  const tick = mockHeartbeat(t, 100);
  const clock = steppingClock();
  // Only pongs renew (not messages), and the clock moves on every read, so a renewal is
  // visible as a later expiresAt.
  const demo = await startDemo(t, { limit: 5, heartbeatMs: 100, guard: { clock, messageTouchMs: false } });
  const registry = registryOf(demo);
  /** @type {number[]} */
  const ticksAtClose = [];
  demo.guard.wss.on('connection', (ws) => ws.once('close', () => ticksAtClose.push(demo.guard.stats().heartbeatTicks)));
  const url = `${demo.wsUrl}?user=dave`;

  // Three raw TCP peers that finished the handshake and went silent, and two ws clients
  // with automatic pongs turned off.
  const raw = await Promise.all(Array.from({ length: 3 }, () => rawHandshake(url)));
  t.after(() => {
    for (const p of raw) p.socket.destroy();
  });
  const mute = await Promise.all(Array.from({ length: 2 }, () => open(url, { autoPong: false })));
  t.after(() => {
    for (const ws of mute) ws.terminate();
  });
  await waitFor(() => demo.guard.stats().socketsOpen === 5, 'five silent peers connected');
  assert.equal(demo.guard.stats().heartbeatTicks, 0);
  assert.equal(registry.userStats('dave', clock()).active, 5);

  tick(); // pings all five
  await new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
  assert.equal(demo.guard.stats().heartbeatTimeouts, 0, 'a ping is not a timeout');
  tick(); // none answered: terminated
  await waitFor(() => registry.userStats('dave', clock()).active === 0, 'silent peers reclaimed');
  assert.deepEqual(ticksAtClose, [2, 2, 2, 2, 2], 'every silent peer closed on the second tick');
  assert.equal(demo.guard.stats().heartbeatTimeouts, 5);

  const again = await Promise.all(Array.from({ length: 5 }, () => connect(url)));
  assert.ok(
    again.every((r) => r.ok),
    'the full limit is available again',
  );
  // Live clients answer every ping: three more ticks, each after the previous pings were
  // answered (every lease touched again), cost none of them its socket.
  for (let round = 0; round < 3; round++) {
    const before = renewals(registry, 'dave', clock());
    tick();
    await waitFor(
      () => [...renewals(registry, 'dave', clock())].every(([id, at]) => at > /** @type {number} */ (before.get(id))),
      'every live client answered the ping',
    );
  }
  assert.equal(demo.guard.stats().heartbeatTicks, 5);
  assert.equal(demo.guard.stats().heartbeatTimeouts, 5, 'no live client timed out');
  assert.equal(registry.userStats('dave', clock()).active, 5);
  for (const r of again) if (r.ok) assert.equal((await echo(r.ws, 'still here')).data, 'still here');

  const m = (await getText(`${demo.url}/metrics`)).text;
  assert.equal(metric(m, 'socket_lease_heartbeat_timeouts_total'), 5);
  assert.equal(metric(m, 'socket_lease_sockets_open'), 5);
  for (const r of again) if (r.ok) r.ws.close();
  await waitFor(() => registry.stats().active === 0, 'all released');
  assertNoLeak(registry);
});

test("a stall of the server's own event loop does not cost a live client its socket", async (t) => {
  const tick = mockHeartbeat(t, 100);
  const demo = await startDemo(t, { limit: 5, heartbeatMs: 100 });
  // The client lives in another process, so it answers pings while this one is stalled;
  // it appends a line to a file once each pong is handed to the kernel, which this process
  // can read without running its event loop.
  const log = path.join(mkdtempSync(path.join(tmpdir(), 'socket-lease-')), 'client.log');
  t.after(() => rmSync(path.dirname(log), { recursive: true, force: true }));
  const client = run(t, [
    '--input-type=module',
    '-e',
    "import WebSocket from 'ws'; import { appendFileSync } from 'node:fs'; const [url, log] = process.argv.slice(1);" +
      ' const ws = new WebSocket(url, { autoPong: false });' +
      " ws.on('ping', (data) => ws.pong(data, true, () => appendFileSync(log, 'pong\\n')));" +
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the child's source, whose template runs there
      " ws.on('close', (code) => { appendFileSync(log, `closed ${code}\\n`); process.exit(0); });",
    `${demo.wsUrl}?user=quin`,
    log,
  ]);
  await waitFor(() => demo.guard.stats().socketsOpen === 1, 'client connected');
  const lines = () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []);
  const pongs = () => lines().filter((l) => l === 'pong').length;

  // The stall: ping, then keep the event loop busy until the client's pong has been sent,
  // and let the next heartbeat come due before this process has read it.
  tick();
  const deadline = Date.now() + 10_000;
  while (pongs() < 1) {
    // deliberate synchronous stall; the bound only keeps a broken client from hanging
    if (Date.now() > deadline) throw new Error(`the client never answered the ping: ${client.stderr()}`);
  }
  tick();
  // The guard reads the waiting pong before it decides: the client is pinged again (and
  // answers), not terminated.
  await waitFor(() => pongs() >= 2 || lines().some((l) => l.startsWith('closed')), 'the guard decided');
  assert.deepEqual(lines(), ['pong', 'pong']);
  assert.equal(demo.guard.stats().heartbeatTimeouts, 0);
  assert.equal(demo.guard.stats().socketsOpen, 1);

  // And three ordinary heartbeats after that.
  for (let n = 3; n <= 5; n++) {
    tick();
    await waitFor(() => pongs() >= n, `pong ${n}`);
  }
  assert.equal(demo.guard.stats().heartbeatTimeouts, 0);
  client.child.kill();
  await waitFor(() => registryOf(demo).stats().active === 0, 'released after the client died');
  assertNoLeak(registryOf(demo));
});

test("two stalls in a row: a tick that runs before the previous tick's deferred decision takes it over, and a live peer keeps its socket", async (t) => {
  const tick = mockHeartbeat(t, 100);
  const demo = await startDemo(t, { limit: 5, heartbeatMs: 100 });
  /** @type {import('ws').WebSocket | undefined} */
  let serverSide;
  demo.guard.wss.on('connection', (ws) => (serverSide = ws));
  // A raw peer: it answers only when the test writes its pong (masked, empty).
  const peer = await rawHandshake(`${demo.wsUrl}?user=rex`);
  t.after(() => peer.socket.destroy());
  await waitFor(() => serverSide !== undefined, 'connected');
  const ws = /** @type {import('ws').WebSocket} */ (/** @type {unknown} */ (serverSide));

  tick(); // ping
  tick(); // the pong is not there yet: a suspect, decided two setImmediate hops later
  // The pong arrives before that decision, and the loop stalls again: the next tick runs
  // right when the pong is read, pinging the peer once more (it answered, so it is
  // pinged) and leaving it unanswered when the earlier decision runs.
  const ponged = new Promise((resolve) =>
    ws.once('pong', () => {
      tick();
      resolve(undefined);
    }),
  );
  peer.socket.write(Buffer.from([0x8a, 0x80, 0, 0, 0, 0]));
  await ponged;
  // Let every deferred decision run (each takes two hops).
  for (let i = 0; i < 4; i++) await new Promise((resolve) => setImmediate(resolve));
  assert.equal(demo.guard.stats().heartbeatTicks, 3);
  assert.equal(demo.guard.stats().heartbeatTimeouts, 0, 'the peer answered its ping: not a timeout');
  assert.equal(ws.readyState, ws.OPEN);
  // It does not answer the third ping: the next tick's decision terminates it.
  tick();
  await waitFor(() => demo.guard.stats().socketsOpen === 0, 'the silent peer terminated');
  assert.equal(demo.guard.stats().heartbeatTimeouts, 1);
  assertNoLeak(registryOf(demo));
});

test('reconnect storm: 20 users x 20 concurrent clients, limit 5: never more than 5 per user, all reclaimed', async (t) => {
  const demo = await startDemo(t, { limit: 5 });
  const registry = registryOf(demo);
  const users = Array.from({ length: 20 }, (_, i) => `storm-${i}`);
  let maxLeases = 0;
  let maxSockets = 0;
  let samples = 0;
  const sample = () => {
    samples++;
    /** @type {Map<string, number>} */
    const sockets = new Map();
    for (const ws of demo.guard.sockets()) {
      const user = /** @type {string} */ (demo.guard.userIdOf(ws));
      sockets.set(user, (sockets.get(user) ?? 0) + 1);
    }
    for (const user of users) {
      maxLeases = Math.max(maxLeases, registry.userStats(user).active);
      maxSockets = Math.max(maxSockets, sockets.get(user) ?? 0);
    }
  };
  const sampler = setInterval(sample, 2);
  t.after(() => clearInterval(sampler));

  let refusals = 0;
  /** Connects until admitted (bounded), echoes once, leaves. */
  async function client(/** @type {string} */ user, /** @type {number} */ n) {
    for (let attempt = 0; attempt < 2000; attempt++) {
      const r = await connect(`${demo.wsUrl}?user=${user}`);
      if (r.ok) {
        assert.equal((await echo(r.ws, `${user}/${n}`)).data, `${user}/${n}`);
        // Half of the clients vanish without a close frame.
        if (n % 2) r.ws.terminate();
        else r.ws.close();
        await closed(r.ws);
        return;
      }
      assert.equal(r.status, 429);
      refusals++;
      await new Promise((resolve) => setTimeout(resolve, 1 + Math.random() * 5));
    }
    throw new Error(`${user}/${n} never got in`);
  }
  await Promise.all(users.flatMap((user) => Array.from({ length: 20 }, (_, n) => client(user, n))));
  await waitFor(() => registry.stats().active === 0, 'storm reclaimed');
  clearInterval(sampler);
  sample();
  assert.ok(samples > 10, `sampled ${samples} times`);
  // maxLeases restates the registry's own rule (it refuses a 6th lease by construction),
  // so it cannot catch a guard bug. maxSockets can: it counts the sockets the guard holds
  // open, so a socket accepted without a lease, or kept open after its lease was released
  // or evicted, would push a user past 5 here.
  assert.ok(maxLeases <= 5, `at most 5 leases per user (saw ${maxLeases})`);
  assert.ok(maxSockets <= 5, `at most 5 sockets per user (saw ${maxSockets})`);
  assert.ok(refusals > 0, 'the storm really hit the limit');
  assert.equal(registry.stats().acquired, 400);
  assertNoLeak(registry);
});

test('global limit: the refusal says global-limit, with the global numbers', async (t) => {
  const demo = await startDemo(t, { limit: 5, globalLimit: 2 });
  const a = await open(`${demo.wsUrl}?user=ann`);
  const b = await open(`${demo.wsUrl}?user=ben`);
  const c = await connect(`${demo.wsUrl}?user=cat`);
  assert.ok(!c.ok);
  assert.equal(c.status, 429);
  assert.match(String(c.headers['retry-after']), /^[1-9]\d*$/);
  assert.deepEqual(JSON.parse(c.body), { reason: 'global-limit', limit: 2, active: 2 });
  a.close();
  await waitFor(() => registryOf(demo).stats().active === 1, 'one slot free');
  const c2 = await open(`${demo.wsUrl}?user=cat`);
  for (const ws of [b, c2]) ws.close();
  await waitFor(() => registryOf(demo).stats().active === 0, 'all released');
  assertNoLeak(registryOf(demo));
});

test("lastRefusal: the guard remembers each user's last refused upgrade exactly as answered, for the most recently refused users only", async (t) => {
  const clock = steppingClock();
  const demo = await startDemo(t, { limit: 1, ttlMs: 60_000, guard: { clock, refusalMemory: 2 } });
  assert.equal(demo.guard.lastRefusal('uma'), null, 'never refused');
  /** @type {Map<string, import('ws').WebSocket>} */
  const holders = new Map();
  /** Holds the user's only slot, then gets refused once; returns the refusal as the client saw it. */
  const refuse = async (/** @type {string} */ user) => {
    if (!holders.has(user)) holders.set(user, await open(`${demo.wsUrl}?user=${user}`));
    const r = await connect(`${demo.wsUrl}?user=${user}`);
    assert.ok(!r.ok);
    return r;
  };
  const seen = await refuse('uma');
  const uma = demo.guard.lastRefusal('uma');
  assert.ok(uma);
  assert.deepEqual(
    { ...uma, retryAfterMs: 0, at: 0 },
    { status: 429, reason: 'user-limit', limit: 1, active: 1, retryAfterMs: 0, retryAfterS: Number(seen.headers['retry-after']), at: 0, seq: 1 },
  );
  assert.deepEqual(JSON.parse(seen.body), { reason: uma.reason, limit: uma.limit, active: uma.active });
  assert.equal(uma.retryAfterS, Math.max(1, Math.ceil(uma.retryAfterMs / 1000)));
  assert.ok(uma.retryAfterMs > 0 && uma.retryAfterMs <= 60_000);
  assert.ok(uma.at > 0 && uma.at <= clock(), "the guard's clock");
  // The demo serves it with the user's view.
  const view = JSON.parse((await getText(`${demo.url}/api/users/uma`)).text);
  assert.deepEqual(view.lastRefusal, uma);
  assert.equal(JSON.parse((await getText(`${demo.url}/api/users/nobody`)).text).lastRefusal, null);

  // Capped at refusalMemory users; the user refused least recently is forgotten first.
  await refuse('vic');
  await refuse('uma'); // uma is now the most recent
  await refuse('wes'); // vic goes
  assert.equal(demo.guard.lastRefusal('vic'), null);
  assert.equal(demo.guard.lastRefusal('uma')?.seq, 3);
  assert.equal(demo.guard.lastRefusal('wes')?.seq, 4);
  for (const ws of holders.values()) ws.close();
  await waitFor(() => registryOf(demo).stats().active === 0, 'all released');

  // A store failure is remembered as the 503 it was answered with.
  class BrokenStore extends AsyncStore {
    async acquire() {
      throw new Error('store down');
    }
  }
  const store = new BrokenStore({ perUserLimit: 5 });
  const broken = await startDemo(t, { guard: { store } });
  t.after(() => store.registry.free());
  const r = await connect(`${broken.wsUrl}?user=zed`);
  assert.ok(!r.ok);
  assert.equal(r.status, 503);
  assert.deepEqual(
    { ...broken.guard.lastRefusal('zed'), at: 0 },
    { status: 503, reason: 'store-unavailable', limit: null, active: null, retryAfterMs: 1000, retryAfterS: 1, at: 0, seq: 1 },
  );

  assert.throws(() => createLeaseGuard({ userId: () => 'a', refusalMemory: -1 }), /refusalMemory must be an integer/);
  const none = await startDemo(t, { limit: 1, guard: { refusalMemory: 0 } });
  const one = await open(`${none.wsUrl}?user=amy`);
  assert.equal((await connect(`${none.wsUrl}?user=amy`)).ok, false);
  assert.equal(none.guard.lastRefusal('amy'), null, 'refusalMemory 0 keeps nothing');
  one.close();
  await closed(one);
});

test('a store whose backend is down (REDIS_UNAVAILABLE): 503, counted apart from store errors, logged at debug only; any other failure is an error', async (t) => {
  const { logger, lines } = memoryLogger();
  /** @type {Error & { code?: string }} */
  let failure = new Error('socket-lease/redis: Redis is unavailable');
  failure.code = 'REDIS_UNAVAILABLE';
  class DownStore extends AsyncStore {
    async acquire() {
      throw failure;
    }
  }
  const store = new DownStore({ perUserLimit: 5 });
  const demo = await startDemo(t, { guard: { store }, logger, logLevel: 'debug' });
  t.after(() => store.registry.free()); // after the demo's close, which asks the store
  const refuse = async () => {
    const r = await connect(`${demo.wsUrl}?user=ora`);
    assert.ok(!r.ok);
    if (r.ok) return;
    assert.equal(r.status, 503);
    assert.equal(r.headers['retry-after'], '1');
    assert.deepEqual(JSON.parse(r.body), { reason: 'store-unavailable' });
  };
  for (let i = 0; i < 3; i++) await refuse();
  assert.equal(demo.guard.stats().storeUnavailable, 3);
  assert.equal(demo.guard.stats().storeErrors, 0);
  let m = await demo.guard.metrics();
  assert.equal(metric(m, 'socket_lease_store_unavailable_total'), 3);
  assert.equal(metric(m, 'socket_lease_store_errors_total'), 0);
  assert.equal(metric(m, 'socket_lease_upgrades_total{status="503"}'), 3);
  assert.deepEqual(
    lines.filter((l) => l.level === 'error'),
    [],
    'no error line: the store logs the outage',
  );
  assert.deepEqual(
    lines.filter((l) => l.msg === 'store unavailable').map((l) => [l.level, l.call]),
    [
      ['debug', 'acquire'],
      ['debug', 'acquire'],
      ['debug', 'acquire'],
    ],
  );

  failure = new Error('store broke');
  await refuse();
  assert.equal(demo.guard.stats().storeErrors, 1);
  assert.equal(demo.guard.stats().storeUnavailable, 3);
  m = await demo.guard.metrics();
  assert.equal(metric(m, 'socket_lease_store_errors_total'), 1);
  assert.equal(metric(m, 'socket_lease_store_unavailable_total'), 3);
  assert.deepEqual(
    lines.filter((l) => l.level === 'error').map((l) => [l.msg, l.call]),
    [['store call failed', 'acquire']],
  );
});

test('evict-oldest: the 6th connect succeeds and the oldest socket is closed with 4008 and a reason', async (t) => {
  const { logger, lines } = memoryLogger();
  const demo = await startDemo(t, { limit: 5, policy: 'evict-oldest', logger, logLevel: 'info', guard: { clock: steppingClock() } });
  const registry = registryOf(demo);
  const url = `${demo.wsUrl}?user=erin`;
  const sockets = [];
  for (let i = 0; i < 5; i++) sockets.push(await open(url));
  const oldestClosed = closed(sockets[0]);
  const sixth = await open(url);
  const { code, reason } = await oldestClosed;
  assert.equal(code, CloseCodes.EVICTED);
  assert.match(reason, /evicted/);
  for (const ws of sockets.slice(1)) assert.equal((await echo(ws, 'alive')).data, 'alive');
  assert.equal((await echo(sixth, 'new')).data, 'new');
  assert.equal(registry.userStats('erin').active, 5);
  assert.equal(registry.stats().evicted, 1);
  const m = (await getText(`${demo.url}/metrics`)).text;
  assert.equal(metric(m, 'socket_lease_evicted_total'), 1);
  // Every close-code counter the guard exports: one 4008, nothing else. The set of codes
  // is exactly those the guard can send, so a 1011 (or any other code) would show up
  // here as an extra key.
  const closeCounters = Object.fromEntries(
    [...m.matchAll(/^socket_lease_guard_closes_total\{code="(\d+)"\} (\d+)$/gm)].map(([, closeCode, n]) => [closeCode, Number(n)]),
  );
  const onlyEviction = { 1001: 0, 1009: 0, 4008: 1, 4009: 0, 4010: 0, 4029: 0 };
  assert.deepEqual(closeCounters, onlyEviction);
  assert.deepEqual(demo.guard.stats().closes, onlyEviction);
  const evicted = lines.filter((l) => l.event === 'evicted');
  assert.equal(evicted.length, 1);
  assert.equal(evicted[0].userId, 'erin');
  assert.equal(evicted[0].level, 'info');
  for (const ws of [...sockets.slice(1), sixth]) ws.close();
  await waitFor(() => registry.stats().active === 0, 'all released');
  assertNoLeak(registry);
});

test('evict-idle: the socket without recent messages is the one closed with 4008', async (t) => {
  const demo = await startDemo(t, { limit: 5, policy: 'evict-idle', guard: { clock: steppingClock(), messageTouchMs: 0 } });
  const registry = registryOf(demo);
  const url = `${demo.wsUrl}?user=fay`;
  const sockets = [];
  for (let i = 0; i < 5; i++) sockets.push(await open(url));
  for (const [i, ws] of sockets.entries()) if (i !== 2) await echo(ws, 'busy');
  const idleClosed = closed(sockets[2]);
  const sixth = await open(url);
  assert.equal((await idleClosed).code, 4008);
  for (const [i, ws] of sockets.entries()) if (i !== 2) assert.equal(ws.readyState, ws.OPEN);
  for (const ws of [...sockets, sixth]) ws.close();
  await waitFor(() => registry.stats().active === 0, 'all released');
  assertNoLeak(registry);
});

test('evict-idle with heartbeats: pongs keep leases alive but do not count as activity', async (t) => {
  // Every open socket answers pings. Were a pong a touch, the socket whose pong came
  // last would look busiest; here the socket that sent a message is the busy one.
  // The stepping clock: no two store calls share a millisecond, so nothing ties.
  const demo = await startDemo(t, { limit: 2, policy: 'evict-idle', heartbeatMs: 50, guard: { clock: steppingClock(), messageTouchMs: 0 } });
  const registry = registryOf(demo);
  const url = `${demo.wsUrl}?user=ike`;
  const busy = await open(url);
  const quiet = await open(url);
  await echo(busy, 'work'); // activity after quiet's acquire
  // Several heartbeats: both answer each ping (busy is pinged first, so its pong comes
  // first and quiet's last).
  const ticks = demo.guard.stats().heartbeatTicks;
  await waitFor(() => demo.guard.stats().heartbeatTicks >= ticks + 3, 'three heartbeats');
  const closes = Promise.race([closed(quiet).then((c) => ['quiet', c.code]), closed(busy).then((c) => ['busy', c.code])]);
  const third = await open(url);
  assert.deepEqual(await closes, ['quiet', CloseCodes.EVICTED], 'the socket without activity is evicted');
  assert.equal(busy.readyState, busy.OPEN);
  assert.equal((await echo(busy, 'still here')).data, 'still here');
  for (const ws of [busy, third]) ws.close();
  await waitFor(() => registry.stats().active === 0, 'all released');
  assertNoLeak(registry);
});

test('many messages on one socket never take more than one lease', async (t) => {
  const demo = await startDemo(t, { limit: 5 });
  const registry = registryOf(demo);
  const ws = await open(`${demo.wsUrl}?user=gus`);
  const leaseIds = new Set();
  for (let i = 0; i < 1000; i++) leaseIds.add((await echo(ws, `m${i}`)).leaseId);
  assert.equal(leaseIds.size, 1);
  assert.equal(registry.stats().acquired, 1);
  assert.equal(registry.userStats('gus').active, 1);
  const api = JSON.parse((await getText(`${demo.url}/api/users/gus`)).text);
  assert.equal(api.active, 1);
  assert.equal(api.leases[0].id, [...leaseIds][0]);
  // The host's view of the socket's lease: one id suffix across conn_, run_, thread_.
  const [serverSide] = demo.guard.sockets();
  const lease = demo.guard.leaseOf(serverSide);
  assert.ok(lease);
  assert.equal(lease.id, [...leaseIds][0]);
  assert.equal(demo.guard.leaseIdOf(serverSide), lease.id);
  assert.equal(demo.guard.userIdOf(serverSide), 'gus');
  assert.equal(lease.userId, 'gus');
  assert.equal(lease.runId, `run_${lease.id.slice('conn_'.length)}`);
  assert.equal(lease.threadId, `thread_${lease.id.slice('conn_'.length)}`);
  ws.close();
  await waitFor(() => registry.stats().active === 0, 'released');
  assertNoLeak(registry);
});

test('an expired lease (no touch within the TTL) is swept: its socket gets 4009 and the event is logged', async (t) => {
  const { logger, lines } = memoryLogger();
  const clock = steppingClock();
  // Heartbeat far away, so nothing renews the lease; the sweep runs often.
  const demo = await startDemo(t, {
    limit: 5,
    ttlMs: 5_000,
    heartbeatMs: 600_000,
    logger,
    logLevel: 'info',
    guard: { clock, sweepMs: 20, messageTouchMs: false },
  });
  const registry = registryOf(demo);
  const ws = await open(`${demo.wsUrl}?user=hal`);
  const closing = closed(ws);
  clock.jump(10_000);
  const { code } = await closing;
  assert.equal(code, CloseCodes.LEASE_EXPIRED);
  assert.equal(registry.stats().expired, 1);
  assert.equal(registry.stats().active, 0);
  const m = (await getText(`${demo.url}/metrics`)).text;
  assert.equal(metric(m, 'socket_lease_expired_total'), 1);
  assert.equal(metric(m, 'socket_lease_guard_closes_total{code="4009"}'), 1);
  assert.equal(lines.filter((l) => l.event === 'expired' && l.userId === 'hal').length, 1);
  assert.ok(
    lines.some((l) => l.msg.includes('ttlMs is not above heartbeatMs')),
    'the risky configuration was warned about',
  );
  await waitFor(() => demo.guard.stats().socketsOpen === 0, 'socket gone');
  assertNoLeak(registry);
});

test('a pong for a lease the store no longer has (expired before any sweep) closes the socket with 4009', async (t) => {
  const tick = mockHeartbeat(t, 50);
  const clock = steppingClock();
  // The sweep never runs in this test, so only the touch can notice; one heartbeat, made
  // by the test, pings the client.
  const demo = await startDemo(t, { limit: 5, ttlMs: 5_000, heartbeatMs: 50, guard: { clock, sweepMs: 600_000, messageTouchMs: false } });
  const registry = registryOf(demo);
  const ws = await open(`${demo.wsUrl}?user=ike`);
  const closing = closed(ws);
  clock.jump(10_000);
  tick();
  const { code, reason } = await closing;
  assert.equal(code, CloseCodes.LEASE_EXPIRED);
  assert.match(reason, /expired/);
  assert.equal(demo.guard.stats().closes[4009], 1);
  await waitFor(() => demo.guard.stats().socketsOpen === 0, 'socket gone');
  // The guard did not release a lease the store calls expired (that would count as an
  // unknown release); it no longer counts for the user, and the store's sweep reclaims it.
  assert.equal(registry.userStats('ike', clock()).active, 0);
  assert.equal(registry.sweep(clock()).length, 1);
  assert.equal(registry.stats().expired, 1);
  assertNoLeak(registry);
});

test('near-limit and rejected events are logged as one JSON line each; the level filters them', async (t) => {
  const loud = memoryLogger();
  const demo = await startDemo(t, { limit: 5, logger: loud.logger, logLevel: 'info' });
  const url = `${demo.wsUrl}?user=ivy`;
  const sockets = [];
  for (let i = 0; i < 5; i++) sockets.push(await open(url));
  const refused = await connect(url);
  assert.ok(!refused.ok);
  await waitFor(() => loud.lines.some((l) => l.event === 'rejected'), 'rejected logged');
  const near = loud.lines.filter((l) => l.event === 'near-limit');
  const rejected = loud.lines.filter((l) => l.event === 'rejected');
  assert.equal(near.length, 1, 'near-limit once, when crossing 80% of 5');
  assert.equal(near[0].level, 'warn');
  assert.equal(near[0].userId, 'ivy');
  assert.equal(rejected.length, 1);
  assert.equal(rejected[0].reason, 'user-limit');
  assert.equal(rejected[0].limit, 5);
  assert.equal(typeof rejected[0].time, 'string');
  for (const ws of sockets) ws.close();

  const quiet = memoryLogger();
  const demo2 = await startDemo(t, { limit: 1, logger: quiet.logger, logLevel: 'error' });
  const one = await open(`${demo2.wsUrl}?user=ivy`);
  assert.equal((await connect(`${demo2.wsUrl}?user=ivy`)).ok, false);
  one.close();
  await closed(one);
  assert.deepEqual(quiet.lines, []);

  // The standalone event logger for a registry the host creates itself.
  const own = memoryLogger();
  const registry = new LeaseRegistry({ perUserLimit: 1, onEvent: createEventLogger({ logger: own.logger, level: 'warn' }) });
  registry.acquire('joe');
  registry.acquire('joe');
  assert.deepEqual(
    own.lines.map((l) => l.event),
    ['near-limit', 'limit-reached', 'rejected'],
  );
  registry.free();
});

test('a pino logger gets fields and a message, and writes the same events as its own JSON lines', async (t) => {
  const { default: pino } = await import('pino');
  /** @type {any[]} */
  const lines = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  const logger = pino({ level: 'debug' }, sink);
  const demo = await startDemo(t, { limit: 1, logger, logLevel: 'warn' });
  const ws = await open(`${demo.wsUrl}?user=pia`);
  assert.equal((await connect(`${demo.wsUrl}?user=pia`)).ok, false);
  await waitFor(() => lines.some((l) => l.event === 'rejected'), 'pino wrote the rejection');
  const rejected = lines.find((l) => l.event === 'rejected');
  assert.equal(rejected.msg, 'socket-lease event');
  assert.equal(rejected.level, 40, "pino's own numeric warn level");
  assert.equal(rejected.userId, 'pia');
  assert.equal(rejected.reason, 'user-limit');
  // logLevel 'warn' filtered the guard's debug line even though pino itself is at debug.
  assert.ok(!lines.some((l) => l.msg === 'upgrade refused'));
  ws.close();
  await closed(ws);
});

test('server shutdown closes every socket with 1001 and releases every lease; a peer that ignores the close frame is terminated', async (t) => {
  const demo = await startDemo(t, { limit: 5, heartbeatMs: 60_000, guard: { closeGraceMs: 200 } });
  const registry = registryOf(demo);
  const clients = [];
  for (const user of ['kim', 'lee', 'max']) for (let i = 0; i < 2; i++) clients.push(await open(`${demo.wsUrl}?user=${user}`));
  // A peer that will never answer the close frame: terminated after the grace period.
  const silent = await rawHandshake(`${demo.wsUrl}?user=kim`);
  t.after(() => silent.socket.destroy());
  await waitFor(() => registry.stats().active === 7, 'seven leases');
  const codes = clients.map(closed);
  const stats = await demo.close();
  for (const { code, reason } of await Promise.all(codes)) {
    assert.equal(code, CloseCodes.GOING_AWAY);
    assert.equal(reason, 'server shutting down');
  }
  assert.equal(registry.stats().active, 0);
  assert.equal(registry.stats().released, 7);
  assertNoLeak(registry);
  assert.equal(stats.guard.socketsOpen, 0);
  assert.equal(stats.guard.closing, true);
  assert.equal(stats.guard.closes[1001], 7);
  await assert.rejects(connect(`${demo.wsUrl}?user=kim`), /ECONNREFUSED/);
  // close() is idempotent.
  await demo.guard.close();
});

test("the guard's timers are unref'd (an idle guard lets the process exit) and stop on close()", async (t) => {
  const child = run(t, [
    '--input-type=module',
    '-e',
    "import { createLeaseGuard } from 'socket-lease/node'; createLeaseGuard({ userId: () => 'a', heartbeatMs: 10 }); console.log('created');",
  ]);
  const exited = await Promise.race([child.exited, new Promise((resolve) => setTimeout(() => resolve(null), 10_000).unref())]);
  assert.ok(exited, 'the process exited on its own');
  assert.equal(exited.code, 0);
  assert.match(exited.stdout, /created/);

  // node:test's mock timers drive setInterval here: every tick is one the test made, so
  // "no tick after close()" is a count, not a wait.
  t.mock.timers.enable({ apis: ['setInterval'] });
  const guard = createLeaseGuard({ userId: () => 'a', heartbeatMs: 10, logLevel: 'silent' });
  t.mock.timers.tick(10);
  t.mock.timers.tick(10);
  assert.equal(guard.stats().heartbeatTicks, 2, 'one heartbeat per interval');
  await guard.close();
  t.mock.timers.tick(1_000);
  assert.equal(guard.stats().heartbeatTicks, 2, 'a hundred intervals after close(): no tick, the timer is gone');
  /** @type {LeaseRegistry} */ (/** @type {unknown} */ (guard.store)).free();
});

test('/metrics reflects the counters; /healthz reports counts; /api/users/:userId shows leases and limit', async (t) => {
  const demo = await startDemo(t, { limit: 2, heartbeatMs: 60_000 });
  const a = await open(`${demo.wsUrl}?user=nia`);
  const b = await open(`${demo.wsUrl}?user=nia`);
  const refused = await connect(`${demo.wsUrl}?user=nia`);
  assert.ok(!refused.ok);
  const unauthorized = await connect(demo.wsUrl);
  assert.ok(!unauthorized.ok);
  a.close();
  await waitFor(() => registryOf(demo).stats().active === 1, 'one released');

  const res = await getText(`${demo.url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(String(res.headers.get('content-type')), /^text\/plain; version=0\.0\.4/);
  const m = res.text;
  assert.equal(metric(m, 'socket_lease_active_leases'), 1);
  assert.equal(metric(m, 'socket_lease_acquired_total'), 2);
  assert.equal(metric(m, 'socket_lease_released_total'), 1);
  assert.equal(metric(m, 'socket_lease_rejected_total{reason="user-limit"}'), 1);
  assert.equal(metric(m, 'socket_lease_unknown_release_total'), 0);
  assert.equal(metric(m, 'socket_lease_sockets_open'), 1);
  assert.equal(metric(m, 'socket_lease_upgrades_total{status="101"}'), 2);
  assert.equal(metric(m, 'socket_lease_upgrades_total{status="429"}'), 1);
  assert.equal(metric(m, 'socket_lease_upgrades_total{status="401"}'), 1);
  assert.ok(!/nia/.test(m), 'no user id in metrics');

  const health = await getText(`${demo.url}/healthz`);
  assert.equal(health.status, 200);
  assert.deepEqual(
    { ...JSON.parse(health.text), uptimeMs: 0 },
    { status: 'ok', activeLeases: 1, users: 1, socketsOpen: 1, uptimeMs: 0, transport: 'websocket' },
  );

  const user = JSON.parse((await getText(`${demo.url}/api/users/nia`)).text);
  assert.equal(user.active, 1);
  assert.equal(user.limit, 2);
  assert.equal(user.socketsOpen, 1);
  assert.equal(user.leases.length, 1);
  assert.equal(user.leases[0].id, demo.guard.leaseOf([...demo.guard.sockets()][0])?.id);
  assert.match(user.leases[0].threadId, /^thread_/);
  assert.deepEqual(
    { ...user.lastRefusal, at: 0, retryAfterMs: 0 },
    { status: 429, reason: 'user-limit', limit: 2, active: 2, retryAfterMs: 0, retryAfterS: user.lastRefusal.retryAfterS, at: 0, seq: 1 },
  );
  const nobody = JSON.parse((await getText(`${demo.url}/api/users/nobody`)).text);
  assert.equal(nobody.active, 0);
  assert.equal(nobody.lastRefusal, null);
  assert.equal((await getText(`${demo.url}/api/users/${'x'.repeat(300)}`)).status, 400);
  b.close();
  await waitFor(() => registryOf(demo).stats().active === 0, 'all released');
});

test('static files: www/ at /, the package build at /pkg/ and /js/, nothing outside them', async (t) => {
  const demo = await startDemo(t);
  const index = await getText(`${demo.url}/`);
  assert.equal(index.status, 200);
  assert.match(String(index.headers.get('content-type')), /^text\/html/);
  const glue = await getText(`${demo.url}/pkg/web/socket_lease.js`);
  assert.equal(glue.status, 200);
  assert.match(String(glue.headers.get('content-type')), /^text\/javascript/);
  const wasm = await fetch(`${demo.url}/pkg/web/socket_lease_bg.wasm`);
  assert.equal(wasm.headers.get('content-type'), 'application/wasm');
  assert.deepEqual(new Uint8Array(await wasm.arrayBuffer()).slice(0, 4), new Uint8Array([0, 0x61, 0x73, 0x6d]));
  assert.equal((await getText(`${demo.url}/js/browser.mjs`)).status, 200);
  const { default: http } = await import('node:http');
  for (const p of ['/js/%2e%2e/package.json', '/..%2fpackage.json', '/pkg/%2e%2e/%2e%2e/etc/passwd', '/src/lib.rs', '/nope.html']) {
    const status = await new Promise((resolve, reject) => {
      http
        .get(`${demo.url}${p}`, (res) => {
          res.resume();
          resolve(res.statusCode);
        })
        .on('error', reject);
    });
    assert.equal(status, 404, p);
  }
  const post = await fetch(`${demo.url}/`, { method: 'POST' });
  assert.equal(post.status, 405);
  assert.equal((await getText(`${demo.url}/ws`)).status, 426);
});

test('an asynchronous store works the same: cycles, limit, half-open reclaim', async (t) => {
  // Heartbeats only when the test ticks: none can hit the live clients of the cycles.
  const tick = mockHeartbeat(t, 100);
  const store = new AsyncStore({ perUserLimit: 5 });
  const demo = await startDemo(t, { heartbeatMs: 100, guard: { store } });
  t.after(() => store.registry.free()); // after hooks run in order: the server closes first
  const url = `${demo.wsUrl}?user=olga`;
  for (let i = 0; i < 100; i++) {
    const ws = await open(url);
    assert.equal((await echo(ws, `a${i}`)).data, `a${i}`);
    ws.close();
    await closed(ws);
  }
  const results = await Promise.all(Array.from({ length: 6 }, () => connect(url)));
  assert.equal(results.filter((r) => !r.ok && r.status === 429).length, 1);
  for (const r of results) if (r.ok) r.ws.terminate();
  const silent = await rawHandshake(url);
  t.after(() => silent.socket.destroy());
  await waitFor(() => demo.guard.stats().socketsOpen === 1 && store.registry.stats().active === 1, 'only the silent peer left');
  tick();
  tick();
  await waitFor(() => store.registry.stats().active === 0 && demo.guard.stats().socketsOpen === 0, 'all reclaimed');
  assert.equal(demo.guard.stats().heartbeatTimeouts, 1);
  const m = (await getText(`${demo.url}/metrics`)).text;
  assert.equal(metric(m, 'socket_lease_acquired_total'), 106);
  assertNoLeak(store.registry);
});

test('a client that leaves while the store is deciding, or a shutdown meanwhile, leaves no lease behind', async (t) => {
  /** A store whose acquire waits for the test to open a gate. */
  class GatedStore extends AsyncStore {
    /** @type {(() => void) | null} */ openGate = null;
    /** @param {string} userId @param {{ now?: number }} [o] */
    async acquire(userId, o) {
      await new Promise((resolve) => (this.openGate = () => resolve(undefined)));
      return super.acquire(userId, o);
    }
  }
  const store = new GatedStore({ perUserLimit: 5 });
  const demo = await startDemo(t, { guard: { store } });
  t.after(() => store.registry.free());

  // A client sends its handshake and goes away while acquire is pending.
  const { default: net } = await import('node:net');
  const client = net.connect(Number(new URL(demo.url).port), '127.0.0.1');
  client.on('error', () => {});
  client.write(
    'GET /ws?user=pat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
  await waitFor(() => demo.guard.stats().pendingUpgrades === 1, 'upgrade waiting on the store');
  client.destroy();
  // The server cannot see the FIN yet (an upgrade socket is not read until it is
  // upgraded), so the lease is granted; the dead socket must still give it back.
  /** @type {() => void} */ (store.openGate)();
  await waitFor(() => demo.guard.stats().pendingUpgrades === 0, 'upgrade finished');
  await waitFor(() => store.registry.stats().released === 1, 'lease released');
  assert.equal(store.registry.stats().acquired, 1);
  assert.equal(demo.guard.stats().socketsOpen, 0);

  // Shutdown while an acquire is pending: the client gets 503 and the lease is released.
  const pending = connect(`${demo.wsUrl}?user=pat`);
  await waitFor(() => demo.guard.stats().pendingUpgrades === 1, 'second upgrade waiting');
  const closing = demo.guard.close();
  /** @type {() => void} */ (store.openGate)();
  const r = await pending;
  assert.ok(!r.ok);
  assert.equal(r.status, 503);
  assert.equal(r.headers['retry-after'], '1');
  await closing;
  assertNoLeak(store.registry);
});

test('the demo answers the Workers heartbeat message with the matching pong, not an echo', async (t) => {
  const demo = await startDemo(t);
  const ws = await open(`${demo.wsUrl}?user=heartbeat`);
  const reply = await new Promise((resolve) => {
    ws.once('message', (data) => resolve(data.toString()));
    ws.send('{"type":"ping"}');
  });
  assert.equal(reply, '{"type":"pong"}');
  const e = await echo(ws, '{"type":"ping","x":1}');
  assert.equal(e.type, 'echo', 'only the exact heartbeat text is special');
  ws.close();
  await closed(ws);
});

test("the demo's /metrics answers 500 when the store's metrics() rejects, never a 200 cut short", async (t) => {
  class BrokenMetricsStore extends AsyncStore {
    metrics() {
      return Promise.reject(new Error('metrics backend down'));
    }
  }
  const store = new BrokenMetricsStore({ perUserLimit: 5 });
  /** @type {string[]} */
  const errors = [];
  const realError = console.error;
  // route()'s catch logs the failure with console.error: keep it out of the test output.
  console.error = (...args) => errors.push(args.join(' '));
  t.after(() => (console.error = realError));
  const demo = await startDemo(t, { guard: { store } });
  t.after(() => store.registry.free());
  const r = await getText(`${demo.url}/metrics`);
  assert.equal(r.status, 500);
  assert.deepEqual(JSON.parse(r.text), { error: 'internal error' });
  assert.ok(errors.some((line) => /metrics backend down/.test(line)));
});

test("the ws server the guard creates lists the guard's open sockets as its clients (ws's own Set is off); wss.close(cb) still waits for them", async (t) => {
  const { guard, url: base } = await startGuard(t, { registry: { perUserLimit: 2, onLimit: 'evict-oldest' }, clock: steppingClock() }, { echo: false });
  /** @type {import('ws').WebSocket[]} */
  const served = [];
  guard.wss.on('connection', (ws) => served.push(ws));
  const url = `${base}?user=ann`;
  const clients = guard.wss.clients;
  assert.equal(clients.size, 0);
  await open(url);
  const b = await open(url);
  await waitFor(() => served.length === 2, 'two served');
  assert.equal(clients.size, 2);
  assert.deepEqual(new Set(clients), new Set(served), 'iteration');
  assert.ok(served.every((ws) => clients.has(ws)));
  /** @type {import('ws').WebSocket[]} */
  const seen = [];
  clients.forEach((value, key, set) => {
    assert.equal(value, key);
    assert.equal(set, clients);
    seen.push(value);
  });
  assert.deepEqual(new Set(seen), new Set(served), 'forEach');
  assert.deepEqual(new Set([...clients.entries()].map(([k, v]) => (k === v ? k : null))), new Set(served), 'entries');
  // The third connect evicts the oldest, which leaves the clients when it has closed.
  const c = await open(url);
  await waitFor(() => served.length === 3, 'the third served');
  await waitFor(() => served[0].readyState === served[0].CLOSED, 'the oldest closed');
  assert.equal(clients.has(served[0]), false);
  assert.equal(clients.size, 2);
  assert.deepEqual(new Set(clients), new Set(served.slice(1)));
  // ws's own close waits for the open sockets, as it does with its Set.
  let serverClosed = false;
  guard.wss.close(() => {
    serverClosed = true;
  });
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(serverClosed, false, 'not while sockets are open');
  b.close();
  c.close();
  await waitFor(() => serverClosed, "the ws server's close callback");
  assert.equal(clients.size, 0);
  assertNoLeak(/** @type {LeaseRegistry} */ (/** @type {unknown} */ (guard.store)));
});
