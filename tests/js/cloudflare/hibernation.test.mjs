// Hibernation in real workerd: an object with only hibernatable sockets is evicted from
// memory after about ten idle seconds, and the next event (here mostly its alarm) builds a
// new instance from storage. Leases must survive that: a heartbeating peer keeps its lease
// across restarts of its object, a silent peer is still closed, nothing comes back.
//
// Slow by nature (about 50 s): an object only hibernates while nothing talks to it, so this
// file polls every 25 s instead of every 50 ms, and the TTL is long enough (20 s) that the
// alarms themselves leave the object idle for more than ten seconds.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { roundTrip, startExample, waitFor } from './harness.mjs';

const TTL_MS = 20_000;
const CLOSE_LEASE_EXPIRED = 4009;
const HEARTBEAT_PING = '{"type":"ping"}';

/** @type {Awaited<ReturnType<typeof startExample>>} */
let app;
before(async () => {
  app = await startExample({ vars: { SOCKET_LEASE_LIMIT: '3', SOCKET_LEASE_TTL_MS: String(TTL_MS) } });
});
after(() => app?.dispose());

test('leases survive their object hibernating: a heartbeating peer keeps its lease, a silent one is closed', { timeout: 180_000 }, async () => {
  const silent = await app.connect('hugo-silent');
  const beating = await app.connect('hugo');
  assert.ok(silent.ws && beating.ws);
  const silentId = (await roundTrip(silent.ws, 'hi')).leaseId;
  const beatingId = (await roundTrip(beating.ws, 'hi')).leaseId;
  /** @type {{ code: number } | null} */
  let beatingClosed = null;
  void beating.closed.then((c) => (beatingClosed = c));
  // Answered by the runtime: these never wake the object.
  const timer = setInterval(() => beating.ws.send(HEARTBEAT_PING), TTL_MS / 8);
  try {
    const { acquiredAt } = (await app.stats('hugo')).leases[0];
    let lastContact = Date.now();
    let restarts = 0;
    const stats = await waitFor(
      async () => {
        assert.equal(beatingClosed, null, 'the heartbeating peer must stay open');
        const s = await app.stats('hugo');
        // An instance newer than our last request: the object was rebuilt from storage.
        if (s.objectStartedAt > lastContact) restarts++;
        lastContact = Date.now();
        const lease = s.leases.find((/** @type {{ id: string }} */ l) => l.id === beatingId);
        assert.ok(lease, 'the heartbeating peer must keep its lease');
        return restarts > 0 && lease.touchedAt > acquiredAt + 2 * TTL_MS ? s : null;
      },
      { intervalMs: 25_000, timeoutMs: 150_000, what: 'a restart of the object and a renewal past two TTLs' },
    );
    assert.equal(stats.active, 1);
    assert.equal(stats.socketsOpen, 1);
    assert.equal(stats.stats.acquired, 1);
    assert.equal(stats.stats.expired, 0);
    // The socket still works, on the same lease.
    assert.equal((await roundTrip(beating.ws, 'after')).leaseId, beatingId);

    // Meanwhile the silent peer's object (also hibernating) closed it, and it stays gone.
    assert.equal((await silent.closed).code, CLOSE_LEASE_EXPIRED);
    const quiet = await app.stats('hugo-silent');
    assert.equal(quiet.active, 0);
    assert.ok(!quiet.leases.some((/** @type {{ id: string }} */ l) => l.id === silentId));
    assert.equal(quiet.stats.expired, 1);
  } finally {
    clearInterval(timer);
  }
  beating.ws.close(1000);
  await beating.closed;
});
