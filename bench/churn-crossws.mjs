// Connection churn through socket-lease/crossws versus the same crossws server without it,
// in one run: srvx + crossws's Node adapter (crossws/server/node, as the demo serves), one
// child process per server, this process the client (ws over loopback).
//
// Targets (the same as the Node host's), printed met / NOT MET:
//   (a) the hooks' own server CPU per cycle (connect + upgrade -> send -> echo -> close)
//       at most 10 us over the bare crossws server (median of the per-round differences);
//   (b) guarded churn (cycles/s) at least 0.95 of bare churn (median of the per-round ratios).
//
// A fair comparison: both servers run the same crossws Node adapter with the same ws
// options (maxPayload 64 KiB, crossws's idle ping off: the guarded one pings itself every
// 30 s, which a run this short never reaches), make the same user-id call (userOf; the
// bare one answers 401 without a user, as the guard does) and echo the same JSON (the
// guarded one with the lease id, read through the guard's API). The only difference is
// the lease hooks.
//
// The rounds, summary and targets are churn-client.mjs's `compare`, as for every host; CPU
// is the run time of every thread of the server process (/proc/<pid>/task/*/schedstat).
//
//   node bench/churn-crossws.mjs [--time-ms 2000] [--batch 8] [--rounds 12] [--json PATH]
import { fork } from 'node:child_process';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { compare, processCpuUs } from './churn-client.mjs';

const SELF = fileURLToPath(import.meta.url);

/**
 * The user of a request, the same cheap way in both servers (identity is the host's cost,
 * not the guard's). The client always sends `?user=<id>` as the whole query.
 * @param {Request} request
 */
function userOf(request) {
  const url = request.url;
  const at = url.indexOf('?user=');
  return at === -1 ? null : url.slice(at + 6) || null;
}

// ---------------------------------------------------------------- server (child) side

/** @param {'bare' | 'guarded'} kind */
async function serveKind(kind) {
  const { serve } = await import('crossws/server/node');
  /** @type {any} */
  let websocket;
  if (kind === 'bare') {
    websocket = {
      upgrade: (/** @type {Request} */ request) => (userOf(request) === null ? new Response(null, { status: 401 }) : undefined),
      message: (/** @type {any} */ peer, /** @type {any} */ message) => peer.send(JSON.stringify({ type: 'echo', data: message.text(), leaseId: null })),
      options: { node: { idleTimeout: 0, serverOptions: { maxPayload: 64 * 1024 } } },
    };
  } else {
    const { createLeaseGuard } = await import('socket-lease/crossws');
    // A limit high enough that nothing is refused: this measures the bookkeeping.
    const guard = createLeaseGuard({ userId: userOf, registry: { perUserLimit: 100_000 }, logLevel: 'silent' });
    const echo = {
      message: (/** @type {any} */ peer, /** @type {any} */ message) =>
        peer.send(JSON.stringify({ type: 'echo', data: message.text(), leaseId: guard.leaseIdOf(peer) })),
    };
    websocket = { ...guard.hooks(echo, { path: '/ws' }), options: { node: guard.nodeOptions() } };
  }
  const server = serve({ port: 0, hostname: '127.0.0.1', silent: true, gracefulShutdown: false, fetch: () => new Response('http'), websocket });
  await server.ready();
  const address = /** @type {import('node:net').AddressInfo} */ (server.node?.server?.address());
  /** @type {any} */ (process).send({ ready: address.port });
  // The parent went away (or is done): exit normally, so --cpu-prof and the like can write.
  process.once('disconnect', () => process.exit(0));
}

// ---------------------------------------------------------------- client (parent) side

/** @param {'bare' | 'guarded'} kind */
async function startServer(kind) {
  const child = fork(SELF, ['--serve', kind], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const port = await new Promise((resolve, reject) => {
    child.once('message', (/** @type {any} */ m) => resolve(m.ready));
    child.once('exit', (code) => reject(new Error(`${kind} server exited with ${code}`)));
  });
  const pid = /** @type {number} */ (child.pid);
  return { kind, label: kind === 'bare' ? 'bare crossws' : 'socket-lease/crossws', child, url: `ws://127.0.0.1:${port}/ws`, cpu: () => processCpuUs(pid) };
}

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
  if (values.serve === 'bare' || values.serve === 'guarded') return serveKind(values.serve);
  const servers = [await startServer('bare'), await startServer('guarded')];
  try {
    await compare(servers, {
      title: `node ${process.version}, crossws on srvx (crossws/server/node)`,
      timeMs: Number(values['time-ms']),
      batch: Number(values.batch),
      rounds: Number(values.rounds),
      json: values.json,
      cpuMethod: '/proc/<pid>/task/*/schedstat, every thread',
    });
  } finally {
    for (const s of servers) s.child.kill();
  }
}

await main();
