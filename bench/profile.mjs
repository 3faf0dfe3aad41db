// Where the time goes: runs one hot loop of the package under V8's sampling profiler and
// prints self time per function, wasm functions by their Rust names.
//
//   node bench/profile.mjs [fast|fast-clock|rich|new-id|parse-id|sweep] [--live 10000] [--top 25]
//
// The shipped .wasm has no names, so this first makes a copy of the last cargo build
// (target/wasm32-unknown-unknown/release/socket_lease.wasm) with its name section kept:
// wasm-bindgen --keep-debug, then the same `wasm-opt -Oz` as scripts/build.sh plus `-g`.
// It goes to target/bench/profile/ (pkg/ is not touched); run `npm run build` first. The
// raw profile is saved there too (open it in Chrome DevTools for the call tree).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import inspector from 'node:inspector';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUT = path.join(ROOT, 'target/bench/profile');
const RAW = path.join(ROOT, 'target/wasm32-unknown-unknown/release/socket_lease.wasm');

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { live: { type: 'string', default: '10000' }, top: { type: 'string', default: '25' } },
});
const what = positionals[0] ?? 'fast';
const LIVE = Number(values.live);

// ------------------------------------------------------------ a named build of the wasm
const bindings = path.join(OUT, 'socket_lease.js');
if (!fs.existsSync(bindings) || fs.statSync(bindings).mtimeMs < fs.statSync(RAW).mtimeMs) {
  const env = { ...process.env, PATH: `${path.join(ROOT, 'node_modules/.bin')}:${process.env.HOME}/.cargo/bin:${process.env.PATH}` };
  fs.mkdirSync(OUT, { recursive: true });
  execFileSync('wasm-bindgen', ['--target', 'nodejs', '--keep-debug', '--out-dir', OUT, RAW], { env, stdio: 'inherit' });
  const wasm = path.join(OUT, 'socket_lease_bg.wasm');
  const features = ['bulk-memory', 'sign-ext', 'mutable-globals', 'nontrapping-float-to-int', 'reference-types', 'multivalue'];
  execFileSync('wasm-opt', ['-Oz', '-g', ...features.map((f) => `--enable-${f}`), '-o', wasm, wasm], { env, stdio: 'inherit' });
  fs.writeFileSync(path.join(OUT, 'package.json'), '{ "type": "commonjs" }\n');
}
const require = createRequire(import.meta.url);
/** @type {typeof import('socket-lease')} */
const pkg = require(bindings);
// The loader's wiring (the lane, type checks), as `require('socket-lease')` does it.
const { newId, parseId } = require('../js/runtime.cjs').install(pkg);

// ------------------------------------------------------------------------- workloads
const T0 = 1_700_000_000_000;
const TTL = 90_000;
const users = Array.from({ length: 100_000 }, (_, i) => `user-${i}`);
const reg = new pkg.LeaseRegistry({ ttlMs: TTL });
const SWEEPS = 50;
for (let i = 0; i < LIVE; i++) {
  const group = Math.floor(i / 10_000);
  reg.acquireHandle(users[i % users.length], undefined, what === 'sweep' && group < SWEEPS ? T0 + group : T0 + SWEEPS);
}
const NOW = T0 + SWEEPS;
const ids = Array.from({ length: 1024 }, () => newId('conn'));

/** @type {Record<string, { n: number, run: (n: number) => void }>} */
const WORKLOADS = {
  fast: {
    n: 2_000_000,
    run: (n) => {
      for (let i = 0; i < n; i++) reg.releaseHandle(reg.acquireHandle(users[i % users.length], undefined, NOW), NOW);
    },
  },
  'fast-clock': {
    n: 2_000_000,
    run: (n) => {
      for (let i = 0; i < n; i++) reg.releaseHandle(reg.acquireHandle(users[i % users.length]));
    },
  },
  rich: {
    n: 200_000,
    run: (n) => {
      for (let i = 0; i < n; i++) {
        const r = reg.acquire(users[i % users.length], { now: NOW });
        if (r.ok) reg.release(r.lease.id, NOW);
      }
    },
  },
  'new-id': {
    n: 2_000_000,
    run: (n) => {
      for (let i = 0; i < n; i++) newId('conn');
    },
  },
  'parse-id': {
    n: 500_000,
    run: (n) => {
      for (let i = 0; i < n; i++) parseId(ids[i & 1023]);
    },
  },
  sweep: {
    n: SWEEPS,
    run: (n) => {
      for (let r = 0; r < n; r++) reg.sweep(T0 + r + TTL);
    },
  },
};
const workload = WORKLOADS[what];
if (!workload) throw new Error(`unknown workload ${what}; one of ${Object.keys(WORKLOADS).join(', ')}`);
if (what === 'sweep' && LIVE < SWEEPS * 10_000) throw new Error(`sweep needs --live >= ${SWEEPS * 10_000}`);
if (what !== 'sweep') workload.run(Math.min(workload.n, 50_000)); // warm-up, outside the profile (a sweep can run only once per group)

// ------------------------------------------------------------------------- profile
const session = new inspector.Session();
session.connect();
/** @param {string} method @param {object} [params] @returns {Promise<any>} */
const post = (method, params) => new Promise((resolve, reject) => session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))));
await post('Profiler.enable');
await post('Profiler.setSamplingInterval', { interval: 100 });
await post('Profiler.start');
const t = performance.now();
workload.run(workload.n);
const ms = performance.now() - t;
/** @type {{ profile: { nodes: { id: number, callFrame: { functionName: string, url: string } }[], samples: number[], timeDeltas: number[] } }} */
const { profile } = await post('Profiler.stop');
fs.writeFileSync(path.join(OUT, `${what}.cpuprofile`), JSON.stringify(profile));

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
/** @type {Map<string, number>} */
const self = new Map();
let total = 0;
profile.samples.forEach((id, i) => {
  const { functionName, url } = /** @type {{ callFrame: { functionName: string, url: string } }} */ (byId.get(id)).callFrame;
  const where = url.endsWith('.wasm') || url.includes('wasm-') ? 'wasm' : path.basename(url) || 'v8';
  const name = `${functionName || '(anonymous)'} [${where}]`;
  const dt = profile.timeDeltas[i] ?? 0;
  self.set(name, (self.get(name) ?? 0) + dt);
  total += dt;
});
const per = what === 'sweep' ? `${(ms / workload.n).toFixed(2)} ms per sweep of 10,000` : `${((ms * 1e6) / workload.n).toFixed(0)} ns per operation`;
console.log(`${what}, ${LIVE.toLocaleString('en-US')} live: ${workload.n.toLocaleString('en-US')} operations in ${ms.toFixed(0)} ms, ${per}`);
console.log('self time:');
for (const [name, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))) {
  console.log(`${((100 * us) / total).toFixed(1).padStart(6)}%  ${name.replace(/::h[0-9a-f]{16}/g, '').slice(0, 140)}`);
}
console.log(`profile: ${path.relative(process.cwd(), path.join(OUT, `${what}.cpuprofile`))}`);
