// Hostile clients, in workerd (miniflare): pages of other sites (allowedOrigins), messages
// over maxPayload, an identity backend that throws, and an expired lease met by a connect
// before any alarm. Close codes and reasons are every host's (js/lifecycle/protocol.mjs).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { CLOSE_REASONS, CloseCodes } from '../../../js/lifecycle/protocol.mjs';
import { assertError, connect, roundTrip, startExample, waitFor, within } from './harness.mjs';

/** @typedef {Awaited<ReturnType<typeof startExample>>} App */

const GOOD = 'https://app.example';
const EVIL = 'https://evil.example';
const LEASE_RECORD = 'socket-lease:lease:';

// The test worker's LOSE_CLOSE (hooks-worker.mjs): the socket's close event is then lost.
const LOSE_CLOSE = '{"type":"test:lose-close"}';

/**
 * Sends `LOSE_CLOSE` and waits for its acknowledgement.
 * @param {import('ws').WebSocket} ws
 */
async function loseClose(ws) {
  const ack = new Promise((resolve) => ws.once('message', (d) => resolve(d.toString())));
  ws.send(LOSE_CLOSE);
  assert.equal(await ack, '{"type":"test:close-will-be-lost"}');
}

/**
 * @param {App} app
 * @param {string} user
 */
async function leaseKeys(app, user) {
  return Object.keys((await app.storage(user)).sizes)
    .filter((k) => k.startsWith(LEASE_RECORD))
    .sort();
}

describe('cloudflare: SOCKET_LEASE_ALLOWED_ORIGINS', { timeout: 60_000 }, () => {
  /** @type {App} */
  let app;
  before(async () => {
    app = await startExample({
      testHooks: true,
      vars: { SOCKET_LEASE_LIMIT: '2', SOCKET_LEASE_POLICY: 'evict-oldest', SOCKET_LEASE_ALLOWED_ORIGINS: `${GOOD}, https://admin.example` },
    });
  });
  after(() => app?.dispose());

  test('a foreign Origin is answered 403 by the Worker: no eviction, no count, no write, even at the limit under evict-oldest', async () => {
    // No Origin header (not a browser page): allowed.
    const held = [await app.connect('olga'), await app.connect('olga')];
    const ids = [];
    for (const c of held) {
      assert.ok(c.ws, JSON.stringify(c));
      ids.push((await roundTrip(c.ws, 'held')).leaseId);
    }
    const before = await app.stats('olga');
    const stored = await app.storage('olga');

    for (const origin of [EVIL, `${GOOD}:444`, 'http://app.example', 'null']) {
      const res = await app.connect('olga', { origin });
      assert.equal(res.ws, null, `${origin} must be refused`);
      assertError(/** @type {any} */ (res), 403, 'ORIGIN_NOT_ALLOWED');
    }
    // Both held sockets are still served (an eviction would have closed one before these
    // answers), and the object saw nothing: same counters, same storage, same alarm.
    for (const [i, c] of held.entries()) assert.equal((await roundTrip(/** @type {any} */ (c.ws), 'still')).leaseId, ids[i]);
    const afterStats = await app.stats('olga');
    assert.deepEqual(afterStats.stats, before.stats, 'no acquire, refusal or eviction was counted');
    assert.deepEqual(afterStats.leases.map((/** @type {any} */ l) => l.id).sort(), [...ids].sort());
    assert.deepEqual(await app.storage('olga'), stored, 'nothing was written');

    // A listed origin is served, and under evict-oldest takes the oldest slot.
    const good = await app.connect('olga', { origin: 'https://admin.example' });
    assert.ok(good.ws, JSON.stringify(good));
    const evicted = await within(/** @type {any} */ (held[0]).closed, 10_000, 'the oldest to be evicted');
    assert.equal(evicted.code, CloseCodes.EVICTED);
    assert.equal(evicted.reason, CLOSE_REASONS[CloseCodes.EVICTED]);
    for (const c of [held[1], good]) c.ws?.close(1000);
    await Promise.all([held[1], good].map((c) => c.ws && c.closed));
  });
});

