// `npm run bench`: connection churn through the socket-lease guard versus the same `ws`
// server without it, in one run, and server memory per open connection.
//
// Targets from the issue, both checked in one run and printed met / NOT MET:
//   (a) the guard's own server CPU per connection cycle (connect + HTTP upgrade -> send ->
//       echo -> close) is at most 10 us over bare ws (median of the rounds), and
//   (b) guarded churn (cycles/s) is at least 0.95 of bare churn (median of the rounds).
// With --json PATH the figures are written there too (bench/run.mjs: target/bench/
// node-churn.json, which `npm run bench:report` puts into docs/performance.md).
//
// A fair comparison: the servers differ only by the guard. Each runs in its own child
// process; each does the same user-id work (userOf: identity is the host's cost, not the
// guard's, and a bare host serving users reads the user too) and echoes the same message
// (the guarded ones with the lease id, read through the guard's API, which a host that
// uses leases does). A third server runs the same guard over a trivial in-JS store, which
// separates the guard's own cost from the wasm registry's.
//
// Measured per round by churn-client.mjs's `compare`, the same for every host (the summary
// is the median round, because a shared 2-core machine has bursts of other load that a
// mean would smear over everything):
//   - churn: every server in turn, in short slices (palindromes A B C C B A whose first
//     server rotates), BATCH concurrent cycles at a time; cycles per second as this client
//     process sees them; ratio guarded / bare within the round.
//   - CPU: every server driven at once for --time-ms (each batch is BATCH/2 cycles to
//     each server), so they serve at the same rate, at the same moments, under the same
//     outside load; the run time of every thread of each server process (/proc schedstat)
//     per cycle, and guarded - bare within the round. CPU time is much less sensitive to
//     outside load than the wall clock, but not immune: a process woken for every event on
//     a busy machine starts cold each time, and its CPU per cycle moves from second to second.
//
// Memory is measured apart from the churn, in fresh server processes: a server that has
// just served thousands of cycles still holds their garbage and buffers. Each fresh
// server opens and closes a warm-up batch, then (after two full collections) holds --open
// sockets at once; the figure is (heap used + external) after minus before, per socket,
// with the noise floor (the same measurement twice in a row) printed beside it.
// `arrayBuffers` is part of `external` and is not added again; wasm memory counts as
// `external` when it grows. (An earlier version reported the guarded server smaller per
// socket than the bare one, which cannot be: its bare server kept every upgrade request
// alive through a per-socket closure (see serve()), and it measured after the churn and
// counted ArrayBuffers twice.)
//
// Loopback only; this process is the client.
//
//   node bench/node-churn.mjs [--time-ms 1000] [--batch 8] [--rounds 12] [--open 4000]
//                             [--only churn|memory|profile|parts] [--json PATH] [--top 20]
//
//   --only profile   V8's sampling profiler in each server: self time per function per cycle
//   --only parts     the guard's synchronous parts (upgrade, release, message) timed in the servers
import http from 'node:http';
import { fork } from 'node:child_process';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import WebSocket, { WebSocketServer } from 'ws';
import { compare, cycle, median, processCpuUs } from './churn-client.mjs';

const SELF = fileURLToPath(import.meta.url);

// ---------------------------------------------------------------- server (child) side

/**
 * The smallest store the guard accepts: always grants, remembers ids in a Map. Serving
 * with it separates the guard's own cost from the wasm registry's.
 * @returns {import('socket-lease/node').LeaseStore}
 */
function mapStore() {
  let seq = 0;
  /** @type {Map<string, string>} */
  const leases = new Map();
  return {
    acquire(userId, options = {}) {
      const id = `conn_${(seq++).toString(32).padStart(26, '0')}`;
      const now = options.now ?? Date.now();
      leases.set(id, userId);
      const lease = {
        id,
        connectionId: id,
        runId: `run_${id.slice(5)}`,
        threadId: `thread_${id.slice(5)}`,
        userId,
        acquiredAt: now,
        touchedAt: now,
        expiresAt: now + 90_000,
      };
      return { ok: true, lease, evicted: [], reclaimed: [], reused: false };
    },
    release: (id) => leases.delete(id),
    touch: (id) => leases.has(id),
    sweep: () => [],
  };
}

/** @typedef {'bare' | 'guarded' | 'guard-map-store'} Kind */

