// The object path's leases and ids as the JS half makes them (js/runtime.mjs): `acquire`
// spells a lease's ids from the UUID the wasm half leaves in the lane, `release` and
// `touch` take the lease object itself, and `lastLeaseId` spells the id of what
// `acquireHandle` just granted. Each is held here to what the wasm half says (`getLease`,
// `userStats`, the events, a separate unpatched instance), and the lease to the plain
// object it always was (JSON, structuredClone, spread, Proxy, key order).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { LeaseRegistry, LeaseError, parseId, idFromUuid } from 'socket-lease';

const require = createRequire(import.meta.url);
// A separate instance of the generated bindings, untouched by the loader (see lane.test.mjs).
const bindings = require.resolve('../../../pkg/nodejs/socket_lease.js');
const packaged = require.cache[bindings];
delete require.cache[bindings];
/** @type {typeof import('socket-lease')} */
const raw = require(bindings);
if (packaged) require.cache[bindings] = packaged;
/** @type {any} */ (raw).__registerErrorClass(LeaseError);

const T0 = 1_700_000_000_000;
const KEYS = ['id', 'connectionId', 'runId', 'threadId', 'userId', 'acquiredAt', 'touchedAt', 'expiresAt'];

/** @param {import('socket-lease').AcquireResult} r */
const leaseOf = (r) => {
  assert.ok(r.ok, 'granted');
  return r.lease;
};

test("a lease's ids, spelled by the JS half, are the ids the wasm half spells (every bit of the UUID)", () => {
  const reg = new LeaseRegistry({ perUserLimit: 10_000, ttlMs: 1000 });
  // The UUID's top 48 bits are the time: the ends of its range and times in between put
  // every bit of it through the spelling; the low 74 are random.
  const times = [0, 1, 2 ** 31, 2 ** 32 + 5, 2 ** 47, 2 ** 48 - 1001, T0];
  let n = 0;
  for (const now of times) {
    for (let i = 0; i < 300; i++, n++) {
      const lease = leaseOf(reg.acquire(`u${n % 7}`, { now, connectionKey: i % 3 === 0 ? `k${n}` : undefined }));
      const theirs = reg.getLease(lease.id);
      assert.deepEqual({ ...lease }, theirs, `${lease.id} at ${now}`);
      assert.equal(idFromUuid('thread', parseId(lease.threadId).uuid), lease.threadId);
    }
  }
  // userStats and sweep, spelled by the wasm half, name the same leases.
  const listed = new Set(reg.userStats('u3', 0).leases.map((l) => l.runId));
  assert.ok(listed.size > 0);
  const swept = new Set(reg.sweep(2 ** 48 - 1));
  assert.equal(swept.size, n);
  const again = new LeaseRegistry({ perUserLimit: 10 });
  const mine = leaseOf(again.acquire('x', { now: T0 }));
  assert.deepEqual(again.sweep(T0 + 200_000), [mine.id]);
});

test('a lease is the plain object it was: its keys in order, through JSON, structuredClone, spread and a Proxy', () => {
  const reg = new LeaseRegistry({ perUserLimit: 5 });
  const lease = leaseOf(reg.acquire('alice', { now: T0 }));
  const keyed = leaseOf(reg.acquire('alice', { now: T0, connectionKey: 'tab-1' }));
  assert.equal(Object.getPrototypeOf(lease), Object.prototype);
  assert.deepEqual(Object.keys(lease), KEYS);
  assert.deepEqual(Object.keys(keyed), [...KEYS, 'connectionKey']);
  assert.deepEqual(Reflect.ownKeys(lease), KEYS, 'nothing hidden under a symbol');
  const theirs = /** @type {import('socket-lease').Lease} */ (reg.getLease(lease.id));
  assert.equal(JSON.stringify(lease), JSON.stringify(theirs));
  assert.deepEqual(JSON.parse(JSON.stringify(keyed)), reg.getLease(keyed.runId));
  const cloned = structuredClone(lease);
  assert.deepEqual(cloned, lease);
  assert.deepEqual(Object.keys(cloned), KEYS);
  assert.deepEqual({ ...lease }, theirs);
  const proxied = new Proxy(lease, {});
  assert.equal(proxied.threadId, theirs.threadId);
  assert.deepEqual({ ...proxied }, theirs);
  // The same through the result of the checked binding's path (extra kinds).
  const kinds = new LeaseRegistry({ kinds: ['room'] });
  const roomy = leaseOf(kinds.acquire('bob', { now: T0 }));
  assert.deepEqual(Object.keys(roomy), [...KEYS, 'ids']);
  assert.deepEqual(structuredClone(roomy), kinds.getLease(roomy.ids.room));
});

