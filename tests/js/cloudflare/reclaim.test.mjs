// Reclaiming slots whose peers are gone or silent, in workerd (miniflare). The TTL is
// short so the alarm runs within the test, but long enough that a heartbeating peer
// (every TTL/8, as docs/cloudflare.md advises) keeps its lease through a stall of several seconds
// on a loaded machine; every wait is a bounded poll for a condition.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { roundTrip, startExample, waitFor, within } from './harness.mjs';

// The documented protocol (docs/cloudflare.md).
const CLOSE_LEASE_EXPIRED = 4009;
const HEARTBEAT_PING = '{"type":"ping"}';
const HEARTBEAT_PONG = '{"type":"pong"}';

const LIMIT = 3;
const TTL_MS = 8000;
const HEARTBEAT_MS = TTL_MS / 8;

/** @typedef {Awaited<ReturnType<typeof startExample>>} App */

/**
 * @param {App} app
 * @param {string} user
 */
async function openOne(app, user) {
  const c = await app.connect(user);
  assert.ok(c.ws, `${user} refused: ${JSON.stringify(c)}`);
  const echo = await roundTrip(c.ws, 'hi');
  return { ws: c.ws, closed: c.closed, leaseId: /** @type {string} */ (echo.leaseId) };
}

/**
 * Fills `user` up to the limit from `held` sockets, proves the next one is refused, and
 * closes what it opened.
 * @param {App} app
 * @param {string} user
 * @param {number} held
 */
async function assertFullLimitAvailable(app, user, held) {
  const opened = [];
  for (let i = held; i < LIMIT; i++) opened.push(await openOne(app, user));
  const over = await app.connect(user);
  assert.equal(over.status, 429, `after ${LIMIT} sockets the next must be refused`);
  for (const c of opened) c.ws.close(1000);
  await Promise.all(opened.map((c) => c.closed));
}

