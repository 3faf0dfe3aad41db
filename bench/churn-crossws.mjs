// Connection churn through socket-lease/crossws versus the same crossws server without it,
// in one run: srvx + crossws's Node adapter (crossws/server/node, as the demo serves), one
// child process per server, this process the client (ws over loopback).
//
// Targets (the same as the Node host's), printed met / NOT MET:
//   (a) the hooks' own server CPU per cycle (connect + upgrade -> send -> echo -> close)
//       at most 10 us over the bare crossws server (median of the per-round differences);
//   (b) guarded churn (cycles/s) at least 0.95 of bare churn (median of the per-round ratios).
//
// A fair comparison: both servers run the same crossws Node adapter with the same ws
// options (maxPayload 64 KiB, crossws's idle ping off: the guarded one pings itself every
// 30 s, which a run this short never reaches), make the same user-id call (userOf; the
// bare one answers 401 without a user, as the guard does) and echo the same JSON (the
// guarded one with the lease id, read through the guard's API). The only difference is
// the lease hooks.
//
// Per round: churn, each server in turn in a palindrome (bare guarded guarded bare, half
// of --time-ms each, the first one alternating between rounds), cycles/s as this client
// sees them; then CPU, both servers driven at once for --time-ms (same rate, same moments,
// same outside load), each server's CPU time (utime + stime of /proc/<pid>/stat, the whole
// process, any runtime) per cycle. /proc counts in clock ticks (1/100 s here): at a few
// thousand cycles per second a 2 s window resolves about 2 us per cycle, so rounds are
// long and the summary is the median round.
//
//   node bench/churn-crossws.mjs [--time-ms 2000] [--batch 8] [--rounds 9]
import { fork } from 'node:child_process';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { cycle, median, statCpuUs } from './churn-client.mjs';

const SELF = fileURLToPath(import.meta.url);
const TARGETS = Object.freeze({ overheadUs: 10, churnRatio: 0.95 });

/**
 * The user of a request, the same cheap way in both servers (identity is the host's cost,
 * not the guard's). The client always sends `?user=<id>` as the whole query.
 * @param {Request} request
 */
function userOf(request) {
  const url = request.url;
  const at = url.indexOf('?user=');
  return at === -1 ? null : url.slice(at + 6) || null;
}

// ---------------------------------------------------------------- server (child) side

/** @param {'bare' | 'guarded'} kind */
async function serveKind(kind) {
  const { serve } = await import('crossws/server/node');
  /** @type {any} */
  let websocket;
  if (kind === 'bare') {
    websocket = {
      upgrade: (/** @type {Request} */ request) => (userOf(request) === null ? new Response(null, { status: 401 }) : undefined),
      message: (/** @type {any} */ peer, /** @type {any} */ message) => peer.send(JSON.stringify({ type: 'echo', data: message.text(), leaseId: null })),
      options: { node: { idleTimeout: 0, serverOptions: { maxPayload: 64 * 1024 } } },
    };
  } else {
    const { createLeaseGuard } = await import('socket-lease/crossws');
    // A limit high enough that nothing is refused: this measures the bookkeeping.
    const guard = createLeaseGuard({ userId: userOf, registry: { perUserLimit: 100_000 }, logLevel: 'silent' });
    const echo = {
      message: (/** @type {any} */ peer, /** @type {any} */ message) =>
        peer.send(JSON.stringify({ type: 'echo', data: message.text(), leaseId: guard.leaseIdOf(peer) })),
    };
    websocket = { ...guard.hooks(echo, { path: '/ws' }), options: { node: guard.nodeOptions() } };
  }
  const server = serve({ port: 0, hostname: '127.0.0.1', silent: true, gracefulShutdown: false, fetch: () => new Response('http'), websocket });
  await server.ready();
  const address = /** @type {import('node:net').AddressInfo} */ (server.node?.server?.address());
  /** @type {any} */ (process).send({ ready: address.port });
  // The parent went away (or is done): exit normally, so --cpu-prof and the like can write.
  process.once('disconnect', () => process.exit(0));
}

// ---------------------------------------------------------------- client (parent) side

/** @param {'bare' | 'guarded'} kind */
async function startServer(kind) {
  const child = fork(SELF, ['--serve', kind], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const port = await new Promise((resolve, reject) => {
    child.once('message', (/** @type {any} */ m) => resolve(m.ready));
    child.once('exit', (code) => reject(new Error(`${kind} server exited with ${code}`)));
  });
  return {
    kind,
    child,
    url: `ws://127.0.0.1:${port}/ws`,
    /** CPU microseconds the server process has used so far (utime + stime, /proc). */
    cpuUs: () => statCpuUs(/** @type {number} */ (child.pid)),
  };
}


/**
 * Batches of `batch` concurrent cycles against one server for `ms`.
 * @param {{ url: string }} s
 * @param {number} ms
 * @param {number} batch
 */
async function drive(s, ms, batch) {
  let cycles = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    await Promise.all(Array.from({ length: batch }, () => cycle(s.url)));
    cycles += batch;
  }
  return { cycles, ms: performance.now() - t0 };
}


