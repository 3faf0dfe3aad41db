// A private redis-server for the Redis tests (tests/js/redis/harness.mjs) and the Redis
// benchmark (bench/redis.mjs): a free 127.0.0.1 port, its own temp dir, no persistence
// unless AOF is asked for. Never a system Redis, so a run can neither read nor damage
// someone's data and two runs never share state. It knows nothing of node:test: the
// harness ties it to a test's lifetime, the bench to its own.
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';

/** A port nobody listens on right now (redis-server may still lose a race for it: launchRedis retries). */
export function freePort() {
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
 * Whether something answers PING with PONG on the port (a bare TCP connect is not
 * enough: redis-server accepts before it has loaded an AOF).
 * @param {number} port
 * @returns {Promise<boolean>}
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
 * @typedef {object} RedisProcess
 * @property {number} port
 * @property {() => number | undefined} pid   of the running process (under `wrap`, the wrapper's, which for valgrind is the server's)
 * @property {string} url          redis://127.0.0.1:port
 * @property {string} dir          its working dir (AOF files)
 * @property {() => string} log    what it printed so far
 * @property {(signal?: NodeJS.Signals) => Promise<void>} stop   and wait for it to exit (no-op when not running)
 * @property {() => Promise<void>} start   again, same port, dir and settings
 * @property {() => void} pause    SIGSTOP: connections stay open, nothing is answered
 * @property {() => void} resume   SIGCONT
 * @property {() => Promise<void>} destroy   kill it whatever its state and remove its dir
 */

/**
 * @param {{ aof?: boolean, timeoutMs?: number, wrap?: string[], args?: string[] }} [options]
 *   wrap: a command that runs redis-server (e.g. valgrind and its options), its
 *   arguments first; args: more redis-server arguments (a cluster node's, say)
 * @returns {Promise<RedisProcess>}
 */
export async function launchRedis(options = {}) {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'socket-lease-redis-'));
  /** @type {import('node:child_process').ChildProcess | null} */
  let child = null;
  /** @type {Promise<void> | null} */
  let exited = null;
  let port = 0;
  let log = '';

  const args = () => [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    ...(options.aof ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']),
    '--logfile',
    '',
    '--daemonize',
    'no',
    ...(options.args ?? []),
  ];

  /** @returns {Promise<boolean>} whether it answers (false: it exited, e.g. the port was taken) */
  async function launch() {
    const [command, ...prefix] = [...(options.wrap ?? []), 'redis-server'];
    const proc = spawn(command, [...prefix, ...args()], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    /** @type {NonNullable<typeof proc.stdout>} */ (proc.stdout).setEncoding('utf8').on('data', (d) => (log += d));
    /** @type {NonNullable<typeof proc.stderr>} */ (proc.stderr).setEncoding('utf8').on('data', (d) => (log += d));
    exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    const deadline = Date.now() + timeoutMs;
    while (proc.exitCode === null && !(await ping(port))) {
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`redis-server on port ${port} did not answer within ${timeoutMs} ms:\n${log}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return proc.exitCode === null;
  }

  const running = () => child !== null && child.exitCode === null && child.signalCode === null;
  try {
    for (let attempt = 0; ; attempt++) {
      port = await freePort();
      if (await launch()) break;
      if (attempt === 4) throw new Error(`redis-server did not start:\n${log}`);
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    pid: () => child?.pid,
    log: () => log,
    async stop(signal = 'SIGTERM') {
      if (!running()) return;
      /** @type {import('node:child_process').ChildProcess} */ (child).kill(signal);
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
    async destroy() {
      if (running()) {
        // A paused server ignores SIGTERM until continued; SIGKILL works either way, and
        // the CONT lets it be reaped at once.
        child?.kill('SIGCONT');
        child?.kill('SIGKILL');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Calls of each command Redis has run so far, by name (those inside scripts too), from
 * its own INFO commandstats: exact, unlike MONITOR, which starts asynchronously and may
 * miss calls. Used by the Redis tests and the Redis bench.
 * @param {{ info(section: string): Promise<string> }} client
 * @returns {Promise<Record<string, number>>}
 */
export async function commandCalls(client) {
  /** @type {Record<string, number>} */
  const calls = {};
  for (const m of String(await client.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls[m[1]] = Number(m[2]);
  return calls;
}