describe('cloudflare: the allowedOrigins and maxPayload options', { timeout: 60_000 }, () => {
  /** @type {App} */
  let app;
  /** @type {string} */
  let ws;
  before(async () => {
    app = await startExample({ testHooks: true, vars: { SOCKET_LEASE_MAX_PAYLOAD: '1024' } });
    ws = app.base.replace(/^http/, 'ws');
  });
  after(() => app?.dispose());

  /**
   * The test worker's upgrade route with these options.
   * @param {string} user
   * @param {Record<string, string>} params
   * @param {import('ws').ClientOptions} [opts]
   */
  const open = (user, params, opts) => connect(`${ws}/__test/ws?${new URLSearchParams({ userJson: JSON.stringify(user), ...params })}`, new Set(), opts);

  test('an array of origins, and a function', async () => {
    const list = { origins: JSON.stringify([GOOD]) };
    assertError(/** @type {any} */ (await open('pia', list, { origin: EVIL })), 403, 'ORIGIN_NOT_ALLOWED');
    const fn = { origins: `fn:${GOOD}` };
    assertError(/** @type {any} */ (await open('pia', fn, { origin: EVIL })), 403, 'ORIGIN_NOT_ALLOWED');
    assert.equal((await app.stats('pia')).stats.acquired, 0);
    const opened = [await open('pia', list, { origin: GOOD }), await open('pia', list), await open('pia', fn, { origin: GOOD })];
    for (const c of opened) {
      assert.ok(c.ws, JSON.stringify(c));
      c.ws.close(1000);
      await c.closed;
    }
  });

  test('maxPayload overrides SOCKET_LEASE_MAX_PAYLOAD for the sockets it connects; a client cannot raise it', async () => {
    const c = await open('quin', { maxPayload: '2048' }, { headers: { 'x-socket-lease-max-payload': '33554432' } });
    assert.ok(c.ws, JSON.stringify(c));
    const fits = 'q'.repeat(2048);
    assert.equal((await roundTrip(c.ws, fits)).data, fits, 'over the env var, within the option');
    c.ws.send('q'.repeat(2049));
    const closed = await within(c.closed, 10_000, 'a close for 2049 bytes');
    assert.equal(closed.code, CloseCodes.MESSAGE_TOO_BIG);

    const forged = await open('quin', {}, { headers: { 'x-socket-lease-max-payload': '33554432' } });
    assert.ok(forged.ws, JSON.stringify(forged));
    forged.ws.send('q'.repeat(1025));
    assert.equal(
      (await within(forged.closed, 10_000, 'a close for 1025 bytes')).code,
      CloseCodes.MESSAGE_TOO_BIG,
      "the env var's limit, not the client's header",
    );
    await waitFor(async () => (await app.stats('quin')).active === 0, { what: 'both leases released' });
  });

  test('userId() that throws -> 500 IDENTITY_ERROR (not an uncaught exception)', async () => {
    // The route parses ?userJson= as JSON: this does not parse.
    const res = await connect(`${ws}/__test/ws?userJson=${encodeURIComponent('{')}`, new Set());
    assert.equal(res.ws, null);
    assertError(/** @type {any} */ (res), 500, 'IDENTITY_ERROR');
  });
});