/**
 * Wall time (ms) of each call of the parts timed in --only parts, or null.
 * @type {{ upgrade: number[], closed: number[], message: number[] } | null}
 */
const PARTS = process.env.SOCKET_LEASE_BENCH_PARTS ? { upgrade: [], closed: [], message: [] } : null;

/**
 * `fn`, timed into `into` when given.
 * @template {(...args: any[]) => any} F
 * @param {F} fn
 * @param {number[] | undefined} into
 * @returns {F}
 */
function timed(fn, into) {
  if (!into) return fn;
  return /** @type {F} */ (
    function (/** @type {any} */ ...args) {
      const t = performance.now();
      try {
        // @ts-expect-error: `this` is whatever the caller gives
        return fn.apply(this, args);
      } finally {
        into.push(performance.now() - t);
      }
    }
  );
}

function ignore() {}

/**
 * The user id of a request, the same cheap way in every server: the identity function is
 * the host's cost, not the guard's, so the bare server makes the same call (and refuses
 * a request without a user, as the guard does) and the difference between the two is the
 * guard alone. (An earlier version gave only the guarded servers a `new URL(req.url)`
 * per upgrade, several microseconds charged to the guard.) The client always sends
 * `?user=<id>` as the whole query.
 * @param {import('node:http').IncomingMessage} req
 */
function userOf(req) {
  const url = req.url ?? '';
  const at = url.indexOf('?user=');
  return at === -1 ? null : url.slice(at + 6) || null;
}

/** @param {Kind} kind */
async function serve(kind) {
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  /** @type {WebSocketServer} */
  let wss;
  if (kind !== 'bare') {
    const { createLeaseGuard } = await import('socket-lease/node');
    const guard = createLeaseGuard({
      userId: userOf,
      // Limits high enough that the memory run (many open sockets) is never refused:
      // this measures the cost of the bookkeeping, not of refusals.
      ...(kind === 'guarded' ? { registry: { perUserLimit: 100_000 } } : { store: mapStore() }),
      logLevel: 'silent',
    });
    guard.attach(server, { path: '/ws' });
    if (PARTS) {
      // Times the guard's synchronous parts (see timeParts): the whole upgrade (the guard's
      // handleUpgrade, which attach calls through the instance), the release on close and
      // the touch check per message.
      const { ConnectionLifecycle } = createRequire(import.meta.url)('socket-lease/lifecycle');
      guard.handleUpgrade = timed(guard.handleUpgrade, PARTS.upgrade);
      ConnectionLifecycle.prototype.closed = timed(ConnectionLifecycle.prototype.closed, PARTS.closed);
      ConnectionLifecycle.prototype.message = timed(ConnectionLifecycle.prototype.message, PARTS.message);
    }
    wss = /** @type {WebSocketServer} */ (/** @type {unknown} */ (guard.wss));
    wss.on('connection', (ws) => {
      const leaseId = guard.leaseIdOf(ws);
      ws.on('message', (data) => ws.send(JSON.stringify({ type: 'echo', data: data.toString(), leaseId })));
    });
  } else {
    wss = new WebSocketServer({ noServer: true });
    server.on(
      'upgrade',
      timed((/** @type {import('node:http').IncomingMessage} */ req, /** @type {import('node:stream').Duplex} */ socket, /** @type {Buffer} */ head) => {
        // The same identity work as the guarded servers (see userOf).
        if (userOf(req) === null) {
          socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
          return;
        }
        // One shared listener, removed once upgraded (ws has its own then), as the guard
        // does. A `() => {}` made here would share this scope's context with the callback
        // below and so keep `req` alive for as long as the socket: about 1.5 KiB per open
        // socket, which made an earlier version of this bare server bigger than the guarded.
        socket.on('error', ignore);
        wss.handleUpgrade(req, socket, head, (ws) => {
          socket.removeListener('error', ignore);
          wss.emit('connection', ws, req);
        });
      }, PARTS?.upgrade),
    );
    wss.on('connection', (ws) => {
      ws.on('message', (data) => ws.send(JSON.stringify({ type: 'echo', data: data.toString(), leaseId: null })));
    });
  }
  server.listen(0, '127.0.0.1', () => {
    const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
    /** @type {NodeJS.Process & { send: Function }} */ (process).send({ ready: port });
  });
  // The parent went away (or is done): exit normally, so --cpu-prof and the like can write.
  process.once('disconnect', () => process.exit(0));
  process.on('message', (/** @type {{ cmd: string }} */ msg) => {
    if (msg.cmd === 'cpu') {
      const c = process.cpuUsage();
      /** @type {NodeJS.Process & { send: Function }} */ (process).send({ cpu: c.user + c.system, user: c.user });
    }
    if (msg.cmd === 'mem') {
      // Two collections: the first may only schedule finalizers. (`arrayBuffers` is part
      // of `external`: adding it again would count socket buffers twice.)
      const gc = /** @type {() => void} */ (globalThis.gc);
      gc();
      gc();
      const m = process.memoryUsage();
      /** @type {NodeJS.Process & { send: Function }} */ (process).send({
        mem: { heap: m.heapUsed + m.external, js: m.heapUsed, external: m.external },
        open: wss.clients.size,
      });
    }
    if (msg.cmd === 'profile-start') void profileStart();
    if (msg.cmd === 'profile-stop') void profileStop().then((profile) => /** @type {NodeJS.Process & { send: Function }} */ (process).send({ profile }));
    if (msg.cmd === 'parts' && PARTS) {
      const medians = Object.fromEntries(Object.entries(PARTS).map(([k, v]) => [k, { n: v.length, us: v.length ? median(v) * 1000 : 0 }]));
      for (const v of Object.values(PARTS)) v.length = 0;
      /** @type {NodeJS.Process & { send: Function }} */ (process).send({ parts: medians });
    }
    if (msg.cmd === 'open') {
      /** @type {NodeJS.Process & { send: Function }} */ (process).send({ open: wss.clients.size });
    }
  });
}

