// The simulation behind the demo page, without any DOM: two hosts receive the same client
// actions. The "leaky host" is the incident's design (a counter per user that nothing
// ever decrements); the "guarded host" is a socket-lease `LeaseRegistry`. Time is a
// simulated clock passed as `now` to every registry call, so the page can jump ahead by a
// TTL in one click and the tests can do the same without waiting.
//
// The registry class is injected so the same model runs on the browser build in the page
// and on the Node build in tests/js/www/sim.test.mjs.

/** @typedef {'reject' | 'evict-oldest' | 'evict-idle'} Policy */
/** @typedef {{ limit: number, ttlMs: number, policy: Policy, warnRatio: number }} SimOptions */

/**
 * A connection as the client sees it.
 * - `open`: the socket is up and answers heartbeats.
 * - `killed`: the network dropped it without a close frame; no host is told, so only a
 *   lease's own expiry can give its slot back.
 * @typedef {object} Connection
 * @property {string} key        connection key, unique per simulation (`alice#3`)
 * @property {string} userId
 * @property {number} n          1-based number within the user
 * @property {'open' | 'killed'} state
 * @property {any} lease         the guarded host's lease (null when it refused)
 * @property {boolean} leaky     whether the leaky host admitted it
 * @property {{ runId: string, threadId: string } | null} leakyIds the leaky host's two ids
 * @property {number} openedAt
 * @property {number} messages
 */

/**
 * One line of the event log.
 * @typedef {object} LogEntry
 * @property {number} seq
 * @property {number} at          simulated ms since the epoch
 * @property {'guarded' | 'leaky' | 'client'} host
 * @property {string} type        near-limit, limit-reached, rejected, evicted, expired, opened, ...
 * @property {string} userId
 * @property {string} text
 */

/**
 * One point of the timeline.
 * @typedef {object} Sample
 * @property {number} at
 * @property {number} guarded         leases held by the guarded host (all users)
 * @property {number} leaky           managers held by the leaky host (all users)
 * @property {number} guardedRejected refusals by the guarded host so far
 * @property {number} leakyRejected   refusals by the leaky host so far
 */

/**
 * The last answer each host gave a user, shown under the gauges.
 * @typedef {object} Answer
 * @property {boolean} ok
 * @property {string} text
 * @property {number} [retryAfterMs]
 * @property {string} [reason]
 */

/** A request the simulation cannot carry out (a blank name, a connection already gone): shown to the user, not a bug. */
export class SimError extends Error {
  name = 'SimError';
}

export const DEFAULT_OPTIONS = /** @type {SimOptions} */ ({ limit: 5, ttlMs: 60_000, policy: 'reject', warnRatio: 0.8 });

/** Heartbeat interval for a TTL: three chances to renew before a lease expires. */
export const heartbeatMsFor = (/** @type {number} */ ttlMs) => Math.max(1000, Math.floor(ttlMs / 3));

/**
 * The level a gauge shows: `full` at the limit, `warn` from ceil(limit * warnRatio).
 * @returns {'ok' | 'warn' | 'full'}
 */
export function gaugeLevel(/** @type {number} */ active, /** @type {number} */ limit, /** @type {number} */ warnRatio) {
  if (active >= limit) return 'full';
  if (active >= Math.ceil(limit * warnRatio)) return 'warn';
  return 'ok';
}

/**
 * The incident's host: `managers[user]` goes up on every connection and on every message
 * (the handler built a new context per message) and nothing brings it down. Its ids are
 * built the two inconsistent ways the incident's cleanup tried to match by parsing.
 */
export class LeakyHost {
  /** @param {number} limit */
  constructor(limit) {
    this.limit = limit;
    /** @type {Map<string, number>} */
    this.managers = new Map();
    this.rejected = 0;
    this.created = 0;
  }

  /** @param {string} userId */
  held(userId) {
    return this.managers.get(userId) ?? 0;
  }

  total() {
    let n = 0;
    for (const v of this.managers.values()) n += v;
    return n;
  }

  /**
   * A new manager, if the counter allows it.
   * @param {string} userId
   * @param {number} now
   */
  create(userId, now) {
    const held = this.held(userId);
    if (held >= this.limit) {
      this.rejected++;
      return { ok: false, held };
    }
    this.managers.set(userId, held + 1);
    this.created++;
    const hex = ((this.created * 2654435761) >>> 0).toString(16).padStart(8, '0');
    return {
      ok: true,
      held: held + 1,
      ids: { runId: `websocket_factory_${now}`, threadId: `thread_websocket_factory_${now}_${this.created}_${hex}` },
    };
  }
}

