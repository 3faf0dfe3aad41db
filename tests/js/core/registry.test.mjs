// The LeaseRegistry contract through the package, imported by its own name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LeaseRegistry, LeaseError, deriveId } from 'socket-lease';

const T0 = 1_700_000_000_000;

test('acquire grants up to the limit, then refuses with an actionable answer', () => {
  const reg = new LeaseRegistry({ perUserLimit: 5, ttlMs: 10_000 });
  const leases = [];
  for (let i = 0; i < 5; i++) {
    const r = reg.acquire('alice', { now: T0 + i });
    assert.equal(r.ok, true);
    assert.deepEqual(r.evicted, []);
    assert.equal(r.reused, false);
    leases.push(r.lease);
  }
  const l = leases[0];
  assert.match(l.id, /^conn_[0-7][0-9a-hjkmnp-tv-z]{25}$/);
  assert.equal(l.connectionId, l.id);
  assert.equal(l.runId, 'run_' + l.id.slice(5));
  assert.equal(l.threadId, 'thread_' + l.id.slice(5));
  assert.equal(l.userId, 'alice');
  assert.equal(l.acquiredAt, T0);
  assert.equal(l.expiresAt, T0 + 10_000);
  const refused = reg.acquire('alice', { now: T0 + 100 });
  assert.deepEqual(refused, { ok: false, reason: 'user-limit', limit: 5, active: 5, retryAfterMs: 9_900 });
  assert.equal(reg.acquire('bob', { now: T0 + 100 }).ok, true, 'other users are unaffected');
});

test('one lease per connection: the same key returns the same lease', () => {
  const reg = new LeaseRegistry({ perUserLimit: 1 });
  const first = reg.acquire('alice', { connectionKey: 'socket-1', now: T0 });
  for (let i = 1; i <= 500; i++) {
    const again = reg.acquire('alice', { connectionKey: 'socket-1', now: T0 + i });
    assert.equal(again.ok && again.lease.id, first.ok && first.lease.id);
    assert.equal(again.ok && again.reused, true);
  }
  assert.equal(reg.stats().active, 1);
  assert.equal(reg.stats().acquired, 1);
});

test('release by any derived id, idempotent, unknown ids counted, never thrown', () => {
  const reg = new LeaseRegistry();
  const { lease } = /** @type {any} */ (reg.acquire('alice'));
  assert.equal(reg.release(lease.threadId), true);
  assert.equal(reg.release(lease.runId), false);
  assert.equal(reg.release(lease.id), false);
  assert.equal(reg.release(deriveId(lease.id, 'session')), false, 'a kind this registry never issued');
  const s = reg.stats();
  assert.equal(s.released, 1);
  assert.equal(s.unknownReleases, 3);
  assert.equal(s.active, 0);
  assert.throws(
    () => reg.release('conn_garbage'),
    (e) => e instanceof LeaseError && e.code === 'INVALID_ID',
  );
});

test('TTL: expired leases are reclaimed on the next acquire, and reported by sweep', () => {
  const events = [];
  const reg = new LeaseRegistry({ perUserLimit: 1, ttlMs: 1_000, onEvent: (e) => events.push(e) });
  const a = /** @type {any} */ (reg.acquire('alice', { now: T0 }));
  assert.equal(reg.touch(a.lease.runId, T0 + 900), true);
  assert.equal(reg.acquire('alice', { now: T0 + 1_800 }).ok, false);
  assert.equal(reg.touch(a.lease.id, T0 + 1_900), false, 'expired at its expiry time');
  const b = reg.acquire('alice', { now: T0 + 1_901 });
  assert.equal(b.ok, true, 'no sweep needed');
  assert.deepEqual(reg.sweep(T0 + 1_902), [a.lease.id]);
  assert.deepEqual(reg.sweep(T0 + 1_903), []);
  const expired = events.filter((e) => e.type === 'expired');
  assert.equal(expired.length, 1);
  assert.equal(expired[0].leaseId, a.lease.id);
  assert.equal(reg.stats().expired, 1);
});

