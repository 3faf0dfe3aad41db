'use strict';
// The host libraries that socket-lease's Node entries load (ws, ioredis) are optional peer
// dependencies, so a browser or Workers install gets neither. When one is missing, the
// entry that needs it says which package to install, instead of Node's bare "Cannot find
// module" from inside socket-lease.

/**
 * Throws a clear error (code `MODULE_NOT_FOUND`) when `name` cannot be resolved. Called
 * before the entry's own `require(name)`, which stays a plain literal `require` so that
 * TypeScript and bundlers read it as before.
 * @param {string} name the peer package
 * @param {string} entry the socket-lease entry that needs it
 */
function assertPeer(name, entry) {
  try {
    require.resolve(name);
  } catch (err) {
    if (/** @type {NodeJS.ErrnoException} */ (err)?.code !== 'MODULE_NOT_FOUND') throw err;
    const message = `${entry} needs the "${name}" package, an optional peer dependency of socket-lease: install it (npm install ${name})`;
    throw Object.assign(new Error(message, { cause: err }), { code: 'MODULE_NOT_FOUND' });
  }
}

module.exports = { assertPeer };
