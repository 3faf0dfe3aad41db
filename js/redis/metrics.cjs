'use strict';
// The store's counters and their Prometheus text: the core's `socket_lease_*` series
// (gauges for what this node holds, counters for what it did: sum them across nodes)
// plus the store's own `socket_lease_redis_*`. No user id in any label.

/** @typedef {import('./index.js').RedisStoreStats} RedisStoreStats */

/** What this node counted since it started. */
function newCounters() {
  return {
    acquired: 0,
    released: 0,
    expired: 0,
    evicted: 0,
    rejected: { 'user-limit': 0, 'global-limit': 0, 'user-table-full': 0 },
    unknownReleases: 0,
    nearLimitEvents: 0,
    reconciled: 0,
    callbackErrors: 0,
    degradedAcquires: 0,
    outages: 0,
    revocations: { evicted: 0, expired: 0, released: 0 },
  };
}
/** @typedef {ReturnType<typeof newCounters>} Counters */

/**
 * @param {RedisStoreStats} s
 * @param {Counters} c
 * @returns {string}
 */
function renderMetrics(s, c) {
  /** @type {string[]} */
  const lines = [];
  /** @param {string} name @param {'gauge' | 'counter'} type @param {string} help @param {Array<[string, number]>} samples */
  const series = (name, type, help, samples) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
  };
  series('socket_lease_active_leases', 'gauge', 'Leases whose sockets this node holds (sum across nodes for the deployment).', [['', s.active]]);
  series('socket_lease_users', 'gauge', 'Users holding at least one lease on this node.', [['', s.users]]);
  series('socket_lease_high_water', 'gauge', 'Most leases this node held at once since start.', [['', s.highWater]]);
  series('socket_lease_acquired_total', 'counter', 'Leases granted by this node.', [['', s.acquired]]);
  series('socket_lease_released_total', 'counter', 'Leases released through this node (including reconcile).', [['', s.released]]);
  series('socket_lease_expired_total', 'counter', "Expired leases reclaimed by this node (its own or a dead node's).", [['', s.expired]]);
  series('socket_lease_evicted_total', 'counter', "Leases evicted by this node's acquires (evict-oldest or evict-idle).", [['', s.evicted]]);
  series('socket_lease_unknown_release_total', 'counter', 'Releases through this node of ids that named no live lease (the leak detector).', [
    ['', s.unknownReleases],
  ]);
  series('socket_lease_near_limit_total', 'counter', 'Times a user crossed the warn ratio of its limit on this node.', [['', s.nearLimitEvents]]);
  series('socket_lease_reconciled_total', 'counter', 'Leases released by reconcile because their socket was gone.', [['', s.reconciled]]);
  series('socket_lease_rejected_total', 'counter', 'Acquires refused by this node, by reason.', [
    ['{reason="user-limit"}', c.rejected['user-limit']],
    ['{reason="global-limit"}', c.rejected['global-limit']],
    ['{reason="user-table-full"}', c.rejected['user-table-full']],
  ]);
  if (s.deploymentActive !== null) {
    series(
      'socket_lease_redis_deployment_active_leases',
      'gauge',
      'Live leases in Redis across every node, dead ones included until their leases expire (kept with a global limit).',
      [['', s.deploymentActive]],
    );
  }
  series('socket_lease_redis_up', 'gauge', 'Whether this node can use Redis (1) or is in its fail mode (0).', [['', s.redis === 'up' ? 1 : 0]]);
  series('socket_lease_redis_held_local_leases', 'gauge', 'Leases this node accepted while Redis was away (failMode open), not yet written back.', [
    ['', s.heldLocally],
  ]);
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

module.exports = { newCounters, renderMetrics };
