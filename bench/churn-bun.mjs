// `node bench/churn-bun.mjs`: connection churn through socket-lease/bun versus the same
// Bun.serve without it, in one run. The method is bench/node-churn.mjs's, for Bun:
//
//   - two servers, each in its own bun process (this file, run by bun with --serve): bare
//     Bun.serve, and the same with createBunLease (a LeaseRegistry). Both do the same
//     user-id work (userOf, the host's cost: the bare one refuses a request without a
//     user too) and echo the same JSON (the guarded one with the lease id from ws.data).
//     The bare server keeps Bun's defaults (idleTimeout 120 s, sendPings), as a Bun
//     application would; the adapter turns both off and pings itself, which costs
//     nothing in a cycle this short (the heartbeat's cost is in docs/bun.md).
//   - this Node process is the client: connect + upgrade -> send -> echo -> close cycles,
//     `--batch` at a time.
//   - per round: churn (cycles/s as the client sees them) with the servers in turn, in a
//     palindrome (A B B A, half of --time-ms each, the order alternating between rounds);
//     then server CPU per cycle with both servers driven at once (same rate, same
//     moments, same outside load), read by this process from /proc/<pid>/task/*/schedstat
//     (every thread: Bun's HTTP and GC threads count too; see processCpuUs in churn-client.mjs).
//   - the summary is the median round of the ratio guarded / bare (target >= 0.95) and of
//     the difference in CPU per cycle (target <= 10 us), each printed met / NOT MET.
//
// Linux only (/proc); loopback only.
//
//   node bench/churn-bun.mjs [--time-ms 2000] [--batch 8] [--rounds 10] [--json PATH]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);
const ROOT = path.resolve(path.dirname(SELF), '..');
const BUN = path.join(ROOT, 'node_modules/.bin/bun');

/** @typedef {'bare' | 'guarded'} Kind */

// ---------------------------------------------------------------- server side (under bun)

/**
 * The user of a request, the same cheap way in both servers (the client always sends
 * `?user=<id>` as the whole query): identity is the host's cost, not the adapter's.
 * @param {Request} req
 */
function userOf(req) {
  const url = req.url;
  const at = url.indexOf('?user=');
  return at === -1 ? null : url.slice(at + 6) || null;
}

/** @param {Kind} kind */
async function serve(kind) {
  const Bun = /** @type {any} */ (globalThis).Bun;
  /** @type {any} */
  let options;
  if (kind === 'bare') {
    options = {
      fetch(/** @type {Request} */ req, /** @type {any} */ server) {
        const user = userOf(req);
        if (user === null) return new Response(null, { status: 401 });
        return server.upgrade(req, { data: { user } }) ? undefined : new Response(null, { status: 400 });
      },
      websocket: {
        message(/** @type {any} */ ws, /** @type {string} */ message) {
          ws.send(JSON.stringify({ type: 'echo', data: String(message), leaseId: null }));
        },
      },
    };
  } else {
    const { createBunLease } = await import('socket-lease/bun');
    // A limit high enough never to refuse: this measures the bookkeeping, not refusals.
    const lease = createBunLease({ userId: userOf, registry: { perUserLimit: 100_000 }, logLevel: 'silent' });
    options = {
      fetch: (/** @type {Request} */ req, /** @type {any} */ server) => lease.upgrade(req, server),
      websocket: lease.websocket({
        message(ws, message) {
          ws.send(JSON.stringify({ type: 'echo', data: String(message), leaseId: ws.data.lease.leaseId }));
        },
      }),
    };
  }
  const server = Bun.serve({ hostname: '127.0.0.1', port: 0, ...options });
  console.log(`ready ${server.port}`);
}

// ---------------------------------------------------------------- client side (under node)



/** @param {Kind} kind */
async function startServer(kind) {
  const child = spawn(BUN, [SELF, '--serve', kind], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d) => {
      out += d;
      const m = /ready (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`${kind} server exited with ${code}`)));
  });
  return { kind, url: `ws://127.0.0.1:${port}/ws`, child, cpu: () => client.processCpuUs(/** @type {number} */ (child.pid)), stat: () => client.statCpuUs(/** @type {number} */ (child.pid)) };
}

// The shared client side (ws, /proc readers), loaded on the client side only: the servers
// under bun never need it.
/** @type {typeof import('./churn-client.mjs')} */
let client;


/**
 * Batches of `batch` concurrent cycles against each of `servers` at once, for `ms`.
 * @param {{ url: string }[]} servers
 * @param {number} ms
 * @param {number} batch
 */
async function drive(servers, ms, batch) {
  let cycles = 0;
  const t0 = performance.now();
  for (const end = t0 + ms; performance.now() < end; cycles += batch) {
    await Promise.all(servers.flatMap((s) => Array.from({ length: batch }, () => client.cycle(s.url))));
  }
  return { cycles, ms: performance.now() - t0 };
}

/** Targets of the performance issue, as for the Node host. */
const TARGETS = Object.freeze({ overheadUs: 10, churnRatio: 0.95 });

