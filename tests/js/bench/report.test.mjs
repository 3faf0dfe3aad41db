// `npm run bench:report` (bench/report.mjs) writes the core's tables and the Node host's
// churn section into docs/performance.md between their markers, and touches nothing else.
// Run here on result files of the shape bench/core.mjs and bench/node-churn.mjs write,
// against a copy of the page in a temp dir (never the real one).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, medianInterval } from '../../../bench/stats.mjs';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const report = join(root, 'bench', 'report.mjs');

const core = {
  date: '2026-12-01T10:00:00.000Z',
  durationSec: 250,
  machine: { cpu: 'Test CPU', cores: 2, memoryGiB: 8, node: 'v20.20.2', platform: 'linux x64', loadavgBefore: [1, 1, 1], loadavgAfter: [2, 1.5, 1] },
  method: { rounds: 9, timeMsPerTask: 400, batch: 1000, quick: false },
  rows: [
    {
      id: 'a',
      section: 'pairs/s, 10,000 live',
      name: 'package fast path',
      value: 3.1e6,
      unit: '/s',
      shown: '3.10 M/s (323 ns)',
      target: '>= 3,000,000/s',
      goal: 'pairs at 10k live',
      met: true,
      wall: 3.0e6,
    },
    { id: 'b', section: 'pairs/s, 10,000 live', name: 'bare Map | floor', value: 9e6, unit: '/s', shown: '9.00 M/s', wall: 8.9e6 },
    { id: 'c', section: 'sweep', name: 'package sweep()', value: 5.5, unit: 'ms', shown: '5.50 ms', target: '< 5 ms', goal: 'sweep', met: false, wall: 5.1 },
  ],
};
const server = (cpu, over, rate, ratio) => ({ cpuUsPerCycle: cpu, overheadUs: over, cyclesPerSec: rate, ratio });
const churn = {
  date: '2026-12-02T10:00:00.000Z',
  machine: { cpu: 'Test CPU', cores: 2, node: 'v20.20.2', platform: 'linux x64', loadavg: [1, 1, 1] },
  method: { rounds: 12 },
  servers: { bare: server(500, 0, 1500, 1), guarded: server(520, 20, 1450, 0.967), 'guard-map-store': server(510, 10, 1480, 0.987) },
  overheadUs: 20,
  overheadMet: false,
  churnRatio: 0.967,
  churnRatioMet: true,
  targets: { overheadUs: 10, churnRatio: 0.95 },
};

const PAGE = `# Performance

Hand-written text before.

<!-- bench:start -->
old core tables
<!-- bench:end -->

Hand-written text between.

<!-- bench:churn:start -->
old churn section
<!-- bench:churn:end -->

Hand-written text after.
`;

/** A temp dir with the result files and the page; `files` picks which exist. */
function setup({ withCore = true, withChurn = true, page = PAGE } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'bench-report-'));
  const paths = { json: join(dir, 'core.json'), churn: join(dir, 'node-churn.json'), doc: join(dir, 'performance.md') };
  if (withCore) writeFileSync(paths.json, JSON.stringify(core));
  if (withChurn) writeFileSync(paths.churn, JSON.stringify(churn));
  if (page !== null) writeFileSync(paths.doc, page);
  const run = (/** @type {string[]} */ ...extra) =>
    spawnSync(process.execPath, [report, '--json', paths.json, '--churn-json', paths.churn, '--perf-doc', paths.doc, ...extra], { encoding: 'utf8' });
  return { dir, paths, run, doc: () => readFileSync(paths.doc, 'utf8') };
}

/** The text between a marker pair, markers excluded. */
const between = (text, name) => text.slice(text.indexOf(`<!-- ${name}:start -->`) + `<!-- ${name}:start -->`.length, text.indexOf(`<!-- ${name}:end -->`));