describe(`cloudflare: reclaiming (limit ${LIMIT}, TTL ${TTL_MS} ms)`, { timeout: 120_000 }, () => {
  /** @type {App} */
  let app;
  before(async () => {
    app = await startExample({ vars: { SOCKET_LEASE_LIMIT: String(LIMIT), SOCKET_LEASE_TTL_MS: String(TTL_MS) } });
  });
  after(() => app?.dispose());

  test('a socket dropped without a close frame is reclaimed; the user reconnects to the full limit', async () => {
    const sockets = [];
    for (let i = 0; i < LIMIT; i++) sockets.push(await openOne(app, 'frank'));
    assert.equal((await app.connect('frank')).status, 429);

    // terminate(): the TCP connection is destroyed, no close frame is sent.
    const dropped = sockets[0];
    dropped.ws.terminate();
    const stats = await waitFor(
      async () => {
        const s = await app.stats('frank');
        return s.active === LIMIT - 1 ? s : null;
      },
      { what: "the dropped socket's lease to be reclaimed" },
    );
    const ids = stats.leases.map((/** @type {{ id: string }} */ l) => l.id);
    assert.ok(!ids.includes(dropped.leaseId), 'the dropped lease is gone');
    assert.deepEqual(
      ids.sort(),
      sockets
        .slice(1)
        .map((c) => c.leaseId)
        .sort(),
      'the live ones are kept',
    );

    await assertFullLimitAvailable(app, 'frank', LIMIT - 1);
    for (const c of sockets.slice(1)) c.ws.close(1000);
    await Promise.all(sockets.slice(1).map((c) => c.closed));
  });

  test('a silent peer is closed with 4009 no earlier than a TTL after its last message; a heartbeating peer keeps its lease', async (t) => {
    const silent = await openOne(app, 'gina');
    const beating = await openOne(app, 'gina');
    /** @type {{ code: number, reason: string } | null} */
    let beatingClosed = null;
    void beating.closed.then((c) => (beatingClosed = c));
    let pongs = 0;
    beating.ws.on('message', (data) => {
      if (data.toString() === HEARTBEAT_PONG) pongs++;
    });
    // A client heartbeat well inside the TTL, as docs/cloudflare.md advises.
    const timer = setInterval(() => beating.ws.send(HEARTBEAT_PING), HEARTBEAT_MS);
    try {
      // The object's view of the silent lease after its last message (the echo above).
      const first = await app.stats('gina');
      const lease = first.leases.find((/** @type {{ id: string }} */ l) => l.id === silent.leaseId);
      assert.ok(lease, 'the silent peer holds a lease');
      assert.equal(lease.expiresAt - lease.touchedAt, TTL_MS, 'it expires one TTL after its last message');
      const acquiredAt = Math.min(...first.leases.map((/** @type {{ acquiredAt: number }} */ l) => l.acquiredAt));

      // Still open once more than half the TTL has passed since that message, as the
      // object itself sees it: judged by the object's clock (`now` in its answer), not
      // ours, so a slow machine cannot make this fail, only skip it.
      await delay(Math.max(0, lease.touchedAt + TTL_MS / 2 - Date.now()));
      const mid = await app.stats('gina');
      if (mid.now < lease.expiresAt) {
        const same = mid.leases.find((/** @type {{ id: string }} */ l) => l.id === silent.leaseId);
        assert.deepEqual(same, lease, `${mid.now - lease.touchedAt} ms after its last message the silent lease is held, unrenewed`);
        assert.equal(mid.socketsOpen, 2, 'and its socket is open');
      } else {
        t.diagnostic(`mid-TTL check skipped: the object answered ${mid.now - lease.expiresAt} ms after the expiry`);
      }

      const closed = await within(silent.closed, 3 * TTL_MS, 'the silent peer to be closed');
      assert.equal(closed.code, CLOSE_LEASE_EXPIRED, `silent peer close: ${JSON.stringify(closed)}`);
      assert.equal(closed.reason, 'lease expired or revoked; reconnect');
      // Not before the expiry the object announced: one machine, one clock, and the close
      // reaches the client after the object sent it.
      assert.ok(
        closed.at >= lease.expiresAt,
        `closed ${lease.expiresAt - closed.at} ms before the lease's expiry (${closed.at - lease.touchedAt} ms after its last message, TTL ${TTL_MS} ms)`,
      );

      // The heartbeating peer's lease is extended by the alarm from the runtime's record of
      // auto-answered heartbeats: wait until it has been renewed at a time when it would
      // have expired without them (a TTL after the acquire).
      const stats = await waitFor(
        async () => {
          assert.equal(beatingClosed, null, 'the heartbeating peer must stay open');
          const s = await app.stats('gina');
          const l = s.leases.find((/** @type {{ id: string }} */ x) => x.id === beating.leaseId);
          assert.ok(l, 'the heartbeating peer must keep its lease');
          return l.touchedAt > acquiredAt + TTL_MS ? s : null;
        },
        { timeoutMs: 4 * TTL_MS, what: 'the heartbeating lease to be renewed past its first TTL' },
      );
      assert.equal(stats.active, 1);
      assert.equal(stats.socketsOpen, 1);
      assert.equal(stats.stats.expired, 1, 'only the silent lease expired');
      assert.ok(pongs > 0, 'heartbeats were answered');
      // Its socket still works, with the same lease.
      assert.equal((await roundTrip(beating.ws, 'after')).leaseId, beating.leaseId);

      await assertFullLimitAvailable(app, 'gina', 1);
    } finally {
      clearInterval(timer);
    }
    beating.ws.close(1000);
    await beating.closed;
    await waitFor(async () => (await app.stats('gina')).active === 0, { what: 'gina to hold no lease' });
  });
});

// A close event that really goes missing inside a running object. The runtime always
// reports a dropped TCP connection (webSocketClose with 1006, as in the first test), so
// the loss is injected: the test worker (hooks-worker.mjs, test-only) swallows
// webSocketClose and webSocketError for a socket whose client sent LOSE_CLOSE. The lease
// is then held by a socket that no longer exists, and only reconciliation can free it.
const LOSE_CLOSE = '{"type":"test:lose-close"}';
const CLOSE_WILL_BE_LOST = '{"type":"test:close-will-be-lost"}';

