// The demo server's command line (`npm start`) and the soak tool (`npm run soak`), run as
// real child processes on ephemeral 127.0.0.1 ports.
import { test as nodeTest } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig, ConfigError } from '../../../examples/demo/config.mjs';
import { isLoopback } from '../../../js/node/soak.mjs';
import http from 'node:http';
import { childEnv, closed, getText, metric, open, run, startDemo } from './helpers.mjs';

/**
 * Every test is bounded, so a regression in a close or echo path fails instead of hanging
 * the run. The bound is far above any test's normal duration (a few seconds).
 * @param {string} name
 * @param {(t: import('node:test').TestContext) => unknown} fn
 */
const test = (name, fn) => nodeTest(name, { timeout: 60_000 }, fn);

const SERVER = 'examples/node/server.mjs';
const SOAK = 'js/node/soak.mjs';
const LEAKY = 'tests/js/node/fixtures/leaky-server.mjs';

test('configuration: defaults, variables, flags over variables', () => {
  assert.deepEqual(parseConfig({}, []), {
    host: '127.0.0.1',
    port: 8080,
    limit: 20,
    ttlMs: 90_000,
    heartbeatMs: 30_000,
    policy: 'reject',
    globalLimit: null,
    logLevel: 'info',
    redisUrl: null,
    redisClusterNodes: null,
    redisFailMode: 'closed',
    redisPrefix: 'socket-lease:',
    allowedOrigins: undefined,
    maxPayload: 65_536,
    maxBufferedBytes: 1_048_576,
    adminToken: null,
  });
  const env = {
    HOST: '::1',
    PORT: '9000',
    SOCKET_LEASE_LIMIT: '5',
    SOCKET_LEASE_TTL_MS: '60000',
    SOCKET_LEASE_HEARTBEAT_MS: '10000',
    SOCKET_LEASE_POLICY: 'evict-idle',
    SOCKET_LEASE_GLOBAL_LIMIT: '100',
    SOCKET_LEASE_ALLOWED_ORIGINS: ' https://App.Example , http://localhost:8080 ',
    SOCKET_LEASE_MAX_PAYLOAD: '4096',
    SOCKET_LEASE_ADMIN_TOKEN: 's3cret',
  };
  assert.deepEqual(parseConfig(env, ['--limit', '7', '--policy=evict-oldest', '--max-buffered', '2048']), {
    host: '::1',
    port: 9000,
    limit: 7,
    ttlMs: 60_000,
    heartbeatMs: 10_000,
    policy: 'evict-oldest',
    globalLimit: 100,
    logLevel: 'info',
    redisUrl: null,
    redisClusterNodes: null,
    redisFailMode: 'closed',
    redisPrefix: 'socket-lease:',
    allowedOrigins: ['https://App.Example', 'http://localhost:8080'],
    maxPayload: 4096,
    maxBufferedBytes: 2048,
    adminToken: 's3cret',
  });
  assert.equal(parseConfig({}, ['--help']), 'help');
  assert.deepEqual(parseConfig({ REDIS_CLUSTER_NODES: ' 127.0.0.1:7000, 127.0.0.1:7001 ' }, []).redisClusterNodes, ['127.0.0.1:7000', '127.0.0.1:7001']);
  assert.deepEqual(parseConfig({ REDIS_CLUSTER_NODES: '127.0.0.1:7000' }, ['--redis-cluster-nodes', 'redis-a:6379']).redisClusterNodes, ['redis-a:6379']);
});

