// Loads the core under Deno through `socket-lease` itself (its `deno` condition:
// js/deno/core.mjs) and uses it: tests/js/deno/adapter.test.mjs runs this without
// --allow-read. Also whether its classes are socket-lease/deno's (one instance, so a
// LeaseError from the adapter is `instanceof` the LeaseError an application imports).
// Static imports: Deno checks dynamic imports against --allow-read, static ones not.
// Prints one JSON line.
import { LeaseError, LeaseRegistry } from 'socket-lease';
import * as deno from 'socket-lease/deno';

try {
  const registry = new LeaseRegistry({ perUserLimit: 1 });
  const first = registry.acquire('alice');
  const second = registry.acquire('alice');
  let adapterError = null;
  try {
    deno.createDenoLease(/** @type {any} */ ({}));
  } catch (err) {
    adapterError = err;
  }
  console.log(
    JSON.stringify({
      ok: true,
      first: first.ok,
      second: second.ok,
      id: first.ok ? first.lease.id : null,
      sameRegistry: LeaseRegistry === deno.LeaseRegistry,
      sameError: LeaseError === deno.LeaseError,
      adapterErrorIsLeaseError: adapterError instanceof LeaseError,
      code: /** @type {any} */ (adapterError)?.code,
    }),
  );
} catch (err) {
  console.log(JSON.stringify({ ok: false, name: /** @type {any} */ (err)?.name, message: String(/** @type {any} */ (err)?.message).split('\n')[0] }));
}
