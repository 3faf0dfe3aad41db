'use strict';
// Batching: the acquires, releases and touches issued in the same turn of the event loop
// go to Redis together. One call alone runs its own script; several run in one batch
// script (each operation still atomic, the batch too), which costs Redis and the client
// far less per operation when many connections arrive at once. In a Redis Cluster every
// operation runs alone, routed to its user's shard: one script call may only touch one
// slot, and the operations of one turn are of many users.

const { send } = require('./client.cjs');

/** @typedef {import('./scripts.cjs').Script} Script */
/** @typedef {import('./scripts.cjs').Scripts} Scripts */
/**
 * @typedef {object} Op
 * @property {'a' | 'r' | 't'} kind
 * @property {string} id
 * @property {string} user
 * @property {number} limit
 * @property {string} where  a release or touch in a cluster by a node that does not hold the lease: its user
 * @property {(value: any) => void} resolve
 * @property {(err: unknown) => void} reject
 */

class Batcher {
  #client;
  #scripts;
  #nodeId;
  #size;
  #route;
  /** Operations waiting for this turn's batch. @type {Op[]} */
  #queue = [];
  #flushScheduled = false;

  /**
   * @param {import('./client.cjs').Client} client
   * @param {Scripts} scripts
   * @param {string} nodeId
   * @param {number} size batchSize
   * @param {import('./keys.cjs').Keys} keys
   */
  constructor(client, scripts, nodeId, size, keys) {
    this.#client = client;
    this.#scripts = scripts;
    this.#nodeId = nodeId;
    this.#size = keys.cluster ? 1 : size;
    this.#route = keys.route;
  }

  /**
   * An acquire ('a': id, user, limit), release ('r': id, user or '' when another node
   * holds it) or touch ('t': id), sent with the others of this turn.
   * @param {'a' | 'r' | 't'} kind
   * @param {string} id
   * @param {string} user
   * @param {number} limit    the user's limit (acquire), 0 otherwise
   * @param {string} [where]  in a cluster, the lease's user when `user` is '' (found in the id index)
   * @returns {Promise<any>}
   */
  call(kind, id, user, limit, where = '') {
    return new Promise((resolve, reject) => {
      const queue = this.#queue;
      queue.push({ kind, id, user, limit, where, resolve, reject });
      if (queue.length >= this.#size) {
        // A full batch goes at once: Redis (on another core) runs it while this process
        // still handles other replies and gathers the next batch. Waiting for the end of
        // the turn would send every batch together and leave each side idle while the
        // other works.
        this.#queue = [];
        this.#dispatch(queue);
      } else if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        process.nextTick(this.flush);
      }
    });
  }

  /**
   * Sends what is queued now (fewer than a batch). Called at the end of the turn, and
   * before a call that does not go through the batch (a connection key, `evict: false`,
   * a write-back), so that it reaches Redis behind what this node asked before it.
   */
  flush = () => {
    this.#flushScheduled = false;
    const queue = this.#queue;
    if (queue.length === 0) return;
    this.#queue = [];
    const size = this.#size;
    for (let start = 0; start < queue.length; start += size) this.#dispatch(queue.length <= size ? queue : queue.slice(start, start + size));
  };

  /**
   * One operation alone runs its own script; several, the batch script.
   * @param {Op[]} ops
   */
  #dispatch(ops) {
    const client = this.#client;
    const scripts = this.#scripts;
    if (ops.length > 1) {
      /** @type {Array<string | number>} */
      const args = [this.#nodeId];
      for (const op of ops) args.push(op.kind === 'a' ? `a${op.limit}` : op.kind, op.id, op.user);
      send(
        client,
        scripts.batch,
        args,
        (/** @type {unknown[]} */ results) => {
          for (let i = 0; i < ops.length; i++) ops[i].resolve(results[i]);
        },
        (err) => {
          for (const op of ops) op.reject(err);
        },
      );
      return;
    }
    const op = ops[0];
    // In a cluster: the user's set routes the call (for another node's release or touch,
    // the user found in the id index); on one Redis, null.
    const route = this.#route(op.user || op.where);
    if (op.kind === 'a') send(client, scripts.acquire, [this.#nodeId, op.id, op.user, op.limit], op.resolve, op.reject, route);
    else if (op.kind === 't') send(client, scripts.touch, route === null ? [op.id] : [op.id, op.user || op.where], op.resolve, op.reject, route);
    // The holder's release names the user; any other node's names itself instead (and,
    // in a cluster, the user it found).
    else if (op.user) send(client, scripts.release, [op.id, op.user], op.resolve, op.reject, route);
    else send(client, scripts.release, route === null ? [op.id, '', '', this.#nodeId] : [op.id, '', '', this.#nodeId, op.where], op.resolve, op.reject, route);
  }
}

module.exports = { Batcher };
