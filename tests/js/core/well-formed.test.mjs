// Lone surrogates. A JS string that is not well-formed UTF-16 cannot be spelled in UTF-8:
// the glue's TextEncoder (and the lane's encodeInto) would write U+FFFD for each lone
// surrogate, making "\ud800", "\udbff" and "\ufffd" one user with one quota. Every entry
// that takes a user id refuses such a string (INVALID_USER_ID), every connection key
// (INVALID_OPTION), before anything changes; well-formed strings, real U+FFFD and astral
// characters included, are users of their own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { LeaseRegistry, LeaseError } from 'socket-lease';

const T0 = 1_700_000_000_000;
const LONG = 'x'.repeat(30); // past the lane's ASCII loop (24 characters)
/** Not well-formed: lone high and low surrogates, alone, inside text, after non-ASCII, in long ids, a pair backwards. */
const ILL_FORMED = [
  '\ud800',
  '\udbff',
  '\udc00',
  '\udfff',
  'a\ud800b',
  'a\udc00b',
  '\ud83d',
  'x\ude00',
  'é\ud800',
  '用户\udc00',
  `${LONG}\ud800`,
  `\udbff${LONG}`,
  '\ude00\ud83d',
];
/** Well-formed, each a different user: U+FFFD itself, astral characters (surrogate pairs), plain text. */
const WELL_FORMED = ['\ufffd', '\ufffd\ufffd', '😀', '\ud83d\ude01', 'a😀b', `${LONG}😀`, '𝄞', 'plain', 'ünï'];

/** @param {() => unknown} fn @param {string} code @param {string} what */
function refuses(fn, code, what) {
  assert.throws(
    fn,
    (err) => {
      assert.ok(err instanceof LeaseError, `${what}: ${err}`);
      assert.equal(err.code, code, `${what}: ${err.message}`);
      assert.match(err.message, /not well-formed UTF-16/, what);
      return true;
    },
    what,
  );
}

test('every entry that takes a user id refuses one with a lone surrogate, and changes nothing', () => {
  const reg = new LeaseRegistry({ perUserLimit: 1, onLimit: 'evict-oldest' });
  reg.acquire('\ufffd', { now: T0 }); // the user the lone surrogates used to become
  const before = JSON.stringify([reg.stats(), reg.userStats('\ufffd', T0), reg.getOptions()]);
  for (const bad of ILL_FORMED) {
    const what = JSON.stringify(bad);
    refuses(() => reg.acquire(bad), 'INVALID_USER_ID', `acquire ${what}`);
    refuses(() => reg.acquire(bad, { now: T0 + 1 }), 'INVALID_USER_ID', `acquire ${what} with now`);
    refuses(() => reg.acquire(bad, { now: T0 + 1, connectionKey: 'k' }), 'INVALID_USER_ID', `acquire ${what} keyed`);
    refuses(() => reg.acquire(bad, { now: T0 + 1, evict: false }), 'INVALID_USER_ID', `acquire ${what} evict false`);
    refuses(() => reg.acquireHandle(bad), 'INVALID_USER_ID', `acquireHandle ${what}`);
    refuses(() => reg.acquireHandle(bad, undefined, T0 + 1), 'INVALID_USER_ID', `acquireHandle ${what} with now`);
    refuses(() => reg.acquireHandle(bad, 'k', T0 + 1), 'INVALID_USER_ID', `acquireHandle ${what} keyed`);
    refuses(() => reg.acquireHandle(bad, undefined, T0 + 1, false), 'INVALID_USER_ID', `acquireHandle ${what} evict false`);
    refuses(() => reg.userStats(bad), 'INVALID_USER_ID', `userStats ${what}`);
    refuses(() => reg.userStats(bad, T0), 'INVALID_USER_ID', `userStats ${what} with now`);
    refuses(() => reg.setUserLimit(bad, 5), 'INVALID_USER_ID', `setUserLimit ${what}`);
    refuses(() => reg.setUserLimit(bad, null), 'INVALID_USER_ID', `setUserLimit ${what} null`);
  }
  assert.equal(JSON.stringify([reg.stats(), reg.userStats('\ufffd', T0), reg.getOptions()]), before);
  assert.ok(reg.acquireHandle('still-works', undefined, T0) >= 0, 'the instance lives on');
});

test('a connection key with a lone surrogate is refused with INVALID_OPTION on both acquire paths', () => {
  const reg = new LeaseRegistry({ perUserLimit: 5 });
  for (const bad of ILL_FORMED) {
    const what = JSON.stringify(bad);
    refuses(() => reg.acquire('u', { connectionKey: bad }), 'INVALID_OPTION', `acquire key ${what}`);
    refuses(() => reg.acquire('u', { connectionKey: bad, now: T0 }), 'INVALID_OPTION', `acquire key ${what} with now`);
    refuses(() => reg.acquire('ünï', { connectionKey: bad, now: T0 }), 'INVALID_OPTION', `acquire key ${what} non-ASCII user`);
    refuses(() => reg.acquireHandle('u', bad), 'INVALID_OPTION', `acquireHandle key ${what}`);
    refuses(() => reg.acquireHandle('u', bad, T0), 'INVALID_OPTION', `acquireHandle key ${what} with now`);
  }
  assert.equal(reg.stats().active, 0);
});