async function main() {
  const { values } = parseArgs({
    options: {
      serve: { type: 'string' },
      'time-ms': { type: 'string', default: '2000' },
      batch: { type: 'string', default: '8' },
      rounds: { type: 'string', default: '10' },
      json: { type: 'string' },
    },
  });
  if (values.serve === 'bare' || values.serve === 'guarded') return serve(values.serve);
  client = await import('./churn-client.mjs');
  const timeMs = Number(values['time-ms']);
  const batch = Number(values.batch);
  const rounds = Number(values.rounds);
  const servers = [await startServer('bare'), await startServer('guarded')];
  const [bare, guarded] = servers;
  try {
    const version = await new Promise((resolve) => {
      const p = spawn(BUN, ['--version'], { stdio: ['ignore', 'pipe', 'inherit'] });
      let v = '';
      p.stdout.setEncoding('utf8').on('data', (d) => (v += d));
      p.once('exit', () => resolve(v.trim()));
    });
    console.log(`bun ${version} servers, node ${process.version} client; ${batch} concurrent cycles per batch, ${rounds} rounds of ${timeMs} ms per server (after a warm-up)`);
    for (const s of servers) await drive([s], 1000, batch); // JIT warm-up, first buffers and wasm pages
    /** @type {Record<Kind, number[]>} */
    const rates = { bare: [], guarded: [] };
    /** @type {Record<Kind, number[]>} */
    const cpuPerCycle = { bare: [], guarded: [] };
    /** @type {Record<Kind, number>} /proc/<pid>/stat over every CPU round, and their cycles */
    const statTotal = { bare: 0, guarded: 0 };
    let statCycles = 0;
    for (let round = 0; round < rounds; round++) {
      // A palindrome (A B B A), its first server alternating between rounds, so neither a
      // warm-up effect nor load that grows or fades during the round favours one server.
      const order = round % 2 ? [guarded, bare] : [bare, guarded];
      const sums = { bare: { cycles: 0, ms: 0 }, guarded: { cycles: 0, ms: 0 } };
      for (const s of [...order, ...[...order].reverse()]) {
        const { cycles, ms } = await drive([s], timeMs / 2, batch);
        sums[s.kind].cycles += cycles;
        sums[s.kind].ms += ms;
      }
      for (const s of servers) rates[s.kind].push((sums[s.kind].cycles * 1000) / sums[s.kind].ms);
      // CPU: both at once, half a batch each, so they serve at the same rate and moments.
      const c0 = servers.map((s) => s.cpu());
      const s0 = servers.map((s) => s.stat());
      const { cycles } = await drive(servers, timeMs, Math.max(1, Math.round(batch / 2)));
      servers.forEach((s, i) => {
        cpuPerCycle[s.kind].push((s.cpu() - c0[i]) / cycles);
        statTotal[s.kind] += s.stat() - s0[i];
      });
      statCycles += cycles;
      console.log(`  round ${String(round + 1).padStart(2)}: ` + servers.map((s) => `${s.kind} ${rates[s.kind].at(-1)?.toFixed(0)}/s ${cpuPerCycle[s.kind].at(-1)?.toFixed(1)} us`).join(', '));
    }
    const overheads = cpuPerCycle.guarded.map((us, i) => us - cpuPerCycle.bare[i]);
    const ratios = rates.guarded.map((r, i) => r / rates.bare[i]);
    const range = (/** @type {number[]} */ xs, /** @type {number} */ digits) => `${Math.min(...xs).toFixed(digits)} to ${Math.max(...xs).toFixed(digits)}`;
    const overhead = client.median(overheads);
    const ratio = client.median(ratios);
    console.log('\nserver CPU per connection cycle (connect + upgrade + send + echo + close; /proc schedstat of every thread; median of the rounds):');
    console.log(`  bare Bun.serve            ${client.median(cpuPerCycle.bare).toFixed(1).padStart(6)} us`);
    console.log(`  socket-lease/bun          ${client.median(cpuPerCycle.guarded).toFixed(1).padStart(6)} us   over bare: ${overhead >= 0 ? '+' : ''}${overhead.toFixed(1)} us (rounds: ${range(overheads, 1)})`);
    console.log(`  (/proc/<pid>/stat utime+stime over all rounds: bare ${(statTotal.bare / statCycles).toFixed(1)} us, guarded ${(statTotal.guarded / statCycles).toFixed(1)} us per cycle)`);
    console.log('\nchurn, cycles/s as the client sees them (median of the rounds):');
    console.log(`  bare Bun.serve            ${client.median(rates.bare).toFixed(0).padStart(6)} /s`);
    console.log(`  socket-lease/bun          ${client.median(rates.guarded).toFixed(0).padStart(6)} /s   / bare: ${ratio.toFixed(3)} (rounds: ${range(ratios, 3)})`);
    const overheadMet = overhead <= TARGETS.overheadUs;
    const ratioMet = ratio >= TARGETS.churnRatio;
    console.log('\ntargets (medians of the per-round differences and ratios):');
    console.log(`  adapter CPU per cycle over bare   ${overhead >= 0 ? '+' : ''}${overhead.toFixed(1)} us   target <= ${TARGETS.overheadUs} us   ${overheadMet ? 'met' : 'NOT MET'}`);
    console.log(`  guarded / bare churn              ${ratio.toFixed(3)}     target >= ${TARGETS.churnRatio}    ${ratioMet ? 'met' : 'NOT MET'}`);
    if (values.json) {
      fs.mkdirSync(path.dirname(values.json), { recursive: true });
      const result = {
        date: new Date().toISOString(),
        machine: { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, bun: version, node: process.version, loadavg: os.loadavg().map((x) => Number(x.toFixed(2))) },
        method: { rounds, timeMsPerServer: timeMs, batch, cpu: '/proc/<pid>/task/*/schedstat' },
        targets: TARGETS,
        overheadUs: overhead,
        overheadMet,
        churnRatio: ratio,
        churnRatioMet: ratioMet,
        rounds: { cpuUsPerCycle: cpuPerCycle, cyclesPerSec: rates },
      };
      fs.writeFileSync(values.json, `${JSON.stringify(result, null, 2)}\n`);
      console.log(`  (written to ${path.relative(process.cwd(), values.json)})`);
    }
  } finally {
    for (const s of servers) s.child.kill();
  }
}

await main();
