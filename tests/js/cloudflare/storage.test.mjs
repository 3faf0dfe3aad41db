// The per-lease storage layout (js/cloudflare/storage.mjs) against the core itself, in
// Node: the snapshot the adapter builds from its records must be the one the core writes,
// byte for byte apart from the id generator's state, and must restore the same registry.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LeaseRegistry, parseId } from 'socket-lease';
import {
  LEASE_PREFIX,
  MAX_KEYS_PER_CALL,
  META_KEY,
  chunks,
  crc32,
  encodeSnapshot,
  isLeaseRecord,
  isMetaRecord,
  leaseRecord,
  metaRecord,
} from '../../../js/cloudflare/storage.mjs';

// The storage limits of a KV-backed Durable Object class, the smaller of the two kinds.
const KV_MAX_VALUE_BYTES = 128 * 1024;
const KV_MAX_KEY_BYTES = 2048;

/**
 * What the object stores for `reg`: its records and its meta record.
 * @param {LeaseRegistry} reg
 * @param {string} user
 * @param {string | null} lastId
 * @param {number} now
 */
function storedState(reg, user, lastId, now) {
  const leases = reg.userStats(user, now).leases.map((/** @type {any} */ l) => ({
    id: l.id,
    uuid: parseId(l.id).uuid,
    record: leaseRecord(l),
  }));
  return { meta: metaRecord(reg.stats(), user, lastId), leases };
}

/** @param {ReturnType<typeof storedState>} s */
function encode(s) {
  return encodeSnapshot({
    userId: s.meta.userId,
    counters: s.meta.counters,
    lastIdMs: s.meta.lastId ? parseId(s.meta.lastId).timestampMs : 0,
    leases: s.leases,
  });
}

test('crc32 is the zlib one', () => {
  assert.equal(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
});

test("the encoded snapshot equals the core's own, apart from the id generator state", () => {
  const user = 'u-'.padEnd(200, 'x');
  const reg = new LeaseRegistry({ perUserLimit: 10, ttlMs: 5000, maxUsers: 1 });
  let lastId = null;
  for (let i = 0; i < 6; i++) lastId = reg.acquire(user, { now: 1000 + i, ...(i === 2 ? { connectionKey: 'tab-2' } : {}) }).lease.id;
  for (let i = 0; i < 5; i++) reg.acquire(user, { now: 1010 }); // 4 granted, then refusals
  reg.touch(lastId, 2000);
  const s = storedState(reg, user, lastId, 2000);
  const core = reg.snapshot();
  const ours = encode(s);
  assert.equal(ours.length, core.length);
  // Header (magic, version, length) identical; the generator state (12 bytes) differs on
  // purpose; every counter and lease after it is the core's byte for byte.
  assert.deepEqual(ours.subarray(0, 10), core.subarray(0, 10));
  assert.deepEqual(ours.subarray(22, -4), core.subarray(22, -4));
});

test('restore from records: same leases, counters and ids; new ids sort after every restored one', () => {
  const user = 'ada';
  const reg = new LeaseRegistry({ perUserLimit: 4, ttlMs: 5000, maxUsers: 1 });
  const ids = [];
  for (let i = 0; i < 4; i++) ids.push(reg.acquire(user, { now: 1000 }).lease.id);
  assert.equal(reg.acquire(user, { now: 1000 }).ok, false);
  reg.release(ids[1], 1001);
  reg.release('conn_01h455vb4pex5vsknk084sn02q', 1001); // unknown: counted
  reg.touch(ids[3], 3000);
  const s = storedState(reg, user, ids[3], 1001);
  // Through structured clone, as Durable Object storage returns them.
  const back = structuredClone(s);
  assert.ok(isMetaRecord(back.meta));
  assert.ok(back.leases.every((l) => isLeaseRecord(l.record)));

  const restored = LeaseRegistry.restore(encode(back), { perUserLimit: 4, ttlMs: 5000, maxUsers: 1 });
  assert.deepEqual(restored.userStats(user, 3000), reg.userStats(user, 3000));
  const { callbackErrors: _a, ...want } = reg.stats();
  const { callbackErrors: _b, ...got } = restored.stats();
  assert.deepEqual(got, want);
  for (const id of ids.filter((_, i) => i !== 1)) assert.equal(restored.getLease(id)?.id, id);
  // All four ids were issued in the same millisecond; the next one (same clock) must
  // still sort after them.
  const next = restored.acquire(user, { now: 1000 }).lease.id;
  assert.ok(
    ids.every((id) => id < next),
    `${next} sorts after ${ids.join(', ')}`,
  );
  reg.free();
  restored.free();
});

test('a lease the records say expired comes back expired, and is swept, not resurrected', () => {
  const reg = new LeaseRegistry({ ttlMs: 1000, maxUsers: 1 });
  const id = reg.acquire('bo', { now: 0 }).lease.id;
  const restored = LeaseRegistry.restore(encode(storedState(reg, 'bo', id, 0)), { ttlMs: 1000, maxUsers: 1 });
  assert.deepEqual(restored.sweep(5000), [id]);
  assert.equal(restored.stats().active, 0);
});

test('each write is small whatever the lease count: 32,768 leases of a 256-byte user id', () => {
  const user = 'u'.repeat(256);
  const reg = new LeaseRegistry({ perUserLimit: 32768, ttlMs: 90_000, maxUsers: 1 });
  let lastId = null;
  for (let i = 0; i < 32768; i++) lastId = reg.acquire(user, { now: 1_700_000_000_000 + i }).lease.id;
  const s = storedState(reg, user, lastId, 1_700_000_000_000);
  const size = (/** @type {unknown} */ v) => Buffer.byteLength(JSON.stringify(v));
  const largest = Math.max(size(s.meta), ...s.leases.map((l) => size(l.record)));
  const longestKey = Math.max(META_KEY.length, ...s.leases.map((l) => (LEASE_PREFIX + l.id).length));
  // A connect writes one record and the meta record; both are far below either kind's
  // limit (the old single snapshot would be ~9.8 MB here: past both).
  assert.ok(largest < 1024, `largest stored value ${largest} B`);
  assert.ok(longestKey < KV_MAX_KEY_BYTES);
  assert.ok(reg.snapshot().length > 2 * 1024 * 1024, 'the whole registry would not fit one value');
  assert.ok(reg.snapshot().length > KV_MAX_VALUE_BYTES);
  // ...and a wake rebuilds it.
  const restored = LeaseRegistry.restore(encode(s), { perUserLimit: 32768, maxUsers: 1 });
  assert.equal(restored.stats().active, 32768);
  reg.free();
  restored.free();
});

test('batches of at most 128 keys', () => {
  const keys = Array.from({ length: 300 }, (_, i) => `k${i}`);
  const parts = chunks(keys);
  assert.deepEqual(
    parts.map((p) => p.length),
    [128, 128, 44],
  );
  assert.equal(MAX_KEYS_PER_CALL, 128);
  assert.deepEqual(parts.flat(), keys);
});
