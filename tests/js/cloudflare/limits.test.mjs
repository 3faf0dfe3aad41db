// Quota at the edge: examples/cloudflare in workerd (miniflare), real WebSockets on
// 127.0.0.1.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { roundTrip, startExample, waitFor, within } from './harness.mjs';

// The documented close code for eviction (docs/cloudflare.md), the same as the Node guard's.
const CLOSE_EVICTED = 4008;

/** @typedef {Awaited<ReturnType<typeof startExample>>} App */

/**
 * Opens `n` sockets for `user`, each required to be accepted; returns them with the lease
 * id each one's echo names.
 * @param {App} app
 * @param {string} user
 * @param {number} n
 */
async function openAccepted(app, user, n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const c = await app.connect(user);
    assert.ok(c.ws, `${user} socket ${i + 1} of ${n} refused: ${JSON.stringify(c)}`);
    const echo = await roundTrip(c.ws, `hello ${i}`);
    assert.equal(echo.type, 'echo');
    assert.equal(echo.data, `hello ${i}`);
    out.push({ ...c, ws: c.ws, leaseId: /** @type {string} */ (echo.leaseId) });
  }
  return out;
}

/**
 * @param {App} app
 * @param {string} user
 */
function waitIdle(app, user) {
  return waitFor(async () => (await app.stats(user)).active === 0, { what: `${user} to hold no lease` });
}

describe('cloudflare: per-user limit (SOCKET_LEASE_LIMIT=5)', { timeout: 180_000 }, () => {
  /** @type {App} */
  let app;
  before(async () => {
    app = await startExample({ vars: { SOCKET_LEASE_LIMIT: '5' } });
  });
  after(() => app?.dispose());

  test('five sockets accepted, the sixth refused with 429 + Retry-After; other users unaffected', async () => {
    const alice = await openAccepted(app, 'alice', 5);
    assert.equal(new Set(alice.map((c) => c.leaseId)).size, 5, 'one lease per socket');

    const sixth = await app.connect('alice');
    assert.equal(sixth.ws, null, 'the sixth socket must not be accepted');
    assert.equal(sixth.status, 429);
    const retryAfter = Number(sixth.headers['retry-after']);
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1, `Retry-After: ${sixth.headers['retry-after']}`);
    assert.deepEqual(sixth.body, { reason: 'user-limit', limit: 5, active: 5 });

    const stats = await app.stats('alice');
    assert.equal(stats.active, 5);
    assert.equal(stats.socketsOpen, 5);
    assert.deepEqual(stats.leases.map((/** @type {{ id: string }} */ l) => l.id).sort(), alice.map((c) => c.leaseId).sort());

    // Another user has its own object and its own five.
    const bob = await openAccepted(app, 'bob', 5);
    const bobSixth = await app.connect('bob');
    assert.equal(bobSixth.status, 429);
    // ...and alice's sockets still work.
    for (const c of alice) assert.equal((await roundTrip(c.ws, 'still here')).leaseId, c.leaseId);

    for (const c of [...alice, ...bob]) c.ws.close(1000, 'done');
    await Promise.all([...alice, ...bob].map((c) => c.closed));
    await waitIdle(app, 'alice');
    await waitIdle(app, 'bob');
    // Closing frees the slots: alice gets all five back.
    const again = await openAccepted(app, 'alice', 5);
    for (const c of again) c.ws.close(1000);
    await Promise.all(again.map((c) => c.closed));
    await waitIdle(app, 'alice');
  });

  test('200 sequential connect / send / echo / close cycles for one user: zero refusals', async () => {
    let refusals = 0;
    for (let i = 0; i < 200; i++) {
      const c = await app.connect('carol');
      if (!c.ws) {
        refusals++;
        continue;
      }
      const echo = await roundTrip(c.ws, `message ${i}`);
      assert.deepEqual(echo, { type: 'echo', data: `message ${i}`, leaseId: echo.leaseId });
      c.ws.close(1000);
      await c.closed;
    }
    assert.equal(refusals, 0);
    await waitIdle(app, 'carol');
    const { stats } = await app.stats('carol');
    assert.equal(stats.acquired, 200);
    assert.equal(stats.released, 200);
    assert.equal(stats.rejected, 0);
    assert.equal(stats.unknownReleases, 0, 'every close released a lease the registry knew');
  });

  test('many messages on one socket hold one lease', async () => {
    const [c] = await openAccepted(app, 'dora', 1);
    for (let i = 0; i < 50; i++) assert.equal((await roundTrip(c.ws, `m${i}`)).leaseId, c.leaseId);
    // A binary frame is not echoed (the protocol is text, as on the Node host) but is
    // answered, on the same lease.
    const binary = await new Promise((resolve) => {
      c.ws.once('message', (data) => resolve(JSON.parse(data.toString())));
      c.ws.send(Buffer.from([1, 2, 3]));
    });
    assert.deepEqual(binary, { type: 'error', error: 'only text messages are echoed', leaseId: c.leaseId });
    const stats = await app.stats('dora');
    assert.equal(stats.active, 1);
    assert.equal(stats.stats.acquired, 1);
    c.ws.close(1000);
    await c.closed;
    await waitIdle(app, 'dora');
  });
});

