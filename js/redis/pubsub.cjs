'use strict';
// Revocations: another node evicted, released or reclaimed a lease whose socket this node
// holds, and said so on this node's channel (see lib.lua, drop()). The subscriber
// connection only listens there.

/** @typedef {import('./index.js').RevokedLease} RevokedLease */
/** @typedef {import('../lifecycle/log.mjs').LogFn} LogFn */

/** What a revocation may say, and what register.lua may answer for a lease. */
const REVOCATION_REASONS = new Set(['evicted', 'expired', 'released']);
// Revocations that arrive before the acquire they concern has returned (the pub/sub
// connection can be read before the command connection).
const EARLY_REVOCATION_CAP = 1024;
const EARLY_REVOCATION_MS = 10_000;

class Revocations {
  /** Whether this node's channel is subscribed (the store is ready only then). */
  subscribed = false;
  #sub;
  #channel;
  #log;
  #isHeld;
  #revoke;
  #onSubscribed;
  /** @type {Map<string, { reason: RevokedLease['reason'], at: number }>} */
  #early = new Map();

  /**
   * @param {import('./client.cjs').Client} sub the subscriber connection
   * @param {string} channel this node's
   * @param {LogFn} log
   * @param {{ isHeld: (id: string) => boolean, revoke: (id: string, reason: RevokedLease['reason']) => void, onSubscribed: () => void }} node
   */
  constructor(sub, channel, log, node) {
    this.#sub = sub;
    this.#channel = channel;
    this.#log = log;
    this.#isHeld = node.isHeld;
    this.#revoke = node.revoke;
    this.#onSubscribed = node.onSubscribed;
    sub.on('error', (err) => log('debug', 'redis subscriber error', { error: String(err) }));
    sub.on('message', (ch, message) => this.#onMessage(ch, message));
    sub.on('ready', () => this.#subscribe());
  }

  #subscribe() {
    this.#sub.subscribe(this.#channel).then(
      () => {
        this.subscribed = true;
        this.#onSubscribed();
      },
      (err) => this.#log('warn', "could not subscribe to this node's channel; retrying on reconnect", { error: String(err) }),
    );
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
    if (this.#isHeld(id)) {
      this.#revoke(id, reason);
      return;
    }
    // Not (yet) known: possibly an acquire whose reply is still on its way.
    const now = Date.now();
    for (const [old, entry] of this.#early) {
      if (this.#early.size < EARLY_REVOCATION_CAP && now - entry.at < EARLY_REVOCATION_MS) break;
      this.#early.delete(old);
    }
    this.#early.set(id, { reason, at: now });
  }

  /**
   * A lease revoked by another node before this node read the reply of the acquire that
   * made it: reported once the caller has registered the lease (after its await).
   * @param {string} leaseId
   */
  takeEarly(leaseId) {
    if (this.#early.size === 0) return;
    const early = this.#early.get(leaseId);
    if (!early) return;
    this.#early.delete(leaseId);
    setImmediate(() => this.#revoke(leaseId, early.reason));
  }
}

module.exports = { REVOCATION_REASONS, Revocations };
