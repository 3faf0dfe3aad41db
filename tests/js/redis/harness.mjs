// Real redis-server processes for the tests: each on a free 127.0.0.1 port, in its own
// temp dir, without persistence unless a test asks for AOF; stopped, restarted, paused
// and cleaned up by the test that started it. Never a system Redis.
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { Redis } from 'ioredis';
import { run, waitFor } from '../node/helpers.mjs';

export { closed, connect, echo, getText, metric, open, run, waitFor } from '../node/helpers.mjs';

/** A port nobody listens on right now (Redis may still lose a race for it: we retry). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (server.address());
      server.close(() => resolve(port));
    });
  });
}

/**
 * Whether something answers PING with PONG on the port.
 * @param {number} port
 */
function ping(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    const done = (/** @type {boolean} */ ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      data += chunk;
      if (data.includes('\r\n')) done(data.startsWith('+PONG'));
    });
  });
}

/**
 * @typedef {object} RedisServer
 * @property {number} port
 * @property {string} url          redis://127.0.0.1:port
 * @property {string} dir
 * @property {() => Redis} admin   a plain client for assertions (closed after the test)
 * @property {(signal?: NodeJS.Signals) => Promise<void>} stop
 * @property {() => Promise<void>} start   again, same port, dir and settings
 * @property {() => void} pause   SIGSTOP: connections stay open, nothing is answered
 * @property {() => void} resume  SIGCONT
 */

/**
 * @param {import('node:test').TestContext} t
 * @param {{ aof?: boolean }} [options]
 * @returns {Promise<RedisServer>}
 */
export async function startRedis(t, options = {}) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'socket-lease-redis-'));
  /** @type {import('node:child_process').ChildProcess | null} */
  let child = null;
  /** @type {Promise<void> | null} */
  let exited = null;
  let port = 0;
  let log = '';
  /** @type {Redis[]} */
  const admins = [];

  const args = () => [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--dir', dir,
    '--save', '',
    ...(options.aof ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']),
    '--logfile', '',
    '--daemonize', 'no',
  ];

  async function launch() {
    const proc = spawn('redis-server', args(), { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    proc.stdout.setEncoding('utf8').on('data', (d) => (log += d));
    proc.stderr.setEncoding('utf8').on('data', (d) => (log += d));
    exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    await waitFor(async () => proc.exitCode !== null || (await ping(port)), `redis-server on port ${port}`, 10_000);
    return proc.exitCode === null;
  }

  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    if (await launch()) break;
    if (attempt === 4) throw new Error(`redis-server did not start:\n${log}`);
  }

  /** @type {RedisServer} */
  const server = {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    admin() {
      const client = new Redis({ port, host: '127.0.0.1', lazyConnect: false, maxRetriesPerRequest: 1 });
      client.on('error', () => {});
      admins.push(client);
      return client;
    },
    async stop(signal = 'SIGTERM') {
      const proc = child;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill(signal);
      await exited;
    },
    async start() {
      if (!(await launch())) throw new Error(`redis-server did not restart on port ${port}:\n${log}`);
    },
    pause() {
      child?.kill('SIGSTOP');
    },
    resume() {
      child?.kill('SIGCONT');
    },
  };

  t.after(async () => {
    for (const client of admins) client.disconnect();
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  });
  return server;
}

/**
 * Live leases of one user as Redis holds them right now (ZCOUNT over the user's set
 * against Redis's own clock).
 * @param {Redis} admin
 * @param {string} userId
 * @param {string} [prefix]
 */
export async function liveLeases(admin, userId, prefix = 'socket-lease:') {
  const [sec, usec] = await admin.time();
  const now = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
  return admin.zcount(`${prefix}u:${userId}`, `(${now}`, '+inf');
}

/**
 * Two (or more) demo servers as separate processes (`node examples/node/server.mjs`)
 * sharing one Redis; killed after the test.
 * @param {import('node:test').TestContext} t
 * @param {RedisServer} redis
 * @param {Record<string, string>} [env]
 */
export async function startNode(t, redis, env = {}) {
  const proc = run(t, ['examples/node/server.mjs'], {
    HOST: '127.0.0.1',
    PORT: '0',
    REDIS_URL: redis.url,
    SOCKET_LEASE_LIMIT: '5',
    SOCKET_LEASE_TTL_MS: '2000',
    SOCKET_LEASE_HEARTBEAT_MS: '400',
    SOCKET_LEASE_LOG_LEVEL: 'warn',
    ...env,
  });
  const url = await proc.url();
  return { ...proc, url, wsUrl: `${url.replace('http', 'ws')}/ws` };
}
