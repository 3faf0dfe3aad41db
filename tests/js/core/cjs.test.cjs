// CommonJS consumers: `require('socket-lease')` is synchronous and shares one instance
// (and one LeaseError class) with `import`.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const lib = require('socket-lease');

test('require gives a ready-to-use package', () => {
  const reg = new lib.LeaseRegistry({ perUserLimit: 1 });
  const r = reg.acquire('alice');
  assert.equal(r.ok, true);
  assert.match(lib.newId('conn'), /^conn_/);
  assert.equal(reg.acquire('alice').ok, false);
});

test('errors are LeaseError instances with stable codes', () => {
  assert.throws(
    () => lib.parseId('nope'),
    (e) => e instanceof lib.LeaseError && e instanceof Error && e.code === 'INVALID_ID',
  );
});

test('import and require share one instance', async () => {
  const esm = await import('socket-lease');
  assert.equal(esm.LeaseRegistry, lib.LeaseRegistry);
  assert.equal(esm.LeaseError, lib.LeaseError);
  assert.deepEqual(Object.keys(esm).sort(), Object.keys(lib).sort());
});
