// Generates js/runtime.cjs (the Node loader's CommonJS copy) from js/runtime.mjs, the one
// source of the JS half of the boundary. Run by scripts/build.sh; the output is not
// committed. The source may only export with `export class|function|const <name>`.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const js = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'js');
const source = fs.readFileSync(path.join(js, 'runtime.mjs'), 'utf8');
/** @type {string[]} */
const names = [];
const body = source.replace(/^export (class|function|const) (\w+)/gm, (_, what, name) => {
  names.push(name);
  return `${what} ${name}`;
});
if (/^\s*(export|import)\b/m.test(body)) {
  throw new Error('js/runtime.mjs: only `export class|function|const` can be turned into CommonJS');
}
const out = `'use strict';\n// GENERATED from js/runtime.mjs by scripts/runtime-cjs.mjs; edit that file.\n${body}\nmodule.exports = { ${names.join(', ')} };\n`;
const target = path.join(js, 'runtime.cjs');
if (!fs.existsSync(target) || fs.readFileSync(target, 'utf8') !== out) {
  // Written aside and renamed, so a process loading the package meanwhile never sees half a file.
  const tmp = `${target}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, out);
  fs.renameSync(tmp, target);
}
