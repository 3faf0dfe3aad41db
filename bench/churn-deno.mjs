// `node bench/churn-deno.mjs`: connection churn through socket-lease/deno versus the same
// Deno server without it, in one run. The method is bench/node-churn.mjs's, with Deno
// servers:
//
//   - two servers, each a Deno child process running this file with --serve: `bare`
//     (Deno.serve + Deno.upgradeWebSocket, echoing) and `guarded` (the same through
//     createDenoLease with an in-process LeaseRegistry). Both do the same user-id work
//     (userOf: identity is the host's cost, so the bare server reads the user and refuses
//     a request without one too) and echo the same JSON (the guarded one with the lease
//     id, read through the adapter, as a host that uses leases does);
//   - the client is this Node process (`ws`): one cycle is connect + HTTP upgrade -> send
//     -> echo -> close, `--batch` cycles at a time;
//   - churn: per round, each server in turn in a palindrome (A B B A, half of --time-ms
//     each, the order alternating between rounds); cycles per second as the client sees
//     them; ratio guarded / bare within the round (target >= 0.95, median of the rounds);
//   - CPU: per round, both servers driven at once for --time-ms (same rate, same moments,
//     same outside load); each server's CPU time per cycle, read by this process from
//     /proc/<pid> (any runtime: the run time of all its threads in task/*/schedstat, in
//     ns, rather than stat's 10 ms ticks); guarded - bare within the round (target
//     <= 10 us, median).
//
// Loopback only. The servers run with --allow-net=127.0.0.1 --allow-env --allow-read=.:
// read only because this file imports socket-lease/deno dynamically (it also runs under
// Node, which cannot parse the adapter's source-phase wasm import), and Deno checks
// dynamic imports against --allow-read.
//
//   node bench/churn-deno.mjs [--time-ms 2000] [--batch 8] [--rounds 9] [--json PATH]

/** @type {any} Deno's namespace when this file runs as a server */
const Deno = /** @type {any} */ (globalThis).Deno;

/**
 * The user id of a request, the same cheap way in both servers (the client always sends
 * `?user=<id>` as the whole query).
 * @param {Request} req
 */
function userOf(req) {
  const url = req.url;
  const at = url.indexOf('?user=');
  return at === -1 ? null : url.slice(at + 6) || null;
}

// ---------------------------------------------------------------- server (Deno) side

/** @param {'bare' | 'guarded'} kind */
async function serve(kind) {
  /** @type {(req: Request) => Response | Promise<Response>} */
  let handler;
  if (kind === 'guarded') {
    const { createDenoLease } = await import('socket-lease/deno');
    // A limit high enough that no cycle is refused: this measures the bookkeeping.
    const lease = createDenoLease({ userId: userOf, registry: { perUserLimit: 100_000 }, logLevel: 'silent' });
    const hooks = {
      /** @param {WebSocket} ws @param {MessageEvent} event */
      onMessage(ws, event) {
        ws.send(JSON.stringify({ type: 'echo', data: event.data, leaseId: lease.leaseIdOf(ws) }));
      },
    };
    handler = (req) => lease.upgrade(req, hooks);
  } else {
    /** @this {WebSocket} @param {MessageEvent} event */
    const onMessage = function (event) {
      this.send(JSON.stringify({ type: 'echo', data: event.data, leaseId: null }));
    };
    handler = (req) => {
      // The same identity work as the guarded server (see userOf).
      if (userOf(req) === null) return new Response(null, { status: 401 });
      const { socket, response } = Deno.upgradeWebSocket(req);
      socket.addEventListener('message', onMessage);
      return response;
    };
  }
  Deno.serve({ hostname: '127.0.0.1', port: 0, onListen: (/** @type {{ port: number }} */ { port }) => console.log(`ready ${port}`) }, handler);
}

// ---------------------------------------------------------------- client (Node) side


/** The targets, as for the Node host. */
const TARGETS = Object.freeze({ overheadUs: 10, churnRatio: 0.95 });