test('writes both sections between their markers and leaves the hand-written text alone', (t) => {
  const s = setup();
  t.after(() => rmSync(s.dir, { recursive: true, force: true }));
  const r = s.run();
  assert.equal(r.status, 0, r.stderr);
  const doc = s.doc();
  const coreText = between(doc, 'bench');
  assert.match(coreText, /Measured 2026-12-01 on Test CPU, 2 cores, 8 GiB/);
  assert.match(coreText, /\*\*Targets of the performance issue met: 1 of 2\.\*\*/);
  assert.match(coreText, /- Not met: sweep: 5\.50 ms, target < 5 ms\./);
  assert.match(coreText, /\| bare Map \\\| floor \| 9\.00 M\/s \| 8\.90 M\/s \|/); // a `|` in a name is escaped
  assert.match(coreText, /\| package sweep\(\) \| 5\.50 ms \| 5\.10 ms \| < 5 ms \| \*\*not met\*\* \|/);
  const churnText = between(doc, 'bench:churn');
  assert.match(churnText, /\| guarded \(LeaseRegistry\) \| 520 µs \| \+20\.0 µs \| 1450\/s \| 0\.967 \|/);
  assert.match(churnText, /target at most \+10 µs: \*\*not met\*\*/);
  assert.match(churnText, /target at least 0\.95: met/);
  assert.ok(!doc.includes('old core tables') && !doc.includes('old churn section'));
  // Outside the markers, the page is what it was.
  const outside = (text) => text.replace(/<!-- (bench(?::churn)?):start -->[\s\S]*?<!-- \1:end -->/g, '<$1>');
  assert.equal(outside(doc), outside(PAGE));
  assert.match(r.stdout, /core section \(1 of 2 targets met\) updated/);

  const again = s.run();
  assert.equal(again.status, 0, again.stderr);
  assert.equal(s.doc(), doc);
  assert.match(again.stdout, /core section \(1 of 2 targets met\) already up to date/);
  assert.match(again.stdout, /churn section already up to date/);
});

