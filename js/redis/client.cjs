'use strict';
// The two Redis connections (ioredis) and how scripts run on them. The only file that
// knows the client library: moving to another client would touch this one.

require('../peer.cjs').assertPeer('ioredis', 'socket-lease/redis');
const { Redis, ReplyError } = require('ioredis');

/** @typedef {import('./scripts.cjs').Script} Script */

// Errors Redis answers while it cannot serve (as opposed to a bug in a request).
const UNAVAILABLE_REPLY = /^(LOADING|BUSY|MASTERDOWN|READONLY|TRYAGAIN|CLUSTERDOWN|NOREPLICAS|OOM|MISCONF)\b/;

/**
 * The command connection and the subscriber.
 * @param {string | undefined} url
 * @param {import('ioredis').RedisOptions | undefined} redis the caller's own connection options
 * @param {number} timeout commandTimeoutMs
 * @returns {{ client: Redis, sub: Redis }}
 */
function connect(url, redis, timeout) {
  /** @type {import('ioredis').RedisOptions} */
  const connection = {
    ...redis,
    // Every command answers or fails within this bound: a hung Redis never hangs a
    // WebSocket upgrade.
    commandTimeout: timeout,
    connectTimeout: redis?.connectTimeout ?? Math.max(timeout, 1000),
    // Fail at once while disconnected instead of queueing: the guard answers 503 (or,
    // with failMode "open", accepts locally) rather than holding the upgrade.
    enableOfflineQueue: false,
    // An acquire whose reply was lost may have run; resending it after a reconnect
    // would take a second slot. Never resend.
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    retryStrategy: redis?.retryStrategy ?? ((times) => Math.min(times * 100, 1000)),
    lazyConnect: false,
  };
  // The subscriber only ever sends SUBSCRIBE, which ioredis repeats after a reconnect.
  const subscriber = { ...connection, enableOfflineQueue: true, commandTimeout: undefined, autoResubscribe: true };
  return {
    client: url ? new Redis(url, connection) : new Redis(connection),
    sub: url ? new Redis(url, subscriber) : new Redis(subscriber),
  };
}

/**
 * @param {unknown} err
 * @returns {boolean} whether the error means "Redis cannot answer now" (connection
 *   closed, timeout, loading, read-only replica...) rather than a bad request.
 */
function isUnavailable(err) {
  if (err instanceof ReplyError) return UNAVAILABLE_REPLY.test(String(/** @type {Error} */ (err).message));
  return true;
}

/** @param {unknown} err */
function isNoScript(err) {
  return err instanceof ReplyError && String(/** @type {Error} */ (err).message).startsWith('NOSCRIPT');
}

/**
 * EVALSHA, with EVAL when Redis does not know the script (restarted, SCRIPT FLUSH):
 * one round trip in the normal case. Scripts are also loaded on every (re)connect.
 * @param {Redis} client
 * @param {Script} script
 * @param {Array<string | number>} args
 * @returns {Promise<any>}
 */
function run(client, script, args) {
  return client.evalsha(script.sha, 0, ...args).catch((err) => {
    if (!isNoScript(err)) throw err;
    return client.eval(script.lua, 0, ...args);
  });
}

/**
 * `run` with the answer handed to callbacks (one promise less on the hot path).
 * @param {Redis} client
 * @param {Script} script
 * @param {Array<string | number>} args
 * @param {(value: any) => void} resolve
 * @param {(err: unknown) => void} reject
 */
function send(client, script, args, resolve, reject) {
  client.evalsha(script.sha, 0, ...args).then(resolve, (err) => {
    if (!isNoScript(err)) reject(err);
    else client.eval(script.lua, 0, ...args).then(resolve, reject);
  });
}

/**
 * QUIT, or a hard disconnect when Redis does not answer it in time.
 * @param {Redis} client
 */
async function quit(client) {
  if (client.status === 'end') return;
  /** @type {NodeJS.Timeout | undefined} */
  let timer;
  try {
    await Promise.race([
      client.quit().catch(() => {}),
      new Promise((resolve) => {
        timer = setTimeout(resolve, 1000);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    client.disconnect();
  }
}

module.exports = { connect, isUnavailable, quit, run, send };
