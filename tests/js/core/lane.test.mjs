// The lane (src/wasm/lane.rs, js/runtime.mjs): the hot calls pass ASCII strings through
// one fixed buffer instead of wasm-bindgen's glue. Whatever path a call takes, its result
// and its errors must be those of the checked binding, compared here with a separate
// instance of the raw generated bindings (which know nothing of the lane).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { inspect } from 'node:util';
import { parse } from 'yaml';
import { LeaseRegistry, newId, parseId, LeaseError } from 'socket-lease';

const require = createRequire(import.meta.url);
// A second, separate instance of the generated bindings, untouched by the loader: the
// package's own copy is cached under the same path (and patched), so it is set aside
// while this one loads, then put back.
const bindings = require.resolve('../../../pkg/nodejs/socket_lease.js');
const packaged = require.cache[bindings];
delete require.cache[bindings];
/** @type {typeof import('socket-lease')} */
const raw = require(bindings);
if (packaged) require.cache[bindings] = packaged;
/** @type {any} */ (raw).__registerErrorClass(LeaseError);
const fixture = (name) => parse(readFileSync(new URL(`../../fixtures/typeid/${name}`, import.meta.url), 'utf8'));
const T0 = 1_700_000_000_000;

/** The error a call throws, as `{ code, message }`, or `null`. */
const thrown = (/** @type {() => unknown} */ f) => {
  try {
    f();
    return null;
  } catch (err) {
    return { code: /** @type {any} */ (err).code, message: /** @type {Error} */ (err).message };
  }
};

test('the comparisons below are with a separate, unpatched instance', () => {
  assert.notEqual(raw.LeaseRegistry, LeaseRegistry);
  assert.notEqual(raw.LeaseRegistry.prototype.acquire, LeaseRegistry.prototype.acquire);
  assert.notEqual(raw.parseId, parseId);
});

test('parseId on the lane returns exactly what the checked binding returns', () => {
  const ids = [...fixture('valid.yml').map((c) => c.typeid), newId('conn'), newId(''), newId('a_b'), newId('x'.repeat(63))];
  // All five parts, read as properties (the uuid accessor included) and as JSON.
  const parts = (/** @type {any} */ p) => ({ kind: p.kind, suffix: p.suffix, uuid: p.uuid, timestampMs: p.timestampMs, version: p.version });
  for (const id of ids) {
    const expected = raw.parseId(id);
    assert.deepEqual(parts(parseId(id)), expected, id);
    assert.deepEqual(JSON.parse(JSON.stringify(parseId(id))), expected, id);
    assert.deepEqual(parseId(id).toJSON(), expected, id);
  }
  // `uuid` is spelled when first read, from the UUID kept at the parse: whatever the lane
  // held since, and whatever the caller did to the public `suffix`.
  const first = parseId(ids[0]);
  const second = parseId(ids[1]);
  first.suffix = 'changed';
  assert.equal(first.uuid, raw.parseId(ids[0]).uuid);
  assert.equal(second.uuid, raw.parseId(ids[1]).uuid);
  assert.equal(first.uuid, raw.parseId(ids[0]).uuid, 'read again');
  first.uuid = 'assigned';
  assert.equal(first.uuid, 'assigned', 'uuid can be assigned, like any field of a plain object');
  // Read through a Proxy (a framework's reactive wrapper), a child object or a frozen one.
  const wrapped = new Proxy(parseId(ids[1]), {});
  assert.equal(wrapped.uuid, raw.parseId(ids[1]).uuid);
  assert.equal(Object.create(parseId(ids[1])).uuid, raw.parseId(ids[1]).uuid);
  const frozen = Object.freeze(parseId(ids[2]));
  assert.equal(frozen.uuid, raw.parseId(ids[2]).uuid);
  assert.equal(frozen.uuid, raw.parseId(ids[2]).uuid, 'read again');
  // Own properties are the other four; Node's inspect (console.log) shows all five.
  assert.deepEqual(Object.keys(parseId(ids[2])), ['kind', 'suffix', 'timestampMs', 'version']);
  assert.match(inspect(parseId(ids[2])), new RegExp(`uuid: '${raw.parseId(ids[2]).uuid}'`));
  assert.match(inspect({ a: { b: { c: parseId(ids[2]) } } }), /c: \[ParsedId\]/, 'nested past the depth: folded, like any object');
  // Also after the linear memory has grown (the lane's view of it must follow).
  const before = parts(parseId(ids[0]));
  const unread = parseId(ids[3]);
  const big = new LeaseRegistry({ perUserLimit: 1_000_000 });
  for (let i = 0; i < 200_000; i++) big.acquireHandle(`grow-${i}`, undefined, T0);
  assert.deepEqual(parts(parseId(ids[0])), before);
  assert.equal(unread.uuid, raw.parseId(ids[3]).uuid);
  assert.match(newId('conn'), /^conn_[0-7][0-9a-hjkmnp-tv-z]{25}$/);
  big.free();
});

