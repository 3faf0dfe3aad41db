// The README's and docs/'s examples are tests: every ```js block runs as an ES module
// inside the repo (so `socket-lease` resolves to this package by self-reference) and must
// exit 0.
// Blocks that need another runtime (Workers, browsers) or serve until stopped are
// fenced as ```javascript instead.
//
// The documentation's shape is checked here too: the README stays a ten-minute read (at
// most 15 KiB), every relative link of the README and of docs/ names a file of this
// repository (and, into a Markdown page, a heading that exists), docs/index.md lists
// every page, and docs/performance.md holds the markers `npm run bench:report` writes
// between.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, mkdirSync, writeFileSync, rmSync, statSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join, relative, sep } from 'node:path';

const root = fileURLToPath(new URL('../../..', import.meta.url));

/** Every Markdown page under `dir` (relative to the root), subfolders included. */
const markdownUnder = (/** @type {string} */ dir) =>
  readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) => {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory()) return markdownUnder(path);
    return e.name.endsWith('.md') ? [path] : [];
  });
const docs = markdownUnder('docs').sort();
const pages = ['README.md', ...docs];
const text = new Map(pages.map((page) => [page, readFileSync(join(root, page), 'utf8')]));

/** @type {Array<{ page: string, code: string }>} */
const blocks = pages.flatMap((page) => [.../** @type {string} */ (text.get(page)).matchAll(/^```js\n([\s\S]*?)^```$/gm)].map((m) => ({ page, code: m[1] })));

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

test('the README is at most 15 KiB', () => {
  const size = statSync(join(root, 'README.md')).size;
  assert.ok(size <= 15_360, `README.md is ${size} bytes; move detail into docs/ (the limit is 15,360)`);
});

/** The page's text without its fenced code blocks (a link inside code is not a link). */
const prose = (/** @type {string} */ md) => md.replace(/^(```+|~~~+)[^\n]*\n[\s\S]*?^\1[ \t]*$/gm, '');

/**
 * The anchors GitHub makes for a page's headings: the heading's text (links and code
 * spans reduced to their text) lower-cased, everything but letters, digits, spaces,
 * hyphens and underscores dropped, spaces made hyphens; a repeated anchor gets -1, -2...
 * @param {string} md
 */
function anchors(md) {
  const seen = new Map();
  const out = new Set();
  for (const [, heading] of prose(md).matchAll(/^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$/gm)) {
    const plain = heading
      .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
      .replace(/`/g, '')
      .replace(/<[^>]+>/g, '');
    const slug = plain
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    out.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return out;
}

/** Every `[text](target)` link of a page outside code, as written. */
const links = (/** @type {string} */ md) =>
  [
    ...prose(md)
      .replace(/`[^`\n]*`/g, '')
      .matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g),
  ].map((m) => m[1]);

test('every relative link in the README and docs/ names a file of this repository, and an anchor that exists', () => {
  const problems = [];
  let checked = 0;
  for (const page of pages) {
    for (const target of links(/** @type {string} */ (text.get(page)))) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:, ...
      checked++;
      const [pathPart, anchor] = target.split('#', 2);
      const file = pathPart === '' ? join(root, page) : join(root, dirname(page), decodeURIComponent(pathPart));
      const inside = relative(root, file);
      if (inside.startsWith(`..${sep}`) || inside === '..') {
        problems.push(`${page}: ${target} leaves the repository`);
        continue;
      }
      if (!existsSync(file)) {
        problems.push(`${page}: ${target} names no file`);
        continue;
      }
      if (anchor !== undefined && file.endsWith('.md')) {
        const known = anchors(readFileSync(file, 'utf8'));
        if (!known.has(decodeURIComponent(anchor))) problems.push(`${page}: ${target}: no heading makes #${anchor}`);
      }
    }
  }
  assert.ok(checked > 50, `only ${checked} relative links found: the link pattern is broken`);
  assert.deepEqual(problems, []);
});

test('the anchors are made the way GitHub makes them', () => {
  const md =
    '# Node: socket-lease/node (ws)\n## Close codes (every host)\n## `new LeaseRegistry(options?)`\n## Bun ([docs/bun.md](docs/bun.md))\n## API\n## API\n```sh\n# not a heading\n```\n';
  assert.deepEqual([...anchors(md)], ['node-socket-leasenode-ws', 'close-codes-every-host', 'new-leaseregistryoptions', 'bun-docsbunmd', 'api', 'api-1']);
});

test('docs/index.md lists every page of docs/', () => {
  const listed = new Set(links(/** @type {string} */ (text.get('docs/index.md'))).map((l) => `docs/${l.split('#')[0]}`));
  const missing = docs.filter((page) => page !== 'docs/index.md' && !listed.has(page));
  assert.deepEqual(missing, []);
});

test('docs/performance.md has one pair of each marker bench:report writes between', () => {
  const perf = /** @type {string} */ (text.get('docs/performance.md'));
  for (const name of ['bench', 'bench:churn']) {
    const start = perf.split(`<!-- ${name}:start -->`).length - 1;
    const end = perf.split(`<!-- ${name}:end -->`).length - 1;
    assert.equal(start, 1, `<!-- ${name}:start --> appears ${start} times`);
    assert.equal(end, 1, `<!-- ${name}:end --> appears ${end} times`);
    assert.ok(perf.indexOf(`<!-- ${name}:start -->`) < perf.indexOf(`<!-- ${name}:end -->`));
  }
});
