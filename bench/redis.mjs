// `npm run bench:redis`: acquire + release pairs per second through socket-lease/redis
// versus redis-semaphore (the established npm Redis semaphore) doing the same work: one
// semaphore per user, the same limit, the same TTL, against the same local Redis, in one
// run. The bench starts its own redis-server (free 127.0.0.1 port, temp dir, no
// persistence) and removes it at the end.
//
//   node bench/redis.mjs [--time-ms 1500] [--rounds 5] [--users 1024] [--limit 5]
//                        [--in-flight 1,64] [--pairs 2048] [--batch-size N] [--callgrind N]
//                        [--json target/bench/redis.json]
//
// One measured operation is `--pairs` acquire+release pairs (1 in flight: one after the
// other; 64 in flight: 64 workers each running its share in sequence, so 64 are pending
// at every moment but the tail). Users are taken round robin, so no acquire is refused
// at the limit: this measures the cost of the bookkeeping. Each round runs every
// contender in a rotating order; the summary is the median round (a shared 2-core machine
// has bursts of other load that a mean would smear over everything).
//
// After every phase the bench checks that nothing is left behind (socket-lease: no lease
// held by the store and no user set, record or connection key in Redis; redis-semaphore:
// no semaphore key), and fails otherwise.
//
// Also reported: Redis commands sent per operation (counted on the client side: every
// command ioredis sends, top-level only; commands inside scripts are not round trips),
// the commands Redis runs per pair (INFO commandstats, those inside scripts too), and CPU
// time per pair, of Redis (INFO cpu) and of this process.
//
// `--callgrind N` times nothing: it runs redis-server under valgrind's callgrind and
// reports the instructions Redis runs per pair (N pairs per contender and in-flight
// setting). Counts are the same on a busy machine as on an idle one, so they compare
// the two contenders' Redis work where timings on a shared VM swing twice over.
//
// Targets from issue 6: one round trip per operation; ratio >= 1.0 with 1 in flight and
// >= 1.5 with 64 in flight, although socket-lease also keeps the derived-id index, the
// global and users indexes, Redis-clock expiry and the eviction policies.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Bench } from 'tinybench';
import { Redis } from 'ioredis';
import { Semaphore } from 'redis-semaphore';
import { createRedisLeaseStore } from 'socket-lease/redis';
import { commandCalls, launchRedis } from '../scripts/redis-server.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    'time-ms': { type: 'string', default: '1500' },
    rounds: { type: 'string', default: '5' },
    users: { type: 'string', default: '1024' },
    limit: { type: 'string', default: '5' },
    'ttl-ms': { type: 'string', default: '90000' },
    'in-flight': { type: 'string', default: '1,64' },
    pairs: { type: 'string', default: '2048' },
    'batch-size': { type: 'string' },
    callgrind: { type: 'string' },
    json: { type: 'string', default: path.join(ROOT, 'target/bench/redis.json') },
  },
});
const TIME_MS = Number(values['time-ms']);
const ROUNDS = Number(values.rounds);
const USERS = Number(values.users);
const LIMIT = Number(values.limit);
const TTL_MS = Number(values['ttl-ms']);
const IN_FLIGHT = values['in-flight'].split(',').map(Number);
const PAIRS = Number(values.pairs);
// socket-lease/redis's batchSize; unset: the store's default.
const BATCH_SIZE = values['batch-size'] === undefined ? undefined : Number(values['batch-size']);
// --callgrind N: instead of timing, count the instructions redis-server runs per pair
// (N pairs per contender and in-flight setting) under valgrind's callgrind.
const CALLGRIND = values.callgrind === undefined ? 0 : Number(values.callgrind);
if (values.callgrind !== undefined && !(Number.isInteger(CALLGRIND) && CALLGRIND > 0)) throw new Error(`bench/redis: bad --callgrind: ${values.callgrind}`);
for (const [name, n] of Object.entries({
  TIME_MS,
  ROUNDS,
  USERS,
  LIMIT,
  TTL_MS,
  PAIRS,
  ...Object.fromEntries(IN_FLIGHT.map((v, i) => [`IN_FLIGHT[${i}]`, v])),
})) {
  if (!Number.isInteger(n) || n < 1) throw new Error(`bench/redis: bad ${name}: ${n}`);
}
const users = Array.from({ length: USERS }, (_, i) => `user-${i}`);

