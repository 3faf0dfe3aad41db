// Public types of `socket-lease/redis`. The implementation (store.cjs) is checked JS whose
// JSDoc refers to these declarations, so `tsc` fails when the two drift apart.
import type { EventEmitter } from 'node:events';
import type { ClusterOptions, RedisOptions } from 'ioredis';
import type { AcquireResult, LeaseEvent, LeaseRegistryOptions, LeaseStats, LimitPolicy, UserStats } from 'socket-lease';
import type { Logger as GuardLogger, LogLevel, RevokedLease } from 'socket-lease/lifecycle';

/** What a node does while Redis cannot be reached. */
export type FailMode = 'closed' | 'open';

export interface RedisLeaseStoreOptions extends Omit<LeaseRegistryOptions, 'mode' | 'maxUsers'> {
  /** `redis://[[user]:password@]host:port[/db]` or `rediss://…` (default 127.0.0.1:6379). */
  url?: string;
  /**
   * More ioredis connection options (TLS, Sentinel, password, db, …). The store sets its
   * own `commandTimeout`, `enableOfflineQueue: false`, `autoResendUnfulfilledCommands:
   * false` and `maxRetriesPerRequest: 0` on top.
   */
  redis?: RedisOptions;
  /**
   * A Redis Cluster instead of one Redis (not with `url` or `redis`): some of its nodes
   * (ioredis finds the rest) and ioredis `ClusterOptions` (per-node connection options
   * in `redisOptions`). Every key of a user carries a hash tag made from the user id, so
   * each per-user operation is one script on one shard. Not with `globalLimit` (refused
   * with INVALID_OPTION), nor with a `prefix` containing `{` or `}`. See docs/redis.md,
   * "Redis Cluster".
   */
  cluster?: RedisClusterConfig;
  /** Prefix of every key and channel (default `"socket-lease:"`); one per deployment. */
  prefix?: string;
  /**
   * `"closed"` (default): while Redis is unreachable, acquires reject (the guard answers
   * HTTP 503) and one error line is logged per outage. `"open"`: acquires are accepted and
   * tracked on this node only (the per-user limit applies to this node's own leases), each
   * one logged at warn; they are written to Redis when it returns.
   */
  failMode?: FailMode;
  /** Every Redis command answers or fails within this (default 1000 ms). */
  commandTimeoutMs?: number;
  /** Keys outlive the newest lease they hold by this much (default 60000 ms). */
  keyGraceMs?: number;
  /** Expired leases reclaimed per sweep script call (default 1000; up to 10 calls per sweep). */
  sweepBatch?: number;
  /** While Redis is unavailable, how often the store checks whether it is back (default 500 ms). */
  probeMs?: number;
  /**
   * Acquires, releases and touches issued in the same turn of the event loop go to Redis
   * in calls of at most this many operations, one script call each; a call is sent as
   * soon as it is full (default 16; 1: one call per operation).
   */
  batchSize?: number;
  /** Where the store's JSON lines go (default `console`); pino loggers are detected. */
  logger?: GuardLogger;
  /** Minimum level logged (default `info`). */
  logLevel?: LogLevel;
  /** Near-limit, limit-reached, rejected, evicted and expired events decided by this node. */
  onEvent?: (event: LeaseEvent) => void;
  /** Only `"enforce"`: the Redis store has no dry-run. */
  mode?: 'enforce';
  /**
   * Not supported (throws INVALID_OPTION): the core's bound on one process's memory;
   * Redis's memory is bounded by its own `maxmemory`.
   */
  maxUsers?: never;
}

/** The `cluster` option. */
export interface RedisClusterConfig {
  /** `"host:port"` strings or `{ host, port }`: at least one. */
  nodes: Array<string | { host: string; port: number }>;
  /**
   * ioredis cluster options. The store sets its own `enableOfflineQueue: false`,
   * `scaleReads: "master"` and, in `redisOptions`, the same connection settings as for
   * one Redis (`commandTimeout`, no offline queue, no resend, no retry).
   */
  options?: ClusterOptions;
}

/** `stats()`: the core's fields plus the store's own. */
export interface RedisStoreStats extends LeaseStats {
  /**
   * `active` (leases whose sockets this node holds), `users` (with a lease on this node),
   * `highWater` and the counters are this node's: sum them across nodes.
   */
  redis: 'up' | 'down';
  /**
   * Live leases in Redis across every node (those of a dead node too, until they
   * expire), when the store keeps a global index, that is with a `globalLimit`; else null.
   */
  deploymentActive: number | null;
  /** This store's node id. */
  nodeId: string;
  /** Leases whose sockets this node holds (as `active`). */
  held: number;
  /** Of those, accepted while Redis was away (failMode "open") and not yet written back. */
  heldLocally: number;
  /** Leases accepted without Redis (failMode "open"). */
  degradedAcquires: number;
  /** Releases waiting for Redis to return. */
  pendingReleases: number;
  /** Times this node lost Redis. */
  outages: number;
  /** Leases of this node removed by other nodes, by reason. */
  revocations: Record<RevokedLease['reason'], number>;
}

