// Browser loader: `await init()` once (memoized), then use the exports. Calling anything
// before init throws a clear error instead of a TypeError deep in the glue code.
import initWasm, * as wasm from '../pkg/web/socket_lease.js';
import { LeaseError, install } from './runtime.mjs';

export { LeaseError };

/** @type {Promise<void> | null} */
let ready = null;
let initialized = false;
/** @type {ReturnType<typeof install> | undefined} */
let lane;

function finish() {
  if (initialized) return;
  lane = install(wasm);
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
  if (!initialized && ready) {
    // wasm-bindgen would set up a second instance under the pending one.
    throw new Error('socket-lease: init() is in progress; await it instead of calling initSync()');
  }
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

/** @type {typeof wasm.newId} */
export const newId = (kind, now) => {
  if (lane === undefined) assertReady();
  return /** @type {ReturnType<typeof install>} */ (lane).newId(kind, now);
};
/** @type {typeof wasm.parseId} */
export const parseId = (id) => {
  if (lane === undefined) assertReady();
  return /** @type {ReturnType<typeof install>} */ (lane).parseId(id);
};
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
