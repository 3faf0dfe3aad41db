// A Deno host for tests/js/deno/*.test.mjs: socket-lease/deno with the options in the
// SL_FIXTURE environment variable (JSON), run with --allow-net and --allow-env only (no
// --allow-read: the adapter must not need it). Prints the conformance contract's first
// line, so the suite's startHost() can start it.
//
//   GET /ws?user=<id>[&protocol=<p>]   the adapter; text is echoed {type, data, leaseId, userId}
//   GET /state                         lease.stats() and the store's stats
//   GET /user/<id>                     the store's view of one user (leases, touchedAt)
//   GET /close                         lease.close(), then the same as /state
//   GET /metrics                       lease.metrics()
import { createDenoLease } from 'socket-lease/deno';

/** @type {any} */
const Deno = /** @type {any} */ (globalThis).Deno;
const fixture = JSON.parse(Deno.env.get('SL_FIXTURE') ?? '{}');

/** @param {Request} req */
function userOf(req) {
  return new URL(req.url).searchParams.get('user');
}

const lease = createDenoLease({
  // asyncUserMs: identity answers after a delay (a session lookup), so admission is a promise.
  userId: fixture.asyncUserMs ? (req) => new Promise((resolve) => setTimeout(() => resolve(userOf(req)), fixture.asyncUserMs)) : userOf,
  logLevel: 'silent',
  ...fixture.options,
});
const store = /** @type {any} */ (lease.store);

/** @param {unknown} body */
const json = (body) => new Response(JSON.stringify(body), { headers: { 'content-type': 'application/json' } });
const state = () => ({ lease: lease.stats(), store: store.stats() });

Deno.serve(
  {
    hostname: '127.0.0.1',
    port: Number(Deno.env.get('PORT') ?? 0),
    onListen: (/** @type {{ port: number }} */ { port }) => console.log(`socket-lease demo listening on http://127.0.0.1:${port}`),
  },
  async (/** @type {Request} */ req) => {
    const url = new URL(req.url);
    if (url.pathname === '/ws') {
      return lease.upgrade(req, {
        protocol: url.searchParams.get('protocol') ?? undefined,
        onMessage(ws, event) {
          if (!lease.writable(ws)) return;
          ws.send(JSON.stringify({ type: 'echo', data: event.data, leaseId: lease.leaseIdOf(ws), userId: lease.userIdOf(ws) }));
        },
      });
    }
    if (url.pathname === '/state') return json(state());
    if (url.pathname.startsWith('/user/')) return json(store.userStats(decodeURIComponent(url.pathname.slice(6))));
    if (url.pathname === '/close') {
      await lease.close();
      return json(state());
    }
    if (url.pathname === '/metrics') return new Response(await lease.metrics());
    return new Response('not found', { status: 404 });
  },
);
