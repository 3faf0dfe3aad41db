// The demo page's simulation model (www/sim.mjs) on the Node build of the package: the
// same scenarios the page tests click through, checked here without a browser so a
// failure points at the model rather than at the page.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LeaseRegistry, sameLease } from 'socket-lease';
import { LeakyHost, Simulation, gaugeLevel, heartbeatMsFor } from '../../../www/sim.mjs';

const START = Date.UTC(2025, 0, 1);

function sim(options = {}) {
  const s = new Simulation({ LeaseRegistry, startMs: START, options: { limit: 5, ttlMs: 60_000, ...options } });
  s.addUser('alice');
  return s;
}

test('limit 5: the sixth connection is refused by both hosts with a retry time from the guarded one', () => {
  const s = sim();
  for (let i = 0; i < 5; i++) assert.equal(s.open('alice').guarded.ok, true);
  const sixth = s.open('alice');
  assert.equal(sixth.guarded.ok, false);
  assert.equal(sixth.leaky.ok, false);
  assert.equal(sixth.conn, null);
  const view = s.view('alice');
  assert.deepEqual([view.guarded.active, view.guarded.limit, view.guarded.level], [5, 5, 'full']);
  assert.deepEqual(view.refusals, { guarded: 1, leaky: 1 });
  assert.equal(view.answers.guarded?.ok, false);
  assert.equal(view.answers.guarded?.reason, 'user-limit');
  assert.equal(view.answers.guarded?.retryAfterMs, 60_000);
  assert.match(view.answers.guarded?.text ?? '', /HTTP 429, user-limit \(5 of 5\), Retry-After 60 s/);
  assert.ok(s.log.some((e) => e.host === 'guarded' && e.type === 'rejected'));
  assert.ok(s.log.some((e) => e.host === 'guarded' && e.type === 'near-limit'));
});

test('close one and open again: the guarded host admits it, the leaky host stays locked', () => {
  const s = sim();
  for (let i = 0; i < 5; i++) s.open('alice');
  s.close('alice#2');
  assert.equal(s.view('alice').guarded.active, 4);
  assert.equal(s.view('alice').leaky.held, 5, 'the leaky disconnect path never frees its manager');
  const again = s.open('alice');
  assert.equal(again.guarded.ok, true);
  assert.equal(again.leaky.ok, false);
  assert.equal(s.view('alice').leaky.locked, true);
  assert.equal(s.view('alice').leaky.ghosts, 1);
  // Time does not help the leaky host either.
  s.advance(10 * 60_000);
  assert.equal(s.view('alice').leaky.locked, true);
  assert.equal(s.open('alice').leaky.ok, false);
});

