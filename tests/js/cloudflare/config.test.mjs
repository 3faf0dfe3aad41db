// Bad env vars fail with a clear answer naming the variable, in workerd (miniflare); so do
// requests the adapter cannot serve.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, roundTrip, startExample, waitFor, within } from './harness.mjs';

// The documented close code for eviction (docs/cloudflare.md).
const CLOSE_EVICTED = 4008;

/** @typedef {Awaited<ReturnType<typeof startExample>>} App */

/** @type {Array<[string, Record<string, string>, RegExp]>} */
const BAD = [
  ['a limit that is not a number', { SOCKET_LEASE_LIMIT: 'five' }, /SOCKET_LEASE_LIMIT must be an integer from 1 to 32768, got "five"/],
  ['a limit of zero', { SOCKET_LEASE_LIMIT: '0' }, /SOCKET_LEASE_LIMIT must be an integer from 1 to 32768/],
  ['a limit above the sockets one object can hold', { SOCKET_LEASE_LIMIT: '40000' }, /SOCKET_LEASE_LIMIT .* 32768, got "40000"/],
  ['a fractional limit', { SOCKET_LEASE_LIMIT: '2.5' }, /SOCKET_LEASE_LIMIT/],
  ['a TTL below a second', { SOCKET_LEASE_TTL_MS: '10' }, /SOCKET_LEASE_TTL_MS must be an integer from 1000 to 86400000, got "10"/],
  ['a TTL in another notation', { SOCKET_LEASE_TTL_MS: '9e4' }, /SOCKET_LEASE_TTL_MS/],
  ['an unknown policy', { SOCKET_LEASE_POLICY: 'drop-newest' }, /SOCKET_LEASE_POLICY must be one of reject, evict-oldest, evict-idle, got "drop-newest"/],
  ['a global limit, which per-user objects cannot enforce', { SOCKET_LEASE_GLOBAL_LIMIT: '100' }, /SOCKET_LEASE_GLOBAL_LIMIT is not supported/],
  // The Node host's server ping interval: the edge cannot ping, and must not pretend to.
  [
    'a server heartbeat interval, which the edge cannot send',
    { SOCKET_LEASE_HEARTBEAT_MS: '30000' },
    /SOCKET_LEASE_HEARTBEAT_MS is not supported on Cloudflare Workers: .*clients send the heartbeat \{"type":"ping"\}/,
  ],
  ['a max payload of zero', { SOCKET_LEASE_MAX_PAYLOAD: '0' }, /SOCKET_LEASE_MAX_PAYLOAD must be an integer from 1 to 33554432, got "0"/],
  ["a max payload over workerd's own 32 MiB", { SOCKET_LEASE_MAX_PAYLOAD: '33554433' }, /SOCKET_LEASE_MAX_PAYLOAD must be an integer from 1 to 33554432/],
  ['a max payload with a unit', { SOCKET_LEASE_MAX_PAYLOAD: '64k' }, /SOCKET_LEASE_MAX_PAYLOAD .*got "64k"/],
  [
    'an allowed origin with a path',
    { SOCKET_LEASE_ALLOWED_ORIGINS: 'https://app.example/chat' },
    /SOCKET_LEASE_ALLOWED_ORIGINS: "https:\/\/app.example\/chat" is not an origin/,
  ],
  [
    'an allowed origin that is not a URL',
    { SOCKET_LEASE_ALLOWED_ORIGINS: 'https://ok.example, app.example' },
    /SOCKET_LEASE_ALLOWED_ORIGINS: "app.example" is not an origin like https:\/\/app.example/,
  ],
];

