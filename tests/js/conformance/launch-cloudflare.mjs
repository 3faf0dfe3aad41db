// Runs examples/cloudflare in real workerd (miniflare, through the Cloudflare tests'
// harness) as a host process with the Node demo's command-line contract, so the
// conformance suite starts it like any other host:
//
//   SOCKET_LEASE_LIMIT=5 node tests/js/conformance/launch-cloudflare.mjs
//
// - every SOCKET_LEASE_* variable of its environment becomes a Worker var of the same
//   name (overriding examples/cloudflare/wrangler.toml's [vars]); the Worker validates
//   them (js/cloudflare/config.mjs) and answers every upgrade 500 INVALID_CONFIG if one is
//   bad, as it would when deployed;
// - it listens on 127.0.0.1 and a free port only (HOST and PORT, if set, must say so);
// - its first stdout line is the Node demo's: `socket-lease demo listening on http://127.0.0.1:PORT`;
// - SIGTERM or SIGINT (or its stdin closing: the parent went away) disposes miniflare,
//   which stops workerd, then it exits 0. Open sockets get no close frame: workerd has no
//   shutdown hook for a Durable Object.
import { fstatSync } from 'node:fs';
import { startExample } from '../cloudflare/harness.mjs';

const host = process.env.HOST;
const port = process.env.PORT;
if ((host !== undefined && host !== '' && host !== '127.0.0.1') || (port !== undefined && port !== '' && port !== '0')) {
  console.error(`launch-cloudflare: only HOST=127.0.0.1 and PORT=0 are supported (miniflare picks a free port); got HOST=${host} PORT=${port}`);
  process.exit(2);
}

/** @type {Record<string, string>} */
const vars = {};
for (const [name, value] of Object.entries(process.env)) {
  if (name.startsWith('SOCKET_LEASE_') && value !== undefined) vars[name] = value;
}

/** @type {Awaited<ReturnType<typeof startExample>> | null} */
let app = null;
let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  // Still starting: the start-up path disposes once miniflare is up.
  if (!app) return;
  try {
    await app.dispose();
  } finally {
    process.exit(0);
  }
}
process.once('SIGTERM', stop);
process.once('SIGINT', stop);

try {
  app = await startExample({ vars });
} catch (err) {
  console.error(`launch-cloudflare: cannot start examples/cloudflare in workerd: ${err instanceof Error ? err.stack : String(err)}`);
  process.exit(1);
}
if (stopping) {
  // A signal arrived during start-up: stop() ran before app was set.
  await app.dispose();
  process.exit(0);
}
console.log(`socket-lease demo listening on ${app.base}`);
console.log(`  examples/cloudflare in workerd (miniflare); vars ${JSON.stringify(vars)}`);
// Started with a pipe as stdin (the suite does): when the other end closes, the parent is
// gone (even SIGKILLed), and so goes workerd. A terminal or /dev/null is not watched.
const stdin = fstatSync(0);
if (stdin.isFIFO() || stdin.isSocket()) process.stdin.on('end', stop).on('error', stop).resume();
