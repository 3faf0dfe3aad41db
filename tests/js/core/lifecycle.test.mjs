// The lifecycle's contract with an adapter, driven directly: what an adapter reports
// (closed, cancel) at awkward moments of an asynchronous store. The sockets are plain
// records; what is under test is the lifecycle's bookkeeping against a real registry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LeaseRegistry } from 'socket-lease';
import { Connection, ConnectionLifecycle } from 'socket-lease/lifecycle';

/** A LeaseRegistry whose acquires wait for the test to let them through. */
class GatedStore {
  registry = new LeaseRegistry({ perUserLimit: 1, onLimit: 'evict-oldest' });
  /** @type {Array<() => void>} */ gates = [];
  /** @param {string} userId @param {any} options */
  acquire(userId, options) {
    return new Promise((resolve) => this.gates.push(() => resolve(this.registry.acquire(userId, options))));
  }
  /** @param {string} id @param {number} [now] */
  release(id, now) {
    return this.registry.release(id, now);
  }
  /** @param {string} id @param {number} [now] */
  touch(id, now) {
    return this.registry.touch(id, now);
  }
  /** @param {number} [now] */
  sweep(now) {
    return this.registry.sweep(now);
  }
  openNext() {
    /** @type {() => void} */ (this.gates.shift())();
  }
}

const driver = {
  /** @type {Array<[number, string]>} */ closes: [],
  close(/** @type {any} */ socket, /** @type {number} */ code, /** @type {string} */ reason) {
    this.closes.push([code, reason]);
    socket.readyState = 2;
  },
  terminate(/** @type {any} */ socket) {
    socket.readyState = 3;
  },
};

/** Polls until `check` holds; the bound only keeps a broken build from hanging. */
const until = async (/** @type {() => boolean} */ check) => {
  const deadline = Date.now() + 5_000;
  while (!check() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 2));
  assert.ok(check());
};

test('a socket that closes while open() commits its eviction to an asynchronous store: the lease granted after is released at once', async () => {
  const store = new GatedStore();
  const lifecycle = new ConnectionLifecycle({ store, userId: () => 'ann', logLevel: 'silent', heartbeatMs: 60_000 }, driver, 'test');
  // The first socket holds the user's only slot.
  const first = lifecycle.admit({}, null);
  await until(() => store.gates.length === 1);
  store.openNext();
  const a = await first;
  assert.ok(a instanceof Connection);
  assert.equal(await lifecycle.open(a, { readyState: 1 }), true);
  // The second is admitted with an eviction planned (phase one changes nothing)...
  const second = lifecycle.admit({}, null);
  await until(() => store.gates.length === 1);
  store.openNext();
  const b = await second;
  assert.ok(b instanceof Connection);
  assert.equal(store.registry.stats().evicted, 0);
  // ...phase two waits for the store, and meanwhile the new socket closes.
  const opened = lifecycle.open(b, { readyState: 1 });
  await until(() => store.gates.length === 1);
  lifecycle.closed(b);
  store.openNext();
  assert.equal(await opened, false);
  // The eviction happened (the policy's decision stands) and the lease it made room for
  // went back at once: the user holds nothing, and nothing is left to leak.
  await until(() => store.registry.stats().active === 0);
  assert.equal(store.registry.stats().evicted, 1);
  assert.deepEqual(driver.closes.map(([code]) => code).includes(4008), true);
  assert.equal(store.registry.stats().unknownReleases, 0);
  await lifecycle.close();
});

test("a quota refusal carries the store's retryAfterMs beside Retry-After's whole seconds", async () => {
  let now = 1_000_000;
  const store = new LeaseRegistry({ perUserLimit: 1, ttlMs: 10_500 });
  const lifecycle = new ConnectionLifecycle({ store, userId: () => 'bea', logLevel: 'silent', clock: () => now, heartbeatMs: 60_000 }, driver, 'test');
  const a = await lifecycle.admit({}, null);
  assert.ok(a instanceof Connection);
  now += 1_000;
  const refused = await lifecycle.admit({}, null);
  assert.ok(!(refused instanceof Connection));
  assert.equal(refused.status, 429);
  assert.equal(refused.retryAfterMs, 9_500, 'the oldest lease expires 9.5 s from now');
  assert.equal(refused.headers['retry-after'], '10');
  assert.deepEqual(JSON.parse(refused.body), { reason: 'user-limit', limit: 1, active: 1 });
  const unauthorized = await new ConnectionLifecycle({ store, userId: () => null, logLevel: 'silent' }, driver, 'test').admit({}, null);
  assert.ok(!(unauthorized instanceof Connection));
  assert.equal(unauthorized.retryAfterMs, null);
  lifecycle.cancel(a);
  await lifecycle.close();
});

test('an admitted connection whose lease the sweep drops before it opens no longer counts as a pending upgrade, and opening it closes the socket with 4009', async () => {
  let now = 2_000_000;
  const store = new LeaseRegistry({ perUserLimit: 2, ttlMs: 1_000 });
  const lifecycle = new ConnectionLifecycle(
    { store, userId: () => 'cy', logLevel: 'silent', clock: () => now, heartbeatMs: 60_000, sweepMs: 10 },
    driver,
    'test',
  );
  const a = await lifecycle.admit({}, null);
  assert.ok(a instanceof Connection);
  assert.equal(lifecycle.stats().pendingUpgrades, 1);
  now += 5_000; // expired; the next sweep (every 10 ms) drops it
  await until(() => lifecycle.stats().pendingUpgrades === 0);
  const socket = { readyState: 1 };
  driver.closes.length = 0;
  assert.equal(await lifecycle.open(a, socket), false);
  assert.deepEqual(
    driver.closes.map(([code]) => code),
    [4009],
  );
  assert.equal(store.stats().unknownReleases, 0);
  await lifecycle.close();
});

