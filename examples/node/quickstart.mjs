// A Node quick start, runnable: `node examples/node/quickstart.mjs` (the README's is shorter).
import { LeaseRegistry } from 'socket-lease';

const registry = new LeaseRegistry({ perUserLimit: 2, ttlMs: 30_000 });

const first = registry.acquire('alice', { connectionKey: 'socket-1' });
const again = registry.acquire('alice', { connectionKey: 'socket-1' }); // same socket, same lease
const second = registry.acquire('alice', { connectionKey: 'socket-2' });
const third = registry.acquire('alice', { connectionKey: 'socket-3' });

if (!first.ok || !again.ok || !second.ok || third.ok) throw new Error('unexpected quota decision');
console.log('lease ids share one suffix:', first.lease.id, first.lease.runId, first.lease.threadId);
console.log('same connection key, same lease:', again.lease.id === first.lease.id);
console.log('third socket refused:', third.reason, `retry in ${Math.ceil(third.retryAfterMs / 1000)} s`);

registry.release(first.lease.threadId); // any derived id releases the lease
console.log('released twice is fine:', registry.release(first.lease.id) === false);
console.log('active now:', registry.stats().active);
