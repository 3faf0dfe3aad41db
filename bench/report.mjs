// `npm run bench:report`: rewrites the generated sections of docs/performance.md from the
// last benchmark run: the core's tables from target/bench/core.json (written by
// `npm run bench` / bench/core.mjs), and the Node host's churn section from
// target/bench/node-churn.json (written by `npm run bench` / bench/node-churn.mjs).
// Only the text between `<!-- bench:start -->` and `<!-- bench:end -->` (the core) and
// between `<!-- bench:churn:start -->` and `<!-- bench:churn:end -->` (churn) changes;
// when a section's markers are missing, a section holding them is appended at the end
// (docs/performance.md is created if it does not exist). A section whose result file does
// not exist is left alone, and says so; with neither file there is nothing to report
// (exit status 1). A result file that exists but cannot be read is an error (status 1).
//
//   node bench/report.mjs [--json target/bench/core.json] [--churn-json target/bench/node-churn.json]
//                         [--perf-doc docs/performance.md] [--check] [--churn-only]
//
// --check prints the sections instead of writing them.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { medianInterval } from './stats.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const START = '<!-- bench:start -->';
const END = '<!-- bench:end -->';
const CHURN_START = '<!-- bench:churn:start -->';
const CHURN_END = '<!-- bench:churn:end -->';

const { values } = parseArgs({
  options: {
    json: { type: 'string', default: path.join(ROOT, 'target/bench/core.json') },
    'churn-json': { type: 'string', default: path.join(ROOT, 'target/bench/node-churn.json') },
    'perf-doc': { type: 'string', default: path.join(ROOT, 'docs/performance.md') },
    check: { type: 'boolean', default: false },
    // Only the churn section (a churn run without the core benchmark: bench/node-churn.mjs --json).
    'churn-only': { type: 'boolean', default: false },
  },
});

if (values['churn-only']) {
  const churn = shaped(values['churn-json'], churnSection);
  if (!churn) process.exit(1);
  if (values.check) console.log(churn);
  else writeSection(CHURN_START, CHURN_END, churn, 'churn section', 'Node host: connection churn');
  process.exit(0);
}

/**
 * @typedef {{ id: string, section: string, name: string, value: number, unit: string,
 *   shown: string, target?: string, goal?: string, met?: boolean, note?: string, wall?: number }} Row
 * @typedef {{ date: string, durationSec: number,
 *   machine: { cpu: string, cores: number, memoryGiB: number, node: string, platform: string,
 *     loadavgBefore: number[], loadavgAfter: number[] },
 *   method: { rounds: number, timeMsPerTask: number, batch: number, quick: boolean },
 *   rows: Row[] }} Result
 */
const core = shaped(values.json, coreSection);
const churn = shaped(values['churn-json'], churnSection);
if (!core && !churn) {
  console.error('bench:report: nothing to report: run `npm run bench` first (it writes target/bench/core.json and node-churn.json)');
  process.exit(1);
}
if (values.check) {
  if (core) console.log(core.section);
  if (churn) console.log(`\n${churn}`);
  process.exit(0);
}
if (core) writeSection(START, END, core.section, `core section (${core.met} of ${core.targets} targets met)`, 'The core');
if (churn) writeSection(CHURN_START, CHURN_END, churn, 'churn section', 'Node host: connection churn');

/**
 * `make()`'s section, or status 1 with a clear message when the result file lacks what
 * the section reads (a file from another version of the benchmark, or cut short).
 * @template T
 * @param {string} file @param {() => T} make
 * @returns {T}
 */
function shaped(file, make) {
  try {
    return make();
  } catch (err) {
    if (!(err instanceof TypeError)) throw err;
    console.error(`bench:report: ${path.relative(ROOT, file)} is not what the benchmark writes (${err.message}); run \`npm run bench\` again`);
    process.exit(1);
  }
}

/**
 * A benchmark result file: its parsed JSON, or null (said so) when the file does not
 * exist. Any other failure to read or parse it ends the run with status 1.
 * @param {string} file @param {string} what
 * @returns {any}
 */