describe('cloudflare: SOCKET_LEASE_POLICY=evict-oldest', { timeout: 60_000 }, () => {
  /** @type {App} */
  let app;
  before(async () => {
    app = await startExample({ vars: { SOCKET_LEASE_LIMIT: '2', SOCKET_LEASE_POLICY: 'evict-oldest' } });
  });
  after(() => app?.dispose());

  test('the third connect is accepted and the oldest socket is closed with 4008', async () => {
    const [oldest, middle] = await openAccepted(app, 'erin', 2);
    const [newest] = await openAccepted(app, 'erin', 1);
    const closed = await oldest.closed;
    assert.equal(closed.code, CLOSE_EVICTED);
    assert.equal(closed.reason, 'lease evicted: a newer connection of this user took the slot');
    const stats = await waitFor(
      async () => {
        const s = await app.stats('erin');
        return s.socketsOpen === 2 ? s : null;
      },
      { what: 'the evicted socket to be gone' },
    );
    assert.deepEqual(stats.leases.map((/** @type {{ id: string }} */ l) => l.id).sort(), [middle.leaseId, newest.leaseId].sort());
    assert.equal(stats.stats.evicted, 1);
    assert.equal(stats.stats.unknownReleases, 0);
    for (const c of [middle, newest]) c.ws.close(1000);
    await Promise.all([middle.closed, newest.closed]);
  });
});