describe(`cloudflare: a lost close event (limit ${LIMIT}, TTL ${TTL_MS} ms)`, { timeout: 120_000 }, () => {
  /** @type {App} */
  let app;
  before(async () => {
    app = await startExample({
      testHooks: true,
      vars: { SOCKET_LEASE_LIMIT: String(LIMIT), SOCKET_LEASE_TTL_MS: String(TTL_MS) },
    });
  });
  after(() => app?.dispose());

  /**
   * Opens `n` sockets for `user`, then drops the first one with its close event lost;
   * returns the others and the lost lease, once the object holds a lease for a socket
   * that is gone.
   * @param {string} user
   * @param {number} n
   */
  async function loseOne(user, n) {
    const sockets = [];
    for (let i = 0; i < n; i++) sockets.push(await openOne(app, user));
    const lost = sockets.shift();
    assert.ok(lost);
    const marked = await new Promise((resolve) => {
      lost.ws.once('message', (data) => resolve(data.toString()));
      lost.ws.send(LOSE_CLOSE);
    });
    assert.equal(marked, CLOSE_WILL_BE_LOST);
    lost.ws.terminate();
    // The runtime knows the socket is gone; the object was never told.
    const stats = await waitFor(
      async () => {
        const s = await app.stats(user);
        return s.socketsOpen === n - 1 ? s : null;
      },
      { what: 'the runtime to see the dropped socket' },
    );
    assert.equal(stats.active, n, 'the close event was lost: its lease is still held');
    assert.ok(stats.leases.some((/** @type {{ id: string }} */ l) => l.id === lost.leaseId));
    assert.equal(stats.stats.released, 0);
    return { sockets, lostId: lost.leaseId };
  }

  test('at the limit, the next connect reconciles the lost lease away instead of refusing', async () => {
    const { sockets, lostId } = await loseOne('lara', LIMIT);
    const before = await app.stats('lara');

    const next = await openOne(app, 'lara');
    const stats = await app.stats('lara');
    assert.equal(stats.stats.reconciled, 1, 'the lost lease was reconciled');
    assert.equal(stats.stats.rejected, 0, 'no refusal');
    assert.ok(!stats.leases.some((/** @type {{ id: string }} */ l) => l.id === lostId));
    assert.deepEqual(stats.leases.map((/** @type {{ id: string }} */ l) => l.id).sort(), [...sockets.map((c) => c.leaseId), next.leaseId].sort());
    assert.equal(before.stats.reconciled, 0, 'nothing had reconciled it before the connect');
    // The full limit, and no more.
    assert.equal((await app.connect('lara')).status, 429);
    const all = [...sockets, next];
    for (const c of all) c.ws.close(1000);
    await Promise.all(all.map((c) => c.closed));
    await waitFor(async () => (await app.stats('lara')).active === 0, { what: 'lara to hold no lease' });
    assert.equal((await app.stats('lara')).stats.unknownReleases, 0);
  });

  test('below the limit, the alarm reconciles the lost lease away with no connect; the user reconnects to the full limit', async () => {
    const { sockets, lostId } = await loseOne('lars', 2);
    // The other socket heartbeats, so that it is not what expires meanwhile.
    const timer = setInterval(() => sockets[0].ws.send(HEARTBEAT_PING), HEARTBEAT_MS);
    try {
      // No connect from here on: only the alarm (a quarter TTL before the first expiry)
      // can notice.
      const stats = await waitFor(
        async () => {
          const s = await app.stats('lars');
          return s.active === 1 ? s : null;
        },
        { timeoutMs: 3 * TTL_MS, what: 'the alarm to reconcile the lost lease' },
      );
      assert.equal(stats.stats.reconciled, 1);
      assert.equal(stats.stats.acquired, 2, 'no connect happened meanwhile');
      assert.equal(stats.stats.expired, 0, 'reclaimed as a lease without a socket, not by expiry');
      assert.deepEqual(
        stats.leases.map((/** @type {{ id: string }} */ l) => l.id),
        [sockets[0].leaseId],
      );
      assert.ok(stats.leases.every((/** @type {{ id: string }} */ l) => l.id !== lostId));

      await assertFullLimitAvailable(app, 'lars', 1);
    } finally {
      clearInterval(timer);
    }
    sockets[0].ws.close(1000);
    await sockets[0].closed;
  });
});
