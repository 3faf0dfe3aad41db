// A Bun server for the adapter's own tests (adapter.test.mjs starts it with the real bun
// binary). FIXTURE (JSON) holds the adapter's options and what to wrap; the server prints
// `ready <port>` and then records what its handlers saw, for the tests to read over HTTP:
//
//   /ws?user=&room=   the adapter, with { data: { room }, headers: { x-fixture: bun } }
//   /stats            { lease: lease.stats(), store: store.stats() }
//   /events           what the host's handlers saw, in order
//   /close            lease.close(), then the stats
//
// Messages: `info` answers what ws.data and the facade say about the socket; `flood:<KiB>`
// sends that many 1 KiB messages asking writable() first, `blast:<KiB>` without asking;
// anything else is echoed as `echo:<text>`. The user `boom` makes the host's open throw. FIXTURE {"mode":"options"} instead prints what
// each misuse of the API throws, as JSON, and exits.
/* global Bun */
import { LeaseError, LeaseRegistry } from 'socket-lease';
import { createBunLease } from 'socket-lease/bun';

const fixture = JSON.parse(process.env.FIXTURE ?? '{}');

if (fixture.mode === 'options') {
  const userId = () => 'u';
  /** @type {Record<string, () => unknown>} */
  const misuses = {
    'no options': () => createBunLease(/** @type {any} */ (undefined)),
    'no userId': () => createBunLease(/** @type {any} */ ({})),
    'unknown option': () => createBunLease(/** @type {any} */ ({ userId, heartbeatMS: 1000 })),
    'store and registry': () => createBunLease({ userId, store: new LeaseRegistry({}), registry: {} }),
    'maxPayload 0': () => createBunLease({ userId, maxPayload: 0 }),
    'heartbeatMs not a number': () => createBunLease({ userId, heartbeatMs: /** @type {any} */ ('30s') }),
    'handler typo': () => createBunLease({ userId }).websocket(/** @type {any} */ ({ mesage() {} })),
    'Bun knob the adapter owns': () => createBunLease({ userId }).websocket(/** @type {any} */ ({ maxPayloadLength: 1 << 20 })),
    idleTimeout: () => createBunLease({ userId }).websocket(/** @type {any} */ ({ idleTimeout: 120 })),
    'data with a lease key': () =>
      createBunLease({ userId }).upgrade(new Request('http://x/ws'), { upgrade: () => true }, { data: /** @type {any} */ ({ lease: 1 }) }),
  };
  const out = {};
  for (const [name, misuse] of Object.entries(misuses)) {
    try {
      misuse();
      out[name] = { threw: false };
    } catch (err) {
      const e = /** @type {any} */ (err);
      out[name] = { threw: true, code: e.code, name: e.name, leaseError: e instanceof LeaseError, message: e.message };
    }
  }
  const lease = createBunLease({ userId });
  const handler = lease.websocket({ perMessageDeflate: false });
  out.handler = {
    keys: Object.keys(handler).sort(),
    maxPayloadLength: handler.maxPayloadLength,
    backpressureLimit: handler.backpressureLimit,
    closeOnBackpressureLimit: handler.closeOnBackpressureLimit,
    idleTimeout: handler.idleTimeout,
    sendPings: handler.sendPings,
  };
  out.resolved = { core: import.meta.resolve('socket-lease'), bun: import.meta.resolve('socket-lease/bun') };
  await lease.close();
  console.log(JSON.stringify(out));
  process.exit(0);
}

const registry = new LeaseRegistry({ perUserLimit: 5, ttlMs: 60_000, ...fixture.registry });
/** @type {any} */
let store = registry;
if (fixture.asyncStoreMs !== undefined) {
  // A store answering acquire later, as a shared store does: admission and a committed
  // eviction become asynchronous (no handle API, so the lifecycle uses the object API).
  const later = (/** @type {() => any} */ fn) => Bun.sleep(fixture.asyncStoreMs).then(fn);
  store = {
    acquire: (/** @type {string} */ u, /** @type {any} */ o) => later(() => registry.acquire(u, o)),
    release: (/** @type {string} */ id, /** @type {number} */ now) => registry.release(id, now),
    touch: (/** @type {string} */ id, /** @type {number} */ now) => registry.touch(id, now),
    sweep: (/** @type {number} */ now) => registry.sweep(now),
    metrics: () => registry.metrics(),
  };
}

/** @type {any[]} */
const events = [];
const lease = createBunLease({ userId: (req) => new URL(req.url).searchParams.get('user'), store, logLevel: 'silent', ...fixture.options });
const server = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  async fetch(req, srv) {
    const url = new URL(req.url);
    if (url.pathname === '/ws') return lease.upgrade(req, srv, { data: { room: url.searchParams.get('room') ?? 'lobby' }, headers: { 'x-fixture': 'bun' } });
    if (url.pathname === '/stats') return Response.json({ lease: lease.stats(), store: registry.stats() });
    if (url.pathname === '/events') return Response.json(events);
    if (url.pathname === '/close') {
      await lease.close();
      return Response.json({ lease: lease.stats(), store: registry.stats() });
    }
    return new Response('not found', { status: 404 });
  },
  websocket: lease.websocket({
    open(ws) {
      events.push({ ev: 'open', leaseId: ws.data.lease.leaseId, room: ws.data.room });
      if (ws.data.lease.userId === 'boom') throw new Error('the host could not set the socket up');
    },
    message(ws, message) {
      const text = String(message);
      if (text === 'info') {
        ws.send(
          JSON.stringify({
            leaseId: ws.data.lease.leaseId,
            userId: ws.data.lease.userId,
            room: ws.data.room,
            leaseIdOf: lease.leaseIdOf(ws),
            userIdOf: lease.userIdOf(ws),
            threadId: lease.leaseOf(ws)?.threadId,
            held: [...lease.sockets()].includes(ws),
          }),
        );
        return;
      }
      const flood = /^(flood|blast):(\d+)$/.exec(text);
      if (flood) {
        const chunk = 'x'.repeat(1024);
        let sent = 0;
        let last = 0;
        for (let i = 0; i < Number(flood[2]); i++) {
          if (flood[1] === 'flood' && !lease.writable(ws)) break;
          last = ws.send(chunk);
          if (last === 0) break;
          sent++;
        }
        events.push({ ev: flood[1], sent, last, buffered: ws.readyState === 1 ? ws.getBufferedAmount() : null, writable: lease.writable(ws) });
        return;
      }
      ws.send(`echo:${text}`);
    },
    close(ws, code, reason) {
      // The lease is released before the host's handler runs.
      events.push({ ev: 'close', leaseId: ws.data.lease.leaseId, code, reason, userIdOf: lease.userIdOf(ws) ?? null, active: registry.stats().active });
    },
  }),
});
console.log(`ready ${server.port}`);
process.once('SIGTERM', () => process.exit(0));
