// The bad-input matrix: every entry point, every kind of wrong value. Each must throw a
// LeaseError with the documented code, leave the registry unchanged, and never trap
// (a trap would poison the instance, so the registry must still work afterwards).
import { test } from 'node:test';
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';
import { LeaseRegistry, LeaseError, newId, parseId, deriveId, sameLease, idFromUuid } from 'socket-lease';

const HUGE = 'x'.repeat(1 << 20);
const wrongTypes = [undefined, null, 0, 42, NaN, true, {}, [], () => {}, Symbol('s'), 10n];
const badStrings = ['', HUGE, 'conn_', 'CONN_01h455vb4pex5vsknk084sn02q', 'conn_01h455vb4pex5vsknk084sn02', '\u0000'];
const badTimes = [NaN, Infinity, -Infinity, -1, 2 ** 53, '1000', {}, 10n];

function expectCode(fn, code, label) {
  assert.throws(
    fn,
    (err) => {
      assert.ok(err instanceof LeaseError, `${label}: not a LeaseError: ${err}`);
      assert.ok(err instanceof Error);
      assert.equal(err.name, 'LeaseError');
      assert.equal(err.code, code, `${label}: ${err.message}`);
      return true;
    },
    label,
  );
}

const label = (v) =>
  typeof v === 'string' ? `string(${v.length})` : typeof v === 'bigint' ? 'bigint' : String(typeof v === 'symbol' ? 'symbol' : (JSON.stringify(v) ?? typeof v));

test('id functions refuse wrong types and malformed ids with INVALID_ID', () => {
  for (const v of [...wrongTypes, ...badStrings.filter((s) => s !== '')]) {
    expectCode(() => parseId(v), 'INVALID_ID', `parseId ${label(v)}`);
    expectCode(() => deriveId(v, 'run'), 'INVALID_ID', `deriveId ${label(v)}`);
    expectCode(() => sameLease(v, newId('conn')), 'INVALID_ID', `sameLease ${label(v)}`);
  }
  for (const kind of [...wrongTypes, 'Run', 'run_', '_run', 'r1', 'a'.repeat(64), HUGE]) {
    expectCode(() => newId(kind), 'INVALID_ID', `newId ${label(kind)}`);
    expectCode(() => deriveId(newId('conn'), kind), 'INVALID_ID', `deriveId kind ${label(kind)}`);
  }
  for (const t of badTimes) expectCode(() => newId('conn', t), 'INVALID_TIME', `newId now ${label(t)}`);
  expectCode(() => idFromUuid('conn', 'not-a-uuid'), 'INVALID_ID', 'idFromUuid');
});

