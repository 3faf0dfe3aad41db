// socket-lease/bun against the real Bun (node_modules/.bin/bun): fixture.mjs serves the
// adapter in a bun process, and these tests talk to it over HTTP and WebSocket only. The
// black-box contract every host shares is the conformance suite's (host `bun`); this file
// checks what is the adapter's own: the API and its misuse, ws.data, refusals identical to
// the Node host's, the order of release and the host's close handler, the heartbeat it
// chose, Bun's 1009, the drained 4010, the backpressure backstop, and asynchronous stores.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import WebSocket from 'ws';
import { ROOT, connect, rawHandshake, startHost, waitFor, within } from '../conformance/lib.mjs';

const BUN = path.join(ROOT, 'node_modules/.bin/bun');
const FIXTURE = path.join(ROOT, 'tests/js/bun/fixture.mjs');

/** Fixture processes still running: stopped after every test whatever happened. */
const running = new Set();
after(() => Promise.all([...running].map((f) => f.stop())));

/**
 * Starts fixture.mjs under Bun.
 * @param {object} config  FIXTURE: { options, registry, asyncStoreMs }
 */
async function fixture(config = {}) {
  const proc = spawn(BUN, [FIXTURE], { cwd: ROOT, env: { ...process.env, FIXTURE: JSON.stringify(config) }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stderr.setEncoding('utf8').on('data', (d) => (log += d));
  proc.stdout.setEncoding('utf8');
  const exited = once(proc, 'exit');
  const port = await within(
    new Promise((resolve, reject) => {
      proc.stdout.on('data', (d) => {
        log += d;
        const m = /^ready (\d+)$/m.exec(log);
        if (m) resolve(Number(m[1]));
      });
      proc.once('exit', (code) => reject(new Error(`fixture exited (${code}) before listening:\n${log}`)));
    }),
    20_000,
    'the bun fixture to listen',
  );
  /** @type {Set<WebSocket>} */
  const clients = new Set();
  const f = {
    port,
    base: `http://127.0.0.1:${port}`,
    /** @param {string} user @param {string} [query] */
    wsUrl: (user, query = '') => `ws://127.0.0.1:${port}/ws?user=${encodeURIComponent(user)}${query}`,
    /** @param {string} p */
    json: async (p) => (await fetch(`http://127.0.0.1:${port}${p}`)).json(),
    /** @param {string} user @param {{ autoPong?: boolean, origin?: string, query?: string }} [o] */
    open: async (user, o = {}) => {
      const r = await connect(f.wsUrl(user, o.query), { autoPong: o.autoPong, origin: o.origin, track: clients });
      if (!r.ok) assert.fail(`connect for ${user} refused: HTTP ${r.status} ${r.text}`);
      return r.client;
    },
    /** @param {string} user @param {{ origin?: string }} [o] */
    connect: (user, o = {}) => connect(f.wsUrl(user), { origin: o.origin, track: clients }),
    log: () => log,
    stop: async () => {
      for (const ws of clients) ws.terminate();
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await Promise.race([exited, delay(5000).then(() => proc.kill('SIGKILL'))]);
      await exited;
      running.delete(f);
    },
  };
  running.add(f);
  return f;
}

/** The next text message of `ws`. @param {WebSocket} ws */
const nextText = (ws) => once(ws, 'message').then(([data]) => String(data));

describe('socket-lease/bun under Bun', { timeout: 120_000 }, () => {
  test('the package resolves by its own name under Bun (node condition), option misuse throws LeaseError INVALID_OPTION, the handler carries the derived limits', async () => {
    const proc = spawn(BUN, [FIXTURE], { cwd: ROOT, env: { ...process.env, FIXTURE: '{"mode":"options"}' }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    const [code] = await within(once(proc, 'exit'), 20_000, 'the options fixture');
    assert.equal(code, 0, out);
    const r = JSON.parse(out);
    // Bun takes the `node` condition of "." (js/node.mjs, the synchronous wasm loader).
    assert.equal(r.resolved.core, `file://${ROOT}/js/node.mjs`);
    assert.equal(r.resolved.bun, `file://${ROOT}/js/bun/index.mjs`);
    for (const name of [
      'no options',
      'no userId',
      'unknown option',
      'store and registry',
      'maxPayload 0',
      'heartbeatMs not a number',
      'handler typo',
      'Bun knob the adapter owns',
      'idleTimeout',
      'data with a lease key',
    ]) {
      const e = r[name];
      assert.equal(e.threw, true, `${name}: throws`);
      assert.equal(e.code, 'INVALID_OPTION', `${name}: ${e.message}`);
      assert.equal(e.name, 'LeaseError', name);
      assert.ok(e.leaseError, `${name}: instanceof the LeaseError imported from 'socket-lease'`);
      assert.match(e.message, /^socket-lease\/bun: invalid option: /, name);
    }
    assert.match(r['unknown option'].message, /heartbeatMS/);
    assert.match(r['Bun knob the adapter owns'].message, /maxPayload option/);
    assert.deepEqual(r.handler, {
      keys: [
        'backpressureLimit',
        'close',
        'closeOnBackpressureLimit',
        'drain',
        'idleTimeout',
        'maxPayloadLength',
        'message',
        'open',
        'perMessageDeflate',
        'pong',
        'sendPings',
      ],
      maxPayloadLength: 65536,
      backpressureLimit: 2 * 1048576,
      closeOnBackpressureLimit: true,
      idleTimeout: 0,
      sendPings: false,
    });
  });

  test("refusals are the Node host's, byte for byte: status, Retry-After, content-type, JSON body (429, 401, 400, 403)", async (t) => {
    // The two demos with the same settings, answering the same refused upgrades.
    const env = {
      SOCKET_LEASE_LIMIT: '1',
      SOCKET_LEASE_TTL_MS: '90000',
      SOCKET_LEASE_LOG_LEVEL: 'silent',
      SOCKET_LEASE_ALLOWED_ORIGINS: 'http://good.example',
    };
    const hosts = await Promise.all([
      startHost(
        {
          name: 'node',
          command: [process.execPath, 'examples/node/server.mjs'],
          heartbeat: { style: 'protocol' },
          metrics: 'global',
          healthz: true,
          sharedStore: false,
          cannot: {},
        },
        env,
      ),
      startHost(
        {
          name: 'bun',
          command: [BUN, 'examples/bun/server.mjs'],
          heartbeat: { style: 'protocol' },
          metrics: 'global',
          healthz: true,
          sharedStore: false,
          cannot: {},
        },
        env,
      ),
    ]);
    t.after(() => Promise.all(hosts.map((h) => h.stop())));
    /** @type {Set<WebSocket>} */
    const clients = new Set();
    t.after(() => {
      for (const ws of clients) ws.terminate();
    });
    const answers = [];
    for (const h of hosts) {
      const ws = (u, origin) => connect(`${h.url.replace(/^http/, 'ws')}/ws${u === null ? '' : `?user=${encodeURIComponent(u)}`}`, { origin, track: clients });
      const held = await ws('alice');
      assert.ok(held.ok);
      const refused = { limit: await ws('alice'), none: await ws(null), long: await ws('u'.repeat(300)), origin: await ws('bob', 'http://evil.example') };
      answers.push(
        Object.fromEntries(
          Object.entries(refused).map(([k, r]) => {
            assert.ok(!r.ok, `${h.url} ${k}: refused`);
            return [
              k,
              { status: r.status, retryAfter: r.headers['retry-after'], type: r.headers['content-type'], cache: r.headers['cache-control'], body: r.text },
            ];
          }),
        ),
      );
    }
    const [node, bun] = answers;
    assert.deepEqual(bun, node);
    assert.equal(bun.limit.status, 429);
    assert.equal(bun.limit.retryAfter, '90');
    assert.deepEqual(JSON.parse(bun.limit.body), { reason: 'user-limit', limit: 1, active: 1 });
    assert.deepEqual([bun.none.status, bun.long.status, bun.origin.status], [401, 400, 403]);
  });

  test("ws.data: the host's data (shallow copy) plus lease; the facade agrees; headers reach the 101; release comes before the host's close handler", async () => {
    const f = await fixture();
    const c = await f.open('ada', { query: '&room=kitchen' });
    const info = JSON.parse(await (c.ws.send('info'), nextText(c.ws)));
    assert.match(info.leaseId, /^conn_[0-9a-z]{26}$/);
    assert.deepEqual(info, {
      leaseId: info.leaseId,
      userId: 'ada',
      room: 'kitchen',
      leaseIdOf: info.leaseId,
      userIdOf: 'ada',
      threadId: info.leaseId.replace('conn_', 'thread_'),
      held: true,
    });
    assert.equal((await f.json('/stats')).store.active, 1);
    c.ws.close(1000, 'bye');
    await c.closed;
    const events = await waitFor(async () => {
      const e = await f.json('/events');
      return e.some((x) => x.ev === 'close') && e;
    }, "the host's close handler");
    assert.deepEqual(events, [
      { ev: 'open', leaseId: info.leaseId, room: 'kitchen' },
      // Released first: the store no longer counts it and the facade no longer knows it.
      { ev: 'close', leaseId: info.leaseId, code: 1000, reason: 'bye', userIdOf: null, active: 0 },
    ]);
    const s = (await f.json('/stats')).lease;
    assert.equal(s.released, 1);
    assert.equal(s.socketsOpen, 0);
    // The headers given to upgrade() are on the 101.
    const head = await new Promise((resolve) => {
      const ws = new WebSocket(f.wsUrl('ada'));
      ws.once('upgrade', (res) => resolve(res.headers['x-fixture']));
      ws.once('open', () => ws.close());
    });
    assert.equal(head, 'bun');
    await f.stop();
  });

  test('a host open handler that throws: the socket is terminated, its lease released, its close handler not called, the server keeps serving', async () => {
    const f = await fixture();
    const c = await f.open('boom');
    assert.equal((await within(c.closed, 5000, 'the socket to be dropped')).code, 1006);
    await waitFor(async () => (await f.json('/stats')).store.active === 0, 'the lease to be released');
    assert.deepEqual(
      (await f.json('/events')).map((/** @type {any} */ e) => e.ev),
      ['open'],
    );
    // Bun alone would exit on that throw; the adapter keeps every other socket served.
    const next = await f.open('ok');
    assert.equal(await (next.ws.send('still here'), nextText(next.ws)), 'echo:still here');
    await f.stop();
  });

  test('a malformed upgrade is a 400 bad-handshake before any quota work', async () => {
    const f = await fixture();
    // No Sec-WebSocket-Key: refused before admission. (Raw: fetch refuses to send Upgrade.)
    const answer = await new Promise((resolve, reject) => {
      const socket = net.connect(f.port, '127.0.0.1', () => {
        socket.end(`GET /ws?user=ada HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      });
      let text = '';
      socket.setEncoding('latin1').on('data', (d) => {
        text += d;
        // One response; the server may keep the connection open.
        if (/\r\n\r\n\{.*\}$/s.test(text)) socket.destroy();
      });
      socket.once('close', () => resolve(text));
      socket.once('error', reject);
    });
    assert.match(answer, /^HTTP\/1\.1 400 /);
    assert.deepEqual(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)), { reason: 'bad-handshake', message: 'missing or invalid Sec-WebSocket-Key' });
    const stats = await f.json('/stats');
    assert.equal(stats.store.acquired, 0, 'no quota work for a malformed handshake');
    assert.equal(stats.lease.upgrades['400'], 1);
    await f.stop();
  });

  test('evict-oldest: the oldest socket is closed with 4008, its lease not released twice', async () => {
    const f = await fixture({ registry: { perUserLimit: 2, onLimit: 'evict-oldest' } });
    const a = await f.open('eve');
    const b = await f.open('eve');
    const c = await f.open('eve');
    const closed = await within(a.closed, 5000, 'the oldest to be evicted');
    assert.equal(closed.code, 4008);
    assert.equal(closed.reason, 'lease evicted: a newer connection of this user took the slot');
    assert.equal(await (b.ws.send('still'), nextText(b.ws)), 'echo:still');
    assert.equal(await (c.ws.send('x'), nextText(c.ws)), 'echo:x');
    const s = await f.json('/stats');
    assert.equal(s.store.active, 2);
    assert.equal(s.store.unknownReleases, 0, 'the evicted lease is never released again');
    assert.equal(s.lease.closes['4008'], 1);
    await f.stop();
  });

  test("heartbeat: the adapter pings every heartbeatMs (Bun's idle timeout is off); a peer that does not answer is terminated within two intervals, a quiet one is kept", async () => {
    const f = await fixture({ options: { heartbeatMs: 200 }, registry: { ttlMs: 1000 } });
    const quiet = await f.open('hal');
    let pings = 0;
    quiet.ws.on('ping', () => pings++);
    const silent = await f.open('hal', { autoPong: false });
    const since = Date.now();
    const closed = await within(silent.closed, 5000, 'the silent peer to be terminated');
    const took = Date.now() - since;
    assert.equal(closed.code, 1006, 'terminated: no close frame');
    // Two intervals (400 ms) plus slack for a loaded machine; Bun's own idle timeout
    // cannot take less than ~8 s (docs/bun.md), which is what this tells apart.
    assert.ok(took < 3000, `reclaimed after ${took} ms`);
    // The quiet peer never sends a message: its pongs alone renew its lease past the TTL.
    await delay(1500);
    assert.equal(quiet.ws.readyState, WebSocket.OPEN);
    assert.ok(pings >= 5, `pinged ${pings} times in ${Date.now() - since} ms`);
    const s = await f.json('/stats');
    assert.equal(s.lease.heartbeatTimeouts, 1);
    assert.equal(s.store.active, 1);
    assert.equal(s.store.expired, 0);
    await f.stop();
  });

  test("maxPayload is Bun's maxPayloadLength: the peer sees 1009, the lease is released, the host keeps serving", async () => {
    const f = await fixture({ options: { maxPayload: 4096 } });
    const big = await f.open('max');
    const other = await f.open('max');
    big.ws.send('x'.repeat(4097));
    const closed = await within(big.closed, 5000, 'the close of the oversized frame');
    assert.equal(closed.code, 1009);
    const events = await waitFor(async () => (await f.json('/events')).find((/** @type {any} */ e) => e.ev === 'close'), 'the close handler');
    // Bun tells the server side 1006 (it closed the socket itself).
    assert.equal(events.code, 1006);
    assert.equal(events.active, 1);
    assert.equal(await (other.ws.send('y'.repeat(4096)), nextText(other.ws)), `echo:${'y'.repeat(4096)}`);
    await f.stop();
  });

  test('backpressure: writable() turns false past maxBufferedBytes; the 4010 close is delivered once the peer reads again within closeGraceMs', async () => {
    const f = await fixture({ options: { maxBufferedBytes: 65536, closeGraceMs: 5000 } });
    const c = await f.open('slow');
    // Stop reading; let Bun fill the kernel buffers, then its own queue.
    /** @type {any} */ (c.ws)._socket.pause();
    c.ws.send('flood:65536');
    const flood = await waitFor(async () => (await f.json('/events')).find((/** @type {any} */ e) => e.ev === 'flood'), 'the flood to stop');
    assert.ok(flood.sent < 65536, `stopped by writable() after ${flood.sent} KiB`);
    assert.equal(flood.writable, false);
    // The bound plus about one message; now and then Bun's count lags a write by up to
    // 48 KiB (measured over runs: +470 to +750 B usually, +49152 B once in eight).
    assert.ok(flood.buffered > 65536 && flood.buffered <= 65536 + 65536, `queued ${flood.buffered} B`);
    // Released at once, though the close frame still waits behind the queue.
    await waitFor(async () => (await f.json('/stats')).store.active === 0, 'the lease to be released');
    /** @type {any} */ (c.ws)._socket.resume();
    const closed = await within(c.closed, 5000, 'the 4010 close');
    assert.equal(closed.code, 4010);
    assert.equal(closed.reason, 'too much unread data: the client is not reading');
    await f.stop();
  });

  test("backpressure: a peer that never reads again is dropped after closeGraceMs (Bun's own close would keep its connection)", async () => {
    const f = await fixture({ options: { maxBufferedBytes: 65536, closeGraceMs: 500 } });
    const { socket, status } = await rawHandshake(f.wsUrl('stuck'));
    assert.equal(status, 101);
    // A masked text frame `flood:65536` (mask 0), then never read.
    const text = Buffer.from('flood:65536');
    socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | text.length, 0, 0, 0, 0]), text]));
    const started = Date.now();
    const gone = await within(
      new Promise((resolve) => {
        socket.once('close', () => resolve('closed'));
        socket.once('error', (e) => resolve(/** @type {any} */ (e).code));
        // A peer that does not read learns of the end by writing.
        const tick = setInterval(() => socket.writable && socket.write(Buffer.from([0x89, 0x80, 0, 0, 0, 0])), 100);
        socket.once('close', () => clearInterval(tick));
      }),
      8000,
      'the connection of a peer that never reads to be dropped',
    );
    assert.ok(gone, `dropped (${gone}) after ${Date.now() - started} ms`);
    assert.equal((await f.json('/stats')).store.active, 0);
    assert.equal((await f.json('/stats')).lease.closes['4010'], 1);
    socket.destroy();
    await f.stop();
  });

  test("backpressure backstop: sends that never ask writable() are cut at Bun's backpressureLimit (2 x maxBufferedBytes), lease released", async () => {
    const f = await fixture({ options: { maxBufferedBytes: 65536 } });
    const c = await f.open('rude');
    /** @type {any} */ (c.ws)._socket.pause();
    c.ws.send('blast:65536');
    const blast = await waitFor(async () => (await f.json('/events')).find((/** @type {any} */ e) => e.ev === 'blast'), 'the blast to stop');
    assert.equal(blast.last, 0, 'Bun refused to queue more');
    // What Bun still held when it refused (the kernel's buffers took megabytes before it).
    if (blast.buffered !== null) assert.ok(blast.buffered <= 2 * 65536 + 1100, `queued ${blast.buffered} B at the limit`);
    await waitFor(async () => (await f.json('/stats')).store.active === 0, 'the lease to be released');
    const close = (await f.json('/events')).find((/** @type {any} */ e) => e.ev === 'close');
    assert.equal(close.code, 1006, 'Bun drops the connection (no close frame)');
    await f.stop();
  });

  test('an asynchronous store: admission awaits it inside fetch; messages sent while an eviction is committed are delivered in order after open', async () => {
    const f = await fixture({ asyncStoreMs: 50, registry: { perUserLimit: 1, onLimit: 'evict-oldest' } });
    const first = await f.open('ian');
    const r = await new Promise((resolve) => {
      const ws = new WebSocket(f.wsUrl('ian'));
      /** @type {string[]} */
      const got = [];
      ws.on('message', (d) => {
        got.push(String(d));
        if (got.length === 3) resolve({ ws, got });
      });
      // Sent at once: they reach Bun while the eviction is still being committed.
      ws.once('open', () => {
        for (const m of ['1', '2', '3']) ws.send(m);
      });
    });
    assert.deepEqual(r.got, ['echo:1', 'echo:2', 'echo:3']);
    assert.equal((await within(first.closed, 5000, 'the evicted socket')).code, 4008);
    r.ws.close();
    await once(r.ws, 'close');
    await waitFor(async () => (await f.json('/stats')).store.active === 0, 'the lease to be released');
    await f.stop();
  });

  test('close(): every socket closed with 1001, every lease released, later upgrades answered 503 shutting-down', async () => {
    const f = await fixture();
    const a = await f.open('zed');
    const b = await f.open('amy');
    const stats = await f.json('/close');
    assert.deepEqual([(await a.closed).code, (await b.closed).code], [1001, 1001]);
    assert.equal(stats.store.active, 0);
    assert.equal(stats.lease.closes['1001'], 2);
    const late = await f.connect('zed');
    assert.ok(!late.ok);
    assert.equal(late.status, 503);
    assert.equal(late.headers['retry-after'], '1');
    assert.deepEqual(late.body, { reason: 'shutting-down' });
    await f.stop();
  });
});
