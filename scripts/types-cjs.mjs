// Generates the `.d.cts` types of every `require` entry in package.json `exports` from the
// `.d.ts` of the same entry's `import` side. The package is "type": "module", so TypeScript
// reads a `.d.ts` as ESM; a CommonJS entry needs a `.d.cts` or its types "masquerade as
// ESM" (node16/nodenext from a .cts file would see an ES module). A thin `.d.cts` that
// re-exports the `.d.ts` is an error under node16 (a CommonJS module cannot `require` an
// ES module; resolution-mode attributes there need module node18 or later), so the
// declarations are copied instead: the `.d.ts` stay the one source of type text.
//
// A verbatim copy is right because both sides of an entry export the same names (each
// .mjs re-exports its .cjs), and the `.d.ts` files refer only to the package by its own
// name (resolved per mode to the matching `.d.ts` or `.d.cts`) and to CommonJS bindings
// (pkg/nodejs). Run by scripts/build.sh; the outputs are not committed.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { exports } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

/** @type {Map<string, string>} `.d.cts` -> its `.d.ts` source */
const pairs = new Map();
/** @param {unknown} node */
function walk(node) {
  if (node === null || typeof node !== 'object') return;
  const { import: esm, require: cjs } = /** @type {Record<string, any>} */ (node);
  if (typeof cjs?.types === 'string' && cjs.types.endsWith('.d.cts')) {
    if (typeof esm?.types !== 'string' || !esm.types.endsWith('.d.ts')) {
      throw new Error(`package.json exports: ${cjs.types} has no .d.ts beside it under "import" to be generated from`);
    }
    pairs.set(cjs.types, esm.types);
  }
  for (const value of Object.values(node)) walk(value);
}
walk(exports);

for (const [target, source] of pairs) {
  const text = fs.readFileSync(path.join(root, source), 'utf8');
  const out = `// GENERATED from ${source.slice(2)} by scripts/types-cjs.mjs; edit that file.\n${text}`;
  const file = path.join(root, target);
  if (!fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== out) {
    // Written aside and renamed, as scripts/runtime-cjs.mjs does, so a reader never sees half a file.
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, out);
    fs.renameSync(tmp, file);
  }
}
