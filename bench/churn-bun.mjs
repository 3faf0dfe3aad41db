// `node bench/churn-bun.mjs`: connection churn through socket-lease/bun versus the same
// Bun.serve without it, in one run. The method is bench/node-churn.mjs's, for Bun:
//
//   - two servers, each in its own bun process (this file, run by bun with --serve): bare
//     Bun.serve, and the same with createBunLease (a LeaseRegistry). Both do the same
//     user-id work (userOf, the host's cost: the bare one refuses a request without a
//     user too) and echo the same JSON (the guarded one with the lease id from ws.data).
//     The bare server keeps Bun's defaults (idleTimeout 120 s, sendPings), as a Bun
//     application would; the adapter turns both off and pings itself, which costs
//     nothing in a cycle this short (the heartbeat's cost is in docs/bun.md).
//   - this Node process is the client: connect + upgrade -> send -> echo -> close cycles,
//     `--batch` at a time.
//   - the rounds, summary and targets are churn-client.mjs's `compare`, as for every host:
//     churn in short interleaved slices, server CPU per cycle with both servers driven at
//     once, here read from /proc/<pid>/task/*/schedstat (every thread: Bun's HTTP and GC
//     threads count too; see processCpuUs in churn-client.mjs).
//
// Linux only (/proc); loopback only.
//
//   node bench/churn-bun.mjs [--time-ms 2000] [--batch 8] [--rounds 12] [--json PATH]
import path from 'node:path';
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);
const ROOT = path.resolve(path.dirname(SELF), '..');
const BUN = path.join(ROOT, 'node_modules/.bin/bun');

/** @typedef {'bare' | 'guarded'} Kind */

// ---------------------------------------------------------------- server side (under bun)

/**
 * The user of a request, the same cheap way in both servers (the client always sends
 * `?user=<id>` as the whole query): identity is the host's cost, not the adapter's.
 * @param {Request} req
 */
function userOf(req) {
  const url = req.url;
  const at = url.indexOf('?user=');
  return at === -1 ? null : url.slice(at + 6) || null;
}

/** @param {Kind} kind */
async function serve(kind) {
  const Bun = /** @type {any} */ (globalThis).Bun;
  /** @type {any} */
  let options;
  if (kind === 'bare') {
    options = {
      fetch(/** @type {Request} */ req, /** @type {any} */ server) {
        const user = userOf(req);
        if (user === null) return new Response(null, { status: 401 });
        return server.upgrade(req, { data: { user } }) ? undefined : new Response(null, { status: 400 });
      },
      websocket: {
        message(/** @type {any} */ ws, /** @type {string} */ message) {
          ws.send(JSON.stringify({ type: 'echo', data: String(message), leaseId: null }));
        },
      },
    };
  } else {
    const { createBunLease } = await import('socket-lease/bun');
    // A limit high enough never to refuse: this measures the bookkeeping, not refusals.
    const lease = createBunLease({ userId: userOf, registry: { perUserLimit: 100_000 }, logLevel: 'silent' });
    options = {
      fetch: (/** @type {Request} */ req, /** @type {any} */ server) => lease.upgrade(req, server),
      websocket: lease.websocket({
        message(ws, message) {
          ws.send(JSON.stringify({ type: 'echo', data: String(message), leaseId: ws.data.lease.leaseId }));
        },
      }),
    };
  }
  const server = Bun.serve({ hostname: '127.0.0.1', port: 0, ...options });
  console.log(`ready ${server.port}`);
}

// ---------------------------------------------------------------- client side (under node)

/** @param {Kind} kind */
async function startServer(kind) {
  const child = spawn(BUN, [SELF, '--serve', kind], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await client.readyPort(child, kind);
  return {
    kind,
    label: kind === 'bare' ? 'bare Bun.serve' : 'socket-lease/bun',
    url: `ws://127.0.0.1:${port}/ws`,
    child,
    cpu: () => client.processCpuUs(/** @type {number} */ (child.pid)),
  };
}

// The shared client side (ws, /proc readers), loaded on the client side only: the servers
// under bun never need it.
/** @type {typeof import('./churn-client.mjs')} */
let client;

async function main() {
  const { values } = parseArgs({
    options: {
      serve: { type: 'string' },
      'time-ms': { type: 'string', default: '2000' },
      batch: { type: 'string', default: '8' },
      rounds: { type: 'string', default: '12' },
      json: { type: 'string' },
    },
  });
  if (values.serve === 'bare' || values.serve === 'guarded') return serve(values.serve);
  client = await import('./churn-client.mjs');
  const servers = [await startServer('bare'), await startServer('guarded')];
  try {
    const version = await client.versionOf(BUN);
    await client.compare(servers, {
      title: `bun ${version} servers, node ${process.version} client`,
      timeMs: Number(values['time-ms']),
      batch: Number(values.batch),
      rounds: Number(values.rounds),
      json: values.json,
      machine: { bun: version },
      cpuMethod: '/proc/<pid>/task/*/schedstat, every thread',
    });
  } finally {
    for (const s of servers) s.child.kill();
  }
}

await main();
