// `npm run bench`: the core benchmark (bench/core.mjs: the package against the pure-JS
// reference, the Map floor and the id libraries; one table, target/bench/core.json), then
// the Node host's connection-churn benchmark (bench/node-churn.mjs). Each runs in its own
// child process with a time limit, so the whole stays bounded (about 10 minutes at most
// on a 2-core machine; typically 3). `npm run bench:report` then rewrites the README's
// performance section from target/bench/core.json.
//
//   node bench/run.mjs [--quick] [--core-only]     (--quick: one short round, a smoke run)
import { spawn } from 'node:child_process';
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
    // The churn benchmark forks its own servers with --expose-gc.
    await run(
      'Node host: connection churn through the guard vs bare ws (bench/node-churn.mjs)',
      [path.join(DIR, 'node-churn.mjs'), ...(values.quick ? ['--time-ms', '500', '--rounds', '1', '--open', '200'] : [])],
      3 * 60_000,
    );
  }
  console.log(`\nbench: done in ${Math.round((Date.now() - started) / 1000)} s; \`npm run bench:report\` puts target/bench/core.json into README.md`);
} catch (err) {
  console.error(`bench: ${/** @type {Error} */ (err).message}`);
  process.exitCode = 1;
}
