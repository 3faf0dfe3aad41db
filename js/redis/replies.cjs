'use strict';
// The acquire script's answer, read (its format is written in lua/acquire.lua): the
// usual case is one integer, everything else one line of space-separated fields (ids are
// TypeIDs: no spaces), far cheaper for both sides than nested arrays.

/** @typedef {import('socket-lease').RefusalReason} RefusalReason */

/**
 * @typedef {object} Granted
 * @property {true} ok
 * @property {string} id
 * @property {number} acquiredAt
 * @property {number} touchedAt
 * @property {number} expiresAt
 * @property {number} active      the user's leases after it
 * @property {number} before      the user's leases before it (after the expired ones went)
 * @property {boolean} reused     the lease of its connection key, asked again
 * @property {boolean} near       it brought the user to the near-limit threshold
 * @property {string[]} reclaimed expired leases of the user it removed, whichever node's
 * @property {string[]} evicted
 */
/**
 * @typedef {object} Refused
 * @property {false} ok
 * @property {RefusalReason} reason
 * @property {number} limit
 * @property {number} active      the count the limit was applied to
 * @property {number} retryAfterMs
 * @property {number} userActive  the user's leases
 * @property {boolean} evictable  `evict: false` where the policy would evict to admit
 * @property {string[]} reclaimed
 */

/**
 * The usual answer: granted, a new lease, nothing expired or evicted, the near-limit
 * threshold not reached, fewer than 1000 leases: Redis's now * 1000 + the user's leases
 * after it.
 * @param {number} n
 * @returns {{ acquiredAt: number, active: number }}
 */
function readUsual(n) {
  const active = n % 1000;
  return { acquiredAt: (n - active) / 1000, active };
}

/**
 * Any other answer.
 * @param {string} line
 * @returns {Granted | Refused}
 */
function readLine(line) {
  const f = line.split(' ');
  if (f[0] !== '1') {
    return {
      ok: false,
      reason: /** @type {RefusalReason} */ (f[1]),
      limit: Number(f[2]),
      active: Number(f[3]),
      retryAfterMs: Number(f[4]),
      userActive: Number(f[5]),
      evictable: f[6] === '1',
      reclaimed: f.slice(8, 8 + Number(f[7])),
    };
  }
  const expiredEnd = 10 + Number(f[9]);
  return {
    ok: true,
    id: f[1],
    acquiredAt: Number(f[2]),
    touchedAt: Number(f[3]),
    expiresAt: Number(f[4]),
    active: Number(f[5]),
    reused: f[6] === '1',
    before: Number(f[7]),
    near: f[8] === '1',
    reclaimed: f.slice(10, expiredEnd),
    evicted: f.length > expiredEnd ? f.slice(expiredEnd) : [],
  };
}

module.exports = { readLine, readUsual };
