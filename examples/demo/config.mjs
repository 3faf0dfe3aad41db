// Configuration of every demo server (Node, Bun, Deno, crossws, Socket.IO) from environment
// variables and command-line flags (a flag wins over its variable). Every value is
// validated here, so a typo stops start-up with a message naming the setting instead of
// running with a surprise.

import { DEFAULT_MAX_BUFFERED, DEFAULT_MAX_PAYLOAD, originCheck, parseOriginList } from 'socket-lease/lifecycle';

/** @typedef {'reject' | 'evict-oldest' | 'evict-idle'} Policy */
/** @typedef {'debug' | 'info' | 'warn' | 'error' | 'silent'} LogLevel */
/** @typedef {'closed' | 'open'} FailMode */

/**
 * @typedef {object} DemoConfig
 * @property {string} host
 * @property {number} port
 * @property {number} limit          per-user limit
 * @property {number} ttlMs
 * @property {number} heartbeatMs
 * @property {Policy} policy
 * @property {number | null} globalLimit
 * @property {LogLevel} logLevel
 * @property {string | null} redisUrl    null: the in-memory registry of this process
 * @property {string[] | null} redisClusterNodes  "host:port" of some nodes of a Redis Cluster, or null
 * @property {FailMode} redisFailMode
 * @property {string} redisPrefix
 * @property {string[] | undefined} allowedOrigins  undefined: any origin
 * @property {number} maxPayload
 * @property {number} maxBufferedBytes
 * @property {string | null} adminToken
 */

/** Each setting: its variable, its flag, its default and its parser. */
const SETTINGS = /** @type {const} */ ([
  ['host', 'HOST', '--host', '127.0.0.1'],
  ['port', 'PORT', '--port', '8080'],
  ['limit', 'SOCKET_LEASE_LIMIT', '--limit', '20'],
  ['ttlMs', 'SOCKET_LEASE_TTL_MS', '--ttl-ms', '90000'],
  ['heartbeatMs', 'SOCKET_LEASE_HEARTBEAT_MS', '--heartbeat-ms', '30000'],
  ['policy', 'SOCKET_LEASE_POLICY', '--policy', 'reject'],
  ['globalLimit', 'SOCKET_LEASE_GLOBAL_LIMIT', '--global-limit', ''],
  ['logLevel', 'SOCKET_LEASE_LOG_LEVEL', '--log-level', 'info'],
  ['redisUrl', 'REDIS_URL', '--redis-url', ''],
  ['redisClusterNodes', 'REDIS_CLUSTER_NODES', '--redis-cluster-nodes', ''],
  ['redisFailMode', 'SOCKET_LEASE_REDIS_FAIL_MODE', '--redis-fail-mode', 'closed'],
  ['redisPrefix', 'SOCKET_LEASE_REDIS_PREFIX', '--redis-prefix', 'socket-lease:'],
  ['allowedOrigins', 'SOCKET_LEASE_ALLOWED_ORIGINS', '--allowed-origins', ''],
  ['maxPayload', 'SOCKET_LEASE_MAX_PAYLOAD', '--max-payload', String(DEFAULT_MAX_PAYLOAD)],
  ['maxBufferedBytes', 'SOCKET_LEASE_MAX_BUFFERED', '--max-buffered', String(DEFAULT_MAX_BUFFERED)],
  ['adminToken', 'SOCKET_LEASE_ADMIN_TOKEN', '--admin-token', ''],
]);

export const USAGE = `Usage: npm start -- [flags]   (or npm run start:bun|start:deno|start:crossws|start:socketio -- [flags])

  flag               variable                   default
  --host             HOST                       127.0.0.1
  --port             PORT                       8080 (0 picks a free port)
  --limit            SOCKET_LEASE_LIMIT         20      leases per user
  --ttl-ms           SOCKET_LEASE_TTL_MS        90000   lease lifetime without a pong
  --heartbeat-ms     SOCKET_LEASE_HEARTBEAT_MS  30000   ping interval (must be below the TTL)
  --policy           SOCKET_LEASE_POLICY        reject  reject | evict-oldest | evict-idle
  --global-limit     SOCKET_LEASE_GLOBAL_LIMIT  none    leases across all users
  --log-level        SOCKET_LEASE_LOG_LEVEL     info    debug | info | warn | error | silent
  --redis-url        REDIS_URL                  none    redis://host:port[/db]: share the leases with
                                                        every host on that Redis (and prefix)
  --redis-cluster-nodes  REDIS_CLUSTER_NODES    none    host:port,host:port,...: the same through a
                                                        Redis Cluster (some of its nodes; not with
                                                        --redis-url or --global-limit)
  --redis-fail-mode  SOCKET_LEASE_REDIS_FAIL_MODE
                                                closed  while Redis is down: closed (HTTP 503) or
                                                        open (accept, tracked on this host only)
  --redis-prefix     SOCKET_LEASE_REDIS_PREFIX
                                                socket-lease:  prefix of every Redis key and channel
  --allowed-origins  SOCKET_LEASE_ALLOWED_ORIGINS
                                                any     comma-separated origins allowed to open
                                                        sockets (others: 403); set it with cookie auth
  --max-payload      SOCKET_LEASE_MAX_PAYLOAD   65536   largest message in bytes (larger: close 1009)
  --max-buffered     SOCKET_LEASE_MAX_BUFFERED  1048576 unsent bytes per socket before close 4010
  --admin-token      SOCKET_LEASE_ADMIN_TOKEN   none    /metrics and /api/users/:id need
                                                        Authorization: Bearer <token>
`;

