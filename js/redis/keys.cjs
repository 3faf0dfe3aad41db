'use strict';
// The keys the JS side names itself. In a Redis Cluster: the key that routes a script to
// the shard of its user (the user's set, built as common.lua's up() builds it), and the
// id index, which leads from a lease id to its user, so that a node that does not hold a
// lease can still find the slot of its record. On one Redis there is no routing and no
// index: the record's key is made from the id alone.

/**
 * @typedef {object} Keys
 * @property {boolean} cluster
 * @property {(user: string) => string | null} route  KEYS[1] of a script about `user`; null on one Redis
 * @property {(id: string) => string} index  the id index entry of a lease (a cluster only)
 */

/**
 * A user's hash tag in a cluster, as common.lua's up(): the user id without its '}', '_'
 * when nothing is left. The same bytes as Lua's, since '}' is one byte in UTF-8.
 * @param {string} user
 */
function userTag(user) {
  return user.replaceAll('}', '') || '_';
}

/**
 * @param {string} prefix
 * @param {boolean} cluster
 * @returns {Keys}
 */
function makeKeys(prefix, cluster) {
  if (!cluster) return { cluster, route: () => null, index: (id) => `${prefix}i:${id}` };
  return {
    cluster,
    route: (user) => `${prefix}{${userTag(user)}}u:${user}`,
    // Tagged with the id itself: index entries spread over every slot.
    index: (id) => `${prefix}i:{${id}}`,
  };
}

module.exports = { makeKeys, userTag };
