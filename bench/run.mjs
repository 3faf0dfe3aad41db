// `npm run bench`: the core benchmark (bench/core.mjs: the package against the pure-JS
// reference, the Map floor and the id libraries; one table, target/bench/core.json), then
// the Node host's connection-churn benchmark (bench/node-churn.mjs: the guard's server CPU
// per connection cycle over bare ws, and guarded / bare churn, against the issue's
// targets; target/bench/node-churn.json), then the same comparison for Bun, Deno, crossws
// and Socket.IO (bench/churn-*.mjs). Each runs in its own child process with a time
// limit, so the whole stays bounded (about 35 minutes at most on a 2-core machine;
// typically 15). The Node host's two target lines are printed again at the end.
// `npm run bench:report` then rewrites the README's performance section from
// target/bench/core.json and the churn section of docs/performance.md from
// target/bench/node-churn.json.
//
//   node bench/run.mjs [--quick] [--core-only]     (--quick: one short round, a smoke run)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const DIR = path.dirname(fileURLToPath(import.meta.url));
const CHURN_JSON = path.join(DIR, '..', 'target/bench/node-churn.json');
const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, 'core-only': { type: 'boolean', default: false } } });

/**
 * @param {string} title
 * @param {string[]} argv node arguments
 * @param {number} limitMs
 * @returns {Promise<void>}
 */
function run(title, argv, limitMs) {
  console.log(`\n== ${title}`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, { stdio: 'inherit' });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${title}: over its ${limitMs / 1000} s limit, stopped`));
    }, limitMs);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${title}: exited with ${signal ?? code}`));
    });
  });
}

const started = Date.now();
try {
  // --expose-gc for the memory rows; 4 GiB of heap for the 1,000,000-lease reference.
  await run(
    'core: package vs pure-JS reference, Map floor and id libraries (bench/core.mjs)',
    ['--expose-gc', '--max-old-space-size=4096', path.join(DIR, 'core.mjs'), ...(values.quick ? ['--quick'] : [])],
    7 * 60_000,
  );
  if (!values['core-only']) {
    // The churn benchmark forks its own servers with --expose-gc.
    await run(
      'Node host: connection churn through the guard vs bare ws (bench/node-churn.mjs)',
      [path.join(DIR, 'node-churn.mjs'), '--json', CHURN_JSON, ...(values.quick ? ['--time-ms', '500', '--rounds', '1', '--open', '200'] : [])],
      3 * 60_000,
    );
    const r = JSON.parse(fs.readFileSync(CHURN_JSON, 'utf8'));
    console.log(`\n== Node host targets (bench/node-churn.mjs, median of ${r.method.rounds} rounds${values.quick ? '; quick run: indicative only' : ''})`);
    console.log(`  guard CPU per connection cycle over bare ws: ${r.overheadUs >= 0 ? '+' : ''}${r.overheadUs.toFixed(1)} us (bare ${r.servers.bare.cpuUsPerCycle.toFixed(0)} us, guarded ${r.servers.guarded.cpuUsPerCycle.toFixed(0)} us); target <= ${r.targets.overheadUs} us: ${r.overheadMet ? 'met' : 'NOT MET'}`);
    console.log(`  guarded / bare churn: ${r.churnRatio.toFixed(3)} (bare ${r.servers.bare.cyclesPerSec.toFixed(0)}/s, guarded ${r.servers.guarded.cyclesPerSec.toFixed(0)}/s); target >= ${r.targets.churnRatio}: ${r.churnRatioMet ? 'met' : 'NOT MET'}`);
    // The other hosts, each against its own bare server in the same run (each prints its
    // two targets, met or NOT MET). A host's bench that fails is reported, not fatal: the
    // rest still run.
    for (const [host, file, quick] of /** @type {const} */ ([
      ['Bun', 'churn-bun.mjs', ['--time-ms', '500', '--rounds', '1']],
      ['Deno', 'churn-deno.mjs', ['--time-ms', '500', '--rounds', '1']],
      ['crossws', 'churn-crossws.mjs', ['--time-ms', '500', '--rounds', '1']],
      ['Socket.IO', 'churn-socketio.mjs', ['--time-ms', '500', '--rounds', '1']],
    ])) {
      try {
        await run(`${host} host: connection churn through the adapter vs bare (bench/${file})`, [path.join(DIR, file), ...(values.quick ? quick : [])], 6 * 60_000);
      } catch (err) {
        console.error(`bench: ${/** @type {Error} */ (err).message}`);
        process.exitCode = 1;
      }
    }
  }
  console.log(`\nbench: done in ${Math.round((Date.now() - started) / 1000)} s; \`npm run bench:report\` puts target/bench/core.json into README.md and target/bench/node-churn.json into docs/performance.md`);
} catch (err) {
  console.error(`bench: ${/** @type {Error} */ (err).message}`);
  process.exitCode = 1;
}
