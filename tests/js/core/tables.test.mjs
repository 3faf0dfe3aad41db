// The lifecycle's per-connection tables (js/lifecycle/tables.mjs) against the Map and
// array they replace: the same answers for every sequence of operations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnList, LeaseIndex } from '../../../js/lifecycle/tables.mjs';
import { newId } from 'socket-lease';

/** A seeded PRNG (mulberry32), so a failure replays. @param {number} seed */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('LeaseIndex answers as a Map through growth, shrinking and backward-shift deletes', () => {
  for (const seed of [1, 2, 3]) {
    const random = rng(seed);
    /** @type {LeaseIndex<number>} */
    const index = new LeaseIndex();
    /** @type {Map<string, number>} */
    const model = new Map();
    // Real lease ids and short ids (which cluster in the low bits more easily).
    const pool = [...Array.from({ length: 300 }, () => newId('conn')), ...Array.from({ length: 300 }, (_, i) => `k${i}`)];
    for (let step = 0; step < 20_000; step++) {
      const key = pool[Math.floor(random() * pool.length)];
      // Phases: mostly adds (grow), then mostly deletes (shrink), and so on.
      const adding = Math.floor(step / 2500) % 2 === 0 ? random() < 0.7 : random() < 0.25;
      if (adding) {
        index.set(key, step);
        model.set(key, step);
      } else {
        assert.equal(index.delete(key), model.delete(key), `seed ${seed} step ${step}: delete(${key})`);
      }
      assert.equal(index.size, model.size);
      const probe = pool[Math.floor(random() * pool.length)];
      assert.equal(index.get(probe), model.get(probe), `seed ${seed} step ${step}: get(${probe})`);
    }
    for (const key of pool) assert.equal(index.get(key), model.get(key));
    assert.deepEqual(
      index.values().sort((a, b) => a - b),
      [...model.values()].sort((a, b) => a - b),
    );
  }
});

test('LeaseIndex: keys that are not strings are never found, and change nothing', () => {
  /** @type {LeaseIndex<string>} */
  const index = new LeaseIndex();
  index.set('conn_a', 'a');
  for (const key of [undefined, null, 1, {}, ['conn_a']]) {
    assert.equal(index.get(key), undefined);
    assert.equal(index.delete(/** @type {any} */ (key)), false);
  }
  assert.equal(index.size, 1);
  assert.equal(index.get('conn_a'), 'a');
  assert.equal(index.delete('conn_a'), true);
  assert.equal(index.get('conn_a'), undefined);
  assert.equal(index.size, 0);
});

test('ConnList keeps insertion order, removes from anywhere and clears the links of what leaves', () => {
  const make = () => ({ listPrev: null, listNext: null, list: 0 });
  const a = make();
  const b = make();
  const c = make();
  const list = new ConnList(1);
  const other = new ConnList(2);
  for (const x of [a, b, c]) list.add(x);
  list.add(b); // already there: nothing changes
  assert.equal(list.size, 3);
  assert.deepEqual(list.toArray(), [a, b, c]);
  assert.equal(other.has(a), false);
  assert.equal(other.delete(a), false, 'another list does not remove it');
  assert.equal(list.delete(b), true);
  assert.deepEqual([b.listPrev, b.listNext, b.list], [null, null, 0]);
  assert.equal(list.delete(b), false);
  assert.deepEqual(list.toArray(), [a, c]);
  list.delete(a);
  list.delete(c);
  assert.equal(list.size, 0);
  assert.deepEqual(list.toArray(), []);
  // Reusable after emptying, and a connection can move to another list.
  other.add(a);
  list.add(c);
  assert.deepEqual([other.toArray(), list.toArray()], [[a], [c]]);
});
