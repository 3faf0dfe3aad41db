// The Node host's soak tool (js/node/soak.mjs) against the edge host: same echo protocol,
// same leak check, with a quarter of the cycles dropping the TCP connection without a close
// frame. The edge has one registry per user, so the tool reads that user's /metrics.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ROOT, startExample } from './harness.mjs';

/** @type {Awaited<ReturnType<typeof startExample>>} */
let app;
before(async () => {
  app = await startExample({ vars: { SOCKET_LEASE_LIMIT: '5' } });
});
after(() => app?.dispose());

test('soak: 200 cycles (25% abrupt) for one user against the Worker: exit 0, no leak', { timeout: 180_000 }, async (t) => {
  const args = [
    path.join(ROOT, 'js/node/soak.mjs'),
    '--url',
    `${app.base.replace(/^http/, 'ws')}/ws`,
    '--metrics-url',
    `${app.base}/metrics?user=soak-0`,
    '--users',
    '1',
    '--user-prefix',
    'soak-',
    '--cycles',
    '200',
    // Below the limit. Refusals are still possible (an abrupt drop reaches the object a
    // moment later) and are not a leak; the tool reports them apart.
    '--concurrency',
    '4',
    '--abrupt',
    '0.25',
    '--drain-timeout-ms',
    '20000',
    '--max-seconds',
    '120',
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  // If the test times out or fails, the child must not outlive it.
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const code = await new Promise((resolve) => child.on('exit', resolve));
  assert.equal(code, 0, output);
  assert.match(output, /no leak/);

  const { stats, active } = await app.stats('soak-0');
  assert.equal(active, 0);
  assert.equal(stats.acquired + stats.rejected, 200, 'every cycle reached the object');
  assert.equal(stats.released, stats.acquired, 'every granted lease came back');
  assert.equal(stats.unknownReleases, 0);
});