test('registry methods refuse bad input, change nothing, and keep working', () => {
  const reg = new LeaseRegistry({ perUserLimit: 2 });
  const held = /** @type {any} */ (reg.acquire('alice', { now: 1_000 })).lease;
  const before = JSON.stringify([reg.stats(), reg.userStats('alice', 1_000)]);

  for (const v of [...wrongTypes, '', 'é'.repeat(129), HUGE]) {
    expectCode(() => reg.acquire(v), 'INVALID_USER_ID', `acquire user ${label(v)}`);
    expectCode(() => reg.userStats(v), 'INVALID_USER_ID', `userStats ${label(v)}`);
    expectCode(() => reg.setUserLimit(v, 3), 'INVALID_USER_ID', `setUserLimit ${label(v)}`);
  }
  for (const v of [...wrongTypes.filter((x) => x !== undefined && x !== null), ...badStrings]) {
    expectCode(() => reg.release(v), 'INVALID_ID', `release ${label(v)}`);
    expectCode(() => reg.touch(v), 'INVALID_ID', `touch ${label(v)}`);
    expectCode(() => reg.getLease(v), 'INVALID_ID', `getLease ${label(v)}`);
  }
  for (const t of badTimes) {
    expectCode(() => reg.acquire('alice', { now: t }), 'INVALID_TIME', `acquire now ${label(t)}`);
    expectCode(() => reg.release(held.id, t), 'INVALID_TIME', `release now ${label(t)}`);
    expectCode(() => reg.touch(held.id, t), 'INVALID_TIME', `touch now ${label(t)}`);
    expectCode(() => reg.sweep(t), 'INVALID_TIME', `sweep now ${label(t)}`);
  }
  for (const opts of [42, 'x', [], { connectionKey: 5 }, { connectionKey: '' }, { connectionKey: HUGE }, { conectionKey: 'typo' }]) {
    expectCode(() => reg.acquire('alice', /** @type {any} */ (opts)), 'INVALID_OPTION', `acquire options ${label(opts)}`);
  }
  for (const v of [42, 'x', null, undefined]) {
    expectCode(() => reg.reconcile(/** @type {any} */ (v)), 'INVALID_ID', `reconcile ${label(v)}`);
  }
  for (const n of [-1, 1.5, NaN, '3', {}, 2 ** 40]) {
    expectCode(() => reg.setUserLimit('bob', /** @type {any} */ (n)), 'INVALID_OPTION', `setUserLimit n ${label(n)}`);
  }
  // The fast path checks types in JS before handing strings straight to wasm.
  for (const v of [...wrongTypes, '', HUGE]) {
    expectCode(() => reg.acquireHandle(/** @type {any} */ (v)), 'INVALID_USER_ID', `acquireHandle user ${label(v)}`);
  }
  for (const k of [5, true, {}, [], 10n, '', HUGE]) {
    expectCode(() => reg.acquireHandle('alice', /** @type {any} */ (k)), 'INVALID_OPTION', `acquireHandle key ${label(k)}`);
  }
  for (const t of badTimes) {
    expectCode(() => reg.acquireHandle('alice', undefined, /** @type {any} */ (t)), 'INVALID_TIME', `acquireHandle now ${label(t)}`);
    expectCode(() => reg.releaseHandle(0, /** @type {any} */ (t)), 'INVALID_TIME', `releaseHandle now ${label(t)}`);
    expectCode(() => reg.touchHandle(0, /** @type {any} */ (t)), 'INVALID_TIME', `touchHandle now ${label(t)}`);
  }
  for (const h of ['0', null, undefined, {}, 0n]) {
    expectCode(() => reg.releaseHandle(/** @type {any} */ (h)), 'INVALID_ID', `releaseHandle ${label(h)}`);
    expectCode(() => reg.touchHandle(/** @type {any} */ (h)), 'INVALID_ID', `touchHandle ${label(h)}`);
  }
  for (const bytes of [undefined, null, 'snapshot', [1, 2], new Uint8Array(0), new Uint8Array(1000), new ArrayBuffer(8)]) {
    expectCode(() => LeaseRegistry.restore(/** @type {any} */ (bytes)), 'INVALID_SNAPSHOT', `restore ${label(bytes)}`);
  }

  assert.equal(JSON.stringify([reg.stats(), reg.userStats('alice', 1_000)]), before, 'nothing was half-applied');
  assert.equal(reg.acquire('alice', { now: 1_001 }).ok, true, 'the instance still works');
});