test('userLimits keys with a lone surrogate are refused wherever options are given', () => {
  // As for any other bad userLimits key (an empty one, say): INVALID_OPTION, naming the
  // user id rule it breaks.
  const snapshot = new LeaseRegistry().snapshot();
  for (const bad of ILL_FORMED) {
    const what = JSON.stringify(bad);
    for (const userLimits of [{ [bad]: 3 }, new Map([[bad, 3]]), { ok: 1, [bad]: 3, '\ufffd': 2 }]) {
      const kind = userLimits instanceof Map ? 'Map' : 'object';
      refuses(() => new LeaseRegistry({ userLimits }), 'INVALID_OPTION', `constructor ${kind} ${what}`);
      refuses(() => new LeaseRegistry().setLimits({ userLimits }), 'INVALID_OPTION', `setLimits ${kind} ${what}`);
      refuses(() => LeaseRegistry.restore(snapshot, { userLimits }), 'INVALID_OPTION', `restore ${kind} ${what}`);
    }
  }
  // Real U+FFFD and astral keys are users like any other.
  const reg = new LeaseRegistry({ userLimits: { '\ufffd': 2, '😀': 3 } });
  assert.deepEqual(reg.getOptions().userLimits, { '\ufffd': 2, '😀': 3 });
  assert.equal(reg.userStats('\ufffd').limit, 2);
  assert.equal(reg.userStats('😀').limit, 3);
});

test('well-formed ids, U+FFFD and emoji included, are distinct users with quotas of their own', () => {
  for (const path of ['acquire', 'acquireHandle']) {
    const reg = new LeaseRegistry({ perUserLimit: 1 });
    for (const user of WELL_FORMED) {
      if (path === 'acquire') {
        const r = /** @type {any} */ (reg.acquire(user, { now: T0, connectionKey: `${user}-key` }));
        assert.equal(r.ok, true, `${path} ${JSON.stringify(user)}: its own first lease`);
        assert.equal(r.lease.userId, user);
        assert.equal(r.lease.connectionKey, `${user}-key`);
        assert.equal(reg.getLease(r.lease.id)?.userId, user, 'stored as given');
        assert.equal(/** @type {any} */ (reg.acquire(user, { now: T0 })).ok, false, `${path} ${JSON.stringify(user)}: its own limit`);
      } else {
        const h = reg.acquireHandle(user, undefined, T0);
        assert.ok(h >= 0, `${path} ${JSON.stringify(user)}: its own first lease`);
        assert.equal(reg.getLease(/** @type {string} */ (reg.handleLeaseId(h)))?.userId, user, 'stored as given');
        assert.equal(reg.acquireHandle(user, undefined, T0), -1, `${path} ${JSON.stringify(user)}: its own limit`);
      }
      assert.equal(reg.userStats(user, T0).active, 1);
    }
    assert.equal(reg.stats().users, WELL_FORMED.length, 'all distinct');
  }
});

test('without String.prototype.isWellFormed (engines before 2023) the lane falls back and refuses the same', () => {
  const root = fileURLToPath(new URL('../../..', import.meta.url));
  const script = `
    delete String.prototype.isWellFormed;
    const { LeaseRegistry } = await import('socket-lease');
    const reg = new LeaseRegistry({ perUserLimit: 1 });
    const code = (f) => { try { f(); return 'ok'; } catch (e) { return e.code; } };
    const out = [];
    for (const s of ${JSON.stringify(ILL_FORMED)}) {
      out.push(code(() => reg.acquire(s, { now: 1 })), code(() => reg.acquireHandle(s, undefined, 1)), code(() => reg.acquire('u', { connectionKey: s, now: 1 })));
    }
    for (const s of ${JSON.stringify(WELL_FORMED)}) out.push(code(() => reg.acquire(s, { now: 1 })));
    console.log(JSON.stringify({ missing: typeof ''.isWellFormed, out, users: reg.stats().users }));
  `;
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const { missing, out, users } = JSON.parse(run.stdout);
  assert.equal(missing, 'undefined', 'the child ran without isWellFormed');
  const expected = ILL_FORMED.flatMap(() => ['INVALID_USER_ID', 'INVALID_USER_ID', 'INVALID_OPTION']);
  assert.deepEqual(out, [...expected, ...WELL_FORMED.map(() => 'ok')]);
  assert.equal(users, WELL_FORMED.length);
});