test('configuration: every invalid value is refused with a message naming it', () => {
  /** @type {Array<[Record<string, string>, string[], RegExp]>} */
  const cases = [
    [{ SOCKET_LEASE_ALLOWED_ORIGINS: 'https://app.example/path' }, [], /SOCKET_LEASE_ALLOWED_ORIGINS: .*not an origin/],
    [{ SOCKET_LEASE_ALLOWED_ORIGINS: 'app.example' }, [], /SOCKET_LEASE_ALLOWED_ORIGINS: .*not an origin/],
    [{ SOCKET_LEASE_MAX_PAYLOAD: '0' }, [], /SOCKET_LEASE_MAX_PAYLOAD must be from 1/],
    [{}, ['--max-buffered', '-5'], /--max-buffered must be a whole number/],
    [{ SOCKET_LEASE_LIMIT: 'abc' }, [], /SOCKET_LEASE_LIMIT must be a whole number, got "abc"/],
    [{ SOCKET_LEASE_LIMIT: '0' }, [], /SOCKET_LEASE_LIMIT must be from 1/],
    [{}, ['--limit', '-3'], /--limit must be a whole number/],
    [{ PORT: '70000' }, [], /PORT must be from 0 to 65535/],
    [{ SOCKET_LEASE_POLICY: 'lru' }, [], /SOCKET_LEASE_POLICY must be reject, evict-oldest or evict-idle, got "lru"/],
    [{ SOCKET_LEASE_TTL_MS: '5000', SOCKET_LEASE_HEARTBEAT_MS: '5000' }, [], /SOCKET_LEASE_HEARTBEAT_MS \(5000\) must be below SOCKET_LEASE_TTL_MS \(5000\)/],
    [{ SOCKET_LEASE_GLOBAL_LIMIT: '1.5' }, [], /SOCKET_LEASE_GLOBAL_LIMIT must be a whole number/],
    [{ SOCKET_LEASE_LOG_LEVEL: 'loud' }, [], /SOCKET_LEASE_LOG_LEVEL must be debug/],
    [{}, ['--bogus', '1'], /unknown argument "--bogus"/],
    [{}, ['--port'], /--port needs a value/],
    [{ REDIS_CLUSTER_NODES: '127.0.0.1' }, [], /REDIS_CLUSTER_NODES must be host:port\[,host:port...\]/],
    [{}, ['--redis-cluster-nodes', '127.0.0.1:7000,127.0.0.1:99999'], /--redis-cluster-nodes must be host:port/],
    [{ REDIS_CLUSTER_NODES: '127.0.0.1:7000', REDIS_URL: 'redis://127.0.0.1:6379' }, [], /REDIS_CLUSTER_NODES and REDIS_URL name two stores/],
    [{ REDIS_CLUSTER_NODES: '127.0.0.1:7000', SOCKET_LEASE_GLOBAL_LIMIT: '10' }, [], /SOCKET_LEASE_GLOBAL_LIMIT is not supported with a Redis Cluster/],
  ];
  for (const [env, argv, message] of cases) {
    assert.throws(
      () => parseConfig(env, argv),
      (err) => err instanceof ConfigError && err.name === 'ConfigError' && err.code === 'INVALID_CONFIG' && message.test(err.message),
      message.source,
    );
  }
});

test('npm start with an invalid value stops before listening, with a clear message and status 2', async (t) => {
  const r = await run(t, [SERVER], { SOCKET_LEASE_POLICY: 'sometimes', PORT: '0' }).exited;
  assert.equal(r.code, 2);
  assert.match(r.stderr, /invalid configuration: INVALID_CONFIG: SOCKET_LEASE_POLICY must be reject, evict-oldest or evict-idle, got "sometimes"/);
  assert.doesNotMatch(r.stdout, /listening/);
});

test("child processes get a clean environment: the machine's HOST, PORT, SOCKET_LEASE_* and REDIS_URL never reach them", async (t) => {
  const names = ['HOST', 'PORT', 'REDIS_URL', 'SOCKET_LEASE_LIMIT', 'SOCKET_LEASE_POLICY'];
  const saved = names.map((name) => [name, process.env[name]]);
  t.after(() => {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[/** @type {string} */ (name)];
      else process.env[/** @type {string} */ (name)] = value;
    }
  });
  Object.assign(process.env, {
    HOST: '0.0.0.0',
    PORT: '80',
    REDIS_URL: 'redis://192.0.2.1:6379',
    SOCKET_LEASE_LIMIT: '1',
    SOCKET_LEASE_POLICY: 'evict-oldest',
  });
  const env = childEnv({ SOCKET_LEASE_LIMIT: '4' });
  assert.deepEqual(
    names.map((name) => env[name]),
    [undefined, undefined, undefined, '4', undefined],
    'only what the test sets',
  );
  assert.equal(env.PATH, process.env.PATH, 'the rest is kept');
  // End to end: the server a test starts runs with its defaults plus the test's settings.
  const server = run(t, [SERVER, '--port', '0', '--log-level', 'error'], { SOCKET_LEASE_LIMIT: '4' });
  const url = await server.url();
  assert.match(url, /^http:\/\/127\.0\.0\.1:/);
  const health = JSON.parse((await getText(`${url}/healthz`)).text);
  assert.equal(health.redis, undefined, 'in-memory store, not Redis');
  assert.equal(JSON.parse((await getText(`${url}/api/users/x`)).text).limit, 4);
});