test('sweep returns every expired lease and only those', () => {
  const reg = new LeaseRegistry({ perUserLimit: 100, ttlMs: 100 });
  const early = [];
  for (let i = 0; i < 30; i++) early.push(/** @type {any} */ (reg.acquire(`u${i}`, { now: T0 })).lease.id);
  for (let i = 0; i < 30; i++) reg.acquire(`u${i}`, { now: T0 + 50 });
  assert.deepEqual(reg.sweep(T0 + 100).sort(), early.sort());
  assert.equal(reg.stats().active, 30);
});

test('reconcile releases leases whose sockets are gone; one bad id changes nothing', () => {
  const reg = new LeaseRegistry();
  const ids = [0, 1, 2].map(() => /** @type {any} */ (reg.acquire('alice')).lease);
  assert.throws(() => reg.reconcile([ids[0].id, 42]), { code: 'INVALID_ID' });
  assert.throws(() => reg.reconcile([ids[0].id, 'nope']), { code: 'INVALID_ID' });
  assert.equal(reg.stats().active, 3);
  const released = reg.reconcile(new Set([ids[0].id, ids[2].threadId]));
  assert.deepEqual(released, [ids[1].id]);
  assert.equal(reg.stats().reconciled, 1);
});

test('evict-oldest and evict-idle hand back the evicted ids', () => {
  for (const [policy, victim] of [
    ['evict-oldest', 0],
    ['evict-idle', 1],
  ]) {
    const events = [];
    const reg = new LeaseRegistry({ perUserLimit: 3, onLimit: /** @type {any} */ (policy), onEvent: (e) => events.push(e) });
    const ids = [0, 1, 2].map((i) => /** @type {any} */ (reg.acquire('alice', { now: T0 + i * 10 })).lease.id);
    reg.touch(ids[0], T0 + 50);
    const r = /** @type {any} */ (reg.acquire('alice', { now: T0 + 60 }));
    assert.equal(r.ok, true, policy);
    assert.deepEqual(r.evicted, [ids[victim]], policy);
    assert.equal(reg.getLease(ids[victim]), null);
    assert.ok(events.some((e) => e.type === 'evicted' && e.leaseId === ids[victim]));
    assert.equal(reg.stats().evicted, 1);
  }
});

test('global limit and the bounded user table refuse with their own reasons', () => {
  const reg = new LeaseRegistry({ perUserLimit: 5, globalLimit: 2, maxUsers: 10 });
  reg.acquire('a', { now: T0 });
  reg.acquire('b', { now: T0 });
  const r = reg.acquire('c', { now: T0 + 10 });
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.reason, 'global-limit');
  const small = new LeaseRegistry({ maxUsers: 1 });
  small.acquire('a');
  const full = small.acquire('b');
  assert.equal(!full.ok && full.reason, 'user-table-full');
});

test('dry-run counts and reports, never refuses', () => {
  const events = [];
  const reg = new LeaseRegistry({ perUserLimit: 1, mode: 'dry-run', onEvent: (e) => events.push(e) });
  assert.equal(reg.acquire('alice').ok, true);
  assert.equal(reg.acquire('alice').ok, true);
  assert.equal(reg.stats().rejected, 1);
  assert.ok(events.some((e) => e.type === 'rejected' && e.dryRun === true && e.reason === 'user-limit'));
  assert.match(reg.metrics(), /^socket_lease_rejected_total\{reason="user-limit"\} 1$/m);
});

test('dry-run under evict-oldest reports the eviction enforce mode would make, and keeps the lease', () => {
  /** @type {any[]} */
  const events = [];
  const reg = new LeaseRegistry({ perUserLimit: 1, onLimit: 'evict-oldest', mode: 'dry-run', onEvent: (e) => events.push(e) });
  const first = /** @type {any} */ (reg.acquire('alice', { now: T0 })).lease.id;
  const second = reg.acquire('alice', { now: T0 + 1 });
  assert.deepEqual(second.ok && second.evicted, [], 'nothing is evicted');
  // `active` is what the user held when the eviction would have been made.
  assert.deepEqual(
    events.filter((e) => e.type !== 'near-limit' && e.type !== 'limit-reached'),
    [{ type: 'evicted', userId: 'alice', leaseId: first, active: 1, limit: 1, dryRun: true, at: T0 + 1 }],
  );
  assert.equal(reg.stats().rejected, 0);
  assert.equal(reg.stats().evicted, 1);
  assert.match(reg.metrics(), /^socket_lease_evicted_total 1$/m);
  assert.equal(reg.getLease(first)?.id, first, 'the lease it names is still held');
});

