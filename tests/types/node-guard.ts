// Compiled by `tsc --noEmit`: proves `socket-lease/node`'s declarations describe the guard
// as docs/node.md uses it. Never executed.
import http from 'node:http';
import { CloseCodes, createEventLogger, createLeaseGuard, type LeaseGuard } from 'socket-lease/node';
import type { GuardStats, LeaseStore } from 'socket-lease/node';
import { LeaseRegistry } from 'socket-lease';

const server = http.createServer();
const guard: LeaseGuard = createLeaseGuard({
  userId: (req) => req.headers['x-user-id'] as string | undefined,
  registry: { perUserLimit: 5, ttlMs: 90_000, onLimit: 'evict-oldest' },
  heartbeatMs: 30_000,
  logger: console,
  logLevel: 'warn',
});
const detach: () => void = guard.attach(server, { path: '/ws' });
guard.wss.on('connection', (ws) => {
  const leaseId: string | undefined = guard.leaseIdOf(ws);
  const threadId: string | undefined = guard.leaseOf(ws)?.threadId;
  const user: string | undefined = guard.userIdOf(ws);
  void [threadId, user];
  ws.on('message', (data) => ws.send(JSON.stringify({ data: data.toString(), leaseId })));
});
const evicted: 4008 = CloseCodes.EVICTED;
const stats: GuardStats = guard.stats();
const open: number = stats.socketsOpen + stats.upgrades[429];
const text: Promise<string> = guard.metrics();
const done: Promise<void> = guard.close();

// A host-owned registry, its events logged by the same JSON-line logger, as a store.
const registry = new LeaseRegistry({ onEvent: createEventLogger({ logger: console, level: 'info' }) });
const store: LeaseStore = registry;
// An asynchronous store fits the same contract.
const asyncStore: LeaseStore = {
  acquire: async (userId, o) => registry.acquire(userId, o),
  release: async (id) => registry.release(id),
  touch: async (id) => registry.touch(id),
  sweep: async () => registry.sweep(),
};
const other = createLeaseGuard({ userId: async () => 'alice', store: asyncStore });
void [detach, evicted, open, text, done, store, other];
