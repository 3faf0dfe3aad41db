// `npm run bench`: the core benchmark (bench/core.mjs: the package against the pure-JS
// reference, the Map floor and the id libraries; one table, target/bench/core.json), then
// the Node host's connection-churn benchmark (bench/node-churn.mjs: the guard's server CPU
// per connection cycle over bare ws, and guarded / bare churn, against the issue's
// targets; target/bench/node-churn.json), then the same comparison for Bun, Deno, crossws
// and Socket.IO (bench/churn-*.mjs; target/bench/churn-<host>.json), then socket-lease/redis
// on a local Redis Cluster (bench/redis-cluster.mjs; target/bench/redis-cluster.json). Each runs in its own
// child process with a time limit, so the whole stays bounded (about 50 minutes at most on
// a 2-core machine; typically 15). Every host's two target lines are printed again at the
// end. `npm run bench:report` then writes the figures into the docs.
//
//   node bench/run.mjs [--quick] [--core-only]     (--quick: one short round, a smoke run)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const DIR = path.dirname(fileURLToPath(import.meta.url));
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
    // Every host against its own bare server, measured the same way (churn-client.mjs's
    // compare), each writing target/bench/<json>. A host's bench that fails is reported,
    // not fatal: the rest still run. The Node one forks its own servers with --expose-gc.
    const hosts = /** @type {const} */ ([
      ['Node (ws)', 'node-churn.mjs', 'node-churn.json', ['--time-ms', '500', '--rounds', '1', '--open', '200']],
      ['Bun', 'churn-bun.mjs', 'churn-bun.json', ['--time-ms', '500', '--rounds', '1']],
      ['Deno', 'churn-deno.mjs', 'churn-deno.json', ['--time-ms', '500', '--rounds', '1']],
      ['crossws', 'churn-crossws.mjs', 'churn-crossws.json', ['--time-ms', '500', '--rounds', '1']],
      ['Socket.IO', 'churn-socketio.mjs', 'churn-socketio.json', ['--time-ms', '500', '--rounds', '1']],
    ]);
    /** @type {string[]} */
    const lines = [];
    for (const [host, file, json, quick] of hosts) {
      const out = path.join(DIR, '..', 'target/bench', json);
      try {
        fs.rmSync(out, { force: true });
        await run(
          `${host} host: connection churn through the adapter vs bare (bench/${file})`,
          [path.join(DIR, file), '--json', out, ...(values.quick ? quick : [])],
          8 * 60_000,
        );
        const r = JSON.parse(fs.readFileSync(out, 'utf8'));
        lines.push(
          `  ${host.padEnd(10)} CPU per cycle over bare ${r.overheadUs >= 0 ? '+' : ''}${r.overheadUs.toFixed(1)} us (target <= ${r.targets.overheadUs}: ${r.overheadMet ? 'met' : 'NOT MET'}); ` +
            `churn / bare ${r.churnRatio.toFixed(3)} (target >= ${r.targets.churnRatio}: ${r.churnRatioMet ? 'met' : 'NOT MET'}); median of ${r.method.rounds} rounds`,
        );
      } catch (err) {
        console.error(`bench: ${/** @type {Error} */ (err).message}`);
        lines.push(`  ${host.padEnd(10)} failed: ${/** @type {Error} */ (err).message}`);
        process.exitCode = 1;
      }
    }
    console.log(`\n== Host targets (each adapter vs its bare server${values.quick ? '; quick run: indicative only' : ''})\n${lines.join('\n')}`);
    // socket-lease/redis on a local Redis Cluster beside one Redis: Redis CPU per
    // operation per shard (docs/performance.md, "Redis Cluster: capacity").
    try {
      await run(
        'Redis Cluster: pairs and touches per second, Redis CPU per shard (bench/redis-cluster.mjs)',
        [path.join(DIR, 'redis-cluster.mjs'), ...(values.quick ? ['--time-ms', '300', '--rounds', '1', '--users', '300'] : [])],
        6 * 60_000,
      );
    } catch (err) {
      console.error(`bench: ${/** @type {Error} */ (err).message}`);
      process.exitCode = 1;
    }
  }
  console.log(
    `\nbench: done in ${Math.round((Date.now() - started) / 1000)} s; \`npm run bench:report\` puts target/bench/core.json and target/bench/node-churn.json into docs/performance.md`,
  );
} catch (err) {
  console.error(`bench: ${/** @type {Error} */ (err).message}`);
  process.exitCode = 1;
}
