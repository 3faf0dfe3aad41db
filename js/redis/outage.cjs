'use strict';
// Whether Redis can be used, and the way back after an outage. The store starts without
// it; Redis is used once it answers and this node's leases are written back. A command
// that times out or a connection that drops starts an outage (the fail mode applies, see
// store.cjs and local.cjs); a reconnect, or the probe for a Redis that stalled without
// dropping the connection, starts the resync: load the scripts, replay the releases that
// could not be sent, write this node's live leases back (register.lua says which stay
// and which another node removed meanwhile), and only then use Redis again, so its
// counts include every lease. In a Redis Cluster the same, with every master: a failover
// (a replica promoted, which may lack the last writes of its master) counts as a restart.

const { isCluster, loadScripts, run, serverIdentity } = require('./client.cjs');
const { REVOCATION_REASONS } = require('./pubsub.cjs');

/** @typedef {import('./index.js').FailMode} FailMode */
/** @typedef {import('./index.js').RevokedLease} RevokedLease */
/** @typedef {import('./scripts.cjs').Scripts} Scripts */
/** @typedef {import('./held.cjs').Held} Held */
/** @typedef {import('./held.cjs').HeldLeases} HeldLeases */
/** @typedef {import('../lifecycle/log.mjs').LogFn} LogFn */

// Releases that could not reach Redis are replayed when it returns; beyond this many the
// oldest are dropped (their leases still expire by TTL).
const PENDING_RELEASE_CAP = 100_000;
// Leases written back per register call after an outage.
const REGISTER_CHUNK = 500;
// In a cluster, register calls (one per user: one slot each) in flight at once.
const REGISTER_PARALLEL = 64;

/**
 * @typedef {object} OutageNode what the state machine needs from the store
 * @property {import('./client.cjs').Client} client
 * @property {(user: string) => string | null} route  in a cluster, the key that routes a script about a user
 * @property {Scripts} scripts
 * @property {string} nodeId
 * @property {FailMode} failMode
 * @property {number} probeMs
 * @property {LogFn} log
 * @property {{ outages: number }} counters
 * @property {HeldLeases} held
 * @property {(kind: 'r', id: string, user: string, limit: number, where: string) => Promise<any>} call a batched release
 * @property {(id: string, reason: RevokedLease['reason']) => void} revoke another node removed it
 * @property {(id: string, now: number) => boolean} alive unexpired in the local quota (renewed here within the TTL)
 * @property {() => void} onDown Redis just became unusable
 * @property {() => void} onUp Redis is used again (the last write-back may still be on its way)
 * @property {() => void} onReady the resync is over
 */

class Outage {
  #node;
  #available = false;
  #closed = false;
  /** The last error of the connection or of a call, the cause given with REDIS_UNAVAILABLE. @type {unknown} */
  #lastError = undefined;
  /** @type {string | null} */ #runId = null;
  // Redis restarted and this node's leases are not all written back yet: kept until a
  // write-back has gone through completely, so one that fails half-way is redone as one
  // after a restart (and does not take the missing leases for removed by another node).
  #restartPending = false;
  // Whether this outage (or the start-up wait) has been logged, and its failed resync.
  #downLogged = false;
  #resyncFailLogged = false;
  /** @type {Promise<void> | null} */ #resyncing = null;
  #resyncAgain = false;
  /** @type {NodeJS.Timeout | null} */ #probeTimer = null;
  /** Releases of leases in Redis made while it was away: id -> user. @type {Map<string, string>} */
  #pendingReleases = new Map();

