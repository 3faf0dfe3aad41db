// The lane's byte layout as the JS half reads it (js/layout.generated.mjs, generated from
// src/wasm/layout.rs; `cargo test` fails when the committed file differs from the table).
// Here: that what was generated is a layout at all (every field in its record's region,
// the fields of one record apart, nothing over the suffixes newId makes ahead), and that
// the CommonJS twin says the same.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as layout from '../../../js/layout.generated.mjs';

const require = createRequire(import.meta.url);
const { RECORDS, CAPACITY, INPUT, IDS_AT, IDS_ROOM, SUFFIX_LEN, MAX_ID_LEN } = layout;
const SIZES = { u8: 1, f64: 8, u128: 16 };

/** Where each region's records must lie: scratch in the input (read at once), kept after it. */
const REGIONS = { scratch: [0, INPUT], kept: [INPUT, IDS_AT] };

test('every field of every record lies in its region: scratch in the input, kept after it, none over the suffixes newId makes ahead', () => {
  assert.ok(Object.keys(RECORDS).length >= 4);
  for (const [record, { region, fields }] of Object.entries(RECORDS)) {
    const [start, end] = REGIONS[/** @type {keyof typeof REGIONS} */ (region)] ?? [];
    assert.ok(end !== undefined, `${record} is in a known region, not ${region}`);
    assert.ok(Object.keys(fields).length > 0, record);
    for (const [name, { at, size, type }] of Object.entries(fields)) {
      assert.ok(Number.isInteger(at) && at >= start, `${record}.${name} at ${at}, before ${start}`);
      assert.ok(at + size <= end, `${record}.${name} ends at ${at + size}, past ${end}`);
      assert.equal(size, SIZES[/** @type {keyof typeof SIZES} */ (type)], `${record}.${name} is a ${type}`);
    }
  }
  assert.ok(Object.values(RECORDS).some((r) => r.region === 'kept'));
});

test('the fields of one record do not overlap', () => {
  for (const [record, { fields }] of Object.entries(RECORDS)) {
    const spans = Object.entries(fields).sort((a, b) => a[1].at - b[1].at);
    for (let i = 1; i < spans.length; i++) {
      const [prev, p] = spans[i - 1];
      const [name, f] = spans[i];
      assert.ok(p.at + p.size <= f.at, `${record}: ${prev} (${p.at}..${p.at + p.size}) overlaps ${name} (at ${f.at})`);
    }
  }
});

test('the regions: input, then kept records, then the suffixes made ahead, all in the lane', () => {
  assert.ok(INPUT > 0 && INPUT < IDS_AT);
  assert.ok(MAX_ID_LEN <= INPUT, 'an id fits the input');
  assert.ok(IDS_ROOM >= 1 && IDS_AT + IDS_ROOM * SUFFIX_LEN <= CAPACITY);
  assert.ok(IDS_AT + (IDS_ROOM + 1) * SUFFIX_LEN > CAPACITY, 'IDS_ROOM is all that fits');
});

test('each field is also a constant named <RECORD>_<FIELD>, and the CommonJS twin says the same', () => {
  const flat = /** @type {Record<string, unknown>} */ (layout);
  for (const [record, { fields }] of Object.entries(RECORDS)) {
    for (const [name, { at }] of Object.entries(fields)) assert.equal(flat[`${record.toUpperCase()}_${name}`], at, `${record}.${name}`);
  }
  const cjs = require('../../../js/layout.generated.cjs');
  assert.deepEqual({ ...cjs }, { ...layout });
});