/** @type {import('node:inspector').Session | null} */
let session = null;
/** @param {string} method @param {object} [params] @returns {Promise<any>} */
const post = (method, params) =>
  new Promise((resolve, reject) =>
    /** @type {import('node:inspector').Session} */ (session).post(method, params, (err, res) => (err ? reject(err) : resolve(res))),
  );

/** Starts V8's sampling profiler in this (server) process. */
async function profileStart() {
  const inspector = await import('node:inspector');
  session = new inspector.Session();
  session.connect();
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: 50 });
  await post('Profiler.start');
  /** @type {NodeJS.Process & { send: Function }} */ (process).send({ profiling: true });
}

/**
 * Stops the profiler; self time per function (microseconds, sampled), idle time left out.
 * @returns {Promise<{ busyUs: number, self: [string, number][] }>}
 */
async function profileStop() {
  /** @type {{ profile: { nodes: { id: number, callFrame: { functionName: string, url: string, lineNumber: number } }[], samples: number[], timeDeltas: number[] } }} */
  const { profile } = await post('Profiler.stop');
  /** @type {import('node:inspector').Session} */ (session).disconnect();
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  /** @type {Map<string, number>} */
  const self = new Map();
  let busyUs = 0;
  profile.samples.forEach((id, i) => {
    const { functionName, url, lineNumber } = /** @type {{ functionName: string, url: string, lineNumber: number }} */ (byId.get(id));
    if (functionName === '(idle)') return;
    const dt = profile.timeDeltas[i + 1] ?? 0; // a sample's time runs until the next one
    const file = url.includes('wasm') && !url.endsWith('.js') ? 'wasm' : url.replace(/^.*\/(node_modules|js|bench)\//, '$1/').replace(/^node:/, '');
    const name = file ? `${functionName || '(anonymous)'} ${file}:${lineNumber + 1}` : functionName;
    self.set(name, (self.get(name) ?? 0) + dt);
    busyUs += dt;
  });
  return { busyUs, self: [...self].sort((a, b) => b[1] - a[1]) };
}

// ---------------------------------------------------------------- client (parent) side

/** @param {Kind} kind @param {{ parts?: boolean }} [options] */
async function startServer(kind, options = {}) {
  const env = options.parts ? { ...process.env, SOCKET_LEASE_BENCH_PARTS: '1' } : process.env;
  const child = fork(SELF, ['--serve', kind], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env });
  const port = await new Promise((resolve, reject) => {
    child.once('message', (/** @type {any} */ m) => resolve(m.ready));
    child.once('exit', (code) => reject(new Error(`${kind} server exited with ${code}`)));
  });
  /** @param {'mem' | 'cpu' | 'open' | 'profile-start' | 'profile-stop' | 'parts'} cmd */
  const ask = (cmd) =>
    new Promise((resolve) => {
      child.once('message', (/** @type {any} */ m) => resolve(m));
      child.send({ cmd });
    });
  const labels = { bare: 'bare ws', guarded: 'guarded (LeaseRegistry)', 'guard-map-store': 'guard over a Map store' };
  return {
    kind,
    label: labels[kind],
    url: `ws://127.0.0.1:${port}/ws`,
    child,
    memory: /** @type {() => Promise<{ mem: { heap: number, js: number, external: number }, open: number }>} */ (() => ask('mem')),
    /** Sockets the server holds open now (its ws server's client set). */
    open: async () => /** @type {{ open: number }} */ (await ask('open')).open,
    /** CPU microseconds the server process has used so far (every thread, /proc). */
    cpu: () => processCpuUs(/** @type {number} */ (child.pid)),
    /** CPU microseconds so far: user + system, and user alone. */
    cpuBoth: async () => /** @type {{ cpu: number, user: number }} */ (await ask('cpu')),
    profileStart: () => ask('profile-start'),
    /** Median wall time (us) of each timed part since the last call, and how many. */
    parts: async () => /** @type {{ parts: Record<'upgrade' | 'closed' | 'message', { n: number, us: number }> }} */ (await ask('parts')).parts,
    profileStop: async () => /** @type {{ profile: { busyUs: number, self: [string, number][] } }} */ (await ask('profile-stop')).profile,
    cycles: 0,
  };
}

