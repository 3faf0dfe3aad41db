'use strict';
// The store's options and the arguments of its calls, checked with the core's rules and
// messages: the options it shares with LeaseRegistry by the core itself, user ids with
// the core's bound (LeaseRegistry.coreLimits()), and its own options here.

const { LeaseRegistry, LeaseError, newId } = require('../node.cjs');
const { makeLog } = require('../lifecycle/log.cjs');

/** @typedef {import('./index.js').RedisLeaseStoreOptions} RedisLeaseStoreOptions */
/** @typedef {import('./index.js').FailMode} FailMode */
/** @typedef {import('socket-lease').LimitPolicy} LimitPolicy */
/** @typedef {import('socket-lease').LeaseEvent} LeaseEvent */
/** @typedef {import('../lifecycle/log.mjs').LogFn} LogFn */

const { maxUserIdBytes: MAX_USER_ID_BYTES } = LeaseRegistry.coreLimits();
// A UTF-16 unit is at most 3 bytes of UTF-8 (a surrogate pair, two units, is 4), so an
// id of up to this many units cannot be too long and its bytes are not counted.
const SURELY_SHORT = Math.floor(MAX_USER_ID_BYTES / 3);

/** @param {string} message */
function invalidOption(message) {
  return new LeaseError(`invalid option: ${message}`, 'INVALID_OPTION');
}

/** A lone surrogate, read code point by code point (`u`): a pair is one astral code point. */
const LONE_SURROGATE = /[\ud800-\udfff]/u;
const isWellFormed = /** @type {{ isWellFormed?: (this: string) => boolean }} */ (String.prototype).isWellFormed;
/** @type {(s: string) => boolean} whether `s` is well-formed UTF-16 (Node 20 has isWellFormed) */
const wellFormed = typeof isWellFormed === 'function' ? (s) => isWellFormed.call(s) : (s) => !LONE_SURROGATE.test(s);

/**
 * The core's user id rule (src/error.rs check_user_id, and the boundary's refusal of
 * strings that are not well-formed UTF-16, src/wasm/convert.rs), with its messages: a
 * well-formed string of 1 to maxUserIdBytes bytes of UTF-8. Checked here because an
 * acquire through Redis never reaches the core; tests compare both on the boundary
 * cases, with Redis up and away. A lone surrogate would be written to Redis as U+FFFD
 * (ioredis encodes UTF-8), making "\ud800", "\udbff" and "\ufffd" one user with one quota.
 * @param {unknown} value
 * @param {string} what
 * @returns {string | null} the problem, or null
 */
function userIdProblem(value, what = 'user id') {
  if (typeof value !== 'string') return `${what} must be a string, got ${value === null ? 'null' : typeof value}`;
  if (!wellFormed(value)) return `${what} is not well-formed UTF-16 (it has a lone surrogate)`;
  if (value === '') return `${what} is empty`;
  if (value.length > SURELY_SHORT) {
    const bytes = Buffer.byteLength(value, 'utf8');
    if (bytes > MAX_USER_ID_BYTES) return `${what} is ${bytes} bytes of UTF-8; at most ${MAX_USER_ID_BYTES} allowed`;
  }
  return null;
}

/**
 * The same for a connection key, with the core's messages: the boundary names the option
 * (a key that is not a string, or not well-formed), the core's user id rule (which keys
 * share) is quoted after it.
 * @param {unknown} value
 * @returns {string | null}
 */
function keyProblem(value) {
  if (typeof value !== 'string' || !wellFormed(value)) return userIdProblem(value, 'connectionKey');
  const problem = userIdProblem(value);
  return problem && `connectionKey: invalid user id: ${problem}`;
}

/**
 * Throws the core's INVALID_USER_ID for anything the core would refuse as a user id.
 * @param {unknown} userId
 * @returns {asserts userId is string}
 */
function checkUserId(userId) {
  const problem = userIdProblem(userId);
  if (problem) throw new LeaseError(`invalid user id: ${problem}`, 'INVALID_USER_ID');
}

/**
 * A `now` argument checked as the in-memory registry checks it, by the core itself (newId
 * checks a time with the registry's rules, codes and messages): the store ignores `now`,
 * since Redis's clock decides, but refuses what the registry refuses.
 * @param {unknown} now
 */
function checkTime(now) {
  if (now !== undefined && now !== null) newId('', /** @type {number} */ (now));
}

/**
 * @param {unknown} value
 * @param {string} name
 * @param {number} min
 * @param {number} max
 */