test('bad input takes the checked binding: the same LeaseError, nothing cached', () => {
  const invalid = fixture('invalid.yml').map((c) => c.typeid);
  const odd = ['', 'conn_', 'ünï_01h455vb4pex5vsknk084sn02q', 'conn_01h455vb4pex5vsknk084sn02Q', `conn_${'0'.repeat(2000)}`, 'a'.repeat(5000)];
  for (const id of [...invalid, ...odd, 7, null, undefined, {}]) {
    const ours = thrown(() => parseId(/** @type {any} */ (id)));
    assert.ok(ours, `${String(id).slice(0, 40)} is refused`);
    assert.deepEqual(
      ours,
      thrown(() => raw.parseId(/** @type {any} */ (id))),
    );
  }
  for (const [kind, now] of /** @type {[any, any][]} */ ([
    ['Conn', undefined],
    ['conn', NaN],
    ['conn', -1],
    ['conn', Infinity],
    ['conn', '5'],
    [5, undefined],
    ['_x', undefined],
  ])) {
    const ours = thrown(() => newId(kind, now));
    assert.equal(ours?.code, kind === 'conn' ? 'INVALID_TIME' : 'INVALID_ID', `${kind} ${now}`);
    assert.deepEqual(
      ours,
      thrown(() => raw.newId(kind, now)),
    );
    // A refused kind is not remembered as checked: it is refused again.
    assert.equal(thrown(() => newId(kind, now))?.code, ours?.code);
  }
  assert.throws(
    () => newId('Conn'),
    (err) => err instanceof LeaseError,
  );
});

test('newId: every kind (more than the lane remembers) and both clocks, strictly increasing', () => {
  const kinds = Array.from({ length: 300 }, (_, i) => `k${String.fromCharCode(97 + (i % 26))}${'z'.repeat(Math.floor(i / 26))}`);
  let last = '';
  for (const kind of [...kinds, ...kinds]) {
    for (const id of [newId(kind), newId(kind, T0)]) {
      const { kind: k, suffix } = parseId(id);
      assert.equal(k, kind);
      // One generator behind both paths: suffixes keep increasing (the clock only moves
      // forward here; T0 is in the past, so it counts on from the last timestamp).
      assert.ok(suffix > last, `${suffix} > ${last}`);
      last = suffix;
    }
  }
});

test('acquireHandle: non-ASCII, longest and over-long ids and keys mean the same on the lane and the checked binding', () => {
  const reg = new LeaseRegistry({ perUserLimit: 2 });
  const long = 'u'.repeat(256); // the longest allowed, with a key as long
  for (const user of ['ascii', 'ünïcödé', '用户', long]) {
    const key = `${user}-key`.slice(0, 256);
    const h1 = reg.acquireHandle(user, key, T0);
    assert.ok(h1 >= 0, user);
    assert.equal(reg.acquireHandle(user, key, T0), h1, `${user}: same key, same lease`);
    assert.ok(reg.acquireHandle(user, undefined, T0) >= 0);
    assert.equal(reg.acquireHandle(user, undefined, T0), -1, `${user}: limit`);
    const id = /** @type {string} */ (reg.handleLeaseId(h1));
    assert.equal(reg.getLease(id)?.userId, user);
    assert.equal(reg.getLease(id)?.connectionKey, key);
    assert.equal(reg.releaseHandle(h1, T0), true);
    assert.equal(reg.releaseHandle(h1, T0), false);
  }
  assert.equal(reg.stats().active, 4);
  // Errors the core finds (not the type checks) also come out as on the checked binding.
  for (const user of ['', 'x'.repeat(300), 'x'.repeat(5000), 'é'.repeat(200)]) {
    const ours = thrown(() => reg.acquireHandle(user, undefined, T0));
    const rawReg = new raw.LeaseRegistry({});
    assert.ok(ours, `${user.length}-character id refused`);
    assert.deepEqual(
      ours,
      thrown(() => rawReg.acquireHandle(user, undefined, T0)),
    );
    rawReg.free();
  }
  assert.equal(reg.stats().active, 4, 'refused calls changed nothing');
});

