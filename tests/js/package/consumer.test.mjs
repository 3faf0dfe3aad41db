// The package as a consumer gets it: `npm pack` (which runs prepack, the build), then the
// tarball installed into a temp project under os.tmpdir() that cannot see this
// repository's node_modules, with only the peers each check needs. There it is imported
// by ESM and CommonJS under Node, type-checked by TypeScript (node16 from a .cts and a
// .mts file, and bundler resolution), bundled for the browser by Vite and run in headless
// Chromium, and bundled for Workers by `wrangler deploy --dry-run`. The npm cache has
// every package after the repository's install; the registry is asked only for metadata.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { launchRedis } from '../../../scripts/redis-server.mjs';
import { launchBrowser } from '../www/harness.mjs';

const ROOT = path.resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const FIXTURES = fileURLToPath(new URL('fixtures/', import.meta.url));
const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const bin = (/** @type {string} */ name) => path.join(ROOT, 'node_modules', '.bin', name);
const hasRedis = spawnSync('redis-server', ['--version']).status === 0;

// Under `npm test` the environment carries the outer npm's settings (npm_config_*, among
// them its local prefix): an npm started in the temp project must not inherit them.
const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.toLowerCase().startsWith('npm_')));

/**
 * Runs a command to its end; resolves with its exit status and output, never rejects for
 * a non-zero status (the test asserts on it, with the output in the message).
 * @param {string} file
 * @param {string[]} args
 * @param {{ cwd: string, env?: NodeJS.ProcessEnv, timeout?: number }} options
 */
async function run(file, args, { cwd, env: extra = {}, timeout = 240_000 }) {
  try {
    const { stdout, stderr } = await promisify(execFile)(file, args, { cwd, env: { ...env, ...extra }, timeout, maxBuffer: 64 * 1024 * 1024 });
    return { status: 0, stdout, stderr, output: `${stdout}${stderr}` };
  } catch (err) {
    const e = /** @type {any} */ (err);
    if (typeof e.code !== 'number' && !e.killed) throw err;
    return { status: e.killed ? `killed (${e.signal})` : e.code, stdout: e.stdout, stderr: e.stderr, output: `${e.stdout}${e.stderr}` };
  }
}

/** @param {{ status: unknown, output: string }} result @param {string} what */
function assertOk(result, what) {
  assert.equal(result.status, 0, `${what} failed:\n${result.output}`);
}

/**
 * A project in the temp dir with the tarball and the given packages installed.
 * @param {string} name
 * @param {string[]} packages  names of devDependencies of this repository, installed at its pinned versions
 */
async function project(name, packages) {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: `consumer-${name}`, private: true, type: 'module' }));
  const specs = packages.map((p) => `${p}@${manifest.devDependencies[p]}`);
  assertOk(await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball, ...specs], { cwd: dir }), `npm install in ${name}`);
  return dir;
}

const status = () => spawnSync('git', ['status', '--porcelain', '--ignored=no'], { cwd: ROOT, encoding: 'utf8' }).stdout;

/** @type {string} */
let tmp;
/** @type {string} */
let tarball;
/** @type {{ path: string }[]} */
let packed;
/** @type {string} */
let statusBefore;
/** @type {string} the project with every peer, the Node and TypeScript checks' */
let app;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'socket-lease-consumer-'));
  statusBefore = status();
  const pack = await run('npm', ['pack', '--json', '--pack-destination', tmp], { cwd: ROOT });
  assertOk(pack, 'npm pack');
  // prepack's output (the build's log) comes before npm's JSON on stdout.
  const [info] = JSON.parse(pack.stdout.slice(pack.stdout.search(/^\[/m)));
  tarball = path.join(tmp, info.filename);
  packed = info.files;
  app = await project('app', ['ws', 'ioredis', 'socket.io', 'socket.io-client', '@types/node', '@types/ws']);
});