function checkInt(value, name, min, max) {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalidOption(`${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

/**
 * The quota options, as the core normalised them.
 * @typedef {object} QuotaOptions
 * @property {number} perUserLimit
 * @property {Record<string, number>} userLimits  as the core returns them (getOptions)
 * @property {number | null} globalLimit
 * @property {number} ttlMs
 * @property {LimitPolicy} policy
 * @property {number} warnRatio
 * @property {string[]} kinds  extra id kinds
 */

/**
 * A Redis Cluster to use instead of one Redis.
 * @typedef {object} ClusterSettings
 * @property {Array<{ host: string, port: number }>} nodes  some of its nodes (ioredis finds the rest)
 * @property {import('ioredis').ClusterOptions | undefined} options  the caller's own cluster options
 */

/**
 * @typedef {object} StoreSettings
 * @property {string | undefined} url
 * @property {import('ioredis').RedisOptions | undefined} redis
 * @property {ClusterSettings | null} cluster
 * @property {string} prefix
 * @property {FailMode} failMode
 * @property {number} commandTimeoutMs
 * @property {number} graceMs
 * @property {number} sweepBatch
 * @property {number} probeMs
 * @property {number} batchSize
 * @property {((event: LeaseEvent) => void) | null} onEvent
 * @property {LogFn} log
 * @property {QuotaOptions} quota
 */

/**
 * Checks every option and returns them normalised. Throws INVALID_OPTION.
 * @param {RedisLeaseStoreOptions} options
 * @returns {StoreSettings}
 */
function readOptions(options) {
  const {
    url,
    redis,
    prefix = 'socket-lease:',
    failMode = 'closed',
    commandTimeoutMs = 1000,
    keyGraceMs = 60_000,
    sweepBatch = 1000,
    probeMs = 500,
    batchSize = 16,
    logger,
    logLevel = 'info',
    onEvent,
    mode,
    cluster,
    ...coreOptions
  } = options;
  if (mode !== undefined && mode !== 'enforce') {
    throw invalidOption(`mode "${String(mode)}" is not supported by the Redis store (only "enforce")`);
  }
  if ('maxUsers' in coreOptions) {
    // The core's maxUsers bounds one process's memory; Redis's memory is bounded by
    // its own maxmemory, and counting users deployment-wide would cost every acquire.
    throw invalidOption('maxUsers is not supported by the Redis store (bound Redis memory with its maxmemory)');
  }
  // The core validates the shared options with its own rules and messages (unknown
  // names, ranges, kinds) and hands back the normalised values.
  const probe = new LeaseRegistry(/** @type {any} */ (coreOptions));
  const core = probe.getOptions();
  probe.free();

  if (typeof prefix !== 'string' || prefix === '') throw invalidOption('prefix must be a non-empty string');
  if (failMode !== 'closed' && failMode !== 'open') throw invalidOption(`failMode must be "closed" or "open", got ${String(failMode)}`);
  if (onEvent !== undefined && typeof onEvent !== 'function') throw invalidOption('onEvent must be a function');
  const clusterSettings = readCluster(cluster, { url, redis, prefix, globalLimit: core.globalLimit ?? null });
  return {
    url,
    redis,
    cluster: clusterSettings,
    prefix,
    failMode,
    commandTimeoutMs: checkInt(commandTimeoutMs, 'commandTimeoutMs', 1, 60_000),
    graceMs: checkInt(keyGraceMs, 'keyGraceMs', 0, 86_400_000),
    sweepBatch: checkInt(sweepBatch, 'sweepBatch', 1, 100_000),
    probeMs: checkInt(probeMs, 'probeMs', 10, 60_000),
    batchSize: checkInt(batchSize, 'batchSize', 1, 1000),
    onEvent: onEvent ?? null,
    log: storeLog(logger, logLevel),
    quota: {
      perUserLimit: core.perUserLimit,
      // A plain object (getOptions never returns the Map form the options may take).
      userLimits: /** @type {Record<string, number>} */ (core.userLimits),
      globalLimit: core.globalLimit ?? null,
      ttlMs: core.ttlMs,
      policy: core.onLimit,
      warnRatio: core.warnRatio,
      kinds: [...core.kinds],
    },
  };
}

/**
 * The `cluster` option: `{ nodes, options? }`, nodes as "host:port" strings or
 * `{ host, port }`, options ioredis's ClusterOptions. Refuses what a cluster cannot
 * serve: a global limit (its index is one key, which would make every acquire of every
 * shard go through one slot), a prefix with a hash tag's braces (every key would share
 * the prefix's slot), and `url` or `redis` beside it (which Redis would be meant?).
 * @param {unknown} cluster
 * @param {{ url: unknown, redis: unknown, prefix: string, globalLimit: number | null }} other
 * @returns {ClusterSettings | null}
 */
function readCluster(cluster, other) {
  if (cluster === undefined || cluster === null) return null;
  if (typeof cluster !== 'object' || Array.isArray(cluster)) throw invalidOption('cluster must be an object like { nodes: ["127.0.0.1:7000"] }');
  const { nodes, options, ...unknown } = /** @type {{ nodes?: unknown, options?: unknown }} */ (cluster);
  const extra = Object.keys(unknown);
  if (extra.length > 0) throw invalidOption(`unknown cluster option "${extra[0]}"; known: nodes, options`);
  if (!Array.isArray(nodes) || nodes.length === 0)
    throw invalidOption('cluster.nodes must be a non-empty array of "host:port" strings or { host, port } objects');
  const read = nodes.map((node, i) => clusterNode(node, i));
  if (options !== undefined && (options === null || typeof options !== 'object' || Array.isArray(options)))
    throw invalidOption('cluster.options must be an object (ioredis ClusterOptions)');
  if (other.url !== undefined || other.redis !== undefined)
    throw invalidOption('cluster cannot be combined with url or redis (put connection options in cluster.options.redisOptions)');
  if (other.globalLimit !== null) {
    throw invalidOption(
      'globalLimit is not supported with a Redis Cluster (counting every lease would put every acquire of every shard through one slot); use one Redis, or per-user limits only',
    );
  }
  if (/[{}]/.test(other.prefix)) throw invalidOption('prefix must not contain "{" or "}" with a Redis Cluster (the store puts each user\'s hash tag after it)');
  return { nodes: read, options: /** @type {import('ioredis').ClusterOptions | undefined} */ (options) };
}

/**
 * @param {unknown} node
 * @param {number} i
 * @returns {{ host: string, port: number }}
 */
function clusterNode(node, i) {
  /** @type {unknown} */
  let host;
  /** @type {unknown} */
  let port;
  if (typeof node === 'string') {
    const colon = node.lastIndexOf(':');
    host = colon > 0 ? node.slice(0, colon).replace(/^\[(.*)\]$/, '$1') : '';
    port = colon > 0 && /^\d+$/.test(node.slice(colon + 1)) ? Number(node.slice(colon + 1)) : Number.NaN;
  } else if (node !== null && typeof node === 'object') {
    ({ host, port } = /** @type {{ host?: unknown, port?: unknown }} */ (node));
  }
  if (typeof host !== 'string' || host === '' || typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw invalidOption(`cluster.nodes[${i}] must be "host:port" or { host, port } with a port from 1 to 65535, got ${JSON.stringify(node) ?? String(node)}`);
  }
  return { host, port };
}

/**
 * The lifecycle's log writer (js/lifecycle/log.mjs: JSON lines to a console-like logger,
 * fields and message to a pino-like one, a throwing logger never breaks a call), with
 * every line saying it comes from the store.
 * @param {RedisLeaseStoreOptions['logger']} logger
 * @param {RedisLeaseStoreOptions['logLevel']} level
 * @returns {LogFn}
 */
function storeLog(logger, level) {
  const write = makeLog(logger, level, invalidOption);
  return (lvl, msg, fields) => write(lvl, msg, { component: 'socket-lease/redis', ...fields });
}

/**
 * `acquire`'s options, checked as the core checks them.
 * @param {unknown} options
 * @param {LimitPolicy} policy
 * @returns {{ connectionKey: string, keep: boolean }} connectionKey '' for none; keep:
 *   may not evict (`evict: false` under a policy that evicts)
 */
function acquireOptions(options, policy) {
  if (options === undefined || options === null) return { connectionKey: '', keep: false };
  if (typeof options !== 'object') throw invalidOption(`acquire options must be an object, got ${typeof options}`);
  const opts = /** @type {{ connectionKey?: unknown, now?: unknown, evict?: unknown }} */ (options);
  checkTime(opts.now);
  for (const name of Object.keys(opts)) {
    if (name !== 'connectionKey' && name !== 'now' && name !== 'evict') {
      throw invalidOption(`unknown acquire option "${name}"; known: connectionKey, now, evict`);
    }
  }
  let connectionKey = '';
  // null is no key, as the core reads it.
  if (opts.connectionKey !== undefined && opts.connectionKey !== null) {
    const problem = keyProblem(opts.connectionKey);
    if (problem) throw invalidOption(problem);
    connectionKey = /** @type {string} */ (opts.connectionKey);
  }
  const { evict } = opts;
  if (evict !== undefined && evict !== null && typeof evict !== 'boolean') {
    throw invalidOption(`evict must be a boolean, got ${Array.isArray(evict) ? 'array' : typeof evict}`);
  }
  // Under the reject policy nothing is ever evicted: the usual (batched) call serves.
  return { connectionKey, keep: evict === false && policy !== 'reject' };
}

module.exports = { acquireOptions, checkTime, checkUserId, readOptions };