let userSeq = 0;
/** Opens `n` sockets and keeps them; returns a function closing them all. */
async function openMany(/** @type {string} */ url, /** @type {number} */ n) {
  /** @type {WebSocket[]} */
  const sockets = [];
  for (let i = 0; i < n; i += 50) {
    await Promise.all(
      Array.from(
        { length: Math.min(50, n - i) },
        () =>
          new Promise((resolve, reject) => {
            const ws = new WebSocket(`${url}?user=m${userSeq++ % 200}`);
            ws.once('open', () => {
              sockets.push(ws);
              resolve(undefined);
            });
            ws.once('error', reject);
          }),
      ),
    );
  }
  return () => Promise.all(sockets.map((ws) => new Promise((resolve) => (ws.once('close', resolve), ws.close()))));
}

async function main() {
  const { values } = parseArgs({
    options: {
      serve: { type: 'string' },
      'registry-memory': { type: 'boolean' },
      'time-ms': { type: 'string', default: '1000' },
      batch: { type: 'string', default: '8' },
      rounds: { type: 'string', default: '12' },
      open: { type: 'string', default: '4000' },
      only: { type: 'string' },
      top: { type: 'string', default: '20' },
      json: { type: 'string' },
    },
  });
  if (values.serve === 'bare' || values.serve === 'guarded' || values.serve === 'guard-map-store') return serve(values.serve);
  if (values['registry-memory']) return registryMemory();
  const timeMs = Number(values['time-ms']);
  const batch = Number(values.batch);
  const rounds = Number(values.rounds);
  const openCount = Number(values.open);
  if (values.only === 'profile') return profile({ timeMs, batch, top: Number(values.top) });
  if (values.only === 'parts') return timeParts({ timeMs, batch, rounds });
  if (values.only !== 'memory') await churn({ timeMs, batch, rounds, json: values.json });
  if (values.only !== 'churn') await memory(openCount);
}

/**
 * Runs batches of `batch` concurrent cycles against one server for `ms`.
 * @param {{ url: string }} s
 * @param {number} ms
 * @param {number} batch
 * @param {number[]} [latencies]  each batch's wall time (ms) is pushed here
 * @returns {Promise<{ cycles: number, ms: number }>}
 */
async function drive(s, ms, batch, latencies) {
  let cycles = 0;
  const t0 = performance.now();
  const end = t0 + ms;
  for (let t = t0; t < end; ) {
    await Promise.all(Array.from({ length: batch }, () => cycle(s.url)));
    const t1 = performance.now();
    latencies?.push(t1 - t);
    t = t1;
    cycles += batch;
  }
  return { cycles, ms: performance.now() - t0 };
}

