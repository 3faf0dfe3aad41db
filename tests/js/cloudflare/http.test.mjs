// What the Worker and the object answer over HTTP, in workerd (miniflare): user ids that
// HTTP headers cannot carry as they are, and every documented non-101 answer with its
// `{ reason, error, code }` body.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { assertError, connect, roundTrip, startExample } from './harness.mjs';

/** @typedef {Awaited<ReturnType<typeof startExample>>} App */

/**
 * @param {string} url
 * @param {RequestInit} [init]
 * @returns {Promise<{ status: number, headers: Headers, body: any }>}
 */
async function fetchJson(url, init) {
  const res = await fetch(url, init);
  const text = await res.text();
  let body = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: kept as text, which the shape assertions then report
  }
  return { status: res.status, headers: res.headers, body };
}

describe('cloudflare: every answer that is not a 101', { timeout: 60_000 }, () => {
  /** @type {App} */
  let app;
  /** @type {string} */
  let ws;
  before(async () => {
    app = await startExample({ testHooks: true, vars: { SOCKET_LEASE_LIMIT: '2' } });
    ws = app.base.replace(/^http/, 'ws');
  });
  after(() => app?.dispose());

  test('a method other than GET -> 405 METHOD_NOT_ALLOWED with Allow: GET', async () => {
    for (const method of ['POST', 'PUT', 'DELETE']) {
      // Checked before the upgrade header (which fetch cannot send).
      const res = await fetchJson(`${app.base}/ws?user=ken`, { method });
      assertError(res, 405, 'METHOD_NOT_ALLOWED');
      assert.equal(res.headers.get('allow'), 'GET');
    }
  });

  test('a user id over 256 bytes of UTF-8 -> 400 INVALID_USER_ID; exactly 256 is served', async () => {
    // Bytes, not characters: 129 two-byte characters are 258 bytes.
    for (const user of ['x'.repeat(257), '\u00e9'.repeat(129)]) {
      const res = await app.connect(user);
      assert.equal(res.ws, null);
      assertError(/** @type {any} */ (res), 400, 'INVALID_USER_ID');
      assertError(await fetchJson(`${app.base}/api/users/${encodeURIComponent(user)}`), 400, 'INVALID_USER_ID');
    }
    const longest = '\u00e9'.repeat(128);
    const ok = await app.connect(longest);
    assert.ok(ok.ws, JSON.stringify(ok));
    assert.equal((await app.stats(longest)).userId, longest);
    ok.ws.close(1000);
    await ok.closed;
  });

  test('the read-only views without a user id -> 400 MISSING_USER (not 401: they authenticate nothing)', async () => {
    assertError(await fetchJson(`${app.base}/api/users/`), 400, 'MISSING_USER');
    assertError(await fetchJson(`${app.base}/metrics`), 400, 'MISSING_USER');
    assertError(await fetchJson(`${app.base}/metrics?user=`), 400, 'MISSING_USER');
    // With one, both answer.
    assert.equal((await fetchJson(`${app.base}/api/users/ken`)).status, 200);
    const metrics = await fetch(`${app.base}/metrics?user=ken`);
    assert.equal(metrics.status, 200);
    assert.match(await metrics.text(), /socket_lease_sockets_open 0/);
  });

  test('a stats path that is not percent-encoded UTF-8 -> 400 INVALID_USER_ID', async () => {
    assertError(await fetchJson(`${app.base}/api/users/%E0%A4`), 400, 'INVALID_USER_ID');
    assertError(await fetchJson(`${app.base}/api/users/%`), 400, 'INVALID_USER_ID');
  });

  test('a missing Durable Object binding -> 500 INVALID_CONFIG naming it', async () => {
    const res = await connect(`${ws}/__test/ws?binding=NOPE&userJson=${encodeURIComponent('"ken"')}`, new Set());
    assert.equal(res.ws, null);
    assertError(/** @type {any} */ (res), 500, 'INVALID_CONFIG');
    assert.match(res.body.error, /the Durable Object binding NOPE is missing/);
  });

  test("an object reached under another user's id -> 500 WRONG_OBJECT; a malformed user header -> 400", async () => {
    const c = await app.connect('owner');
    assert.ok(c.ws);
    const at = (/** @type {string} */ header) => fetchJson(`${app.base}/__test/connect-as?user=owner&header=${encodeURIComponent(header)}`);
    assertError(await at(encodeURIComponent('intruder')), 500, 'WRONG_OBJECT');
    assertError(await at('%E0%A4'), 400, 'INVALID_USER_ID');
    assertError(await at(''), 400, 'INVALID_USER_ID');
    // Neither took a lease.
    const stats = await app.stats('owner');
    assert.equal(stats.active, 1);
    assert.equal(stats.userId, 'owner');
    c.ws.close(1000);
    await c.closed;
  });
});

