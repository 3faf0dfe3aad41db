// Generates the CommonJS copies of the package's runtime-neutral ES modules: js/runtime.mjs
// (the JS half of the boundary) and js/lifecycle/*.mjs (the host lifecycle). The Node
// loader and the Node host are CommonJS so that `import` and `require` share one instance
// on every Node >= 20 (require(esm) is not there before 20.19); browsers, workerd, Bun
// and Deno load the .mjs sources. Run by scripts/build.sh; the outputs are not committed.
//
// The sources may only export with `export class|function|const <name>`, and import
// with `import { a, b } from './x.mjs'` (relative, named, no renaming).
// js/lifecycle/index.mjs and node.mjs only re-export; index.cjs is written by hand.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const js = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'js');
const sources = [
  'runtime.mjs',
  ...fs
    .readdirSync(path.join(js, 'lifecycle'))
    .filter((f) => f.endsWith('.mjs') && f !== 'index.mjs' && f !== 'node.mjs')
    .map((f) => `lifecycle/${f}`),
];

for (const file of sources) {
  const source = fs.readFileSync(path.join(js, file), 'utf8');
  /** @type {string[]} */
  const names = [];
  const body = source
    .replace(/^import \{([^}]*)\} from '(\.{1,2}\/[^']+)\.mjs';$/gm, (_, list, from) => `const {${list}} = require('${from}.cjs');`)
    .replace(/^export (class|function|const|async function) (\w+)/gm, (_, what, name) => {
      names.push(name);
      return `${what} ${name}`;
    });
  if (/^\s*(export|import)\b/m.test(body)) {
    throw new Error(`js/${file}: only \`export class|function|const\` and \`import { ... } from './x.mjs'\` can be turned into CommonJS`);
  }
  const out = `'use strict';\n// GENERATED from js/${file} by scripts/runtime-cjs.mjs; edit that file.\n${body}\nmodule.exports = { ${names.join(', ')} };\n`;
  const target = path.join(js, file.replace(/\.mjs$/, '.cjs'));
  if (!fs.existsSync(target) || fs.readFileSync(target, 'utf8') !== out) {
    // Written aside and renamed, so a process loading the package meanwhile never sees half a file.
    const tmp = `${target}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, out);
    fs.renameSync(tmp, target);
  }
}
