// `npm run start:crossws`: the demo host on crossws, served by srvx on Node through
// crossws/server (srvx + crossws's Node adapter, the stack under h3 and Nitro). The same
// settings, HTTP routes and echo as the Node demo (examples/demo/): the lease hooks are
// socket-lease/crossws, composed with the demo's own echo hooks. See `--help`.
import { defineHooks } from 'crossws';
import { serve } from 'crossws/server/node';
import { createLeaseGuard } from 'socket-lease/crossws';
import { binaryReply, createDemoApp, echoReply } from '../demo/app.mjs';
import { configOrExit, startupLines } from '../demo/config.mjs';
import { demoStore } from '../demo/store.mjs';

const config = configOrExit(process.env, process.argv.slice(2), process.exit);

const startedAt = Date.now();
const { adapterOptions, redisStore } = await demoStore(config);
/** @type {import('socket-lease/crossws').LeaseGuard} */
let guard;
try {
  guard = createLeaseGuard({
    // Demo identity only: a real host derives the user from its authentication (a session
    // cookie or a verified token), never from a query parameter.
    userId: (request) => new URL(request.url).searchParams.get('user'),
    heartbeatMs: config.heartbeatMs,
    allowedOrigins: config.allowedOrigins,
    maxPayload: config.maxPayload,
    maxBufferedBytes: config.maxBufferedBytes,
    logLevel: config.logLevel,
    ...adapterOptions,
  });
} catch (err) {
  // Option values the core refuses (LeaseError INVALID_OPTION).
  console.error(`socket-lease demo: cannot start: ${/** @type {any} */ (err).code ?? 'ERROR'}: ${/** @type {Error} */ (err).message}`);
  await redisStore?.close();
  process.exit(1);
}
const store = /** @type {any} */ (guard.store);

// The application's own hooks: the lease hooks run first, so these see only sockets that
// hold a lease, and never acquire anything per message.
const echo = defineHooks({
  message(peer, message) {
    // A client that never reads makes every reply queue here: past maxBufferedBytes the
    // guard closes its socket (4010) and the echo stops serving it.
    if (!guard.writable(peer)) return;
    const leaseId = guard.leaseIdOf(peer);
    peer.send(typeof message.rawData === 'string' ? echoReply(message.rawData, leaseId) : binaryReply(leaseId));
  },
});

let closing = false;
const app = createDemoApp({ host: guard, store, adminToken: config.adminToken, isClosing: () => closing, startedAt });
const server = serve({
  hostname: config.host,
  port: config.port,
  // Our first stdout line is the contract's; shutdown is ours (1001 to every socket).
  silent: true,
  gracefulShutdown: false,
  fetch: (request) => app.fetch(request),
  websocket: {
    ...guard.hooks(echo, { path: '/ws' }),
    // ws's maxPayload (1009 before buffering) and closeTimeout; crossws's own idle ping
    // off, since the guard pings and terminates silent peers itself.
    options: { node: guard.nodeOptions() },
  },
});
try {
  await server.ready();
} catch (err) {
  const e = /** @type {NodeJS.ErrnoException} */ (err);
  console.error(`socket-lease demo: cannot start: ${e.code ? `${e.code}: ` : ''}${e.message}`);
  await guard.close();
  await redisStore?.close();
  process.exit(1);
}
const address = /** @type {import('node:net').AddressInfo} */ (server.node?.server?.address());
const hostForUrl = address.family === 'IPv6' ? `[${address.address}]` : address.address;
const url = `http://${hostForUrl}:${address.port}`;

for (const line of startupLines(config, {
  url,
  socket: `  WebSocket  ws://${hostForUrl}:${address.port}/ws?user=<userId>   (crossws on srvx; echoes every text message)`,
}))
  console.log(line);

/** @param {NodeJS.Signals} signal */
async function shutdown(signal) {
  console.log(`socket-lease demo: ${signal}: closing every socket (1001) and releasing every lease`);
  // A second signal while shutting down means "now".
  process.once('SIGINT', () => process.exit(130));
  process.once('SIGTERM', () => process.exit(143));
  try {
    closing = true;
    await guard.close();
    // Keep-alive HTTP connections would hold the close open.
    await server.close(true);
    const stats = { guard: guard.stats(), store: typeof store.stats === 'function' ? await store.stats() : null };
    await redisStore?.close();
    console.log(`socket-lease demo: stopped; final stats ${JSON.stringify(stats)}`);
    process.exit(0);
  } catch (err) {
    console.error(`socket-lease demo: shutdown failed: ${String(err)}`);
    process.exit(1);
  }
}
process.once('SIGINT', shutdown);
process.once('SIGTERM', shutdown);