describe('cloudflare: user ids that a header cannot carry as they are', { timeout: 60_000 }, () => {
  /** @type {App} */
  let app;
  before(async () => {
    app = await startExample({ vars: { SOCKET_LEASE_LIMIT: '2' } });
  });
  after(() => app?.dispose());

  // The core accepts any id of 1..256 bytes; the adapter must hand it to the object
  // unchanged, whatever HTTP header values allow.
  for (const [what, user] of [
    ['a line feed', 'a\nb'],
    ['a NUL', 'x\u0000y'],
    ['a carriage return and a tab', 'c\r\td'],
  ]) {
    test(`an id with ${what} is served as is`, async () => {
      const c = await app.connect(user);
      assert.ok(c.ws, `refused: ${JSON.stringify(c)}`);
      assert.equal((await roundTrip(c.ws, 'hi')).type, 'echo');
      const stats = await app.stats(user);
      assert.equal(stats.userId, user);
      assert.equal(stats.active, 1);
      c.ws.close(1000);
      await c.closed;
    });
  }

  test('ids that differ only by leading or trailing whitespace are different users', async () => {
    const users = ['alice', ' alice', 'alice ', '\talice'];
    const held = [];
    for (const user of users) {
      const c = await app.connect(user);
      assert.ok(c.ws, `${JSON.stringify(user)} refused: ${JSON.stringify(c)}`);
      held.push(c);
    }
    for (const user of users) {
      const stats = await app.stats(user);
      assert.equal(stats.userId, user, 'each object records its own id, untrimmed');
      assert.equal(stats.active, 1, `${JSON.stringify(user)} has its own object and count`);
    }
    for (const c of held) c.ws?.close(1000);
    await Promise.all(held.map((c) => c.ws && c.closed));
  });

  test('an id that is not well-formed Unicode (a lone surrogate from the host) -> 400 INVALID_USER_ID', async () => {
    // Only a host's userId() can produce one (URL decoding never does); the test worker's
    // /__test/ws takes the id as JSON, which can spell it.
    const app2 = await startExample({ testHooks: true });
    try {
      const url = `${app2.base.replace(/^http/, 'ws')}/__test/ws?userJson=${encodeURIComponent('"a\\ud800b"')}`;
      const res = await connect(url, new Set());
      assert.equal(res.ws, null);
      assertError(/** @type {any} */ (res), 400, 'INVALID_USER_ID');
      // The same route serves a plain id, so the 400 is about the id.
      const ok = await connect(`${app2.base.replace(/^http/, 'ws')}/__test/ws?userJson=${encodeURIComponent('"b"')}`, new Set());
      assert.ok(ok.ws, JSON.stringify(ok));
      ok.ws.close(1000);
      await ok.closed;
    } finally {
      await app2.dispose();
    }
  });
});

describe('cloudflare: a lease that cannot be stored is rolled back', { timeout: 60_000 }, () => {
  /** @type {App} */
  let app;
  before(async () => {
    // The test worker fails every storage write of this user's lease (hooks-worker.mjs).
    app = await startExample({ testHooks: true, vars: { SOCKET_LEASE_LIMIT: '1', TEST_FAIL_PUT_USER: 'pia' } });
  });
  after(() => app?.dispose());

  test('the connect is answered 500 INTERNAL_ERROR, and the slot is free at once, with nothing stored', async () => {
    const res = await app.connect('pia');
    assert.equal(res.ws, null, 'no socket without a stored lease');
    assertError(/** @type {any} */ (res), 500, 'INTERNAL_ERROR');
    assert.match(res.body.error, /injected storage failure/);
    const stats = await app.stats('pia');
    assert.equal(stats.active, 0, 'the lease was released, not left to the next reconcile');
    assert.deepEqual(stats.leases, []);
    assert.equal(stats.stats.acquired, 1);
    assert.equal(stats.stats.released, 1);
    assert.equal(stats.socketsOpen, 0);
    const { sizes, alarm } = await app.storage('pia');
    assert.deepEqual(
      Object.keys(sizes).filter((k) => k.startsWith('socket-lease:lease:')),
      [],
    );
    // The counters of the rolled-back lease wait for the alarm (whose writes fail here too).
    assert.notEqual(alarm, null, 'an alarm is set to write the counters');
    // Other users are not affected.
    const other = await app.connect('quin');
    assert.ok(other.ws, JSON.stringify(other));
    other.ws.close(1000);
    await other.closed;
  });
});
