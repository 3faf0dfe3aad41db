// Connection churn through socket-lease/socket.io versus the same Socket.IO server without
// it, in one run: connect -> `echo` event -> `echo` reply -> disconnect, each server in a
// child process of its own, this process the client (socket.io-client, WebSocket only).
//
// Targets (printed met / NOT MET, asserted by no test):
//   (a) the guard's server CPU per cycle is at most 10 us over bare Socket.IO, and
//   (b) guarded churn (cycles/s) is at least 0.95 of bare churn.
// The method is bench/node-churn.mjs's: the servers differ only by the guard (both read the
// user from the handshake and refuse without one; both answer with an id: the lease id
// through the guard's API, the socket id on the bare one); the rounds, summary and targets
// are churn-client.mjs's `compare`, as for every host (CPU from /proc/<pid>/task/*/schedstat).
//
//   node bench/churn-socketio.mjs [--time-ms 2000] [--batch 8] [--rounds 12] [--json PATH]
import http from 'node:http';
import { fork } from 'node:child_process';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { compare, processCpuUs } from './churn-client.mjs';

const SELF = fileURLToPath(import.meta.url);
const USERS = 64;
const SOCKET_IO_VERSION = createRequire(import.meta.url)('socket.io/package.json').version;

// ---------------------------------------------------------------- server (child) side

/** @param {'bare' | 'guarded'} kind */
async function serve(kind) {
  const { Server } = await import('socket.io');
  const { createLeaseGuard } = await import('socket-lease/socket.io');
  const server = http.createServer();
  const io = new Server(server, { transports: ['websocket'] });
  /** @param {import('socket.io').Socket} socket */
  const userOf = (socket) => {
    const user = socket.handshake.auth.user;
    return typeof user === 'string' && user !== '' ? user : null;
  };
  /** @type {import('socket-lease/socket.io').LeaseGuard | null} */
  let guard = null;
  if (kind === 'guarded') {
    guard = createLeaseGuard({ userId: userOf, registry: { perUserLimit: 1000, ttlMs: 90_000 }, logLevel: 'silent' });
    io.use(guard.middleware);
  } else {
    io.use((socket, next) => (userOf(socket) ? next() : next(new Error('unauthorized'))));
  }
  const g = guard;
  io.on('connection', (socket) => {
    socket.on('echo', (data) => {
      if (g && !g.writable(socket)) return;
      socket.emit('echo', { type: 'echo', data, leaseId: g ? g.leaseIdOf(socket) : socket.id });
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const send = /** @type {(m: unknown) => void} */ (/** @type {any} */ (process).send.bind(process));
  send({ port: /** @type {import('node:net').AddressInfo} */ (server.address()).port });
  // The parent went away (or is done): exit normally, so --cpu-prof and the like can write.
  process.once('disconnect', () => process.exit(0));
  process.on('message', (/** @type {any} */ msg) => {
    if (msg === 'stats') send({ stats: { open: io.of('/').sockets.size, active: g ? /** @type {any} */ (g.store).stats().active : null } });
  });
}

// ---------------------------------------------------------------- client side

/** @param {'bare' | 'guarded'} kind */
async function startServer(kind) {
  const child = fork(SELF, ['--serve', kind], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const port = await new Promise((resolve, reject) => {
    child.once('message', (/** @type {any} */ m) => resolve(m.port));
    child.once('exit', (code) => reject(new Error(`${kind} server exited (${code})`)));
  });
  return {
    kind,
    child,
    label: kind === 'bare' ? 'bare Socket.IO' : 'socket-lease/socket.io',
    url: `http://127.0.0.1:${port}`,
    cpu: () => processCpuUs(/** @type {number} */ (child.pid)),
    /** @returns {Promise<{ open: number, active: number | null }>} */
    stats: () =>
      new Promise((resolve) => {
        child.once('message', (/** @type {any} */ m) => resolve(m.stats));
        child.send('stats');
      }),
  };
}

const { io: ioClient } = await import('socket.io-client');
let seq = 0;

/** One cycle: connect, one echo, disconnect. @param {string} url */
function cycle(url) {
  return new Promise((resolve, reject) => {
    const user = `user-${seq++ % USERS}`;
    const socket = ioClient(url, { forceNew: true, reconnection: false, transports: ['websocket'], auth: { user } });
    socket.once('connect_error', (err) => reject(err));
    socket.once('connect', () => socket.emit('echo', 'ping'));
    socket.once('echo', () => {
      socket.disconnect();
      resolve(undefined);
    });
  });
}

async function main() {
  const { values } = parseArgs({
    options: {
      'time-ms': { type: 'string', default: '2000' },
      batch: { type: 'string', default: '8' },
      rounds: { type: 'string', default: '12' },
      json: { type: 'string' },
    },
  });
  const servers = [await startServer('bare'), await startServer('guarded')];
  try {
    await compare(servers, {
      title: `node ${process.version}, socket.io ${SOCKET_IO_VERSION} (WebSocket transport)`,
      timeMs: Number(values['time-ms']),
      batch: Number(values.batch),
      rounds: Number(values.rounds),
      json: values.json,
      cycle,
      cpuMethod: '/proc/<pid>/task/*/schedstat, every thread',
    });
    const [sb, sg] = await Promise.all(servers.map((s) => s.stats()));
    console.log(`after the run: bare ${sb.open} sockets open; guarded ${sg.open} open, ${sg.active} leases active`);
  } finally {
    for (const s of servers) s.child.kill();
  }
}

const serveAt = process.argv.indexOf('--serve');
if (serveAt !== -1) await serve(/** @type {'bare' | 'guarded'} */ (process.argv[serveAt + 1]));
else await main();