async function main() {
  const { values } = parseArgs({
    options: {
      serve: { type: 'string' },
      'time-ms': { type: 'string', default: '2000' },
      batch: { type: 'string', default: '8' },
      rounds: { type: 'string', default: '9' },
    },
  });
  if (values.serve === 'bare' || values.serve === 'guarded') return serveKind(values.serve);
  const timeMs = Number(values['time-ms']);
  const batch = Number(values.batch);
  const rounds = Number(values.rounds);
  const bare = await startServer('bare');
  const guarded = await startServer('guarded');
  try {
    console.log(`node ${process.version}, crossws on srvx (crossws/server/node), ${batch} concurrent cycles per batch, ${rounds} rounds of ${timeMs} ms`);
    for (const s of [bare, guarded]) await drive(s, 1000, batch); // JIT warm-up, first wasm pages
    /** @type {number[]} */ const ratios = [];
    /** @type {number[]} */ const overheads = [];
    /** @type {Record<string, number[]>} */ const rates = { bare: [], guarded: [] };
    /** @type {Record<string, number[]>} */ const cpu = { bare: [], guarded: [] };
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 ? [guarded, bare] : [bare, guarded];
      /** @type {Record<string, { cycles: number, ms: number }>} */
      const sums = { bare: { cycles: 0, ms: 0 }, guarded: { cycles: 0, ms: 0 } };
      for (const s of [...order, ...[...order].reverse()]) {
        const r = await drive(s, timeMs / 2, batch);
        sums[s.kind].cycles += r.cycles;
        sums[s.kind].ms += r.ms;
      }
      const rate = { bare: (sums.bare.cycles * 1000) / sums.bare.ms, guarded: (sums.guarded.cycles * 1000) / sums.guarded.ms };
      rates.bare.push(rate.bare);
      rates.guarded.push(rate.guarded);
      ratios.push(rate.guarded / rate.bare);

      // CPU: both at once, half a batch each.
      const half = Math.max(1, Math.round(batch / 2));
      const c0 = [bare.cpuUs(), guarded.cpuUs()];
      let cycles = 0;
      for (const end = performance.now() + timeMs; performance.now() < end; cycles += half) {
        await Promise.all([bare, guarded].flatMap((s) => Array.from({ length: half }, () => cycle(s.url))));
      }
      const c1 = [bare.cpuUs(), guarded.cpuUs()];
      const us = { bare: (c1[0] - c0[0]) / cycles, guarded: (c1[1] - c0[1]) / cycles };
      cpu.bare.push(us.bare);
      cpu.guarded.push(us.guarded);
      overheads.push(us.guarded - us.bare);
      console.log(
        `  round ${String(round + 1).padStart(2)}: bare ${rate.bare.toFixed(0)}/s ${us.bare.toFixed(1)} us, ` +
          `guarded ${rate.guarded.toFixed(0)}/s ${us.guarded.toFixed(1)} us (${cycles} cycles each in the CPU window)`,
      );
    }
    const overhead = median(overheads);
    const ratio = median(ratios);
    const range = (/** @type {number[]} */ xs, /** @type {number} */ d) => `${Math.min(...xs).toFixed(d)} to ${Math.max(...xs).toFixed(d)}`;
    console.log('\nserver CPU per cycle (utime + stime from /proc; median of the rounds):');
    console.log(`  bare crossws      ${median(cpu.bare).toFixed(1).padStart(6)} us`);
    console.log(`  guarded           ${median(cpu.guarded).toFixed(1).padStart(6)} us   over bare: ${overhead >= 0 ? '+' : ''}${overhead.toFixed(1)} us (rounds: ${range(overheads, 1)})`);
    console.log('churn, cycles/s as the client sees them (median of the rounds):');
    console.log(`  bare crossws      ${median(rates.bare).toFixed(0).padStart(6)} /s`);
    console.log(`  guarded           ${median(rates.guarded).toFixed(0).padStart(6)} /s   / bare: ${ratio.toFixed(3)} (rounds: ${range(ratios, 3)})`);
    console.log('\ntargets (socket-lease/crossws vs the same crossws server without it):');
    console.log(`  CPU per cycle over bare   ${overhead >= 0 ? '+' : ''}${overhead.toFixed(1)} us   target <= ${TARGETS.overheadUs} us   ${overhead <= TARGETS.overheadUs ? 'met' : 'NOT MET'}`);
    console.log(`  guarded / bare churn      ${ratio.toFixed(3)}     target >= ${TARGETS.churnRatio}    ${ratio >= TARGETS.churnRatio ? 'met' : 'NOT MET'}`);
  } finally {
    bare.child.kill();
    guarded.child.kill();
  }
}

await main();