// ------------------------------------------------------------------- the Redis server

/** @param {string[]} [wrap] a command that runs redis-server (valgrind) */
async function startRedis(wrap) {
  const server = await launchRedis({ wrap, timeoutMs: wrap ? 60_000 : 10_000 });
  // Whatever happens to this process, its redis-server goes with it.
  const killChild = () => void server.destroy();
  process.once('exit', killChild);
  const admin = new Redis({ port: server.port, host: '127.0.0.1' });
  admin.on('error', () => {});
  await new Promise((resolve) => admin.once('ready', resolve));
  return {
    port: server.port,
    pid: server.pid,
    admin,
    async stop() {
      admin.disconnect();
      process.removeListener('exit', killChild);
      await server.destroy();
    },
  };
}

// ------------------------------------------------------------------- counting commands

// Every command any ioredis client sends goes through sendCommand; contenders run one at
// a time, so the difference over a phase is that contender's commands.
let commandsSent = 0;
const originalSend = Redis.prototype.sendCommand;
Redis.prototype.sendCommand = function countedSend(/** @type {any[]} */ ...args) {
  commandsSent++;
  return originalSend.apply(this, /** @type {any} */ (args));
};

/**
 * Commands per pair between two commandCalls, leaving out the bench's own INFO.
 * @param {Record<string, number>} before @param {Record<string, number>} after @param {number} pairs
 */
function callsPerPair(before, after, pairs) {
  /** @type {Record<string, number>} */
  const out = {};
  for (const [name, n] of Object.entries(after)) {
    const per = (n - (before[name] ?? 0)) / pairs;
    if (name !== 'info' && per >= 0.005) out[name] = Math.round(per * 100) / 100;
  }
  return out;
}

/** @param {Record<string, number>} calls */
const formatCalls = (calls) =>
  Object.entries(calls)
    .sort((a, b) => b[1] - a[1])
    .map(([name, n]) => `${name} ${n}`)
    .join(', ');

/** Redis's own CPU time so far, in microseconds. @param {Redis} admin */
async function redisCpuUs(admin) {
  const info = await admin.info('cpu');
  const user = Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1] ?? 0);
  const sys = Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1] ?? 0);
  return (user + sys) * 1e6;
}

// ------------------------------------------------------------------- contenders

/**
 * @typedef {object} Contender
 * @property {string} name
 * @property {(user: string) => Promise<void>} pair   one acquire + release
 * @property {() => Promise<void>} close
 * @property {(admin: Redis) => Promise<string[]>} leftBehind   what is still held after a phase (must be nothing)
 * @property {number} refused
 * @property {number} pairs
 */

/**
 * @param {string} url
 * @returns {Promise<Contender>}
 */
async function socketLease(url) {
  const store = createRedisLeaseStore({
    url,
    prefix: 'bench:',
    perUserLimit: LIMIT,
    ttlMs: TTL_MS,
    onLimit: 'reject',
    logLevel: 'silent',
    ...(BATCH_SIZE === undefined ? {} : { batchSize: BATCH_SIZE }),
  });
  if (!(await store.ready(10_000))) throw new Error('socket-lease/redis: not connected');
  /** @type {Contender} */
  const c = {
    name: 'socket-lease/redis',
    refused: 0,
    pairs: 0,
    async pair(user) {
      const r = await store.acquire(user);
      c.pairs++;
      if (!r.ok) {
        c.refused++;
        return;
      }
      await store.release(r.lease.id);
    },
    close: () => store.close(),
    async leftBehind(admin) {
      const held = (await store.stats()).active;
      const keys = [...(await admin.keys('bench:u:*')), ...(await admin.keys('bench:l:*')), ...(await admin.keys('bench:c:*'))];
      return [...(held ? [`${held} leases still held by the store`] : []), ...keys];
    },
  };
  return c;
}

