// Browser loader: `await init()` once (memoized), then use the exports. Calling anything
// before init throws a clear error instead of a TypeError deep in the glue code.
import initWasm, * as wasm from '../pkg/web/socket_lease.js';
import { LeaseError, guardFastPath } from './runtime.mjs';

export { LeaseError };

let ready = null;
let initialized = false;

function finish() {
  /** @type {any} */ (wasm).__registerErrorClass(LeaseError);
  guardFastPath(wasm.LeaseRegistry);
  initialized = true;
}

/**
 * @param {import('../pkg/web/socket_lease.js').InitInput | Promise<import('../pkg/web/socket_lease.js').InitInput>} [input]
 * @returns {Promise<void>}
 * Loads the WebAssembly module. `input` is optional: a URL, Response, BufferSource or
 * WebAssembly.Module; by default the .wasm next to the bindings is fetched.
 */
export default function init(input) {
  ready ??= initWasm(input === undefined ? undefined : { module_or_path: input }).then(finish, (err) => {
    ready = null;
    throw err;
  });
  return ready;
}

/**
 * Synchronous init from a compiled `WebAssembly.Module` or the .wasm bytes.
 * @param {import('../pkg/web/socket_lease.js').SyncInitInput} module
 */
export function initSync(module) {
  if (!initialized) {
    wasm.initSync({ module });
    finish();
  }
}

function assertReady() {
  if (!initialized) {
    throw new Error('socket-lease: call `await init()` before using the library');
  }
}

/**
 * @template {(...args: any[]) => any} F
 * @param {F} fn
 * @returns {F}
 */
const guard = (fn) =>
  /** @type {F} */ (
    (/** @type {any[]} */ ...args) => {
      assertReady();
      return fn(...args);
    }
  );

export const newId = guard(wasm.newId);
export const parseId = guard(wasm.parseId);
export const deriveId = guard(wasm.deriveId);
export const sameLease = guard(wasm.sameLease);
export const idFromUuid = guard(wasm.idFromUuid);

/** The registry class; constructing or restoring before `init()` throws a clear error. */
export const LeaseRegistry = new Proxy(wasm.LeaseRegistry, {
  construct(target, args, newTarget) {
    assertReady();
    return Reflect.construct(target, args, newTarget);
  },
  get(target, prop, receiver) {
    if (prop === 'restore') assertReady();
    return Reflect.get(target, prop, receiver);
  },
});
