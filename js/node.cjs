'use strict';
// Node loader (CommonJS). The nodejs bindings read and instantiate the .wasm
// synchronously, so `require('socket-lease')` is ready to use at once. The ESM entry
// (node.mjs) re-exports this module, so `import` and `require` share one instance.
let wasm;
try {
  wasm = require('../pkg/nodejs/socket_lease.js');
} catch (err) {
  if (/** @type {NodeJS.ErrnoException} */ (err).code === 'MODULE_NOT_FOUND') {
    throw new Error('socket-lease: the WebAssembly build is missing (pkg/nodejs); run `npm run build`', { cause: err });
  }
  throw err;
}
const { LeaseError, install } = require('./runtime.cjs');

const { newId, parseId } = install(wasm);

module.exports = {
  LeaseRegistry: wasm.LeaseRegistry,
  LeaseError,
  newId,
  parseId,
  deriveId: wasm.deriveId,
  sameLease: wasm.sameLease,
  idFromUuid: wasm.idFromUuid,
};
