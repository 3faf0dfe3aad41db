// Public types of `socket-lease/node`. The implementation (guard.cjs) is checked JS whose
// JSDoc refers to these declarations, so `tsc` fails when the two drift apart.
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket, WebSocketServer } from 'ws';
import type { AcquireResult, Lease, LeaseEvent, LeaseRegistry, LeaseRegistryOptions } from 'socket-lease';

/**
 * What the guard needs from a lease store. `LeaseRegistry` satisfies it; so can a shared
 * store (Redis) whose methods return promises: the guard awaits every call.
 */
export interface LeaseStore {
  acquire(userId: string, options?: { now?: number }): AcquireResult | Promise<AcquireResult>;
  /** Idempotent; `false` for an unknown or already released id. */
  release(anyId: string, now?: number): boolean | Promise<boolean>;
  /** Heartbeat; `false` when the lease is gone (expired or revoked): the socket is closed. */
  touch(anyId: string, now?: number): boolean | Promise<boolean>;
  /**
   * Optional: renews like `touch` without counting as activity (for `evict-idle`). The
   * guard calls it on every pong when present, `touch` otherwise; messages always touch.
   */
  renew?(anyId: string, now?: number): boolean | Promise<boolean>;
  /** Ids of leases that expired: their sockets are closed. */
  sweep(now?: number): string[] | Promise<string[]>;
  /** Prometheus text of the store's own `socket_lease_*` series, if it has any. */
  metrics?(): string | Promise<string>;
  /**
   * Optional, for a store shared by several hosts (socket-lease/redis): the guard listens
   * for `revoked` (a lease whose socket this host holds was evicted, released or reclaimed
   * by another host) and closes that socket: 4008 for an eviction, 4009 otherwise. The
   * listener is removed by `close()` (with `off` or `removeListener`).
   */
  on?(event: 'revoked', listener: (event: RevokedLease) => void): unknown;
  off?(event: 'revoked', listener: (event: RevokedLease) => void): unknown;
}

/** A lease removed by another host, as a shared store reports it. */
export interface RevokedLease {
  /** The lease id (`conn_…`) the guard attached to the socket. */
  leaseId: string;
  reason: 'evicted' | 'released' | 'expired';
}

/**
 * The last upgrade the guard refused for one user (once `userId(req)` had named the user).
 * A browser's `WebSocket` sees a refused upgrade only as a close with code 1006; a host can
 * serve this record to tell the page what really happened.
 */
export interface LastRefusal {
  /** 429 for a quota answer; 503 while the guard is closing or when the store failed. */
  status: 429 | 503;
  /** As in the response body: `user-limit`, `global-limit`, `user-table-full`, `shutting-down`, `store-unavailable`. */
  reason: string;
  /** The limit that refused (the user's, or the global one for `global-limit`); null for a 503. */
  limit: number | null;
  /** Leases counted against that limit at the refusal; null for a 503. */
  active: number | null;
  /** From the store: when a retry can succeed (for a limit, when the oldest lease expires unless renewed); 1000 for a 503. */
  retryAfterMs: number;
  /** The `Retry-After` header that was sent: `max(1, ceil(retryAfterMs / 1000))`. */
  retryAfterS: number;
  /** The guard's clock at the refusal (ms since the epoch; the `clock` option when given). */
  at: number;
  /** Increases with every refusal the guard records, across users: tells a new refusal from one already seen. */
  seq: number;
}

/** Close codes the guard sends. The guard never sends 1011 for a quota decision. */
export declare const CloseCodes: {
  /** `close()`: the server is shutting down; reconnect later (possibly to another node). */
  readonly GOING_AWAY: 1001;
  /** The lease was evicted by the `evict-oldest`/`evict-idle` policy for a newer connection. */
  readonly EVICTED: 4008;
  /** The lease expired or the store no longer knows it (touch refused, sweep): reconnect. */
  readonly LEASE_EXPIRED: 4009;
};

/** Levels, lowest first. `silent` logs nothing. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

/**
 * A `console`-compatible logger (gets one JSON string per line) or a pino-style logger
 * (detected by `child` and `levels`; gets `(fields, message)` and writes its own JSON).
 */
export interface GuardLogger {
  debug?(...args: any[]): void;
  info?(...args: any[]): void;
  warn?(...args: any[]): void;
  error?(...args: any[]): void;
  log?(...args: any[]): void;
}

export interface EventLoggerOptions {
  /** Default `console`. */
  logger?: GuardLogger;
  /** Minimum level written (default `info`). */
  level?: LogLevel;
}