async function client() {
  const { spawn } = await import('node:child_process');
  const fs = await import('node:fs');
  const path = await import('node:path');
  const { parseArgs } = await import('node:util');
  const { fileURLToPath } = await import('node:url');
  const { cycle, median, processCpuUs: cpuUs } = await import('./churn-client.mjs');

  const { values } = parseArgs({
    options: {
      'time-ms': { type: 'string', default: '2000' },
      batch: { type: 'string', default: '8' },
      rounds: { type: 'string', default: '9' },
      json: { type: 'string' },
    },
  });
  const timeMs = Number(values['time-ms']);
  const batch = Number(values.batch);
  const rounds = Number(values.rounds);
  const self = fileURLToPath(import.meta.url);
  const root = path.resolve(path.dirname(self), '..');
  const deno = path.join(root, 'node_modules/.bin/deno');



  /** @param {'bare' | 'guarded'} kind */
  async function startServer(kind) {
    const child = spawn(deno, ['run', '--allow-net=127.0.0.1', '--allow-env', '--allow-read=.', self, '--serve', kind], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    const port = await new Promise((resolve, reject) => {
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d) => {
        out += d;
        const m = /ready (\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.once('exit', (code) => reject(new Error(`${kind} server exited with ${code}`)));
    });
    return { kind, url: `ws://127.0.0.1:${port}/ws`, pid: /** @type {number} */ (child.pid), stop: () => child.kill('SIGKILL') };
  }



  /** Batches of `batch` concurrent cycles against one server for `ms`. @param {string} url @param {number} ms */
  async function drive(url, ms) {
    let cycles = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < ms) {
      await Promise.all(Array.from({ length: batch }, () => cycle(url)));
      cycles += batch;
    }
    return { cycles, ms: performance.now() - t0 };
  }

  const servers = [await startServer('bare'), await startServer('guarded')];
  try {
    const version = await new Promise((resolve) => {
      const v = spawn(deno, ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      v.stdout.setEncoding('utf8').on('data', (d) => (out += d));
      v.once('exit', () => resolve(out.split('\n')[0]));
    });
    console.log(`${version}, client node ${process.version}; ${batch} concurrent cycles per batch, ${rounds} rounds of ${timeMs} ms per server (after a warm-up)`);
    for (const s of servers) await drive(s.url, 1000); // JIT warm-up, first buffers and wasm pages
    /** @type {Record<string, number[]>} */
    const rates = { bare: [], guarded: [] };
    /** @type {Record<string, number[]>} */
    const cpu = { bare: [], guarded: [] };
    /** @type {number[]} */
    const ratios = [];
    /** @type {number[]} */
    const overheads = [];
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 ? [servers[1], servers[0]] : [servers[0], servers[1]];
      /** @type {Map<string, { cycles: number, ms: number }>} */
      const sums = new Map(servers.map((s) => [s.kind, { cycles: 0, ms: 0 }]));
      for (const s of [...order, ...[...order].reverse()]) {
        const { cycles, ms } = await drive(s.url, timeMs / 2);
        const sum = /** @type {{ cycles: number, ms: number }} */ (sums.get(s.kind));
        sum.cycles += cycles;
        sum.ms += ms;
      }
      for (const [kind, sum] of sums) rates[kind].push((sum.cycles * 1000) / sum.ms);
      // CPU: both at once, half the batch each.
      const c0 = servers.map((s) => cpuUs(s.pid));
      let cycles = 0;
      const half = Math.max(1, Math.round(batch / 2));
      for (const end = performance.now() + timeMs; performance.now() < end; cycles += half) {
        await Promise.all(servers.flatMap((s) => Array.from({ length: half }, () => cycle(s.url))));
      }
      const c1 = servers.map((s) => cpuUs(s.pid));
      servers.forEach((s, i) => cpu[s.kind].push((c1[i] - c0[i]) / cycles));
      ratios.push(/** @type {number} */ (rates.guarded.at(-1)) / /** @type {number} */ (rates.bare.at(-1)));
      overheads.push(/** @type {number} */ (cpu.guarded.at(-1)) - /** @type {number} */ (cpu.bare.at(-1)));
      console.log(
        `  round ${String(round + 1).padStart(2)}: bare ${rates.bare.at(-1)?.toFixed(0)}/s ${cpu.bare.at(-1)?.toFixed(1)} us, ` +
          `guarded ${rates.guarded.at(-1)?.toFixed(0)}/s ${cpu.guarded.at(-1)?.toFixed(1)} us; ratio ${ratios.at(-1)?.toFixed(3)}, overhead ${overheads.at(-1)?.toFixed(1)} us`,
      );
    }
    const ratio = median(ratios);
    const overheadUs = median(overheads);
    const summary = {
      deno: version,
      batch,
      rounds,
      timeMs,
      bare: { cyclesPerS: median(rates.bare), cpuUsPerCycle: median(cpu.bare) },
      guarded: { cyclesPerS: median(rates.guarded), cpuUsPerCycle: median(cpu.guarded) },
      churnRatio: ratio,
      overheadUs,
      targets: TARGETS,
      met: { churnRatio: ratio >= TARGETS.churnRatio, overheadUs: overheadUs <= TARGETS.overheadUs },
    };
    console.log(`bare     ${summary.bare.cyclesPerS.toFixed(0)} cycles/s, server CPU ${summary.bare.cpuUsPerCycle.toFixed(1)} us/cycle (medians)`);
    console.log(`guarded  ${summary.guarded.cyclesPerS.toFixed(0)} cycles/s, server CPU ${summary.guarded.cpuUsPerCycle.toFixed(1)} us/cycle (medians)`);
    console.log(`churn guarded / bare: ${ratio.toFixed(3)} (target >= ${TARGETS.churnRatio}): ${summary.met.churnRatio ? 'met' : 'NOT MET'}`);
    console.log(`guard CPU per cycle over bare Deno: ${overheadUs.toFixed(1)} us (target <= ${TARGETS.overheadUs} us): ${summary.met.overheadUs ? 'met' : 'NOT MET'}`);
    if (values.json) fs.writeFileSync(values.json, `${JSON.stringify(summary, null, 2)}\n`);
  } finally {
    for (const s of servers) s.stop();
  }
}

if (Deno) {
  const at = Deno.args.indexOf('--serve');
  const kind = Deno.args[at + 1];
  if (at === -1 || (kind !== 'bare' && kind !== 'guarded')) throw new Error('under Deno this file is a bench server: --serve bare|guarded');
  await serve(kind);
} else {
  await client();
}
