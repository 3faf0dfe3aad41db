// Cloudflare Workers / workerd loader. Workers cannot fetch or compile wasm at run time;
// the bundler (wrangler, miniflare) imports the .wasm as a compiled WebAssembly.Module,
// which we instantiate synchronously at module load.
import wasmModule from '../pkg/web/socket_lease_bg.wasm';
import * as wasm from '../pkg/web/socket_lease.js';
import { LeaseError, install } from './runtime.mjs';

wasm.initSync({ module: wasmModule });

export { LeaseError };
export const { newId, parseId } = install(wasm);
export const { LeaseRegistry, deriveId, sameLease, idFromUuid } = wasm;