function readResult(file, what) {
  let raw;
  try {
    raw = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (/** @type {NodeJS.ErrnoException} */ (err).code === 'ENOENT') {
      console.log(
        `bench:report: no ${path.relative(ROOT, file)} (run \`npm run bench\` to make it); the ${what} of ${path.relative(ROOT, values['perf-doc'])} is left alone`,
      );
      return null;
    }
    console.error(`bench:report: cannot read ${file}: ${/** @type {Error} */ (err).message}`);
    process.exit(1);
  }
  try {
    return JSON.parse(raw);
  } catch (err) {
    console.error(`bench:report: ${file} is not valid JSON (${/** @type {Error} */ (err).message}); run \`npm run bench\` again`);
    process.exit(1);
  }
}

/**
 * The core's section from target/bench/core.json, or null when there is no such result.
 * @returns {{ section: string, met: number, targets: number } | null}
 */
function coreSection() {
  /** @type {Result} */
  const result = readResult(values.json, 'core section');
  if (!result) return null;

  const esc = (/** @type {string} */ s) => s.replace(/\|/g, '\\|');
  const { machine: m, method, rows } = result;
  const targets = rows.filter((r) => r.met !== undefined);
  const met = targets.filter((r) => r.met);
  const missed = targets.filter((r) => !r.met);
  /** @param {Row} r */
  const targetWords = (r) => `${r.goal ?? r.name}: ${r.shown}, target ${r.target}`;

  const out = [];
  out.push(
    '_Generated by `npm run bench:report` from the last `npm run bench` (`target/bench/core.json`); edit `bench/report.mjs`, not this text._',
    '',
    `Measured ${result.date.slice(0, 10)} on ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node} (${m.platform}); ` +
      `load average ${m.loadavgBefore.join(' / ')} before and ${m.loadavgAfter.join(' / ')} after the ${result.durationSec} s run. ` +
      (method.quick
        ? '**Quick smoke run (one short round): the numbers are indicative only.**'
        : `Throughput rows are the median of ${method.rounds} rounds (tinybench, ${method.timeMsPerTask} ms per task per round, batches of ${method.batch} calls, competitors in alternating order; the 0- and 10,000-live pairs rows share their rounds, so each is spread over about a minute), all in one process. ` +
          'Rates and sweep times are per CPU time of the benchmark process (`process.cpuUsage`, user + system of all its threads, so a task\u2019s own background GC counts; each task\u2019s timed phase starts after a full collection, once the collector threads are idle), which other processes inflate less than the wall clock; the wall-clock medians are beside them. ' +
          'The machine is a shared 2-core VM: the same code measured minutes apart moves by up to 2x (natively too: the core alone gave 90 to 150 ns per pair in back-to-back runs), so a row near its target can land on either side of it.'),
    '',
    `**Targets of the performance issue met: ${met.length} of ${targets.length}.**`,
    '',
  );
  if (met.length) out.push(`- Met: ${met.map(targetWords).join('; ')}.`);
  if (missed.length) out.push(`- Not met: ${missed.map(targetWords).join('; ')}.`);
  /** @param {Row} r */
  const wallShown = (r) => (r.wall === undefined ? '' : r.unit === 'ms' ? `${r.wall.toFixed(2)} ms` : rate(r.wall));
  /** @param {number} perSec */
  const rate = (perSec) => (perSec >= 1e6 ? `${(perSec / 1e6).toFixed(2)} M/s` : `${(perSec / 1e3).toFixed(1)} k/s`);
  out.push('', '| | measured | wall clock | target | |', '|---|---|---|---|---|');
  let section = '';
  for (const r of rows) {
    if (r.section !== section) {
      section = r.section;
      out.push(`| **${esc(section)}** | | | | |`);
    }
    out.push(`| ${esc(r.name)} | ${esc(r.shown)} | ${wallShown(r)} | ${esc(r.target ?? '')} | ${r.met === undefined ? '' : r.met ? 'met' : '**not met**'} |`);
  }
  out.push(
    '',
    'How each row is measured (`bench/core.mjs`):',
    '',
    '- **pairs/s**: one `acquire` + `release` of a lease for the next of 100,000 users, on a registry already holding 0, 10,000 or 1,000,000 live leases spread over those users (10 per user at 1,000,000), with a fixed `now`. The fast path is `acquireHandle` + `releaseHandle`; the rich path builds the lease object and releases by its id string. The pure-JS reference (`bench/reference.mjs`: `Map`s and `Set`s, a lease object per lease, an indexed min-heap of expiry times, TypeID strings as keys; checked against the package decision by decision in `tests/js/bench/reference.test.mjs`) is measured both releasing by the lease object it returned and by id. The floor is `Map.set` + `Map.delete` on a `Map` of the same size.',
    '- **ids**: `newId("conn")` against `crypto.randomUUID()`, `uuid` v7, `typeid-js` and `nanoid`; `parseId` (its `uuid` is made when first read, so the row reads only what it returns eagerly) and `parseId(...).uuid` (the UUID string made too) against `typeid-js` (parse and convert to a UUID) and `uuid` `parse`.',
    '- **memory**: growth of the wasm linear memory (`WebAssembly.Memory` byteLength, what the process pays, page and allocator slack included) while filling 1,000,000 leases, divided by the leases; the reference is the JS heap growth (`heapUsed` after forced collections) for the same fill.',
    "- **sweep**: one `sweep(now)` call that expires exactly 10,000 of 1,000,000 leases and returns their ids (median of several; each starts after a forced garbage collection and once the collector's background threads are idle, so it pays only for its own garbage).",
    '- **churn**: 10,000 live leases; each cycle releases the oldest and acquires a new one, the clock advancing 1 ms every 100 cycles; wasm memory after the first 1,000,000 cycles and after 10,000,000.',
    '- **size**: the built `pkg/web/socket_lease_bg.wasm`, raw and `gzip -9`.',
    '',
    "The hosts' connection-churn benchmarks (`bench/node-churn.mjs` and one per host) run after it in `npm run bench`; their figures are in the sections below.",
  );
  return { section: `${START}\n${out.join('\n')}\n${END}`, met: met.length, targets: targets.length };
}