test('the churn section names the CPU measure and the slices a result records', (t) => {
  const s = setup();
  t.after(() => rmSync(s.dir, { recursive: true, force: true }));
  const older = s.run('--check');
  assert.match(older.stdout, /CPU is the server process's user \+ system time \(`process\.cpuUsage`\) per cycle/);
  assert.match(older.stdout, /every server in turn, the ratio taken within each round/);
  writeFileSync(s.paths.churn, JSON.stringify({ ...churn, method: { rounds: 12, slices: 10, cpu: '/proc/<pid>/task/*/schedstat, every thread' } }));
  const newer = s.run('--check');
  assert.match(newer.stdout, /CPU is the server's CPU time \(\/proc\/<pid>\/task\/\*\/schedstat, every thread\) per cycle/);
  assert.match(newer.stdout, /every server in turn \(in 10 interleaved palindrome slices per round\), the ratio/);
});

test('a result with its rounds gets the bootstrap interval of each median, computed from them; one without gets none', (t) => {
  const s = setup();
  t.after(() => rmSync(s.dir, { recursive: true, force: true }));
  assert.doesNotMatch(s.run('--check').stdout, /bootstrap interval/, 'the fixture has no rounds');
  // Twelve rounds whose differences are 1..12 µs and whose ratios are all 0.98.
  const bare = { cpu: Array.from({ length: 12 }, () => 500), rate: Array.from({ length: 12 }, () => 1000) };
  const guarded = { cpu: bare.cpu.map((x, i) => x + i + 1), rate: bare.rate.map((x) => x * 0.98) };
  writeFileSync(
    s.paths.churn,
    JSON.stringify({ ...churn, rounds: { cpuUsPerCycle: { bare: bare.cpu, guarded: guarded.cpu }, cyclesPerSec: { bare: bare.rate, guarded: guarded.rate } } }),
  );
  const out = s.run('--check').stdout;
  const m = /over bare `ws`: \+20\.0 µs \(95% bootstrap interval of the median over the 12 rounds: \+([\d.]+) µs to \+([\d.]+) µs\)/.exec(out);
  assert.ok(m, out);
  const [lo, hi] = [Number(m[1]), Number(m[2])];
  assert.ok(lo >= 1 && lo < 6.5 && hi > 6.5 && hi <= 12, `an interval around the rounds' median 6.5: ${lo} to ${hi}`);
  assert.match(out, /0\.967 \(95% bootstrap interval of the median over the 12 rounds: 0\.980 to 0\.980\)/, 'identical rounds: no spread');
});

test('medianInterval: seeded (the same rounds give the same interval), around the median, narrower for tighter rounds', () => {
  const wide = [1, 9, 2, 8, 3, 7, 4, 6, 5, 10, 0, 11];
  const tight = wide.map((x) => 5 + x / 100);
  const [a, b] = medianInterval(wide);
  assert.deepEqual(medianInterval(wide), [a, b]);
  assert.ok(a <= median(wide) && median(wide) <= b, `${a} <= ${median(wide)} <= ${b}`);
  const [c, d] = medianInterval(tight);
  assert.ok(d - c < (b - a) / 10, `tight ${c}..${d} against wide ${a}..${b}`);
  assert.deepEqual(medianInterval([7]), [7, 7]);
  assert.ok(medianInterval([]).every(Number.isNaN));
});

test('--check prints the sections and writes nothing', (t) => {
  const s = setup();
  t.after(() => rmSync(s.dir, { recursive: true, force: true }));
  const r = s.run('--check');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /<!-- bench:start -->[\s\S]*Test CPU[\s\S]*<!-- bench:end -->/);
  assert.match(r.stdout, /<!-- bench:churn:start -->[\s\S]*<!-- bench:churn:end -->/);
  assert.equal(s.doc(), PAGE);
});

test('a page without markers gets the sections appended; a missing page is created', (t) => {
  const s = setup({ page: '# Performance\n\nOnly text.\n' });
  t.after(() => rmSync(s.dir, { recursive: true, force: true }));
  assert.equal(s.run().status, 0);
  const doc = s.doc();
  assert.ok(doc.startsWith('# Performance\n\nOnly text.\n\n## The core\n\n<!-- bench:start -->'), doc.slice(0, 80));
  assert.match(doc, /## Node host: connection churn\n\n<!-- bench:churn:start -->/);

  const fresh = setup({ page: null });
  t.after(() => rmSync(fresh.dir, { recursive: true, force: true }));
  assert.equal(fresh.run().status, 0);
  assert.ok(fresh.doc().startsWith('# Performance\n\n## The core\n\n<!-- bench:start -->'));
});

test('without result files it says so and changes nothing', (t) => {
  const one = setup({ withCore: false });
  t.after(() => rmSync(one.dir, { recursive: true, force: true }));
  const r = one.run();
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /no .*core\.json \(run `npm run bench` to make it\); the core section of .* is left alone/);
  assert.match(between(one.doc(), 'bench'), /old core tables/);
  assert.doesNotMatch(one.doc(), /old churn section/);

  const none = setup({ withCore: false, withChurn: false });
  t.after(() => rmSync(none.dir, { recursive: true, force: true }));
  const n = none.run();
  assert.equal(n.status, 1);
  assert.match(n.stderr, /nothing to report: run `npm run bench` first/);
  assert.equal(none.doc(), PAGE);
  const churnOnly = none.run('--churn-only');
  assert.equal(churnOnly.status, 1);
  assert.equal(none.doc(), PAGE);
});

test('a broken result file or a lone marker is an error that names it, and nothing is written', (t) => {
  const bad = setup();
  t.after(() => rmSync(bad.dir, { recursive: true, force: true }));
  writeFileSync(bad.paths.json, '{ "date": ');
  const r = bad.run();
  assert.equal(r.status, 1);
  assert.match(r.stderr, /core\.json is not valid JSON/);
  writeFileSync(bad.paths.json, JSON.stringify({ date: '2026-12-01' }));
  const shape = bad.run();
  assert.equal(shape.status, 1);
  assert.match(shape.stderr, /core\.json is not what the benchmark writes/);
  assert.equal(bad.doc(), PAGE);

  const lone = setup({ page: '# Performance\n\n<!-- bench:start -->\nno end\n' });
  t.after(() => rmSync(lone.dir, { recursive: true, force: true }));
  const l = lone.run();
  assert.equal(l.status, 1);
  assert.match(l.stderr, /one <!-- bench:start --> \/ <!-- bench:end --> marker without the other; fix it by hand/);
});
