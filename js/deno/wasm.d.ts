// See wasm.js: the core's compiled module, imported by Deno at load time.
declare const wasmModule: WebAssembly.Module;
export default wasmModule;