test('setLimits and setUserLimit: lowering never drops, refuses until under', () => {
  const reg = new LeaseRegistry({ perUserLimit: 4 });
  const ids = [0, 1, 2, 3].map(() => /** @type {any} */ (reg.acquire('alice')).lease.id);
  reg.setLimits({ perUserLimit: 2 });
  assert.equal(reg.stats().active, 4);
  assert.equal(reg.acquire('alice').ok, false);
  for (const id of ids.slice(0, 3)) reg.release(id);
  assert.equal(reg.acquire('alice').ok, true);
  reg.setUserLimit('vip', 10);
  assert.equal(reg.userStats('vip').limit, 10);
  reg.setUserLimit('vip', null);
  assert.equal(reg.userStats('vip').limit, 2);
  assert.throws(() => reg.setLimits({ perUserLimit: -1 }), { code: 'INVALID_OPTION' });
  assert.equal(reg.getOptions().perUserLimit, 2, 'a refused update changes nothing');
  reg.setLimits({ globalLimit: 3 });
  assert.equal(reg.getOptions().globalLimit, 3);
  reg.setLimits({ globalLimit: null });
  assert.equal(reg.getOptions().globalLimit, null);
});

test('stats, userStats and events', () => {
  const events = [];
  const reg = new LeaseRegistry({ perUserLimit: 5, onEvent: (e) => events.push(e) });
  for (let i = 0; i < 6; i++) reg.acquire('alice', { now: T0 + i });
  assert.deepEqual(
    events.map((e) => e.type),
    ['near-limit', 'limit-reached', 'rejected'],
  );
  assert.deepEqual(events[0], { type: 'near-limit', userId: 'alice', active: 4, limit: 5, dryRun: false, at: T0 + 3 });
  const s = reg.stats();
  assert.deepEqual(
    { active: s.active, users: s.users, highWater: s.highWater, acquired: s.acquired, rejected: s.rejected, nearLimitEvents: s.nearLimitEvents },
    { active: 5, users: 1, highWater: 5, acquired: 5, rejected: 1, nearLimitEvents: 1 },
  );
  const u = reg.userStats('alice', T0 + 10);
  assert.equal(u.active, 5);
  assert.equal(u.limit, 5);
  assert.equal(u.leases.length, 5);
  assert.ok(u.leases[0].acquiredAt <= u.leases[4].acquiredAt, 'oldest first');
  assert.deepEqual(reg.userStats('nobody'), { active: 0, limit: 5, leases: [] });
});

test('a throwing or re-entrant onEvent callback does not corrupt the registry', () => {
  /** @type {LeaseRegistry} */
  let reg;
  reg = new LeaseRegistry({
    perUserLimit: 1,
    onEvent: () => {
      reg.stats();
      throw new Error('host bug');
    },
  });
  assert.equal(reg.acquire('alice').ok, true);
  assert.equal(reg.acquire('alice').ok, false);
  const s = reg.stats();
  assert.equal(s.active, 1);
  assert.ok(s.callbackErrors >= 2);
});

