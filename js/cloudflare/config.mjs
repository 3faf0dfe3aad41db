// Reads the Worker's env vars (the same names as the Node demo) into registry options.
// Every value is checked here, with the variable's name in the message, so a deployer
// sees "SOCKET_LEASE_LIMIT must be ..." instead of a core option name.
import { originCheck, parseOriginList } from '../lifecycle/origin.mjs';
import { DEFAULT_MAX_PAYLOAD, MAX_MAX_PAYLOAD, MAX_SOCKETS_PER_OBJECT } from './protocol.mjs';

/** @typedef {import('./index.js').SocketLeaseConfig} SocketLeaseConfig */
/** @typedef {import('./index.js').LimitPolicy} LimitPolicy */

export const DEFAULT_LIMIT = 20;
export const DEFAULT_TTL_MS = 90_000;
// Below this a lease would expire between two heartbeats of any sane client; above a day
// a dead peer holds its slot for longer than anyone will wait.
export const MIN_TTL_MS = 1000;
export const MAX_TTL_MS = 86_400_000;

export { DEFAULT_MAX_PAYLOAD, MAX_MAX_PAYLOAD };

/** @type {readonly LimitPolicy[]} */
const POLICIES = ['reject', 'evict-oldest', 'evict-idle'];

/** A bad env var. The Worker answers it with HTTP 500 and `{ error, code }`. */
export class ConfigError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'ConfigError';
    /** @type {'INVALID_CONFIG'} */
    this.code = 'INVALID_CONFIG';
  }
}

/**
 * @param {unknown} raw
 * @returns {string | undefined} the trimmed text, or undefined when unset or empty
 */
function text(raw) {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== 'string' && typeof raw !== 'number') return String(raw);
  const s = String(raw).trim();
  return s === '' ? undefined : s;
}

/**
 * @param {Record<string, unknown>} env
 * @param {string} name
 * @param {number} fallback
 * @param {number} min
 * @param {number} max
 */
function integer(env, name, fallback, min, max) {
  const s = text(env[name]);
  if (s === undefined) return fallback;
  // Digits only: Number('1e3'), Number('0x10') and parseInt('5 users') are all accepted by
  // JS but are not what anyone means in a config file.
  const n = /^\d+$/.test(s) ? Number(s) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(String(env[name]))}`);
  }
  return n;
}

/**
 * Validates the env vars and returns the options for this adapter.
 *
 * - `SOCKET_LEASE_LIMIT`: leases per user, 1..32768 (default 20). The upper bound is the
 *   runtime's limit of WebSockets per Durable Object.
 * - `SOCKET_LEASE_TTL_MS`: a lease expires this long after the peer was last heard from,
 *   1000..86400000 (default 90000).
 * - `SOCKET_LEASE_POLICY`: `reject` (default), `evict-oldest` or `evict-idle`.
 * - `SOCKET_LEASE_MAX_PAYLOAD`: largest message in bytes, 1..33554432 (default 65536);
 *   a larger one closes its socket with 1009 and frees the lease. The upper bound is
 *   workerd's own message limit.
 * - `SOCKET_LEASE_ALLOWED_ORIGINS`: comma-separated origins (`https://app.example`) whose
 *   pages may open sockets; unset or empty: any. An upgrade with another `Origin` header
 *   is answered 403 by the Worker (no header: allowed, it is not from a browser page).
 * - `SOCKET_LEASE_GLOBAL_LIMIT`: refused when set. Each user has its own object, so no
 *   object sees a global count; silently ignoring a safety limit would be worse than
 *   saying so.
 * - `SOCKET_LEASE_HEARTBEAT_MS`: refused when set. On the Node host it is the server's
 *   ping interval; a Durable Object cannot ping without waking (and billing) itself, so
 *   here the client sends the heartbeat and the runtime answers it. Ignoring the variable
 *   would let a deployer believe the server pings.
 *
 * @param {Record<string, unknown>} env
 * @returns {SocketLeaseConfig}
 * @throws {ConfigError}
 */
export function readConfig(env) {
  if (env === null || typeof env !== 'object') throw new ConfigError('env is missing');
  const limit = integer(env, 'SOCKET_LEASE_LIMIT', DEFAULT_LIMIT, 1, MAX_SOCKETS_PER_OBJECT);
  const ttlMs = integer(env, 'SOCKET_LEASE_TTL_MS', DEFAULT_TTL_MS, MIN_TTL_MS, MAX_TTL_MS);
  const policyText = text(env.SOCKET_LEASE_POLICY) ?? 'reject';
  const policy = POLICIES.find((p) => p === policyText);
  if (policy === undefined) {
    throw new ConfigError(`SOCKET_LEASE_POLICY must be one of ${POLICIES.join(', ')}, got ${JSON.stringify(String(env.SOCKET_LEASE_POLICY))}`);
  }
  if (text(env.SOCKET_LEASE_GLOBAL_LIMIT) !== undefined) {
    throw new ConfigError(
      'SOCKET_LEASE_GLOBAL_LIMIT is not supported on Cloudflare Workers: each user has its own ' +
        'Durable Object, so no object can count connections across users. Unset it and rely on SOCKET_LEASE_LIMIT.',
    );
  }
  if (text(env.SOCKET_LEASE_HEARTBEAT_MS) !== undefined) {
    throw new ConfigError(
      'SOCKET_LEASE_HEARTBEAT_MS is not supported on Cloudflare Workers: a Durable Object cannot ping its ' +
        'sockets without waking, so clients send the heartbeat {"type":"ping"} (every TTL/4 or so), which the ' +
        'runtime answers itself. Unset it; SOCKET_LEASE_TTL_MS decides when a silent socket is closed.',
    );
  }
  const maxPayload = integer(env, 'SOCKET_LEASE_MAX_PAYLOAD', DEFAULT_MAX_PAYLOAD, 1, MAX_MAX_PAYLOAD);
  const allowedOrigins = parseOriginList(text(env.SOCKET_LEASE_ALLOWED_ORIGINS));
  // Validated here (and compiled once per value by the Worker, see worker.mjs), so a typo
  // answers every upgrade 500 naming the variable instead of refusing every browser.
  originCheck(allowedOrigins, (message) => new ConfigError(`SOCKET_LEASE_ALLOWED_ORIGINS: ${message.replace(/^allowedOrigins:?\s*/, '')}`));
  return allowedOrigins === undefined ? { limit, ttlMs, policy, maxPayload } : { limit, ttlMs, policy, maxPayload, allowedOrigins };
}

/**
 * The registry options for a validated config. `maxUsers: 1` because an object serves
 * exactly one user (`idFromName(userId)`).
 * @param {SocketLeaseConfig} config
 */
export function registryOptions(config) {
  return {
    perUserLimit: config.limit,
    ttlMs: config.ttlMs,
    onLimit: config.policy,
    maxUsers: 1,
  };
}