describe('cloudflare: configuration from env vars', { timeout: 180_000 }, () => {
  /** @type {App} */
  let app;
  before(async () => {
    app = await startExample();
  });
  after(() => app?.dispose());

  for (const [what, vars, message] of BAD) {
    test(`${what} -> HTTP 500 { reason: "invalid-config", error, code: "INVALID_CONFIG" }, no socket`, async () => {
      await app.setVars(vars);
      const res = await app.connect('ken');
      assert.equal(res.ws, null, 'no socket may be accepted under a bad config');
      assert.equal(res.status, 500);
      assert.equal(res.body.code, 'INVALID_CONFIG');
      assert.equal(res.body.reason, 'invalid-config');
      assert.match(res.body.error, message);
      assert.deepEqual(Object.keys(res.body).sort(), ['code', 'error', 'reason'], 'the documented error shape');
    });
  }

  // Each policy is told apart by what the third connect at a limit of 2 does: the first
  // socket connected is touched last (by a message), so evict-oldest and evict-idle pick
  // different victims, and reject picks none.
  /** @type {Array<[string, (r: { third: any, first: any, second: any }) => void]>} */
  const POLICY_EFFECTS = [
    [
      'reject',
      ({ third }) => assert.deepEqual({ status: third.status, body: third.body }, { status: 429, body: { reason: 'user-limit', limit: 2, active: 2 } }),
    ],
    [
      'evict-oldest',
      ({ third, first }) => {
        assert.ok(third.ws, 'accepted');
        assert.equal(first.code, CLOSE_EVICTED, 'the first connected is evicted');
      },
    ],
    [
      'evict-idle',
      ({ third, second }) => {
        assert.ok(third.ws, 'accepted');
        assert.equal(second.code, CLOSE_EVICTED, 'the one silent longest is evicted');
      },
    ],
  ];

  for (const [policy, check] of POLICY_EFFECTS) {
    test(`valid overrides (numbers with spaces, policy ${policy}) take effect`, async () => {
      const user = `ken-${policy}`;
      await app.setVars({ SOCKET_LEASE_LIMIT: ' 2 ', SOCKET_LEASE_TTL_MS: '60000', SOCKET_LEASE_POLICY: policy });
      const a = await app.connect(user);
      const b = await app.connect(user);
      assert.ok(a.ws && b.ws, `${policy}: ${JSON.stringify([a, b])}`);
      const lease = (/** @type {any} */ s, /** @type {WebSocket} */ ws) => s.leases.find((/** @type {{ id: string }} */ l) => l.id === ids.get(ws));
      const ids = new Map([
        [a.ws, (await roundTrip(a.ws, 'x')).leaseId],
        [b.ws, (await roundTrip(b.ws, 'x')).leaseId],
      ]);
      const before = await app.stats(user);
      assert.equal(before.limit, 2);
      assert.equal(lease(before, b.ws).expiresAt - lease(before, b.ws).touchedAt, 60_000, 'the TTL');
      // Touch the first socket again once the object's clock has passed the second's touch.
      await waitFor(async () => (await app.stats(user)).now > lease(before, b.ws).touchedAt, { what: 'the object clock to move' });
      await roundTrip(a.ws, 'again');
      assert.ok(lease(await app.stats(user), a.ws).touchedAt > lease(before, b.ws).touchedAt);

      const third = await app.connect(user);
      /** @type {Record<string, any>} */
      const closedBy = { first: null, second: null };
      if (third.ws) {
        // One of the two is evicted: wait for whichever it is.
        const gone = await within(Promise.race([a.closed.then((c) => ['first', c]), b.closed.then((c) => ['second', c])]), 10_000, 'an eviction');
        closedBy[gone[0]] = gone[1];
      }
      check({ third, ...closedBy });
      for (const c of [a, b, third]) c.ws?.close(1000);
      await Promise.all([a, b, third].map((c) => c.ws && c.closed));
    });
  }

  test('defaults apply when the vars are unset', async () => {
    await app.setVars({ SOCKET_LEASE_LIMIT: undefined, SOCKET_LEASE_TTL_MS: undefined, SOCKET_LEASE_POLICY: undefined, SOCKET_LEASE_MAX_PAYLOAD: undefined });
    const res = await app.connect('lena');
    assert.ok(res.ws);
    const stats = await app.stats('lena');
    assert.equal(stats.limit, 20);
    const [lease] = stats.leases;
    assert.equal(lease.expiresAt - lease.touchedAt, 90_000);
    res.ws.close(1000);
    await res.closed;
  });

  test('no user -> 401; no upgrade header -> 426; other paths fall through to the host', async () => {
    await app.setVars({});
    const noUser = await connect(`${app.base.replace(/^http/, 'ws')}/ws`, new Set());
    assert.equal(noUser.ws, null);
    assert.equal(noUser.status, 401);
    assert.equal(noUser.body.code, 'UNAUTHENTICATED');
    assert.equal(noUser.body.reason, 'unauthorized', "the Node host's reason for a 401");
    assert.deepEqual(Object.keys(noUser.body).sort(), ['code', 'error', 'reason'], 'the documented error shape');
    const plain = await fetch(`${app.base}/ws?user=ken`);
    assert.equal(plain.status, 426);
    assert.deepEqual(await plain.json(), { reason: 'upgrade-required', error: 'expected a WebSocket upgrade', code: 'UPGRADE_REQUIRED' });
    const other = await fetch(`${app.base}/`);
    assert.equal(other.status, 200);
    assert.match(await other.text(), /socket-lease on Cloudflare Workers/);
  });
});