test("a callback re-entering the lane from onEvent sees its own strings, not the caller's", () => {
  /** @type {string[]} */
  const seen = [];
  const reg = new LeaseRegistry({
    perUserLimit: 1,
    onEvent: (e) => {
      // Writes other strings into the lane while the outer acquire is still returning.
      seen.push(parseId(newId('evt')).kind);
      if (e.type === 'limit-reached' && e.userId === 'outer') reg.acquireHandle('inner-user', undefined, T0);
    },
  });
  const h = reg.acquireHandle('outer', undefined, T0);
  assert.ok(h >= 0);
  assert.ok(seen.length >= 2 && seen.every((k) => k === 'evt'));
  assert.equal(reg.getLease(/** @type {string} */ (reg.handleLeaseId(h)))?.userId, 'outer');
  assert.equal(reg.userStats('inner-user', T0).active, 1);
});

/**
 * Replaces every id suffix in `value` by its order of first appearance, so results of two
 * registries (whose ids are random) can be compared.
 */
const normalizer = () => {
  /** @type {Map<string, string>} */
  const seen = new Map();
  return (/** @type {unknown} */ value) =>
    JSON.parse(
      JSON.stringify(value ?? null).replace(/([a-z_]+_)?([0-7][0-9a-hjkmnp-tv-z]{25})/g, (_, prefix, suffix) => {
        if (!seen.has(suffix)) seen.set(suffix, `#${seen.size}`);
        return `${prefix ?? ''}${seen.get(suffix)}`;
      }),
    );
};

test('acquire, release and touch on the lane return what the checked binding returns', () => {
  const options = [
    { perUserLimit: 2, onLimit: 'reject' },
    { perUserLimit: 2, onLimit: 'evict-oldest', kinds: ['room', 'span'] },
    { perUserLimit: 3, onLimit: 'evict-idle', globalLimit: 5, warnRatio: 0.5 },
  ];
  for (const opts of options) {
    /** @type {unknown[][]} */
    const events = [[], []];
    const ours = new LeaseRegistry({ ...opts, onEvent: (e) => events[0].push(e) });
    const theirs = new raw.LeaseRegistry({ ...opts, onEvent: (e) => events[1].push(e) });
    const norm = [normalizer(), normalizer()];
    /** @param {(reg: any, i: number) => unknown} step */
    const same = (step, what = '') => {
      const a = norm[0](step(ours, 0));
      const b = norm[1](step(theirs, 1));
      assert.deepEqual(a, b, `${JSON.stringify(opts)} ${what}`);
      return a;
    };
    /** @type {string[][]} */
    const ids = [[], []];
    const acquire = (/** @type {string} */ user, /** @type {any} */ o) =>
      same(
        (reg, i) => {
          const r = reg.acquire(user, o);
          if (r.ok) ids[i].push(r.lease.id);
          return r;
        },
        `acquire ${user} ${JSON.stringify(o)}`,
      );
    acquire('alice', { now: T0 });
    acquire('alice', { now: T0 + 1, connectionKey: 'tab-1' });
    acquire('alice', { now: T0 + 2, connectionKey: 'tab-1' }); // reused
    acquire('alice', { now: T0 + 3, evict: false }); // at the limit: refused, evictable or not
    acquire('alice', { now: T0 + 3, evict: null }); // as if not given
    acquire('alice', { now: T0 + 3 }); // at the limit: refused or evicting
    acquire('bob', { connectionKey: null, now: T0 + 4 });
    acquire('ünï', { now: T0 + 5, connectionKey: 'ключ' });
    acquire('carol', { now: T0 + 6, connectionKey: undefined });
    acquire('carol', { now: T0 + 7 });
    acquire('carol', { now: T0 + 8 });
    acquire('dave', { now: T0 + 9 });
    same((reg, i) => [reg.touch(ids[i][0], T0 + 50), reg.touch(ids[i][0].replace('conn_', 'run_'), T0 + 60)], 'touch');
    same((reg, i) => [reg.release(ids[i][1].replace('conn_', 'thread_'), T0 + 70), reg.release(ids[i][1], T0 + 71)], 'release');
    same((reg, i) => ids[i].map((id) => reg.getLease(id)), 'leases');
    same((reg) => {
      const { ...s } = reg.stats();
      return s;
    }, 'stats');
    // Expired by now: alice's own are reclaimed, and with a global limit everyone's.
    acquire('dave', { now: T0 + 200_000, evict: false });
    acquire('alice', { now: T0 + 200_001 });
    acquire('alice', { now: T0 + 200_002, evict: false });
    acquire('alice', { now: T0 + 200_003, evict: false });
    same((reg) => [reg.lastRemovedCount(), reg.lastReclaimed(), reg.lastEvicted(), reg.lastRefusal()], 'the last acquire');
    assert.deepEqual(norm[0](events[0]), norm[1](events[1]), 'the same events');
    assert.ok(events[0].length > 0);
    // After a sweep both have expired the same leases.
    same((reg) => reg.sweep(T0 + 10 * 60_000).length, 'sweep');
    ours.free();
    theirs.free();
  }
});

