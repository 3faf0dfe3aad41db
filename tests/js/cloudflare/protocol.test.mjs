// The Cloudflare adapter's protocol comes from js/lifecycle/protocol.mjs (every host's),
// and the Worker's checks that need no Durable Object: run in Node, with a stand-in
// namespace that records whether the Worker called an object at all. (The same paths in
// workerd: hardening.test.mjs.)
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CLOSE_REASONS, CloseCodes, DEFAULT_MAX_PAYLOAD } from '../../../js/lifecycle/protocol.mjs';
import * as cf from '../../../js/cloudflare/protocol.mjs';
import { ConfigError, readConfig } from '../../../js/cloudflare/config.mjs';
import { createSocketLeaseWorker, handleSocketLease } from '../../../js/cloudflare/worker.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

describe("cloudflare: close codes and reasons are every host's", () => {
  test("the exported codes are js/lifecycle's", () => {
    assert.equal(cf.CLOSE_EVICTED, CloseCodes.EVICTED);
    assert.equal(cf.CLOSE_LEASE_EXPIRED, CloseCodes.LEASE_EXPIRED);
    assert.equal(cf.CLOSE_MESSAGE_TOO_BIG, CloseCodes.MESSAGE_TOO_BIG);
    assert.equal(cf.CLOSE_REASONS, CLOSE_REASONS, 'the same object, not a copy');
    assert.equal(cf.DEFAULT_MAX_PAYLOAD, DEFAULT_MAX_PAYLOAD);
  });

  test('no file of the adapter spells a close code or reason itself', async () => {
    // Every module of the adapter (the Durable Object is split over several).
    const files = (await readdir(path.join(ROOT, 'js/cloudflare'))).filter((f) => f.endsWith('.mjs'));
    assert.ok(files.includes('object.mjs') && files.includes('sockets.mjs'), files.join(', '));
    for (const file of files) {
      const source = await readFile(path.join(ROOT, 'js/cloudflare', file), 'utf8');
      for (const reason of Object.values(CLOSE_REASONS)) {
        assert.ok(!source.includes(reason), `js/cloudflare/${file} holds a copy of "${reason}"; use CLOSE_REASONS`);
      }
      // Code only: comments may name a code to explain it.
      const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
      for (const value of Object.values(CloseCodes)) {
        assert.doesNotMatch(code, new RegExp(`\\b${value}\\b`), `js/cloudflare/${file} spells ${value}; use CloseCodes`);
      }
    }
  });
});

describe('cloudflare: settings', () => {
  test("SOCKET_LEASE_MAX_PAYLOAD: default 64 KiB, up to workerd's 32 MiB", () => {
    assert.equal(readConfig({}).maxPayload, DEFAULT_MAX_PAYLOAD);
    assert.equal(readConfig({ SOCKET_LEASE_MAX_PAYLOAD: ' 1024 ' }).maxPayload, 1024);
    assert.equal(readConfig({ SOCKET_LEASE_MAX_PAYLOAD: 33554432 }).maxPayload, 32 * 1024 * 1024);
    for (const bad of ['0', '33554433', '1e3', '-1', '64k']) {
      assert.throws(
        () => readConfig({ SOCKET_LEASE_MAX_PAYLOAD: bad }),
        (e) => e instanceof ConfigError && /SOCKET_LEASE_MAX_PAYLOAD/.test(e.message),
        bad,
      );
    }
  });

  test('SOCKET_LEASE_ALLOWED_ORIGINS: a comma-separated list; empty is unset; a bad entry is a ConfigError', () => {
    assert.equal(readConfig({}).allowedOrigins, undefined);
    assert.equal(readConfig({ SOCKET_LEASE_ALLOWED_ORIGINS: ' , ' }).allowedOrigins, undefined);
    assert.deepEqual(readConfig({ SOCKET_LEASE_ALLOWED_ORIGINS: 'https://a.example, http://b.example:8080' }).allowedOrigins, [
      'https://a.example',
      'http://b.example:8080',
    ]);
    for (const bad of ['a.example', 'https://a.example/path', 'https://user@a.example', 'https://a.example?x']) {
      assert.throws(
        () => readConfig({ SOCKET_LEASE_ALLOWED_ORIGINS: bad }),
        (e) => e instanceof ConfigError && e.message.startsWith('SOCKET_LEASE_ALLOWED_ORIGINS: ') && e.message.includes(bad),
        bad,
      );
    }
  });

  test('bad options fail createSocketLeaseWorker at start with a TypeError naming them', () => {
    const userId = () => 'u';
    for (const [options, message] of /** @type {Array<[Record<string, unknown>, RegExp]>} */ ([
      [{ allowedOrigins: 'https://a.example' }, /allowedOrigins must be an array/],
      [{ allowedOrigins: ['https://a.example/path'] }, /is not an origin/],
      [{ allowedOrigins: [42] }, /every entry must be a string/],
      [{ maxPayload: 0 }, /maxPayload must be an integer from 1 to 33554432/],
      [{ maxPayload: 1.5 }, /maxPayload/],
      [{ maxPayload: 32 * 1024 * 1024 + 1 }, /maxPayload/],
      [{ maxPayload: '1024' }, /maxPayload/],
    ])) {
      assert.throws(
        () => createSocketLeaseWorker(/** @type {any} */ ({ userId, ...options })),
        (e) => e instanceof TypeError && message.test(e.message),
        JSON.stringify(options),
      );
    }
    createSocketLeaseWorker({ userId, allowedOrigins: ['https://a.example', 'null'], maxPayload: 1 });
    createSocketLeaseWorker({ userId, allowedOrigins: () => true, maxPayload: 32 * 1024 * 1024 });
  });
});

