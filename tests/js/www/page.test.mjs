// The demo page (www/) in Debian's headless Chromium, served by the real demo server
// (examples/node/server.mjs) on a loopback port. Every test fails on a console error, an
// uncaught page error, a failed request or an HTTP error response, except the one console
// line Chromium writes for a WebSocket upgrade the server refuses on purpose (and that line
// must then really occur: see watchErrors().assertClean).
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { eventually, launchBrowser, screenshotPath, startServer, watchErrors } from './harness.mjs';

const SERVER_LIMIT = 3;
// Above any one user's limit: the global-limit test fills it with two users.
const SERVER_GLOBAL_LIMIT = 4;
// Long TTL and heartbeat: no ping renews a lease while a test compares retry times.
const SERVER_TTL_MS = 600_000;
// A ceiling per test for a loaded machine; the tests themselves never wait on time.
const TIMEOUT = { timeout: 120_000 };

/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
/** @type {import('playwright-core').Browser} */
let browser;
/** @type {import('playwright-core').BrowserContext[]} */
const contexts = [];

/** The demo server's settings for every test (one test starts a server of its own). */
const SERVER_ENV = {
  SOCKET_LEASE_LIMIT: String(SERVER_LIMIT),
  SOCKET_LEASE_GLOBAL_LIMIT: String(SERVER_GLOBAL_LIMIT),
  SOCKET_LEASE_TTL_MS: String(SERVER_TTL_MS),
  SOCKET_LEASE_HEARTBEAT_MS: String(SERVER_TTL_MS - 10_000),
};

before(async () => {
  server = await startServer(SERVER_ENV);
  browser = await launchBrowser();
});

