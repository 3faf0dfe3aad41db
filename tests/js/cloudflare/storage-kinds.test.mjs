// Storage layout at a high limit, on both kinds of Durable Object storage, in workerd
// (miniflare): each lease is its own small record, so a user's leases never have to fit
// one value.
//
// The user id is 256 bytes (the longest the adapter accepts), so that 500 leases would
// already weigh ~150 KB as the single snapshot the adapter used to rewrite on every
// connect and release: over the 128 KiB per value of a KV-backed class. Local workerd does
// not enforce that limit, so the test worker (hooks-worker.mjs) checks every storage call
// against it when the class is KV-backed; the SQLite-backed class runs as deployed.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { roundTrip, startExample, tempDir, waitFor } from './harness.mjs';

const LIMIT = 500;
const USER = 'wide-user:'.padEnd(256, 'w');
const LEASE_PREFIX = 'socket-lease:lease:';
const META_KEY = 'socket-lease:meta';
// Generous: a record is ~100 B and the meta record ~250 B.
const MAX_VALUE_BYTES = 1024;

/** @typedef {Awaited<ReturnType<typeof startExample>>} App */

/** @param {{ sizes: Record<string, number> }} view */
function layout(view) {
  const keys = Object.keys(view.sizes);
  return {
    records: keys.filter((k) => k.startsWith(LEASE_PREFIX)),
    others: keys.filter((k) => !k.startsWith(LEASE_PREFIX)),
    largest: Math.max(0, ...Object.values(view.sizes)),
  };
}

/**
 * Opens `n` sockets for USER, a few at a time, each required to be accepted.
 * @param {App} app
 * @param {number} n
 */
async function openMany(app, n) {
  /** @type {Array<{ ws: import('ws').WebSocket, closed: Promise<{ code: number }> }>} */
  const out = [];
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const c = await app.connect(USER);
      assert.ok(c.ws, `socket ${i + 1} of ${n} refused: ${JSON.stringify({ status: c.status, body: c.body })}`);
      out.push({ ws: c.ws, closed: c.closed });
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  return out;
}

for (const kind of /** @type {const} */ (['kv', 'sqlite'])) {
  describe(`cloudflare: ${LIMIT} leases of a 256-byte user on a ${kind === 'kv' ? 'KV-backed' : 'SQLite-backed'} class`, { timeout: 180_000 }, () => {
    /** @type {Array<() => Promise<unknown>>} */
    const cleanups = [];
    after(async () => {
      for (const fn of cleanups.reverse()) await fn();
    });

    test('one small record per lease: the limit holds, releases delete records, a restart reclaims the rest', async () => {
      const storage = await tempDir();
      cleanups.push(storage.remove);
      const vars = { SOCKET_LEASE_LIMIT: String(LIMIT) };
      const first = await startExample({ vars, testHooks: true, storage: kind, persistDir: storage.dir });
      let firstDisposed = false;
      cleanups.push(() => (firstDisposed ? Promise.resolve() : first.dispose()));

      const sockets = await openMany(first, LIMIT);
      const over = await first.connect(USER);
      assert.equal(over.status, 429);
      assert.deepEqual(over.body, { reason: 'user-limit', limit: LIMIT, active: LIMIT });
      assert.equal((await roundTrip(sockets[0].ws, 'still works')).type, 'echo');

      let view = layout(await first.storage(USER));
      assert.equal(view.records.length, LIMIT, 'one record per lease');
      assert.deepEqual(view.others, [META_KEY], 'and one meta record, nothing else');
      assert.ok(view.largest <= MAX_VALUE_BYTES, `largest stored value: ${view.largest} B`);
      const stats = await first.stats(USER);
      assert.deepEqual(
        view.records.map((k) => k.slice(LEASE_PREFIX.length)).sort(),
        stats.leases.map((/** @type {{ id: string }} */ l) => l.id).sort(),
        'the records are the leases the registry holds',
      );

      // Clean closes delete their records before the close is answered.
      const closing = sockets.splice(0, LIMIT / 2);
      for (const c of closing) c.ws.close(1000);
      await Promise.all(closing.map((c) => c.closed));
      await waitFor(async () => (await first.stats(USER)).active === LIMIT / 2, { what: 'half the leases to be released' });
      view = layout(await first.storage(USER));
      assert.equal(view.records.length, LIMIT / 2);

      // The runtime goes away with the other half of the sockets: no close event.
      await first.dispose();
      firstDisposed = true;

      const second = await startExample({ vars, testHooks: true, storage: kind, persistDir: storage.dir });
      cleanups.push(() => second.dispose());
      const after = await second.stats(USER);
      assert.equal(after.active, 0, 'no lease outlives its socket');
      assert.equal(after.stats.acquired, LIMIT, 'the counters came back from the meta record');
      assert.equal(after.stats.rejected, 1);
      assert.equal(after.stats.reconciled, LIMIT / 2);
      assert.equal(after.stats.released, LIMIT);
      view = layout(await second.storage(USER));
      assert.deepEqual(view.records, [], "the reclaimed leases' records are deleted");

      // The full limit is there again.
      const again = await openMany(second, LIMIT);
      assert.equal((await second.connect(USER)).status, 429);
      for (const c of again) c.ws.close(1000);
      await Promise.all(again.map((c) => c.closed));
      await waitFor(async () => (await second.stats(USER)).active === 0, { what: 'every lease to be released' });
      // An idle user keeps only its meta record (so its counters never go back), and no
      // alarm: it costs that storage and no wake-up (docs/cloudflare.md, retention).
      const idle = await second.storage(USER);
      view = layout(idle);
      assert.deepEqual(view.records, []);
      assert.deepEqual(view.others, [META_KEY]);
      assert.ok(idle.sizes[META_KEY] <= 300 + 256, `meta record: ${idle.sizes[META_KEY]} B`);
      assert.equal(idle.alarm, null, 'no alarm once nothing is held');
      assert.equal(idle.meta.counters.rejected, 2, 'the last refusal was written too');
    });
  });
}