/**
 * Server CPU per cycle with every server driven at once: each batch is `batch` cycles
 * against each server, so they serve at the same rate, at the same moments, under the
 * same outside load (and scheduling on a shared machine, which makes the CPU time of one
 * cycle vary by 2x from second to second). Returns per-round CPU microseconds per cycle.
 * @param {Awaited<ReturnType<typeof startServer>>[]} servers
 * @param {number} ms
 * @param {number} batch
 */
async function together(servers, ms, batch) {
  const c0 = await Promise.all(servers.map((s) => s.cpuBoth()));
  let cycles = 0;
  for (const end = performance.now() + ms; performance.now() < end; cycles += batch) {
    await Promise.all(servers.flatMap((s) => Array.from({ length: batch }, () => cycle(s.url))));
  }
  const c1 = await Promise.all(servers.map((s) => s.cpuBoth()));
  return servers.map((s, i) => ({ kind: s.kind, cpu: (c1[i].cpu - c0[i].cpu) / cycles, user: (c1[i].user - c0[i].user) / cycles }));
}

/**
 * The churn comparison: churn-client.mjs's `compare`, as for every host (churn in short
 * interleaved slices, CPU with every server driven at once, medians of the rounds). The
 * guard over a Map store runs beside the guarded server: the two differ only by the store.
 * @param {{ timeMs: number, batch: number, rounds: number, json?: string }} options
 */
async function churn({ timeMs, batch, rounds, json }) {
  const servers = [await startServer('bare'), await startServer('guarded'), await startServer('guard-map-store')];
  try {
    await compare(servers, {
      title: `node ${process.version}: bare ws, the guard (LeaseRegistry), the guard over a Map store`,
      timeMs,
      batch,
      rounds,
      json,
      cpuMethod: '/proc/<pid>/task/*/schedstat, every thread',
    });
  } finally {
    for (const s of servers) s.child.kill();
  }
}

/**
 * The guard's synchronous work per cycle, timed inside the servers (wall time of each
 * call, median per round; a call this short is rarely preempted, so the median is the
 * CPU it takes): the whole upgrade (ws's handshake, the host's connection listener and,
 * guarded, the admission, the lease and the socket's listeners) against the bare
 * server's same upgrade, plus the release on close and the touch check per message,
 * which only the guard makes. Allocation the guard adds (collected later) and its
 * listeners' dispatch are not in it; the CPU comparison of `--only churn` has them.
 * @param {{ timeMs: number, batch: number, rounds: number }} options
 */
async function timeParts({ timeMs, batch, rounds }) {
  const servers = [
    await startServer('bare', { parts: true }),
    await startServer('guarded', { parts: true }),
    await startServer('guard-map-store', { parts: true }),
  ];
  try {
    await together(servers, 1000, batch);
    for (const s of servers) await s.parts();
    console.log(`node ${process.version}: synchronous parts per cycle, timed in the servers (median per round of ${timeMs} ms, all servers at once)`);
    /** @type {Record<string, number[]>} */
    const guardUs = { guarded: [], 'guard-map-store': [] };
    for (let round = 0; round < rounds; round++) {
      await together(servers, timeMs, batch);
      const [bare, ...guarded] = await Promise.all(servers.map((s) => s.parts()));
      const line = [`bare upgrade ${bare.upgrade.us.toFixed(1)}`];
      guarded.forEach((p, i) => {
        const kind = servers[i + 1].kind;
        const own = p.upgrade.us - bare.upgrade.us + p.closed.us + p.message.us;
        guardUs[kind].push(own);
        line.push(
          `${kind}: upgrade ${p.upgrade.us.toFixed(1)}, close ${p.closed.us.toFixed(2)}, message ${p.message.us.toFixed(2)} -> guard ${own.toFixed(1)}`,
        );
      });
      console.log(`  round ${String(round + 1).padStart(2)}: ${line.join('; ')} (us)`);
    }
    for (const [kind, xs] of Object.entries(guardUs))
      console.log(
        `  ${kind}: guard's synchronous work ${median(xs).toFixed(1)} us per cycle (median of the rounds; ${Math.min(...xs).toFixed(1)} to ${Math.max(...xs).toFixed(1)})`,
      );
  } finally {
    for (const s of servers) s.child.kill();
  }
}

/**
 * Where each server's CPU goes: V8's sampling profiler in each server process while the
 * client runs cycles against it alone, self time per function divided by the cycles
 * served (idle time left out). The profiler itself slows everything down a little, the
 * same for every server.
 * @param {{ timeMs: number, batch: number, top: number }} options
 */
