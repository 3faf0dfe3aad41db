// `npm run start:socketio`: the demo host on Socket.IO. The same settings as every demo
// (examples/demo/config.mjs, `--help`), the same HTTP routes (examples/demo/app.mjs) on the
// same Node http server, and socket-lease/socket.io as an `io.use()` middleware. The user
// is `auth.user` of the handshake (demo identity only: a real host reads its session or a
// verified token); an `echo` event is answered with an `echo` event.
import http from 'node:http';
import { Server } from 'socket.io';
import { createLeaseGuard } from 'socket-lease/socket.io';
import { createDemoApp } from '../demo/app.mjs';
import { configOrExit, startupLines } from '../demo/config.mjs';
import { serveFetch } from '../demo/node-http.mjs';
import { demoStore } from '../demo/store.mjs';

const config = configOrExit(process.env, process.argv.slice(2), process.exit);
const settings = config;

const startedAt = Date.now();
let closing = false;
/** @type {Awaited<ReturnType<typeof demoStore>>} */
let stored;
/** @type {import('socket-lease/socket.io').LeaseGuard} */
let guard;
try {
  stored = await demoStore(settings);
  guard = createLeaseGuard({
    userId: (socket) => socket.handshake.auth?.user ?? null,
    // engine.io pings; the guard only looks for disconnects that never came this often.
    heartbeatMs: settings.heartbeatMs,
    allowedOrigins: settings.allowedOrigins,
    maxBufferedBytes: settings.maxBufferedBytes,
    logLevel: settings.logLevel,
    ...stored.adapterOptions,
  });
} catch (err) {
  // Option values the core rejects (LeaseError INVALID_OPTION).
  const e = /** @type {any} */ (err);
  console.error(`socket-lease demo: cannot start: ${e.code ? `${e.code}: ` : ''}${e.message}`);
  process.exit(1);
}
const store = /** @type {any} */ (guard.store);
const app = createDemoApp({ host: guard, store, adminToken: settings.adminToken, isClosing: () => closing, startedAt, transport: 'socket.io' });
const server = http.createServer((req, res) => void serveFetch(app.fetch, req, res));

// engine.io's heartbeat is the liveness check: a ping every heartbeatMs, a peer that has
// not answered within another heartbeatMs is closed (and its lease released), the same
// two-interval bound as the Node host's. maxHttpBufferSize is the largest message.
const io = new Server(server, {
  pingInterval: settings.heartbeatMs,
  pingTimeout: settings.heartbeatMs,
  maxHttpBufferSize: settings.maxPayload,
});
io.use(guard.middleware);
io.on('connection', (socket) => {
  socket.on('echo', (data) => {
    // A client that does not read makes every reply queue here: past maxBufferedBytes the
    // guard disconnects it (4010) and the echo stops serving it.
    if (!guard.writable(socket)) return;
    // The lease belongs to the socket; events only read its id, never acquire. (Read here,
    // not in `connection`: with Redis under an evicting policy the lease is committed just
    // after `connection`, and the guard holds the socket's events until it is.)
    socket.emit('echo', { type: 'echo', data, leaseId: guard.leaseIdOf(socket) });
  });
});

try {
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(settings.port, settings.host, () => resolve(undefined));
  });
} catch (err) {
  const e = /** @type {NodeJS.ErrnoException} */ (err);
  console.error(`socket-lease demo: cannot start: ${e.code ? `${e.code}: ` : ''}${e.message}`);
  process.exit(1);
}
const address = /** @type {import('node:net').AddressInfo} */ (server.address());
const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;

for (const line of startupLines(settings, {
  url,
  socket: `  Socket.IO  ${url} (path /socket.io/), auth { user: '<userId>' }: answers every 'echo' event with an 'echo' event`,
  heartbeat: `engine.io ping every ${settings.heartbeatMs} ms (timeout ${settings.heartbeatMs} ms)`,
}))
  console.log(line);

/** @param {NodeJS.Signals} signal */
async function shutdown(signal) {
  console.log(`socket-lease demo: ${signal}: telling every socket 1001, disconnecting it and releasing every lease`);
  process.once('SIGINT', () => process.exit(130));
  process.once('SIGTERM', () => process.exit(143));
  try {
    closing = true;
    await guard.close();
    // Closes engine.io's connections and the http server (keep-alive ones too).
    await new Promise((resolve) => {
      io.close(() => resolve(undefined));
      server.closeAllConnections();
    });
    const stats = { guard: guard.stats(), store: typeof store.stats === 'function' ? await store.stats() : null };
    await stored.redisStore?.close();
    console.log(`socket-lease demo: stopped; final stats ${JSON.stringify(stats)}`);
    process.exit(0);
  } catch (err) {
    console.error(`socket-lease demo: shutdown failed: ${String(err)}`);
    process.exit(1);
  }
}
process.once('SIGINT', shutdown);
process.once('SIGTERM', shutdown);
