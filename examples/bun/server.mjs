// `npm run start:bun`: the demo host on Bun. `Bun.serve` with the socket-lease adapter on
// `/ws?user=` (an echo) and the demo's shared HTTP routes (examples/demo/app.mjs: metrics,
// health, the per-user view, static files). Same settings as the Node demo (`--help`);
// SIGTERM/SIGINT closes every socket with 1001, releases every lease and exits 0.
/* global Bun */
import { createBunLease } from 'socket-lease/bun';
import { binaryReply, createDemoApp, echoReply } from '../demo/app.mjs';
import { configOrExit, startupLines } from '../demo/config.mjs';
import { demoStore } from '../demo/store.mjs';

const config = configOrExit(process.env, process.argv.slice(2), process.exit);

const startedAt = Date.now();
let closing = false;
/** @type {any} */
let server;
/** @type {Awaited<ReturnType<typeof demoStore>>['redisStore']} */
let redisStore = null;
/** @type {import('socket-lease/bun').BunLease} */
let lease;
try {
  const built = await demoStore(config);
  redisStore = built.redisStore;
  lease = createBunLease({
    // Demo identity only: a real host derives the user from its authentication (a
    // session cookie or a verified token), never from a query parameter.
    userId: (req) => new URL(req.url).searchParams.get('user'),
    heartbeatMs: config.heartbeatMs,
    allowedOrigins: config.allowedOrigins,
    maxPayload: config.maxPayload,
    maxBufferedBytes: config.maxBufferedBytes,
    logLevel: config.logLevel,
    ...built.adapterOptions,
  });
  const app = createDemoApp({ host: lease, store: lease.store, adminToken: config.adminToken, isClosing: () => closing, startedAt });
  server = Bun.serve({
    hostname: config.host,
    port: config.port,
    fetch(req, srv) {
      // The path only, without building a URL for every request.
      const path = req.url.slice(req.url.indexOf('/', 8)).split(/[?#]/, 1)[0];
      if (path === '/ws' && req.headers.get('upgrade') !== null) return lease.upgrade(req, srv);
      return app.fetch(req);
    },
    websocket: lease.websocket({
      message(ws, message) {
        // A client that never reads makes every reply queue here: past maxBufferedBytes the
        // adapter closes its socket (4010) and the echo stops serving it.
        if (!lease.writable(ws)) return;
        const leaseId = ws.data.lease.leaseId;
        ws.send(typeof message === 'string' ? echoReply(message, leaseId) : binaryReply(leaseId));
      },
    }),
  });
} catch (err) {
  // Bad option values the core rejects (LeaseError INVALID_OPTION) or a busy port.
  const e = /** @type {any} */ (err);
  console.error(`socket-lease demo: cannot start: ${e?.code ? `${e.code}: ` : ''}${e?.message ?? e}`);
  await redisStore?.close();
  process.exit(1);
}

const hostForUrl = String(server.hostname).includes(':') ? `[${server.hostname}]` : server.hostname;
const url = `http://${hostForUrl}:${server.port}`;
for (const line of startupLines(config, { url, runtime: `Bun ${Bun.version}` })) console.log(line);

/** @param {string} signal */
async function shutdown(signal) {
  console.log(`socket-lease demo: ${signal}: closing every socket (1001) and releasing every lease`);
  // A second signal while shutting down means "now".
  process.once('SIGINT', () => process.exit(130));
  process.once('SIGTERM', () => process.exit(143));
  try {
    closing = true;
    await lease.close();
    // Every WebSocket is closed by now; this drops idle keep-alive HTTP connections too.
    await server.stop(true);
    const store = /** @type {any} */ (lease.store);
    const stats = { adapter: lease.stats(), store: typeof store.stats === 'function' ? await store.stats() : null };
    await redisStore?.close();
    console.log(`socket-lease demo: stopped; final stats ${JSON.stringify(stats)}`);
    process.exit(0);
  } catch (err) {
    console.error(`socket-lease demo: shutdown failed: ${String(err)}`);
    process.exit(1);
  }
}
process.once('SIGINT', () => void shutdown('SIGINT'));
process.once('SIGTERM', () => void shutdown('SIGTERM'));