test('a killed connection is reclaimed after its TTL while open ones keep their leases by heartbeat', () => {
  const s = sim();
  for (let i = 0; i < 5; i++) s.open('alice');
  s.kill('alice#3');
  assert.equal(s.open('alice').guarded.ok, false, 'still held: nobody told the host');
  s.advance(59_000);
  assert.equal(s.view('alice').guarded.active, 5);
  s.advance(1_000);
  assert.equal(s.view('alice').guarded.active, 4);
  assert.equal(s.connections.has('alice#3'), false);
  assert.deepEqual(
    s.connectionsOf('alice').map((c) => c.key),
    ['alice#1', 'alice#2', 'alice#4', 'alice#5'],
  );
  const expired = s.log.filter((e) => e.type === 'expired');
  assert.equal(expired.length, 1);
  assert.match(expired[0].text, /#3 .*killed/);
  assert.equal(s.open('alice').guarded.ok, true);
});

test('without heartbeats every lease expires after the TTL', () => {
  const s = sim();
  s.heartbeats = false;
  s.open('alice');
  s.open('alice');
  s.advance(60_000);
  assert.equal(s.view('alice').guarded.active, 0);
  assert.equal(s.connections.size, 0);
});

test('messages: one lease per connection on the guarded host, one manager per message on the leaky one', () => {
  const s = sim();
  const { conn } = s.open('alice');
  assert.ok(conn);
  const leaseId = conn.lease.id;
  for (let i = 0; i < 4; i++) s.send(conn.key);
  assert.equal(s.view('alice').guarded.active, 1);
  assert.equal(conn.lease.id, leaseId);
  assert.equal(s.view('alice').leaky.held, 5);
  assert.equal(s.view('alice').leaky.locked, true, 'one socket and four messages lock the user out, as in the incident');
  s.send(conn.key);
  assert.equal(s.view('alice').refusals.leaky, 1);
});

test('heartbeat renews by the thread_ id and close releases by the run_ id: one suffix, one lease', () => {
  const s = sim();
  const { conn } = s.open('alice');
  assert.ok(conn);
  const { id, runId, threadId } = conn.lease;
  assert.ok(sameLease(id, runId) && sameLease(id, threadId));
  assert.equal(id.slice(5), threadId.slice(7));
  s.advance(30_000);
  s.heartbeats = false;
  assert.equal(s.heartbeat(conn.key), true);
  assert.equal(s.registry.getLease(id).expiresAt, s.now + 60_000);
  s.close(conn.key);
  assert.equal(s.registry.getLease(id), null);
  assert.equal(s.registry.stats().unknownReleases, 0);
});

test('evict-oldest: the oldest connection is closed to admit the new one', () => {
  const s = sim({ limit: 2, policy: 'evict-oldest' });
  s.open('alice');
  s.open('alice');
  const third = s.open('alice');
  assert.equal(third.guarded.ok, true);
  assert.deepEqual(
    s.connectionsOf('alice').map((c) => c.key),
    ['alice#2', 'alice#3'],
  );
  assert.ok(s.log.some((e) => e.type === 'evicted' && /#1 /.test(e.text)));
});

test('setOptions changes limit, TTL and policy on both hosts', () => {
  const s = sim({ limit: 2 });
  s.open('alice');
  s.open('alice');
  s.setOptions({ limit: 3, ttlMs: 10_000 });
  assert.equal(s.open('alice').guarded.ok, true);
  assert.equal(s.leaky.limit, 3);
  assert.equal(s.registry.getOptions().ttlMs, 10_000);
  assert.equal(heartbeatMsFor(10_000), 3333);
});

test('users are independent; the timeline samples every change', () => {
  const s = sim({ limit: 1 });
  s.addUser('bob');
  assert.equal(s.addUser('bob'), false);
  assert.equal(s.open('alice').guarded.ok, true);
  assert.equal(s.open('bob').guarded.ok, true);
  assert.equal(s.open('bob').guarded.ok, false);
  const last = s.samples[s.samples.length - 1];
  assert.deepEqual(
    { guarded: last.guarded, leaky: last.leaky, guardedRejected: last.guardedRejected, leakyRejected: last.leakyRejected },
    { guarded: 2, leaky: 2, guardedRejected: 1, leakyRejected: 1 },
  );
  assert.equal(s.samples.length, 4);
});

test('gauge levels follow the warn ratio', () => {
  assert.equal(gaugeLevel(3, 5, 0.8), 'ok');
  assert.equal(gaugeLevel(4, 5, 0.8), 'warn');
  assert.equal(gaugeLevel(5, 5, 0.8), 'full');
  assert.equal(gaugeLevel(4, 5, 1), 'ok');
  assert.equal(gaugeLevel(3, 5, 0.6), 'warn');
});

test('the leaky host builds its two ids the incident\u2019s inconsistent ways', () => {
  const host = new LeakyHost(2);
  const a = host.create('alice', 1000);
  assert.ok(a.ok && a.ids);
  assert.equal(a.ids.runId, 'websocket_factory_1000');
  assert.match(a.ids.threadId, /^thread_websocket_factory_1000_1_[0-9a-f]{8}$/);
  host.create('alice', 1000);
  assert.deepEqual(host.create('alice', 1000), { ok: false, held: 2 });
  assert.equal(host.rejected, 1);
});