test('the object path: bad input throws as the checked binding does, and changes nothing', () => {
  const reg = new LeaseRegistry({ perUserLimit: 1 });
  const rawReg = new raw.LeaseRegistry({ perUserLimit: 1 });
  /** @type {[unknown, unknown][]} */
  const acquires = [
    ['', undefined],
    [7, undefined],
    ['x'.repeat(300), undefined],
    ['a', 5],
    ['a', []],
    ['a', { now: NaN }],
    ['a', { now: '5' }],
    ['a', { now: -1 }],
    ['a', { connectionKey: 5 }],
    ['a', { connectionKey: '' }],
    ['a', { other: 1 }],
    ['a', { now: Infinity }],
  ];
  for (const [user, opts] of acquires) {
    const ours = thrown(() => reg.acquire(/** @type {any} */ (user), /** @type {any} */ (opts)));
    assert.ok(ours, `${String(user).slice(0, 10)} ${JSON.stringify(opts)} is refused`);
    assert.deepEqual(
      ours,
      thrown(() => rawReg.acquire(/** @type {any} */ (user), /** @type {any} */ (opts))),
    );
  }
  for (const [id, now] of /** @type {[unknown, unknown][]} */ ([
    ['nope', undefined],
    [5, undefined],
    ['conn_01h455vb4pex5vsknk084sn02q', NaN],
    ['conn_01h455vb4pex5vsknk084sn02q', 'x'],
  ])) {
    for (const method of ['release', 'touch']) {
      const ours = thrown(() => /** @type {any} */ (reg)[method](id, now));
      assert.ok(ours, `${method} ${String(id)} ${String(now)}`);
      assert.deepEqual(
        ours,
        thrown(() => /** @type {any} */ (rawReg)[method](id, now)),
      );
    }
  }
  assert.equal(reg.stats().active, 0);
  assert.equal(reg.release('conn_01h455vb4pex5vsknk084sn02q'), false, 'a forged id releases nothing');
  assert.equal(reg.stats().unknownReleases, 1);
});

test('acquire options are read as the checked binding reads them, each getter once', () => {
  /** @param {{ n: number }} count */
  const cases = (count) => [
    Object.create({ now: T0 + 5 }), // inherited: not an option
    Object.create({ connectionKey: 'k' }),
    Object.defineProperty({}, 'now', { value: T0 + 5 }), // not enumerable: not an option
    {
      get now() {
        count.n++;
        return T0 + 7;
      },
    },
    {
      get now() {
        count.n++;
        throw new Error('boom');
      },
    },
    { now: T0 + 9, connectionKey: 'k2' },
    { now: T0 + 9, connectionKey: 'k2' }, // reused
    { now: 'x' },
    [],
    {
      get extra() {
        count.n++;
        return 1;
      },
    },
  ];
  const regs = [new LeaseRegistry({ perUserLimit: 100 }), new raw.LeaseRegistry({ perUserLimit: 100 })];
  const norm = [normalizer(), normalizer()];
  const counts = [{ n: 0 }, { n: 0 }];
  const all = [cases(counts[0]), cases(counts[1])];
  /** A lease made at the clock's time differs from the other's in its times only. */
  const scrub = (/** @type {any} */ x) =>
    x?.lease && x.lease.acquiredAt > T0 + 1e6 ? { ...x, lease: { ...x.lease, acquiredAt: 0, touchedAt: 0, expiresAt: 0 } } : x;
  for (let i = 0; i < all[0].length; i++) {
    const before = counts.map((c) => c.n);
    const [a, b] = [0, 1].map((k) => thrown(() => regs[k].acquire('u', /** @type {any} */ (all[k][i]))) ?? scrub(norm[k](regs[k].lastRefusal())));
    assert.deepEqual(a, b, `case ${i}: the same error`);
    if (a === null) {
      // Both granted (no error): compare the results of a second, identical call.
      const [c, d] = [0, 1].map((k) => scrub(norm[k](regs[k].acquire('v', /** @type {any} */ (cases({ n: 0 })[i])))));
      assert.deepEqual(c, d, `case ${i}`);
    }
    assert.equal(counts[0].n - before[0], counts[1].n - before[1], `case ${i}: getters read as often`);
  }
  assert.equal(regs[0].stats().active, regs[1].stats().active);
});

