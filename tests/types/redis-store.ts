// Compiled by `tsc --noEmit`: proves `socket-lease/redis`'s declarations describe the store
// as docs/redis.md uses it, and that it fits the guard's `store` option. Never executed.
import { createEventLogger, createLeaseGuard } from 'socket-lease/node';
import type { LeaseStore, RevokedLease } from 'socket-lease/node';
import { createRedisLeaseStore, type RedisLeaseStore } from 'socket-lease/redis';
import type { RedisStoreStats, RedisLeaseStoreOptions } from 'socket-lease/redis';
import type { AcquireResult } from 'socket-lease';

const options: RedisLeaseStoreOptions = {
  url: 'redis://127.0.0.1:6379',
  prefix: 'chat:',
  perUserLimit: 5,
  ttlMs: 90_000,
  onLimit: 'evict-oldest',
  failMode: 'open',
  commandTimeoutMs: 500,
  batchSize: 8,
  redis: { connectionName: 'socket-lease' },
  onEvent: createEventLogger(),
};
const store: RedisLeaseStore = createRedisLeaseStore(options);
const asStore: LeaseStore = store;
const guard = createLeaseGuard({ userId: () => 'u', store });

async function use() {
  const ready: boolean = await store.ready(1000);
  const result: AcquireResult = await store.acquire('u', { connectionKey: 'tab' });
  if (result.ok) {
    const released: boolean = await store.release(result.lease.runId);
    const reclaimed: string[] = result.reclaimed;
    void released;
    void reclaimed;
  }
  const phaseOne: AcquireResult = await store.acquire('u', { evict: false });
  if (!phaseOne.ok && phaseOne.evictable) await store.acquire('u', { evict: true });
  const expired: string[] = await store.sweep();
  const stats: RedisStoreStats = await store.stats();
  const down: boolean = stats.redis === 'down';
  const deployment: number | null = stats.deploymentActive;
  store.on('revoked', (event: RevokedLease) => void event.reason);
  await guard.close();
  await store.close();
  void [ready, expired, down, deployment, asStore];
}
void use;

// @ts-expect-error maxUsers is the core's memory bound; the Redis store refuses it
createRedisLeaseStore({ maxUsers: 10 });

// A Redis Cluster: some of its nodes, and ioredis's own cluster options.
const onCluster: RedisLeaseStore = createRedisLeaseStore({
  cluster: { nodes: ['127.0.0.1:7000', { host: '127.0.0.1', port: 7001 }], options: { redisOptions: { password: 'secret' }, slotsRefreshTimeout: 2000 } },
  perUserLimit: 5,
});
void onCluster;

// @ts-expect-error a node is "host:port" or { host, port }
createRedisLeaseStore({ cluster: { nodes: [7000] } });
