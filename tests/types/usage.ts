// Compiled by `tsc --noEmit` in `npm test`: proves the generated types describe the API
// as documented. Never executed.
import { LeaseRegistry, LeaseError, newId, parseId, deriveId, sameLease } from 'socket-lease';
import type { AcquireResult, LeaseErrorCode, LeaseEvent, LeaseStats, ParsedId, Refusal } from 'socket-lease';

const events: LeaseEvent[] = [];
const registry = new LeaseRegistry({
  perUserLimit: 5,
  ttlMs: 30_000,
  onLimit: 'evict-oldest',
  onEvent: (e) => events.push(e),
});

const result: AcquireResult = registry.acquire('alice', { connectionKey: 'socket-1', now: Date.now() });
if (result.ok) {
  const id: string = result.lease.id;
  const thread: string = result.lease.threadId;
  const evicted: string[] = result.evicted;
  registry.touch(thread);
  const released: boolean = registry.release(id);
  void evicted;
  void released;
} else {
  const retry: number = result.retryAfterMs;
  const reason: 'user-limit' | 'global-limit' | 'user-table-full' = result.reason;
  void retry;
  void reason;
}

// Two-phase admission and what an acquire removed: the cheap checks first.
const phaseOne: AcquireResult = registry.acquire('alice', { evict: false });
if (!phaseOne.ok && phaseOne.evictable === true) {
  const phaseTwo: AcquireResult = registry.acquire('alice', { evict: true });
  if (phaseTwo.ok && phaseTwo.evicted.length + phaseTwo.reclaimed.length > 0) {
    const close: string[] = [...phaseTwo.evicted, ...phaseTwo.reclaimed];
    void close;
  }
}
if (!phaseOne.ok) {
  const reclaimedOnRefusal: string[] | undefined = phaseOne.reclaimed;
  void reclaimedOnRefusal;
}
const handle: number = registry.acquireHandle('bob', undefined, Date.now(), false);
if (handle === -4) {
  const refusal: Refusal | null = registry.lastRefusal();
  const evictable: boolean | undefined = refusal?.evictable;
  void evictable;
}
if (registry.lastRemovedCount() !== 0) {
  const removed: string[] = [...registry.lastEvicted(), ...registry.lastReclaimed()];
  void removed;
}

const stats: LeaseStats = registry.stats();
const expired: string[] = registry.sweep();
const parsed: ParsedId = parseId(newId('conn'));
const same: boolean = sameLease(deriveId(parsed.kind + '_' + parsed.suffix, 'run'), newId('run'));
const bytes: Uint8Array = registry.snapshot();
const restored: LeaseRegistry = LeaseRegistry.restore(bytes, { perUserLimit: 10 });
restored.free();

try {
  registry.acquire('');
} catch (err) {
  if (err instanceof LeaseError) {
    const code: LeaseErrorCode = err.code;
    void code;
  }
}

{
  using scoped = new LeaseRegistry();
  scoped.metrics();
}

void stats;
void expired;
void same;
