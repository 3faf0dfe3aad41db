// The live tab against the Socket.IO demo (`npm run start:socketio`,
// examples/socketio/server.mjs): the same page and HTTP routes, but the sockets speak
// Socket.IO on /socket.io/. The page learns that from /healthz (`transport`), loads the
// client the server serves, and shows echoes, connect_error refusals and the guard's
// close codes as it does for the WebSocket hosts. Every test fails on a console error, an
// uncaught page error, a failed request or an HTTP error response (harness.mjs).
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, launchBrowser, screenshotPath, startServer, watchErrors } from './harness.mjs';

const SOCKETIO_SERVER = 'examples/socketio/server.mjs';
// Limit 1: the second connection of a user is refused (reject) or evicts the first.
const SERVER_ENV = {
  SOCKET_LEASE_LIMIT: '1',
  // Long TTL, pings well inside it: no lease expires or is renewed into another retry
  // time while a test compares them.
  SOCKET_LEASE_TTL_MS: '600000',
  SOCKET_LEASE_HEARTBEAT_MS: '60000',
};
const TIMEOUT = { timeout: 120_000 };

/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
/** @type {import('playwright-core').Browser} */
let browser;
/** @type {import('playwright-core').BrowserContext[]} */
const contexts = [];

before(async () => {
  server = await startServer(SERVER_ENV, SOCKETIO_SERVER);
  browser = await launchBrowser();
});