test('an admitted connection that neither opens nor is cancelled within upgradeTimeoutMs is given back, its adapter told; one that opens after all is closed with 4009', async () => {
  const registry = new LeaseRegistry({ perUserLimit: 1 });
  const closes = [];
  const lifecycle = new ConnectionLifecycle(
    { store: registry, userId: () => 'una', logLevel: 'silent', upgradeTimeoutMs: 100 },
    { close: (/** @type {any} */ _socket, /** @type {number} */ code) => closes.push(code), terminate() {} },
    'test',
  );
  try {
    const conn = lifecycle.admitNow({}, null);
    assert.ok(conn instanceof Connection);
    assert.equal(registry.stats().active, 1);
    /** @type {string[]} */
    const told = [];
    conn.onAbandon = (reason) => told.push(reason);
    // The user's only slot is held by a request the runtime never finished (a peer gone
    // before the 101 that the runtime never reports): a second one is refused meanwhile.
    const refused = lifecycle.admitNow({}, null);
    assert.ok(!(refused instanceof Connection) && refused.status === 429);
    await until(() => registry.stats().active === 0);
    assert.deepEqual(told, ['upgrade-timeout']);
    const stats = lifecycle.stats();
    assert.equal(stats.upgradeTimeouts, 1);
    assert.equal(stats.cancelled, 1);
    assert.equal(stats.pendingUpgrades, 0);
    // The slot is free again; the late socket is closed, not served without a lease.
    assert.equal(lifecycle.open(conn, { readyState: 1 }), false);
    assert.deepEqual(closes, [4009]);
    assert.ok(lifecycle.admitNow({}, null) instanceof Connection);
    assert.equal(registry.stats().unknownReleases, 0);
  } finally {
    await lifecycle.close();
  }
});

test("a driver's abandoned() gives an admitted request back before upgradeTimeoutMs; one it does not name stays", async () => {
  const registry = new LeaseRegistry({ perUserLimit: 5 });
  const lifecycle = new ConnectionLifecycle(
    { store: registry, userId: (/** @type {any} */ r) => r.user, logLevel: 'silent', upgradeTimeoutMs: 60_000 },
    { close() {}, terminate() {}, abandoned: (conn) => conn.host === 'gone' },
    'test',
  );
  try {
    const gone = /** @type {Connection} */ (lifecycle.admitNow({ user: 'ada' }, null));
    const alive = /** @type {Connection} */ (lifecycle.admitNow({ user: 'ada' }, null));
    gone.host = 'gone';
    alive.host = 'alive';
    assert.equal(registry.stats().active, 2);
    // The reaper runs at least once a second; upgradeTimeoutMs (60 s) is far away.
    await until(() => registry.stats().active === 1);
    assert.equal(gone.finished, true);
    assert.equal(alive.finished, false);
    assert.equal(lifecycle.stats().pendingUpgrades, 1);
    assert.equal(lifecycle.open(alive, { readyState: 1 }), true);
    assert.equal(registry.stats().active, 1);
  } finally {
    await lifecycle.close();
  }
  assert.equal(registry.stats().active, 0);
});

test('connectionOf finds the connection of an open socket, frozen or not, of this lifecycle only, and nothing once it is released', async () => {
  const options = { store: new LeaseRegistry({ perUserLimit: 10 }), userId: () => 'ann', logLevel: /** @type {const} */ ('silent'), heartbeatMs: 60_000 };
  const lifecycle = new ConnectionLifecycle(options, driver, 'test');
  const other = new ConnectionLifecycle({ ...options, store: new LeaseRegistry({ perUserLimit: 10 }) }, driver, 'test');
  const plain = { readyState: 1 };
  const frozen = Object.freeze({ readyState: 1 });
  const a = await lifecycle.admit({}, null);
  const b = await lifecycle.admit({}, null);
  assert.ok(a instanceof Connection && b instanceof Connection);
  assert.equal(lifecycle.connectionOf(plain), undefined, 'not open yet');
  assert.equal(lifecycle.open(a, plain), true);
  assert.equal(lifecycle.open(b, frozen), true);
  assert.equal(lifecycle.connectionOf(plain), a);
  assert.equal(lifecycle.connectionOf(frozen), b, 'a frozen socket is found by the walk');
  assert.equal(other.connectionOf(plain), undefined, "another lifecycle does not read this one's connection");
  assert.deepEqual([...lifecycle.sockets()], [plain, frozen]);
  assert.equal(lifecycle.stats().socketsOpen, 2);
  lifecycle.closed(a);
  lifecycle.closed(b);
  assert.equal(lifecycle.connectionOf(plain), undefined);
  assert.equal(lifecycle.connectionOf(frozen), undefined);
  assert.deepEqual([...lifecycle.sockets()], []);
  assert.equal(lifecycle.stats().socketsOpen, 0);
  assert.equal(/** @type {any} */ (options.store).stats().active, 0);
  for (const l of [lifecycle, other]) await l.close();
});
