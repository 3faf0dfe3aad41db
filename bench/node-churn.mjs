// `npm run bench`: connection churn through the socket-lease guard versus the same `ws`
// server without it, in one run, and server memory per open connection.
//
// Each server runs in its own child process (so it has a core to itself on a 2-core
// machine and its memory is measured alone); this process is the client. One measured
// operation is BATCH concurrent cycles of connect (HTTP upgrade) -> send -> echo -> close.
// Loopback only. Target from the issue: guarded churn >= 90% of bare churn.
//
//   node bench/node-churn.mjs [--time-ms 4000] [--batch 8] [--rounds 2] [--open 1000]
import http from 'node:http';
import { fork } from 'node:child_process';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Bench } from 'tinybench';
import WebSocket, { WebSocketServer } from 'ws';

const SELF = fileURLToPath(import.meta.url);

// ---------------------------------------------------------------- server (child) side

/** @param {'bare' | 'guarded'} kind */
async function serve(kind) {
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  /** @type {WebSocketServer} */
  let wss;
  if (kind === 'guarded') {
    const { createLeaseGuard } = await import('socket-lease/node');
    const guard = createLeaseGuard({
      userId: (req) => new URL(req.url ?? '/', 'http://bench').searchParams.get('user'),
      // Limits high enough that the memory run (many open sockets) is never refused:
      // this measures the cost of the bookkeeping, not of refusals.
      registry: { perUserLimit: 100_000 },
      logLevel: 'silent',
    });
    guard.attach(server, { path: '/ws' });
    wss = /** @type {WebSocketServer} */ (/** @type {unknown} */ (guard.wss));
    wss.on('connection', (ws) => {
      const leaseId = guard.leaseOf(ws)?.id;
      ws.on('message', (data) => ws.send(JSON.stringify({ type: 'echo', data: data.toString(), leaseId })));
    });
  } else {
    wss = new WebSocketServer({ noServer: true });
    server.on('upgrade', (req, socket, head) => {
      socket.on('error', () => {});
      wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
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
    if (msg.cmd === 'mem') {
      // Two collections: the first may only schedule finalizers.
      const gc = /** @type {() => void} */ (globalThis.gc);
      gc();
      gc();
      const m = process.memoryUsage();
      /** @type {NodeJS.Process & { send: Function }} */ (process).send({ mem: { heap: m.heapUsed + m.external + m.arrayBuffers }, open: wss.clients.size });
    }
  });
}

// ---------------------------------------------------------------- client (parent) side

/**
 * @param {'bare' | 'guarded'} kind
 */
async function startServer(kind) {
  const child = fork(SELF, ['--serve', kind], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const port = await new Promise((resolve, reject) => {
    child.once('message', (/** @type {any} */ m) => resolve(m.ready));
    child.once('exit', (code) => reject(new Error(`${kind} server exited with ${code}`)));
  });
  const memory = () =>
    new Promise((resolve) => {
      child.once('message', (/** @type {any} */ m) => resolve(m));
      child.send({ cmd: 'mem' });
    });
  return { kind, url: `ws://127.0.0.1:${port}/ws`, child, memory: /** @type {() => Promise<{ mem: { heap: number }, open: number }>} */ (memory) };
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
      'time-ms': { type: 'string', default: '4000' },
      batch: { type: 'string', default: '8' },
      rounds: { type: 'string', default: '2' },
      open: { type: 'string', default: '1000' },
    },
  });
  if (values.serve === 'bare' || values.serve === 'guarded') return serve(values.serve);
  const timeMs = Number(values['time-ms']);
  const batch = Number(values.batch);
  const rounds = Number(values.rounds);
  const openCount = Number(values.open);

  const servers = [await startServer('bare'), await startServer('guarded')];
  try {
    console.log(`node ${process.version}, ${batch} concurrent cycles per operation, ${rounds} rounds of ${timeMs} ms per server`);
    /** @type {Record<string, number[]>} */
    const rates = { bare: [], guarded: [] };
    /** @type {Record<string, number[]>} */
    const p50 = { bare: [], guarded: [] };
    for (let round = 0; round < rounds; round++) {
      // Alternate the order each round so warm-up effects do not favour one server.
      const order = round % 2 ? [...servers].reverse() : servers;
      const bench = new Bench({ time: timeMs, warmupTime: 500 });
      for (const s of order) bench.add(s.kind, () => Promise.all(Array.from({ length: batch }, () => cycle(s.url))).then(() => {}));
      await bench.run();
      for (const task of bench.tasks) {
        const r = task.result;
        if (r.state !== 'completed') throw new Error(`${task.name}: ${r.state} ${'error' in r ? String(r.error) : ''}`);
        rates[task.name].push(r.throughput.mean * batch);
        p50[task.name].push(r.latency.p50);
      }
    }
    const mean = (/** @type {number[]} */ xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const bare = mean(rates.bare);
    const guarded = mean(rates.guarded);
    console.log('\nconnection churn (connect + upgrade + echo + close):');
    console.log(`  bare ws        ${bare.toFixed(0)} cycles/s   (median batch ${mean(p50.bare).toFixed(2)} ms)`);
    console.log(`  guarded        ${guarded.toFixed(0)} cycles/s   (median batch ${mean(p50.guarded).toFixed(2)} ms)`);
    console.log(`  guarded / bare ${((guarded / bare) * 100).toFixed(1)}%   (target >= 90%)`);

    console.log(`\nserver memory per open connection (${openCount} open, after gc):`);
    for (const s of servers) {
      const before = await s.memory();
      const closeAll = await openMany(s.url, openCount);
      // Let the last upgrades settle on the server before measuring.
      await new Promise((resolve) => setTimeout(resolve, 200));
      const after = await s.memory();
      if (after.open < openCount) throw new Error(`${s.kind}: only ${after.open} sockets open`);
      // RSS is left out: on a busy machine it moves by more than the whole difference.
      const heap = (after.mem.heap - before.mem.heap) / openCount;
      console.log(`  ${s.kind.padEnd(8)}  ${(heap / 1024).toFixed(2)} KiB (JS heap + external + ArrayBuffers, incl. wasm memory)`);
      await closeAll();
    }
  } finally {
    for (const s of servers) s.child.kill();
  }
}

await main();