test('the demo server prints its URL, applies its settings, and on SIGTERM closes sockets with 1001 and prints final stats', async (t) => {
  const server = run(t, [SERVER, '--port', '0', '--limit', '3'], { SOCKET_LEASE_LOG_LEVEL: 'warn' });
  const url = await server.url();
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const wsUrl = `${url.replace('http', 'ws')}/ws?user=zoe`;
  const clients = [await open(wsUrl), await open(wsUrl)];
  assert.equal(JSON.parse((await getText(`${url}/api/users/zoe`)).text).limit, 3);
  assert.equal(metric((await getText(`${url}/metrics`)).text, 'socket_lease_sockets_open'), 2);
  const codes = clients.map(closed);
  server.child.kill('SIGTERM');
  for (const { code } of await Promise.all(codes)) assert.equal(code, 1001);
  const r = await server.exited;
  assert.equal(r.code, 0);
  const final = /final stats (\{.*\})/.exec(r.stdout);
  assert.ok(final, r.stdout);
  const stats = JSON.parse(final[1]);
  assert.equal(stats.store.active, 0);
  assert.equal(stats.store.acquired, 2);
  assert.equal(stats.store.released, 2);
  assert.equal(stats.guard.closes['1001'], 2);
});

test('soak: only loopback targets', async (t) => {
  assert.ok(isLoopback('127.0.0.1') && isLoopback('127.9.9.9') && isLoopback('[::1]') && isLoopback('localhost'));
  assert.ok(!isLoopback('10.0.0.1') && !isLoopback('example.com') && !isLoopback('[::2]') && !isLoopback('128.0.0.1'));
  const r = await run(t, [SOAK, '--url', 'ws://192.0.2.1:8080/ws']).exited;
  assert.equal(r.code, 2);
  assert.match(r.stderr, /only targets loopback/);
  const bad = await run(t, [SOAK, '--abrupt', '2']).exited;
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--abrupt must be a fraction/);
  const badShare = await run(t, [SOAK, '--min-completed', 'most']).exited;
  assert.equal(badShare.code, 2);
  assert.match(badShare.stderr, /--min-completed must be a fraction/);
  // Empty, hex, exponent and signed values are not fractions: `--min-completed=` must not
  // silently turn the lock-out check off (Number('') is 0).
  for (const [option, value] of [
    ['min-completed', ''],
    ['min-completed', '0x0'],
    ['abrupt', '0x1'],
    ['abrupt', '1e-1'],
    ['min-completed', ' 0.5'],
    ['abrupt', '-0'],
  ]) {
    const r2 = await run(t, [SOAK, `--${option}=${value}`]).exited;
    assert.equal(r2.code, 2, `--${option}=${JSON.stringify(value)}`);
    assert.match(r2.stderr, new RegExp(`--${option} must be a fraction`));
  }
});

test('soak: /metrics unreadable after the run exits 6 (no leak check), not 1 (leak)', async (t) => {
  const demo = await startDemo(t, { limit: 5 });
  // A /metrics in front of the demo's that answers once (the baseline) and then fails.
  let reads = 0;
  const front = http.createServer(async (_req, res) => {
    if (reads++ > 0) return void res.writeHead(503).end('down');
    res.writeHead(200, { 'Content-Type': 'text/plain' }).end(await demo.guard.metrics());
  });
  await new Promise((resolve) => front.listen(0, '127.0.0.1', () => resolve(undefined)));
  t.after(() => new Promise((resolve) => front.close(() => resolve(undefined))));
  const metricsUrl = `http://127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (front.address()).port}/metrics`;
  const soak = await run(t, [
    SOAK,
    '--url',
    demo.wsUrl,
    '--metrics-url',
    metricsUrl,
    '--users',
    '1',
    '--cycles',
    '3',
    '--concurrency',
    '1',
    '--drain-timeout-ms',
    '200',
  ]).exited;
  assert.equal(soak.code, 6, soak.stdout + soak.stderr);
  assert.match(soak.stdout, /METRICS UNREADABLE/);
  assert.doesNotMatch(soak.stdout, /LEAK:/);
  assert.match(soak.stdout, /completed\s+3 of 3 /);
});

test('soak against the demo server: abrupt and clean disconnects, exits 0 with no leak', async (t) => {
  // Heartbeat short enough that anything the disconnects did not free is reclaimed well
  // within the drain timeout, and long enough that a live cycle of a soak process starved
  // on a loaded machine is not taken for a dead peer (that would be an echo failure).
  const server = run(t, [SERVER, '--port', '0', '--limit', '5', '--heartbeat-ms', '1000', '--ttl-ms', '5000', '--log-level', 'error']);
  const url = await server.url();
  const soak = await run(t, [
    SOAK,
    '--url',
    `${url.replace('http', 'ws')}/ws`,
    '--users',
    '4',
    '--cycles',
    '60',
    '--concurrency',
    '8',
    '--abrupt',
    '0.3',
    '--message',
    'hello soak',
    '--drain-timeout-ms',
    '10000',
  ]).exited;
  assert.equal(soak.code, 0, soak.stdout + soak.stderr);
  assert.match(soak.stdout, /240 cycles/);
  assert.match(soak.stdout, /completed\s+240 of 240 /);
  assert.match(soak.stdout, /echo failures\s+0/);
  assert.match(soak.stdout, /connect latency\s+p50 \d+\.\d+ ms\s+p99 \d+\.\d+ ms/);
  assert.match(soak.stdout, /round trip\s+p50 \d+\.\d+ ms/);
  assert.match(soak.stdout, /no leak/);
  const m = (await getText(`${url}/metrics`)).text;
  assert.equal(metric(m, 'socket_lease_active_leases'), 0);
  assert.equal(metric(m, 'socket_lease_unknown_release_total'), 0);
  const connects = Number(/connects\s+(\d+)/.exec(soak.stdout)?.[1]);
  assert.equal(metric(m, 'socket_lease_acquired_total'), connects);
});

