// The Origin check every host runs before any quota work.
//
// Why it exists: a browser sends cookies with a WebSocket handshake to any site, whatever
// page opened it, and WebSockets have no CORS. When a host authenticates upgrades by
// cookie, a page on another site can open sockets as the signed-in user (cross-site
// WebSocket hijacking): read their messages, use up their quota, and under `evict-oldest`
// kick their real sockets again and again. Browsers always send `Origin` and a page cannot
// forge it, so refusing unknown origins stops that. A request without `Origin` does not
// come from a browser page; a non-browser client can send any header it likes, so the
// check gives no protection there and refusing it would only break native clients: it is
// allowed (a function form can decide otherwise).
//
// Runtime-neutral: only the global URL class.

/**
 * @typedef {readonly string[] | ((origin: string | null, request: any) => boolean | Promise<boolean>)} AllowedOrigins
 */

/**
 * Turns the `allowedOrigins` option into a check, validating it once.
 * Exact origins are compared in their serialized form (`scheme://host[:port]`, lower-case
 * scheme and host, default port left out), which is what browsers send; `"null"` (a
 * sandboxed frame, a `file:` page) is refused unless listed as the string "null".
 *
 * @param {unknown} allowed
 * @param {(message: string) => Error} invalid  builds the option error
 * @returns {null | ((origin: string | null, request: any) => boolean | Promise<boolean>)}
 *   null when every origin is allowed
 */
export function originCheck(allowed, invalid) {
  if (allowed === undefined || allowed === null) return null;
  if (typeof allowed === 'function') {
    return (origin, request) => allowed(origin, request);
  }
  if (!Array.isArray(allowed)) {
    throw invalid('allowedOrigins must be an array of origins (like "https://app.example") or a function (origin, request) => boolean');
  }
  /** @type {Set<string>} */
  const origins = new Set();
  for (const entry of allowed) {
    if (typeof entry !== 'string') throw invalid(`allowedOrigins: every entry must be a string, got ${typeof entry}`);
    if (entry === 'null') {
      origins.add('null');
      continue;
    }
    let url;
    try {
      url = new URL(entry);
    } catch {
      throw invalid(`allowedOrigins: "${entry}" is not an origin like https://app.example`);
    }
    // An entry with a path, query or credentials is a mistake: an origin has none, and
    // silently dropping them would allow more than the host meant to.
    if (url.origin === 'null' || `${url.origin}/` !== url.href.replace(/\/?$/, '/') || url.username || url.password) {
      throw invalid(`allowedOrigins: "${entry}" is not an origin (scheme://host[:port], nothing after it)`);
    }
    origins.add(url.origin);
  }
  return (origin) => origin === null || origins.has(origin);
}

/**
 * Splits a comma-separated list of origins (an environment variable), ignoring blanks.
 * @param {string | undefined} text
 * @returns {string[] | undefined}  undefined for an unset or empty variable
 */
export function parseOriginList(text) {
  if (text === undefined) return undefined;
  const list = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  return list.length === 0 ? undefined : list;
}