export class Simulation {
  /**
   * @param {object} init
   * @param {new (options: any) => any} init.LeaseRegistry  the socket-lease class (browser or Node build)
   * @param {number} init.startMs     simulated time at t = 0 (ms since the epoch)
   * @param {Partial<SimOptions>} [init.options]
   */
  constructor({ LeaseRegistry, startMs, options }) {
    /** @type {SimOptions} */
    this.options = { ...DEFAULT_OPTIONS, ...options };
    this.startMs = startMs;
    this.now = startMs;
    /** Open connections answer heartbeats while the clock advances. */
    this.heartbeats = true;
    /** @type {LogEntry[]} */
    this.log = [];
    /** @type {Sample[]} */
    this.samples = [];
    /** @type {Map<string, Connection>} by connection key */
    this.connections = new Map();
    /** @type {string[]} users in the order they were added */
    this.users = [];
    /** @type {Map<string, number>} connections opened per user, for numbering */
    this.opened = new Map();
    /** @type {Map<string, { guarded: Answer | null, leaky: Answer | null }>} */
    this.answers = new Map();
    /** @type {Map<string, { guarded: number, leaky: number }>} refusals per user and host */
    this.refusals = new Map();
    this.leaky = new LeakyHost(this.options.limit);
    this.guardedRejected = 0;
    this.seq = 0;
    this.registry = new LeaseRegistry({
      perUserLimit: this.options.limit,
      ttlMs: this.options.ttlMs,
      onLimit: this.options.policy,
      warnRatio: this.options.warnRatio,
      onEvent: (/** @type {any} */ event) => this.#onLeaseEvent(event),
    });
    this.#sample();
  }

  /** Milliseconds since the simulation started. */
  get elapsedMs() {
    return this.now - this.startMs;
  }

  /** @param {string} userId */
  addUser(userId) {
    const id = userId.trim();
    if (id === '') throw new SimError('a user needs a name');
    if (this.users.includes(id)) return false;
    this.users.push(id);
    this.opened.set(id, 0);
    this.answers.set(id, { guarded: null, leaky: null });
    this.refusals.set(id, { guarded: 0, leaky: 0 });
    this.#log('client', 'user', id, `${id} joined`);
    return true;
  }

  /** @param {string} userId */
  connectionsOf(userId) {
    return [...this.connections.values()].filter((c) => c.userId === userId);
  }

  /** @param {string} userId */
  view(userId) {
    const stats = this.registry.userStats(userId, this.now);
    const leakyHeld = this.leaky.held(userId);
    const live = this.connectionsOf(userId).filter((c) => c.state === 'open' && c.leaky).length;
    return {
      guarded: { active: stats.active, limit: stats.limit, level: gaugeLevel(stats.active, stats.limit, this.options.warnRatio) },
      leaky: {
        held: leakyHeld,
        limit: this.leaky.limit,
        // Managers whose socket is gone (closed, killed, or a message's throwaway context).
        ghosts: Math.max(0, leakyHeld - live),
        locked: leakyHeld >= this.leaky.limit,
        level: gaugeLevel(leakyHeld, this.leaky.limit, this.options.warnRatio),
      },
      answers: this.answers.get(userId) ?? { guarded: null, leaky: null },
      refusals: this.refusals.get(userId) ?? { guarded: 0, leaky: 0 },
    };
  }

