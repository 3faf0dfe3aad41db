'use strict';
// socket-lease/redis: a lease store shared by many Node hosts through one Redis.
//
// The contract is LeaseRegistry's (acquire / release / touch / sweep / stats / metrics,
// the same result and error shapes), made asynchronous. Every operation is one Lua
// script run with EVALSHA, so one round trip decides and writes atomically; the scripts
// live in ./lua and read the clock with Redis's TIME, never the host's. Ids are minted
// and validated by the WASM core (newId / parseId / deriveId); the scripts only use them
// as opaque strings.
//
// Written as CommonJS for the same reason as the guard: index.mjs re-exports this file,
// so `import` and `require` share one module instance (and one WASM instance).

const { EventEmitter } = require('node:events');
const { readFileSync } = require('node:fs');
const { createHash } = require('node:crypto');
const path = require('node:path');
const { Redis, ReplyError } = require('ioredis');
const { LeaseRegistry, LeaseError, newId, parseId, deriveId } = require('../node.cjs');

/** @typedef {import('./index.js').RedisLeaseStoreOptions} RedisLeaseStoreOptions */
/** @typedef {import('./index.js').RedisStoreStats} RedisStoreStats */
/** @typedef {import('./index.js').RevokedLease} RevokedLease */
/** @typedef {import('./index.js').FailMode} FailMode */
/** @typedef {import('socket-lease').Lease} Lease */
/** @typedef {import('socket-lease').AcquireResult} AcquireResult */
/** @typedef {import('socket-lease').LeaseEvent} LeaseEvent */
/** @typedef {import('socket-lease').RefusalReason} RefusalReason */
/** @typedef {import('socket-lease').UserStats} UserStats */
/** @typedef {import('socket-lease/node').GuardLogger} GuardLogger */
/** @typedef {import('socket-lease/node').LogLevel} LogLevel */

/**
 * @typedef {object} Script
 * @property {string} name
 * @property {string} lua
 * @property {string} sha
 */

const LUA_DIR = path.join(__dirname, 'lua');
const COMMON = readFileSync(path.join(LUA_DIR, 'common.lua'), 'utf8');

/** @param {string} name @returns {Script} */
function loadScript(name) {
  const lua = `${COMMON}\n${readFileSync(path.join(LUA_DIR, `${name}.lua`), 'utf8')}`;
  return { name, lua, sha: createHash('sha1').update(lua).digest('hex') };
}

const SCRIPTS = {
  acquire: loadScript('acquire'),
  release: loadScript('release'),
  touch: loadScript('touch'),
  sweep: loadScript('sweep'),
  register: loadScript('register'),
  stats: loadScript('stats'),
  user: loadScript('user'),
};

const MAX_USER_ID_BYTES = 256;
// The same bound as the core's list of lazily expired ids awaiting sweep().
const PENDING_EXPIRED_CAP = 65_536;
// Releases that could not reach Redis are replayed when it returns; beyond this many the
// oldest are dropped (their leases still expire by TTL).
const PENDING_RELEASE_CAP = 100_000;
// Revocations that arrive before the acquire they concern has returned (the pub/sub
// connection can be read before the command connection).
const EARLY_REVOCATION_CAP = 1024;
const EARLY_REVOCATION_MS = 10_000;
// Leases written back per register call after an outage.
const REGISTER_CHUNK = 500;
const REVOCATION_REASONS = new Set(['evicted', 'expired', 'released']);
// Errors Redis answers while it cannot serve (as opposed to a bug in a request).
const UNAVAILABLE_REPLY = /^(LOADING|BUSY|MASTERDOWN|READONLY|TRYAGAIN|CLUSTERDOWN|NOREPLICAS|OOM|MISCONF)\b/;

/** @type {Record<LogLevel, number>} */
const LEVELS = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/**
 * JSON lines to a console-like logger, or fields + message to a pino-like one (the same
 * convention as the guard). A throwing logger never breaks a store call.
 * @param {GuardLogger | undefined} logger
 * @param {LogLevel} level
 * @returns {(level: Exclude<LogLevel, 'silent'>, msg: string, fields?: Record<string, unknown>) => void}
 */
function makeLog(logger, level) {
  if (!(level in LEVELS)) throw invalidOption(`logLevel must be one of ${Object.keys(LEVELS).join(', ')}, got ${String(level)}`);
  const min = LEVELS[level];
  const sink = logger ?? console;
  const anySink = /** @type {any} */ (sink);
  const structured = typeof anySink.child === 'function' && typeof anySink.levels === 'object';
  return (lvl, msg, fields = {}) => {
    if (LEVELS[lvl] < min) return;
    const write = sink[lvl] ?? sink.log;
    if (typeof write !== 'function') return;
    try {
      if (structured) write.call(sink, { component: 'socket-lease/redis', ...fields }, msg);
      else write.call(sink, JSON.stringify({ level: lvl, time: new Date().toISOString(), component: 'socket-lease/redis', msg, ...fields }));
    } catch {
      // A broken logger must not turn a release into a failure.
    }
  };
}

/** @param {string} message */
function invalidOption(message) {
  return new LeaseError(`invalid option: ${message}`, 'INVALID_OPTION');
}

/**
 * The core's user id rule (src/error.rs check_user_id), with its messages: a string of 1
 * to 256 bytes of UTF-8. Checked here because the store never calls the core's registry
 * for an acquire; tests compare both on the boundary cases.
 * @param {unknown} value
 * @param {string} what
 * @returns {string | null} the problem, or null
 */