describe('cloudflare: SOCKET_LEASE_POLICY=evict-idle', { timeout: 60_000 }, () => {
  /** @type {App} */
  let app;
  before(async () => {
    app = await startExample({ vars: { SOCKET_LEASE_LIMIT: '2', SOCKET_LEASE_POLICY: 'evict-idle' } });
  });
  after(() => app?.dispose());

  // The heartbeat is answered by the runtime without running the object, so the registry
  // hears of it only when the object reads the runtime's timestamps. The socket that spoke
  // last by message (`silent`) is not the one that was last alive (`beating`, which sent
  // heartbeats after that): evict-idle must judge by the heartbeats too.
  test('the third connect evicts the socket silent longest, counting auto-answered heartbeats', async () => {
    const [beating, silent] = await openAccepted(app, 'fred', 2);
    // The object's view: the silent socket's message came after the beating one's.
    const lease = (/** @type {any} */ s, /** @type {string} */ id) => s.leases.find((/** @type {{ id: string }} */ l) => l.id === id);
    const before = await app.stats('fred');
    assert.ok(lease(before, silent.leaseId).touchedAt > lease(before, beating.leaseId).touchedAt, 'the silent socket was touched last by a message');
    // Heartbeats stamped strictly after that message: wait until the object's clock has
    // passed it (a bounded poll, no fixed sleep).
    await waitFor(async () => (await app.stats('fred')).now > lease(before, silent.leaseId).touchedAt, {
      what: "the object clock to pass the silent socket's last message",
    });
    let pongs = 0;
    for (let i = 0; i < 3; i++) {
      const reply = await roundTrip(beating.ws, '{"type":"ping"}');
      assert.deepEqual(reply, { type: 'pong' });
      pongs++;
    }
    assert.equal(pongs, 3);
    const unseen = await app.stats('fred');
    assert.equal(
      lease(unseen, beating.leaseId).touchedAt,
      lease(before, beating.leaseId).touchedAt,
      'the heartbeats were answered by the runtime: the registry has not seen them yet',
    );

    const [newest] = await openAccepted(app, 'fred', 1);
    // Whichever socket the object closes first, so a wrong pick fails at once by name.
    const evicted = await within(
      Promise.race([silent.closed.then((c) => ({ who: 'silent', ...c })), beating.closed.then((c) => ({ who: 'heartbeating', ...c }))]),
      10_000,
      'a socket to be evicted',
    );
    assert.deepEqual(evicted, { ...evicted, who: 'silent', code: CLOSE_EVICTED }, 'the silent socket is the one evicted');
    // The heartbeating socket is still open, on its lease.
    assert.equal((await roundTrip(beating.ws, 'still here')).leaseId, beating.leaseId);
    const stats = await waitFor(
      async () => {
        const s = await app.stats('fred');
        return s.socketsOpen === 2 ? s : null;
      },
      { what: 'the evicted socket to be gone' },
    );
    assert.deepEqual(stats.leases.map((/** @type {{ id: string }} */ l) => l.id).sort(), [beating.leaseId, newest.leaseId].sort());
    assert.equal(stats.stats.evicted, 1);
    for (const c of [beating, newest]) c.ws.close(1000);
    await Promise.all([beating.closed, newest.closed]);
    await waitIdle(app, 'fred');
    assert.equal((await app.stats('fred')).stats.unknownReleases, 0);
  });
});

describe('cloudflare: refusals at the limit do not visit every socket', { timeout: 60_000 }, () => {
  /** @type {App} */
  let app;
  before(async () => {
    app = await startExample({ testHooks: true, vars: { SOCKET_LEASE_LIMIT: '3' } });
  });
  after(() => app?.dispose());

  /** How many times gus's object has listed all its sockets (hooks-worker.mjs). */
  const scans = async () => /** @type {number} */ ((await (await fetch(`${app.base}/__test/scans?user=gus`)).json()).scans);

  test('a storm of refused connects visits every socket about once a second, not once per request', async () => {
    const held = await openAccepted(app, 'gus', 3);
    const before = await scans();
    const started = Date.now();
    const STORM = 40;
    for (let i = 0; i < STORM; i++) assert.equal((await app.connect('gus')).status, 429);
    const elapsedMs = Date.now() - started;
    const during = (await scans()) - before;
    // Per started second of the storm at most two (a count at the limit, and the alarm
    // that writes the refusals' counter, which reconciles), however slow the machine; a
    // count per request would be STORM.
    const allowed = 2 * Math.ceil(elapsedMs / 1000) + 1;
    assert.ok(during <= allowed, `${during} socket scans for ${STORM} refusals in ${elapsedMs} ms (at most ${allowed} expected)`);
    assert.ok(allowed < STORM, `the storm took ${elapsedMs} ms: too slow to tell the two apart`);
    const stats = await app.stats('gus');
    assert.equal(stats.stats.rejected, STORM);
    assert.equal(stats.active, 3);
    for (const c of held) c.ws.close(1000);
    await Promise.all(held.map((c) => c.closed));
    await waitIdle(app, 'gus');
  });
});
