// Loads the core under Deno through `socket-lease` (its node condition: js/node.cjs, which reads the .wasm with fs) and uses it: tests/js/deno/adapter.test.mjs runs this
// with and without --allow-read. A static import: Deno checks dynamic imports against
// --allow-read, static ones not. Prints one JSON line.
import { LeaseRegistry } from 'socket-lease';

try {
  const registry = new LeaseRegistry({ perUserLimit: 1 });
  const first = registry.acquire('alice');
  const second = registry.acquire('alice');
  console.log(JSON.stringify({ ok: true, first: first.ok, second: second.ok, id: first.ok ? first.lease.id : null }));
} catch (err) {
  console.log(JSON.stringify({ ok: false, name: /** @type {any} */ (err)?.name, message: String(/** @type {any} */ (err)?.message).split('\n')[0] }));
}
