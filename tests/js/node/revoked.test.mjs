// The guard's hook for stores shared by several hosts: a store that emits `revoked` (a
// lease whose socket this host holds was removed by another host) gets that socket closed,
// 4008 for an eviction and 4009 otherwise, and the lease is never released again here.
import { test as nodeTest } from 'node:test';
import assert from 'node:assert/strict';
import { CloseCodes } from 'socket-lease/node';
import { SharedStore, closed, echo, open, startDemo, waitFor } from './helpers.mjs';

/** @param {string} name @param {(t: import('node:test').TestContext) => unknown} fn */
const test = (name, fn) => nodeTest(name, { timeout: 60_000 }, fn);

test('a lease evicted by another host closes its socket here with 4008; released or expired elsewhere, 4009', async (t) => {
  const store = new SharedStore({ perUserLimit: 5 });
  const demo = await startDemo(t, { heartbeatMs: 5_000, guard: { store } });
  t.after(() => store.registry.free());
  const url = `${demo.wsUrl}?user=rita`;
  const sockets = [await open(url), await open(url), await open(url)];
  const ids = [];
  for (const ws of sockets) ids.push((await echo(ws, 'hi')).leaseId);

  const codes = sockets.map((ws) => closed(ws));
  store.removeElsewhere(ids[0], 'evicted');
  store.removeElsewhere(ids[1], 'released');
  store.removeElsewhere(ids[2], 'expired');
  assert.equal((await codes[0]).code, CloseCodes.EVICTED);
  assert.equal((await codes[1]).code, CloseCodes.LEASE_EXPIRED);
  assert.equal((await codes[2]).code, CloseCodes.LEASE_EXPIRED);

  await waitFor(() => demo.guard.stats().socketsOpen === 0, 'the guard forgot the sockets');
  const s = demo.guard.stats();
  assert.equal(s.closes[4008], 1);
  assert.equal(s.closes[4009], 2);
  // The store already dropped them: the guard released none of them a second time.
  assert.equal(s.released, 0);
  assert.equal(store.registry.stats().unknownReleases, 0);
});

test('a revocation for a lease this host does not hold changes nothing; close() stops listening', async (t) => {
  const store = new SharedStore({ perUserLimit: 5 });
  const demo = await startDemo(t, { heartbeatMs: 5_000, guard: { store } });
  t.after(() => store.registry.free());
  assert.equal(store.events.listenerCount('revoked'), 1);
  const ws = await open(`${demo.wsUrl}?user=sam`);
  store.events.emit('revoked', { leaseId: 'conn_01h455vb4pex5vsknk084sn02q', reason: 'evicted' });
  assert.equal((await echo(ws, 'still here')).data, 'still here');
  ws.close();
  await closed(ws);
  await waitFor(() => store.registry.stats().active === 0, 'released on close');
  await demo.close();
  assert.equal(store.events.listenerCount('revoked'), 0);
});