async function profile({ timeMs, batch, top }) {
  const servers = [await startServer('bare'), await startServer('guarded'), await startServer('guard-map-store')];
  try {
    for (const s of servers) await drive(s, 1000, batch); // warm-up: everything compiled
    console.log(
      `node ${process.version}: server self time per cycle (V8 sampling profiler, 50 us interval, ${timeMs} ms of ${batch} concurrent cycles per server)`,
    );
    for (const s of servers) {
      await s.profileStart();
      const cpu0 = await s.cpu();
      const n = (await drive(s, timeMs, batch)).cycles;
      const cpu1 = await s.cpu();
      const { busyUs, self } = await s.profileStop();
      console.log(
        `\n${s.kind}: ${n} cycles, ${((cpu1 - cpu0) / n).toFixed(0)} us CPU per cycle (process.cpuUsage, profiler included), ${(busyUs / n).toFixed(0)} us sampled`,
      );
      for (const [name, us] of self.slice(0, top))
        console.log(`  ${(us / n).toFixed(1).padStart(6)} us  ${((100 * us) / busyUs).toFixed(1).padStart(5)}%  ${name.slice(0, 110)}`);
    }
  } finally {
    for (const s of servers) s.child.kill();
  }
}

/** Server memory per open connection, each kind in a fresh process. @param {number} openCount */
async function memory(openCount) {
  console.log(`\nserver memory per open connection (${openCount} held at once, fresh server processes, after gc):`);
  /** @type {Record<string, number>} */
  const perSocket = {};
  for (const kind of /** @type {const} */ (['bare', 'guarded', 'guard-map-store'])) {
    const s = await startServer(kind);
    try {
      // Warm-up: code paths compiled, first buffers and (for the registry) wasm pages.
      await (await openMany(s.url, 200))();
      await waitOpen(s, 0);
      const before = await s.memory();
      // The noise floor: the same measurement again, with nothing in between.
      const again = await s.memory();
      const closeAll = await openMany(s.url, openCount);
      await waitOpen(s, openCount);
      const after = await s.memory();
      perSocket[kind] = (after.mem.heap - before.mem.heap) / openCount;
      const noise = Math.abs(again.mem.heap - before.mem.heap) / openCount;
      const js = (after.mem.js - before.mem.js) / openCount;
      const external = (after.mem.external - before.mem.external) / openCount;
      console.log(
        `  ${kind.padEnd(16)}  ${(perSocket[kind] / 1024).toFixed(2)} KiB   (JS heap ${js.toFixed(0)} B + external ${external.toFixed(0)} B, incl. wasm memory; noise floor ${noise.toFixed(0)} B)`,
      );
      await closeAll();
    } finally {
      s.child.kill();
    }
  }
  const extra = perSocket.guarded - perSocket.bare;
  console.log(`  guarded - bare    ${extra >= 0 ? '+' : ''}${extra.toFixed(0)} B per socket (lease, bookkeeping, listeners)`);
  if (extra < 0) console.log('  (negative: below what this measurement can resolve on this machine; run again)');
  const reg = fork(SELF, ['--registry-memory'], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await new Promise((resolve) => reg.once('exit', resolve));
}

/**
 * Until the server holds exactly `n` sockets (its last upgrades or closes have settled).
 * @param {{ open: () => Promise<number>, kind: string }} s
 * @param {number} n
 */
async function waitOpen(s, n) {
  for (let i = 0; i < 1000; i++) {
    if ((await s.open()) === n) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`${s.kind}: the server does not hold ${n} sockets`);
}

/** Bytes per lease of the wasm registry itself (its memory is counted as `external`). */
async function registryMemory() {
  const { LeaseRegistry } = await import('socket-lease');
  const n = 100_000;
  const registry = new LeaseRegistry({ perUserLimit: n });
  const gc = /** @type {() => void} */ (globalThis.gc);
  gc();
  const before = process.memoryUsage().external;
  for (let i = 0; i < n; i++) registry.acquire(`user${i % 1000}`);
  gc();
  const after = process.memoryUsage().external;
  console.log(`  wasm registry     ${((after - before) / n).toFixed(0)} B per lease (${n} leases, 1000 users; wasm memory grown, not just used)`);
}

await main();