/**
 * redis-semaphore as its README shows it: an ioredis client, one Semaphore per holder on
 * a per-user key, the same limit and TTL. tryAcquire (one attempt, like socket-lease's
 * immediate answer) and no refresh timer (socket-lease renews through the host's
 * heartbeat, not a timer per lease). The client has the same 1000 ms command timeout as
 * socket-lease's: an upgrade path must not hang on a stalled Redis either way.
 * @param {number} port
 * @returns {Promise<Contender>}
 */
async function redisSemaphore(port) {
  const client = new Redis({ port, host: '127.0.0.1', commandTimeout: 1000 });
  await new Promise((resolve) => client.once('ready', resolve));
  /** @type {Contender} */
  const c = {
    name: 'redis-semaphore',
    refused: 0,
    pairs: 0,
    async pair(user) {
      const semaphore = new Semaphore(client, user, LIMIT, { lockTimeout: TTL_MS, acquireAttemptsLimit: 1, refreshInterval: 0 });
      c.pairs++;
      if (!(await semaphore.tryAcquire())) {
        c.refused++;
        return;
      }
      await semaphore.release();
    },
    async close() {
      await client.quit();
    },
    // An empty sorted set is no key: any key left is a semaphore still held.
    leftBehind: (admin) => admin.keys('semaphore:*'),
  };
  return c;
}

/**
 * `PAIRS` pairs with `inFlight` pending at a time.
 * @param {Contender} c
 * @param {number} inFlight
 */
function batch(c, inFlight, pairs = PAIRS) {
  let next = 0;
  const worker = async () => {
    while (next < pairs) {
      const i = next++;
      await c.pair(users[i % USERS]);
    }
  };
  return Promise.all(Array.from({ length: Math.min(inFlight, pairs) }, worker));
}

/** @param {number[]} xs */
function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

// ------------------------------------------------------------------- run

// Under callgrind: every instruction counted (the dumps go to a temp dir of their own).
const callgrindDir = CALLGRIND ? await mkdtemp(path.join(os.tmpdir(), 'socket-lease-callgrind-')) : '';
const redis = await startRedis(CALLGRIND ? ['valgrind', '--tool=callgrind', `--callgrind-out-file=${callgrindDir}/callgrind.out.%p`] : undefined);
const url = `redis://127.0.0.1:${redis.port}`;
const contenders = [await socketLease(url), await redisSemaphore(redis.port)];
const [ours, theirs] = contenders;
const version = String(await redis.admin.info('server')).match(/redis_version:(\S+)/)?.[1];
console.log(
  `node ${process.version}, redis ${version}, ${USERS} users, limit ${LIMIT}, ttl ${TTL_MS} ms, ` +
    (CALLGRIND ? `${CALLGRIND} pairs per contender under callgrind` : `${PAIRS} pairs per operation, ${ROUNDS} rounds of ${TIME_MS} ms per contender`),
);

/**
 * Instructions redis-server ran (user space: its own code, Lua, libc; not the kernel)
 * for `pairs` pairs of one contender, and the commands it ran for them. Counts, not
 * seconds: the same on a busy machine as on an idle one.
 * @param {Contender} c @param {number} inFlight @param {number} pairs
 */
async function countInstructions(c, inFlight, pairs) {
  const pid = String(redis.pid());
  await batch(c, inFlight, Math.min(pairs, 500)); // warm
  const calls = await commandCalls(redis.admin);
  execFileSync('callgrind_control', ['--zero', pid], { stdio: 'ignore' });
  await batch(c, inFlight, pairs);
  execFileSync('callgrind_control', ['--dump', pid], { stdio: 'ignore' });
  const after = await commandCalls(redis.admin);
  // The newest dump of this process: callgrind.out.<pid>.<n>.
  const dumps = (await readdir(callgrindDir)).filter((f) => f.startsWith(`callgrind.out.${pid}.`));
  const last = dumps.sort((a, b) => Number(a.split('.').pop()) - Number(b.split('.').pop())).at(-1);
  const summary = /^summary: (\d+)$/m.exec(await readFile(path.join(callgrindDir, String(last)), 'utf8'));
  if (!summary) throw new Error(`bench/redis: no callgrind summary in ${last}`);
  const left = await c.leftBehind(redis.admin);
  if (left.length > 0) throw new Error(`${c.name}: left behind: ${left.slice(0, 5).join(', ')}`);
  return { instructionsPerPair: Math.round(Number(summary[1]) / pairs), commandsPerPair: callsPerPair(calls, after, pairs) };
}

