// Waking a Durable Object: the user's registry rebuilt from storage (the per-lease records
// of storage.mjs, or the one-snapshot layout of older versions, migrated), with the
// renewals that only the sockets' attachments remember applied first. What storage must
// then be changed (records to rewrite or drop) is handed back: the object writes it.
import { LeaseRegistry, LeaseError, parseId } from '../workerd.mjs';
import { ConfigError, readConfig, registryOptions } from './config.mjs';
import { DEFAULT_MAX_PAYLOAD } from './protocol.mjs';
import { attachmentOf } from './sockets.mjs';
import { LEASE_PREFIX, LEGACY_SNAPSHOT_KEY, LEGACY_USER_KEY, META_KEY, encodeSnapshot, isLeaseRecord, isMetaRecord } from './storage.mjs';

/** @typedef {import('../../pkg/web/socket_lease.js').LeaseRegistry} Registry */

/**
 * @typedef {object} Woken
 * @property {Registry} registry
 * @property {string | null} userId  the user this object serves, once it has served one
 * @property {string | null} lastId  the newest lease id issued
 * @property {number | null} alarmAt the alarm set in storage
 * @property {ConfigError | null} configError  a bad env var: new connections get a 500
 * @property {number} maxPayload  SOCKET_LEASE_MAX_PAYLOAD
 * @property {string[]} rewrite  lease ids whose records must be written (a migration)
 * @property {string[]} drop  storage keys to delete (unreadable records, the old layout)
 */

/**
 * The UUID behind a lease id, or null for anything that is not a lease id.
 * @param {string} id
 * @returns {string | null}
 */
function uuidOf(id) {
  try {
    const parsed = parseId(id);
    return parsed.kind === 'conn' ? parsed.uuid : null;
  } catch {
    return null;
  }
}

/**
 * The last renewal of each lease whose socket is still OPEN, from the attachments.
 * `seenAt` is only ever written after the lease was touched at that time, so it is
 * evidence that the lease was live then; a socket the object closed (expiry, eviction)
 * is no longer OPEN and renews nothing.
 * @param {DurableObjectState} ctx
 * @returns {Map<string, number>}
 */
function renewals(ctx) {
  const now = Date.now();
  /** @type {Map<string, number>} */
  const out = new Map();
  for (const ws of ctx.getWebSockets()) {
    if (ws.readyState !== WebSocket.OPEN) continue;
    const att = attachmentOf(ws);
    if (att && Number.isSafeInteger(att.seenAt)) out.set(att.leaseId, Math.min(att.seenAt, now));
  }
  return out;
}

/**
 * `LeaseRegistry.restore`, or an empty registry when the bytes are refused: a corrupt
 * store must not wedge the user. The reconcile that follows closes every socket without
 * a lease, so nothing stays open untracked.
 * @param {Uint8Array} bytes
 * @param {object} options
 * @param {string[]} drop collects the keys to delete when the bytes are refused
 * @param {Iterable<string>} keys the keys the bytes came from
 * @returns {Registry}
 */
function restore(bytes, options, drop, keys) {
  try {
    return LeaseRegistry.restore(bytes, options);
  } catch (e) {
    if (!(e instanceof LeaseError)) throw e;
    console.error(JSON.stringify({ event: 'socket-lease.snapshot-invalid', code: e.code, message: e.message }));
    drop.push(...keys);
    return new LeaseRegistry(options);
  }
}

/**
 * Reads the config and this object's storage and rebuilds its registry.
 * @param {DurableObjectState} ctx
 * @param {Record<string, unknown>} env
 * @returns {Promise<Woken>}
 */
export async function wake(ctx, env) {
  /** @type {{ maxUsers: number, ttlMs?: number }} */
  let options = { maxUsers: 1 };
  /** @type {ConfigError | null} */
  let configError = null;
  let maxPayload = DEFAULT_MAX_PAYLOAD;
  try {
    const config = readConfig(env);
    options = registryOptions(config);
    maxPayload = config.maxPayload;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    // New connections get a 500 naming the variable; the sockets already open keep
    // being tracked with the defaults, so a bad deploy does not leak them.
    configError = e;
  }
  const storage = ctx.storage;
  const head = await storage.get([META_KEY, LEGACY_SNAPSHOT_KEY, LEGACY_USER_KEY]);
  const records = await storage.list({ prefix: LEASE_PREFIX });
  const alarmAt = await storage.getAlarm();
  const meta = head.get(META_KEY);
  const legacy = head.get(LEGACY_SNAPSHOT_KEY);
  /** @type {string[]} */
  let rewrite = [];
  /** @type {string[]} */
  const drop = [];
  /** @type {Registry} */
  let registry;
  /** @type {string | null} */
  let userId = null;
  /** @type {string | null} */
  let lastId = null;

  if (isMetaRecord(meta)) {
    userId = meta.userId;
    lastId = meta.lastId;
    const renewedAt = renewals(ctx);
    // The TTL the registry will have: the core's, from the same options.
    const probe = new LeaseRegistry(options);
    const ttlMs = probe.getOptions().ttlMs;
    probe.free();
    /** @type {Array<{ id: string, uuid: string, record: import('./storage.mjs').LeaseRecord }>} */
    const leases = [];
    for (const [key, stored] of records) {
      const id = key.slice(LEASE_PREFIX.length);
      const uuid = uuidOf(id);
      if (uuid === null || !isLeaseRecord(stored)) {
        drop.push(key);
        continue;
      }
      // The record holds the expiry from the acquire; renewals since then are in the
      // socket's attachment. Apply them before the registry sees the lease: it cannot
      // extend a lease once expired, and the stored expiry may well have passed.
      const at = renewedAt.get(id);
      const record = at !== undefined && at > stored.touchedAt ? { ...stored, touchedAt: at, expiresAt: Math.max(stored.expiresAt, at + ttlMs) } : stored;
      leases.push({ id, uuid, record });
    }
    const lastIdMs = lastId === null ? 0 : uuidOf(lastId) ? parseId(lastId).timestampMs : 0;
    registry = restore(encodeSnapshot({ userId: meta.userId, counters: meta.counters, lastIdMs, leases }), options, drop, records.keys());
  } else if (legacy instanceof Uint8Array) {
    // Written by an older version of this adapter: one snapshot of the whole registry.
    // Restore it, then store it again in the per-lease layout and drop it.
    const user = head.get(LEGACY_USER_KEY);
    userId = typeof user === 'string' ? user : null;
    registry = restore(legacy, options, drop, []);
    // Unexpired ones; the reconcile that follows sweeps the others.
    const leases = userId === null ? [] : registry.userStats(userId).leases;
    rewrite = leases.map((/** @type {{ id: string }} */ l) => l.id);
    lastId = rewrite.length > 0 ? rewrite[rewrite.length - 1] : null;
    drop.push(LEGACY_SNAPSHOT_KEY, LEGACY_USER_KEY);
  } else {
    // Nothing stored, or lease records without the meta record that is always written
    // with them: unreadable, so dropped (the reconcile closes their sockets).
    registry = new LeaseRegistry(options);
    drop.push(...records.keys());
  }
  return { registry, userId, lastId, alarmAt, configError, maxPayload, rewrite, drop };
}