test('constructor and setLimits options: every field validated, unknown names rejected', () => {
  const bad = [
    42,
    'x',
    [],
    () => {},
    { perUserLimit: -1 },
    { perUserLimit: 1.5 },
    { perUserLimit: '5' },
    { perUserLimit: NaN },
    { perUserLimit: 2 ** 31 },
    { globalLimit: -3 },
    { globalLimit: 'none' },
    { userLimits: 5 },
    { userLimits: { alice: -1 } },
    { userLimits: { '': 3 } },
    { userLimits: new Map([[1, 2]]) },
    { ttlMs: 0 },
    { ttlMs: -5 },
    { ttlMs: Infinity },
    { ttlMs: 1e15 },
    { onLimit: 'drop' },
    { onLimit: 1 },
    { warnRatio: 0 },
    { warnRatio: 1.01 },
    { warnRatio: NaN },
    { warnRatio: '0.5' },
    { maxUsers: 0 },
    { maxUsers: -1 },
    { mode: 'shadow' },
    { kinds: 'run' },
    { kinds: ['Run'] },
    { kinds: ['conn'] },
    { kinds: ['a', 'a'] },
    { kinds: [''] },
    { kinds: [5] },
    { onEvent: 'log' },
    { perUserLimt: 5 },
  ];
  for (const opts of bad) {
    expectCode(() => new LeaseRegistry(/** @type {any} */ (opts)), 'INVALID_OPTION', `new ${label(opts)}`);
  }
  const reg = new LeaseRegistry({ perUserLimit: 3, userLimits: new Map([['vip', 9]]) });
  assert.equal(reg.userStats('vip').limit, 9, 'a Map of overrides is accepted');
  for (const opts of bad.slice(4)) {
    if ('onEvent' in opts) continue;
    expectCode(() => reg.setLimits(/** @type {any} */ (opts)), 'INVALID_OPTION', `setLimits ${label(opts)}`);
  }
  expectCode(() => reg.setLimits(/** @type {any} */ ({ onEvent: () => {} })), 'INVALID_OPTION', 'setLimits onEvent');
  expectCode(() => reg.setLimits(/** @type {any} */ (undefined)), 'INVALID_OPTION', 'setLimits nothing');
  // A misspelt option is answered with the names it could have meant.
  const known = 'perUserLimit, globalLimit, userLimits, ttlMs, onLimit, warnRatio, maxUsers, mode, kinds';
  assert.throws(() => new LeaseRegistry(/** @type {any} */ ({ perUserLimt: 5 })), {
    message: `invalid option: unknown option "perUserLimt"; known options are ${known}, onEvent`,
  });
  assert.throws(() => reg.setLimits(/** @type {any} */ ({ ttl: 5 })), { message: `invalid option: unknown option "ttl"; known options are ${known}` });
  assert.equal(reg.getOptions().perUserLimit, 3);
});

test('forged ids (right shape, never issued) release nothing and are counted', () => {
  const reg = new LeaseRegistry();
  const real = /** @type {any} */ (reg.acquire('alice')).lease;
  // Same timestamp and counter, different random tail: a guess at someone else's lease.
  const forged = real.id.slice(0, -1) + (real.id.endsWith('0') ? '1' : '0');
  assert.equal(reg.release(forged), false);
  assert.equal(reg.touch(forged), false);
  assert.equal(reg.getLease(forged), null);
  assert.equal(reg.stats().active, 1);
  assert.equal(reg.stats().unknownReleases, 1);
});

test('handleLeaseId refuses what is not a number (the glue would read null, "" or [] as handle 0)', () => {
  const reg = new LeaseRegistry();
  const h = reg.acquireHandle('u');
  assert.ok(h >= 0);
  for (const v of [null, '', false, [], '0', {}, undefined])
    expectCode(() => reg.handleLeaseId(/** @type {any} */ (v)), 'INVALID_ID', `handleLeaseId ${label(v)}`);
  assert.match(String(reg.handleLeaseId(h)), /^conn_/);
  reg.free();
});

