// The demo's fetch-style routes (app.mjs) on Node's http server: used by the Node and
// Socket.IO demos, whose WebSockets ride a node:http server.
import http from 'node:http';

/**
 * Serves a fetch-style handler on Node's http server. The demo's routes take no request
 * body (GET and HEAD; anything else is a 405), so none is read.
 * @param {(request: Request) => Promise<Response>} fetch
 * @param {http.IncomingMessage} req
 * @param {http.ServerResponse} res
 */
export async function serveFetch(fetch, req, res) {
  try {
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value);
    }
    const response = await fetch(new Request(new URL(req.url ?? '/', `http://${req.headers.host ?? 'demo'}`), { method: req.method, headers }));
    const body = Buffer.from(await response.arrayBuffer());
    /** @type {Record<string, string>} */
    const out = {};
    response.headers.forEach((value, name) => {
      out[name] = value;
    });
    res.writeHead(response.status, out);
    res.end(req.method === 'HEAD' ? undefined : body);
  } catch {
    // A malformed request line or Host header, not a route's failure (those are 500s).
    if (!res.headersSent) res.writeHead(400, { 'content-type': 'application/json; charset=utf-8' }).end('{"error":"malformed request"}');
    else res.destroy();
  }
}
