// Connection churn through socket-lease/socket.io versus the same Socket.IO server without
// it, in one run: connect -> `echo` event -> `echo` reply -> disconnect, each server in a
// child process of its own, this process the client (socket.io-client, WebSocket only).
//
// Targets (printed met / NOT MET, asserted by no test):
//   (a) the guard's server CPU per cycle is at most 10 us over bare Socket.IO, and
//   (b) guarded churn (cycles/s) is at least 0.95 of bare churn.
// The method is bench/node-churn.mjs's: the servers differ only by the guard (both read the
// user from the handshake and refuse without one; both answer with an id: the lease id
// through the guard's API, the socket id on the bare one); per round, CPU is measured with
// both servers driven at once (same rate, same moments, same outside load) and read from
// /proc/<pid>/stat (utime + stime, which works for any runtime), and churn with the servers
// in turn (A B B A, the order alternating by round); the summary is the median round.
//
//   node bench/churn-socketio.mjs [--time-ms 1500] [--batch 8] [--rounds 8]
import http from 'node:http';
import os from 'node:os';
import { fork } from 'node:child_process';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { median, statCpuUs } from './churn-client.mjs';

const SELF = fileURLToPath(import.meta.url);
const USERS = 64;

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
    url: `http://127.0.0.1:${port}`,
    pid: /** @type {number} */ (child.pid),
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

/**
 * Runs batches of `batch` concurrent cycles, spread over `urls`, for `ms`.
 * @param {string[]} urls @param {number} batch @param {number} ms
 */
async function drive(urls, batch, ms) {
  const end = Date.now() + ms;
  let done = 0;
  while (Date.now() < end) {
    await Promise.all(Array.from({ length: batch }, (_, i) => cycle(urls[i % urls.length])));
    done += batch;
  }
  return done;
}


async function main() {
  const { values } = parseArgs({ options: { 'time-ms': { type: 'string', default: '1500' }, batch: { type: 'string', default: '8' }, rounds: { type: 'string', default: '8' } } });
  const timeMs = Number(values['time-ms']);
  const batch = Number(values.batch);
  const rounds = Number(values.rounds);
  const bare = await startServer('bare');
  const guarded = await startServer('guarded');
  try {
    console.log(`node ${process.version}, ${os.cpus().length} CPUs, ${batch} concurrent cycles per batch, ${rounds} rounds of ${timeMs} ms (after a warm-up)`);
    await drive([bare.url, guarded.url], batch, timeMs);
    /** @type {{ bare: number[], guarded: number[], over: number[], ratio: number[], bareRate: number[], guardedRate: number[] }} */
    const r = { bare: [], guarded: [], over: [], ratio: [], bareRate: [], guardedRate: [] };
    for (let round = 0; round < rounds; round++) {
      // CPU: both servers at once, half of each batch to each.
      const before = [statCpuUs(bare.pid), statCpuUs(guarded.pid)];
      const n = await drive([bare.url, guarded.url], batch, timeMs);
      const perCycle = [(statCpuUs(bare.pid) - before[0]) / (n / 2), (statCpuUs(guarded.pid) - before[1]) / (n / 2)];
      r.bare.push(perCycle[0]);
      r.guarded.push(perCycle[1]);
      r.over.push(perCycle[1] - perCycle[0]);
      // Churn: in turn, A B B A, the order alternating from round to round.
      const order = round % 2 ? [guarded, bare, bare, guarded] : [bare, guarded, guarded, bare];
      /** @type {Record<string, number>} */
      const rate = { bare: 0, guarded: 0 };
      for (const s of order) {
        const t0 = performance.now();
        const done = await drive([s.url], batch, timeMs / 2);
        rate[s.kind] += done / ((performance.now() - t0) / 1000) / 2;
      }
      r.bareRate.push(rate.bare);
      r.guardedRate.push(rate.guarded);
      r.ratio.push(rate.guarded / rate.bare);
    }
    const over = median(r.over);
    const ratio = median(r.ratio);
    const fmt = (/** @type {number[]} */ xs, d = 1) => `${Math.min(...xs).toFixed(d)}..${Math.max(...xs).toFixed(d)}`;
    console.log('\nserver CPU per cycle (connect + echo event + disconnect; /proc utime+stime, 10 ms ticks; median of the rounds):');
    console.log(`  bare Socket.IO          ${median(r.bare).toFixed(1).padStart(7)} us   (rounds ${fmt(r.bare)})`);
    console.log(`  with socket-lease       ${median(r.guarded).toFixed(1).padStart(7)} us   over bare ${over >= 0 ? '+' : ''}${over.toFixed(1)} us (rounds ${fmt(r.over)})`);
    console.log('churn (cycles/s as this client sees them; median of the rounds):');
    console.log(`  bare ${median(r.bareRate).toFixed(0)}, guarded ${median(r.guardedRate).toFixed(0)}, guarded / bare ${ratio.toFixed(3)} (rounds ${fmt(r.ratio, 3)})`);
    console.log(`\ntarget (a) guard CPU <= 10 us per cycle over bare: ${over <= 10 ? 'met' : 'NOT MET'} (${over.toFixed(1)} us)`);
    console.log(`target (b) guarded churn >= 0.95 of bare: ${ratio >= 0.95 ? 'met' : 'NOT MET'} (${ratio.toFixed(3)})`);
    const [sb, sg] = await Promise.all([bare.stats(), guarded.stats()]);
    console.log(`after the run: bare ${sb.open} sockets open; guarded ${sg.open} open, ${sg.active} leases active`);
  } finally {
    bare.child.kill();
    guarded.child.kill();
  }
}

const serveAt = process.argv.indexOf('--serve');
if (serveAt !== -1) await serve(/** @type {'bare' | 'guarded'} */ (process.argv[serveAt + 1]));
else await main();