/**
 * A setting the demo cannot start with. `code` is stable (the same as the Cloudflare
 * adapter's ConfigError), so scripts can tell it from a busy port or a Redis error.
 */
export class ConfigError extends Error {
  name = 'ConfigError';
  code = /** @type {const} */ ('INVALID_CONFIG');
}

/**
 * @param {string} name
 * @param {string} raw
 * @param {number} min
 * @param {number} max
 */
function integer(name, raw, min, max) {
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(`${name} must be a whole number, got "${raw}"`);
  const value = Number(raw.trim());
  if (value < min || value > max) throw new ConfigError(`${name} must be from ${min} to ${max}, got ${value}`);
  return value;
}

/**
 * @param {Record<string, string | undefined>} env
 * @param {string[]} argv arguments after the script name
 * @returns {DemoConfig | 'help'}
 */
export function parseConfig(env, argv) {
  /** @type {Record<string, string>} where each raw value came from, for messages */
  const source = {};
  /** @type {Record<string, string>} */
  const raw = {};
  for (const [key, variable, , fallback] of SETTINGS) {
    const fromEnv = env[variable];
    raw[key] = fromEnv !== undefined && fromEnv !== '' ? fromEnv : fallback;
    source[key] = fromEnv !== undefined && fromEnv !== '' ? variable : `default of ${variable}`;
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') return 'help';
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const setting = SETTINGS.find((s) => s[2] === flag);
    if (!setting) throw new ConfigError(`unknown argument "${arg}" (see --help)`);
    const value = inline ?? argv[++i];
    if (value === undefined) throw new ConfigError(`${flag} needs a value`);
    raw[setting[0]] = value;
    source[setting[0]] = flag;
  }

  const host = raw.host.trim();
  if (host === '') throw new ConfigError(`${source.host} must not be empty`);
  const port = integer(source.port, raw.port, 0, 65535);
  const limit = integer(source.limit, raw.limit, 1, 1_000_000);
  const ttlMs = integer(source.ttlMs, raw.ttlMs, 1_000, 86_400_000);
  const heartbeatMs = integer(source.heartbeatMs, raw.heartbeatMs, 100, 3_600_000);
  if (heartbeatMs >= ttlMs) {
    throw new ConfigError(
      `${source.heartbeatMs} (${heartbeatMs}) must be below ${source.ttlMs} (${ttlMs}): a pong renews the lease, so a lease must outlive the gap between two pings`,
    );
  }
  const policy = raw.policy.trim();
  if (policy !== 'reject' && policy !== 'evict-oldest' && policy !== 'evict-idle') {
    throw new ConfigError(`${source.policy} must be reject, evict-oldest or evict-idle, got "${raw.policy}"`);
  }
  const globalRaw = raw.globalLimit.trim();
  const globalLimit = globalRaw === '' || globalRaw === 'none' ? null : integer(source.globalLimit, globalRaw, 1, 100_000_000);
  const logLevel = raw.logLevel.trim();
  if (!['debug', 'info', 'warn', 'error', 'silent'].includes(logLevel)) {
    throw new ConfigError(`${source.logLevel} must be debug, info, warn, error or silent, got "${raw.logLevel}"`);
  }
  const redisUrl = parseRedisUrl(source.redisUrl, raw.redisUrl.trim());
  const redisClusterNodes = parseClusterNodes(source.redisClusterNodes, raw.redisClusterNodes.trim());
  if (redisClusterNodes && redisUrl) throw new ConfigError(`${source.redisClusterNodes} and ${source.redisUrl} name two stores: set one`);
  if (redisClusterNodes && globalLimit !== null) {
    throw new ConfigError(`${source.globalLimit} is not supported with a Redis Cluster (${source.redisClusterNodes}): see docs/redis.md, "Redis Cluster"`);
  }
  const redisFailMode = raw.redisFailMode.trim();
  if (redisFailMode !== 'closed' && redisFailMode !== 'open') {
    throw new ConfigError(`${source.redisFailMode} must be closed or open, got "${raw.redisFailMode}"`);
  }
  const redisPrefix = raw.redisPrefix.trim();
  if (redisPrefix === '') throw new ConfigError(`${source.redisPrefix} must not be empty`);
  const allowedOrigins = parseOriginList(raw.allowedOrigins);
  try {
    originCheck(allowedOrigins, (message) => new ConfigError(`${source.allowedOrigins}: ${message}`));
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`${source.allowedOrigins}: ${String(err)}`);
  }
  const maxPayload = integer(source.maxPayload, raw.maxPayload, 1, 100 * 1024 * 1024);
  const maxBufferedBytes = integer(source.maxBufferedBytes, raw.maxBufferedBytes, 1, 2 ** 31 - 1);
  const adminToken = raw.adminToken === '' ? null : raw.adminToken;
  return {
    host,
    port,
    limit,
    ttlMs,
    heartbeatMs,
    policy,
    globalLimit,
    logLevel: /** @type {LogLevel} */ (logLevel),
    redisUrl,
    redisClusterNodes,
    redisFailMode,
    redisPrefix,
    allowedOrigins,
    maxPayload,
    maxBufferedBytes,
    adminToken,
  };
}