/**
 * A namespace standing in for the Durable Object binding: records each call of an
 * object, and answers 200 with the headers it was sent.
 */
function fakeNamespace() {
  /** @type {Array<{ name: string, url: string, headers: Headers }>} */
  const calls = [];
  return {
    calls,
    idFromName: (/** @type {string} */ name) => ({ name }),
    get: (/** @type {{ name: string }} */ id) => ({
      fetch: async (/** @type {string} */ url, /** @type {RequestInit} */ init) => {
        calls.push({ name: id.name, url, headers: new Headers(init.headers) });
        return new Response('routed');
      },
    }),
  };
}

/**
 * An upgrade request to /ws.
 * @param {Record<string, string>} [headers]
 */
function upgrade(headers = {}) {
  return new Request('https://host.example/ws', { headers: { upgrade: 'websocket', ...headers } });
}

describe('cloudflare: the Worker refuses a foreign Origin before routing', () => {
  test('403 { reason: "origin-not-allowed" } without calling userId() or any object; listed and absent Origins are routed', async () => {
    const ns = fakeNamespace();
    let identities = 0;
    const options = {
      userId: () => {
        identities++;
        return 'ann';
      },
      allowedOrigins: ['https://app.example'],
    };
    const env = { SOCKET_LEASE: ns };
    const refused = await handleSocketLease(upgrade({ origin: 'https://evil.example' }), env, options);
    assert.ok(refused);
    assert.equal(refused.status, 403);
    assert.deepEqual(await refused.json(), { reason: 'origin-not-allowed', error: 'this Origin may not open sockets here', code: 'ORIGIN_NOT_ALLOWED' });
    assert.equal(refused.headers.get('cache-control'), 'no-store');
    assert.equal(identities, 0, 'identity is not even looked at');
    assert.deepEqual(ns.calls, [], 'no Durable Object was called');
    // An origin differing only in port or scheme is another origin; "null" is not listed.
    for (const origin of ['https://app.example:8443', 'http://app.example', 'null']) {
      assert.equal((await handleSocketLease(upgrade({ origin }), env, options))?.status, 403, origin);
    }
    assert.deepEqual(ns.calls, []);

    for (const headers of [{ origin: 'https://app.example' }, {}]) {
      const res = await handleSocketLease(upgrade(headers), env, options);
      assert.equal(await res?.text(), 'routed', JSON.stringify(headers));
    }
    assert.equal(ns.calls.length, 2);
    assert.equal(identities, 2);
  });

  test('the function form decides (asynchronously), also for requests without Origin', async () => {
    const ns = fakeNamespace();
    /** @type {Array<string | null>} */
    const seen = [];
    const options = {
      userId: () => 'ann',
      allowedOrigins: async (/** @type {string | null} */ origin, /** @type {Request} */ request) => {
        seen.push(origin);
        assert.ok(request instanceof Request);
        return origin === 'https://app.example';
      },
    };
    const env = { SOCKET_LEASE: ns };
    assert.equal((await handleSocketLease(upgrade({ origin: 'https://evil.example' }), env, options))?.status, 403);
    assert.equal((await handleSocketLease(upgrade(), env, options))?.status, 403, 'this function refuses no Origin');
    assert.equal(await (await handleSocketLease(upgrade({ origin: 'https://app.example' }), env, options))?.text(), 'routed');
    assert.deepEqual(seen, ['https://evil.example', null, 'https://app.example']);
    assert.equal(ns.calls.length, 1);
  });

  test('SOCKET_LEASE_ALLOWED_ORIGINS applies, and with the option both must pass', async () => {
    const ns = fakeNamespace();
    const env = { SOCKET_LEASE: ns, SOCKET_LEASE_ALLOWED_ORIGINS: 'https://app.example,https://admin.example' };
    const bare = { userId: () => 'ann' };
    assert.equal((await handleSocketLease(upgrade({ origin: 'https://evil.example' }), env, bare))?.status, 403);
    assert.equal(await (await handleSocketLease(upgrade({ origin: 'https://admin.example' }), env, bare))?.text(), 'routed');
    const both = { userId: () => 'ann', allowedOrigins: ['https://app.example'] };
    assert.equal((await handleSocketLease(upgrade({ origin: 'https://admin.example' }), env, both))?.status, 403, 'the option does not list it');
    assert.equal(await (await handleSocketLease(upgrade({ origin: 'https://app.example' }), env, both))?.text(), 'routed');
    assert.equal(ns.calls.length, 2);
  });

  test('an allowedOrigins function that throws -> 500 INTERNAL_ERROR, nothing routed', async (t) => {
    t.mock.method(console, 'error', () => {});
    const ns = fakeNamespace();
    const options = {
      userId: () => 'ann',
      allowedOrigins: () => {
        throw new Error('boom');
      },
    };
    const res = await handleSocketLease(upgrade({ origin: 'https://app.example' }), { SOCKET_LEASE: ns }, options);
    assert.equal(res?.status, 500);
    assert.deepEqual(await res?.json(), { reason: 'internal-error', error: 'allowedOrigins(origin, request) threw', code: 'INTERNAL_ERROR' });
    assert.deepEqual(ns.calls, []);
  });
});

