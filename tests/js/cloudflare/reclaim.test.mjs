// Reclaiming slots whose peers are gone or silent, in workerd (miniflare). The TTL is
// short so the alarm runs within the test; every wait is a bounded poll for a condition.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { roundTrip, startExample, waitFor } from './harness.mjs';

// The documented protocol (README, "Cloudflare Workers").
const CLOSE_LEASE_EXPIRED = 4009;
const HEARTBEAT_PING = '{"type":"ping"}';
const HEARTBEAT_PONG = '{"type":"pong"}';

const LIMIT = 3;
const TTL_MS = 2000;

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
    const stats = await waitFor(async () => {
      const s = await app.stats('frank');
      return s.active === LIMIT - 1 ? s : null;
    }, { what: 'the dropped socket\'s lease to be reclaimed' });
    const ids = stats.leases.map((/** @type {{ id: string }} */ l) => l.id);
    assert.ok(!ids.includes(dropped.leaseId), 'the dropped lease is gone');
    assert.deepEqual(ids.sort(), sockets.slice(1).map((c) => c.leaseId).sort(), 'the live ones are kept');

    await assertFullLimitAvailable(app, 'frank', LIMIT - 1);
    for (const c of sockets.slice(1)) c.ws.close(1000);
    await Promise.all(sockets.slice(1).map((c) => c.closed));
  });

  test('a silent peer is closed with 4009 after the TTL; a heartbeating peer keeps its lease', async () => {
    const silent = await openOne(app, 'gina');
    const beating = await openOne(app, 'gina');
    /** @type {{ code: number, reason: string } | null} */
    let beatingClosed = null;
    void beating.closed.then((c) => (beatingClosed = c));
    let pongs = 0;
    beating.ws.on('message', (data) => {
      if (data.toString() === HEARTBEAT_PONG) pongs++;
    });
    // A client heartbeat well inside the TTL, as the README advises (TTL / 4).
    const timer = setInterval(() => beating.ws.send(HEARTBEAT_PING), TTL_MS / 4);
    try {
      const { leases: [first] } = await app.stats('gina');
      const acquiredAt = Math.min(first.acquiredAt, Date.now());

      const closed = await silent.closed;
      assert.equal(closed.code, CLOSE_LEASE_EXPIRED, `silent peer close: ${JSON.stringify(closed)}`);
      assert.equal(closed.reason, 'lease expired or revoked; reconnect');

      // The heartbeating peer's lease is extended by the alarm from the runtime's record of
      // auto-answered heartbeats: wait until it has lived through two more TTLs.
      const stats = await waitFor(async () => {
        assert.equal(beatingClosed, null, 'the heartbeating peer must stay open');
        const s = await app.stats('gina');
        const lease = s.leases.find((/** @type {{ id: string }} */ l) => l.id === beating.leaseId);
        assert.ok(lease, 'the heartbeating peer must keep its lease');
        return lease.touchedAt >= acquiredAt + 2 * TTL_MS ? s : null;
      }, { what: 'the heartbeating lease to be extended past two TTLs' });
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