  /** @param {OutageNode} node */
  constructor(node) {
    this.#node = node;
    const { client, log } = node;
    client.on('error', (err) => {
      this.#lastError = err;
      log('debug', 'redis connection error', { error: String(err) });
      // Before the first ready too (refused, wrong password): an outage, said once.
      if (!this.#available) this.setUnavailable(err);
    });
    client.on('ready', () => void this.#resync());
    // The error that closed it (refused, NOAUTH…) says more than the close itself.
    client.on('close', () => this.setUnavailable(this.#lastError ?? new Error('connection to Redis closed')));
    // A Redis Cluster: a master that leaves ioredis's view (failed over, or gone) may
    // have taken writes its replica never received. Checked at once, not when a command
    // to that shard happens to fail: another run id among the masters is an outage, and
    // the resync writes this node's leases back as after a restart.
    if (isCluster(client)) client.on('-node', () => void this.#checkMasters());
  }

  async #checkMasters() {
    if (!this.#available || this.#closed) return;
    /** @type {string | null} */
    let identity = null;
    try {
      identity = await serverIdentity(this.#node.client);
    } catch {
      // a master that does not answer: changed as far as this node can tell
    }
    if (this.#available && identity !== this.#runId) {
      this.setUnavailable(
        new Error('a Redis Cluster master left or changed (failover or restart): this node writes its leases back before it uses the cluster again'),
      );
    }
  }

  /** Whether Redis is usable now. */
  get available() {
    return this.#available;
  }

  /** Releases waiting for Redis to return. */
  get pendingReleases() {
    return this.#pendingReleases.size;
  }

  /**
   * A lease in Redis that this node released (or minted for an acquire that timed out)
   * while Redis was away: released there when it returns, behind what was sent before.
   * @param {string} id
   * @param {string} user  its user (in a cluster, the slot of its record)
   */
  deferRelease(id, user) {
    if (this.#pendingReleases.size >= PENDING_RELEASE_CAP) {
      const oldest = this.#pendingReleases.keys().next().value;
      if (oldest !== undefined) this.#pendingReleases.delete(oldest);
    }
    this.#pendingReleases.set(id, user);
  }

  /** @param {unknown} [cause] */
  unavailableError(cause = this.#lastError) {
    const err = new Error(
      `socket-lease/redis: Redis is unavailable (failMode "closed": refusing new connections)${cause ? `: ${String(/** @type {Error} */ (cause).message ?? cause)}` : ''}`,
      cause ? { cause } : undefined,
    );
    /** @type {any} */ (err).code = 'REDIS_UNAVAILABLE';
    return err;
  }

  /** @param {unknown} err */
  setUnavailable(err) {
    if (this.#closed) return;
    const node = this.#node;
    if (err !== undefined) this.#lastError = err;
    if (this.#available) {
      this.#available = false;
      node.counters.outages++;
      node.onDown();
    }
    // Once per outage, and once for a Redis that cannot be used from the start (refused,
    // wrong password, missing ACL permission): the reason must reach the default log level.
    if (!this.#downLogged) {
      this.#downLogged = true;
      const detail = String(/** @type {Error} */ (err)?.message ?? err);
      if (node.failMode === 'closed') {
        node.log('error', 'Redis unavailable; failMode closed: new connections are refused with HTTP 503 until it returns', {
          error: detail,
          nodeId: node.nodeId,
        });
      } else {
        node.log(
          'error',
          'Redis unavailable; failMode open: ACCEPTING new connections tracked on this node only (per-user limit per node, no global limit); they are registered in Redis when it returns',
          {
            error: detail,
            nodeId: node.nodeId,
          },
        );
      }
    }
    this.#startProbe();
  }

  close() {
    this.#closed = true;
    this.#available = false;
    this.#stopProbe();
  }

  // While unavailable, a probe retries the resync: a reconnect is announced by `ready`,
  // but a Redis that stalled (or answered LOADING) without dropping the connection is not.
  #startProbe() {
    if (this.#probeTimer || this.#closed) return;
    this.#probeTimer = setInterval(() => {
      if (this.#node.client.status === 'ready') void this.#resync();
    }, this.#node.probeMs);
    this.#probeTimer.unref();
  }

  #stopProbe() {
    if (this.#probeTimer) clearInterval(this.#probeTimer);
    this.#probeTimer = null;
  }

  /** (Re)connected: see the top of this file. */
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
        // Once per outage at warn (a wrong ACL, say, fails here for good and would
        // otherwise show only as "unavailable"), then at debug as the probe retries.
        this.#node.log(this.#resyncFailLogged ? 'debug' : 'warn', "could not put this node's leases back in Redis; retrying", {
          error: String(err),
          nodeId: this.#node.nodeId,
        });
        this.#resyncFailLogged = true;
        this.setUnavailable(err);
      } finally {
        this.#resyncing = null;
      }
    })();
    return this.#resyncing;
  }

  async #resyncOnce() {
    const node = this.#node;
    const { client } = node;
    const runId = await serverIdentity(client);
    // A different run id means Redis restarted: without persistence it lost every lease
    // (in a cluster: a master restarted or a replica took over, which may lack writes).
    if (this.#runId !== null && runId !== this.#runId) this.#restartPending = true;
    this.#runId = runId;
    const restarted = this.#restartPending;
    await loadScripts(client, Object.values(node.scripts));

    // The first pass writes back every lease this node holds. Acquires accepted locally
    // (failMode "open") and releases made while a pass was on its way are not in it: the
    // next pass takes them, until none is left. Under a steady stream of them this is
    // bounded, and what the last pass leaves is written once Redis is in use again.
    const totals = { written: 0, revoked: 0 };
    let all = true;
    for (let pass = 0; pass < 5; pass++) {
      await this.#writeBack(all, restarted, totals);
      all = false;
      if (!this.#writeBackLeft()) break;
    }
    this.#restartPending = false;
    const wasDown = !this.#available;
    this.#available = true;
    this.#lastError = undefined;
    this.#downLogged = false;
    this.#resyncFailLogged = false;
    this.#stopProbe();
    if (wasDown) node.onUp();
    if (this.#writeBackLeft()) await this.#writeBack(false, false, totals);
    if (wasDown && (node.counters.outages > 0 || node.held.size > 0)) {
      node.log('info', 'Redis available; quotas are enforced across nodes again', {
        nodeId: node.nodeId,
        redisRestarted: restarted,
        leasesWrittenBack: totals.written,
        leasesRevoked: totals.revoked,
      });
    }
    node.onReady();
  }

  /** Releases still to send, or leases accepted while Redis was away still to write back. */
  #writeBackLeft() {
    return this.#pendingReleases.size > 0 || this.#node.held.countLocal() > 0;
  }

  /**
   * One pass of the write-back: the releases that could not be sent, then this node's
   * leases (all of them, or only those accepted while Redis was away) through
   * register.lua, which says for each whether it stays or was removed by another node.
   * @param {boolean} all
   * @param {boolean} restarted
   * @param {{ written: number, revoked: number }} totals
   */
  async #writeBack(all, restarted, totals) {
    const node = this.#node;
    // Behind anything still queued on this connection (a stalled acquire runs first), and
    // batched like any other release.
    await Promise.all(
      [...this.#pendingReleases].map(async ([id, user]) => {
        await node.call('r', id, '', 0, user);
        this.#pendingReleases.delete(id);
      }),
    );

    const held = [...node.held.entries()].filter(([, h]) => all || h.local);
    const now = Date.now();
    // One call per chunk; in a cluster one per user (a call may touch one slot only).
    /** @type {Map<string | null, Array<[string, Held]>>} */
    const groups = new Map();
    for (const entry of held) {
      const route = node.route(entry[1].userId);
      const group = groups.get(route);
      if (group) group.push(entry);
      else groups.set(route, [entry]);
    }
    /** @type {Array<{ route: string | null, leases: Array<[string, Held]> }>} */
    const calls = [];
    for (const [route, leases] of groups) {
      for (let i = 0; i < leases.length; i += REGISTER_CHUNK) calls.push({ route, leases: leases.slice(i, i + REGISTER_CHUNK) });
    }
    // One Redis: one call after the other, as ever. A cluster: many users, many shards.
    const parallel = node.route('') === null ? 1 : REGISTER_PARALLEL;
    for (let i = 0; i < calls.length; i += parallel) {
      await Promise.all(calls.slice(i, i + parallel).map(({ route, leases }) => this.#register(route, leases, restarted, now, totals)));
    }
  }

  /**
   * One register call, and what its answers mean for this node's leases.
   * @param {string | null} route
   * @param {Array<[string, Held]>} leases
   * @param {boolean} restarted
   * @param {number} now
   * @param {{ written: number, revoked: number }} totals
   */
  async #register(route, leases, restarted, now, totals) {
    const node = this.#node;
    /** @type {Array<string | number>} */
    const args = [node.nodeId, restarted ? 1 : 0];
    for (const [id, h] of leases) {
      // Alive: accepted here while Redis was away, or renewed here within the TTL (its
      // socket heartbeats). Such a lease is written back even when Redis let it expire
      // during the outage, unless another node removed it (a tombstone says so).
      args.push(id, h.userId, h.acquiredAt, h.local || node.alive(id, now) ? 1 : 0, h.connectionKey);
    }
    /** @type {string[]} */
    const reply = await run(node.client, node.scripts.register, args, route);
    for (let j = 0; j < reply.length; j += 2) {
      const id = reply[j];
      const status = reply[j + 1];
      const h = node.held.get(id);
      if (!h) {
        // Released here while this call was on its way: the next pass gives the slot back.
        const user = leases.find(([leaseId]) => leaseId === id)?.[1].userId ?? '';
        if (status === 'ok') this.#pendingReleases.set(id, user);
        continue;
      }
      if (status === 'ok') {
        h.local = false;
        h.renewedAt = Date.now();
        totals.written++;
      } else {
        totals.revoked++;
        node.revoke(id, /** @type {RevokedLease['reason']} */ (REVOCATION_REASONS.has(status) ? status : 'expired'));
      }
    }
  }
}

module.exports = { Outage };
