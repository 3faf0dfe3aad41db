// Durable Object storage across a restart of the runtime: each lease is persisted as its
// own record, so a new workerd on the same storage knows every lease the old one granted,
// reclaims those whose sockets died with it (records included), resurrects none and keeps
// the limits. The runtime restart kills every socket; a lease kept alive across its
// object's rebuild is hibernation.test.mjs's case.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { roundTrip, startExample, tempDir, waitFor } from './harness.mjs';

const LIMIT = 3;
const vars = { SOCKET_LEASE_LIMIT: String(LIMIT) };

/** @type {Array<() => Promise<unknown>>} */
const cleanups = [];
after(async () => {
  for (const fn of cleanups.reverse()) await fn();
});

/**
 * @param {Awaited<ReturnType<typeof startExample>>} app
 * @param {string} user
 */
async function openOne(app, user) {
  const c = await app.connect(user);
  assert.ok(c.ws, `${user} refused: ${JSON.stringify(c)}`);
  const echo = await roundTrip(c.ws, 'hi');
  return { ws: c.ws, closed: c.closed, leaseId: /** @type {string} */ (echo.leaseId) };
}

/** @param {{ leases: Array<{ id: string }> }} stats */
const leaseIds = (stats) => stats.leases.map((l) => l.id).sort();

/**
 * The lease ids of the records in `user`'s object storage (needs testHooks).
 * @param {Awaited<ReturnType<typeof startExample>>} app
 * @param {string} user
 */
async function recordIds(app, user) {
  const prefix = 'socket-lease:lease:';
  const { sizes } = await app.storage(user);
  return Object.keys(sizes)
    .filter((k) => k.startsWith(prefix))
    .map((k) => k.slice(prefix.length))
    .sort();
}

test('after a restart on persisted storage: dead sockets reclaimed, no lease or record left behind or resurrected, limits hold', {
  timeout: 120_000,
}, async () => {
  const storage = await tempDir();
  cleanups.push(storage.remove);

  // First runtime: hank fills his limit and closes one socket cleanly; ivy holds one. (The
  // test worker is the example plus a view of the stored records.)
  const first = await startExample({ vars, persistDir: storage.dir, testHooks: true });
  let firstDisposed = false;
  cleanups.push(() => (firstDisposed ? Promise.resolve() : first.dispose()));
  const hank = [];
  for (let i = 0; i < LIMIT; i++) hank.push(await openOne(first, 'hank'));
  const ivy = await openOne(first, 'ivy');
  assert.equal((await first.connect('hank')).status, 429);
  hank[0].ws.close(1000);
  await hank[0].closed;
  await waitFor(async () => (await first.stats('hank')).active === LIMIT - 1, { what: 'the clean close to be released' });
  const before = await first.stats('hank');
  assert.deepEqual(
    leaseIds(before),
    hank
      .slice(1)
      .map((c) => c.leaseId)
      .sort(),
  );
  assert.deepEqual(await recordIds(first, 'hank'), leaseIds(before), 'one record per lease held');

  // The runtime goes away with its sockets (as on an eviction or a crash): no close
  // event reaches the object.
  await first.dispose();
  firstDisposed = true;
  for (const c of [...hank.slice(1), ivy]) assert.equal((await c.closed).code, 1006);

  // Second runtime, same storage.
  const second = await startExample({ vars, persistDir: storage.dir, testHooks: true });
  cleanups.push(() => second.dispose());
  const after = await second.stats('hank');
  // The counters come back from the snapshot: the leases were persisted, not lost...
  assert.equal(after.stats.acquired, LIMIT);
  assert.equal(after.stats.rejected, 1);
  // ...the two whose sockets are gone were reconciled away on wake, and the one released
  // before the restart did not come back (it would have been reconciled too).
  assert.equal(after.stats.reconciled, LIMIT - 1);
  assert.equal(after.stats.released, LIMIT);
  assert.equal(after.active, 0);
  assert.deepEqual(after.leases, []);
  assert.equal(after.socketsOpen, 0);
  assert.deepEqual(await recordIds(second, 'hank'), [], 'their records were deleted with them');

  // The full limit is available again, with new leases only, and it still holds.
  const again = [];
  for (let i = 0; i < LIMIT; i++) again.push(await openOne(second, 'hank'));
  const over = await second.connect('hank');
  assert.equal(over.status, 429);
  assert.deepEqual(over.body, { reason: 'user-limit', limit: LIMIT, active: LIMIT });
  const now = await second.stats('hank');
  assert.deepEqual(leaseIds(now), again.map((c) => c.leaseId).sort());
  const old = new Set(hank.map((c) => c.leaseId));
  assert.ok(
    again.every((c) => !old.has(c.leaseId)),
    'no old lease id reused',
  );
  // Storage holds the new leases' records and nothing else: no old record came back
  // beside them (it would count against the limit on the next wake).
  assert.deepEqual(await recordIds(second, 'hank'), leaseIds(now));

  // The other user's object came back the same way.
  const ivyAfter = await second.stats('ivy');
  assert.equal(ivyAfter.active, 0);
  assert.equal(ivyAfter.stats.reconciled, 1);

  for (const c of again) c.ws.close(1000);
  await Promise.all(again.map((c) => c.closed));
  await waitFor(async () => (await second.stats('hank')).active === 0, { what: 'hank to hold no lease' });
});