test('release(lease) and touch(lease): the lease object itself, or any copy of it, names the lease', () => {
  const reg = new LeaseRegistry({ perUserLimit: 10, ttlMs: 1000 });
  const a = leaseOf(reg.acquire('alice', { now: T0 }));
  assert.equal(reg.touch(a, T0 + 500), true);
  assert.equal(/** @type {any} */ (reg.getLease(a.id)).expiresAt, T0 + 1500);
  assert.equal(reg.release(a, T0 + 600), true);
  assert.equal(reg.release(a, T0 + 601), false, 'released once');
  assert.equal(reg.touch(a, T0 + 602), false);
  assert.equal(reg.stats().unknownReleases, 1);
  // Copies carry no mark from the registry: they go by their id, to the same answer.
  for (const copy of [
    (/** @type {any} */ l) => structuredClone(l),
    (/** @type {any} */ l) => ({ ...l }),
    (/** @type {any} */ l) => new Proxy(l, {}),
    (/** @type {any} */ l) => JSON.parse(JSON.stringify(l)),
  ]) {
    const lease = leaseOf(reg.acquire('alice', { now: T0 }));
    assert.equal(reg.touch(copy(lease), T0 + 10), true);
    assert.equal(reg.release(copy(lease), T0 + 20), true);
    assert.equal(reg.getLease(lease.id), null);
    assert.equal(reg.release(copy(lease), T0 + 30), false);
  }
  // A lease whose id was changed is released by that id, as the checked binding does.
  const b = leaseOf(reg.acquire('bob', { now: T0 }));
  const c = leaseOf(reg.acquire('carol', { now: T0 }));
  const renamed = /** @type {any} */ (b);
  renamed.id = c.runId;
  assert.equal(reg.release(renamed, T0 + 1), true);
  assert.equal(reg.getLease(c.id), null, "carol's lease went");
  assert.notEqual(reg.getLease(b.threadId), null, "bob's stayed");
  assert.equal(reg.stats().active, 1);
});

test("a lease of one registry never releases another's, whatever slot it had there", () => {
  const one = new LeaseRegistry({ perUserLimit: 10 });
  const two = new LeaseRegistry({ perUserLimit: 10 });
  // The same first slot and generation in both.
  const mine = leaseOf(one.acquire('u', { now: T0 }));
  const theirs = leaseOf(two.acquire('u', { now: T0 }));
  assert.equal(two.release(mine, T0), false);
  assert.equal(two.touch(mine, T0), false);
  assert.notEqual(two.getLease(theirs.id), null);
  assert.equal(one.release(mine, T0), true);
  // A registry restored from a snapshot is another registry: its leases go by id.
  const held = leaseOf(one.acquire('v', { now: T0 }));
  const restored = LeaseRegistry.restore(one.snapshot());
  assert.equal(restored.release(held, T0), true);
  assert.equal(restored.release(held, T0), false);
  assert.equal(one.release(held, T0), true, 'the original still held it');
});

test('what release and touch refuse: not an id, not a lease; the same from the checked binding', () => {
  const regs = [new LeaseRegistry({}), new raw.LeaseRegistry({})];
  const throwing = {
    get id() {
      throw new Error('boom');
    },
  };
  const cases = {
    '{}': {},
    '{ id: 5 }': { id: 5 },
    '{ id: null }': { id: null },
    '[]': [],
    'a throwing id': throwing,
    "{ id: 'conn_nope' }": { id: 'conn_nope' },
    'a function': () => 'conn_x',
  };
  for (const [what, bad] of Object.entries(cases)) {
    for (const method of /** @type {const} */ (['release', 'touch'])) {
      const errors = regs.map((reg) => {
        try {
          /** @type {any} */ (reg)[method](bad, T0);
          return null;
        } catch (err) {
          return { code: /** @type {any} */ (err).code, message: /** @type {Error} */ (err).message, lease: err instanceof LeaseError };
        }
      });
      assert.ok(errors[0], `${method}(${what}) throws`);
      assert.equal(errors[0]?.code, 'INVALID_ID');
      assert.ok(errors[0]?.lease, 'a LeaseError');
      assert.deepEqual(errors[0], errors[1], `${method}(${what}): as the checked binding`);
    }
  }
  // The checked binding takes a lease too (any object with a string id).
  const rawReg = regs[1];
  const got = /** @type {any} */ (rawReg.acquire('u', { now: T0 })).lease;
  assert.equal(rawReg.touch({ id: got.threadId }, T0 + 1), true);
  assert.equal(rawReg.release(got, T0 + 2), true);
  assert.equal(rawReg.release(got, T0 + 3), false);
});

