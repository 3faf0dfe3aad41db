// The client side every connection-churn benchmark shares (bench/node-churn.mjs and
// bench/churn-*.mjs): one WebSocket cycle against the demo protocol, the server's CPU time
// read from /proc, the median the figures are made of, and `compare`, the rounds, summary
// and targets of every host's comparison, so the hosts are measured the same way. Runs in
// Node only: the benchmarks whose servers run under Bun or Deno import it on their client
// side alone.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { median, medianInterval } from './stats.mjs';

let userSeq = 0;
/**
 * One connect -> send -> echo -> close cycle; rejects on anything unexpected. Users rotate
 * over 200, so no cycle is ever refused for a limit.
 * @param {string} url ws://host:port/path
 * @returns {Promise<void>}
 */
export function cycle(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url}?user=u${userSeq++ % 200}`);
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('open', () => ws.send('ping'));
    ws.once('message', (data) => {
      if (JSON.parse(data.toString()).data !== 'ping') reject(new Error('bad echo'));
      ws.close();
    });
    ws.once('close', () => resolve());
  });
}

export { median };

/**
 * utime + stime of a whole process from /proc/<pid>/stat, in microseconds. Counted in
 * 10 ms clock ticks (USER_HZ 100), which is coarse for one cycle: see processCpuUs.
 * @param {number} pid
 */
export function statCpuUs(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // After "pid (comm) " (comm may contain spaces): utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100;
}

/**
 * CPU microseconds a process has used so far, all its threads (a runtime's GC and JIT
 * threads count too): the sum of each thread's run time in
 * /proc/<pid>/task/<tid>/schedstat, in nanoseconds, which resolves a cycle. A thread that
 * exits meanwhile is skipped; without schedstat, /proc/<pid>/stat's ticks.
 * @param {number} pid
 */
export function processCpuUs(pid) {
  let tids;
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return statCpuUs(pid);
  }
  let ns = 0;
  for (const tid of tids) {
    try {
      ns += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread exited meanwhile
    }
  }
  return ns / 1000;
}

/**
 * The first line a runtime's binary prints for `--version` (`1.4.5`, `deno 2.9.6 (...)`).
 * @param {string} bin
 * @returns {Promise<string>}
 */
export function versionOf(bin) {
  return new Promise((resolve) => {
    const p = spawn(bin, ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    p.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    p.once('exit', () => resolve(out.split('\n')[0].trim()));
  });
}

/**
 * The port a bench server under another runtime (Bun, Deno) listens on: it prints
 * `ready <port>` on its stdout once listening.
 * @param {import('node:child_process').ChildProcess} child  spawned with stdout piped
 * @param {string} kind  the server's name, for the error if it exits first
 * @returns {Promise<number>}
 */
export function readyPort(child, kind) {
  return new Promise((resolve, reject) => {
    let out = '';
    /** @type {import('node:stream').Readable} */ (child.stdout).setEncoding('utf8').on('data', (d) => {
      out += d;
      const m = /ready (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`${kind} server exited with ${code}`)));
  });
}

/** Targets of the lifecycle and runtime issues, the same for every host. */
export const TARGETS = Object.freeze({
  /** The adapter's own server CPU per connection cycle over its bare server, microseconds (median). */
  overheadUs: 10,
  /** Guarded churn (cycles/s) over bare churn (median of the per-round ratios). */
  churnRatio: 0.95,
});

/**
 * @typedef {object} ChurnServer
 * @property {string} kind   'bare' for the baseline (the first server), then the guarded ones
 * @property {string} label  how the tables name it
 * @property {string} url    what `cycle` connects to
 * @property {() => number | Promise<number>} cpu  the server process's CPU microseconds so far
 */

/**
 * `batch` concurrent cycles at a time against each of `servers` at once, for `ms`. The
 * server whose cycles start first rotates from batch to batch: started first, a server's
 * cycles met the machine in a different state from the others', and with a fixed order one
 * server's CPU per cycle was off by up to 13 us from identical ones (five servers, three of
 * them identical but for a listener or a header read).
 * @param {ChurnServer[]} servers
 * @param {number} ms
 * @param {number} batch
 * @param {(url: string) => Promise<void>} run  one cycle
 */
export async function drive(servers, ms, batch, run) {
  let cycles = 0;
  const t0 = performance.now();
  const n = servers.length;
  for (let k = 0, end = t0 + ms; performance.now() < end; cycles += batch, k++) {
    /** @type {Promise<void>[]} */
    const started = [];
    for (let j = 0; j < n; j++) {
      const url = servers[(k + j) % n].url;
      for (let i = 0; i < batch; i++) started.push(run(url));
    }
    await Promise.all(started);
  }
  return { cycles, ms: performance.now() - t0 };
}

/**
 * The comparison every churn benchmark makes, the same way for every host. Per round:
 *
 * - churn: every server in turn, cycles per second as this client sees them, the ratio to
 *   the bare server taken within the round. The round is cut into `slices` short slices,
 *   each a palindrome (A B C C B A) whose first server rotates: a burst of outside load on
 *   a shared machine lasts longer than a slice, so it falls on every server alike instead
 *   of on whichever ran during it (with one long turn per server, single rounds swung from
 *   0.74 to 1.19 on a quiet 2-core VM, more than the effect measured).
 * - CPU: every server driven at once (half a batch each), so they serve the same cycles at
 *   the same moments under the same outside load; CPU per cycle from `cpu()`, and the
 *   difference to the bare server within the round.
 *
 * The summary is the median round of each difference and ratio, checked against TARGETS
 * for every guarded server. Prints the rounds and the summary; writes `json` when given.
 * @param {ChurnServer[]} servers  the bare server first
 * @param {{ title: string, timeMs: number, batch: number, rounds: number, slices?: number,
 *   cycle?: (url: string) => Promise<void>, json?: string, machine?: Record<string, unknown>,
 *   cpuMethod: string }} options
 */
export async function compare(servers, options) {
  const { title, timeMs, batch, rounds, json, cpuMethod } = options;
  const run = options.cycle ?? cycle;
  const slices = Math.max(1, options.slices ?? 10);
  console.log(`${title}; ${batch} concurrent cycles per batch, ${rounds} rounds of ${timeMs} ms per server in ${slices} slices (after a warm-up)`);
  for (const s of servers) await drive([s], Math.min(timeMs, 1000), batch, run); // JIT warm-up, first buffers and wasm pages
  /** @type {Record<string, { rate: number[], cpu: number[] }>} */
  const per = Object.fromEntries(servers.map((s) => [s.kind, { rate: [], cpu: [] }]));
  const sliceMs = timeMs / (2 * slices);
  for (let round = 0; round < rounds; round++) {
    /** @type {Map<string, { cycles: number, ms: number }>} */
    const sums = new Map(servers.map((s) => [s.kind, { cycles: 0, ms: 0 }]));
    for (let k = 0; k < slices; k++) {
      const first = (round + k) % servers.length;
      const order = [...servers.slice(first), ...servers.slice(0, first)];
      for (const s of [...order, ...[...order].reverse()]) {
        const { cycles, ms } = await drive([s], sliceMs, batch, run);
        const sum = /** @type {{ cycles: number, ms: number }} */ (sums.get(s.kind));
        sum.cycles += cycles;
        sum.ms += ms;
      }
    }
    for (const [kind, sum] of sums) per[kind].rate.push((sum.cycles * 1000) / sum.ms);
    const c0 = await Promise.all(servers.map((s) => s.cpu()));
    const { cycles } = await drive(servers, timeMs, Math.max(1, Math.round(batch / 2)), run);
    const c1 = await Promise.all(servers.map((s) => s.cpu()));
    servers.forEach((s, i) => {
      per[s.kind].cpu.push((c1[i] - c0[i]) / cycles);
    });
    console.log(
      `  round ${String(round + 1).padStart(2)}: ${servers.map((s) => `${s.kind} ${per[s.kind].rate.at(-1)?.toFixed(0)}/s ${per[s.kind].cpu.at(-1)?.toFixed(1)} us`).join(', ')}`,
    );
  }
  const bare = servers[0].kind;
  const overheads = (/** @type {string} */ kind) => per[kind].cpu.map((us, i) => us - per[bare].cpu[i]);
  const ratios = (/** @type {string} */ kind) => per[kind].rate.map((r, i) => r / per[bare].rate[i]);
  const range = (/** @type {number[]} */ xs, /** @type {number} */ digits) => `${Math.min(...xs).toFixed(digits)} to ${Math.max(...xs).toFixed(digits)}`;
  const signed = (/** @type {number} */ us) => `${us >= 0 ? '+' : ''}${us.toFixed(1)} us`;
  const width = Math.max(...servers.map((s) => s.label.length)) + 2;

  // Each median and its interval computed once, then printed and kept.
  /** @typedef {{ overheadUs: number, ratio: number, overheadMet: boolean, churnRatioMet: boolean, overheadInterval: [number, number], ratioInterval: [number, number] }} Guarded */
  /** @type {Record<string, { cpuUsPerCycle: number, cyclesPerSec: number } & Partial<Guarded>>} */
  const summary = {};
  for (const s of servers) {
    summary[s.kind] = { cpuUsPerCycle: median(per[s.kind].cpu), cyclesPerSec: median(per[s.kind].rate) };
    if (s.kind === bare) continue;
    const overheadUs = median(overheads(s.kind));
    const ratio = median(ratios(s.kind));
    Object.assign(summary[s.kind], {
      overheadUs,
      ratio,
      overheadMet: overheadUs <= TARGETS.overheadUs,
      churnRatioMet: ratio >= TARGETS.churnRatio,
      overheadInterval: medianInterval(overheads(s.kind)),
      ratioInterval: medianInterval(ratios(s.kind)),
    });
  }
  const guardedOf = (/** @type {string} */ kind) => /** @type {Guarded} */ (summary[kind]);

  console.log(`\nserver CPU per connection cycle (${cpuMethod}; median of the rounds):`);
  for (const s of servers) {
    const g = guardedOf(s.kind);
    const extra =
      s.kind === bare
        ? ''
        : `   over bare: ${signed(g.overheadUs)} (rounds: ${range(overheads(s.kind), 1)}; 95% interval of the median: ${g.overheadInterval.map(signed).join(' to ')})`;
    console.log(`  ${s.label.padEnd(width)}${summary[s.kind].cpuUsPerCycle.toFixed(1).padStart(7)} us${extra}`);
  }
  console.log('\nchurn, cycles/s as the client sees them (median of the rounds):');
  for (const s of servers) {
    const g = guardedOf(s.kind);
    const extra =
      s.kind === bare
        ? ''
        : `   / bare: ${g.ratio.toFixed(3)} (rounds: ${range(ratios(s.kind), 3)}; 95% interval of the median: ${g.ratioInterval.map((x) => x.toFixed(3)).join(' to ')})`;
    console.log(`  ${s.label.padEnd(width)}${summary[s.kind].cyclesPerSec.toFixed(0).padStart(7)} /s${extra}`);
  }
  console.log('\ntargets (medians of the per-round differences and ratios):');
  for (const s of servers.slice(1)) {
    const { overheadUs, ratio, overheadMet, churnRatioMet } = guardedOf(s.kind);
    console.log(
      `  ${s.label}: CPU per cycle over bare ${signed(overheadUs)} (target <= ${TARGETS.overheadUs} us: ${overheadMet ? 'met' : 'NOT MET'}); churn / bare ${ratio.toFixed(3)} (target >= ${TARGETS.churnRatio}: ${churnRatioMet ? 'met' : 'NOT MET'})`,
    );
  }
  const guarded = guardedOf(servers[1].kind);
  const result = {
    date: new Date().toISOString(),
    machine: {
      cpu: os.cpus()[0]?.model ?? 'unknown',
      cores: os.cpus().length,
      node: process.version,
      platform: `${process.platform} ${process.arch}`,
      loadavg: os.loadavg().map((x) => Number(x.toFixed(2))),
      ...options.machine,
    },
    method: { rounds, timeMsPerServer: timeMs, batch, slices, cpu: cpuMethod },
    targets: TARGETS,
    overheadUs: guarded.overheadUs,
    overheadMet: guarded.overheadMet,
    churnRatio: guarded.ratio,
    churnRatioMet: guarded.churnRatioMet,
    overheadInterval: guarded.overheadInterval,
    churnRatioInterval: guarded.ratioInterval,
    servers: summary,
    rounds: {
      cpuUsPerCycle: Object.fromEntries(servers.map((s) => [s.kind, per[s.kind].cpu])),
      cyclesPerSec: Object.fromEntries(servers.map((s) => [s.kind, per[s.kind].rate])),
    },
  };
  if (json) {
    fs.mkdirSync(path.dirname(json), { recursive: true });
    fs.writeFileSync(json, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`  (written to ${path.relative(process.cwd(), json)})`);
  }
  return result;
}