after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('npm pack builds and ships the wasm package, the generated CommonJS and .d.cts, and leaves the tree as it was', () => {
  const files = new Set(packed.map((f) => f.path));
  for (const file of [
    'pkg/nodejs/socket_lease_bg.wasm',
    'pkg/nodejs/socket_lease.js',
    'pkg/nodejs/package.json',
    'pkg/web/socket_lease_bg.wasm',
    'pkg/web/socket_lease.js',
    'js/runtime.cjs',
    'js/lifecycle/lifecycle.cjs',
    'js/peer.cjs',
  ]) {
    assert.ok(files.has(file), `${file} is not in the tarball`);
  }
  assert.ok(!files.has('pkg/.build-stamp'), 'the build stamp is not for consumers');
  // Every `types` file named in exports ships (the .d.cts are generated by the build).
  const typeFiles = JSON.stringify(manifest.exports).match(/\.\/[^"]+\.d\.c?ts/g) ?? [];
  assert.ok(typeFiles.filter((f) => f.endsWith('.d.cts')).length >= 5, 'every require entry has .d.cts types');
  for (const file of typeFiles) assert.ok(files.has(file.slice(2)), `${file} (exports) is not in the tarball`);
  assert.equal(status(), statusBefore, 'npm pack changed the working tree');
});

test('attw (node16 profile, .attw.json) passes; the only ignored problem is a require of an ESM-only entry', async () => {
  const text = await run(bin('attw'), [tarball], { cwd: ROOT });
  assertOk(text, 'attw');
  const json = await run(bin('attw'), [tarball, '--format', 'json'], { cwd: ROOT });
  assertOk(json, 'attw --format json');
  const { problems } = JSON.parse(json.stdout).analysis;
  // Entries without a `require` condition (bun, deno, crossws, cloudflare) are ESM only on
  // purpose: a require of them resolving to ESM is what .attw.json ignores, nothing else.
  const esmOnly = Object.keys(manifest.exports).filter((key) => !JSON.stringify(manifest.exports[key]).includes('"require"'));
  const unexpected = problems.filter(
    (/** @type {any} */ p) => p.resolutionKind !== 'node10' && !(p.kind === 'CJSResolvesToESM' && esmOnly.includes(p.entrypoint)),
  );
  assert.deepEqual(unexpected, [], `attw problems beyond the ESM-only entries:\n${text.output}`);
});

test('without the peers: the root entry works, and each Node entry names the package to install', { timeout: 120_000 }, async () => {
  const bare = await project('bare', []);
  assert.deepEqual(
    fs.readdirSync(path.join(bare, 'node_modules')).filter((n) => !n.startsWith('.')),
    ['socket-lease'],
    'no peer is installed with the package',
  );
  const script = `
    const out = {};
    const { LeaseRegistry } = require('socket-lease');
    out.root = new LeaseRegistry({ perUserLimit: 1 }).acquire('alice').ok;
    for (const entry of ['socket-lease/node', 'socket-lease/redis']) {
      try { require(entry); out[entry] = 'loaded'; } catch (err) { out[entry] = { code: err.code, message: err.message }; }
    }
    console.log(JSON.stringify(out));
  `;
  const result = await run(process.execPath, ['-e', script], { cwd: bare });
  assertOk(result, 'the bare consumer');
  const out = JSON.parse(result.stdout);
  assert.equal(out.root, true);
  assert.equal(out['socket-lease/node'].code, 'MODULE_NOT_FOUND');
  assert.match(out['socket-lease/node'].message, /^socket-lease\/node needs the "ws" package.*npm install ws/);
  assert.equal(out['socket-lease/redis'].code, 'MODULE_NOT_FOUND');
  assert.match(out['socket-lease/redis'].message, /^socket-lease\/redis needs the "ioredis" package.*npm install ioredis/);
  // An ES module importing the entry fails to load with the same message.
  const esm = await run(process.execPath, ['--input-type=module', '-e', "import 'socket-lease/redis';"], { cwd: bare });
  assert.equal(esm.status, 1, esm.output);
  assert.match(esm.stderr, /socket-lease\/redis needs the "ioredis" package.*npm install ioredis/);
});

for (const [mode, file] of [
  ['import', 'consumer.mjs'],
  ['require', 'consumer.cjs'],
]) {
  test(`Node, by ${mode}: every Node entry works from the installed package`, {
    timeout: 120_000,
    skip: hasRedis ? false : 'no redis-server on PATH',
  }, async (t) => {
    for (const fixture of ['scenario.mjs', file]) fs.copyFileSync(path.join(FIXTURES, fixture), path.join(app, fixture));
    const redis = await launchRedis();
    t.after(() => redis.destroy());
    const result = await run(process.execPath, [file], { cwd: app, env: { REDIS_URL: redis.url }, timeout: 60_000 });
    assertOk(result, `node ${file}`);
    const out = JSON.parse(result.stdout);
    assert.deepEqual(out.sameInstance, { root: true, node: true, redis: true, lifecycle: true, socketio: true }, 'import and require share each entry');
    assert.match(out.root.leaseId, /^conn_[0-9a-z]{26}$/);
    assert.equal(out.root.refused, 'user-limit');
    assert.equal(out.root.released, true);
    assert.equal(out.root.badId, 'INVALID_ID');
    assert.match(out.root.newId, /^conn_/);
    assert.deepEqual(out.node, { refusedStatus: 429, activeBefore: 1, activeAfter: 0 });
    assert.deepEqual(out.redis, { ready: true, ok: true, released: true, activeAfter: 0 });
    assert.deepEqual(out.lifecycle, { acquired: true, sameAllowed: true, otherAllowed: false, badOrigin: 'INVALID_OPTION', closeCode: 4008 });
    assert.deepEqual(out.socketio, { refusedStatus: 429, refusedReason: 'user-limit', activeBefore: 1, activeAfter: 0 });
  });
}

test('TypeScript: node16 from a .cts and a .mts file, and bundler resolution, with skipLibCheck off', { timeout: 120_000 }, async () => {
  const usage = fs.readFileSync(path.join(FIXTURES, 'types', 'usage.ts'), 'utf8');
  for (const file of ['check.cts', 'check.mts', 'bundler.ts']) fs.writeFileSync(path.join(app, file), usage);
  for (const config of ['tsconfig.node16.json', 'tsconfig.bundler.json']) fs.copyFileSync(path.join(FIXTURES, 'types', config), path.join(app, config));

  const node16 = await run(bin('tsc'), ['-p', 'tsconfig.node16.json', '--listFiles'], { cwd: app });
  assertOk(node16, 'tsc (node16)');
  // The .cts file got the CommonJS types and the .mts file the ESM ones, of every Node entry.
  const listed = node16.stdout.split('\n').map((line) => path.relative(path.join(app, 'node_modules', 'socket-lease'), line.trim()));
  for (const entry of ['node', 'lifecycle/index', 'node/index', 'redis/index', 'socketio/index']) {
    assert.ok(listed.includes(`js/${entry}.d.cts`), `js/${entry}.d.cts was not used:\n${node16.stdout}`);
    assert.ok(listed.includes(`js/${entry}.d.ts`), `js/${entry}.d.ts was not used:\n${node16.stdout}`);
  }
  assertOk(await run(bin('tsc'), ['-p', 'tsconfig.bundler.json'], { cwd: app }), 'tsc (bundler)');
});

test('Vite bundles the browser build with its .wasm, and the bundle acquires a lease in headless Chromium', { timeout: 180_000 }, async (t) => {
  const web = await project('web', []);
  for (const file of ['index.html', 'main.js']) fs.copyFileSync(path.join(FIXTURES, 'web', file), path.join(web, file));
  const dist = path.join(tmp, 'web-dist');
  const build = await run(process.execPath, [path.join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', web, '--outDir', dist, '--logLevel', 'warn'], {
    cwd: web,
  });
  assertOk(build, 'vite build');

  const assets = fs.readdirSync(path.join(dist, 'assets'));
  const wasm = assets.filter((f) => f.endsWith('.wasm'));
  const scripts = assets.filter((f) => f.endsWith('.js'));
  assert.equal(wasm.length, 1, `one .wasm asset: ${assets}`);
  assert.ok(
    fs.readFileSync(path.join(dist, 'assets', wasm[0])).equals(fs.readFileSync(path.join(ROOT, 'pkg', 'web', 'socket_lease_bg.wasm'))),
    'the asset is the web build',
  );
  const bundle = scripts.map((f) => fs.readFileSync(path.join(dist, 'assets', f), 'utf8')).join('\n');
  assert.ok(bundle.includes(wasm[0]), 'the bundle loads the .wasm asset');
  assert.ok(!bundle.includes('readFileSync') && !bundle.includes('pkg/nodejs'), 'the Node loader is not in the browser bundle');

  const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm' };
  const server = http.createServer((req, res) => {
    const file = path.join(dist, new URL(req.url ?? '/', 'http://localhost').pathname.replace(/\/$/, '/index.html'));
    if (!file.startsWith(dist + path.sep) || !fs.existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': types[/** @type {keyof types} */ (path.extname(file))] ?? 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await browser.newPage();
  /** @type {string[]} */
  const errors = [];
  page.on('pageerror', (err) => errors.push(String(err)));
  await page.goto(`http://127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (server.address()).port}/`);
  await page.waitForFunction(() => /** @type {any} */ (window).result !== undefined, null, { timeout: 30_000 });
  const result = await page.evaluate(() => /** @type {any} */ (window).result);
  assert.deepEqual(errors, []);
  assert.equal(result.error, undefined, result.error);
  assert.match(result.leaseId, /^conn_[0-9a-z]{26}$/);
  assert.equal(result.refused, 'user-limit');
  assert.equal(result.released, true);
  assert.equal(result.badId, 'INVALID_ID');
  assert.match(result.threadId, /^thread_/);
});

test('wrangler deploy --dry-run bundles a Worker importing socket-lease/cloudflare, with the .wasm module', { timeout: 180_000 }, async () => {
  const worker = await project('worker', []);
  // The example Worker as a project of its own writes it: the package by name, not by path.
  const example = fs.readFileSync(path.join(ROOT, 'examples', 'cloudflare', 'worker.js'), 'utf8');
  const source = example.replace("from '../../js/cloudflare/index.mjs'", "from 'socket-lease/cloudflare'");
  assert.notEqual(source, example, 'the example imports js/cloudflare/index.mjs by path');
  fs.writeFileSync(path.join(worker, 'worker.js'), source);
  fs.copyFileSync(path.join(ROOT, 'examples', 'cloudflare', 'wrangler.toml'), path.join(worker, 'wrangler.toml'));
  const out = path.join(tmp, 'worker-dist');
  const deploy = await run(bin('wrangler'), ['deploy', '--dry-run', '--outdir', out], {
    cwd: worker,
    env: { WRANGLER_SEND_METRICS: 'false', WRANGLER_LOG_PATH: path.join(tmp, 'wrangler-logs'), CI: '1' },
  });
  assertOk(deploy, 'wrangler deploy --dry-run');
  assert.match(deploy.output, /--dry-run: exiting now/);
  const files = fs.readdirSync(out);
  const wasm = files.filter((f) => f.endsWith('.wasm'));
  assert.equal(wasm.length, 1, `one .wasm module: ${files}`);
  assert.ok(
    fs.readFileSync(path.join(out, wasm[0])).equals(fs.readFileSync(path.join(ROOT, 'pkg', 'web', 'socket_lease_bg.wasm'))),
    'the module is the web build',
  );
  const bundle = fs.readFileSync(path.join(out, 'worker.js'), 'utf8');
  assert.ok(bundle.includes(`"./${wasm[0]}"`), 'the Worker imports the .wasm module');
  assert.match(bundle, /SocketLeaseObject = class extends DurableObject/, 'the Durable Object class is bundled');
});
