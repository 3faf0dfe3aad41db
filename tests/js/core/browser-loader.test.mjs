// The browser entry (`exports` condition "browser"), exercised in Node with
// `--conditions=browser`: init is required, memoized, and loads the same core.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../..', import.meta.url));

const script = `
import init, { initSync, newId, LeaseRegistry, LeaseError } from 'socket-lease';
import { readFileSync } from 'node:fs';
const out = {};
try { newId('conn'); } catch (e) { out.beforeInit = e.message; }
try { new LeaseRegistry(); } catch (e) { out.ctorBeforeInit = e.message; }
const bytes = readFileSync('pkg/web/socket_lease_bg.wasm');
const p1 = init(bytes);
const p2 = init(bytes);
out.memoized = p1 === p2;
// A synchronous init under a pending one would set up a second instance.
try { initSync(bytes); } catch (e) { out.initSyncWhilePending = e.message; }
await p1;
initSync(bytes); // a no-op once initialised
out.id = newId('thread');
const reg = new LeaseRegistry({ perUserLimit: 1 });
out.ok = reg.acquire('alice').ok;
out.refused = reg.acquire('alice').ok === false;
try { reg.acquire(''); } catch (e) { out.error = e instanceof LeaseError && e.code; }
try { reg.acquireHandle(42); } catch (e) { out.fastPathError = e instanceof LeaseError && e.code; }
console.log(JSON.stringify(out));
`;

test('browser build: init is required, memoized, and gives the same API', () => {
  const stdout = execFileSync(process.execPath, ['--conditions=browser', '--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' });
  const out = JSON.parse(stdout);
  assert.match(out.beforeInit, /call `await init\(\)`/);
  assert.match(out.ctorBeforeInit, /call `await init\(\)`/);
  assert.equal(out.memoized, true);
  assert.match(out.initSyncWhilePending, /init\(\) is in progress/);
  assert.match(out.id, /^thread_[0-7]/);
  assert.equal(out.ok, true);
  assert.equal(out.refused, true);
  assert.equal(out.error, 'INVALID_USER_ID');
  assert.equal(out.fastPathError, 'INVALID_USER_ID', 'the fast-path guard is installed by init');
});