test('a store in the old one-snapshot layout is read once, migrated to per-lease records, and its dead leases reclaimed', { timeout: 60_000 }, async () => {
  const app = await startExample({ vars, testHooks: true });
  cleanups.push(() => app.dispose());
  // Only the old layout: a core snapshot with two leases whose sockets do not exist.
  const reset = await fetch(`${app.base}/__test/legacy?user=old-hank&leases=2`);
  assert.equal(reset.status, 500, 'the object was reset to read the old layout');

  const stats = await app.stats('old-hank');
  assert.equal(stats.stats.acquired, 2, 'the old snapshot was read (its counters are back)');
  assert.equal(stats.stats.reconciled, 2, 'its leases had no sockets: reclaimed, not resurrected');
  assert.equal(stats.active, 0);
  const { sizes } = await app.storage('old-hank');
  assert.deepEqual(Object.keys(sizes), ['socket-lease:meta'], 'the old keys are gone; only the meta record is left');

  // The user has the full limit.
  const held = [];
  for (let i = 0; i < LIMIT; i++) held.push(await openOne(app, 'old-hank'));
  assert.equal((await app.connect('old-hank')).status, 429);
  assert.equal(Object.keys((await app.storage('old-hank')).sizes).length, LIMIT + 1);
  for (const c of held) c.ws.close(1000);
  await Promise.all(held.map((c) => c.closed));
});

test('refusals reach storage by themselves: the rejected counter survives a restart with no connect or close after them', { timeout: 60_000 }, async () => {
  const storage = await tempDir();
  cleanups.push(storage.remove);
  const opts = { vars: { SOCKET_LEASE_LIMIT: '1' }, persistDir: storage.dir, testHooks: true };
  const first = await startExample(opts);
  let firstDisposed = false;
  cleanups.push(() => (firstDisposed ? Promise.resolve() : first.dispose()));
  await openOne(first, 'rita');
  for (let i = 0; i < 3; i++) assert.equal((await first.connect('rita')).status, 429);
  // Nothing else happens to the object: only the refusals themselves can get the counter
  // written (within about a second, by the object's alarm).
  await waitFor(async () => (await first.storage('rita')).meta?.counters?.rejected === 3, { timeoutMs: 10_000, what: 'the three refusals to reach storage' });
  // The runtime goes away (as when the object is evicted): no close event, no write.
  await first.dispose();
  firstDisposed = true;

  const second = await startExample(opts);
  cleanups.push(() => second.dispose());
  const after = await second.stats('rita');
  assert.equal(after.stats.rejected, 3, 'a counter never goes back');
  assert.equal(after.stats.acquired, 1);
  assert.equal(after.stats.reconciled, 1, 'the socket died with the runtime');
});
