// The conformance suite's cases (tests/js/conformance/), run through a real
// socket.io-client against the Socket.IO demo (examples/socketio/server.mjs) started as a
// child process with the contract's env vars. The suite itself speaks raw WebSocket, so
// Socket.IO has this equivalent instead of a descriptor there: a refusal is a
// connect_error with { status, reason, limit, active, retryAfterMs }, a close code is the
// `socket-lease:closed` event before the disconnect, SOCKET_LEASE_HEARTBEAT_MS is
// engine.io's pingInterval (and pingTimeout), SOCKET_LEASE_MAX_PAYLOAD its
// maxHttpBufferSize. Hosts: `socketio` (in-memory) and `socketio-redis` (leases in a
// redis-server this file starts, when one is installed).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { holdSockets, metricValue, startHost, waitFor, within } from '../conformance/lib.mjs';
import { launchRedis } from '../../../scripts/redis-server.mjs';
import { connect, silentPeer } from './helpers.mjs';

const LEASE_ID = /^conn_[0-9a-z]{26}$/;
const SLACK_MS = 8000;
const DEFAULTS = { limit: 5, ttlMs: 20_000, heartbeatMs: 2000, policy: 'reject' };
const COMMAND = [process.execPath, 'examples/socketio/server.mjs'];

const hasRedis = spawnSync('redis-server', ['--version']).status === 0;
const HOSTS = [
  { name: 'socketio', redis: false },
  { name: 'socketio-redis', redis: true },
];

