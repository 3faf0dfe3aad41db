'use strict';
// socket-lease/redis: a lease store shared by many Node hosts through one Redis.
//
// The contract is LeaseRegistry's (acquire / release / touch / sweep / stats / metrics,
// the same result and error shapes), made asynchronous. This file is that contract; each
// part it is made of has one job:
//   options.cjs   the options and call arguments, checked with the core's rules
//   scripts.cjs   the Lua scripts (./lua: the quota rules of the Redis engine)
//   client.cjs    the Redis connections and script calls (the one file that knows ioredis)
//   keys.cjs      the keys named on this side: a Redis Cluster's routing keys and id index
//   batch.cjs     calls of one turn of the event loop sent to Redis together
//   replies.cjs   the acquire script's answers, read
//   held.cjs      the leases whose sockets this node holds
//   outage.cjs    whether Redis can be used, and the write-back when it returns
//   local.cjs     while Redis is away: this node's quota, decided by the core's registry
//   pubsub.cjs    revocations from other nodes
//   metrics.cjs   the counters and their Prometheus text
// Ids are minted and validated by the WASM core (newId / parseId / deriveId); the
// scripts only use them as opaque strings.
//
// Written as CommonJS for the same reason as the guard: index.mjs re-exports this file,
// so `import` and `require` share one module instance (and one WASM instance).

const { EventEmitter } = require('node:events');
const { LeaseRegistry, newId, parseId, deriveId } = require('../node.cjs');
const { acquireOptions, checkTime, checkUserId, readOptions } = require('./options.cjs');
const { buildScripts } = require('./scripts.cjs');
const { connect, deleteKey, getKey, isUnavailable, quit, run, setKey } = require('./client.cjs');
const { makeKeys } = require('./keys.cjs');
const { Batcher } = require('./batch.cjs');
const { HeldLeases } = require('./held.cjs');
const { LocalQuota } = require('./local.cjs');
const { Outage } = require('./outage.cjs');
const { Revocations } = require('./pubsub.cjs');
const { newCounters, renderMetrics } = require('./metrics.cjs');
const { readLine, readUsual } = require('./replies.cjs');

/** @typedef {import('./index.js').RedisLeaseStoreOptions} RedisLeaseStoreOptions */
/** @typedef {import('./index.js').RedisStoreStats} RedisStoreStats */
/** @typedef {import('./index.js').RevokedLease} RevokedLease */
/** @typedef {import('./index.js').FailMode} FailMode */
/** @typedef {import('socket-lease').Lease} Lease */
/** @typedef {import('socket-lease').AcquireResult} AcquireResult */
/** @typedef {import('socket-lease').LeaseEvent} LeaseEvent */
/** @typedef {import('socket-lease').UserStats} UserStats */
/** @typedef {import('./held.cjs').Held} Held */

// The same bound as the core's list of lazily expired ids awaiting sweep().
const { pendingExpiredCap: PENDING_EXPIRED_CAP } = LeaseRegistry.coreLimits();
// This node's leases asked about per sweep script call.
const SWEEP_CHUNK = 500;
// In a cluster, sweep calls (one per user) in flight at once.
const SWEEP_PARALLEL = 64;

class RedisLeaseStore extends EventEmitter {
  /** This store's node id (`node_…`, minted by the core): the channel its evictions arrive on. */
  nodeId;

  /** @type {import('./client.cjs').Client} */ #client;
  /** @type {import('./client.cjs').Client} */ #sub;
  /** @type {import('./keys.cjs').Keys} */ #keys;
  /** @type {import('./scripts.cjs').Scripts} */ #scripts;
  /** @type {import('./options.cjs').QuotaOptions} */ #quota;
  #prefix;
  #failMode;
  #ttlMs;
  #graceMs;
  #perUserLimit;
  /** @type {Map<string, number>} */ #userLimits;
  /** @type {number | null} */ #globalLimit;
  #policy;
  #warnRatio;
  /** @type {Set<string>} */ #kinds;
  /** @type {string[]} */ #extraKinds;
  #sweepBatch;
  /** How long an id index entry lives (a cluster): as long as the lease's own keys. */
  #indexMs;
  /** @type {((event: LeaseEvent) => void) | null} */ #onEvent;
  #log;
  #batch;
  #outage;
  #revocations;

