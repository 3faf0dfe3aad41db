// The core (the wasm LeaseRegistry and ids) for Deno: the Workers loader's scheme
// (js/workerd.mjs), instantiated synchronously at module load from the module that
// wasm.js imported. `socket-lease` itself resolves here under Deno too (its `deno`
// condition), so an application's LeaseError is the one the adapter throws; the `node`
// condition's js/node.cjs would read the .wasm with fs (--allow-read).
import wasmModule from './wasm.js';
import * as wasm from '../../pkg/web/socket_lease.js';
import { LeaseError, install } from '../runtime.mjs';

wasm.initSync({ module: wasmModule });

export { LeaseError };
export const { newId, parseId } = install(wasm);
export const { LeaseRegistry, deriveId, sameLease, idFromUuid } = wasm;
