// `npm run bench`: connection churn through the socket-lease guard versus the same `ws`
// server without it, in one run, and server memory per open connection.
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
// A third server runs the same guard over a trivial in-JS store, which separates the
// guard's own cost from the wasm registry's.
//
// Each server runs in its own child process (so it has a core to itself on a 2-core
// machine and its memory is measured alone); this process is the client. One measured
// operation is BATCH concurrent cycles of connect (HTTP upgrade) -> send -> echo -> close.
// Loopback only. Target from the issue: guarded churn >= 90% of bare churn.
//
//   node bench/node-churn.mjs [--time-ms 1500] [--batch 8] [--rounds 8] [--open 4000] [--only churn|memory]
//
// Each round runs every server for --time-ms, in a rotating order; the summary is the
// median round, because a shared 2-core machine has bursts of other load that a mean
// would smear over everything.
import http from 'node:http';
import { fork } from 'node:child_process';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Bench } from 'tinybench';
import WebSocket, { WebSocketServer } from 'ws';

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
      const lease = { id, connectionId: id, runId: `run_${id.slice(5)}`, threadId: `thread_${id.slice(5)}`, userId, acquiredAt: now, touchedAt: now, expiresAt: now + 90_000 };
      return { ok: true, lease, evicted: [], reclaimed: [], reused: false };
    },
    release: (id) => leases.delete(id),
    touch: (id) => leases.has(id),
    sweep: () => [],
  };
}

/** @typedef {'bare' | 'guarded' | 'guard-map-store'} Kind */

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
    wss = /** @type {WebSocketServer} */ (/** @type {unknown} */ (guard.wss));
    wss.on('connection', (ws) => {
      const leaseId = guard.leaseIdOf(ws);
      ws.on('message', (data) => ws.send(JSON.stringify({ type: 'echo', data: data.toString(), leaseId })));
    });
  } else {
    wss = new WebSocketServer({ noServer: true });
    server.on('upgrade', (req, socket, head) => {
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
    });
    wss.on('connection', (ws) => {
      ws.on('message', (data) => ws.send(JSON.stringify({ type: 'echo', data: data.toString(), leaseId: null })));
    });
  }
  server.listen(0, '127.0.0.1', () => {
    const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
    /** @type {NodeJS.Process & { send: Function }} */ (process).send({ ready: port });
  });
  process.on('message', (/** @type {{ cmd: string }} */ msg) => {
    if (msg.cmd === 'cpu') {
      const c = process.cpuUsage();
      /** @type {NodeJS.Process & { send: Function }} */ (process).send({ cpu: c.user + c.system });
    }
    if (msg.cmd === 'mem') {
      // Two collections: the first may only schedule finalizers. (`arrayBuffers` is part
      // of `external`: adding it again would count socket buffers twice.)
      const gc = /** @type {() => void} */ (globalThis.gc);
      gc();
      gc();
      const m = process.memoryUsage();
      /** @type {NodeJS.Process & { send: Function }} */ (process).send({ mem: { heap: m.heapUsed + m.external, js: m.heapUsed, external: m.external }, open: wss.clients.size });
    }
    if (msg.cmd === 'profile-start') void profileStart();
    if (msg.cmd === 'profile-stop') void profileStop().then((profile) => /** @type {NodeJS.Process & { send: Function }} */ (process).send({ profile }));
    if (msg.cmd === 'open') {
      /** @type {NodeJS.Process & { send: Function }} */ (process).send({ open: wss.clients.size });
    }
  });
}

/** @type {import('node:inspector').Session | null} */
let session = null;
/** @param {string} method @param {object} [params] @returns {Promise<any>} */
const post = (method, params) =>
  new Promise((resolve, reject) => /** @type {import('node:inspector').Session} */ (session).post(method, params, (err, res) => (err ? reject(err) : resolve(res))));

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