/** @type {Record<string, any>} */
const results = {};
try {
  if (CALLGRIND) {
    for (const inFlight of IN_FLIGHT) {
      results[inFlight] = {};
      for (const c of contenders) {
        const r = await countInstructions(c, inFlight, CALLGRIND);
        results[inFlight][c.name] = r;
        console.log(
          `  ${inFlight} in flight, ${c.name}: ${r.instructionsPerPair.toLocaleString('en-US')} Redis instructions per pair; commands per pair: ${formatCalls(r.commandsPerPair)}`,
        );
      }
    }
    results.config = { node: process.version, redis: version, users: USERS, limit: LIMIT, ttlMs: TTL_MS, callgrindPairs: CALLGRIND };
    if (values.json) {
      const file = values.json.replace(/(\.json)?$/, '-callgrind.json');
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, JSON.stringify(results, null, 2) + '\n');
      console.log(`\nwrote ${path.relative(ROOT, file)}`);
    }
  } else {
    // Round trips: a fixed number of pairs per contender, commands counted around them.
    /** @type {Record<string, number>} */
    const commandsPerOp = {};
    /** @type {Record<string, Record<string, number>>} */
    const serverCalls = {};
    for (const c of contenders) {
      await batch(c, 1); // warm (scripts loaded, connections up)
      // What Redis runs per pair, one in flight (a script's commands counted one by one).
      const calls = await commandCalls(redis.admin);
      await batch(c, 1);
      serverCalls[c.name] = callsPerPair(calls, await commandCalls(redis.admin), PAIRS);
      const before = commandsSent;
      const pairsBefore = c.pairs;
      await batch(c, 16);
      commandsPerOp[c.name] = (commandsSent - before) / ((c.pairs - pairsBefore) * 2);
    }

    for (const inFlight of IN_FLIGHT) {
      /** @type {Record<string, number[]>} */
      const rates = { [ours.name]: [], [theirs.name]: [] };
      /** @type {Record<string, number[]>} */
      const redisCpu = { [ours.name]: [], [theirs.name]: [] };
      /** @type {Record<string, number[]>} */
      const clientCpu = { [ours.name]: [], [theirs.name]: [] };
      // Each round runs both back to back: the ratio within a round is steadier than the
      // ratio of the medians when the machine's load drifts.
      /** @type {number[]} */
      const roundRatios = [];
      for (let round = 0; round < ROUNDS; round++) {
        const order = round % 2 ? [theirs, ours] : [ours, theirs];
        for (const c of order) {
          // iterations: a floor, not the default 64 (one iteration is PAIRS pairs, so 64 of
          // them would take many times --time-ms with one in flight).
          const bench = new Bench({ time: TIME_MS, iterations: 3, warmupTime: 200, warmupIterations: 1, throws: true });
          bench.add(c.name, () => batch(c, inFlight));
          const pairsBefore = c.pairs;
          const cpuBefore = await redisCpuUs(redis.admin);
          const clientBefore = process.cpuUsage();
          await bench.run();
          const client = process.cpuUsage(clientBefore);
          const cpuAfter = await redisCpuUs(redis.admin);
          const done = c.pairs - pairsBefore;
          // Correctness after every phase: every acquire was released, nothing is left.
          const left = await c.leftBehind(redis.admin);
          if (left.length > 0) throw new Error(`${c.name}: left behind after a phase: ${left.slice(0, 5).join(', ')}${left.length > 5 ? ', ...' : ''}`);
          const r = /** @type {any} */ (bench.tasks[0].result);
          if (r.state !== 'completed') throw new Error(`${c.name}: ${r.state} ${String(r.error ?? '')}`);
          rates[c.name].push((PAIRS * 1000) / r.latency.mean);
          redisCpu[c.name].push((cpuAfter - cpuBefore) / done);
          clientCpu[c.name].push((client.user + client.system) / done);
        }
        roundRatios.push(/** @type {number} */ (rates[ours.name].at(-1)) / /** @type {number} */ (rates[theirs.name].at(-1)));
        console.log(
          `  ${inFlight} in flight, round ${round + 1}: ${Object.entries(rates)
            .map(([k, v]) => `${k} ${v.at(-1)?.toFixed(0)}`)
            .join(', ')} pairs/s`,
        );
      }
      results[inFlight] = {
        pairsPerSecond: { [ours.name]: median(rates[ours.name]), [theirs.name]: median(rates[theirs.name]) },
        redisCpuUsPerPair: { [ours.name]: median(redisCpu[ours.name]), [theirs.name]: median(redisCpu[theirs.name]) },
        clientCpuUsPerPair: { [ours.name]: median(clientCpu[ours.name]), [theirs.name]: median(clientCpu[theirs.name]) },
        ratio: median(roundRatios),
        ratioOfMedians: median(rates[ours.name]) / median(rates[theirs.name]),
        target: inFlight === 1 ? 1.0 : inFlight >= 64 ? 1.5 : null,
      };
    }

    console.log('\nacquire + release pairs per second, median of the rounds (ratio: median of the per-round ratios):');
    console.log('  in flight | socket-lease/redis | redis-semaphore | ratio | target | Redis CPU/pair (ours / theirs) | client CPU/pair (ours / theirs)');
    for (const inFlight of IN_FLIGHT) {
      const r = results[inFlight];
      const p = r.pairsPerSecond;
      const target = r.target === null ? '-' : `>= ${r.target.toFixed(1)} ${r.ratio >= r.target ? 'met' : 'NOT met'}`;
      console.log(
        `  ${String(inFlight).padStart(9)} | ${p[ours.name].toFixed(0).padStart(18)} | ${p[theirs.name].toFixed(0).padStart(15)} | ${r.ratio.toFixed(2).padStart(5)} | ${target} | ${r.redisCpuUsPerPair[ours.name].toFixed(1)} / ${r.redisCpuUsPerPair[theirs.name].toFixed(1)} us | ${r.clientCpuUsPerPair[ours.name].toFixed(1)} / ${r.clientCpuUsPerPair[theirs.name].toFixed(1)} us`,
      );
    }
    console.log('\nRedis commands (round trips) per operation (acquire or release), counted at the client:');
    for (const c of contenders) console.log(`  ${c.name.padEnd(20)} ${commandsPerOp[c.name].toFixed(2)}`);
    for (const c of contenders) if (c.refused) console.log(`  note: ${c.name} had ${c.refused} refused acquires`);
    console.log('\nCommands Redis runs per pair with one in flight (INFO commandstats; those inside scripts too):');
    for (const c of contenders) console.log(`  ${c.name.padEnd(20)} ${formatCalls(serverCalls[c.name])}`);
    results.commandsPerOperation = commandsPerOp;
    results.redisCommandsPerPair = serverCalls;
    results.config = { node: process.version, redis: version, users: USERS, limit: LIMIT, ttlMs: TTL_MS, pairs: PAIRS, rounds: ROUNDS, timeMs: TIME_MS };
    if (values.json) {
      await mkdir(path.dirname(values.json), { recursive: true });
      await writeFile(values.json, JSON.stringify(results, null, 2) + '\n');
      console.log(`\nwrote ${path.relative(ROOT, values.json)}`);
    }
  }
} finally {
  for (const c of contenders) await c.close();
  await redis.stop();
  if (callgrindDir) await rm(callgrindDir, { recursive: true, force: true });
}