test('metrics: Prometheus text with every series and no user id', () => {
  const reg = new LeaseRegistry({ perUserLimit: 1 });
  const r = /** @type {any} */ (reg.acquire('private-user-42'));
  reg.acquire('private-user-42');
  reg.release(r.lease.id);
  reg.release(r.lease.id);
  const text = reg.metrics();
  for (const line of [
    'socket_lease_active_leases 0',
    'socket_lease_users 0',
    'socket_lease_acquired_total 1',
    'socket_lease_released_total 1',
    'socket_lease_rejected_total{reason="user-limit"} 1',
    'socket_lease_rejected_total{reason="global-limit"} 0',
    'socket_lease_expired_total 0',
    'socket_lease_evicted_total 0',
    'socket_lease_unknown_release_total 1',
    'socket_lease_near_limit_total 1',
  ]) {
    assert.ok(text.split('\n').includes(line), `missing: ${line}`);
  }
  assert.match(text, /# TYPE socket_lease_active_leases gauge/);
  assert.doesNotMatch(text, /private-user/);
});

test('snapshot and restore keep leases, keys, counters and expiry; bad bytes are refused whole', () => {
  const reg = new LeaseRegistry({ perUserLimit: 3, ttlMs: 5_000 });
  const a = /** @type {any} */ (reg.acquire('alice', { connectionKey: 'k1', now: T0 }));
  reg.acquire('bob', { now: T0 + 1 });
  const bytes = reg.snapshot();
  assert.ok(bytes instanceof Uint8Array);
  const restored = LeaseRegistry.restore(bytes, { perUserLimit: 3 });
  assert.deepEqual(restored.stats(), reg.stats());
  assert.deepEqual(restored.getLease(a.lease.threadId), a.lease);
  const again = /** @type {any} */ (restored.acquire('alice', { connectionKey: 'k1', now: T0 + 2 }));
  assert.equal(again.lease.id, a.lease.id);
  assert.deepEqual(restored.sweep(T0 + 5_001), [deriveId(/** @type {any} */ (reg.userStats('bob', T0)).leases[0].id, 'conn')]);

  for (let len = 0; len < bytes.length; len += 7) {
    assert.throws(() => LeaseRegistry.restore(bytes.subarray(0, len)), { code: 'INVALID_SNAPSHOT' });
  }
  const corrupt = bytes.slice();
  corrupt[20] ^= 0xff;
  assert.throws(() => LeaseRegistry.restore(corrupt), /checksum/);
  const future = bytes.slice();
  future[4] = 9;
  assert.throws(
    () => LeaseRegistry.restore(future),
    (e) => e instanceof LeaseError && e.code === 'INVALID_SNAPSHOT' && /version 9/.test(e.message),
  );
  assert.throws(() => LeaseRegistry.restore(/** @type {any} */ ([1, 2, 3])), { code: 'INVALID_SNAPSHOT' });
});

test('lifecycle: free() and Symbol.dispose return memory; release never waits for GC', () => {
  const reg = new LeaseRegistry();
  reg.acquire('alice');
  assert.equal(typeof reg[Symbol.dispose], 'function');
  reg[Symbol.dispose]();
  assert.throws(() => reg.stats(), /null pointer|destroyed|moved/i);
});

test('fast path: handles instead of objects, stale handles act on nothing', () => {
  const reg = new LeaseRegistry({ perUserLimit: 2, onLimit: 'reject' });
  const h1 = reg.acquireHandle('alice', 'sock-1', T0);
  const h2 = reg.acquireHandle('alice', undefined, T0);
  assert.ok(Number.isSafeInteger(h1) && h1 >= 0 && h2 >= 0);
  assert.equal(reg.acquireHandle('alice', 'sock-1', T0 + 1), h1, 'same connection key, same handle');
  assert.equal(reg.acquireHandle('alice', undefined, T0 + 2), -1);
  assert.deepEqual(reg.lastRefusal(), { ok: false, reason: 'user-limit', limit: 2, active: 2, retryAfterMs: 89_998 });
  const id = reg.handleLeaseId(h1);
  assert.match(String(id), /^conn_/);
  assert.equal(reg.getLease(/** @type {string} */ (id))?.userId, 'alice');
  assert.equal(reg.touchHandle(h1, T0 + 10), true);
  assert.equal(reg.releaseHandle(h1, T0 + 20), true);
  assert.equal(reg.releaseHandle(h1, T0 + 21), false, 'idempotent');
  assert.equal(reg.handleLeaseId(h1), null);
  // The freed slot is reused by the next lease; the old handle must not reach it.
  const h3 = reg.acquireHandle('bob', undefined, T0 + 30);
  assert.notEqual(h3, h1);
  assert.equal(reg.releaseHandle(h1, T0 + 31), false);
  assert.equal(reg.touchHandle(h1, T0 + 31), false);
  assert.equal(reg.stats().active, 2);
  for (const bad of [-1, 1.5, NaN, 2 ** 60]) assert.equal(reg.releaseHandle(bad), false);
  assert.throws(() => reg.acquireHandle(/** @type {any} */ (7)), { code: 'INVALID_USER_ID' });
  assert.throws(() => reg.acquireHandle('bob', /** @type {any} */ (7)), { code: 'INVALID_OPTION' });
  for (const t of [NaN, Infinity, -1]) {
    assert.throws(() => reg.acquireHandle('bob', undefined, t), { code: 'INVALID_TIME' });
    assert.throws(() => reg.releaseHandle(h2, t), { code: 'INVALID_TIME' });
  }

  const evicting = new LeaseRegistry({ perUserLimit: 1, onLimit: 'evict-oldest' });
  const old = evicting.acquireHandle('carol', undefined, T0);
  const oldId = evicting.handleLeaseId(old);
  assert.ok(evicting.acquireHandle('carol', undefined, T0 + 1) >= 0);
  assert.deepEqual(evicting.lastEvicted(), [oldId]);
  assert.ok(evicting.acquireHandle('dave', undefined, T0 + 2) >= 0);
  assert.deepEqual(evicting.lastEvicted(), [], 'only the last acquire is reported');
});

test('free() from an onEvent callback takes effect once the call has returned, and the registry works until then', async () => {
  for (const keyed of [false, true]) {
    /** @type {LeaseRegistry} */
    let reg;
    let freedInCallback = 0;
    reg = new LeaseRegistry({
      perUserLimit: 1,
      onEvent: (e) => {
        if (e.type !== 'limit-reached') return;
        reg.free();
        freedInCallback++;
        // Still the same, working registry inside the call.
        assert.equal(reg.stats().active, 1);
      },
    });
    const r = keyed ? reg.acquire('u', { connectionKey: 'k' }) : reg.acquire('u');
    assert.equal(r.ok, true);
    assert.equal(freedInCallback, 1);
    assert.equal(reg.stats().active, 1, 'usable for the rest of this turn');
    assert.equal(reg.stats().callbackErrors, 0, 'free() did not throw in the callback');
    await new Promise((resolve) => setImmediate(resolve));
    assert.throws(() => reg.stats(), /null pointer/, 'freed once the call returned');
  }
  // The instance is fine.
  const other = new LeaseRegistry();
  assert.equal(other.acquire('v').ok, true);
  other.free();
});

test('getOptions().userLimits keeps a user named "__proto__" as a property', () => {
  const reg = new LeaseRegistry({
    userLimits: new Map([
      ['__proto__', 3],
      ['bob', 2],
    ]),
  });
  const limits = reg.getOptions().userLimits;
  assert.deepEqual(Object.keys(limits), ['__proto__', 'bob']);
  assert.equal(Object.getOwnPropertyDescriptor(limits, '__proto__')?.value, 3);
  assert.equal(Object.getPrototypeOf(limits), Object.prototype);
  reg.free();
});

test('renewHandle keeps a lease alive without making it look active to evict-idle', () => {
  const reg = new LeaseRegistry({ perUserLimit: 2, onLimit: 'evict-idle', ttlMs: 1000 });
  const busy = reg.acquireHandle('u', undefined, 100);
  const quiet = reg.acquireHandle('u', undefined, 200);
  assert.equal(reg.touchHandle(busy, 500), true);
  assert.equal(reg.renewHandle(quiet, 900), true);
  assert.equal(reg.renewHandle(busy, 900), true);
  assert.equal(reg.renewHandle(quiet, 5000), false, 'expired: nothing to renew');
  const quietId = reg.handleLeaseId(quiet);
  const r = reg.acquire('u', { now: 1100 });
  assert.ok(r.ok);
  assert.deepEqual(r.ok && r.evicted, [quietId], 'the lease without activity is the idle one');
  for (const bad of [null, '1', {}])
    assert.throws(
      () => reg.renewHandle(/** @type {any} */ (bad)),
      (e) => e instanceof LeaseError && e.code === 'INVALID_ID',
    );
  assert.throws(
    () => reg.renewHandle(busy, NaN),
    (e) => e instanceof LeaseError && e.code === 'INVALID_TIME',
  );
  reg.free();
});