function userIdProblem(value, what = 'user id') {
  if (typeof value !== 'string') return `${what} must be a string, got ${value === null ? 'null' : typeof value}`;
  if (value === '') return `${what} is empty`;
  // Up to 85 UTF-16 units cannot exceed 255 bytes, so the count is skipped for most ids.
  if (value.length > 85) {
    const bytes = Buffer.byteLength(value, 'utf8');
    if (bytes > MAX_USER_ID_BYTES) return `${what} is ${bytes} bytes of UTF-8; at most ${MAX_USER_ID_BYTES} allowed`;
  }
  return null;
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
 * @typedef {object} Held
 * @property {string} userId
 * @property {number} acquiredAt
 * @property {number} touchedAt
 * @property {boolean} local           accepted while Redis was away (failMode "open"); not in Redis yet
 * @property {string} connectionKey    '' for none
 */

class RedisLeaseStore extends EventEmitter {
  /** This store's node id (`node_…`, minted by the core): the channel its evictions arrive on. */
  nodeId;

  /** @type {Redis} */ #client;
  /** @type {Redis} */ #sub;
  #prefix;
  #channel;
  #failMode;
  #ttlMs;
  #graceMs;
  #keepMs;
  #perUserLimit;
  /** @type {Map<string, number>} */ #userLimits;
  /** @type {number | null} */ #globalLimit;
  #policy;
  #warnRatio;
  #maxUsers;
  /** @type {Set<string>} */ #kinds;
  /** @type {string[]} */ #extraKinds;
  #sweepBatch;
  #probeMs;
  /** @type {((event: LeaseEvent) => void) | null} */ #onEvent;
  #log;

  /** Leases acquired through this store whose sockets this host still holds. @type {Map<string, Held>} */
  #held = new Map();
  /** @type {Map<string, Set<string>>} */ #heldByUser = new Map();
  /** @type {string[]} */ #pendingExpired = [];
  /** @type {Set<string>} */ #pendingReleases = new Set();
  /** @type {Map<string, { reason: RevokedLease['reason'], at: number }>} */ #earlyRevocations = new Map();

  #available = false;
  #subscribed = false;
  #closed = false;
  /** @type {string | null} */ #runId = null;
  /** @type {Promise<void> | null} */ #resyncing = null;
  #resyncAgain = false;
  /** @type {NodeJS.Timeout | null} */ #probeTimer = null;
  /** @type {Set<() => void>} */ #readyWaiters = new Set();

  #counters = {
    acquired: 0,
    released: 0,
    expired: 0,
    evicted: 0,
    rejected: { 'user-limit': 0, 'global-limit': 0, 'user-table-full': 0 },
    unknownReleases: 0,
    nearLimitEvents: 0,
    reconciled: 0,
    callbackErrors: 0,
    highWater: 0,
    degradedAcquires: 0,
    outages: 0,
    revocations: { evicted: 0, expired: 0, released: 0 },
  };

  /** @param {RedisLeaseStoreOptions} [options] */
  constructor(options = {}) {
    super();
    const {
      url,
      redis,
      prefix = 'socket-lease:',
      failMode = 'closed',
      commandTimeoutMs = 1000,
      keyGraceMs = 60_000,
      sweepBatch = 1000,
      probeMs = 500,
      logger,
      logLevel = 'info',
      onEvent,
      mode,
      ...coreOptions
    } = options;
    if (mode !== undefined && mode !== 'enforce') {
      throw invalidOption(`mode "${String(mode)}" is not supported by the Redis store (only "enforce")`);
    }
    // The core validates the shared options with its own rules and messages (unknown
    // names, ranges, kinds) and hands back the normalised values.
    const probe = new LeaseRegistry(/** @type {any} */ (coreOptions));
    const core = probe.getOptions();
    probe.free();

    if (typeof prefix !== 'string' || prefix === '') throw invalidOption('prefix must be a non-empty string');
    if (failMode !== 'closed' && failMode !== 'open') throw invalidOption(`failMode must be "closed" or "open", got ${String(failMode)}`);
    if (onEvent !== undefined && typeof onEvent !== 'function') throw invalidOption('onEvent must be a function');
    this.#prefix = prefix;
    this.#failMode = /** @type {FailMode} */ (failMode);
    const timeout = checkInt(commandTimeoutMs, 'commandTimeoutMs', 1, 60_000);
    this.#graceMs = checkInt(keyGraceMs, 'keyGraceMs', 0, 86_400_000);
    this.#sweepBatch = checkInt(sweepBatch, 'sweepBatch', 1, 100_000);
    this.#probeMs = checkInt(probeMs, 'probeMs', 10, 60_000);
    this.#ttlMs = core.ttlMs;
    this.#keepMs = core.ttlMs + this.#graceMs;
    this.#perUserLimit = core.perUserLimit;
    this.#userLimits = new Map(Object.entries(core.userLimits));
    this.#globalLimit = core.globalLimit ?? null;
    this.#policy = core.onLimit;
    this.#warnRatio = core.warnRatio;
    this.#maxUsers = core.maxUsers;
    this.#extraKinds = [...core.kinds];
    this.#kinds = new Set(['conn', 'run', 'thread', ...core.kinds]);
    this.#onEvent = onEvent ?? null;
    this.#log = makeLog(logger, logLevel);

    this.nodeId = newId('node');
    this.#channel = `${prefix}n:${this.nodeId}`;

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
    this.#client = url ? new Redis(url, connection) : new Redis(connection);
    // The subscriber only ever sends SUBSCRIBE, which ioredis repeats after a reconnect.
    this.#sub = url
      ? new Redis(url, { ...connection, enableOfflineQueue: true, commandTimeout: undefined, autoResubscribe: true })
      : new Redis({ ...connection, enableOfflineQueue: true, commandTimeout: undefined, autoResubscribe: true });

    this.#client.on('error', (err) => this.#log('debug', 'redis connection error', { error: String(err) }));
    this.#sub.on('error', (err) => this.#log('debug', 'redis subscriber error', { error: String(err) }));
    this.#client.on('ready', () => void this.#resync());
    this.#client.on('close', () => this.#setUnavailable(new Error('connection to Redis closed')));
    this.#sub.on('message', (channel, message) => this.#onMessage(channel, message));
    this.#sub.on('ready', () => this.#subscribe());
  }

  // ----- the LeaseRegistry contract ----------------------------------------------------

  /**
   * @param {string} userId
   * @param {{ connectionKey?: string, now?: number }} [options] `now` is accepted for
   *   compatibility and ignored: expiry uses Redis's clock.
   * @returns {Promise<AcquireResult>}
   */
  async acquire(userId, options) {
    const problem = userIdProblem(userId);
    if (problem) throw new LeaseError(`invalid user id: ${problem}`, 'INVALID_USER_ID');
    let connectionKey = '';
    if (options !== undefined && options !== null) {
      for (const name of Object.keys(options)) {
        if (name !== 'connectionKey' && name !== 'now') {
          throw invalidOption(`unknown acquire option "${name}"; known: connectionKey, now`);
        }
      }
      if (options.connectionKey !== undefined) {
        const keyProblem = userIdProblem(options.connectionKey, 'connectionKey');
        if (keyProblem) throw invalidOption(keyProblem);
        connectionKey = options.connectionKey;
      }
    }
    this.#checkOpen();
    const limit = this.#userLimits.get(userId) ?? this.#perUserLimit;
    if (!this.#available) {
      if (this.#failMode === 'open') return this.#acquireLocally(userId, limit, connectionKey);
      throw this.#unavailableError();
    }
    const id = newId('conn');
    const p = this.#prefix;
    /** @type {any[]} */
    let reply;
    try {
      reply = await this.#run(
        SCRIPTS.acquire,
        [`${p}u:${userId}`, `${p}l:${id}`, `${p}c:${userId}`, `${p}all`, `${p}users`],
        [
          p,
          this.nodeId,
          id,
          userId,
          limit,
          this.#ttlMs,
          this.#graceMs,
          this.#policy,
          this.#globalLimit ?? -1,
          this.#maxUsers,
          connectionKey,
        ],
      );
    } catch (err) {
      if (!isUnavailable(err)) throw err;
      // A timed-out script may still run when Redis wakes up: release its lease (the id
      // is known, minted here) as soon as Redis is back, after it on the same connection.
      this.#deferRelease(id);
      this.#setUnavailable(err);
      if (this.#failMode === 'open') return this.#acquireLocally(userId, limit, connectionKey);
      throw this.#unavailableError(err);
    }
    const expiredCount = Number(reply[7]);
    const userActive = Number(reply[10]);
    if (expiredCount > 0) this.#reclaimed(userId, expiredCount, reply[8], userActive, limit);

    if (reply[0] !== 1) {
      const reason = /** @type {RefusalReason} */ (reply[1]);
      this.#counters.rejected[reason]++;
      const refusal = { ok: /** @type {const} */ (false), reason, limit: Number(reply[2]), active: Number(reply[3]), retryAfterMs: Number(reply[4]) };
      if (this.#onEvent) {
        this.#emitEvent({ type: 'rejected', userId, active: userActive, limit, reason, dryRun: false, at: Date.now() });
      }
      return refusal;
    }

    const leaseId = /** @type {string} */ (reply[1]);
    const acquiredAt = Number(reply[2]);
    const touchedAt = Number(reply[3]);
    const expiresAt = Number(reply[4]);
    const active = Number(reply[5]);
    const reused = reply[6] === 1;
    /** @type {string[]} */ const evicted = reply[9];
    if (!reused) {
      this.#counters.acquired++;
      this.#hold(leaseId, { userId, acquiredAt, touchedAt, local: false, connectionKey });
    } else {
      const held = this.#held.get(leaseId);
      if (held) held.touchedAt = touchedAt;
    }
    for (const victim of evicted) {
      this.#counters.evicted++;
      this.#forget(victim);
      if (this.#onEvent) this.#emitEvent({ type: 'evicted', userId, leaseId: victim, active, limit, dryRun: false, at: acquiredAt });
    }
    if (this.#onEvent && !reused) this.#limitEvents(userId, active, limit, touchedAt);
    else if (!reused) this.#countNearLimit(active, limit);

    const early = this.#earlyRevocations.get(leaseId);
    if (early) {
      // Revoked by another node before this reply was read: report it once the caller
      // has registered the lease (after its await continues).
      this.#earlyRevocations.delete(leaseId);
      setImmediate(() => this.#revoke(leaseId, early.reason));
    }
    return { ok: true, lease: this.#lease(leaseId, userId, acquiredAt, touchedAt, expiresAt, connectionKey), evicted, reused };
  }

  /**
   * Releases the lease named by any of its ids (`conn_`, `run_`, `thread_`, extra kinds),
   * from any node. Idempotent: `false` (and counted) for an unknown or released id. A
   * malformed id throws `INVALID_ID`, as in the core.
   * @param {string} anyId
   * @param {number} [_now] ignored (Redis's clock)
   * @returns {Promise<boolean>}
   */
  async release(anyId, _now) {
    const id = this.#leaseIdOf(anyId);
    if (id === null) {
      this.#counters.unknownReleases++;
      return false;
    }
    this.#checkOpen();
    const held = this.#held.get(id);
    if (held && (held.local || !this.#available)) return this.#releaseLater(id, held);
    if (!this.#available) throw this.#unavailableError();
    let released;
    try {
      released = await this.#run(SCRIPTS.release, [`${this.#prefix}l:${id}`], [this.#prefix, this.nodeId, id, this.#keepMs]);
    } catch (err) {
      if (!isUnavailable(err)) throw err;
      this.#setUnavailable(err);
      if (held) return this.#releaseLater(id, held);
      throw this.#unavailableError(err);
    }
    this.#forget(id);
    if (released === 1) {
      this.#counters.released++;
      return true;
    }
    this.#counters.unknownReleases++;
    return false;
  }

  /**
   * The heartbeat: moves the lease's expiry to Redis's now + ttlMs. `false` when the lease
   * is unknown or already expired (close that socket). While Redis is unreachable, a
   * lease this node holds is renewed locally and written back when Redis returns.
   * @param {string} anyId
   * @param {number} [_now] ignored (Redis's clock)
   * @returns {Promise<boolean>}
   */
  async touch(anyId, _now) {
    const id = this.#leaseIdOf(anyId);
    if (id === null) return false;
    this.#checkOpen();
    const held = this.#held.get(id);
    if (held && (held.local || !this.#available)) {
      held.touchedAt = Date.now();
      return true;
    }
    if (!this.#available) throw this.#unavailableError();
    /** @type {any[]} */
    let reply;
    try {
      reply = await this.#run(SCRIPTS.touch, [`${this.#prefix}l:${id}`], [this.#prefix, this.nodeId, id, this.#ttlMs, this.#graceMs]);
    } catch (err) {
      if (!isUnavailable(err)) throw err;
      this.#setUnavailable(err);
      if (!held) throw this.#unavailableError(err);
      held.touchedAt = Date.now();
      return true;
    }
    if (reply[0] === 1) {
      if (held) held.touchedAt = Number(reply[1]);
      return true;
    }
    // Gone from Redis (expired, or removed by another node): the host closes the socket,
    // and this node stops tracking it.
    this.#forget(id);
    return false;
  }

  /**
   * Reclaims expired leases of every user (in batches of `sweepBatch`) and returns the ids
   * of those this node held, plus the ones its acquires reclaimed since the last sweep:
   * close those sockets. Other nodes' expired leases are reported to them on their
   * channels.
   * @param {number} [_now] ignored (Redis's clock)
   * @returns {Promise<string[]>}
   */
  async sweep(_now) {
    this.#checkOpen();
    const out = this.#pendingExpired.splice(0);
    if (!this.#available) return out.concat(this.#expireLocally());
    try {
      // Bounded: a huge backlog is worked off over several sweeps.
      for (let round = 0; round < 10; round++) {
        /** @type {any[]} */
        const reply = await this.#run(SCRIPTS.sweep, [`${this.#prefix}all`], [this.#prefix, this.nodeId, this.#sweepBatch, this.#keepMs]);
        this.#counters.expired += Number(reply[0]);
        /** @type {Array<string | number>} */
        const mine = reply[1];
        for (let i = 0; i < mine.length; i += 3) {
          const id = String(mine[i]);
          const userId = String(mine[i + 1]);
          this.#forget(id);
          out.push(id);
          if (this.#onEvent) this.#emitEvent({ type: 'expired', userId, leaseId: id, active: Number(mine[i + 2]), limit: this.#limitOf(userId), dryRun: false, at: Date.now() });
        }
        if (reply[2] !== 1) break;
      }
    } catch (err) {
      if (!isUnavailable(err)) throw err;
      this.#setUnavailable(err);
      return out.concat(this.#expireLocally());
    }
    return out;
  }

  /**
   * Releases every lease this node holds whose id is not among `liveIds` (any derived
   * ids of the sockets the host really holds). Node-local: other nodes' leases are theirs.
   * All ids are checked first; one malformed id throws `INVALID_ID` and nothing changes.
   * @param {Iterable<string>} liveIds
   * @returns {Promise<string[]>}
   */
  async reconcile(liveIds) {
    /** @type {Set<string>} */
    const keep = new Set();
    for (const anyId of liveIds) {
      const id = this.#leaseIdOf(anyId);
      if (id !== null) keep.add(id);
    }
    const doomed = [...this.#held.keys()].filter((id) => !keep.has(id));
    const released = [];
    for (const id of doomed) {
      if (await this.release(id)) {
        this.#counters.reconciled++;
        released.push(id);
      }
    }
    return released;
  }

  /**
   * Deployment-wide gauges from Redis (`active`, `users`) and this node's counters. While
   * Redis is unreachable the gauges fall back to this node's own leases (`redis: "down"`).
   * Never throws for an unreachable Redis: health checks must report, not fail.
   * @returns {Promise<RedisStoreStats>}
   */
  async stats() {
    let active = -1;
    let users = -1;
    if (this.#available && !this.#closed) {
      try {
        /** @type {any[]} */
        const reply = await this.#run(SCRIPTS.stats, [`${this.#prefix}all`, `${this.#prefix}users`], [this.#prefix, this.nodeId]);
        active = Number(reply[1]);
        users = Number(reply[2]);
      } catch (err) {
        if (!isUnavailable(err)) throw err;
        this.#setUnavailable(err);
      }
    }
    const up = active >= 0;
    const c = this.#counters;
    return {
      active: up ? active : this.#held.size,
      users: up ? users : this.#heldByUser.size,
      highWater: c.highWater,
      acquired: c.acquired,
      released: c.released,
      expired: c.expired,
      evicted: c.evicted,
      rejected: c.rejected['user-limit'] + c.rejected['global-limit'] + c.rejected['user-table-full'],
      unknownReleases: c.unknownReleases,
      nearLimitEvents: c.nearLimitEvents,
      reconciled: c.reconciled,
      callbackErrors: c.callbackErrors,
      redis: up ? 'up' : 'down',
      nodeId: this.nodeId,
      held: this.#held.size,
      heldLocally: this.#countLocal(),
      degradedAcquires: c.degradedAcquires,
      pendingReleases: this.#pendingReleases.size,
      outages: c.outages,
      revocations: { ...c.revocations },
    };
  }

  /**
   * One user's live leases (oldest first) and the limit this node applies to it.
   * @param {string} userId
   * @param {number} [_now] ignored (Redis's clock)
   * @returns {Promise<UserStats>}
   */
  async userStats(userId, _now) {
    const problem = userIdProblem(userId);
    if (problem) throw new LeaseError(`invalid user id: ${problem}`, 'INVALID_USER_ID');
    this.#checkOpen();
    if (!this.#available) throw this.#unavailableError();
    /** @type {any[]} */
    const reply = await this.#run(SCRIPTS.user, [`${this.#prefix}u:${userId}`], [this.#prefix, this.nodeId]);
    /** @type {Lease[]} */
    const leases = [];
    for (let i = 1; i < reply.length; i += 5) {
      leases.push(this.#lease(reply[i], userId, Number(reply[i + 2]), Number(reply[i + 3]), Number(reply[i + 1]), reply[i + 4]));
    }
    leases.sort((a, b) => a.acquiredAt - b.acquiredAt || (a.id < b.id ? -1 : 1));
    return { active: leases.length, limit: this.#limitOf(userId), leases };
  }

  /**
   * Prometheus text: the core's `socket_lease_*` series (gauges deployment-wide, counters
   * for this node: sum them across nodes) plus the store's own. Never throws for an
   * unreachable Redis.
   * @returns {Promise<string>}
   */
  async metrics() {
    const s = await this.stats();
    const c = this.#counters;
    /** @type {string[]} */
    const lines = [];
    /** @param {string} name @param {'gauge' | 'counter'} type @param {string} help @param {Array<[string, number]>} samples */
    const series = (name, type, help, samples) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
    };
    series('socket_lease_active_leases', 'gauge', 'Leases currently held, across every node sharing the Redis (this node only while Redis is down).', [['', s.active]]);
    series('socket_lease_users', 'gauge', 'Users holding at least one lease, across every node (this node only while Redis is down).', [['', s.users]]);
    series('socket_lease_high_water', 'gauge', 'Most leases this node held at once since start.', [['', s.highWater]]);
    series('socket_lease_acquired_total', 'counter', 'Leases granted by this node.', [['', s.acquired]]);
    series('socket_lease_released_total', 'counter', 'Leases released through this node (including reconcile).', [['', s.released]]);
    series('socket_lease_expired_total', 'counter', 'Expired leases reclaimed by this node (its own or a dead node\'s).', [['', s.expired]]);
    series('socket_lease_evicted_total', 'counter', 'Leases evicted by this node\'s acquires (evict-oldest or evict-idle).', [['', s.evicted]]);
    series('socket_lease_unknown_release_total', 'counter', 'Releases through this node of ids that named no live lease (the leak detector).', [['', s.unknownReleases]]);
    series('socket_lease_near_limit_total', 'counter', 'Times a user crossed the warn ratio of its limit on this node.', [['', s.nearLimitEvents]]);
    series('socket_lease_reconciled_total', 'counter', 'Leases released by reconcile because their socket was gone.', [['', s.reconciled]]);
    series('socket_lease_rejected_total', 'counter', 'Acquires refused by this node, by reason.', [
      ['{reason="user-limit"}', c.rejected['user-limit']],
      ['{reason="global-limit"}', c.rejected['global-limit']],
      ['{reason="user-table-full"}', c.rejected['user-table-full']],
    ]);
    series('socket_lease_redis_up', 'gauge', 'Whether this node can use Redis (1) or is in its fail mode (0).', [['', s.redis === 'up' ? 1 : 0]]);
    series('socket_lease_redis_held_leases', 'gauge', 'Leases whose sockets this node holds.', [['', s.held]]);
    series('socket_lease_redis_held_local_leases', 'gauge', 'Leases this node accepted while Redis was away (failMode open), not yet written back.', [['', s.heldLocally]]);
    series('socket_lease_redis_degraded_acquires_total', 'counter', 'Leases accepted without Redis (failMode open).', [['', s.degradedAcquires]]);
    series('socket_lease_redis_outages_total', 'counter', 'Times this node lost Redis.', [['', s.outages]]);
    series('socket_lease_redis_pending_releases', 'gauge', 'Releases waiting for Redis to return.', [['', s.pendingReleases]]);
    series('socket_lease_redis_revocations_total', 'counter', 'Leases of this node removed by another node, by reason.', [
      ['{reason="evicted"}', c.revocations.evicted],
      ['{reason="expired"}', c.revocations.expired],
      ['{reason="released"}', c.revocations.released],
    ]);
    return lines.join('\n') + '\n';
  }

  /** The options in force. */
  getOptions() {
    return {
      perUserLimit: this.#perUserLimit,
      globalLimit: this.#globalLimit,
      userLimits: Object.fromEntries(this.#userLimits),
      ttlMs: this.#ttlMs,
      onLimit: this.#policy,
      warnRatio: this.#warnRatio,
      maxUsers: this.#maxUsers,
      mode: /** @type {const} */ ('enforce'),
      kinds: [...this.#extraKinds],
      prefix: this.#prefix,
      failMode: this.#failMode,
      keyGraceMs: this.#graceMs,
    };
  }

  // ----- lifecycle -----------------------------------------------------------------------

  /** Whether Redis is usable now (false: the fail mode applies). */
  get available() {
    return this.#available;
  }

  /**
   * Resolves `true` once Redis answers and this node's channel is subscribed, or `false`
   * after `timeoutMs` (the store keeps reconnecting; the fail mode applies meanwhile).
   * @param {number} [timeoutMs]
   * @returns {Promise<boolean>}
   */
  ready(timeoutMs = 5000) {
    if (this.#isReady()) return Promise.resolve(true);
    if (this.#closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#readyWaiters.delete(done);
        resolve(this.#isReady());
      };
      const timer = setTimeout(done, timeoutMs);
      timer.unref();
      this.#readyWaiters.add(done);
    });
  }

  /**
   * Closes both Redis connections. Leases are not released here: the host's guard does
   * that on its own close(); what is left expires by TTL.
   * @returns {Promise<void>}
   */
  async close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#available = false;
    this.#stopProbe();
    for (const wake of [...this.#readyWaiters]) wake();
    await Promise.all([quit(this.#client), quit(this.#sub)]);
  }

  // ----- internals -------------------------------------------------------------------------

  /**
   * EVALSHA, with EVAL when Redis does not know the script (restarted, SCRIPT FLUSH):
   * one round trip in the normal case. Scripts are also loaded on every (re)connect.
   * @param {Script} script
   * @param {string[]} keys
   * @param {Array<string | number>} args
   * @returns {Promise<any>}
   */
  async #run(script, keys, args) {
    try {
      return await this.#client.evalsha(script.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!isNoScript(err)) throw err;
      return this.#client.eval(script.lua, keys.length, ...keys, ...args);
    }
  }

  #checkOpen() {
    if (this.#closed) throw new Error('socket-lease/redis: the store is closed');
  }

  #isReady() {
    return this.#available && this.#subscribed;
  }

  #wakeReadyWaiters() {
    if (!this.#isReady()) return;
    for (const wake of [...this.#readyWaiters]) wake();
  }

  /** @param {unknown} [cause] */
  #unavailableError(cause) {
    const err = new Error(
      `socket-lease/redis: Redis is unavailable (failMode "closed": refusing new connections)${cause ? `: ${String(/** @type {Error} */ (cause).message ?? cause)}` : ''}`,
      cause ? { cause } : undefined,
    );
    /** @type {any} */ (err).code = 'REDIS_UNAVAILABLE';
    return err;
  }

  /**
   * Any derived id -> the lease id (`conn_…`) that names its record, through the core's
   * parser and deriveId; null for a well-formed id of a kind that names no lease here.
   * Throws INVALID_ID for a malformed id.
   * @param {string} anyId
   * @returns {string | null}
   */
  #leaseIdOf(anyId) {
    // The usual call is with an id this node minted: no parse needed.
    if (this.#held.has(anyId)) return anyId;
    const { kind } = parseId(anyId);
    if (!this.#kinds.has(kind)) return null;
    return kind === 'conn' ? anyId : deriveId(anyId, 'conn');
  }

  /** @param {string} userId */
  #limitOf(userId) {
    return this.#userLimits.get(userId) ?? this.#perUserLimit;
  }

  /**
   * @param {string} id
   * @param {string} userId
   * @param {number} acquiredAt
   * @param {number} touchedAt
   * @param {number} expiresAt
   * @param {string} connectionKey
   * @returns {Lease}
   */
  #lease(id, userId, acquiredAt, touchedAt, expiresAt, connectionKey) {
    /** @type {Lease} */
    const lease = {
      id,
      connectionId: id,
      runId: deriveId(id, 'run'),
      threadId: deriveId(id, 'thread'),
      userId,
      acquiredAt,
      touchedAt,
      expiresAt,
    };
    if (connectionKey) lease.connectionKey = connectionKey;
    if (this.#extraKinds.length > 0) {
      /** @type {Record<string, string>} */
      const ids = {};
      for (const kind of this.#extraKinds) ids[kind] = deriveId(id, kind);
      lease.ids = ids;
    }
    return lease;
  }

  /**
   * @param {string} id
   * @param {Held} held
   */
  #hold(id, held) {
    this.#held.set(id, held);
    let set = this.#heldByUser.get(held.userId);
    if (!set) this.#heldByUser.set(held.userId, (set = new Set()));
    set.add(id);
    if (this.#held.size > this.#counters.highWater) this.#counters.highWater = this.#held.size;
  }

  /** @param {string} id */
  #forget(id) {
    const held = this.#held.get(id);
    if (!held) return undefined;
    this.#held.delete(id);
    const set = this.#heldByUser.get(held.userId);
    if (set) {
      set.delete(id);
      if (set.size === 0) this.#heldByUser.delete(held.userId);
    }
    return held;
  }

  #countLocal() {
    let n = 0;
    for (const held of this.#held.values()) if (held.local) n++;
    return n;
  }

  /**
   * @param {string} id
   * @param {Held} held
   */
  #releaseLater(id, held) {
    this.#forget(id);
    this.#counters.released++;
    // In Redis, but Redis is away: release it when Redis returns (it also expires by TTL).
    if (!held.local) this.#deferRelease(id);
    return true;
  }

  /** @param {string} id */
  #deferRelease(id) {
    if (this.#pendingReleases.size >= PENDING_RELEASE_CAP) {
      const oldest = this.#pendingReleases.values().next().value;
      if (oldest !== undefined) this.#pendingReleases.delete(oldest);
    }
    this.#pendingReleases.add(id);
  }

  /**
   * failMode "open" while Redis is away: accept, with the per-user limit applied to this
   * node's own leases (the only ones it can see), and say so loudly.
   * @param {string} userId
   * @param {number} limit
   * @param {string} connectionKey
   * @returns {AcquireResult}
   */
  #acquireLocally(userId, limit, connectionKey) {
    const mine = this.#heldByUser.get(userId);
    const now = Date.now();
    if (connectionKey && mine) {
      for (const id of mine) {
        const held = /** @type {Held} */ (this.#held.get(id));
        if (held.connectionKey === connectionKey) {
          held.touchedAt = now;
          return { ok: true, lease: this.#lease(id, userId, held.acquiredAt, now, now + this.#ttlMs, connectionKey), evicted: [], reused: true };
        }
      }
    }
    const active = mine?.size ?? 0;
    if (active >= limit) {
      this.#counters.rejected['user-limit']++;
      return { ok: false, reason: 'user-limit', limit, active, retryAfterMs: 1000 };
    }
    const id = newId('conn', now);
    this.#hold(id, { userId, acquiredAt: now, touchedAt: now, local: true, connectionKey });
    this.#counters.acquired++;
    this.#counters.degradedAcquires++;
    this.#log('warn', 'Redis unavailable: accepted a connection tracked on this node only (failMode open); it is registered in Redis when Redis returns', {
      userId,
      leaseId: id,
      activeOnThisNode: active + 1,
      limit,
    });
    return { ok: true, lease: this.#lease(id, userId, now, now, now + this.#ttlMs, connectionKey), evicted: [], reused: false };
  }

  /** While Redis is away: leases of this node not touched within the TTL (host clock). */
  #expireLocally() {
    const now = Date.now();
    /** @type {string[]} */
    const out = [];
    for (const [id, held] of this.#held) {
      if (now - held.touchedAt >= this.#ttlMs) {
        this.#forget(id);
        this.#counters.expired++;
        out.push(id);
      }
    }
    return out;
  }

  /**
   * Expired leases an acquire reclaimed for `userId`: counted, and this node's own are
   * reported by the next sweep (as the core does).
   * @param {string} userId
   * @param {number} count
   * @param {string[]} mine
   * @param {number} active   the user's leases left after the reclaim
   * @param {number} limit
   */
  #reclaimed(userId, count, mine, active, limit) {
    this.#counters.expired += count;
    for (const id of mine) {
      this.#forget(id);
      if (this.#pendingExpired.length < PENDING_EXPIRED_CAP) this.#pendingExpired.push(id);
      if (this.#onEvent) this.#emitEvent({ type: 'expired', userId, leaseId: id, active, limit, dryRun: false, at: Date.now() });
    }
  }

  /** @param {number} limit */
  #threshold(limit) {
    return Math.min(Math.max(Math.ceil(limit * this.#warnRatio), 1), Math.max(limit, 1));
  }

  /**
   * near-limit fires when an acquire brings the user from below the threshold to it,
   * which is exactly when the core's edge-triggered flag fires (counts move by one).
   * @param {number} active
   * @param {number} limit
   */
  #countNearLimit(active, limit) {
    const crossed = limit > 0 && active === this.#threshold(limit);
    if (crossed) this.#counters.nearLimitEvents++;
    return crossed;
  }

  /**
   * @param {string} userId
   * @param {number} active
   * @param {number} limit
   * @param {number} at
   */
  #limitEvents(userId, active, limit, at) {
    if (this.#countNearLimit(active, limit)) this.#emitEvent({ type: 'near-limit', userId, active, limit, dryRun: false, at });
    if (limit > 0 && active === limit) this.#emitEvent({ type: 'limit-reached', userId, active, limit, dryRun: false, at });
  }

  /** @param {LeaseEvent} event */
  #emitEvent(event) {
    const onEvent = this.#onEvent;
    if (!onEvent) return;
    try {
      onEvent(event);
    } catch {
      this.#counters.callbackErrors++;
    }
  }

  /**
   * @param {string} channel
   * @param {string} message  "<reason> <lease id>"
   */
  #onMessage(channel, message) {
    if (channel !== this.#channel) return;
    const space = message.indexOf(' ');
    const reason = /** @type {RevokedLease['reason']} */ (message.slice(0, space));
    const id = message.slice(space + 1);
    if (space < 0 || !REVOCATION_REASONS.has(reason)) return;
    if (this.#held.has(id)) {
      this.#revoke(id, reason);
      return;
    }
    // Not (yet) known: possibly an acquire whose reply is still on its way.
    const now = Date.now();
    for (const [old, entry] of this.#earlyRevocations) {
      if (this.#earlyRevocations.size < EARLY_REVOCATION_CAP && now - entry.at < EARLY_REVOCATION_MS) break;
      this.#earlyRevocations.delete(old);
    }
    this.#earlyRevocations.set(id, { reason, at: now });
  }

  /**
   * Another node removed a lease whose socket this node holds.
   * @param {string} id
   * @param {RevokedLease['reason']} reason
   */
  #revoke(id, reason) {
    if (!this.#forget(id)) return;
    this.#counters.revocations[reason]++;
    this.#log('info', 'lease removed by another node', { leaseId: id, reason });
    /** @type {RevokedLease} */
    const event = { leaseId: id, reason };
    this.emit('revoked', event);
  }

  #subscribe() {
    this.#sub.subscribe(this.#channel).then(
      () => {
        this.#subscribed = true;
        this.#wakeReadyWaiters();
      },
      (err) => this.#log('warn', 'could not subscribe to this node\'s channel; retrying on reconnect', { error: String(err) }),
    );
  }

  /** @param {unknown} err */
  #setUnavailable(err) {
    if (this.#closed) return;
    if (this.#available) {
      this.#available = false;
      this.#counters.outages++;
      const detail = String(/** @type {Error} */ (err)?.message ?? err);
      if (this.#failMode === 'closed') {
        this.#log('error', 'Redis unavailable; failMode closed: new connections are refused with HTTP 503 until it returns', { error: detail, nodeId: this.nodeId });
      } else {
        this.#log('error', 'Redis unavailable; failMode open: ACCEPTING new connections tracked on this node only (per-user limit per node, no global limit); they are registered in Redis when it returns', {
          error: detail,
          nodeId: this.nodeId,
        });
      }
    }
    this.#startProbe();
  }

  // While unavailable, a probe retries the resync: a reconnect is announced by `ready`,
  // but a Redis that stalled (or answered LOADING) without dropping the connection is not.
  #startProbe() {
    if (this.#probeTimer || this.#closed) return;
    this.#probeTimer = setInterval(() => {
      if (this.#client.status === 'ready') void this.#resync();
    }, this.#probeMs);
    this.#probeTimer.unref();
  }

  #stopProbe() {
    if (this.#probeTimer) clearInterval(this.#probeTimer);
    this.#probeTimer = null;
  }

  /**
   * (Re)connected: load the scripts, replay releases that could not be sent, and write
   * this node's live leases back (see register.lua for what is written back and what is
   * revoked). Only then is Redis used again, so the counts include every lease.
   */
  #resync() {
    if (this.#closed) return Promise.resolve();
    if (this.#resyncing) {
      this.#resyncAgain = true;
      return this.#resyncing;
    }
    this.#resyncing = (async () => {
      try {
        do {
          this.#resyncAgain = false;
          await this.#resyncOnce();
        } while (this.#resyncAgain && !this.#closed);
      } catch (err) {
        this.#log('debug', 'resync failed; retrying', { error: String(err) });
        this.#setUnavailable(err);
      } finally {
        this.#resyncing = null;
      }
    })();
    return this.#resyncing;
  }

  async #resyncOnce() {
    const client = this.#client;
    const info = String(await client.info('server'));
    const runId = /run_id:(\w+)/.exec(info)?.[1] ?? '';
    // A different run id means Redis restarted: without persistence it lost every lease.
    const restarted = this.#runId !== null && runId !== this.#runId;
    this.#runId = runId;
    for (const script of Object.values(SCRIPTS)) await client.script('LOAD', script.lua);

    for (const id of [...this.#pendingReleases]) {
      await this.#run(SCRIPTS.release, [`${this.#prefix}l:${id}`], [this.#prefix, this.nodeId, id, this.#keepMs]);
      this.#pendingReleases.delete(id);
    }

    const held = [...this.#held.entries()];
    let written = 0;
    let revoked = 0;
    for (let i = 0; i < held.length; i += REGISTER_CHUNK) {
      /** @type {Array<string | number>} */
      const args = [this.#prefix, this.nodeId, this.#ttlMs, this.#graceMs, restarted ? 1 : 0];
      for (const [id, h] of held.slice(i, i + REGISTER_CHUNK)) args.push(id, h.userId, h.acquiredAt, h.local ? 1 : 0, h.connectionKey);
      /** @type {string[]} */
      const reply = await this.#run(SCRIPTS.register, [`${this.#prefix}all`, `${this.#prefix}users`], args);
      for (let j = 0; j < reply.length; j += 2) {
        const id = reply[j];
        const status = reply[j + 1];
        const h = this.#held.get(id);
        if (!h) {
          // Released here while this call was on its way: give the slot back at once.
          if (status === 'ok') this.#pendingReleases.add(id);
          continue;
        }
        if (status === 'ok') {
          h.local = false;
          written++;
        } else {
          revoked++;
          this.#revoke(id, /** @type {RevokedLease['reason']} */ (REVOCATION_REASONS.has(status) ? status : 'expired'));
        }
      }
    }
    const wasDown = !this.#available;
    this.#available = true;
    this.#stopProbe();
    if (wasDown && (this.#counters.outages > 0 || held.length > 0)) {
      this.#log('info', 'Redis available; quotas are enforced across nodes again', {
        nodeId: this.nodeId,
        redisRestarted: restarted,
        leasesWrittenBack: written,
        leasesRevoked: revoked,
      });
    }
    this.#wakeReadyWaiters();
  }
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

/** @param {RedisLeaseStoreOptions} [options] */
function createRedisLeaseStore(options) {
  return new RedisLeaseStore(options);
}

// Compile-time checks that the implementation matches the published declarations.
/** @type {typeof import('./index.js').RedisLeaseStore} */
const checkedClass = RedisLeaseStore;
/** @type {typeof import('./index.js').createRedisLeaseStore} */
const checkedFactory = createRedisLeaseStore;

module.exports = { RedisLeaseStore: checkedClass, createRedisLeaseStore: checkedFactory, userIdProblem };