/**
 * @param {string} name
 * @param {string} raw
 * @returns {string | null}
 */
function parseRedisUrl(name, raw) {
  if (raw === '' || raw === 'none') return null;
  let url;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${name} must be a URL like redis://127.0.0.1:6379, got "${raw}"`);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new ConfigError(`${name} must start with redis:// or rediss://, got "${raw}"`);
  }
  if (url.hostname === '') throw new ConfigError(`${name} has no host: "${raw}"`);
  if (url.pathname !== '' && url.pathname !== '/' && !/^\/\d+$/.test(url.pathname)) {
    throw new ConfigError(`${name}: the path must be a database number (/0), got "${url.pathname}"`);
  }
  return raw;
}

/**
 * @param {string} name
 * @param {string} raw  comma-separated host:port
 * @returns {string[] | null}
 */
function parseClusterNodes(name, raw) {
  if (raw === '' || raw === 'none') return null;
  const nodes = raw.split(',').map((node) => node.trim());
  for (const node of nodes) {
    const m = /^(.+):(\d{1,5})$/.exec(node);
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new ConfigError(`${name} must be host:port[,host:port...], got "${raw}"`);
  }
  return nodes;
}

/**
 * What every demo prints at start-up. The first line is the one scripts and the
 * conformance suite read: `socket-lease demo listening on <url>`.
 * @param {DemoConfig} config
 * @param {{ url: string, runtime?: string, socket?: string, heartbeat?: string }} about
 *   `socket` replaces the WebSocket line, `heartbeat` the heartbeat's description
 * @returns {string[]}
 */
export function startupLines(config, about) {
  const lines = [`socket-lease demo listening on ${about.url}`];
  if (about.runtime) lines.push(`  runtime    ${about.runtime}`);
  lines.push(about.socket ?? `  WebSocket  ${about.url.replace(/^http/, 'ws')}/ws?user=<userId>   (echoes every text message)`);
  lines.push(`  metrics    ${about.url}/metrics   health ${about.url}/healthz   user ${about.url}/api/users/<userId>`);
  lines.push(
    `  limit ${config.limit} per user, global ${config.globalLimit ?? 'none'}, policy ${config.policy}, ttl ${config.ttlMs} ms, heartbeat ${about.heartbeat ?? `${config.heartbeatMs} ms`}`,
  );
  lines.push(
    `  origins ${config.allowedOrigins?.join(', ') ?? 'any'}, max message ${config.maxPayload} B, max unsent ${config.maxBufferedBytes} B per socket, admin routes ${config.adminToken ? 'need the admin token' : 'open (set SOCKET_LEASE_ADMIN_TOKEN)'}`,
  );
  if (config.redisUrl) {
    // Never print a password from the URL.
    const shown = new URL(config.redisUrl);
    if (shown.password) shown.password = '***';
    lines.push(`  leases shared through Redis ${shown}, prefix "${config.redisPrefix}", failMode ${config.redisFailMode}`);
  } else if (config.redisClusterNodes) {
    lines.push(
      `  leases shared through the Redis Cluster at ${config.redisClusterNodes.join(', ')}, prefix "${config.redisPrefix}", failMode ${config.redisFailMode}`,
    );
  } else {
    lines.push('  leases kept in this process (set REDIS_URL to share them across hosts)');
  }
  return lines;
}

/**
 * The demo's settings from its command line, or the process ends: the usage on `--help`
 * (status 0), the problem and the usage on a bad setting (status 2, the code
 * INVALID_CONFIG). `exit` is the runtime's (`process.exit`, `Deno.exit`).
 * @param {Record<string, string | undefined>} env
 * @param {string[]} argv arguments after the script name
 * @param {(code: number) => never} exit
 * @returns {DemoConfig}
 */
export function configOrExit(env, argv, exit) {
  let config;
  try {
    config = parseConfig(env, argv);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`socket-lease demo: invalid configuration: ${err.code}: ${err.message}\n\n${USAGE}`);
    return exit(2);
  }
  if (config === 'help') {
    console.log(USAGE);
    return exit(0);
  }
  return config;
}
