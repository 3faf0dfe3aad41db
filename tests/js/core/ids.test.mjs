// Ids through the package, imported by its own name: spec vectors both ways, strict
// parsing with named reasons, derivation, and ordering.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { newId, parseId, deriveId, sameLease, idFromUuid, LeaseError } from 'socket-lease';

const fixture = (name) => parse(readFileSync(new URL(`../../fixtures/typeid/${name}`, import.meta.url), 'utf8'));

test('every valid spec vector decodes and encodes', () => {
  const cases = fixture('valid.yml');
  assert.ok(cases.length >= 9);
  for (const c of cases) {
    const parsed = parseId(c.typeid);
    assert.equal(parsed.kind, c.prefix, c.name);
    assert.equal(parsed.uuid, c.uuid, c.name);
    assert.equal(parsed.suffix, c.typeid.slice(-26), c.name);
    assert.equal(idFromUuid(c.prefix, c.uuid), c.typeid, c.name);
  }
});

test('every invalid spec vector is rejected with INVALID_ID and a reason', () => {
  const cases = fixture('invalid.yml');
  assert.ok(cases.length >= 20);
  for (const c of cases) {
    assert.throws(
      () => parseId(c.typeid),
      (err) => err instanceof LeaseError && err.code === 'INVALID_ID' && err.message.length > 20,
      c.name,
    );
  }
});

test('rejections name their reason', () => {
  const reason = (id) => {
    try {
      parseId(id);
    } catch (err) {
      return err.message;
    }
    assert.fail(`${id} was accepted`);
  };
  assert.match(reason(''), /empty/);
  assert.match(reason('conn_0123'), /exactly 26/);
  assert.match(reason('conn_8zzzzzzzzzzzzzzzzzzzzzzzzz'), /above '7'/);
  assert.match(reason('Conn_01h455vb4pex5vsknk084sn02q'), /prefix character at position 0/);
  assert.match(reason('conn_01h455vb4pex5vsknk084sn02Q'), /suffix character at position 25/);
  assert.match(reason('_conn_01h455vb4pex5vsknk084sn02q'), /start and end with a letter/);
  assert.match(reason('x'.repeat(100_000)), /at most 90/);
});

test('new ids are UUIDv7, strictly increasing, and round-trip', () => {
  let last = '';
  for (let i = 0; i < 10_000; i++) {
    const id = newId('conn');
    assert.ok(id > last, `${id} <= ${last}`);
    last = id;
  }
  const parsed = parseId(last);
  assert.equal(parsed.version, 7);
  assert.ok(Math.abs(parsed.timestampMs - Date.now()) < 60_000);
  assert.equal(idFromUuid('conn', parsed.uuid), last);
  // An injected clock that goes backwards still yields increasing ids.
  const a = newId('run', 2_000_000_000_000);
  const b = newId('run', 1_000);
  assert.ok(b.slice(-26) > a.slice(-26));
});

test('derived ids share one suffix and name the same lease', () => {
  const conn = newId('conn');
  const run = deriveId(conn, 'run');
  const thread = deriveId(run, 'thread');
  assert.equal(run, 'run_' + conn.slice(5));
  assert.equal(thread, 'thread_' + conn.slice(5));
  assert.equal(sameLease(conn, thread), true);
  assert.equal(sameLease(conn, newId('conn')), false);
  assert.equal(newId('').length, 26, 'empty kind gives a bare suffix');
  assert.throws(() => deriveId(conn, 'Run'), { code: 'INVALID_ID' });
  assert.throws(() => deriveId(conn, 'a'.repeat(64)), { code: 'INVALID_ID' });
});

test('the incident: ids of two users never match and never collide', () => {
  const seen = new Set();
  for (let i = 0; i < 1000; i++) seen.add(newId('run'));
  assert.equal(seen.size, 1000, 'the incident saw 3 distinct ids in 1000 fast calls');
});