afterEach(async () => {
  await Promise.all(contexts.splice(0).map((c) => c.close()));
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/**
 * The live tab on a Socket.IO demo, with its error watcher and every WebSocket the page
 * opens, once the page says it found the server.
 * @param {string} base the demo server's URL
 */
async function openLive(base) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  contexts.push(context);
  const page = await context.newPage();
  const errors = watchErrors(page);
  /** @type {string[]} */
  const websockets = [];
  page.on('websocket', (ws) => websockets.push(ws.url()));
  await page.goto(`${base}/#live`);
  await page.locator('html[data-ready="true"]').waitFor({ timeout: 15_000 });
  await eventually(text(page.locator('#live-status')), (t) => /Connected to the demo server .*\(Socket\.IO\)/.test(t), 'Socket.IO server detected');
  return { page, errors, websockets };
}

/** @param {import('playwright-core').Locator} locator @param {string} name */
const attr = (locator, name) => () => locator.getAttribute(name);
/** @param {import('playwright-core').Locator} locator */
const text = (locator) => () => locator.innerText();

/**
 * @param {string} base
 * @param {string} userId
 */
async function serverUser(base, userId) {
  const res = await fetch(`${base}/api/users/${encodeURIComponent(userId)}`);
  assert.equal(res.status, 200);
  return /** @type {Promise<{ active: number, limit: number, socketsOpen: number, leases: { id: string }[], lastRefusal: any }>} */ (res.json());
}

/** @param {import('playwright-core').Page} page @param {string} user */
async function connectAs(page, user) {
  await page.getByLabel('User id').fill(user);
  await page.getByRole('button', { name: 'Connect', exact: true }).click();
}

test('socket.io: /healthz says which transport the host speaks, and the server serves its browser client', async () => {
  const health = await (await fetch(`${server.url}/healthz`)).json();
  assert.equal(health.transport, 'socket.io');
  const client = await fetch(`${server.url}/socket.io/socket.io.esm.min.js`);
  assert.equal(client.status, 200);
  assert.match(await client.text(), /export\{.* as io[,}]/);
});

test('socket.io live: connect, send, see the echo naming the server\u2019s lease; disconnect returns it to 0', TIMEOUT, async () => {
  const user = 'sio-alice';
  const { page, errors, websockets } = await openLive(server.url);
  await connectAs(page, user);
  const socket = page.locator('[data-socket="1"]');
  await page.locator('[data-socket="1"][data-state="open"]').waitFor({ timeout: 10_000 });
  // Socket.IO's own transport on /socket.io/, with the user in auth (not in the URL).
  assert.equal(websockets.length, 1);
  assert.match(websockets[0], /^ws:\/\/127\.0\.0\.1:\d+\/socket\.io\/\?EIO=4&transport=websocket$/);

  await page.getByLabel('Message for socket #1').fill('hello socket.io');
  await page.keyboard.press('Enter');
  await eventually(text(socket.locator('[data-testid="echo"]')), (t) => t.includes('hello socket.io'), 'the echo');

  const serverGauge = page.locator('[data-testid="server-gauge"]');
  await eventually(attr(serverGauge, 'aria-valuenow'), (v) => v === '1', 'server view shows one lease');
  const viewed = await serverUser(server.url, user);
  assert.equal(viewed.active, 1);
  assert.equal(viewed.socketsOpen, 1);
  assert.equal(await socket.locator('.id').getAttribute('title'), viewed.leases[0].id, 'the echo names the server\u2019s lease');
  await page.locator(`#live-server [data-lease="${viewed.leases[0].id}"]`).getByText('socket #1').waitFor();
  await page.screenshot({ path: screenshotPath('live-socketio-connected.png'), fullPage: true });

  await page.getByRole('button', { name: 'Disconnect socket #1' }).click();
  await eventually(attr(serverGauge, 'aria-valuenow'), (v) => v === '0', 'server view back to 0');
  assert.equal((await serverUser(server.url, user)).active, 0);
  assert.equal(await page.locator('[data-socket]').count(), 0);
  assert.match(await page.locator('#live-log [data-type="closed"]').first().innerText(), /socket #1 closed: closed by this page/);
  errors.assertClean();
});

test(
  'socket.io live: over the limit, the connect_error is shown with the server\u2019s reason, numbers and retry time, and the client does not retry by itself',
  TIMEOUT,
  async () => {
    const user = 'sio-bob';
    const { page, errors, websockets } = await openLive(server.url);
    await connectAs(page, user);
    await page.locator('[data-socket="1"][data-state="open"]').waitFor({ timeout: 10_000 });
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    const refusal = page.locator('#live-refusal');
    await refusal.waitFor({ state: 'visible', timeout: 10_000 });

    // The guard's record of the same refusal (its connect_error data carried the same ms).
    const record = (await serverUser(server.url, user)).lastRefusal;
    assert.ok(record);
    assert.deepEqual([record.status, record.reason, record.limit, record.active], [429, 'user-limit', 1, 1]);
    assert.equal(await refusal.locator('[data-testid="refusal-reason"]').innerText(), 'user-limit');
    assert.equal(await refusal.locator('[data-testid="refusal-held"]').innerText(), ' (1 of 1 held)');
    assert.equal(await refusal.locator('[data-testid="refusal-retry"]').innerText(), `retry after ${record.retryAfterS} s`);
    assert.match(await refusal.innerText(), /Refused \(connect_error, status 429\)/);
    assert.match(
      await page.locator('#live-log [data-type="rejected"]').innerText(),
      new RegExp(`Socket #2 for ${user} refused with connect_error \\(status 429\\): user-limit \\(1 of 1 held\\), retry after ${record.retryAfterS} s`),
    );
    assert.equal(await page.locator('[data-socket="2"]').count(), 0, 'the refused socket is gone from the list');
    await page.screenshot({ path: screenshotPath('live-socketio-refused.png'), fullPage: true });

    // No reconnect loop: several polls later (the page polls once a second), still the one
    // refusal on the server and the two connections the page asked for.
    const refusedTotal = async () => {
      const m = await (await fetch(`${server.url}/metrics`)).text();
      return Number(/^socket_lease_rejected_total\{reason="user-limit"\} (\d+)$/m.exec(m)?.[1] ?? 0);
    };
    const before = await refusedTotal();
    const polls = { n: 0 };
    page.on('response', (res) => {
      if (new URL(res.url()).pathname === '/metrics') polls.n++;
    });
    await eventually(
      async () => polls.n,
      (n) => n >= 3,
      'three more polls',
    );
    assert.equal(await refusedTotal(), before, 'no refused connection tried again by itself');
    assert.equal((await serverUser(server.url, user)).lastRefusal.seq, record.seq);
    assert.equal(websockets.length, 2);

    await page.getByRole('button', { name: 'Disconnect socket #1' }).click();
    await eventually(
      async () => (await serverUser(server.url, user)).active,
      (n) => n === 0,
      'released',
    );
    // A slot is free: connecting again works, and the old refusal goes.
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await page.locator('[data-socket="3"][data-state="open"]').waitFor({ timeout: 10_000 });
    assert.equal(await refusal.isHidden(), true, 'the old refusal is gone');
    await page.getByRole('button', { name: 'Disconnect socket #3' }).click();
    await eventually(
      async () => (await serverUser(server.url, user)).active,
      (n) => n === 0,
      'released again',
    );
    errors.assertClean();
  },
);

test('socket.io live, evict-oldest: a newer connection evicts the older one, shown closed with 4008', TIMEOUT, async () => {
  const user = 'sio-carol';
  const own = await startServer({ ...SERVER_ENV, SOCKET_LEASE_POLICY: 'evict-oldest' }, SOCKETIO_SERVER);
  try {
    const { page, errors, websockets } = await openLive(own.url);
    await connectAs(page, user);
    await page.locator('[data-socket="1"][data-state="open"]').waitFor({ timeout: 10_000 });
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await page.locator('[data-socket="2"][data-state="open"]').waitFor({ timeout: 10_000 });
    await eventually(
      () => page.locator('[data-socket="1"]').count(),
      (n) => n === 0,
      'socket #1 gone from the list',
    );
    const closed = page.locator('#live-log [data-type="closed"]');
    assert.equal(await closed.count(), 1);
    assert.match(await closed.innerText(), /socket #1 closed: evicted for a newer connection \(4008\)/);
    assert.equal(await page.locator('#live-refusal').isHidden(), true, 'an eviction is not a refusal');
    const viewed = await serverUser(own.url, user);
    assert.equal(viewed.active, 1);
    // The evicted socket stays closed: no reconnection by itself.
    const polls = { n: 0 };
    page.on('response', (res) => {
      if (new URL(res.url()).pathname === '/metrics') polls.n++;
    });
    await eventually(
      async () => polls.n,
      (n) => n >= 3,
      'three more polls',
    );
    assert.equal(websockets.length, 2);
    assert.equal(await page.locator('[data-socket]').count(), 1);
    await page.screenshot({ path: screenshotPath('live-socketio-evicted.png'), fullPage: true });

    await page.getByRole('button', { name: 'Disconnect socket #2' }).click();
    await eventually(
      async () => (await serverUser(own.url, user)).active,
      (n) => n === 0,
      'released',
    );
    errors.assertClean();
  } finally {
    await Promise.all(contexts.splice(0).map((c) => c.close()));
    await own.stop();
  }
});
