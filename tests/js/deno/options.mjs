// Misuse of socket-lease/deno under Deno: each case makes a host with bad options (or
// calls upgrade with a bad hook) and reports what was thrown, as one JSON line for
// tests/js/deno/adapter.test.mjs.
import { createDenoLease, LeaseError } from 'socket-lease/deno';

const userId = () => 'alice';
/** @type {Record<string, () => unknown>} */
const cases = {
  'unknown option': () => createDenoLease({ userId, heartbeatMS: 1000 }),
  'no userId': () => createDenoLease(/** @type {any} */ ({ registry: {} })),
  'store and registry': () => createDenoLease({ userId, registry: {}, store: /** @type {any} */ ({}) }),
  'maxPayload 0': () => createDenoLease({ userId, maxPayload: 0 }),
  'heartbeatMs not a number': () => createDenoLease({ userId, heartbeatMs: /** @type {any} */ ('30s') }),
  'bad registry option': () => createDenoLease({ userId, registry: { perUserLimit: -1 } }),
  'unknown hook': async () => {
    const lease = createDenoLease({ userId, logLevel: 'silent' });
    try {
      const req = new Request('http://127.0.0.1/ws', {
        headers: { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' },
      });
      return lease.upgrade(req, /** @type {any} */ ({ onmessage() {} }));
    } finally {
      await lease.close();
    }
  },
};
/** @type {Record<string, unknown>} */
const out = {};
for (const [name, run] of Object.entries(cases)) {
  try {
    await run();
    out[name] = { threw: false };
  } catch (err) {
    const e = /** @type {any} */ (err);
    out[name] = { threw: true, leaseError: e instanceof LeaseError, name: e?.name, code: e?.code, message: e?.message };
  }
}
console.log(JSON.stringify(out));