test('soak against a server that never releases: the first run reports the leak (exit 1), a second run with the same users is locked out (exit 4)', async (t) => {
  const server = run(t, [LEAKY]);
  const url = await server.url();
  const args = [SOAK, '--url', `${url.replace('http', 'ws')}/ws`, '--users', '1', '--user-prefix', 'same-', '--concurrency', '1', '--drain-timeout-ms', '500'];
  const first = await run(t, [...args, '--cycles', '20']).exited;
  assert.equal(first.code, 1, first.stdout + first.stderr);
  assert.match(first.stdout, /LEAK: socket_lease_active_leases is 5/);
  // The leak shows up as refusals once the user's 5 slots are gone, exactly the incident;
  // every one came while this run held no socket of that user.
  assert.match(first.stdout, /refused\s+15 \(HTTP 429: 15\)/);
  assert.match(first.stdout, /of a user holding no socket of this run\s+15/);
  assert.match(first.stdout, /completed\s+5 of 20 /);
  assert.match(first.stdout, /LOCKED OUT: 5 of 20 cycles completed/);
  assert.match(first.stdout, /connection errors\s+0\n/, 'a refusal is not also a connection error');

  // The same users again: nothing new leaks (the count stays at 5), but no cycle gets in.
  // "No leak" must not pass for that.
  const second = await run(t, [...args, '--cycles', '10']).exited;
  assert.equal(second.code, 4, second.stdout + second.stderr);
  assert.match(second.stderr, /WARNING: the host already held 5 leases before this run/);
  assert.match(second.stdout, /WARNING: the host already held 5 leases before this run/, 'repeated in the summary');
  assert.match(second.stdout, /refused\s+10 \(HTTP 429: 10\)/);
  assert.match(second.stdout, /completed\s+0 of 10 /);
  assert.match(second.stdout, /LOCKED OUT: 0 of 10 cycles completed .*held no socket of this run/);
});

test('soak: a run whose cycles are mostly refused by its own concurrency fails with that advice; --min-completed 0 accepts it', async (t) => {
  const server = run(t, [SERVER, '--port', '0', '--limit', '1', '--log-level', 'error']);
  const url = await server.url();
  // One user, 8 cycles in flight, limit 1: most cycles are refused while another cycle of
  // this run holds the only slot. Not a leak, but not a useful soak either.
  const args = [SOAK, '--url', `${url.replace('http', 'ws')}/ws`, '--users', '1', '--cycles', '80', '--concurrency', '8', '--drain-timeout-ms', '10000'];
  const busy = await run(t, args).exited;
  assert.equal(busy.code, 4, busy.stdout + busy.stderr);
  assert.match(busy.stdout, /no leak/);
  assert.match(busy.stdout, /LOCKED OUT: .*lower --concurrency/);
  const accepted = await run(t, [...args, '--min-completed', '0']).exited;
  assert.equal(accepted.code, 0, accepted.stdout + accepted.stderr);
});

test('soak: a run cut short by --max-seconds exits 5 (incomplete), after its leak check', async (t) => {
  const server = run(t, [SERVER, '--port', '0', '--log-level', 'error']);
  const url = await server.url();
  // 200000 cycles cannot run in one second on any machine.
  const soak = await run(t, [
    SOAK,
    '--url',
    `${url.replace('http', 'ws')}/ws`,
    '--users',
    '1',
    '--cycles',
    '200000',
    '--concurrency',
    '4',
    '--max-seconds',
    '1',
  ]).exited;
  assert.equal(soak.code, 5, soak.stdout + soak.stderr);
  assert.match(soak.stdout, /stopped early at --max-seconds 1/);
  assert.match(soak.stdout, /no leak/);
  assert.match(soak.stdout, /INCOMPLETE: \d+ of 200000 cycles ran/);
});
