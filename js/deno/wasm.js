// The compiled core for Deno, as a source-phase import: Deno (>= 2.2) compiles the .wasm
// while it loads the module graph, so the core needs no --allow-read and no fetch at run
// time (js/node.cjs reads the file with fs, which needs --allow-read of the package).
//
// A .js file with a .d.ts beside it, not .mjs: TypeScript (5.9) cannot parse `import
// source`, and for `./wasm.js` it reads wasm.d.ts instead, while tsconfig's js/**/*.mjs
// glob leaves this file out.
import source wasmModule from '../../pkg/web/socket_lease_bg.wasm';

export default wasmModule;