test('lone surrogates leave the lane for the checked binding, which refuses them as the raw binding does', () => {
  // The lane's encodeInto would write U+FFFD for each: the checked binding refuses instead.
  const regs = [new LeaseRegistry({}), new raw.LeaseRegistry({})];
  const long = 'x'.repeat(30); // past the ASCII loop's 24 characters: encodeInto straight away
  for (const bad of ['a\uD800b', '\uDC00', 'é\uDBFF', `${long}\uD800`, `\uD83D${long}`]) {
    /** @type {Array<[string, (reg: any) => unknown, string]>} */
    const calls = [
      ['acquire user', (reg) => reg.acquire(bad, { now: T0 }), 'INVALID_USER_ID'],
      ['acquire key', (reg) => reg.acquire('u', { now: T0, connectionKey: bad }), 'INVALID_OPTION'],
      ['acquireHandle user', (reg) => reg.acquireHandle(bad, undefined, T0), 'INVALID_USER_ID'],
      ['acquireHandle key', (reg) => reg.acquireHandle('u', bad, T0), 'INVALID_OPTION'],
    ];
    for (const [what, call, code] of calls) {
      const [ours, theirs] = regs.map((reg) => thrown(() => call(reg)));
      assert.equal(ours?.code, code, `${what} ${JSON.stringify(bad)}`);
      assert.deepEqual(ours, theirs, `${what} ${JSON.stringify(bad)}`);
    }
  }
  assert.deepEqual(
    regs.map((reg) => reg.stats().active),
    [0, 0],
  );
});

test('a subclass overriding getLease or lastEvicted does not change what acquire returns', () => {
  class Sub extends LeaseRegistry {
    getLease() {
      return /** @type {any} */ ({ overridden: true });
    }
    lastEvicted() {
      return ['overridden'];
    }
  }
  const reg = new Sub({ perUserLimit: 1, onLimit: 'evict-oldest', kinds: ['room'] });
  const first = /** @type {any} */ (reg.acquire('u', { now: T0 }));
  const second = /** @type {any} */ (reg.acquire('u', { now: T0 + 1 }));
  assert.equal(second.lease.userId, 'u');
  assert.match(second.lease.ids.room, /^room_/);
  assert.deepEqual(second.evicted, [first.lease.id]);
});

test('lastRefusal and lastEvicted describe the last acquire of either kind', () => {
  for (const Reg of [LeaseRegistry, raw.LeaseRegistry]) {
    const reg = new Reg({ perUserLimit: 1 });
    assert.equal(reg.lastRefusal(), null);
    reg.acquire('u', { now: T0 });
    const refused = reg.acquire('u', { now: T0 + 1 });
    assert.deepEqual(reg.lastRefusal(), refused);
    assert.ok(reg.acquireHandle('w', undefined, T0) >= 0);
    assert.equal(reg.acquireHandle('u', undefined, T0 + 2), -1);
    assert.equal(/** @type {any} */ (reg.lastRefusal()).retryAfterMs, refused.ok ? -1 : refused.retryAfterMs - 1);
    const evicting = new Reg({ perUserLimit: 1, onLimit: 'evict-oldest' });
    const old = /** @type {any} */ (evicting.acquire('e', { now: T0 }));
    evicting.acquire('e', { now: T0 + 1 });
    assert.deepEqual(evicting.lastEvicted(), [old.lease.id]);
    evicting.acquire('f', { now: T0 + 2 });
    assert.deepEqual(evicting.lastEvicted(), []);
  }
});
