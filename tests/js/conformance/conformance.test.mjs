// One black-box suite every socket-lease host must pass. Each case starts its own host
// process (hosts.mjs says how, per host) with the env the case needs, talks to it only
// over HTTP and WebSocket on 127.0.0.1, and stops it afterwards; every wait is a bounded
// poll for a state, never an assertion about speed.
//
//   node --test tests/js/conformance/*.test.mjs          (after `npm run build`)
//   CONFORMANCE_HOSTS=node node --test tests/js/conformance/*.test.mjs
import assert from 'node:assert/strict';
import { once } from 'node:events';
import crypto from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import WebSocket from 'ws';
import { HOSTS } from './hosts.mjs';
import { HEARTBEAT_PONG, connect, holdSockets, maskedTextFrame, metricValue, nonReadingPeer, startHost, treeRss, waitFor, within } from './lib.mjs';

// The host contract's close codes.
const GOING_AWAY = 1001;
const MESSAGE_TOO_BIG = 1009;
const EVICTED = 4008;

const LEASE_ID = /^conn_[0-9a-z]{26}$/;
const GOOD_ORIGIN = 'http://good.example';
const EVIL_ORIGIN = 'http://evil.example';
// Generous on purpose: a slow or loaded machine must not fail a case that a correct host
// passes. Bounds only stop a wait for something that is not happening.
const SLACK_MS = 8000;

/**
 * What a case asks of its host; turned into the contract's env vars.
 * @typedef {object} CaseConfig
 * @property {number} [limit]
 * @property {number} [ttlMs]
 * @property {number} [heartbeatMs]
 * @property {'reject' | 'evict-oldest' | 'evict-idle'} [policy]
 * @property {string} [allowedOrigins]
 * @property {number} [maxPayload]
 * @property {number} [maxBuffered]
 */
/** @type {Required<Pick<CaseConfig, 'limit' | 'ttlMs' | 'heartbeatMs' | 'policy'>>} */
const DEFAULTS = { limit: 5, ttlMs: 20_000, heartbeatMs: 2000, policy: 'reject' };

/**
 * @param {Required<Pick<CaseConfig, 'limit' | 'ttlMs' | 'heartbeatMs' | 'policy'>> & CaseConfig} c
 * @param {string} adminToken
 */
function contractEnv(c, adminToken) {
  /** @type {Record<string, string>} */
  const env = {
    SOCKET_LEASE_LIMIT: String(c.limit),
    SOCKET_LEASE_TTL_MS: String(c.ttlMs),
    SOCKET_LEASE_HEARTBEAT_MS: String(c.heartbeatMs),
    SOCKET_LEASE_POLICY: c.policy,
    SOCKET_LEASE_LOG_LEVEL: 'warn',
    SOCKET_LEASE_ADMIN_TOKEN: adminToken,
  };
  if (c.allowedOrigins !== undefined) env.SOCKET_LEASE_ALLOWED_ORIGINS = c.allowedOrigins;
  if (c.maxPayload !== undefined) env.SOCKET_LEASE_MAX_PAYLOAD = String(c.maxPayload);
  if (c.maxBuffered !== undefined) env.SOCKET_LEASE_MAX_BUFFERED = String(c.maxBuffered);
  return env;
}