afterEach(async () => {
  // Pages poll the server; close them before the next test (and before the server stops).
  await Promise.all(contexts.splice(0).map((c) => c.close()));
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/**
 * A fresh page on the demo, with its error watcher, once the WebAssembly core is loaded.
 * @param {{ width: number, height: number }} [viewport]
 * @param {string} [hash]
 * @param {string} [base] the demo server's URL
 */
async function openPage(viewport = { width: 1280, height: 900 }, hash = '', base = server.url) {
  const context = await browser.newContext({ viewport });
  contexts.push(context);
  const page = await context.newPage();
  const errors = watchErrors(page);
  await page.goto(`${base}/${hash}`);
  await page.locator('html[data-ready="true"]').waitFor({ timeout: 15_000 });
  return { page, errors };
}

/** @param {import('playwright-core').Locator} locator @param {string} name */
const attr = (locator, name) => () => locator.getAttribute(name);
/** @param {import('playwright-core').Locator} locator */
const text = (locator) => () => locator.innerText();

/** @param {string} user @param {string} host @param {string} what */
const inCard = (/** @type {import('playwright-core').Page} */ page, user, host, what) => page.locator(`[data-user="${user}"] [data-testid="${host}-${what}"]`);

/** Every visible control has an accessible name (a label, aria-label or its text). */
async function unlabelledControls(/** @type {import('playwright-core').Page} */ page) {
  return page.evaluate(() =>
    Array.from(document.querySelectorAll('button, input, select, [role="tab"], [role="meter"]'))
      .filter((el) => /** @type {HTMLElement} */ (el).offsetParent !== null)
      .filter((el) => {
        const labelled = el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
        const labels = /** @type {HTMLInputElement} */ (el).labels;
        const ownText = el.tagName === 'BUTTON' && (el.textContent ?? '').trim() !== '';
        return !(labelled || (labels && labels.length > 0) || ownText);
      })
      .map((el) => el.outerHTML.slice(0, 120)),
  );
}

/** @param {string} userId */
async function serverUser(userId) {
  const res = await fetch(`${server.url}/api/users/${encodeURIComponent(userId)}`);
  assert.equal(res.status, 200);
  return /** @type {Promise<{ active: number, limit: number, socketsOpen: number, leases: { id: string }[], lastRefusal: LastRefusal | null }>} */ (res.json());
}

/** @typedef {import('socket-lease/node').LastRefusal} LastRefusal */

/**
 * A socket held by this Node process (not the page).
 * @param {string} userId
 * @param {string} [base] the demo server's URL
 */
function openFromNode(userId, base = server.url) {
  return /** @type {Promise<WebSocket>} */ (
    new Promise((resolve, reject) => {
      const ws = new WebSocket(`${base.replace('http', 'ws')}/ws?user=${encodeURIComponent(userId)}`);
      ws.once('open', () => resolve(ws));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode} for ${userId}`)));
    })
  );
}

test(
  'simulation, limit 5: six connections give five leases and one refusal; close and reopen is accepted; a killed one is reclaimed after its TTL',
  TIMEOUT,
  async () => {
    const { page, errors } = await openPage();
    assert.deepEqual(await unlabelledControls(page), []);
    const guarded = inCard(page, 'alice', 'guarded', 'gauge');
    assert.equal(await page.locator('#sim-limit').inputValue(), '5');

    // Keyboard only: focus the button and press Enter; focus must survive each re-render.
    const open = page.getByRole('button', { name: 'Open a connection for alice' });
    await open.focus();
    for (let i = 0; i < 6; i++) await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'Open a connection for alice');

    await eventually(attr(guarded, 'aria-valuenow'), (v) => v === '5', 'five leases');
    assert.equal(await guarded.getAttribute('aria-valuemax'), '5');
    assert.equal(await guarded.getAttribute('data-level'), 'full');
    assert.equal(await page.locator('[data-user="alice"] .conn').count(), 5);
    const answer = inCard(page, 'alice', 'guarded', 'answer');
    assert.equal(await answer.getAttribute('data-ok'), 'false');
    assert.match(await answer.innerText(), /#6 refused: HTTP 429, user-limit \(5 of 5\), Retry-After 60 s/);
    assert.equal(await inCard(page, 'alice', 'guarded', 'refusals').getAttribute('data-count'), '1');
    assert.ok((await page.locator('#sim-log [data-host="guarded"][data-type="rejected"]').count()) >= 1);
    assert.ok((await page.locator('#sim-log [data-host="guarded"][data-type="near-limit"]').count()) >= 1);

    // Each lease shows three ids with one highlighted suffix.
    const ids = page.locator('[data-key="alice#1"] .ids .id');
    assert.equal(await ids.count(), 3);
    const parts = await ids.evaluateAll((els) => els.map((el) => [el.querySelector('.id-kind')?.textContent, el.querySelector('mark.id-suffix')?.textContent]));
    assert.deepEqual(
      parts.map((p) => p[0]),
      ['conn_', 'run_', 'thread_'],
    );
    assert.equal(new Set(parts.map((p) => p[1])).size, 1);
    assert.match(/** @type {string} */ (parts[0][1]), /^[0-7][0-9a-hjkmnp-tv-z]{25}$/);

    // Close one, open again: accepted.
    await page.getByRole('button', { name: 'Close on alice #2' }).click();
    await eventually(attr(guarded, 'aria-valuenow'), (v) => v === '4', 'four leases after a close');
    assert.equal(await guarded.getAttribute('data-level'), 'warn');
    await open.click();
    await eventually(attr(answer, 'data-ok'), (v) => v === 'true', 'the reopened connection accepted');
    assert.match(await answer.innerText(), /accepted connection #7/);
    assert.equal(await guarded.getAttribute('aria-valuenow'), '5');

    // Kill one (no close): still held, so a new connection is refused...
    await page.getByRole('button', { name: 'Kill on alice #3' }).click();
    await page.locator('[data-key="alice#3"][data-state="killed"]').waitFor();
    await open.click();
    await eventually(text(answer), (t) => /#8 refused/.test(t), 'a refusal while the killed lease is held');
    assert.equal(await guarded.getAttribute('aria-valuenow'), '5');

    // ...until the simulated clock passes its TTL; open connections keep theirs by heartbeat.
    await page.getByRole('button', { name: '+10 s' }).click();
    assert.equal(await page.locator('#sim-clock').innerText(), '0:10');
    assert.equal(await guarded.getAttribute('aria-valuenow'), '5');
    await page.getByRole('button', { name: '+1 TTL' }).click();
    await eventually(attr(guarded, 'aria-valuenow'), (v) => v === '4', 'the killed lease reclaimed');
    assert.equal(await page.locator('#sim-clock').innerText(), '1:10');
    assert.equal(await page.locator('[data-key="alice#3"]').count(), 0);
    assert.equal(await page.locator('[data-user="alice"] .conn[data-state="open"]').count(), 4);
    const expired = page.locator('#sim-log [data-host="guarded"][data-type="expired"]');
    assert.equal(await expired.count(), 1);
    assert.match(await expired.innerText(), /#3 lease expired .* killed connection/);
    await open.click();
    await eventually(text(answer), (t) => /accepted connection #9/.test(t), 'a new connection in the reclaimed slot');

    await page.screenshot({ path: screenshotPath('simulation-desktop.png'), fullPage: true });
    errors.assertClean();
  },
);

test('simulation: the leaky host reaches its limit and stays locked; the guarded host never does', TIMEOUT, async () => {
  const { page, errors } = await openPage();
  const open = page.getByRole('button', { name: 'Open a connection for alice' });
  for (let i = 0; i < 5; i++) await open.click();
  const leaky = inCard(page, 'alice', 'leaky', 'gauge');
  const guarded = inCard(page, 'alice', 'guarded', 'gauge');
  const leakyAnswer = inCard(page, 'alice', 'leaky', 'answer');
  const guardedAnswer = inCard(page, 'alice', 'guarded', 'answer');
  await eventually(attr(leaky, 'aria-valuenow'), (v) => v === '5', 'leaky at 5');
  await page.locator('[data-testid="leaky-locked"]').waitFor();

  // Three rounds of close-then-reopen, with time passing in between.
  for (const [round, n] of [
    [1, 1],
    [2, 2],
    [3, 4],
  ]) {
    await page.getByRole('button', { name: `Close on alice #${n}` }).click();
    await eventually(attr(guarded, 'aria-valuenow'), (v) => v === '4', `guarded freed a slot (round ${round})`);
    assert.equal(await leaky.getAttribute('aria-valuenow'), '5', 'the leaky counter never goes down');
    await open.click();
    await eventually(attr(guardedAnswer, 'data-ok'), (v) => v === 'true', `guarded accepts again (round ${round})`);
    assert.equal(await leakyAnswer.getAttribute('data-ok'), 'false');
    assert.match(await leakyAnswer.innerText(), /1011 "internal error"/);
    await page.getByRole('button', { name: '+1 TTL' }).click();
  }
  assert.equal(await inCard(page, 'alice', 'leaky', 'refusals').getAttribute('data-count'), '3');
  assert.equal(await inCard(page, 'alice', 'guarded', 'refusals').getAttribute('data-count'), '0');
  assert.equal(await page.locator('[data-testid="leaky-locked"]').count(), 1);
  assert.match(await leaky.locator('..').innerText(), /3 for sockets that are gone/);

  // The leaky host's "message per manager": on a fresh user, one socket and four messages lock it.
  await page.getByLabel('New user').fill('bob');
  await page.getByRole('button', { name: 'Add user' }).click();
  await page.getByRole('button', { name: 'Open a connection for bob' }).click();
  for (let i = 0; i < 5; i++) await page.getByRole('button', { name: 'Send message on bob #1' }).click();
  await eventually(attr(inCard(page, 'bob', 'leaky', 'gauge'), 'aria-valuenow'), (v) => v === '5', 'bob locked by messages');
  assert.match(await inCard(page, 'bob', 'leaky', 'answer').innerText(), /message on #1 failed/);
  assert.equal(await inCard(page, 'bob', 'guarded', 'gauge').getAttribute('aria-valuenow'), '1');
  assert.match(await inCard(page, 'bob', 'guarded', 'answer').innerText(), /same lease reused/);

  // The timeline's accessible name carries the numbers the chart draws.
  const chart = await page.locator('#sim-chart').getAttribute('aria-label');
  assert.match(chart ?? '', /leaky host, managers held: 10, guarded host, leases held: 6\..*leaky host refusals: 4, guarded host refusals: 0/);

  await page.screenshot({ path: screenshotPath('simulation-leaky-vs-guarded.png'), fullPage: true });
  errors.assertClean();
});

test('simulation: policy, limit and heartbeat switches apply to the running registry', TIMEOUT, async () => {
  const { page, errors } = await openPage();
  await page.getByLabel('Limit per user').fill('2');
  await page.getByLabel('At the limit').selectOption('evict-oldest');
  await page.getByRole('button', { name: 'Apply' }).click();
  await eventually(text(page.locator('#sim-status')), (t) => /Applied: limit 2/.test(t), 'settings applied');
  const open = page.getByRole('button', { name: 'Open a connection for alice' });
  for (let i = 0; i < 3; i++) await open.click();
  const guarded = inCard(page, 'alice', 'guarded', 'gauge');
  await eventually(attr(guarded, 'aria-valuemax'), (v) => v === '2', 'limit 2');
  assert.equal(await guarded.getAttribute('aria-valuenow'), '2');
  assert.equal(await page.locator('[data-key="alice#1"]').count(), 0, 'the oldest was evicted');
  assert.match(await page.locator('#sim-log [data-type="evicted"]').innerText(), /#1 evicted .*4008/);

  // Heartbeats off (by keyboard), time passes, one manual heartbeat renews only its lease.
  await page.getByLabel('open connections send heartbeats').focus();
  await page.keyboard.press('Space');
  assert.equal(await page.getByLabel('open connections send heartbeats').isChecked(), false);
  await page.getByRole('button', { name: '+10 s' }).click();
  await page.getByRole('button', { name: 'Heartbeat on alice #2' }).click();
  await eventually(text(page.locator('[data-key="alice#2"] .expires')), (t) => t === 'lease expires in 1:00', 'renewed lease');
  assert.equal(await page.locator('[data-key="alice#3"] .expires').innerText(), 'lease expires in 0:50');
  assert.match(await page.locator('#sim-log [data-type="heartbeat"]').innerText(), /#2 heartbeat: lease renewed/);
  await page.getByRole('button', { name: '+1 TTL' }).click();
  await eventually(attr(guarded, 'aria-valuenow'), (v) => v === '0', 'both leases expired without heartbeats');
  assert.equal(await page.locator('#sim-log [data-type="expired"]').count(), 2);

  // A request the page cannot carry out is explained, not thrown.
  await page.getByLabel('New user').fill('alice');
  await page.keyboard.press('Enter');
  await eventually(text(page.locator('#sim-status')), (t) => /alice is already there/.test(t), 'duplicate user explained');
  assert.equal(await page.locator('[data-user="alice"]').count(), 1);
  errors.assertClean();
});

test('live: connect, send, see the echo; the server counts the lease; disconnect returns it to 0', TIMEOUT, async () => {
  const user = 'live-alice';
  const { page, errors } = await openPage({ width: 1280, height: 900 }, '#live');
  await eventually(text(page.locator('#live-status')), (t) => /Connected to the demo server/.test(t), 'server detected');
  await page.getByLabel('User id').fill(user);
  await page.getByRole('button', { name: 'Connect', exact: true }).click();
  const socket = page.locator('[data-socket="1"]');
  await page.locator('[data-socket="1"][data-state="open"]').waitFor({ timeout: 10_000 });

  await page.getByLabel('Message for socket #1').fill('hello lease');
  await page.keyboard.press('Enter');
  const echo = socket.locator('[data-testid="echo"]');
  await eventually(text(echo), (t) => t.includes('hello lease'), 'the echo');

  // The server's own count (its /api/users view, polled by the page) matches.
  const serverGauge = page.locator('[data-testid="server-gauge"]');
  await eventually(attr(serverGauge, 'aria-valuenow'), (v) => v === '1', 'server view shows one lease');
  const viewed = await serverUser(user);
  assert.equal(viewed.active, 1);
  assert.equal(viewed.socketsOpen, 1);
  // The echo's lease id is the server's lease, and the page marks it as this socket's.
  const shownLease = await socket.locator('.id').getAttribute('title');
  assert.equal(shownLease, viewed.leases[0].id);
  await page.locator(`#live-server [data-lease="${viewed.leases[0].id}"]`).getByText('socket #1').waitFor();
  await eventually(text(page.locator('[data-metric="socket_lease_sockets_open"] dd')), (t) => t === '1', 'metrics show one open socket');

  await page.screenshot({ path: screenshotPath('live-connected.png'), fullPage: true });

  await page.getByRole('button', { name: 'Disconnect socket #1' }).click();
  await eventually(attr(serverGauge, 'aria-valuenow'), (v) => v === '0', 'server view back to 0');
  assert.equal((await serverUser(user)).active, 0);
  assert.equal(await page.locator('[data-socket]').count(), 0);
  assert.ok((await page.locator('#live-log [data-type="echo"]').count()) >= 1);
  errors.assertClean();
});

test('live: a refused upgrade is shown with its reason and retry time, matching the server\u2019s 429', TIMEOUT, async () => {
  const user = 'live-bob';
  const { page, errors } = await openPage({ width: 1280, height: 900 }, '#live');
  // Chromium logs the refused handshake itself; that one line is the point of this test.
  errors.allow(/WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/ws\?user=live-bob' failed: .*429/);
  await eventually(text(page.locator('#live-status')), (t) => /Connected to the demo server/.test(t), 'server detected');
  await page.getByLabel('User id').fill(user);
  const connect = page.getByRole('button', { name: 'Connect', exact: true });
  for (let i = 1; i <= SERVER_LIMIT; i++) {
    await connect.click();
    await page.locator(`[data-socket="${i}"][data-state="open"]`).waitFor({ timeout: 10_000 });
  }
  await connect.click();
  const refusal = page.locator('#live-refusal');
  await refusal.waitFor({ state: 'visible', timeout: 10_000 });
  // What the page shows is the server's own record of that refusal, exactly.
  const record = (await serverUser(user)).lastRefusal;
  assert.ok(record);
  assert.deepEqual([record.status, record.reason, record.limit, record.active], [429, 'user-limit', SERVER_LIMIT, SERVER_LIMIT]);
  assert.equal(await refusal.locator('[data-testid="refusal-reason"]').innerText(), record.reason);
  assert.equal(await refusal.locator('[data-testid="refusal-retry"]').innerText(), `Retry-After ${record.retryAfterS} s`);
  assert.match(await refusal.innerText(), /\(3 of 3 held\)/);
  assert.match(await refusal.innerText(), /HTTP 429 with Retry-After/);
  assert.ok(record.retryAfterS >= 1 && record.retryAfterS <= SERVER_TTL_MS / 1000, `retry ${record.retryAfterS} s within the TTL`);
  assert.match(
    await page.locator('#live-log [data-type="rejected"]').innerText(),
    new RegExp(`refused with HTTP 429 before the upgrade: user-limit \\(3 of 3 held\\), Retry-After ${record.retryAfterS} s`),
  );

  // The same request from Node sees what the browser could not: status, header and body,
  // and the server's record of that (newer) refusal says the same.
  const answer = await new Promise((resolve, reject) => {
    const ws = new WebSocket(`${server.url.replace('http', 'ws')}/ws?user=${user}`);
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, retryAfter: Number(res.headers['retry-after']), body: JSON.parse(body) }));
    });
    ws.on('open', () => reject(new Error('the server accepted a connection over the limit')));
    ws.on('error', () => {});
  });
  assert.equal(answer.status, 429);
  assert.deepEqual(answer.body, { reason: 'user-limit', limit: SERVER_LIMIT, active: SERVER_LIMIT });
  const newer = (await serverUser(user)).lastRefusal;
  assert.ok(newer && newer.seq > record.seq);
  assert.equal(answer.retryAfter, newer.retryAfterS);
  await eventually(
    text(page.locator('[data-metric="socket_lease_upgrades_total{status=\\"429\\"}"] dd')),
    (t) => Number(t) >= 2,
    'the 429s in the metrics table',
  );

  await page.screenshot({ path: screenshotPath('live-refused.png'), fullPage: true });

  for (let i = 1; i <= SERVER_LIMIT; i++) await page.getByRole('button', { name: `Disconnect socket #${i}` }).click();
  await eventually(attr(page.locator('[data-testid="server-gauge"]'), 'aria-valuenow'), (v) => v === '0', 'all released');
  assert.equal((await serverUser(user)).active, 0);
  errors.assertClean();
});

test('live: a refusal at the global limit shows the server\u2019s own reason, numbers and Retry-After, though the user holds nothing', TIMEOUT, async () => {
  const user = 'live-carol';
  const { page, errors } = await openPage({ width: 1280, height: 900 }, '#live');
  errors.allow(/WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/ws\?user=live-carol' failed: .*429/);
  await eventually(text(page.locator('#live-status')), (t) => /Connected to the demo server/.test(t), 'server detected');
  // Two other users, connected from Node, fill the global limit; live-carol holds nothing,
  // so nothing in her own view explains the refusal.
  const fillers = [];
  for (const u of ['filler-1', 'filler-1', 'filler-2', 'filler-2']) fillers.push(await openFromNode(u));
  await page.getByLabel('User id').fill(user);
  await page.getByRole('button', { name: 'Connect', exact: true }).click();
  const refusal = page.locator('#live-refusal');
  await refusal.waitFor({ state: 'visible', timeout: 10_000 });
  const viewed = await serverUser(user);
  assert.equal(viewed.active, 0);
  const record = viewed.lastRefusal;
  assert.ok(record);
  assert.deepEqual([record.status, record.reason, record.limit, record.active], [429, 'global-limit', SERVER_GLOBAL_LIMIT, SERVER_GLOBAL_LIMIT]);
  assert.equal(await refusal.locator('[data-testid="refusal-reason"]').innerText(), 'global-limit');
  assert.equal(await refusal.locator('[data-testid="refusal-held"]').innerText(), ` (${SERVER_GLOBAL_LIMIT} of ${SERVER_GLOBAL_LIMIT} held, all users)`);
  assert.equal(await refusal.locator('[data-testid="refusal-retry"]').innerText(), `Retry-After ${record.retryAfterS} s`);
  await page.screenshot({ path: screenshotPath('live-refused-global.png'), fullPage: true });

  await Promise.all(fillers.map((ws) => new Promise((resolve) => (ws.once('close', resolve), ws.close()))));
  for (const u of ['filler-1', 'filler-2'])
    await eventually(
      () => serverUser(u),
      (v) => v.active === 0,
      `${u} released`,
    );
  errors.assertClean();
});

test('phone width (375 px): nothing overflows sideways, controls stay labelled and usable', TIMEOUT, async () => {
  const { page, errors } = await openPage({ width: 375, height: 812 });
  // What a newcomer on a phone sees first: the plain-language header.
  await page.screenshot({ path: screenshotPath('simulation-375-first-screen.png') });
  const open = page.getByRole('button', { name: 'Open a connection for alice' });
  for (let i = 0; i < 5; i++) await open.click();
  await page.getByRole('button', { name: 'Kill on alice #2' }).click();
  await page.getByRole('button', { name: 'Send message on alice #1' }).click();
  await page.getByRole('button', { name: '+10 s' }).click();
  await eventually(attr(inCard(page, 'alice', 'guarded', 'gauge'), 'aria-valuenow'), (v) => v === '5', 'five leases');
  const widths = () => page.evaluate(() => ({ doc: document.documentElement.scrollWidth, body: document.body.scrollWidth }));
  assert.deepEqual(await widths(), { doc: 375, body: 375 });
  assert.deepEqual(await unlabelledControls(page), []);
  await page.screenshot({ path: screenshotPath('simulation-375.png'), fullPage: true });
  await page.locator('[data-user="alice"]').screenshot({ path: screenshotPath('simulation-375-user-card.png') });

  // Tabs by keyboard (arrow keys), then the live tab at the same width.
  await page.getByRole('tab', { name: /Simulation/ }).focus();
  await page.keyboard.press('ArrowRight');
  await eventually(attr(page.getByRole('tab', { name: /Live/ }), 'aria-selected'), (v) => v === 'true', 'live tab selected');
  assert.equal(await page.locator('#panel-sim').isHidden(), true);
  await eventually(text(page.locator('#live-status')), (t) => /Connected to the demo server/.test(t), 'server detected');
  await page.getByLabel('User id').fill('phone');
  await page.getByRole('button', { name: 'Connect', exact: true }).click();
  await page.locator('[data-socket="1"][data-state="open"]').waitFor({ timeout: 10_000 });
  await page.getByLabel('Message for socket #1').fill('hi from a phone');
  await page.getByRole('button', { name: 'Send on socket #1' }).click();
  await eventually(text(page.locator('[data-testid="echo"]')), (t) => t.includes('hi from a phone'), 'echo at phone width');
  await eventually(attr(page.locator('[data-testid="server-gauge"]'), 'aria-valuenow'), (v) => v === '1', 'server count');
  assert.deepEqual(await widths(), { doc: 375, body: 375 });
  assert.deepEqual(await unlabelledControls(page), []);
  await page.screenshot({ path: screenshotPath('live-375.png'), fullPage: true });
  await page.getByRole('button', { name: 'Disconnect socket #1' }).click();
  await eventually(attr(page.locator('[data-testid="server-gauge"]'), 'aria-valuenow'), (v) => v === '0', 'released');
  errors.assertClean();
});

test('live: switching the watched user while a poll is on its way never shows the old user\u2019s numbers under the new name', TIMEOUT, async () => {
  const held = await openFromNode('live-carl'); // one lease for live-carl, none for live-dana
  try {
    const { page, errors } = await openPage({ width: 1280, height: 900 }, '#live');
    await eventually(text(page.locator('#live-status')), (t) => /Connected to the demo server/.test(t), 'server detected');
    // Hold live-carl's answer until the user has been switched.
    /** @type {() => void} */
    let release = () => {};
    const gate = new Promise((resolve) => (release = () => resolve(undefined)));
    let held1 = false;
    await page.route('**/api/users/live-carl', async (route) => {
      held1 = true;
      await gate;
      await route.continue();
    });
    await page.getByLabel('User id').fill('live-carl');
    await page.getByLabel('User id').dispatchEvent('change');
    await eventually(
      async () => held1,
      (v) => v === true,
      'a poll for live-carl is on its way',
    );
    await page.getByLabel('User id').fill('live-dana');
    await page.getByLabel('User id').dispatchEvent('change');
    release();
    const gauge = page.locator('[data-testid="server-gauge"]');
    await eventually(text(page.locator('#live-server')), (t) => t.includes('open on the server for live-dana'), 'live-dana shown');
    // Several polls later, still live-dana's own numbers: no lease.
    for (let i = 0; i < 3; i++) {
      assert.equal(await gauge.getAttribute('aria-valuenow'), '0');
      assert.ok(!(await text(page.locator('#live-server'))()).includes('1 socket open'));
      await page.waitForTimeout(400);
    }
    errors.assertClean();
  } finally {
    held.close();
  }
});

test('live: a connect cancelled before it opens is reported as cancelled; a successful connect clears an earlier refusal', TIMEOUT, async () => {
  const user = 'live-erin';
  const { page, errors } = await openPage({ width: 1280, height: 900 }, '#live');
  errors.allow(/WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/ws\?user=live-erin' failed: .*429/);
  await eventually(text(page.locator('#live-status')), (t) => /Connected to the demo server/.test(t), 'server detected');
  await page.getByLabel('User id').fill(user);
  // Connect and Disconnect in one go: the socket never opens.
  await page.evaluate(() => {
    /** @type {HTMLButtonElement} */ (document.querySelector('#live-form button[type="submit"]')).click();
    /** @type {HTMLButtonElement | null} */ (document.querySelector('[aria-label="Disconnect socket #1"]'))?.click();
  });
  await eventually(text(page.locator('#live-status')), (t) => /Socket #1 (cancelled|open|closed)/.test(t), 'socket #1 settled');
  assert.equal(await page.locator('#live-refusal').isHidden(), true, 'no refusal or failure shown for a cancelled connect');
  await eventually(
    async () => (await serverUser(user)).active,
    (n) => n === 0,
    'no lease left',
  );

  // Fill the limit from Node, get refused on the page, free a slot, connect: the alert goes.
  const others = [];
  for (let i = 0; i < SERVER_LIMIT; i++) others.push(await openFromNode(user));
  await page.getByRole('button', { name: 'Connect', exact: true }).click();
  await eventually(text(page.locator('[data-testid="refusal-reason"]')), (t) => t === 'user-limit', 'the refusal is shown');
  others.pop()?.close();
  await eventually(
    async () => (await serverUser(user)).active,
    (n) => n === SERVER_LIMIT - 1,
    'a slot is free',
  );
  await page.getByRole('button', { name: 'Connect', exact: true }).click();
  await page.locator('[data-state="open"]').first().waitFor({ timeout: 10_000 });
  assert.equal(await page.locator('#live-refusal').isHidden(), true, 'the old refusal is gone');
  for (const ws of others) ws.close();
  errors.assertClean();
});

test(
  'live: when the demo server stops answering, the page says so, keeps the last numbers, retries less and less often, and picks up when it is back',
  TIMEOUT,
  async () => {
    const user = 'live-fay';
    // A server of its own, stopped and started again on the same port.
    let own = await startServer(SERVER_ENV);
    const port = new URL(own.url).port;
    /** @type {WebSocket | null} */
    let held = null;
    try {
      const { page, errors } = await openPage(undefined, '#live', own.url);
      const status = text(page.locator('#live-status'));
      await eventually(status, (t) => /Connected to the demo server/.test(t), 'server detected');
      held = await openFromNode(user, own.url);
      await page.getByLabel('User id').fill(user);
      await page.getByLabel('User id').dispatchEvent('change');
      const gauge = page.locator('[data-testid="server-gauge"]');
      await eventually(attr(gauge, 'aria-valuenow'), (v) => v === '1', 'the held lease is shown');

      /** @type {number[]} when each poll of /metrics failed (this process's clock) */
      const failedPolls = [];
      page.on('requestfailed', (req) => {
        if (new URL(req.url()).pathname === '/metrics') failedPolls.push(Date.now());
      });
      await own.stop();
      await eventually(status, (t) => /is not answering/.test(t) && /Retrying in 2 s/.test(t), 'the outage is reported');
      await eventually(status, (t) => /Retrying in 8 s/.test(t), 'the retries back off', 30_000);
      // The last answer stays, labelled: no zeros the server never said.
      assert.equal(await gauge.getAttribute('aria-valuenow'), '1');
      assert.match((await page.locator('#live-chart').getAttribute('aria-label')) ?? '', /leases held by the watched user: 1,/);
      assert.match(await text(page.locator('#live-updated'))(), /^no answer since /);
      assert.equal(await page.getByRole('button', { name: 'Connect', exact: true }).isDisabled(), true, 'no connect while the server is gone');
      // Each failed poll waited at least the delay it announced (2 s, then 4 s), not the
      // 1 s of a page that does not back off. Timers only fire late, never early; the
      // slack is for the event times, taken in this process rather than in the page.
      assert.ok(failedPolls.length >= 3, `${failedPolls.length} failed polls`);
      assert.ok(failedPolls[1] - failedPolls[0] >= 1_500, `second retry ${failedPolls[1] - failedPolls[0]} ms after the first`);
      assert.ok(failedPolls[2] - failedPolls[1] >= 3_000, `third retry ${failedPolls[2] - failedPolls[1]} ms after the second`);

      own = await startServer({ ...SERVER_ENV, PORT: port });
      await eventually(status, (t) => /Connected to the demo server/.test(t), 'polling picks up again', 30_000);
      // The restarted server holds nothing for the user: its own numbers, not the old ones.
      await eventually(attr(gauge, 'aria-valuenow'), (v) => v === '0', 'the new server’s numbers are shown');
      assert.match(await text(page.locator('#live-updated'))(), /^updated /);
      assert.equal(await page.getByRole('button', { name: 'Connect', exact: true }).isDisabled(), false);
      assert.equal(await page.locator('#live-log [data-type="unreachable"]').count(), 1, 'the outage is in the event log once');
      assert.equal(await page.locator('#live-log [data-type="reachable"]').count(), 1);
      // What went wrong meanwhile is only the polls that could not reach the server (one
      // on its way when it stopped ends with a reset or an empty response, later ones are
      // refused).
      for (const problem of errors.problems) {
        assert.match(
          problem,
          /^(request failed: http:\/\/127\.0\.0\.1:\d+\/(metrics|api\/users\/live-fay) |console error: Failed to load resource: net::ERR_[A-Z_]+$)/,
        );
      }
      assert.ok(errors.problems.length > 0, 'the outage was seen by the page');
    } finally {
      held?.terminate();
      await own.stop();
    }
  },
);

test('simulation: users whose names differ only in punctuation get their own cards and accessible names', TIMEOUT, async () => {
  const { page, errors } = await openPage();
  for (const name of ['a b', 'a_b', 'a.b']) {
    await page.getByLabel('New user').fill(name);
    await page.getByRole('button', { name: 'Add user' }).click();
  }
  for (const name of ['a b', 'a_b', 'a.b']) {
    assert.equal(await page.getByRole('article', { name, exact: true }).count(), 1, `one card named ${name}`);
  }
  const ids = await page.evaluate(() => Array.from(document.querySelectorAll('article.user h3')).map((el) => el.id));
  assert.equal(new Set(ids).size, ids.length, 'no two cards share an id');
  errors.assertClean();
});