describe('cloudflare: SOCKET_LEASE_MAX_PAYLOAD', { timeout: 60_000 }, () => {
  const MAX = 1024;
  /** @type {App} */
  let app;
  before(async () => {
    app = await startExample({ testHooks: true, vars: { SOCKET_LEASE_LIMIT: '3', SOCKET_LEASE_MAX_PAYLOAD: String(MAX) } });
  });
  after(() => app?.dispose());

  /** @param {string} user */
  async function openOne(user) {
    const c = await app.connect(user);
    assert.ok(c.ws, JSON.stringify(c));
    return { ws: c.ws, closed: c.closed, leaseId: /** @type {string} */ ((await roundTrip(c.ws, 'hi')).leaseId) };
  }

  // Counted in UTF-8 bytes, as they came over the wire: 'é' is 2 bytes, '😀' 4 (two
  // UTF-16 units), '€' 3.
  for (const [what, fits, over] of /** @type {Array<[string, string, string]>} */ ([
    ['ASCII', 'a'.repeat(MAX), 'a'.repeat(MAX + 1)],
    ['two-byte characters', '\u00e9'.repeat(MAX / 2), `${'\u00e9'.repeat(MAX / 2)}a`],
    ['four-byte characters', '\u{1f600}'.repeat(MAX / 4), `${'\u{1f600}'.repeat(MAX / 4 - 1)}\u20ac\u20ac`],
  ])) {
    test(`text of ${what}: ${Buffer.byteLength(fits)} bytes are echoed; ${Buffer.byteLength(over)} close with 1009 and free the lease at once`, async () => {
      const user = `rae-${what.replace(/\W/g, '')}`;
      const big = await openOne(user);
      const bystander = await openOne(user);
      assert.equal(Buffer.byteLength(fits), MAX);
      assert.ok(Buffer.byteLength(over) > MAX);
      assert.equal((await roundTrip(big.ws, fits)).data, fits);
      // Its close event will be lost: only the object's own release can free the slot.
      await loseClose(big.ws);
      big.ws.send(over);
      const closed = await within(big.closed, 10_000, 'the 1009 close');
      assert.equal(closed.code, CloseCodes.MESSAGE_TOO_BIG);
      assert.equal(closed.reason, CLOSE_REASONS[CloseCodes.MESSAGE_TOO_BIG]);
      const stats = await app.stats(user);
      assert.equal(stats.active, 1, 'released when the message came, not by a close event');
      assert.deepEqual(
        stats.leases.map((/** @type {any} */ l) => l.id),
        [bystander.leaseId],
      );
      assert.deepEqual(await leaseKeys(app, user), [LEASE_RECORD + bystander.leaseId], 'its record is deleted');
      // The user's other socket is served as before.
      assert.equal((await roundTrip(bystander.ws, 'still here')).data, 'still here');
      bystander.ws.close(1000);
      await bystander.closed;
    });
  }

  test('binary: by its length; not processed past the limit', async () => {
    const c = await openOne('sam');
    const reply = await new Promise((resolve) => {
      c.ws.once('message', (d) => resolve(JSON.parse(d.toString())));
      c.ws.send(Buffer.alloc(MAX));
    });
    assert.equal(/** @type {any} */ (reply).type, 'error', 'at the limit: processed (binary is not echoed)');
    /** @type {string[]} */
    const answers = [];
    c.ws.on('message', (d) => answers.push(d.toString()));
    c.ws.send(Buffer.alloc(MAX + 1));
    const closed = await within(c.closed, 10_000, 'the 1009 close');
    assert.equal(closed.code, CloseCodes.MESSAGE_TOO_BIG);
    assert.deepEqual(answers, [], 'no answer to the message over the limit');
    await waitFor(async () => (await app.stats('sam')).active === 0, { what: 'the lease to be released' });
  });

  test('one socket sending too much never affects the other users', async () => {
    const other = await openOne('tess');
    const big = await openOne('uma');
    big.ws.send('x'.repeat(4 * MAX));
    assert.equal((await within(big.closed, 10_000, 'the 1009 close')).code, CloseCodes.MESSAGE_TOO_BIG);
    assert.equal((await roundTrip(other.ws, 'fine')).data, 'fine');
    other.ws.close(1000);
    await other.closed;
  });
});

describe('cloudflare: an expired lease met by a connect before any alarm', { timeout: 60_000 }, () => {
  const TTL_MS = 1500;
  /** @type {App} */
  let app;
  before(async () => {
    // TEST_NO_ALARM: the object's alarms do nothing, as when one has not run yet.
    app = await startExample({ testHooks: true, vars: { SOCKET_LEASE_LIMIT: '2', SOCKET_LEASE_TTL_MS: String(TTL_MS), TEST_NO_ALARM: '1' } });
  });
  after(() => app?.dispose());

  test('is closed with 4009 by that connect, at once, and its record deleted', async () => {
    const silent = await app.connect('vera');
    assert.ok(silent.ws, JSON.stringify(silent));
    const { leaseId } = await roundTrip(silent.ws, 'hi');
    /** @type {{ code: number, reason: string, at: number } | null} */
    let closed = null;
    silent.closed.then((c) => (closed = c));
    // Silent well past its TTL; no alarm reclaims it.
    await delay(TTL_MS * 2);
    assert.equal(closed, null, 'nothing but a request can reclaim it here');
    assert.deepEqual(await leaseKeys(app, 'vera'), [LEASE_RECORD + leaseId]);

    const next = await app.connect('vera');
    assert.ok(next.ws, JSON.stringify(next));
    const got = await within(silent.closed, 5000, 'the expired socket to be closed by the connect');
    assert.equal(got.code, CloseCodes.LEASE_EXPIRED);
    assert.equal(got.reason, CLOSE_REASONS[CloseCodes.LEASE_EXPIRED]);
    const stats = await app.stats('vera');
    assert.equal(stats.active, 1);
    assert.ok(!stats.leases.some((/** @type {any} */ l) => l.id === leaseId));
    assert.equal((await leaseKeys(app, 'vera')).includes(LEASE_RECORD + leaseId), false, "the expired lease's record is deleted");
    next.ws.close(1000);
    await next.closed;
  });
});
