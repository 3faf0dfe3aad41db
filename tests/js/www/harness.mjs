// Shared by the page tests: the real demo server as a child process on a loopback port,
// Debian's Chromium through playwright-core, an error collector, and bounded polling
// (`eventually`) in place of fixed sleeps.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(fileURLToPath(new URL('../../..', import.meta.url)));
export const SCREENSHOTS = path.join(ROOT, 'target', 'screenshots');

// The flags of shared/TOOLCHAIN.md: headless, no sandbox (root in a container), no GPU,
// and nothing that reaches out to the network on its own.
const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/** Debian's Chromium (scripts/setup.sh installs it); CHROMIUM_PATH overrides. */
export function chromiumPath() {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter(Boolean);
  const found = candidates.find((p) => existsSync(/** @type {string} */ (p)));
  if (!found) throw new Error(`Chromium not found (tried ${candidates.join(', ')}); run \`bash scripts/setup.sh\``);
  return /** @type {string} */ (found);
}

export function launchBrowser() {
  return chromium.launch({ executablePath: chromiumPath(), args: CHROMIUM_ARGS });
}

/**
 * Starts `node examples/node/server.mjs` (or another demo host run by Node, such as
 * examples/socketio/server.mjs) on 127.0.0.1 with PORT=0 and reads the port from its
 * "listening on http://..." line.
 * @param {Record<string, string>} env  SOCKET_LEASE_* settings
 * @param {string} [script] the demo host, relative to the repository
 * @returns {Promise<{ url: string, output: () => string, stop: () => Promise<void> }>}
 */
export async function startServer(env, script = 'examples/node/server.mjs') {
  if (!existsSync(path.join(ROOT, 'pkg', 'web', 'socket_lease_bg.wasm'))) {
    throw new Error('pkg/web is not built: run `npm run build` first');
  }
  // The machine's own HOST, PORT, SOCKET_LEASE_* or REDIS_URL must not change the server
  // under test: only the settings given here reach it.
  /** @type {NodeJS.ProcessEnv} */
  const clean = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name === 'HOST' || name === 'PORT' || name === 'REDIS_URL' || name.startsWith('SOCKET_LEASE_')) continue;
    clean[name] = value;
  }
  const child = spawn(process.execPath, [script], {
    cwd: ROOT,
    env: { ...clean, HOST: '127.0.0.1', PORT: '0', SOCKET_LEASE_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (output += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (output += d));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));

  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`demo server did not report its URL within 15 s:\n${output}`)), 15_000);
    const onData = () => {
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (m) done(null, m[1]);
    };
    /** @param {Error | null} err @param {string} [value] */
    function done(err, value) {
      clearTimeout(timer);
      child.stdout.off('data', onData);
      if (err) {
        child.kill('SIGKILL');
        reject(err);
      } else resolve(value);
    }
    child.stdout.on('data', onData);
    exited.then(({ code, signal }) => done(new Error(`demo server exited (${code ?? signal}) before listening:\n${output}`)));
  });

  return {
    url,
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      // The server closes every socket and exits; a stuck one is killed after 5 s.
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Collects what must not happen during a page test: console errors, uncaught page
 * errors, failed requests and HTTP error responses. `allow` lists console errors a test
 * provokes on purpose; `assertClean` fails on any problem, and on an allowed pattern that
 * never matched (the provocation it was allowed for did not happen).
 * @param {import('playwright-core').Page} page
 */
export function watchErrors(page) {
  /** @type {string[]} */
  const problems = [];
  /** @type {{ re: RegExp, matched: number }[]} */
  const allowed = [];
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    const expected = allowed.find((a) => a.re.test(text));
    if (expected) {
      expected.matched++;
      return;
    }
    problems.push(`console error: ${text}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('requestfailed', (req) => problems.push(`request failed: ${req.url()} ${req.failure()?.errorText ?? ''}`));
  page.on('response', (res) => {
    if (res.status() >= 400) problems.push(`HTTP ${res.status()} for ${res.url()}`);
  });
  return {
    problems,
    /** @param {RegExp} re a console error the test provokes on purpose; it must occur */
    allow(re) {
      allowed.push({ re, matched: 0 });
    },
    assertClean() {
      assert.deepEqual(problems, [], 'no console error, page error, failed request or HTTP error');
      const never = allowed.filter((a) => a.matched === 0).map((a) => String(a.re));
      assert.deepEqual(never, [], 'every allowed console error occurred (else the test did not provoke what it claims)');
    },
  };
}

/**
 * Polls `probe` until `check` accepts its value, for at most `timeout` ms; throws with the
 * last value seen. The bound is a ceiling for a slow machine, not a timing assertion.
 * @template T
 * @param {() => Promise<T>} probe
 * @param {(value: T) => boolean} check
 * @param {string} what
 * @param {number} [timeout]
 * @returns {Promise<T>}
 */
export async function eventually(probe, check, what, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  /** @type {T | undefined} */
  let last;
  for (let delay = 20; ; delay = Math.min(delay * 2, 250)) {
    last = await probe();
    if (check(last)) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, delay));
  }
}

export function screenshotPath(/** @type {string} */ name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  return path.join(SCREENSHOTS, name);
}
