// The same socket-lease/crossws hooks on crossws's Bun and Deno adapters, in the real
// runtimes (the bun and deno binaries of devDependencies): the answers are the lifecycle's,
// and heartbeat `auto` takes the right road on each (Bun's peers ping and report pongs;
// Deno's peers cannot ping, so the runtime's idle timeout keeps them and the guard renews).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import WebSocket from 'ws';
import { ROOT, childEnv, closed, connect, open, waitFor } from '../node/helpers.mjs';

const FIXTURE = 'tests/js/crossws/fixtures/serve.mjs';
const RUNTIMES = {
  bun: [path.join(ROOT, 'node_modules/.bin/bun'), FIXTURE],
  deno: [path.join(ROOT, 'node_modules/.bin/deno'), 'run', '--allow-net=127.0.0.1', '--allow-read=.', '--allow-env', FIXTURE],
};

/**
 * @param {import('node:test').TestContext} t
 * @param {string[]} argv
 */
async function startRuntime(t, argv) {
  const child = spawn(argv[0], argv.slice(1), { cwd: ROOT, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stderr.setEncoding('utf8').on('data', (d) => (out += d));
  child.stdout.setEncoding('utf8');
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'close');
    }
  });
  const url = await new Promise((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d) => {
      buf += d;
      const line = buf.split('\n').find((l) => l.startsWith('http://'));
      if (line) resolve(line.trim());
    });
    child.once('close', (code) => reject(new Error(`${argv[0]} exited ${code}: ${out}`)));
  });
  const stats = async () => /** @type {any} */ (await (await fetch(`${url}/stats`)).json());
  return { ws: (/** @type {string} */ user) => `${url.replace('http', 'ws')}/ws?user=${user}`, stats, output: () => out };
}

for (const [name, argv] of Object.entries(RUNTIMES)) {
  test(`${name}: 429 with Retry-After, auto heartbeat, renewal past the TTL, release on close`, { timeout: 60_000 }, async (t) => {
    const host = await startRuntime(t, argv);
    const live = await open(host.ws('a'));
    let pings = 0;
    live.on('ping', () => pings++);
    live.send('hi');
    const [reply] = await once(live, 'message');
    assert.match(String(reply), /^conn_[0-9a-z]{26} hi$/);
    const over = await connect(host.ws('a'));
    assert.ok(!over.ok, 'the second socket of a user with a limit of 1 is refused');
    if (over.ok) return;
    assert.equal(over.status, 429);
    assert.match(String(over.headers['retry-after']), /^[1-9]\d*$/);
    assert.deepEqual(JSON.parse(over.body), { reason: 'user-limit', limit: 1, active: 1 });

    const silent = await open(host.ws('s'), { autoPong: false });
    const silentClosed = closed(silent);
    await delay(1000); // two and a half TTLs, ten heartbeats
    assert.equal(live.readyState, WebSocket.OPEN);
    const s = await host.stats();
    assert.equal(s.store.expired, 0, 'the live lease was renewed without any message');
    if (name === 'bun') {
      assert.ok(pings >= 3, `Bun's peers ping (${pings} pings)`);
      assert.equal((await silentClosed).code, 1006, 'a peer that does not pong is terminated');
      assert.ok(s.guard.heartbeatTimeouts >= 1);
    } else {
      // Deno's peer cannot ping: no "ping not supported" warning, no termination by the
      // guard; Deno's own idleTimeout (30 s) is what drops a dead peer there.
      assert.equal(pings, 0);
      assert.equal(silent.readyState, WebSocket.OPEN);
      assert.doesNotMatch(host.output(), /not supported/);
      silent.close();
    }
    live.close();
    await waitFor(async () => (await host.stats()).store.active === 0, 'every lease released');
    assert.equal((await host.stats()).store.unknownReleases, 0);
  });
}
