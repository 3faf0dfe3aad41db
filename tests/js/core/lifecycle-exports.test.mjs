// socket-lease/lifecycle by its own name: on Node, `import` and `require` give one module
// whose option errors are the LeaseError class `socket-lease` exports (the ESM sources
// would bring a second copy of the class, and `instanceof` would fail).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { LeaseError } from 'socket-lease';
import * as lifecycle from 'socket-lease/lifecycle';

const require = createRequire(import.meta.url);

test("socket-lease/lifecycle: import and require share one instance, and its errors are socket-lease's LeaseError", () => {
  const required = require('socket-lease/lifecycle');
  assert.equal(lifecycle.ConnectionLifecycle, required.ConnectionLifecycle);
  assert.deepEqual(Object.keys(lifecycle).sort(), Object.keys(required).sort());
  assert.throws(
    () => new lifecycle.ConnectionLifecycle(/** @type {any} */ ({ userId: 'not a function' }), { close() {}, terminate() {} }, 'test'),
    (err) => err instanceof LeaseError && /** @type {any} */ (err).code === 'INVALID_OPTION' && /test: invalid option/.test(String(err)),
  );
});