  #held = new HeldLeases();
  /** While Redis is away (and until it first answers): this node's quota. @type {LocalQuota | null} */
  #local = null;
  /** @type {string[]} */ #pendingExpired = [];
  #closed = false;
  /** @type {Set<() => void>} */ #readyWaiters = new Set();
  #counters = newCounters();

  /** @param {RedisLeaseStoreOptions} [options] */
  constructor(options = {}) {
    super();
    const o = readOptions(options);
    const q = o.quota;
    this.#quota = q;
    this.#prefix = o.prefix;
    this.#failMode = o.failMode;
    this.#graceMs = o.graceMs;
    this.#sweepBatch = o.sweepBatch;
    this.#indexMs = q.ttlMs + o.graceMs;
    this.#ttlMs = q.ttlMs;
    this.#perUserLimit = q.perUserLimit;
    this.#userLimits = new Map(Object.entries(q.userLimits));
    this.#globalLimit = q.globalLimit;
    this.#policy = q.policy;
    this.#warnRatio = q.warnRatio;
    this.#extraKinds = q.kinds;
    this.#kinds = new Set(['conn', 'run', 'thread', ...q.kinds]);
    this.#onEvent = o.onEvent;
    this.#log = o.log;

    const cluster = o.cluster !== null;
    const scripts = buildScripts({
      prefix: o.prefix,
      ttlMs: q.ttlMs,
      graceMs: o.graceMs,
      policy: q.policy,
      globalLimit: q.globalLimit,
      warnRatio: q.warnRatio,
      cluster,
    });
    this.#scripts = scripts;
    this.#keys = makeKeys(o.prefix, cluster);
    this.nodeId = newId('node');
    const { client, sub } = connect(o.url, o.redis, o.commandTimeoutMs, o.cluster);
    this.#client = client;
    this.#sub = sub;
    this.#batch = new Batcher(client, scripts, this.nodeId, o.batchSize, this.#keys);
    // Redis has not answered yet: the fail mode applies from the start.
    this.#startLocal();
    this.#outage = new Outage({
      client,
      route: this.#keys.route,
      scripts,
      nodeId: this.nodeId,
      failMode: o.failMode,
      probeMs: o.probeMs,
      log: o.log,
      counters: this.#counters,
      held: this.#held,
      call: (kind, id, user, limit, where) => this.#batch.call(kind, id, user, limit, where),
      revoke: (id, reason) => this.#revoke(id, reason),
      alive: (id, now) => this.#local?.alive(id, now) === true,
      onDown: () => this.#startLocal(),
      onUp: () => {
        this.#stopLocal();
        // A failover may have lost index entries with the leases: written again on the
        // next touch of each.
        if (cluster) for (const [, held] of this.#held.entries()) held.indexedAt = 0;
      },
      onReady: () => this.#wakeReadyWaiters(),
    });
    this.#revocations = new Revocations(sub, `${o.prefix}n:${this.nodeId}`, o.log, {
      isHeld: (id) => this.#held.has(id),
      revoke: (id, reason) => this.#revoke(id, reason),
      onSubscribed: () => this.#wakeReadyWaiters(),
    });
  }

  // ----- the LeaseRegistry contract ----------------------------------------------------

  /**
   * @param {string} userId
   * @param {{ connectionKey?: string, now?: number, evict?: boolean }} [options] `now` is
   *   accepted for compatibility and ignored: expiry uses Redis's clock. `evict: false`:
   *   never evict (see AcquireOptions.evict in the core's types).
   * @returns {Promise<AcquireResult>}
   */
  async acquire(userId, options) {
    checkUserId(userId);
    const { connectionKey, keep } = acquireOptions(options, this.#policy);
    this.#checkOpen();
    const outage = this.#outage;
    if (!outage.available) {
      // The local path never evicts (it refuses at this node's limit), so `evict` changes nothing there.
      if (this.#failMode === 'open') return this.#acquireLocally(userId, connectionKey);
      throw outage.unavailableError();
    }
    const limit = this.#limitOf(userId);
    const id = newId('conn');
    /** @type {string | number} */
    let line;
    try {
      if (connectionKey || keep) this.#batch.flush(); // behind what this node asked before (see Batcher.flush)
      line = await (connectionKey || keep
        ? run(
            this.#client,
            this.#scripts.acquire,
            keep ? [this.nodeId, id, userId, limit, connectionKey, '1'] : [this.nodeId, id, userId, limit, connectionKey],
            this.#keys.route(userId),
          )
        : this.#batch.call('a', id, userId, limit));
    } catch (err) {
      if (!isUnavailable(err)) throw err;
      // A timed-out script may still run when Redis wakes up: release its lease (the id
      // is known, minted here) as soon as Redis is back, after it on the same connection.
      outage.deferRelease(id, userId);
      outage.setUnavailable(err);
      if (this.#failMode === 'open') return this.#acquireLocally(userId, connectionKey);
      throw outage.unavailableError(err);
    }
    if (typeof line === 'number') {
      // The usual answer (replies.cjs): a new lease, nothing else to report.
      const { acquiredAt, active } = readUsual(line);
      this.#counters.acquired++;
      this.#hold(id, { userId, acquiredAt, renewedAt: Date.now(), local: false, connectionKey: '' });
      if (this.#onEvent) this.#limitEvents(userId, active, limit, acquiredAt, false);
      this.#revocations.takeEarly(id);
      return { ok: true, lease: this.#lease(id, userId, acquiredAt, acquiredAt, acquiredAt + this.#ttlMs, ''), evicted: [], reclaimed: [], reused: false };
    }
    const r = readLine(line);
    if (!r.ok) {
      if (r.reclaimed.length > 0) this.#reclaimed(userId, r.reclaimed, r.userActive, limit);
      /** @type {AcquireResult} */
      const refusal = { ok: false, reason: r.reason, limit: r.limit, active: r.active, retryAfterMs: r.retryAfterMs };
      if (r.evictable) {
        // Not a rejection (the host asks again, allowed to evict): not counted, no event.
        refusal.evictable = true;
      } else {
        this.#counters.rejected[r.reason]++;
        if (this.#onEvent) this.#emitEvent({ type: 'rejected', userId, active: r.userActive, limit, reason: r.reason, dryRun: false, at: Date.now() });
      }
      if (r.reclaimed.length > 0) refusal.reclaimed = r.reclaimed;
      return refusal;
    }

    if (r.reclaimed.length > 0) this.#reclaimed(userId, r.reclaimed, r.before, limit);
    if (!r.reused) {
      this.#counters.acquired++;
      this.#hold(r.id, { userId, acquiredAt: r.acquiredAt, renewedAt: Date.now(), local: false, connectionKey });
    } else {
      const held = this.#held.get(r.id);
      if (held) this.#renewed(r.id, held);
    }
    for (const victim of r.evicted) {
      this.#counters.evicted++;
      this.#forget(victim);
      if (this.#onEvent) this.#emitEvent({ type: 'evicted', userId, leaseId: victim, active: r.active, limit, dryRun: false, at: r.acquiredAt });
    }
    if (!r.reused) this.#limitEvents(userId, r.active, limit, r.touchedAt, r.near);

    this.#revocations.takeEarly(r.id);
    return {
      ok: true,
      lease: this.#lease(r.id, userId, r.acquiredAt, r.touchedAt, r.expiresAt, connectionKey),
      evicted: r.evicted,
      reclaimed: r.reclaimed,
      reused: r.reused,
    };
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
    checkTime(_now);
    const id = this.#leaseIdOf(anyId);
    if (id === null) {
      this.#counters.unknownReleases++;
      return false;
    }
    this.#checkOpen();
    const outage = this.#outage;
    const held = this.#held.get(id);
    if (held && (held.local || !outage.available)) return this.#releaseLater(id, held);
    if (!outage.available) throw outage.unavailableError();
    let released;
    try {
      // In a cluster, another node's lease is found through the id index first (a
      // second round trip): its record's slot is its user's.
      const where = held || !this.#keys.cluster ? '' : await this.#userOf(id);
      if (where === null) {
        this.#counters.unknownReleases++;
        return false;
      }
      // The holder passes the user and key it knows, which spares Redis reading the record.
      const conn = held?.connectionKey ?? '';
      if (conn) this.#batch.flush();
      released = Number(
        await (conn
          ? run(this.#client, this.#scripts.release, [id, /** @type {Held} */ (held).userId, conn], this.#keys.route(/** @type {Held} */ (held).userId))
          : this.#batch.call('r', id, held?.userId ?? '', 0, where)),
      );
      if (this.#keys.cluster) this.#unindex(id);
    } catch (err) {
      if (!isUnavailable(err)) throw err;
      outage.setUnavailable(err);
      if (held) return this.#releaseLater(id, held);
      throw outage.unavailableError(err);
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
   * lease this node holds is renewed locally (unless it expired there: silent for the
   * TTL) and written back when Redis returns.
   * @param {string} anyId
   * @param {number} [_now] ignored (Redis's clock)
   * @returns {Promise<boolean>}
   */
  async touch(anyId, _now) {
    checkTime(_now);
    const id = this.#leaseIdOf(anyId);
    if (id === null) return false;
    this.#checkOpen();
    const outage = this.#outage;
    const held = this.#held.get(id);
    if (held && (held.local || !outage.available)) return this.#touchLocally(id, held);
    if (!outage.available) throw outage.unavailableError();
    /** @type {number} */
    let reply;
    try {
      if (this.#keys.cluster) {
        // The record's slot is its user's: the holder knows the user, any other node
        // asks the id index first.
        const user = held ? held.userId : await this.#userOf(id);
        if (user === null) return false;
        reply = await this.#batch.call('t', id, user, 0);
        if (reply > 0 && held && Date.now() - (held.indexedAt ?? 0) > this.#indexMs / 2) this.#index(id, held);
      } else {
        reply = await this.#batch.call('t', id, '', 0);
      }
    } catch (err) {
      if (!isUnavailable(err)) throw err;
      outage.setUnavailable(err);
      if (!held) throw outage.unavailableError(err);
      return this.#touchLocally(id, held);
    }
    // touchedAt (Redis's now), or 0 for a lease that is gone.
    if (reply > 0) {
      if (held) this.#renewed(id, held);
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
    checkTime(_now);
    this.#checkOpen();
    const out = this.#pendingExpired.splice(0);
    if (!this.#outage.available) return out.concat(this.#expireLocally());
    // Only leases Redis has not renewed for half a TTL can have expired: a live socket's
    // heartbeat renews its lease every heartbeatMs, so a healthy node checks nothing.
    const now = Date.now();
    /** @type {Array<string | number>} */
    let candidates = [];
    for (const [id, held] of this.#held.entries()) {
      if (!held.local && now - held.renewedAt >= this.#ttlMs / 2) candidates.push(id, held.userId);
    }
    try {
      if (this.#keys.cluster) {
        await this.#sweepShards(candidates.slice(0, 20 * SWEEP_CHUNK), out);
        return out;
      }
      // Bounded: a huge backlog is worked off over several sweeps.
      for (let round = 0; round < 10; round++) {
        const chunk = candidates.slice(0, 2 * SWEEP_CHUNK);
        candidates = candidates.slice(chunk.length);
        const globalPass = this.#globalLimit !== null ? this.#sweepBatch : 0;
        if (chunk.length === 0 && (globalPass === 0 || round > 0)) break;
        /** @type {any[]} */
        const reply = await run(this.#client, this.#scripts.sweep, [this.nodeId, globalPass, ...chunk]);
        this.#swept(reply, out);
        if (reply[2] !== 1 && candidates.length === 0) break;
      }
    } catch (err) {
      if (!isUnavailable(err)) throw err;
      this.#outage.setUnavailable(err);
      return out.concat(this.#expireLocally());
    }
    return out;
  }

  /**
   * A sweep script's answer: this node's leases that expired, reported and forgotten.
   * @param {any[]} reply
   * @param {string[]} out
   */
  #swept(reply, out) {
    this.#counters.expired += Number(reply[0]);
    /** @type {Array<string | number>} */
    const mine = reply[1];
    for (let i = 0; i < mine.length; i += 3) {
      const id = String(mine[i]);
      const userId = String(mine[i + 1]);
      this.#forget(id);
      out.push(id);
      if (this.#onEvent)
        this.#emitEvent({ type: 'expired', userId, leaseId: id, active: Number(mine[i + 2]), limit: this.#limitOf(userId), dryRun: false, at: Date.now() });
    }
  }

  /**
   * sweep() in a cluster: the candidates (id, user pairs) asked about user by user, since
   * one script call may touch one slot only; a few users' calls at a time.
   * @param {Array<string | number>} candidates
   * @param {string[]} out
   */
  async #sweepShards(candidates, out) {
    /** @type {Map<string, Array<string | number>>} */
    const byUser = new Map();
    for (let i = 0; i < candidates.length; i += 2) {
      const user = String(candidates[i + 1]);
      const pairs = byUser.get(user);
      if (pairs) pairs.push(candidates[i], user);
      else byUser.set(user, [candidates[i], user]);
    }
    const users = [...byUser];
    for (let i = 0; i < users.length; i += SWEEP_PARALLEL) {
      const replies = await Promise.all(
        users.slice(i, i + SWEEP_PARALLEL).map(([user, pairs]) => run(this.#client, this.#scripts.sweep, [this.nodeId, 0, ...pairs], this.#keys.route(user))),
      );
      for (const reply of replies) this.#swept(reply, out);
    }
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
   * The deployment-wide count of live leases (`active`, from Redis) and this node's
   * figures: `users` with a lease on this node, `highWater`, the counters. While Redis is
   * unreachable `active` falls back to this node's own leases (`redis: "down"`).
   * Never throws for an unreachable Redis: health checks must report, not fail.
   * @returns {Promise<RedisStoreStats>}
   */
  async stats() {
    /** @type {number | null} */
    let deploymentActive = null;
    if (this.#outage.available && !this.#closed && this.#globalLimit !== null) {
      try {
        /** @type {any[]} */
        const reply = await run(this.#client, this.#scripts.stats, [this.nodeId]);
        deploymentActive = Number(reply[1]);
      } catch (err) {
        if (!isUnavailable(err)) throw err;
        this.#outage.setUnavailable(err);
      }
    }
    const up = this.#outage.available && !this.#closed;
    const c = this.#counters;
    const held = this.#held;
    return {
      active: held.size,
      users: held.users,
      highWater: held.highWater,
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
      deploymentActive,
      nodeId: this.nodeId,
      held: held.size,
      heldLocally: held.countLocal(),
      degradedAcquires: c.degradedAcquires,
      pendingReleases: this.#outage.pendingReleases,
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
    checkUserId(userId);
    checkTime(_now);
    this.#checkOpen();
    const outage = this.#outage;
    if (!outage.available) throw outage.unavailableError();
    /** @type {any[]} */
    let reply;
    try {
      reply = await run(this.#client, this.#scripts.user, [this.nodeId, userId], this.#keys.route(userId));
    } catch (err) {
      if (!isUnavailable(err)) throw err;
      outage.setUnavailable(err);
      throw outage.unavailableError(err);
    }
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
    return renderMetrics(await this.stats(), this.#counters);
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
    return this.#outage.available;
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
    this.#outage.close();
    this.#stopLocal();
    for (const wake of [...this.#readyWaiters]) wake();
    await Promise.all([quit(this.#client), quit(this.#sub)]);
  }

  // ----- internals -------------------------------------------------------------------------

  #checkOpen() {
    if (this.#closed) {
      const err = new Error('socket-lease/redis: the store is closed');
      /** @type {any} */ (err).code = 'STORE_CLOSED';
      throw err;
    }
  }

  #isReady() {
    return this.#outage.available && this.#revocations.subscribed;
  }

  #wakeReadyWaiters() {
    if (!this.#isReady()) return;
    for (const wake of [...this.#readyWaiters]) wake();
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
    // `id` is a lease id (`conn_<suffix>`) that the core minted or validated, and a derived
    // id is the same suffix under another kind (the core's deriveId, and the kinds were
    // validated by the core): spelled here, that is two WASM calls fewer per acquire.
    const suffix = id.slice(4);
    /** @type {Lease} */
    const lease = {
      id,
      connectionId: id,
      runId: `run${suffix}`,
      threadId: `thread${suffix}`,
      userId,
      acquiredAt,
      touchedAt,
      expiresAt,
    };
    if (connectionKey) lease.connectionKey = connectionKey;
    if (this.#extraKinds.length > 0) {
      /** @type {Record<string, string>} */
      const ids = {};
      for (const kind of this.#extraKinds) ids[kind] = `${kind}${suffix}`;
      lease.ids = ids;
    }
    return lease;
  }

  /**
   * A lease granted through Redis, now held here (and counted by the local quota while
   * Redis is away, when the reply came back after the outage began).
   * @param {string} id
   * @param {Held} held
   */
  #hold(id, held) {
    this.#held.add(id, held);
    if (this.#keys.cluster) this.#index(id, held);
    if (this.#local !== null) this.#reclaimedLocally(this.#local.adopt(id, held));
  }

  // ----- the id index (a Redis Cluster only, keys.cjs) ---------------------------------------

  /**
   * Writes the lease's id index entry, without waiting for it: the acquire already has
   * its answer, and an entry that did not make it is written again by the next touch
   * (indexedAt 0). Lives as long as the lease's keys; the holder's touches renew it.
   * @param {string} id
   * @param {Held} held
   */
  #index(id, held) {
    held.indexedAt = Date.now();
    setKey(this.#client, this.#keys.index(id), held.userId, this.#indexMs).catch((err) => {
      held.indexedAt = 0;
      this.#log('debug', 'could not write the id index entry; written again on the next touch', { leaseId: id, error: String(err) });
    });
  }

  /**
   * Deletes an entry of the id index (released): not waited for, and harmless if lost,
   * since an entry only ever leads to the user whose lease it was.
   * @param {string} id
   */
  #unindex(id) {
    deleteKey(this.#client, this.#keys.index(id)).catch(() => {});
  }

  /**
   * The user of a lease this node does not hold, from the id index: one round trip; null
   * when there is no entry (never granted, released, or expired with its keys).
   * @param {string} id
   * @returns {Promise<string | null>}
   */
  #userOf(id) {
    return getKey(this.#client, this.#keys.index(id));
  }

  /** @param {string} id */
  #forget(id) {
    const held = this.#held.delete(id);
    if (held && this.#local !== null) this.#local.drop(id, Date.now());
    return held;
  }

  /**
   * Renewed by Redis (a touch, or a connection key asking again).
   * @param {string} id
   * @param {Held} held
   */
  #renewed(id, held) {
    held.renewedAt = Date.now();
    if (this.#local !== null) this.#local.touch(id, held.renewedAt);
  }

  /**
   * Redis is away, or this lease was accepted while it was and is not written back yet:
   * renewed here, unless the local quota says it expired (silent for the TTL).
   * @param {string} id
   * @param {Held} held
   */
  #touchLocally(id, held) {
    const now = Date.now();
    if (this.#local !== null && !this.#local.touch(id, now)) return false;
    held.renewedAt = now;
    return true;
  }

  /**
   * @param {string} id
   * @param {Held} held
   */
  #releaseLater(id, held) {
    this.#forget(id);
    this.#counters.released++;
    // In Redis, but Redis is away: release it when Redis returns (it also expires by TTL).
    if (!held.local) this.#outage.deferRelease(id, held.userId);
    return true;
  }

  // ----- while Redis is away ---------------------------------------------------------------

  /** An outage begins (or the store starts): the local quota takes this node's leases in. */
  #startLocal() {
    this.#stopLocal();
    const local = new LocalQuota(this.#quota, this.#localEvent);
    this.#local = local;
    this.#reclaimedLocally(local.adoptAll(this.#held.entries()));
  }

  #stopLocal() {
    this.#local?.free();
    this.#local = null;
  }

  /**
   * An event of the local quota (the core's), with this node's lease ids.
   * @param {LeaseEvent} event
   */
  #localEvent = (event) => {
    if (event.type === 'near-limit') this.#counters.nearLimitEvents++;
    this.#emitEvent(event);
  };

  /**
   * failMode "open" while Redis is away: the local quota decides, over the leases this
   * node holds (the only ones it can see), and each lease accepted is said loudly.
   * @param {string} userId
   * @param {string} connectionKey
   * @returns {AcquireResult}
   */
  #acquireLocally(userId, connectionKey) {
    const local = this.#local;
    if (local === null) {
      // Only after close(), for a call that was on its way.
      this.#checkOpen();
      throw this.#outage.unavailableError();
    }
    const now = Date.now();
    const r = local.acquire(userId, connectionKey, now);
    this.#reclaimedLocally(r.reclaimed);
    if (!r.ok) {
      this.#counters.rejected[r.reason]++;
      /** @type {AcquireResult} */
      const refusal = { ok: false, reason: r.reason, limit: r.limit, active: r.active, retryAfterMs: r.retryAfterMs };
      if (r.reclaimed.length > 0) refusal.reclaimed = r.reclaimed;
      return refusal;
    }
    const held = this.#held.get(r.id);
    if (r.reused && held) {
      held.renewedAt = now;
      return {
        ok: true,
        lease: this.#lease(r.id, userId, held.acquiredAt, r.touchedAt, r.expiresAt, connectionKey),
        evicted: [],
        reclaimed: r.reclaimed,
        reused: true,
      };
    }
    this.#held.add(r.id, { userId, acquiredAt: r.acquiredAt, renewedAt: now, local: true, connectionKey });
    this.#counters.acquired++;
    this.#counters.degradedAcquires++;
    this.#log('warn', 'Redis unavailable: accepted a connection tracked on this node only (failMode open); it is registered in Redis when Redis returns', {
      userId,
      leaseId: r.id,
      activeOnThisNode: this.#held.countOf(userId),
      limit: this.#limitOf(userId),
    });
    return {
      ok: true,
      lease: this.#lease(r.id, userId, r.acquiredAt, r.touchedAt, r.expiresAt, connectionKey),
      evicted: [],
      reclaimed: r.reclaimed,
      reused: false,
    };
  }

  /**
   * While Redis is away: this node's leases that expired by the local quota (host clock
   * on both sides: touchedAt is Redis's time, and a host clock ahead of it would expire
   * every lease, one behind it none).
   */
  #expireLocally() {
    const local = this.#local;
    if (local === null) return [];
    /** @type {string[]} */
    const out = [];
    for (const id of local.sweep(Date.now())) {
      if (!this.#forget(id)) continue;
      this.#counters.expired++;
      out.push(id);
    }
    return out;
  }

  /**
   * Expired leases of this node that the local quota reclaimed (on an acquire, or when it
   * took them in): gone now, and reported by the next sweep (as the core does). Their
   * events came from the local quota.
   * @param {string[]} ids
   */
  #reclaimedLocally(ids) {
    for (const id of ids) {
      if (!this.#forget(id)) continue;
      this.#counters.expired++;
      if (this.#pendingExpired.length < PENDING_EXPIRED_CAP) this.#pendingExpired.push(id);
    }
  }

  // ----- events ----------------------------------------------------------------------------

  /**
   * Expired leases an acquire reclaimed for `userId` (every node's: the acquire's result
   * names them all; the other nodes were told on their channels): counted, and this
   * node's own are reported by the next sweep too (as the core does).
   * @param {string} userId
   * @param {string[]} ids
   * @param {number} active   the user's leases left after the reclaim
   * @param {number} limit
   */
  #reclaimed(userId, ids, active, limit) {
    this.#counters.expired += ids.length;
    for (const id of ids) {
      if (!this.#forget(id)) continue;
      if (this.#pendingExpired.length < PENDING_EXPIRED_CAP) this.#pendingExpired.push(id);
      if (this.#onEvent) this.#emitEvent({ type: 'expired', userId, leaseId: id, active, limit, dryRun: false, at: Date.now() });
    }
  }

  /**
   * After a new lease granted through Redis: near-limit when the scripts say it brought
   * the user to the threshold (near.lua), limit-reached when it brought the user to the
   * limit.
   * @param {string} userId
   * @param {number} active
   * @param {number} limit
   * @param {number} at
   * @param {boolean} near
   */
  #limitEvents(userId, active, limit, at, near) {
    if (near) {
      this.#counters.nearLimitEvents++;
      if (this.#onEvent) this.#emitEvent({ type: 'near-limit', userId, active, limit, dryRun: false, at });
    }
    if (this.#onEvent && limit > 0 && active === limit) this.#emitEvent({ type: 'limit-reached', userId, active, limit, dryRun: false, at });
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
   * Another node removed a lease whose socket this node holds.
   * @param {string} id
   * @param {RevokedLease['reason']} reason
   */
  #revoke(id, reason) {
    if (!this.#forget(id)) return;
    this.#counters.revocations[reason]++;
    // debug: the guard (or the host) logs the socket it closes for it.
    this.#log('debug', 'lease removed by another node', { leaseId: id, reason });
    /** @type {RevokedLease} */
    const event = { leaseId: id, reason };
    this.emit('revoked', event);
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

module.exports = { RedisLeaseStore: checkedClass, createRedisLeaseStore: checkedFactory };
