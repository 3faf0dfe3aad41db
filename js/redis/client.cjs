'use strict';
// The two Redis connections (ioredis) and how scripts run on them. The only file that
// knows the client library: moving to another client would touch this one. On one Redis
// they are two `Redis` connections; in a Redis Cluster two `Cluster` clients, and each
// script call names its routing key (KEYS[1], keys.cjs) so that ioredis sends it to the
// shard that holds the slot (following MOVED and ASK as slots move).

require('../peer.cjs').assertPeer('ioredis', 'socket-lease/redis');
const { Redis, Cluster, ReplyError } = require('ioredis');

/** @typedef {import('./scripts.cjs').Script} Script */
/** @typedef {Redis | Cluster} Client */
/** @typedef {import('./options.cjs').ClusterSettings} ClusterSettings */

// Errors Redis answers while it cannot serve (as opposed to a bug in a request). The last:
// a cluster's script that met a key of its slot already moved to another master (the
// slot is migrating): the outage's write-back puts the lease back together.
const UNAVAILABLE_REPLY = /^(LOADING|BUSY|MASTERDOWN|READONLY|TRYAGAIN|CLUSTERDOWN|NOREPLICAS|OOM|MISCONF)\b|^ERR Script attempted to access a non local key/;

/**
 * The command connection and the subscriber.
 * @param {string | undefined} url
 * @param {import('ioredis').RedisOptions | undefined} redis the caller's own connection options
 * @param {number} timeout commandTimeoutMs
 * @param {ClusterSettings | null} cluster the cluster's nodes and options, or null (one Redis)
 * @returns {{ client: Client, sub: Client }}
 */
function connect(url, redis, timeout, cluster) {
  if (cluster) return connectCluster(cluster, timeout);
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
 * The same two connections to a Redis Cluster: the store's settings apply to the
 * connection to every node (`redisOptions`) and to the cluster client.
 * @param {ClusterSettings} cluster
 * @param {number} timeout
 * @returns {{ client: Cluster, sub: Cluster }}
 */
function connectCluster(cluster, timeout) {
  const own = cluster.options ?? {};
  const redisOptions = {
    ...own.redisOptions,
    commandTimeout: timeout,
    connectTimeout: own.redisOptions?.connectTimeout ?? Math.max(timeout, 1000),
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
  };
  /** @type {import('ioredis').ClusterOptions} */
  const options = {
    ...own,
    redisOptions,
    // As above: fail at once while the cluster is not usable, never queue an upgrade.
    enableOfflineQueue: false,
    // Replicas lag behind (asynchronous replication): every script writes, and reads
    // must see the writes, so everything goes to the masters.
    scaleReads: 'master',
    // The calls of one turn go to each master as one write (no batch scripts in a
    // cluster: see batch.cjs): 40 % more pairs per second with 64 in flight here, and
    // fewer reads and writes for each Redis.
    enableAutoPipelining: own.enableAutoPipelining ?? true,
    clusterRetryStrategy: own.clusterRetryStrategy ?? ((times) => Math.min(times * 100, 1000)),
  };
  const subscriber = { ...options, enableOfflineQueue: true, redisOptions: { ...redisOptions, enableOfflineQueue: true, commandTimeout: undefined } };
  return { client: new Cluster(cluster.nodes, options), sub: new Cluster(cluster.nodes, subscriber) };
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
 * EVALSHA, with EVAL when Redis does not know the script (restarted, SCRIPT FLUSH, a
 * replica promoted): one round trip in the normal case. Scripts are also loaded on
 * every (re)connect.
 * @param {Client} client
 * @param {Script} script
 * @param {Array<string | number>} args
 * @param {string | null} [route] in a cluster, the key that routes the call (KEYS[1])
 * @returns {Promise<any>}
 */
function run(client, script, args, route = null) {
  return new Promise((resolve, reject) => send(client, script, args, resolve, reject, route));
}

/**
 * `run` with the answer handed to callbacks (one promise less on the hot path).
 * @param {Client} client
 * @param {Script} script
 * @param {Array<string | number>} args
 * @param {(value: any) => void} resolve
 * @param {(err: unknown) => void} reject
 * @param {string | null} [route]
 */
function send(client, script, args, resolve, reject, route = null) {
  if (route !== null) {
    client.evalsha(script.sha, 1, route, ...args).then(resolve, (err) => {
      if (!isNoScript(err)) reject(err);
      else client.eval(script.lua, 1, route, ...args).then(resolve, reject);
    });
    return;
  }
  client.evalsha(script.sha, 0, ...args).then(resolve, (err) => {
    if (!isNoScript(err)) reject(err);
    else client.eval(script.lua, 0, ...args).then(resolve, reject);
  });
}

/**
 * @param {Client} client
 * @returns {client is Cluster}
 */
function isCluster(client) {
  return client instanceof Cluster;
}

/**
 * The Redis servers that hold the data: the one Redis, or every master of a cluster.
 * @param {Client} client
 * @returns {Redis[]}
 */
function masters(client) {
  return isCluster(client) ? client.nodes('master') : [client];
}

/**
 * Which Redis processes hold the data now: the run id of the one Redis, or of every
 * master of a cluster. A change means a restart or a failover, either of which may have
 * lost writes (a promoted replica misses what was not replicated yet).
 * @param {Client} client
 * @returns {Promise<string>}
 */
async function serverIdentity(client) {
  const ids = await Promise.all(masters(client).map(async (node) => /run_id:(\w+)/.exec(String(await node.info('server')))?.[1] ?? ''));
  return ids.sort().join(',');
}

/**
 * SCRIPT LOAD on every server that holds data.
 * @param {Client} client
 * @param {Script[]} scripts
 */
async function loadScripts(client, scripts) {
  for (const node of masters(client)) {
    for (const script of scripts) await node.script('LOAD', script.lua);
  }
}

/**
 * SET with a TTL (the id index, keys.cjs).
 * @param {Client} client
 * @param {string} key
 * @param {string} value
 * @param {number} ttlMs
 */
function setKey(client, key, value, ttlMs) {
  return client.set(key, value, 'PX', ttlMs);
}

/**
 * @param {Client} client
 * @param {string} key
 * @returns {Promise<string | null>}
 */
function getKey(client, key) {
  return client.get(key);
}

/**
 * @param {Client} client
 * @param {string} key
 */
function deleteKey(client, key) {
  return client.del(key);
}

/**
 * QUIT, or a hard disconnect when Redis does not answer it in time.
 * @param {Client} client
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

module.exports = { connect, deleteKey, getKey, isCluster, isUnavailable, loadScripts, quit, run, send, serverIdentity, setKey };
