// The lane (src/wasm/lane.rs, js/runtime.mjs): the hot calls pass ASCII strings through
// one fixed buffer instead of wasm-bindgen's glue. Whatever path a call takes, its result
// and its errors must be those of the checked binding, compared here with a separate
// instance of the raw generated bindings (which know nothing of the lane).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { parse } from 'yaml';
import { LeaseRegistry, newId, parseId, LeaseError } from 'socket-lease';

const require = createRequire(import.meta.url);
/** @type {typeof import('socket-lease')} */
const raw = require('../../../pkg/nodejs/socket_lease.js');
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

test('parseId on the lane returns exactly what the checked binding returns', () => {
  const ids = [...fixture('valid.yml').map((c) => c.typeid), newId('conn'), newId(''), newId('a_b'), newId('x'.repeat(63))];
  for (const id of ids) assert.deepEqual(parseId(id), raw.parseId(id), id);
  // Also after the linear memory has grown (the lane's view of it must follow).
  const before = parseId(ids[0]);
  const big = new LeaseRegistry({ perUserLimit: 1_000_000 });
  for (let i = 0; i < 200_000; i++) big.acquireHandle(`grow-${i}`, undefined, T0);
  assert.deepEqual(parseId(ids[0]), before);
  assert.match(newId('conn'), /^conn_[0-7][0-9a-hjkmnp-tv-z]{25}$/);
  big.free();
});

test('bad input takes the checked binding: the same LeaseError, nothing cached', () => {
  const invalid = fixture('invalid.yml').map((c) => c.typeid);
  const odd = ['', 'conn_', 'ünï_01h455vb4pex5vsknk084sn02q', 'conn_01h455vb4pex5vsknk084sn02Q', `conn_${'0'.repeat(2000)}`, 'a'.repeat(5000)];
  for (const id of [...invalid, ...odd, 7, null, undefined, {}]) {
    const ours = thrown(() => parseId(/** @type {any} */ (id)));
    assert.ok(ours, `${String(id).slice(0, 40)} is refused`);
    assert.deepEqual(ours, thrown(() => raw.parseId(/** @type {any} */ (id))));
  }
  for (const [kind, now] of /** @type {[any, any][]} */ ([['Conn', undefined], ['conn', NaN], ['conn', -1], ['conn', Infinity], ['conn', '5'], [5, undefined], ['_x', undefined]])) {
    const ours = thrown(() => newId(kind, now));
    assert.equal(ours?.code, kind === 'conn' ? 'INVALID_TIME' : 'INVALID_ID', `${kind} ${now}`);
    assert.deepEqual(ours, thrown(() => raw.newId(kind, now)));
    // A refused kind is not remembered as checked: it is refused again.
    assert.equal(thrown(() => newId(kind, now))?.code, ours?.code);
  }
  assert.throws(() => newId('Conn'), (err) => err instanceof LeaseError);
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

test('acquireHandle: non-ASCII and over-long ids and keys take the checked binding and mean the same', () => {
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
    assert.deepEqual(ours, thrown(() => rawReg.acquireHandle(user, undefined, T0)));
    rawReg.free();
  }
  assert.equal(reg.stats().active, 4, 'refused calls changed nothing');
});

test('a callback re-entering the lane from onEvent sees its own strings, not the caller\'s', () => {
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