for (const host of HOSTS) {
  describe(`conformance (Socket.IO): ${host.name}`, { timeout: 600_000, skip: host.redis && !hasRedis ? 'no redis-server on PATH' : false }, () => {
    /** @type {{ url: string, destroy: () => Promise<void> } | null} */
    let redis = null;
    let starts = 0;
    const running = new Set();
    before(async () => {
      if (host.redis) redis = await launchRedis();
    });
    after(async () => {
      await Promise.allSettled([...running].map((p) => p.stop()));
      await redis?.destroy();
    });

    /**
     * One demo process for a case, with the contract's env.
     * @param {Partial<typeof DEFAULTS> & { allowedOrigins?: string, maxPayload?: number }} config
     * @param {Record<string, string>} [storeEnv]  reuse: the same store as an earlier session
     */
    async function launch(config, storeEnv) {
      const c = { ...DEFAULTS, ...config };
      const adminToken = crypto.randomBytes(12).toString('hex');
      const store = storeEnv ?? (redis ? { REDIS_URL: redis.url, SOCKET_LEASE_REDIS_PREFIX: `sio-${process.pid}-${starts++}:` } : {});
      /** @type {Record<string, string>} */
      const env = {
        ...store,
        SOCKET_LEASE_LIMIT: String(c.limit),
        SOCKET_LEASE_TTL_MS: String(c.ttlMs),
        SOCKET_LEASE_HEARTBEAT_MS: String(c.heartbeatMs),
        SOCKET_LEASE_POLICY: c.policy,
        SOCKET_LEASE_LOG_LEVEL: 'warn',
        SOCKET_LEASE_ADMIN_TOKEN: adminToken,
      };
      if (c.allowedOrigins) env.SOCKET_LEASE_ALLOWED_ORIGINS = c.allowedOrigins;
      if (c.maxPayload) env.SOCKET_LEASE_MAX_PAYLOAD = String(c.maxPayload);
      const proc = await startHost(
        { name: host.name, command: COMMAND, heartbeat: { style: 'protocol' }, metrics: 'global', healthz: true, sharedStore: host.redis, cannot: {} },
        env,
      );
      running.add(proc);
      /** @type {Set<import('socket.io-client').Socket>} */
      const clients = new Set();
      const s = {
        proc,
        config: c,
        store,
        clients,
        /** @param {string} path @param {Record<string, string>} [headers] */
        get: (path, headers = { authorization: `Bearer ${adminToken}` }) => fetch(`${proc.url}${path}`, { headers }),
        /** @param {string} path */
        async json(path) {
          const res = await s.get(path);
          assert.equal(res.status, 200, `GET ${path}`);
          return /** @type {any} */ (await res.json());
        },
        async metrics() {
          return (await s.get('/metrics')).text();
        },
        async active() {
          return /** @type {number} */ (metricValue(await s.metrics(), 'socket_lease_active_leases'));
        },
        /** @param {string} user */
        userActive: async (user) => /** @type {number} */ ((await s.json(`/api/users/${encodeURIComponent(user)}`)).active),
        /** @param {string} user */
        leaseIds: async (user) => (await s.json(`/api/users/${encodeURIComponent(user)}`)).leases.map((/** @type {any} */ l) => l.id).sort(),
        /** @param {unknown} user @param {{ origin?: string }} [o] */
        connect: (user, o = {}) => connect(proc.url, { user, track: clients, ...o }),
        /** @param {unknown} user @param {{ origin?: string }} [o] */
        async open(user, o) {
          const r = await s.connect(user, o);
          if (!r.ok) assert.fail(`connect for ${user} refused: ${r.message} ${JSON.stringify(r.data)}`);
          return r.client;
        },
        /** `n` held sockets of `user` (lib.mjs holdSockets). @param {string} user @param {number} n */
        hold: (user, n) => holdSockets(s.open, user, n),
        users: (/** @type {number} */ n) => Array.from({ length: n }, (_, i) => `sio-${i}-${crypto.randomBytes(3).toString('hex')}`),
        startActive: 0,
        startHealth: /** @type {any} */ (null),
        /** @type {any} */ checkVia: null,
        /** @type {string | null} */ noCheck: null,
      };
      s.startActive = await s.active();
      s.startHealth = await s.json('/healthz');
      return s;
    }
    /** @typedef {Awaited<ReturnType<typeof launch>>} Session */

    /**
     * A case: its own demo process, then (10.) leases back at their start value.
     * @param {string} title
     * @param {Parameters<typeof launch>[0]} config
     * @param {(t: import('node:test').TestContext, s: Session) => Promise<void>} body
     */
    function hostCase(title, config, body) {
      test(title, { timeout: 120_000 }, async (t) => {
        const s = await launch(config);
        try {
          await body(t, s);
        } catch (err) {
          for (const line of s.proc.log().trimEnd().split('\n').slice(-15)) t.diagnostic(`  ${line}`);
          throw err;
        } finally {
          for (const c of s.clients) c.disconnect();
          await t.test('10. active leases back at the start value (/metrics, /healthz)', async (t2) => {
            if (s.noCheck) return t2.skip(s.noCheck);
            const m = s.checkVia ?? s;
            /** @type {any} */
            let seen;
            await waitFor(
              async () => (seen = await m.active()) === s.startActive,
              `/metrics active back to ${s.startActive}`,
              SLACK_MS,
              () => seen,
            );
            await waitFor(
              async () => {
                seen = await m.json('/healthz');
                return seen.activeLeases === s.startHealth.activeLeases && seen.socketsOpen === s.startHealth.socketsOpen;
              },
              '/healthz back to its start',
              SLACK_MS,
              () => seen,
            );
          });
          for (const p of [s.proc, s.checkVia?.proc]) {
            if (!p) continue;
            await p.stop();
            running.delete(p);
          }
        }
      });
    }

    hostCase('1. 300 sequential connect-echo-disconnect cycles at limit 5: each echoed, none refused', { limit: 5 }, async (_t, s) => {
      const [u] = s.users(1);
      const leases = new Set();
      for (let i = 0; i < 300; i++) {
        const r = await s.connect(u);
        assert.ok(r.ok, `cycle ${i}: refused: ${!r.ok && `${r.message} ${JSON.stringify(r.data)}`}`);
        const reply = await within(r.client.echo(`cycle ${i}`), 10_000, `the echo of cycle ${i}`);
        assert.deepEqual({ ...reply, leaseId: '' }, { type: 'echo', data: `cycle ${i}`, leaseId: '' });
        assert.match(reply.leaseId, LEASE_ID);
        leases.add(reply.leaseId);
        r.client.socket.disconnect();
        assert.equal(await r.client.disconnected, 'io client disconnect');
      }
      assert.equal(leases.size, 300, 'every connection had its own lease');
      await waitFor(async () => (await s.userActive(u)) === 0, `${u} to hold no lease`, SLACK_MS);
    });

    hostCase('2. limit+1 concurrent connects (limit 5): exactly one connect_error with the retry data, 5 open', { limit: 5 }, async (_t, s) => {
      const [u] = s.users(1);
      const results = await Promise.all(Array.from({ length: 6 }, () => s.connect(u)));
      const opened = results.flatMap((r) => (r.ok ? [r.client] : []));
      const refused = results.flatMap((r) => (r.ok ? [] : [r]));
      assert.equal(opened.length, 5);
      assert.equal(refused.length, 1);
      const { message, data } = refused[0];
      assert.equal(message, 'user-limit');
      assert.equal(data.status, 429);
      assert.equal(data.reason, 'user-limit');
      assert.equal(data.limit, 5);
      assert.equal(data.active, 5);
      assert.ok(Number.isFinite(data.retryAfterMs) && data.retryAfterMs >= 1 && data.retryAfterMs <= s.config.ttlMs, `retryAfterMs ${data.retryAfterMs}`);
      const ids = new Set();
      for (const c of opened) ids.add((await c.echo('hi')).leaseId);
      assert.equal(ids.size, 5, 'five distinct leases');
      assert.equal(await s.userActive(u), 5);
    });

    hostCase(
      "3. 50 abrupt drops (the engine transport's TCP socket destroyed): every lease reclaimed, the users connect to the limit again",
      { limit: 5, ttlMs: 10_000, heartbeatMs: 1000 },
      async (_t, s) => {
        const users = s.users(10);
        const clients = (await Promise.all(users.map((u) => Promise.all(Array.from({ length: 5 }, () => s.open(u)))))).flat();
        await Promise.all(clients.map((c) => c.echo('before the drop')));
        assert.equal(await s.active(), s.startActive + 50, '50 leases held');
        // No close frame, no Socket.IO disconnect packet: the TCP connection just goes.
        for (const c of clients) /** @type {any} */ (c.socket.io.engine.transport).ws._socket.destroy();
        /** @type {Record<string, number>} */
        const left = {};
        await waitFor(
          async () => {
            for (const u of users) left[u] = await s.userActive(u);
            return Object.values(left).every((n) => n === 0);
          },
          'all 50 dropped leases to be reclaimed',
          2 * s.config.heartbeatMs + SLACK_MS,
          () => left,
        );
        for (const u of users) {
          const again = await Promise.all(Array.from({ length: 5 }, () => s.open(u)));
          const over = await s.connect(u);
          assert.ok(!over.ok && over.data.status === 429, `${u}: the 6th is refused (the limit still holds)`);
          for (const c of again) c.socket.disconnect();
        }
      },
    );

    hostCase(
      '4. a silent peer (its engine stops answering pings) is reclaimed within pingInterval + pingTimeout; a live one is kept',
      { limit: 5, ttlMs: 1500, heartbeatMs: 300 },
      async (t, s) => {
        const [u] = s.users(1);
        const live = await s.open(u);
        const liveId = (await live.echo('live')).leaseId;
        const silent = /** @type {any} */ (await silentPeer(s.proc.url, u));
        const openedAt = Date.now();
        await waitFor(async () => (await s.userActive(u)) === 2, "the silent peer's lease");
        // pingInterval + pingTimeout = 2 x SOCKET_LEASE_HEARTBEAT_MS (the demo's setting).
        const bound = 2 * s.config.heartbeatMs;
        await waitFor(async () => (await s.leaseIds(u)).length === 1, `the silent peer's lease to be reclaimed (bound ${bound} ms + slack)`, bound + SLACK_MS);
        t.diagnostic(`silent peer reclaimed about ${Date.now() - openedAt} ms after it connected (bound ${bound} ms)`);
        await within(silent.closed, SLACK_MS, "the silent peer's connection to be closed");
        const wait = openedAt + 2 * s.config.ttlMs + 300 - Date.now();
        if (wait > 0) await delay(wait);
        assert.ok(live.socket.connected, 'the live peer is still connected after two TTLs');
        assert.equal((await live.echo('still here')).leaseId, liveId);
        assert.deepEqual(await s.leaseIds(u), [liveId]);
      },
    );

    hostCase('5. evict-oldest: the oldest socket is told 4008 (socket-lease:closed) and disconnected', { limit: 5, policy: 'evict-oldest' }, async (_t, s) => {
      const [u] = s.users(1);
      const held = await s.hold(u, 5);
      const newer = await s.open(u);
      const newerId = (await newer.echo('newer')).leaseId;
      const told = await within(held[0].c.told, SLACK_MS, 'the oldest socket to be disconnected');
      assert.equal(told?.code, 4008, `told ${JSON.stringify(told)}`);
      assert.equal(await held[0].c.disconnected, 'io server disconnect');
      for (const h of held.slice(1)) assert.equal((await h.c.echo('still here')).leaseId, h.id);
      assert.deepEqual(await s.leaseIds(u), [...held.slice(1).map((h) => h.id), newerId].sort());
    });

    hostCase(
      '6. a forged Origin is refused (403 origin-not-allowed) and evicts nothing, even under evict-oldest at the limit; an allowed Origin works',
      { limit: 5, policy: 'evict-oldest', allowedOrigins: 'http://good.example' },
      async (_t, s) => {
        const [u] = s.users(1);
        const held = await s.hold(u, 5);
        const before = await s.metrics();
        const forged = await s.connect(u, { origin: 'http://evil.example' });
        assert.ok(!forged.ok, 'a forged Origin is refused');
        assert.deepEqual(forged.data, { status: 403, reason: 'origin-not-allowed', limit: null, active: null, retryAfterMs: null });
        for (const h of held) assert.equal((await h.c.echo('still here')).leaseId, h.id, 'every held socket stays');
        const afterMetrics = await s.metrics();
        for (const series of ['socket_lease_active_leases', 'socket_lease_evicted_total', 'socket_lease_acquired_total']) {
          assert.equal(metricValue(afterMetrics, series), metricValue(before, series), `${series} unchanged`);
        }
        const allowed = await s.open(u, { origin: 'http://good.example' });
        assert.equal((await allowed.echo('good')).type, 'echo');
        assert.equal((await within(held[0].c.told, SLACK_MS, 'the oldest to be evicted'))?.code, 4008);
      },
    );

    hostCase(
      '7. a message over SOCKET_LEASE_MAX_PAYLOAD (maxHttpBufferSize) ends that connection and its lease; the host keeps serving',
      { limit: 5, maxPayload: 4096 },
      async (_t, s) => {
        const [u, other] = s.users(2);
        const big = await s.open(u);
        const bystander = await s.open(u);
        const elsewhere = await s.open(other);
        const fits = 'f'.repeat(3900);
        assert.equal((await big.echo(fits)).data, fits, 'a message under the limit is echoed');
        big.socket.emit('echo', 'x'.repeat(8192));
        assert.equal(await within(big.disconnected, SLACK_MS, 'the oversized sender to be disconnected'), 'transport close');
        assert.equal((await bystander.echo('same user')).data, 'same user');
        assert.equal((await elsewhere.echo('other user')).data, 'other user');
        await waitFor(async () => (await s.userActive(u)) === 1, "the closed socket's lease to be released", SLACK_MS);
        assert.equal((await (await s.open(u)).echo('next')).data, 'next');
      },
    );

    hostCase('9. graceful shutdown: SIGTERM tells every socket 1001, disconnects it, releases every lease, exits 0', { limit: 5 }, async (_t, s) => {
      const [a, b] = s.users(2);
      const clients = [...(await Promise.all([0, 1, 2].map(() => s.open(a)))), ...(await Promise.all([0, 1].map(() => s.open(b))))];
      await Promise.all(clients.map((c) => c.echo('before shutdown')));
      s.proc.signal('SIGTERM');
      const told = await within(Promise.all(clients.map((c) => c.told)), SLACK_MS, 'every socket to be told');
      assert.deepEqual(
        told.map((x) => x?.code),
        clients.map(() => 1001),
      );
      const exit = await within(s.proc.exited, SLACK_MS, 'the host to exit');
      assert.deepEqual(exit, { code: 0, signal: null }, `exit status; output:\n${s.proc.log()}`);
      const final = JSON.parse(/final stats (\{.*\})/.exec(s.proc.log())?.[1] ?? 'null');
      assert.equal(final?.guard.socketsOpen, 0);
      assert.equal(final?.guard.released, 5, 'five leases released by the shutdown');
      if (host.redis) {
        const second = await launch(s.config, s.store);
        s.checkVia = second;
        assert.equal(await second.userActive(a), 0);
        assert.equal(await second.userActive(b), 0);
      } else {
        assert.equal(final?.store.active, 0, 'the store holds no lease at exit');
        s.noCheck = 'the in-memory store left with the process; its final stats (active 0) were checked';
      }
    });

    hostCase('11. refusals: 401 without a user, 400 for a malformed user id (connect_error data)', { limit: 5 }, async (_t, s) => {
      const none = await s.connect(undefined);
      assert.ok(!none.ok && none.data.status === 401 && none.data.reason === 'unauthorized', JSON.stringify(!none.ok && none.data));
      const long = await s.connect('u'.repeat(300));
      assert.ok(!long.ok && long.data.status === 400 && long.data.reason === 'invalid-user-id', JSON.stringify(!long.ok && long.data));
    });

    hostCase('12. SOCKET_LEASE_ADMIN_TOKEN guards /metrics and /api/users/:id', { limit: 5 }, async (_t, s) => {
      for (const path of ['/metrics', '/api/users/x']) {
        assert.equal((await s.get(path, {})).status, 401, `GET ${path} without a token`);
        assert.equal((await s.get(path, { authorization: 'Bearer wrong' })).status, 401);
        assert.equal((await s.get(path)).status, 200);
      }
    });
  });
}