/**
 * The guarded server's per-round CPU differences and churn ratios in a churn result (both
 * relative to the bare server of the same round), or null for a result without rounds.
 * @param {any} r
 */
function overheadRounds(r) {
  return roundsOf(r, (g, b) => g.cpu.map((x, i) => x - b.cpu[i]));
}
/** @param {any} r */
function ratioRounds(r) {
  return roundsOf(r, (g, b) => g.rate.map((x, i) => x / b.rate[i]));
}
/**
 * @param {any} r
 * @param {(guarded: { cpu: number[], rate: number[] }, bare: { cpu: number[], rate: number[] }) => number[]} pick
 * @returns {number[] | null}
 */
function roundsOf(r, pick) {
  const cpu = r.rounds?.cpuUsPerCycle;
  const rate = r.rounds?.cyclesPerSec;
  if (!cpu?.bare || !cpu?.guarded || !rate?.bare || !rate?.guarded) return null;
  return pick({ cpu: cpu.guarded, rate: rate.guarded }, { cpu: cpu.bare, rate: rate.bare });
}
/**
 * " (95% interval of the median: a to b)" for a result with rounds, else nothing.
 * @param {number[] | null} rounds @param {(x: number) => string} format
 */
function interval(rounds, format) {
  if (!rounds || rounds.length < 2) return '';
  const [lo, hi] = medianInterval(rounds);
  return ` (95% bootstrap interval of the median over the ${rounds.length} rounds: ${format(lo)} to ${format(hi)})`;
}

/**
 * The churn section of docs/performance.md from target/bench/node-churn.json, or null
 * when there is no such result.
 */