  /**
   * The user opens a connection; both hosts answer.
   * @param {string} userId
   */
  open(userId) {
    if (!this.users.includes(userId)) this.addUser(userId);
    const n = (this.opened.get(userId) ?? 0) + 1;
    this.opened.set(userId, n);
    const key = `${userId}#${n}`;
    const answers = /** @type {{ guarded: Answer | null, leaky: Answer | null }} */ (this.answers.get(userId));

    const leaky = this.leaky.create(userId, this.now);
    answers.leaky = leaky.ok
      ? { ok: true, text: `accepted connection #${n} (manager ${leaky.held} of ${this.leaky.limit})` }
      : { ok: false, text: `connection #${n} closed with 1011 "internal error": no reason, no retry time` };
    if (!leaky.ok) {
      this.#refused(userId, 'leaky');
      this.#log('leaky', 'rejected', userId, `#${n} refused: ${leaky.held} managers held, none ever freed`);
    }

    const result = this.registry.acquire(userId, { connectionKey: key, now: this.now });
    if (result.ok) {
      for (const evictedId of result.evicted) this.#dropLease(evictedId);
      answers.guarded = { ok: true, text: `accepted connection #${n}` };
      this.#log('guarded', 'acquired', userId, `#${n} holds ${result.lease.id}`);
    } else {
      this.guardedRejected++;
      this.#refused(userId, 'guarded');
      answers.guarded = {
        ok: false,
        reason: result.reason,
        retryAfterMs: result.retryAfterMs,
        text: `connection #${n} refused: HTTP 429, ${result.reason} (${result.active} of ${result.limit}), Retry-After ${Math.ceil(result.retryAfterMs / 1000)} s`,
      };
    }

    /** @type {Connection | null} */
    let conn = null;
    if (result.ok || leaky.ok) {
      conn = {
        key,
        userId,
        n,
        state: 'open',
        lease: result.ok ? result.lease : null,
        leaky: leaky.ok,
        leakyIds: leaky.ok && leaky.ids ? leaky.ids : null,
        openedAt: this.now,
        messages: 0,
      };
      this.connections.set(key, conn);
    }
    this.#sample();
    return { conn, guarded: result, leaky };
  }

  /**
   * A chat message on an open connection. The leaky host builds a new manager for it
   * (as the incident's message handler did); the guarded host acquires with the same
   * connection key, which returns the same lease and renews it.
   * @param {string} key
   */
  send(key) {
    const conn = this.#openConnection(key);
    conn.messages++;
    const answers = /** @type {{ guarded: Answer | null, leaky: Answer | null }} */ (this.answers.get(conn.userId));
    const leaky = this.leaky.create(conn.userId, this.now);
    answers.leaky = leaky.ok
      ? { ok: true, text: `message on #${conn.n} handled by a new manager (${leaky.held} of ${this.leaky.limit})` }
      : { ok: false, text: `message on #${conn.n} failed: no manager available (${leaky.held} of ${this.leaky.limit})` };
    if (!leaky.ok) {
      this.#refused(conn.userId, 'leaky');
      this.#log('leaky', 'rejected', conn.userId, `message on #${conn.n} refused: the user cannot send anything`);
    }
    if (conn.lease) {
      const result = this.registry.acquire(conn.userId, { connectionKey: key, now: this.now });
      if (result.ok) {
        conn.lease = result.lease;
        answers.guarded = { ok: true, text: `message on #${conn.n}: same lease reused (${result.reused ? 'no new slot' : 'new'})` };
      }
    }
    this.#sample();
  }

  /**
   * A heartbeat (pong) on a connection: renews its lease by its `thread_` id, to show
   * that every derived id names the same lease.
   * @param {string} key
   */
  heartbeat(key) {
    const conn = this.#openConnection(key);
    if (!conn.lease) return false;
    const renewed = this.registry.touch(conn.lease.threadId, this.now);
    if (renewed) conn.lease = this.registry.getLease(conn.lease.id) ?? conn.lease;
    this.#log('client', 'heartbeat', conn.userId, `#${conn.n} heartbeat: ${renewed ? 'lease renewed' : 'lease already gone'}`);
    return renewed;
  }

