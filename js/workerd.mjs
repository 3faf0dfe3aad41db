// Cloudflare Workers / workerd loader. Workers cannot fetch or compile wasm at run time;
// the bundler (wrangler, miniflare) imports the .wasm as a compiled WebAssembly.Module,
// which we instantiate synchronously at module load.
import wasmModule from '../pkg/web/socket_lease_bg.wasm';
import * as wasm from '../pkg/web/socket_lease.js';
import { LeaseError, guardFastPath } from './runtime.mjs';

wasm.initSync({ module: wasmModule });
/** @type {any} */ (wasm).__registerErrorClass(LeaseError);
guardFastPath(wasm.LeaseRegistry);

export { LeaseError };
export const { LeaseRegistry, newId, parseId, deriveId, sameLease, idFromUuid } = wasm;