/** @param {Kind} kind */
async function startServer(kind) {
  const child = fork(SELF, ['--serve', kind], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const port = await new Promise((resolve, reject) => {
    child.once('message', (/** @type {any} */ m) => resolve(m.ready));
    child.once('exit', (code) => reject(new Error(`${kind} server exited with ${code}`)));
  });
  /** @param {'mem' | 'cpu' | 'open' | 'profile-start' | 'profile-stop'} cmd */
  const ask = (cmd) =>
    new Promise((resolve) => {
      child.once('message', (/** @type {any} */ m) => resolve(m));
      child.send({ cmd });
    });
  return {
    kind,
    url: `ws://127.0.0.1:${port}/ws`,
    child,
    memory: /** @type {() => Promise<{ mem: { heap: number, js: number, external: number }, open: number }>} */ (() => ask('mem')),
    /** Sockets the server holds open now (its ws server's client set). */
    open: async () => /** @type {{ open: number }} */ (await ask('open')).open,
    /** CPU microseconds the server process has used so far. */
    cpu: async () => /** @type {{ cpu: number }} */ (await ask('cpu')).cpu,
    profileStart: () => ask('profile-start'),
    profileStop: async () => /** @type {{ profile: { busyUs: number, self: [string, number][] } }} */ (await ask('profile-stop')).profile,
    cycles: 0,
  };
}

let userSeq = 0;
/** One connect -> send -> echo -> close cycle; rejects on anything unexpected. */
function cycle(/** @type {string} */ url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url}?user=u${userSeq++ % 200}`);
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('open', () => ws.send('ping'));
    ws.once('message', (data) => {
      if (JSON.parse(data.toString()).data !== 'ping') reject(new Error('bad echo'));
      ws.close();
    });
    ws.once('close', resolve);
  });
}

/** Opens `n` sockets and keeps them; returns a function closing them all. */
async function openMany(/** @type {string} */ url, /** @type {number} */ n) {
  /** @type {WebSocket[]} */
  const sockets = [];
  for (let i = 0; i < n; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, n - i) }, () =>
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
      'time-ms': { type: 'string', default: '1500' },
      batch: { type: 'string', default: '8' },
      rounds: { type: 'string', default: '8' },
      open: { type: 'string', default: '4000' },
      only: { type: 'string' },
      top: { type: 'string', default: '20' },
    },
  });
  if (values.serve === 'bare' || values.serve === 'guarded' || values.serve === 'guard-map-store') return serve(values.serve);
  if (values['registry-memory']) return registryMemory();
  const timeMs = Number(values['time-ms']);
  const batch = Number(values.batch);
  const rounds = Number(values.rounds);
  const openCount = Number(values.open);
  if (values.only === 'profile') return profile({ timeMs, batch, top: Number(values.top) });
  if (values.only !== 'memory') await churn({ timeMs, batch, rounds });
  if (values.only !== 'churn') await memory(openCount);
}

/** @param {{ timeMs: number, batch: number, rounds: number }} options */
async function churn({ timeMs, batch, rounds }) {
  const servers = [await startServer('bare'), await startServer('guarded'), await startServer('guard-map-store')];
  try {
    console.log(`node ${process.version}, ${batch} concurrent cycles per operation, ${rounds} rounds of ${timeMs} ms per server`);
    /** @type {Record<string, number[]>} */
    const rates = { bare: [], guarded: [], 'guard-map-store': [] };
    /** @type {Record<string, number[]>} */
    const p50 = { bare: [], guarded: [], 'guard-map-store': [] };
    // Server CPU per cycle (warm-up cycles included on both sides of the division): much
    // less sensitive to outside load than throughput, which depends on scheduling.
    /** @type {Record<string, number[]>} */
    const cpuPerCycle = { bare: [], guarded: [], 'guard-map-store': [] };
    for (let round = 0; round < rounds; round++) {
      // Rotate the order each round so neither warm-up nor a burst of outside load
      // always lands on the same server.
      const order = [...servers.slice(round % servers.length), ...servers.slice(0, round % servers.length)];
      const bench = new Bench({ time: timeMs, warmupTime: 500 });
      for (const s of order) {
        bench.add(s.kind, () =>
          Promise.all(Array.from({ length: batch }, () => cycle(s.url))).then(() => {
            s.cycles += batch;
          }),
        );
      }
      const cpuBefore = await Promise.all(servers.map((s) => s.cpu()));
      const cyclesBefore = servers.map((s) => s.cycles);
      await bench.run();
      const cpuAfter = await Promise.all(servers.map((s) => s.cpu()));
      servers.forEach((s, i) => cpuPerCycle[s.kind].push((cpuAfter[i] - cpuBefore[i]) / (s.cycles - cyclesBefore[i])));
      for (const task of bench.tasks) {
        const r = task.result;
        if (r.state !== 'completed') throw new Error(`${task.name}: ${r.state} ${'error' in r ? String(r.error) : ''}`);
        rates[task.name].push(r.throughput.mean * batch);
        p50[task.name].push(r.latency.p50);
      }
      console.log(`  round ${round + 1}: ${Object.entries(rates).map(([k, v]) => `${k} ${v.at(-1)?.toFixed(0)}`).join(', ')} cycles/s`);
    }
    const mean = (/** @type {number[]} */ xs) => {
      const sorted = [...xs].sort((a, b) => a - b);
      const mid = sorted.length >> 1;
      return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    };
    const bare = mean(rates.bare);
    const guarded = mean(rates.guarded);
    const mapped = mean(rates['guard-map-store']);
    console.log('\nconnection churn (connect + upgrade + echo + close), median of the rounds:');
    console.log(`  bare ws                      ${bare.toFixed(0)} cycles/s   (median batch ${mean(p50.bare).toFixed(2)} ms)`);
    console.log(`  guarded (LeaseRegistry)      ${guarded.toFixed(0)} cycles/s   (median batch ${mean(p50.guarded).toFixed(2)} ms)`);
    console.log(`  guard over a Map store       ${mapped.toFixed(0)} cycles/s   (median batch ${mean(p50['guard-map-store']).toFixed(2)} ms)`);
    // Paired within each round (same moment, same outside load), then the median.
    const paired = mean(rates.guarded.map((g, i) => g / rates.bare[i]));
    console.log(`  guarded / bare               ${((guarded / bare) * 100).toFixed(1)}%   (target >= 90%; median of the per-round ratios: ${(paired * 100).toFixed(1)}%)`);
    console.log(`  guard over Map store / bare  ${((mapped / bare) * 100).toFixed(1)}%   (the guard's own cost, without the wasm registry)`);
    console.log('\nserver CPU per cycle (user + system, median of the rounds):');
    const cpuBare = mean(cpuPerCycle.bare);
    for (const kind of Object.keys(cpuPerCycle)) {
      const us = mean(cpuPerCycle[kind]);
      const extra = kind === 'bare' ? '' : `   (+${(us - cpuBare).toFixed(0)} us, ${((us / cpuBare) * 100).toFixed(0)}% of bare)`;
      console.log(`  ${kind.padEnd(16)} ${us.toFixed(0)} us${extra}`);
    }

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
    /** @param {Awaited<ReturnType<typeof startServer>>} s @param {number} ms */
    const drive = async (s, ms) => {
      let n = 0;
      for (const end = performance.now() + ms; performance.now() < end; n += batch) await Promise.all(Array.from({ length: batch }, () => cycle(s.url)));
      return n;
    };
    for (const s of servers) await drive(s, 1000); // warm-up: everything compiled
    console.log(`node ${process.version}: server self time per cycle (V8 sampling profiler, 50 us interval, ${timeMs} ms of ${batch} concurrent cycles per server)`);
    for (const s of servers) {
      await s.profileStart();
      const cpu0 = await s.cpu();
      const n = await drive(s, timeMs);
      const cpu1 = await s.cpu();
      const { busyUs, self } = await s.profileStop();
      console.log(`\n${s.kind}: ${n} cycles, ${((cpu1 - cpu0) / n).toFixed(0)} us CPU per cycle (process.cpuUsage, profiler included), ${(busyUs / n).toFixed(0)} us sampled`);
      for (const [name, us] of self.slice(0, top)) console.log(`  ${(us / n).toFixed(1).padStart(6)} us  ${((100 * us) / busyUs).toFixed(1).padStart(5)}%  ${name.slice(0, 110)}`);
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
