// The Durable Object's read-only answers: one user's leases (the Node demo's
// GET /api/users/:userId, plus the object's own details) and its Prometheus text.
import { openSockets } from './sockets.mjs';

/** @typedef {import('../../pkg/web/socket_lease.js').LeaseRegistry} Registry */

/**
 * @param {DurableObjectState} ctx
 * @param {Registry} reg
 * @param {{ userId: string | null, asked: string | null, alarmAt: number | null, startedAt: number }} object
 *   the user served (null before the first connect), the user the Worker routed by, the
 *   alarm set, and when this instance was constructed
 */
export function statsView(ctx, reg, { userId, asked, alarmAt, startedAt }) {
  const now = Date.now();
  const user = userId === null ? null : reg.userStats(userId, now);
  return {
    userId: userId ?? asked,
    active: user?.active ?? 0,
    limit: user?.limit ?? reg.getOptions().perUserLimit,
    socketsOpen: openSockets(ctx).length,
    leases: user?.leases ?? [],
    alarmAt,
    objectStartedAt: startedAt,
    // The object's clock when it answered, to read the lease times above against.
    now,
    stats: reg.stats(),
  };
}

/**
 * The core's series plus the sockets this object holds open.
 * @param {DurableObjectState} ctx
 * @param {Registry} reg
 */
export function metricsText(ctx, reg) {
  return (
    reg.metrics() +
    '# HELP socket_lease_sockets_open WebSockets this object holds open.\n' +
    '# TYPE socket_lease_sockets_open gauge\n' +
    `socket_lease_sockets_open ${openSockets(ctx).length}\n`
  );
}
