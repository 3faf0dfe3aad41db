// socket-lease on Cloudflare Workers: one Durable Object per user holds that user's
// leases. Deploy with `npx wrangler deploy` from this folder; run locally with
// `npm run example:cloudflare` (wrangler dev). The tests load this file unchanged.
//
// In your own project, import from 'socket-lease/cloudflare'. This example imports the
// source by path so it runs from a checkout without installing the package into itself.
import { createSocketLeaseWorker, SocketLeaseObject } from '../../js/cloudflare/index.mjs';

// The runtime instantiates Durable Object classes by their exported name (wrangler.toml:
// class_name = "SocketLeaseObject").
export { SocketLeaseObject };

export default createSocketLeaseWorker({
  // Demo identity, as in the Node demo: the user named in the query string. A real
  // Worker derives it from authentication (a verified session cookie or token) instead.
  userId: (request) => new URL(request.url).searchParams.get('user'),
  // Read-only views of one user's object, for the demo and the tests. Put these behind
  // access control in production.
  statsPath: '/api/users/',
  metricsPath: '/metrics',
  fallback: () =>
    new Response(
      'socket-lease on Cloudflare Workers\n' +
        '  WebSocket:  /ws?user=<id>   (send {"type":"ping"} as a heartbeat)\n' +
        '  leases:     /api/users/<id>\n' +
        '  metrics:    /metrics?user=<id>\n',
      { headers: { 'content-type': 'text/plain; charset=utf-8' } },
    ),
});
