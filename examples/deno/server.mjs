// `npm run start:deno`: the demo host under Deno, `Deno.serve` with socket-lease/deno on
// `/ws` and the demo's shared HTTP routes (examples/demo/app.mjs: metrics, health, the
// per-user view, static files). The same settings as `npm start` (see `--help`).
//
//   deno run --allow-net=127.0.0.1,0.0.0.0,localhost,[::1] --allow-read=. --allow-env examples/deno/server.mjs
//
// --allow-read=. is for the demo (www/ and the package's browser build, and
// socket-lease/redis, whose CommonJS loads the core with fs), not for the adapter.
import { createDenoLease } from 'socket-lease/deno';
import { binaryReply, createDemoApp, echoReply } from '../demo/app.mjs';
import { configOrExit, startupLines } from '../demo/config.mjs';
import { demoStore } from '../demo/store.mjs';

/** @type {any} Deno's namespace (not typed in this repository) */
const Deno = /** @type {any} */ (globalThis).Deno;

const config = configOrExit(Deno.env.toObject(), Deno.args, Deno.exit);

const startedAt = Date.now();
let lease;
let redisStore;
try {
  const store = await demoStore(config);
  redisStore = store.redisStore;
  lease = createDenoLease({
    // Demo identity only: a real host derives the user from its authentication (a
    // session cookie or a verified token), never from a query parameter.
    userId: (req) => new URL(req.url).searchParams.get('user'),
    heartbeatMs: config.heartbeatMs,
    allowedOrigins: config.allowedOrigins,
    maxPayload: config.maxPayload,
    maxBufferedBytes: config.maxBufferedBytes,
    logLevel: config.logLevel,
    ...store.adapterOptions,
  });
} catch (err) {
  // Bad option values the core rejects (LeaseError INVALID_OPTION).
  console.error(`socket-lease demo: cannot start: ${err.code ? `${err.code}: ` : ''}${err.message}`);
  Deno.exit(1);
}
const store = /** @type {any} */ (lease.store);

// The echo: the lease belongs to the socket; a message only reads its id, never acquires.
const hooks = {
  /** @param {WebSocket} ws @param {MessageEvent} event */
  onMessage(ws, event) {
    // A client that never reads makes every reply queue here: past maxBufferedBytes the
    // host closes its socket (4010) and the echo stops serving it.
    if (!lease.writable(ws)) return;
    const leaseId = lease.leaseIdOf(ws);
    ws.send(typeof event.data === 'string' ? echoReply(event.data, leaseId) : binaryReply(leaseId));
  },
};

let closing = false;
const app = createDemoApp({ host: lease, store, adminToken: config.adminToken, isClosing: () => closing, startedAt });

/** @type {(url: string) => void} */
let listening;
const listeningAt = new Promise((resolve) => (listening = resolve));
let server;
try {
  server = Deno.serve(
    {
      hostname: config.host,
      port: config.port,
      // Deno prints its own "Listening on" line otherwise: the contract's line comes first.
      onListen: ({ hostname, port }) => listening(`http://${hostname.includes(':') ? `[${hostname}]` : hostname}:${port}`),
    },
    (/** @type {Request} */ req) => {
      // Only WebSocket handshakes go to the host; a plain GET /ws gets the app's 426.
      if (req.headers.has('upgrade') && new URL(req.url).pathname === '/ws') return lease.upgrade(req, hooks);
      return app.fetch(req);
    },
  );
} catch (err) {
  // A busy port (AddrInUse) or an address this process may not bind.
  console.error(`socket-lease demo: cannot start: ${err.name}: ${err.message}`);
  await lease.close();
  Deno.exit(1);
}
const url = await listeningAt;

for (const line of startupLines(config, { url, heartbeat: `${config.heartbeatMs} ms (Deno idleTimeout ${(2 * config.heartbeatMs) / 1000} s)` }))
  console.log(line);

let shuttingDown = false;
/** @param {string} signal */
async function shutdown(signal) {
  // A second signal while shutting down means "now".
  if (shuttingDown) Deno.exit(signal === 'SIGINT' ? 130 : 143);
  shuttingDown = true;
  closing = true;
  console.log(`socket-lease demo: ${signal}: closing every socket (1001) and releasing every lease`);
  try {
    await lease.close();
    // Keep-alive HTTP connections would hold a graceful shutdown open: the sockets are
    // answered already, so stop at once.
    await server.shutdown();
    const stats = { guard: lease.stats(), store: typeof store.stats === 'function' ? await store.stats() : null };
    await redisStore?.close();
    console.log(`socket-lease demo: stopped; final stats ${JSON.stringify(stats)}`);
    Deno.exit(0);
  } catch (err) {
    console.error(`socket-lease demo: shutdown failed: ${String(err)}`);
    Deno.exit(1);
  }
}
Deno.addSignalListener('SIGINT', () => void shutdown('SIGINT'));
Deno.addSignalListener('SIGTERM', () => void shutdown('SIGTERM'));
