// `node bench/churn-deno.mjs`: connection churn through socket-lease/deno versus the same
// Deno server without it, in one run. The method is bench/node-churn.mjs's, with Deno
// servers:
//
//   - two servers, each a Deno child process running this file with --serve: `bare`
//     (Deno.serve + Deno.upgradeWebSocket, echoing) and `guarded` (the same through
//     createDenoLease with an in-process LeaseRegistry). Both do the same user-id work
//     (userOf: identity is the host's cost, so the bare server reads the user and refuses
//     a request without one too) and echo the same JSON (the guarded one with the lease
//     id, read through the adapter, as a host that uses leases does);
//   - the client is this Node process (`ws`): one cycle is connect + HTTP upgrade -> send
//     -> echo -> close, `--batch` cycles at a time;
//   - the rounds, summary and targets are churn-client.mjs's `compare`, as for every host;
//     CPU is read by this process from /proc/<pid> (any runtime: the run time of all its
//     threads in task/*/schedstat, in ns, rather than stat's 10 ms ticks).
//
// Loopback only. The servers run with --allow-net=127.0.0.1 --allow-env --allow-read=.:
// read only because this file imports socket-lease/deno dynamically (it also runs under
// Node, which cannot parse the adapter's source-phase wasm import), and Deno checks
// dynamic imports against --allow-read.
//
//   node bench/churn-deno.mjs [--time-ms 2000] [--batch 8] [--rounds 12] [--json PATH]

/** @type {any} Deno's namespace when this file runs as a server */
const Deno = /** @type {any} */ (globalThis).Deno;

/**
 * The user id of a request, the same cheap way in both servers (the client always sends
 * `?user=<id>` as the whole query).
 * @param {Request} req
 */
function userOf(req) {
  const url = req.url;
  const at = url.indexOf('?user=');
  return at === -1 ? null : url.slice(at + 6) || null;
}

// ---------------------------------------------------------------- server (Deno) side

/** @param {'bare' | 'guarded'} kind */
async function serve(kind) {
  /** @type {(req: Request) => Response | Promise<Response>} */
  let handler;
  if (kind === 'guarded') {
    const { createDenoLease } = await import('socket-lease/deno');
    // A limit high enough that no cycle is refused: this measures the bookkeeping.
    const lease = createDenoLease({ userId: userOf, registry: { perUserLimit: 100_000 }, logLevel: 'silent' });
    const hooks = {
      /** @param {WebSocket} ws @param {MessageEvent} event */
      onMessage(ws, event) {
        ws.send(JSON.stringify({ type: 'echo', data: event.data, leaseId: lease.leaseIdOf(ws) }));
      },
    };
    handler = (req) => lease.upgrade(req, hooks);
  } else {
    /** @this {WebSocket} @param {MessageEvent} event */
    const onMessage = function (event) {
      this.send(JSON.stringify({ type: 'echo', data: event.data, leaseId: null }));
    };
    handler = (req) => {
      // The same identity work as the guarded server (see userOf).
      if (userOf(req) === null) return new Response(null, { status: 401 });
      const { socket, response } = Deno.upgradeWebSocket(req);
      socket.addEventListener('message', onMessage);
      return response;
    };
  }
  Deno.serve({ hostname: '127.0.0.1', port: 0, onListen: (/** @type {{ port: number }} */ { port }) => console.log(`ready ${port}`) }, handler);
}

// ---------------------------------------------------------------- client (Node) side

async function client() {
  const { spawn } = await import('node:child_process');
  const path = await import('node:path');
  const { parseArgs } = await import('node:util');
  const { fileURLToPath } = await import('node:url');
  const { compare, processCpuUs, readyPort, versionOf } = await import('./churn-client.mjs');

  const { values } = parseArgs({
    options: {
      'time-ms': { type: 'string', default: '2000' },
      batch: { type: 'string', default: '8' },
      rounds: { type: 'string', default: '12' },
      json: { type: 'string' },
    },
  });
  const self = fileURLToPath(import.meta.url);
  const root = path.resolve(path.dirname(self), '..');
  const deno = path.join(root, 'node_modules/.bin/deno');

  /** @param {'bare' | 'guarded'} kind */
  async function startServer(kind) {
    const child = spawn(deno, ['run', '--allow-net=127.0.0.1', '--allow-env', '--allow-read=.', self, '--serve', kind], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const port = await readyPort(child, kind);
    const pid = /** @type {number} */ (child.pid);
    return {
      kind,
      label: kind === 'bare' ? 'bare Deno.serve' : 'socket-lease/deno',
      url: `ws://127.0.0.1:${port}/ws`,
      cpu: () => processCpuUs(pid),
      stop: () => child.kill('SIGKILL'),
    };
  }

  const servers = [await startServer('bare'), await startServer('guarded')];
  try {
    const version = await versionOf(deno);
    await compare(servers, {
      title: `${version} servers, node ${process.version} client`,
      timeMs: Number(values['time-ms']),
      batch: Number(values.batch),
      rounds: Number(values.rounds),
      json: values.json,
      machine: { deno: version },
      cpuMethod: '/proc/<pid>/task/*/schedstat, every thread',
    });
  } finally {
    for (const s of servers) s.stop();
  }
}

if (Deno) {
  const at = Deno.args.indexOf('--serve');
  const kind = Deno.args[at + 1];
  if (at === -1 || (kind !== 'bare' && kind !== 'guarded')) throw new Error('under Deno this file is a bench server: --serve bare|guarded');
  await serve(kind);
} else {
  await client();
}