test('lastLeaseId: the id of what the last acquireHandle granted, without a second lookup', () => {
  const reg = new LeaseRegistry({ perUserLimit: 1 });
  const other = new LeaseRegistry({ perUserLimit: 5 });
  assert.equal(reg.lastLeaseId(), null, 'none yet');
  const h = reg.acquireHandle('alice', undefined, T0);
  const id = reg.lastLeaseId();
  assert.equal(id, reg.handleLeaseId(h));
  assert.equal(reg.getLease(/** @type {string} */ (id))?.userId, 'alice');
  // Another registry's acquire in between: still this registry's (asked of the wasm half).
  const oh = other.acquireHandle('bob', undefined, T0);
  assert.equal(other.lastLeaseId(), other.handleLeaseId(oh));
  assert.equal(reg.lastLeaseId(), id);
  assert.equal(other.lastLeaseId(), other.handleLeaseId(oh));
  // A refusal: null. Released since: still the id it was granted with.
  assert.equal(reg.acquireHandle('alice', undefined, T0), -1);
  assert.equal(reg.lastLeaseId(), null);
  const h2 = reg.acquireHandle('carol', 'tab', T0);
  const id2 = reg.lastLeaseId();
  assert.equal(reg.releaseHandle(h2, T0), true);
  assert.equal(reg.lastLeaseId(), id2);
  assert.equal(reg.handleLeaseId(h2), null);
  // A reused connection key: the lease it returned.
  const h3 = reg.acquireHandle('dave', 'tab', T0);
  assert.equal(reg.acquireHandle('dave', 'tab', T0 + 1), h3);
  assert.equal(reg.lastLeaseId(), reg.handleLeaseId(h3));
  // `acquire` (the object path) leaves it alone: its lease carries its ids.
  reg.acquire('erin', { now: T0 });
  assert.equal(reg.lastLeaseId(), reg.handleLeaseId(h3));
  reg.free();
  assert.throws(() => reg.lastLeaseId(), 'a freed registry, as every other method');
  other.free();
});

test('lastLeaseId after events: an acquire made by a callback does not take the place of the one that returned', () => {
  const inner = new LeaseRegistry({});
  /** @type {number[]} */
  const innerHandles = [];
  const outer = new LeaseRegistry({
    perUserLimit: 1,
    onEvent: (e) => {
      innerHandles.push(inner.acquireHandle(`inner-${e.type}`, undefined, T0));
      // The callback acquires on the outer registry too.
      if (e.type === 'limit-reached') outer.acquireHandle('someone-else', undefined, T0);
    },
  });
  const h = outer.acquireHandle('alice', undefined, T0);
  assert.ok(h >= 0 && innerHandles.length > 0);
  assert.equal(outer.lastLeaseId(), outer.handleLeaseId(h));
  assert.equal(inner.lastLeaseId(), inner.handleLeaseId(innerHandles[innerHandles.length - 1]));
  // Refused (the callback's 'rejected' event acquires elsewhere meanwhile): null.
  assert.equal(outer.acquireHandle('alice', undefined, T0), -1);
  assert.equal(outer.lastLeaseId(), null);
  assert.equal(inner.lastLeaseId(), inner.handleLeaseId(innerHandles[innerHandles.length - 1]));
});

test('handleLeaseId over the lane: the id of a live handle, null for a stale one, after the memory grew too', () => {
  const reg = new LeaseRegistry({ perUserLimit: 1_000_000 });
  const h = reg.acquireHandle('alice', undefined, T0);
  const id = /** @type {string} */ (reg.handleLeaseId(h));
  assert.match(id, /^conn_[0-7][0-9a-hjkmnp-tv-z]{25}$/);
  assert.equal(reg.getLease(id)?.userId, 'alice');
  for (let i = 0; i < 100_000; i++) reg.acquireHandle(`grow-${i}`, undefined, T0);
  assert.equal(reg.handleLeaseId(h), id);
  const last = reg.acquireHandle('zed', undefined, T0);
  assert.equal(reg.lastLeaseId(), reg.handleLeaseId(last));
  assert.equal(reg.releaseHandle(h, T0), true);
  assert.equal(reg.handleLeaseId(h), null);
  reg.free();
});