for (const host of HOSTS) {
  describe(`conformance: ${host.name}`, { timeout: 600_000 }, () => {
    /** @type {{ env: Record<string, string>, dispose: () => Promise<void> } | undefined} */
    let resources;
    /** Host processes not yet stopped: `after` stops them whatever happened. */
    const running = new Set();
    let starts = 0;

    before(async () => {
      resources = await host.resources?.();
    });
    after(async () => {
      await Promise.allSettled([...running].map((p) => p.stop()));
      await resources?.dispose();
    });

    /**
     * Starts one host process for a case: the session the case talks to.
     * @param {string} caseId
     * @param {CaseConfig} config
     * @param {{ env?: Record<string, string>, adminToken?: string }} [reuse] start with the
     *   same store env and token as an earlier session (the second host on one Redis)
     */
    async function launch(caseId, config, reuse) {
      const c = { ...DEFAULTS, ...config };
      const adminToken = reuse?.adminToken ?? crypto.randomBytes(12).toString('hex');
      const storeEnv = reuse?.env ?? { ...resources?.env, ...host.startEnv?.(starts++) };
      const proc = await startHost(host, { ...storeEnv, ...contractEnv(c, adminToken) });
      running.add(proc);
      const wsBase = proc.url.replace(/^http/, 'ws');
      const auth = { authorization: `Bearer ${adminToken}` };
      /** @type {Set<WebSocket>} */
      const clients = new Set();
      /** @type {Map<string, number>} each user's active leases in its per-user metrics when first named */
      const userStart = new Map();
      let userSeq = 0;

      const s = {
        proc,
        config: c,
        adminToken,
        storeEnv,
        clients,
        /** @param {string} user */
        wsUrl: (user) => `${wsBase}/ws?user=${encodeURIComponent(user)}`,
        /**
         * @param {string} path
         * @param {{ auth?: boolean, headers?: Record<string, string> }} [o]
         */
        async get(path, o = {}) {
          return fetch(`${proc.url}${path}`, { headers: { ...(o.auth === false ? {} : auth), ...o.headers } });
        },
        /** @param {string} path */
        async json(path) {
          const res = await s.get(path);
          const text = await res.text();
          if (res.status !== 200) throw new Error(`GET ${path}: HTTP ${res.status} ${text.slice(0, 300)}`);
          return JSON.parse(text);
        },
        /** @param {string} user */
        async user(user) {
          return s.json(`/api/users/${encodeURIComponent(user)}`);
        },
        /** @param {string} user */
        async userActive(user) {
          return /** @type {number} */ ((await s.user(user)).active);
        },
        /** @param {string} user */
        async leaseIds(user) {
          return /** @type {{ id: string }[]} */ ((await s.user(user)).leases).map((l) => l.id).sort();
        },
        /**
         * The metrics text that covers `user` (the host's, or the user's own).
         * @param {string} [user]
         */
        async metrics(user) {
          const path = host.metrics === 'global' ? '/metrics' : `/metrics?user=${encodeURIComponent(/** @type {string} */ (user))}`;
          const res = await s.get(path);
          const text = await res.text();
          if (res.status !== 200) throw new Error(`GET ${path}: HTTP ${res.status} ${text.slice(0, 300)}`);
          return text;
        },
        /** @param {string} [user] */
        async activeMetric(user) {
          const v = metricValue(await s.metrics(user), 'socket_lease_active_leases');
          if (v === undefined) throw new Error('no socket_lease_active_leases in /metrics');
          return v;
        },
        /**
         * `n` fresh user ids for this case (and, per-user metrics, their starting value).
         * @param {number} n
         */
        async newUsers(n) {
          const users = [];
          for (let i = 0; i < n; i++) {
            const u = `${host.name}-${caseId}-${userSeq++}-${crypto.randomBytes(3).toString('hex')}`;
            if (host.metrics === 'per-user') userStart.set(u, await s.activeMetric(u));
            users.push(u);
          }
          return users;
        },
        /**
         * @param {string} user
         * @param {{ origin?: string, silent?: boolean }} [o] silent: never answers pings
         *   nor sends the application heartbeat
         */
        connect(user, o = {}) {
          const app = host.heartbeat.style === 'application' && !o.silent;
          return connect(s.wsUrl(user), {
            origin: o.origin,
            autoPong: !o.silent,
            heartbeatEveryMs: app && host.heartbeat.style === 'application' ? host.heartbeat.everyMs(c.ttlMs) : undefined,
            track: clients,
          });
        },
        /**
         * An open client; fails the case if the upgrade is refused.
         * @param {string} user
         * @param {{ origin?: string, silent?: boolean }} [o]
         */
        async open(user, o) {
          const r = await s.connect(user, o);
          if (!r.ok) assert.fail(`connect for ${user} refused: HTTP ${r.status} ${r.text}`);
          return r.client;
        },
        /** `n` held sockets of `user` (lib.mjs holdSockets). @param {string} user @param {number} n */
        hold: (user, n) => holdSockets(s.open, user, n),
        /** Value(s) the case-10 check compares with at the end. */
        start: /** @type {{ active?: number, healthz?: any }} */ ({}),
        /** Another session whose metrics the case-10 check reads instead (the host is gone). */
        checkVia: /** @type {any} */ (null),
        /** Why the case-10 check cannot run for this case, or null. */
        noCheck: /** @type {string | null} */ (null),
        userStart,
      };
      if (host.metrics === 'global') s.start.active = await s.activeMetric();
      if (host.healthz) s.start.healthz = await s.json('/healthz');
      return s;
    }
    /** @typedef {Awaited<ReturnType<typeof launch>>} Session */

    /**
     * Case 10, after every case: the host's active leases are back at their value before
     * it (global /metrics and /healthz; or each user's /metrics?user=).
     * @param {Session} s
     */
    async function backToStart(s) {
      const m = s.checkVia ?? s;
      if (host.metrics === 'global') {
        /** @type {number | undefined} */
        let seen;
        await waitFor(
          async () => (seen = await m.activeMetric()) === s.start.active,
          `/metrics socket_lease_active_leases back to ${s.start.active}`,
          SLACK_MS,
          () => seen,
        );
      } else {
        for (const [u, start] of s.userStart) {
          /** @type {number | undefined} */
          let seen;
          await waitFor(
            async () => (seen = await m.activeMetric(u)) === start,
            `/metrics?user=${u} socket_lease_active_leases back to ${start}`,
            SLACK_MS,
            () => seen,
          );
        }
      }
      if (host.healthz) {
        /** @type {any} */
        let h;
        await waitFor(
          async () => {
            h = await m.json('/healthz');
            return h.status === 'ok' && h.activeLeases === s.start.healthz.activeLeases && h.socketsOpen === s.start.healthz.socketsOpen;
          },
          `/healthz back to activeLeases ${s.start.healthz.activeLeases}, socketsOpen ${s.start.healthz.socketsOpen}`,
          SLACK_MS,
          () => h,
        );
      }
    }

    /**
     * One case: its own host process, the case-10 check after it, and the host stopped
     * whatever happened.
     * @param {string} title
     * @param {CaseConfig} config
     * @param {(t: import('node:test').TestContext, s: Session) => Promise<void>} body
     * @param {{ needs?: import('./hosts.mjs').Capability, timeout?: number }} [opts]
     */
    function hostCase(title, config, body, opts = {}) {
      const caseId = `c${title.split('.')[0]}`;
      test(title, { timeout: opts.timeout ?? 120_000 }, async (t) => {
        const reason = opts.needs && host.cannot[opts.needs];
        if (reason) {
          t.skip(`${host.name} cannot (${opts.needs}): ${reason}`);
          return;
        }
        const s = await launch(caseId, config);
        try {
          await body(t, s);
        } catch (err) {
          // What the host said about it, for the failure report.
          const tail = s.proc.log().trimEnd().split('\n').slice(-15);
          t.diagnostic(`${host.name} output (last ${tail.length} lines):`);
          for (const line of tail) t.diagnostic(`  ${line}`);
          throw err;
        } finally {
          for (const ws of s.clients) ws.close(1000);
          await Promise.all([...s.clients].map((ws) => within(once(ws, 'close'), 5000, 'a client to close').catch(() => ws.terminate())));
          await t.test('10. active leases back at the start value (/metrics)', async (t2) => {
            if (s.noCheck) return t2.skip(s.noCheck);
            await backToStart(s);
          });
          for (const p of [s.proc, s.checkVia?.proc]) {
            if (!p) continue;
            await p.stop();
            running.delete(p);
          }
        }
      });
    }

    /**
     * How long a host may take to reclaim a peer that is gone or silent: two heartbeat
     * intervals for a host that pings, one TTL for one that relies on the client's heartbeat.
     * @param {Session} s
     */
    const reclaimBound = (s) => (host.heartbeat.style === 'protocol' ? 2 * s.config.heartbeatMs : s.config.ttlMs);

    hostCase('1. 300 sequential connect-echo-disconnect cycles at limit 5: each echoed, none refused', { limit: 5 }, async (_t, s) => {
      const [u] = await s.newUsers(1);
      const leases = new Set();
      for (let i = 0; i < 300; i++) {
        const r = await s.connect(u);
        assert.ok(r.ok, `cycle ${i}: refused with HTTP ${!r.ok && r.status} ${!r.ok && r.text}`);
        const reply = await within(r.client.echo(`cycle ${i}`), 10_000, `the echo of cycle ${i}`);
        assert.equal(reply.type, 'echo');
        assert.equal(reply.data, `cycle ${i}`);
        assert.match(reply.leaseId, LEASE_ID);
        leases.add(reply.leaseId);
        r.client.ws.close(1000);
        const closed = await within(r.client.closed, 10_000, `the close of cycle ${i}`);
        assert.equal(closed.code, 1000, `cycle ${i}: the host answers a client close with its code`);
      }
      assert.equal(leases.size, 300, 'every connection had its own lease');
      await waitFor(async () => (await s.userActive(u)) === 0, `${u} to hold no lease`, SLACK_MS);
    });

    hostCase('2. limit+1 concurrent connects (limit 5): exactly one 429 with Retry-After, 5 open', { limit: 5 }, async (_t, s) => {
      const [u] = await s.newUsers(1);
      const results = await Promise.all(Array.from({ length: 6 }, () => s.connect(u)));
      const opened = results.flatMap((r) => (r.ok ? [r.client] : []));
      const refused = results.flatMap((r) => (r.ok ? [] : [r]));
      assert.equal(opened.length, 5, `5 open, got ${opened.length}; refusals: ${refused.map((r) => `${r.status} ${r.text}`).join(', ')}`);
      assert.equal(refused.length, 1);
      const r = refused[0];
      assert.equal(r.status, 429, `refusal body: ${r.text}`);
      const retryAfter = String(r.headers['retry-after']);
      assert.match(retryAfter, /^\d+$/, `Retry-After is whole seconds, got ${retryAfter}`);
      assert.ok(Number(retryAfter) >= 1, `Retry-After >= 1, got ${retryAfter}`);
      assert.ok(r.body && typeof r.body === 'object', `a JSON body, got ${r.text}`);
      assert.equal(r.body.reason, 'user-limit');
      assert.equal(r.body.limit, 5);
      assert.equal(r.body.active, 5);
      // Retry information in the body is optional in the contract; when present it must
      // agree with the header.
      if (r.body.retryAfterMs !== undefined) {
        assert.ok(Number.isFinite(r.body.retryAfterMs) && r.body.retryAfterMs >= 1, `retryAfterMs ${r.body.retryAfterMs}`);
        assert.equal(Math.max(1, Math.ceil(r.body.retryAfterMs / 1000)), Number(retryAfter), 'body retryAfterMs agrees with Retry-After');
      }
      if (r.body.retryAfterS !== undefined) assert.equal(r.body.retryAfterS, Number(retryAfter), 'body retryAfterS equals Retry-After');
      const ids = new Set();
      for (const c of opened) ids.add((await c.echo('hi')).leaseId);
      assert.equal(ids.size, 5, 'five distinct leases');
      assert.equal(await s.userActive(u), 5);
    });

    hostCase(
      '3. 50 abrupt TCP drops (no close frame): every lease reclaimed, the users connect to the limit again',
      { limit: 5, ttlMs: 10_000, heartbeatMs: 1000 },
      async (_t, s) => {
        const users = await s.newUsers(10);
        const clients = (await Promise.all(users.map(async (u) => Promise.all(Array.from({ length: 5 }, () => s.open(u)))))).flat();
        assert.equal(clients.length, 50);
        await Promise.all(clients.map((c) => c.echo('before the drop')));
        if (host.metrics === 'global') assert.equal(await s.activeMetric(), /** @type {number} */ (s.start.active) + 50, '50 leases held');
        for (const u of users) assert.equal(await s.userActive(u), 5);
        // Drop the TCP connection under each ws client: no close frame, no FIN handshake of WebSocket.
        for (const c of clients) {
          c.stopHeartbeat();
          /** @type {any} */ (c.ws)._socket.destroy();
        }
        const bound = reclaimBound(s) + SLACK_MS;
        /** @type {Record<string, number>} */
        const left = {};
        await waitFor(
          async () => {
            for (const u of users) left[u] = await s.userActive(u);
            return Object.values(left).every((n) => n === 0);
          },
          'all 50 dropped leases to be reclaimed',
          bound,
          () => left,
        );
        if (host.metrics === 'global') assert.equal(await s.activeMetric(), s.start.active, '/metrics back to the start value');
        for (const u of users) {
          const again = await Promise.all(Array.from({ length: 5 }, () => s.open(u)));
          const over = await s.connect(u);
          assert.ok(!over.ok && over.status === 429, `${u}: the 6th is refused (the limit still holds), got ${over.ok ? 'open' : over.status}`);
          for (const c of again) c.ws.close(1000);
          await Promise.all(again.map((c) => c.closed));
        }
      },
    );

    hostCase(
      '4. a silent peer is reclaimed within two heartbeats or one TTL; a live peer is kept',
      { limit: 5, ttlMs: 1500, heartbeatMs: 300 },
      async (t, s) => {
        const [u] = await s.newUsers(1);
        const live = await s.open(u);
        const silent = await s.open(u, { silent: true });
        const liveId = (await live.echo('live')).leaseId;
        const silentId = (await silent.echo('silent')).leaseId;
        const openedAt = Date.now();
        let silentClosed = null;
        silent.closed.then((c) => (silentClosed = c));
        const bound = reclaimBound(s);
        /** @type {string[]} */
        let ids = [];
        await waitFor(
          async () => {
            ids = await s.leaseIds(u);
            return !ids.includes(silentId);
          },
          `the silent peer's lease to be reclaimed (bound ${bound} ms + ${SLACK_MS} ms slack)`,
          bound + SLACK_MS,
          () => ids,
        );
        t.diagnostic(`silent peer reclaimed about ${Date.now() - openedAt} ms after its last message (bound ${bound} ms)`);
        await within(silent.closed, SLACK_MS, "the silent peer's connection to be closed by the host");
        t.diagnostic(`silent peer saw close code ${/** @type {any} */ (silentClosed)?.code}`);
        // The live peer outlives two TTLs: reclaiming is not just closing everything.
        const wait = openedAt + 2 * s.config.ttlMs + 300 - Date.now();
        if (wait > 0) await delay(wait);
        assert.equal(live.ws.readyState, WebSocket.OPEN, 'the live peer is still open after two TTLs');
        assert.equal((await live.echo('still here')).leaseId, liveId);
        assert.deepEqual(await s.leaseIds(u), [liveId], 'only the live peer holds a lease');
      },
    );

    hostCase(
      '5. evict-oldest: at the limit a new connect is admitted and the oldest socket is closed with 4008',
      { limit: 5, policy: 'evict-oldest' },
      async (_t, s) => {
        const [u] = await s.newUsers(1);
        const held = await s.hold(u, 5);
        const newer = await s.open(u);
        const newerId = (await newer.echo('newer')).leaseId;
        const closed = await within(held[0].c.closed, SLACK_MS, 'the oldest socket to be closed');
        assert.equal(closed.code, EVICTED, `the oldest closed with 4008, got ${closed.code} ${closed.reason}`);
        for (const h of held.slice(1)) assert.equal((await h.c.echo('still here')).leaseId, h.id, 'the other four stay open');
        assert.deepEqual(await s.leaseIds(u), [...held.slice(1).map((h) => h.id), newerId].sort());
        assert.equal(await s.userActive(u), 5);
      },
    );

    hostCase(
      '6. a handshake refused for its Origin (403) evicts nothing, even under evict-oldest at the limit; an allowed Origin works',
      { limit: 5, policy: 'evict-oldest', allowedOrigins: GOOD_ORIGIN },
      async (_t, s) => {
        const [u] = await s.newUsers(1);
        // No Origin header: allowed (not a browser).
        const held = await s.hold(u, 5);
        const metricsBefore = await s.metrics(u);
        const forged = await s.connect(u, { origin: EVIL_ORIGIN });
        if (forged.ok) forged.client.ws.close(1000);
        assert.ok(!forged.ok, 'a forged Origin is refused before the upgrade, got 101 (accepted)');
        assert.equal(forged.status, 403, `HTTP ${forged.status} ${forged.text}`);
        assert.equal(forged.body?.reason, 'origin-not-allowed', `body ${forged.text}`);
        // An eviction made for the refused handshake would have reached its socket before
        // these echoes' answers.
        for (const h of held) assert.equal((await h.c.echo('still here')).leaseId, h.id, 'every held socket stays open');
        assert.deepEqual(await s.leaseIds(u), held.map((h) => h.id).sort());
        const metricsAfter = await s.metrics(u);
        for (const series of ['socket_lease_active_leases', 'socket_lease_evicted_total', 'socket_lease_acquired_total']) {
          assert.notEqual(metricValue(metricsBefore, series), undefined, `${series} is in /metrics`);
          assert.equal(metricValue(metricsAfter, series), metricValue(metricsBefore, series), `${series} unchanged by the refused handshake`);
        }
        const allowed = await s.connect(u, { origin: GOOD_ORIGIN });
        assert.ok(allowed.ok, `an allowed Origin is accepted, got HTTP ${!allowed.ok && allowed.status} ${!allowed.ok && allowed.text}`);
        assert.equal((await allowed.client.echo('good')).type, 'echo');
        const oldest = await within(held[0].c.closed, SLACK_MS, 'the oldest socket to be evicted by the allowed connect');
        assert.equal(oldest.code, EVICTED);
      },
    );

    hostCase('7. a frame over SOCKET_LEASE_MAX_PAYLOAD is closed with 1009; the host keeps serving', { limit: 5, maxPayload: 4096 }, async (_t, s) => {
      const [u, other] = await s.newUsers(2);
      const big = await s.open(u);
      const bystander = await s.open(u);
      const elsewhere = await s.open(other);
      const fits = 'f'.repeat(4000);
      assert.equal((await big.echo(fits)).data, fits, 'a message under the limit is echoed');
      // Where the host has global metrics, the 1009 close is counted with the host's own closes.
      const tooBigCloses = async () => Number(/^socket_lease_guard_closes_total\{code="1009"\} (\S+)$/m.exec(await s.metrics())?.[1]);
      const closesBefore = host.metrics === 'global' ? await tooBigCloses() : NaN;
      big.ws.send('x'.repeat(8192));
      const closed = await within(big.closed, SLACK_MS, 'the socket that sent 8 KiB to be closed');
      assert.equal(closed.code, MESSAGE_TOO_BIG, `closed with 1009, got ${closed.code} ${closed.reason}`);
      if (host.metrics === 'global')
        await waitFor(async () => (await tooBigCloses()) === closesBefore + 1, 'socket_lease_guard_closes_total{code="1009"} to count the close', SLACK_MS);
      assert.equal((await bystander.echo('same user')).data, 'same user');
      assert.equal((await elsewhere.echo('other user')).data, 'other user');
      await waitFor(async () => (await s.userActive(u)) === 1, "the closed socket's lease to be released", SLACK_MS);
      const next = await s.open(u);
      assert.equal((await next.echo('next')).data, 'next', 'the next connect works');
    });

    hostCase(
      "8. a client that never reads is cut off (SOCKET_LEASE_MAX_BUFFERED) and the host's memory stays bounded",
      // A heartbeat far longer than the case, so the cut-off can only come from the buffer
      // bound (a peer that does not read does not answer pings either).
      { limit: 5, maxBuffered: 262_144, heartbeatMs: 60_000, ttlMs: 120_000 },
      async (t, s) => {
        const MAX_BUFFERED = 262_144;
        // What the peer may send before its lease must have been released. The host's
        // kernel send buffer and the peer's receive window (a few MiB on loopback) fill
        // first, then MAX_BUFFERED in the host: 128 MiB is far beyond that, and a host that
        // buffers without bound shows it in its memory long before.
        const SEND_CAP = 128 * 1024 * 1024;
        // Allowed growth of the host's resident memory (its whole process tree) while the
        // peer sends: the unsent data it may hold (MAX_BUFFERED) plus 48 MiB for the
        // garbage of parsing and answering tens of MiB of messages, which a collector may
        // keep for a while (V8's young generation alone can take 16-32 MiB). A host that
        // keeps what the peer does not read grows by about what was sent (up to 128 MiB).
        const RSS_BOUND = MAX_BUFFERED + 48 * 1024 * 1024;
        const [warm, u] = await s.newUsers(2);
        const message = 'm'.repeat(1024);
        // Warm up the host's code paths and heap with 4 MiB of echoes a client does read.
        const w = await s.open(warm);
        for (let batch = 0; batch < 32; batch++) {
          let echoes = 0;
          const all = new Promise((resolve) => {
            const onMessage = (/** @type {Buffer} */ data) => {
              if (data.toString() === HEARTBEAT_PONG) return;
              if (++echoes === 128) {
                w.ws.off('message', onMessage);
                resolve(undefined);
              }
            };
            w.ws.on('message', onMessage);
          });
          for (let i = 0; i < 128; i++) w.ws.send(message);
          await within(all, SLACK_MS, 'a batch of 128 echoes');
        }
        w.ws.close(1000);
        await w.closed;
        const before = treeRss(s.proc.pid);
        let peak = before.bytes;
        const sampler = setInterval(() => {
          peak = Math.max(peak, treeRss(s.proc.pid).bytes);
        }, 20);

        const peer = await nonReadingPeer(s.wsUrl(u));
        /** @type {string | null} how the peer learnt that its connection is gone */
        let cut = null;
        peer.on('error', (e) => (cut ??= /** @type {NodeJS.ErrnoException} */ (e).code ?? String(e)));
        peer.on('close', () => (cut ??= 'closed'));
        const gone = new Promise((resolve) => peer.once('close', resolve));
        await waitFor(async () => (await s.userActive(u)) === 1, "the non-reading peer's lease", SLACK_MS);
        // The lease, watched while the peer sends.
        let released = false;
        /** Bytes the peer wrote (after the loop: that the kernel took). */
        let sent = 0;
        /** @type {number | null} */
        let sentAtRelease = null;
        const watch = (async () => {
          while (!released && !cut) {
            const active = await s.userActive(u).catch(() => 1);
            if (active === 0) {
              released = true;
              sentAtRelease = sent;
            } else await delay(50);
          }
        })();
        const frame = maskedTextFrame(message);
        const chunk = Buffer.concat(Array.from({ length: 64 }, () => frame));
        const mib = (/** @type {number} */ n) => `${(n / 1048576).toFixed(1)} MiB`;
        /** @type {number | null} */
        let closeWaitMs = null;
        /** @type {string | null} */
        let cutByHost = null;
        try {
          const deadline = Date.now() + 60_000;
          while (!cut && !released && sent < SEND_CAP && Date.now() < deadline) {
            sent += chunk.length;
            if (!peer.write(chunk)) {
              // Wait until the kernel took it (a host that stops reading never lets it).
              const drained = once(peer, 'drain').catch(() => {});
              while (!cut && !released && peer.writableLength > 0 && Date.now() < deadline) await Promise.race([drained, gone, delay(200)]);
            }
          }
          sent -= peer.writableLength;
          // The connection must close too. A peer that does not read learns it by writing:
          // keep sending a frame now and then.
          const closeFrom = Date.now();
          while (!cut && Date.now() < closeFrom + SLACK_MS) {
            if (peer.writableLength < 1024 * 1024) peer.write(frame);
            await delay(100);
          }
          if (cut) closeWaitMs = Date.now() - closeFrom;
        } finally {
          clearInterval(sampler);
          peak = Math.max(peak, treeRss(s.proc.pid).bytes);
          // Before closing it ourselves, which is not the host cutting it off.
          cutByHost = cut;
          peer.destroy();
          released = true;
          await watch;
        }
        const growth = peak - before.bytes;
        t.diagnostic(
          `${mib(sent)} sent; lease released ${sentAtRelease === null ? 'not while sending' : `after ${mib(sentAtRelease)}`}; connection ${cutByHost ? `gone (${cutByHost}) ${closeWaitMs ?? 0} ms after the peer stopped sending` : 'still open'}; ` +
            `RSS of ${before.processes} process(es) ${mib(before.bytes)} before, peak growth ${mib(growth)} (bound ${mib(RSS_BOUND)})`,
        );
        assert.ok(cutByHost, `the host kept the TCP connection of a peer that never reads open (${mib(sent)} sent; its RSS grew by ${mib(growth)})`);
        await waitFor(async () => (await s.userActive(u)) === 0, "the cut-off peer's lease to be released", SLACK_MS);
        if (host.cannot['rss-measurement']) {
          t.diagnostic(`memory bound not asserted on ${host.name}: ${host.cannot['rss-measurement']}`);
        } else {
          assert.ok(growth <= RSS_BOUND, `the host's RSS grew by ${mib(growth)}, over the bound of ${mib(RSS_BOUND)}`);
        }
        const after = await s.open(u);
        assert.equal((await after.echo('after')).data, 'after', 'the host still serves the user');
      },
      { needs: 'bounded-send-buffer' },
    );

    hostCase(
      '9. graceful shutdown: SIGTERM closes every socket with 1001, releases every lease, exits 0',
      { limit: 5 },
      async (_t, s) => {
        const [a, b] = await s.newUsers(2);
        const clients = [...(await Promise.all([0, 1, 2].map(() => s.open(a)))), ...(await Promise.all([0, 1].map(() => s.open(b))))];
        await Promise.all(clients.map((c) => c.echo('before shutdown')));
        s.proc.signal('SIGTERM');
        const codes = await within(Promise.all(clients.map((c) => c.closed)), SLACK_MS, 'every socket to be closed');
        assert.deepEqual(
          codes.map((c) => c.code),
          clients.map(() => GOING_AWAY),
          `close codes ${JSON.stringify(codes)}`,
        );
        const exit = await within(s.proc.exited, SLACK_MS, 'the host to exit');
        assert.deepEqual(exit, { code: 0, signal: null }, `exit status; output:\n${s.proc.log()}`);
        if (host.sharedStore) {
          // The leases lived in the shared store: a second host on it must see none.
          const second = await launch('c9b', s.config, { env: s.storeEnv, adminToken: s.adminToken });
          s.checkVia = second;
          assert.equal(await second.userActive(a), 0, `${a}'s leases are gone from the shared store`);
          assert.equal(await second.userActive(b), 0, `${b}'s leases are gone from the shared store`);
        } else {
          s.noCheck = `${host.name} keeps its leases in the process that just exited; the 1001s and exit status 0 are what can be checked`;
        }
      },
      { needs: 'graceful-shutdown' },
    );

    hostCase('11. refusals before the upgrade: 401 without a user, 400 for a malformed user id, JSON bodies', { limit: 5 }, async (_t, s) => {
      const base = s.wsUrl('x').replace(/\?.*$/, '');
      const none = await connect(base, { track: s.clients });
      assert.ok(!none.ok, 'no user: refused');
      assert.equal(none.status, 401, `HTTP ${none.status} ${none.text}`);
      assert.equal(none.body?.reason, 'unauthorized', `a JSON body with the reason, got ${none.text}`);
      const long = await connect(s.wsUrl('u'.repeat(300)), { track: s.clients });
      assert.ok(!long.ok, 'a 300-byte user id: refused');
      assert.equal(long.status, 400, `HTTP ${long.status} ${long.text}`);
      assert.equal(long.body?.reason, 'invalid-user-id', `a JSON body with the reason, got ${long.text}`);
    });

    hostCase(
      '12. SOCKET_LEASE_ADMIN_TOKEN: /metrics and /api/users/:id answer 401 without the bearer token',
      { limit: 5 },
      async (_t, s) => {
        const [u] = await s.newUsers(1);
        const paths = [host.metrics === 'global' ? '/metrics' : `/metrics?user=${u}`, `/api/users/${u}`];
        for (const path of paths) {
          assert.equal((await s.get(path, { auth: false })).status, 401, `GET ${path} without a token`);
          assert.equal((await s.get(path, { auth: false, headers: { authorization: 'Bearer wrong' } })).status, 401, `GET ${path} with a wrong token`);
          assert.equal((await s.get(path)).status, 200, `GET ${path} with the token`);
        }
      },
      { needs: 'admin-token' },
    );
  });
}