export interface LeaseGuardOptions {
  /**
   * The user behind an upgrade request, from the host's authentication. `null`,
   * `undefined` or `''` answers HTTP 401; a throw, a rejection or any other non-string
   * answers 500 `identity-error` (logged at error). Bounded by `upgradeTimeoutMs`. The
   * guard never invents identity.
   */
  userId: (req: IncomingMessage) => string | null | undefined | Promise<string | null | undefined>;
  /** The lease store. Give either this or `registry`. */
  store?: LeaseStore;
  /**
   * Options of a `LeaseRegistry` the guard creates (when `store` is not given). Its
   * events are logged by the guard; an `onEvent` given here is called too.
   */
  registry?: LeaseRegistryOptions;
  /**
   * A `ws` server in `noServer` mode (anything else throws INVALID_OPTION). Created (and
   * closed by `close()`) when omitted. Its `path`, subprotocol and permessage-deflate
   * checks run before a lease is acquired.
   */
  wss?: WebSocketServer;
  /** Ping interval; a socket that has not answered the previous ping is terminated (default 30000). */
  heartbeatMs?: number;
  /** How often expired leases are swept and their sockets closed (default `heartbeatMs`). */
  sweepMs?: number;
  /**
   * A message touches the lease at most once per this many ms (default 1000); 0 touches
   * on every message; `false` never (only pongs touch).
   */
  messageTouchMs?: number | false;
  /**
   * `close()` waits this long for upgrades in flight, then for close handshakes before
   * terminating sockets, then for store calls still pending (default 2000).
   */
  closeGraceMs?: number;
  /**
   * How long one upgrade may wait for `userId(req)`, the store and ws before it is
   * answered 503 `{"reason":"upgrade-timeout"}` (`Retry-After: 1`) and its socket dropped;
   * a lease the store grants later is released at once (default 10000). Node's HTTP
   * timeouts no longer apply to a socket once it is an `upgrade`.
   */
  upgradeTimeoutMs?: number;
  /**
   * How many users' last refusal `lastRefusal(userId)` remembers (default 1000; 0: none).
   * The user refused least recently is forgotten first, so memory stays bounded.
   */
  refusalMemory?: number;
  /** Where the guard's JSON lines go (default `console`). */
  logger?: GuardLogger;
  /** Minimum level logged (default `info`). */
  logLevel?: LogLevel;
  /**
   * Milliseconds since the epoch, passed to every store call as `now`. Without it the
   * store keeps its own time (`Date.now()`), and no `now` is passed.
   */
  clock?: () => number;
}

/** Counters of one guard since it was created. */
export interface GuardStats {
  /** Sockets the guard holds open (upgraded and not yet closed). */
  socketsOpen: number;
  /** Upgrade requests still waiting for identity, the store or ws (an async verifyClient). */
  pendingUpgrades: number;
  /** Upgrade answers by HTTP status (101 = accepted). */
  upgrades: Record<'101' | '400' | '401' | '429' | '500' | '503', number>;
  /** Leases the guard released when their socket closed. */
  released: number;
  /** Heartbeat ticks so far. */
  heartbeatTicks: number;
  /** Sockets terminated for a missed pong. */
  heartbeatTimeouts: number;
  /** Sockets closed by the guard, by close code. */
  closes: Record<'1001' | '4008' | '4009', number>;
  /** Store calls that threw or rejected, except those counted in `storeUnavailable`. */
  storeErrors: number;
  /**
   * Store calls refused because the store's backend was unavailable (`code:
   * "REDIS_UNAVAILABLE"`: socket-lease/redis in failMode "closed"); logged at debug, since
   * the store logs the outage itself.
   */
  storeUnavailable: number;
  /**
   * Store calls (releases, touches) `close()` stopped waiting for: still pending
   * `closeGraceMs` after the sockets were closed; logged at error.
   */
  storeCallsAbandoned: number;
  /** Whether `close()` has been called. */
  closing: boolean;
}

export declare class LeaseGuard {
  /**
   * Throws `LeaseError` with code `INVALID_OPTION` for an unknown option name, a missing
   * `userId`, or an option of the wrong type or range.
   */
  constructor(options: LeaseGuardOptions);
  /** The store in use (the created `LeaseRegistry` when `registry` options were given). */
  readonly store: LeaseStore;
  /** The `ws` server; listen to its `connection` event for accepted sockets. */
  readonly wss: WebSocketServer;
  /**
   * Answers one `upgrade` request: 401/429/400/500/503 before the upgrade, or accepts it,
   * attaches a lease and emits `connection` on `wss`. Resolves once the request is
   * answered, accepted or abandoned (`upgradeTimeoutMs`, `close()`); never rejects.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void>;
  /**
   * Handles `upgrade` events of `server`. With `path`, other paths are answered 404.
   * Returns a function that detaches the listener; `close()` does not (upgrades that
   * arrive after it are answered 503 `shutting-down`).
   */
  attach(server: HttpServer, options?: { path?: string }): () => void;
  /**
   * The lease held by an accepted socket (`undefined` once it closed or its lease is
   * gone). Built once per socket, on the first call when the store is a `LeaseRegistry`
   * (the guard itself works with handles); its times are those of that moment.
   */
  leaseOf(ws: WebSocket): Lease | undefined;
  /** The socket's lease id (`conn_…`), without building the lease object. */
  leaseIdOf(ws: WebSocket): string | undefined;
  /** The user the socket was accepted for. */
  userIdOf(ws: WebSocket): string | undefined;
  /** The sockets the guard holds open. */
  sockets(): IterableIterator<WebSocket>;
  /**
   * The user's last refused upgrade (429 or 503), or null: never refused, or forgotten
   * (more than `refusalMemory` users were refused since). Kept by this guard only, not
   * shared through the store.
   */
  lastRefusal(userId: string): LastRefusal | null;
  stats(): GuardStats;
  /** The store's metrics plus the guard's `socket_lease_sockets_open` and counters. */
  metrics(): Promise<string>;
  /**
   * Stops the timers, refuses new upgrades (503), answers upgrades still pending after
   * `closeGraceMs` with 503, closes every socket with 1001 (terminating those that do not
   * finish the close handshake within `closeGraceMs`), releases every lease, and resolves
   * when all of that is done. Idempotent.
   */
  close(): Promise<void>;
}

/** `new LeaseGuard(options)`. */
export declare function createLeaseGuard(options: LeaseGuardOptions): LeaseGuard;

/**
 * An `onEvent` callback for a `LeaseRegistry` the host creates itself: writes
 * near-limit, limit-reached, rejected, evicted and expired events as JSON lines.
 */
export declare function createEventLogger(options?: EventLoggerOptions): (event: LeaseEvent) => void;

export type { Lease, LeaseEvent, LeaseRegistry };