test('hostile option objects (throwing Proxies, getters, subclasses) are refused with INVALID_OPTION, and the instance lives on', () => {
  const boom = () => {
    throw new Error('boom');
  };
  const revoked = Proxy.revocable({}, {});
  revoked.revoke();
  class SneakyMap extends Map {
    forEach() {
      boom();
    }
    entries() {
      return boom();
    }
  }
  /** Options whose reading throws somewhere, each refused before anything changes. */
  const hostile = () => [
    new Proxy({}, { ownKeys: boom }),
    revoked.proxy,
    {
      get perUserLimit() {
        return boom();
      },
    },
    { userLimits: new Proxy({}, { ownKeys: boom }) },
    {
      userLimits: {
        get vip() {
          return boom();
        },
      },
    },
    { kinds: new Proxy(['chat'], { get: (t, k) => (k === '0' ? boom() : Reflect.get(t, k)) }) },
    { kinds: new Proxy([], { get: (t, k) => (k === 'length' ? boom() : Reflect.get(t, k)) }) },
  ];
  // Hundreds of times: an exception unwinding through wasm used to leak the shadow stack
  // and kill the instance after about 228.
  for (let round = 0; round < 300; round++) {
    for (const options of hostile()) {
      expectCode(() => new LeaseRegistry(/** @type {any} */ (options)), 'INVALID_OPTION', `constructor, round ${round}`);
    }
  }
  const reg = new LeaseRegistry({ perUserLimit: 2, userLimits: { vip: 5 } });
  const before = reg.getOptions();
  for (let round = 0; round < 50; round++) {
    for (const options of hostile()) expectCode(() => reg.setLimits(/** @type {any} */ (options)), 'INVALID_OPTION', `setLimits, round ${round}`);
    expectCode(
      () =>
        reg.acquire(
          'u',
          /** @type {any} */ ({
            get connectionKey() {
              return boom();
            },
          }),
        ),
      'INVALID_OPTION',
      'acquire with a throwing connectionKey',
    );
    expectCode(() => reg.acquire('u', /** @type {any} */ (new Proxy({}, { ownKeys: boom }))), 'INVALID_OPTION', 'acquire with throwing keys');
  }
  assert.deepEqual(reg.getOptions(), before, 'no refused call changed the options');
  assert.equal(reg.stats().active, 0, 'no refused acquire granted a lease');
  const snap = reg.snapshot();
  for (const options of hostile()) expectCode(() => LeaseRegistry.restore(snap, /** @type {any} */ (options)), 'INVALID_OPTION', 'restore options');
  // A Map subclass is read as the Map it is, never through its own methods.
  const fromMap = new LeaseRegistry({ userLimits: new SneakyMap([['vip', 7]]) });
  assert.equal(fromMap.getOptions().userLimits.vip, 7);
  fromMap.free();
  // Still a working registry and a working instance.
  assert.equal(reg.acquire('u').ok, true);
  assert.equal(reg.stats().active, 1);
  reg.free();
  assert.match(newId('conn'), /^conn_/);
});

test('strings far longer than any valid value are refused by their length, without growing wasm memory', () => {
  // A separate instance of the generated bindings (the package's keeps its memory to
  // itself), whose WebAssembly.Memory is caught as it is made.
  const require = createRequire(import.meta.url);
  const bindings = require.resolve('../../../pkg/nodejs/socket_lease.js');
  const packaged = require.cache[bindings];
  const RealInstance = WebAssembly.Instance;
  /** @type {WebAssembly.Memory | undefined} */
  let memory;
  WebAssembly.Instance = new Proxy(RealInstance, {
    construct(target, argList, newTarget) {
      const instance = Reflect.construct(target, argList, newTarget);
      if (instance.exports.memory instanceof WebAssembly.Memory) memory = instance.exports.memory;
      return instance;
    },
  });
  /** @type {typeof import('socket-lease')} */
  let raw;
  try {
    delete require.cache[bindings];
    raw = require(bindings);
  } finally {
    WebAssembly.Instance = RealInstance;
    if (packaged) require.cache[bindings] = packaged;
  }
  /** @type {any} */ (raw).__registerErrorClass(LeaseError);
  assert.ok(memory, "the instance's memory was caught");
  const wasmBytes = () => /** @type {WebAssembly.Memory} */ (memory).buffer.byteLength;

  const huge = 'é'.repeat(1 << 24); // 16 M UTF-16 units: 32 MB of UTF-8 if it were copied
  for (const registry of [new LeaseRegistry(), new raw.LeaseRegistry()]) {
    registry.acquire('warm');
    const before = wasmBytes();
    expectCode(() => registry.acquire(huge), 'INVALID_USER_ID', 'a huge user id');
    expectCode(() => registry.release(huge), 'INVALID_ID', 'a huge id to release');
    expectCode(() => registry.touch(huge), 'INVALID_ID', 'a huge id to touch');
    expectCode(() => registry.acquire('u', { connectionKey: huge }), 'INVALID_OPTION', 'a huge connection key');
    expectCode(() => registry.userStats(huge), 'INVALID_USER_ID', 'a huge user id to look up');
    assert.equal(wasmBytes() - before, 0, "the raw instance's memory did not grow");
    registry.free();
  }
  const before = wasmBytes();
  expectCode(() => raw.parseId(huge), 'INVALID_ID', 'a huge id to parse');
  expectCode(() => raw.newId(huge), 'INVALID_ID', 'a huge kind');
  assert.equal(wasmBytes() - before, 0);
});