  /**
   * A clean close: the guarded host releases the lease (by its `run_` id: any derived id
   * works); the leaky host's disconnect path forgets its manager, as in the incident.
   * @param {string} key
   */
  close(key) {
    const conn = this.#openConnection(key);
    this.connections.delete(key);
    if (conn.lease) this.registry.release(conn.lease.runId, this.now);
    this.#log(
      'client',
      'closed',
      conn.userId,
      `#${conn.n} closed${conn.lease ? `: guarded host released it` : ''}${conn.leaky ? '; leaky host still counts its manager' : ''}`,
    );
    this.#sample();
  }

  /**
   * The connection dies without a close frame (a crash, a lost network): no host hears
   * of it. The lease stays until its TTL passes; the leaky manager stays for good.
   * @param {string} key
   */
  kill(key) {
    const conn = this.#openConnection(key);
    conn.state = 'killed';
    this.#log('client', 'killed', conn.userId, `#${conn.n} lost without a close: no host was told`);
    this.#sample();
  }

  /**
   * Advances the simulated clock. With heartbeats on, open connections renew their leases
   * every `heartbeatMsFor(ttl)` on the way; killed ones cannot, so they expire.
   * @param {number} ms
   */
  advance(ms) {
    if (!(ms > 0)) return;
    const step = this.heartbeats ? heartbeatMsFor(this.options.ttlMs) : ms;
    let remaining = ms;
    while (remaining > 0) {
      const d = Math.min(step, remaining);
      remaining -= d;
      this.now += d;
      if (this.heartbeats) {
        for (const conn of this.connections.values()) {
          if (conn.state === 'open' && conn.lease && this.registry.touch(conn.lease.id, this.now)) {
            conn.lease = this.registry.getLease(conn.lease.id) ?? conn.lease;
          }
        }
      }
      // The host's sweep: the ids it returns are the sockets to close (4009).
      for (const id of this.registry.sweep(this.now)) this.#dropLease(id);
      this.#sample();
    }
  }

  /**
   * Changes limit, TTL, policy or warn ratio on both hosts.
   * @param {Partial<SimOptions>} options
   */
  setOptions(options) {
    const next = { ...this.options, ...options };
    this.registry.setLimits({ perUserLimit: next.limit, ttlMs: next.ttlMs, onLimit: next.policy, warnRatio: next.warnRatio });
    this.options = next;
    this.leaky.limit = next.limit;
    this.#log(
      'client',
      'settings',
      '',
      `limit ${next.limit}, TTL ${next.ttlMs / 1000} s, policy ${next.policy}, warn at ${Math.round(next.warnRatio * 100)} %`,
    );
    this.#sample();
  }

  /** @param {string} userId @param {'guarded' | 'leaky'} host */
  #refused(userId, host) {
    const counts = this.refusals.get(userId);
    if (counts) counts[host]++;
  }

  /** @param {string} key */
  #openConnection(key) {
    const conn = this.connections.get(key);
    if (conn?.state !== 'open') throw new SimError(`connection ${key} is not open`);
    return conn;
  }

  /**
   * A lease the guarded host dropped (evicted or expired): the host closes its socket.
   * The leaky host knows nothing of it, so its manager, if any, stays counted. (The
   * registry already logged why, through onEvent.)
   * @param {string} leaseId
   */
  #dropLease(leaseId) {
    for (const conn of this.connections.values()) {
      if (conn.lease && conn.lease.id === leaseId) {
        conn.lease = null;
        this.connections.delete(conn.key);
      }
    }
  }

  /** @param {any} event a LeaseEvent */
  #onLeaseEvent(event) {
    const conn = event.leaseId ? [...this.connections.values()].find((c) => c.lease?.id === event.leaseId) : undefined;
    const which = conn ? `#${conn.n} ` : '';
    /** @type {Record<string, string>} */
    const text = {
      'near-limit': `${event.userId} reached ${event.active} of ${event.limit}: near its limit`,
      'limit-reached': `${event.userId} is at its limit (${event.active} of ${event.limit})`,
      rejected: `${event.userId} refused: ${event.reason} (${event.active} of ${event.limit})`,
      evicted: `${which}evicted for a newer connection: socket closed with 4008`,
      expired: `${which}lease expired after the TTL without a heartbeat: slot reclaimed${conn?.state === 'killed' ? ' from a killed connection' : ''}`,
    };
    this.#log('guarded', event.type, event.userId, text[event.type] ?? event.type);
  }

  /**
   * @param {LogEntry['host']} host
   * @param {string} type
   * @param {string} userId
   * @param {string} text
   */
  #log(host, type, userId, text) {
    this.log.push({ seq: ++this.seq, at: this.now, host, type, userId, text });
    // A long session must not grow without bound; the page shows the newest lines.
    if (this.log.length > 500) this.log.splice(0, this.log.length - 500);
  }

  #sample() {
    this.samples.push({
      at: this.now,
      guarded: this.registry.stats().active,
      leaky: this.leaky.total(),
      guardedRejected: this.guardedRejected,
      leakyRejected: this.leaky.rejected,
    });
    if (this.samples.length > 1000) this.samples.splice(0, this.samples.length - 1000);
  }
}