describe('cloudflare: the Worker hands the object its maxPayload', () => {
  test("the option, else SOCKET_LEASE_MAX_PAYLOAD, else the default; never the client's header", async () => {
    const forged = { 'x-socket-lease-max-payload': '33554432' };
    /** @type {Array<[Record<string, unknown>, Record<string, unknown>, string]>} */
    const cases = [
      [{}, {}, String(DEFAULT_MAX_PAYLOAD)],
      [{}, { SOCKET_LEASE_MAX_PAYLOAD: '2048' }, '2048'],
      [{ maxPayload: 100 }, { SOCKET_LEASE_MAX_PAYLOAD: '2048' }, '100'],
    ];
    for (const [options, vars, expected] of cases) {
      const ns = fakeNamespace();
      await handleSocketLease(upgrade(forged), { SOCKET_LEASE: ns, ...vars }, { userId: () => 'ann', ...options });
      assert.equal(ns.calls.length, 1);
      assert.equal(ns.calls[0].headers.get(cf.MAX_PAYLOAD_HEADER), expected, JSON.stringify([options, vars]));
    }
  });
});

describe('cloudflare: the Worker refuses the user ids the core refuses, before routing', () => {
  test("at the core's own bound (LeaseRegistry.coreLimits()), in bytes of UTF-8, and lone surrogates", async (t) => {
    // The Worker's modules load here without the .wasm, so it keeps the bound as a
    // number; this holds that number to the core's.
    const { LeaseRegistry } = await import('socket-lease');
    const { maxUserIdBytes } = LeaseRegistry.coreLimits();
    const core = new LeaseRegistry({ perUserLimit: 100 });
    t.after(() => core.free());
    const ns = fakeNamespace();
    const env = { SOCKET_LEASE: ns };
    const ids = [
      'x'.repeat(maxUserIdBytes),
      'x'.repeat(maxUserIdBytes + 1),
      'é'.repeat(maxUserIdBytes / 2),
      `${'é'.repeat(maxUserIdBytes / 2)}x`,
      '😀'.repeat(maxUserIdBytes / 4),
      `${'😀'.repeat(maxUserIdBytes / 4)}x`,
      'a\ud800b',
    ];
    for (const id of ids) {
      let coreRefuses = false;
      try {
        core.acquire(id);
      } catch {
        coreRefuses = true;
      }
      const before = ns.calls.length;
      const res = await handleSocketLease(upgrade(), env, { userId: () => id });
      const what = `${id.length} units`;
      if (coreRefuses) {
        assert.equal(res?.status, 400, what);
        assert.equal((await /** @type {Response} */ (res).json()).code, 'INVALID_USER_ID', what);
        assert.equal(ns.calls.length, before, `${what}: no object called`);
      } else {
        assert.equal(await res?.text(), 'routed', what);
      }
    }
  });
});