function churnSection() {
  const r = readResult(values['churn-json'], 'churn section');
  if (!r) return null;
  const s = r.servers;
  const us = (/** @type {number} */ x) => `${x >= 0 ? '+' : ''}${x.toFixed(1)} µs`;
  const lines = [
    '_Generated by `npm run bench:report` from the last `npm run bench` (`target/bench/node-churn.json`); edit `bench/report.mjs`, not this text._',
    '',
    `Measured ${r.date.slice(0, 10)} on ${r.machine.cpu}, ${r.machine.cores} cores, Node ${r.machine.node} (${r.machine.platform}); load average ${r.machine.loadavg.join(' / ')} at the end. ` +
      `Medians of ${r.method.rounds} rounds. A connection cycle is connect (HTTP upgrade) → send → echo → close over loopback; each server runs in its own process with the same user-id work, and the client in another. ` +
      // Older results say nothing of their method: they measured with process.cpuUsage, one turn per server.
      `CPU is ${r.method.cpu ? `the server's CPU time (${r.method.cpu})` : "the server process's user + system time (`process.cpuUsage`)"} per cycle with every server driven at once (same rate, same moments, same outside load; the server whose cycles start first rotating from batch to batch), the guard's figure being guarded − bare within each round; ` +
      `churn is cycles/s as the client sees them, every server in turn${r.method.slices ? ` (in ${r.method.slices} interleaved palindrome slices per round)` : ''}, the ratio taken within each round. ` +
      'The machine is a shared 2-core VM: a server woken for every event starts cold each time, and its CPU per cycle moves by up to 2x from second to second, so a figure near its target can land on either side of it.',
    '',
    '| | server CPU per cycle | over bare | churn | / bare |',
    '|---|---|---|---|---|',
    `| bare \`ws\` | ${s.bare.cpuUsPerCycle.toFixed(0)} µs | | ${s.bare.cyclesPerSec.toFixed(0)}/s | |`,
    `| guarded (LeaseRegistry) | ${s.guarded.cpuUsPerCycle.toFixed(0)} µs | ${us(s.guarded.overheadUs)} | ${s.guarded.cyclesPerSec.toFixed(0)}/s | ${s.guarded.ratio.toFixed(3)} |`,
    `| guard over a Map store | ${s['guard-map-store'].cpuUsPerCycle.toFixed(0)} µs | ${us(s['guard-map-store'].overheadUs)} | ${s['guard-map-store'].cyclesPerSec.toFixed(0)}/s | ${s['guard-map-store'].ratio.toFixed(3)} |`,
    '',
    `- The guard's CPU per connection cycle over bare \`ws\`: ${us(r.overheadUs)}${interval(overheadRounds(r), us)}, target at most +${r.targets.overheadUs} µs: ${r.overheadMet ? 'met' : '**not met**'}.`,
    `- Guarded churn / bare churn: ${r.churnRatio.toFixed(3)}${interval(ratioRounds(r), (x) => x.toFixed(3))}, target at least ${r.targets.churnRatio}: ${r.churnRatioMet ? 'met' : '**not met**'}.`,
  ];
  return `${CHURN_START}\n${lines.join('\n')}\n${CHURN_END}`;
}

/**
 * Replaces the text between `start` and `end` in docs/performance.md with `section` (which
 * holds both markers), or appends it under a heading `title` when neither marker is there.
 * Read, replace and write back at once: others edit the rest of the page.
 * @param {string} start @param {string} end @param {string} section @param {string} what @param {string} title
 */
function writeSection(start, end, section, what, title) {
  const file = values['perf-doc'];
  const doc = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# Performance\n';
  const a = doc.indexOf(start);
  const b = doc.indexOf(end);
  let next;
  if (a !== -1 && b > a) next = doc.slice(0, a) + section + doc.slice(b + end.length);
  else if (a === -1 && b === -1) next = `${doc.replace(/\n*$/, '')}\n\n## ${title}\n\n${section}\n`;
  else {
    console.error(`bench:report: ${path.relative(ROOT, file)} has one ${start} / ${end} marker without the other; fix it by hand`);
    process.exit(1);
  }
  if (next !== doc) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, next);
  }
  console.log(`bench:report: ${path.relative(ROOT, file)} ${what} ${next === doc ? 'already up to date' : 'updated'}`);
}