/** The options in force (`getOptions()`). */
export interface RedisStoreOptionsInForce {
  perUserLimit: number;
  globalLimit: number | null;
  userLimits: Record<string, number>;
  ttlMs: number;
  onLimit: LimitPolicy;
  warnRatio: number;
  mode: 'enforce';
  kinds: string[];
  prefix: string;
  failMode: FailMode;
  keyGraceMs: number;
}

/**
 * A lease store shared by every Node host connected to one Redis, with the contract of
 * `LeaseRegistry` made asynchronous. Give it to `createLeaseGuard({ store })`.
 *
 * Bad arguments reject with the core's `LeaseError` codes and messages (a `now` the
 * in-memory registry refuses is refused here too, although ignored otherwise). Besides
 * those, calls reject with an `Error` whose `code` is `"REDIS_UNAVAILABLE"` (Redis away,
 * failMode "closed"; `cause`: the last error from Redis or the connection) or
 * `"STORE_CLOSED"` (after `close()`).
 *
 * Emits `revoked` ({@link RevokedLease}) when another node evicted, released or reclaimed
 * a lease whose socket this node holds; the guard closes that socket (4008 for an
 * eviction, 4009 otherwise).
 */
export declare class RedisLeaseStore extends EventEmitter {
  constructor(options?: RedisLeaseStoreOptions);
  /** This store's node id (`node_…`): evictions of its leases arrive on its channel. */
  readonly nodeId: string;
  /** Whether Redis is usable now (`false`: the fail mode applies). */
  readonly available: boolean;
  /**
   * Grants `userId` a lease or refuses (`{ ok: false, reason, limit, active,
   * retryAfterMs }`), in one atomic script. `now` is ignored: expiry uses Redis's clock.
   * Rejects with `code: "REDIS_UNAVAILABLE"` while Redis is away in failMode "closed".
   *
   * `reclaimed` names every expired lease of the user this acquire removed, whichever
   * node held it (a refusal has it only when there are some): close those of this node's
   * sockets now; other nodes learn theirs by `revoked`, and `sweep()` lists this node's
   * again. `evict: false`: never evict; where the policy would evict to admit, the
   * answer is a refusal with `evictable: true` that changes nothing and is not counted
   * as rejected (as in the core; see `AcquireOptions.evict`). While Redis is away
   * (failMode "open") the local path never evicts, so `evict` changes nothing there.
   */
  acquire(userId: string, options?: { connectionKey?: string; now?: number; evict?: boolean }): Promise<AcquireResult>;
  /** Releases by any derived id, from any node; idempotent; `false` (counted) when unknown. */
  release(anyId: string, now?: number): Promise<boolean>;
  /** Heartbeat; `false` when the lease is unknown or expired (close the socket). */
  touch(anyId: string, now?: number): Promise<boolean>;
  /** Reclaims expired leases everywhere; returns this node's (close those sockets). */
  sweep(now?: number): Promise<string[]>;
  /** Releases this node's leases whose ids are not in `liveIds`; returns them. */
  reconcile(liveIds: Iterable<string>): Promise<string[]>;
  /** Deployment gauges and this node's counters; never rejects for an unreachable Redis. */
  stats(): Promise<RedisStoreStats>;
  /** One user's live leases (oldest first) and its limit. */
  userStats(userId: string, now?: number): Promise<UserStats>;
  /** Prometheus text (`socket_lease_*`); never rejects for an unreachable Redis. */
  metrics(): Promise<string>;
  getOptions(): RedisStoreOptionsInForce;
  /**
   * `true` once Redis answers and this node's channel is subscribed; `false` after
   * `timeoutMs` (default 5000) while the store keeps reconnecting.
   */
  ready(timeoutMs?: number): Promise<boolean>;
  /** Closes the connections. Leases are not released (the guard does that on its close). */
  close(): Promise<void>;

  on(event: 'revoked', listener: (event: RevokedLease) => void): this;
  off(event: 'revoked', listener: (event: RevokedLease) => void): this;
  once(event: 'revoked', listener: (event: RevokedLease) => void): this;
}

/** `new RedisLeaseStore(options)`. */
export declare function createRedisLeaseStore(options?: RedisLeaseStoreOptions): RedisLeaseStore;

export type { RevokedLease };
