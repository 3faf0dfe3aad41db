// The README's and docs/'s examples are tests: every ```js block runs as an ES module
// inside the repo (so `socket-lease` resolves to this package by self-reference) and must
// exit 0.
// Blocks that need another runtime (Workers, browsers) or serve until stopped are
// fenced as ```javascript instead.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const pages = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
/** @type {Array<{ page: string, code: string }>} */
const blocks = pages.flatMap((page) =>
  [...readFileSync(join(root, page), 'utf8').matchAll(/^```js\n([\s\S]*?)^```$/gm)].map((m) => ({ page, code: m[1] })),
);

test('the README and docs/hosts.md have runnable examples', () => {
  assert.ok(blocks.some((b) => b.page === 'README.md'));
  assert.ok(blocks.some((b) => b.page === 'docs/hosts.md'));
});

blocks.forEach(({ page, code }, i) => {
  test(`${page} example ${i + 1} runs`, () => {
    const dir = join(root, 'target', 'readme-examples');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `example-${i + 1}-${process.pid}.mjs`);
    writeFileSync(file, code);
    try {
      execFileSync(process.execPath, [file], { cwd: root, stdio: 'pipe', timeout: 60_000 });
    } catch (err) {
      assert.fail(`example ${i + 1} failed:\n${code}\n${err.stderr}`);
    } finally {
      rmSync(file, { force: true });
    }
  });
});
