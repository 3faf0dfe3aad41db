// Public types of `socket-lease/lifecycle`: the runtime-neutral connection lifecycle that
// every host adapter (socket-lease/node, and your own) translates its runtime's events
// into. The implementation (lifecycle.mjs and its neighbours) is checked JS whose JSDoc
// refers to these declarations, so `tsc` fails when the two drift apart.
import type { AcquireResult, Lease } from 'socket-lease';

/**
 * What a host needs from a lease store. `LeaseRegistry` satisfies it; so can a shared
 * store (Redis) whose methods return promises: every call is awaited.
 */
export interface LeaseStore {
  /**
   * `evict: false` is phase one of a two-phase admission: a store that would evict to
   * admit answers a refusal with `evictable: true` instead, changing nothing; the host
   * asks again with eviction allowed once every check of the handshake has passed. A
   * store that ignores the flag still works, but may then evict for a handshake that is
   * refused afterwards.
   */
  acquire(userId: string, options?: { now?: number; evict?: boolean }): AcquireResult | Promise<AcquireResult>;
  /** Idempotent; `false` for an unknown or already released id. */
  release(anyId: string, now?: number): boolean | Promise<boolean>;
  /** Heartbeat; `false` when the lease is gone (expired or revoked): the socket is closed. */
  touch(anyId: string, now?: number): boolean | Promise<boolean>;
  /**
   * Optional: renews like `touch` without counting as activity (for `evict-idle`). Called
   * on every pong when present, `touch` otherwise; messages always touch.
   */
  renew?(anyId: string, now?: number): boolean | Promise<boolean>;
  /** Ids of leases that expired: their sockets are closed with 4009. */
  sweep(now?: number): string[] | Promise<string[]>;
  /** Prometheus text of the store's own `socket_lease_*` series, if it has any. */
  metrics?(): string | Promise<string>;
  /**
   * Optional, for a store shared by several hosts (socket-lease/redis): the lifecycle
   * listens for `revoked` (a lease whose socket this host holds was evicted, released or
   * reclaimed by another host) and closes that socket: 4008 for an eviction, 4009
   * otherwise. The listener is removed by `close()` (with `off` or `removeListener`).
   */
  on?(event: 'revoked', listener: (event: RevokedLease) => void): unknown;
  off?(event: 'revoked', listener: (event: RevokedLease) => void): unknown;
}

/** A lease removed by another host, as a shared store reports it. */
export interface RevokedLease {
  /** The lease id (`conn_…`) of the socket. */
  leaseId: string;
  reason: 'evicted' | 'released' | 'expired';
}

/**
 * The last upgrade refused for one user (once identity had named the user). A browser's
 * `WebSocket` sees a refused upgrade only as a close with code 1006; a host can serve this
 * record to tell the page what really happened.
 */
export interface LastRefusal {
  /** 429 for a quota answer; 503 while closing or when the store failed. */
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
  /** The clock at the refusal (ms since the epoch; the `clock` option when given). */
  at: number;
  /** Increases with every refusal recorded, across users: tells a new refusal from one already seen. */
  seq: number;
}

/** Close codes every host sends. A quota decision is never a 1011. */
export declare const CloseCodes: {
  /** `close()`: the server is shutting down; reconnect later (possibly to another node). */
  readonly GOING_AWAY: 1001;
  /** A frame was larger than `maxPayload` (sent by the runtime's frame parser). */
  readonly MESSAGE_TOO_BIG: 1009;
  /** The lease was evicted by the `evict-oldest`/`evict-idle` policy for a newer connection. */
  readonly EVICTED: 4008;
  /** The lease expired or the store no longer knows it (touch refused, sweep, reclaimed by an acquire): reconnect. */
  readonly LEASE_EXPIRED: 4009;
  /** More than `maxBufferedBytes` waited unsent: the peer does not read. */
  readonly BACKPRESSURE: 4010;
  /** Admitted, but the slot went to another connection before the eviction was committed; the reason says when to retry. */
  readonly LIMIT_REACHED: 4029;
};
export type CloseCode = (typeof CloseCodes)[keyof typeof CloseCodes];
/** The reason sent with each close code (at most 123 bytes). */
export declare const CLOSE_REASONS: Readonly<Record<CloseCode, string>>;
/** 65536: the default largest message (see docs/hosts.md for why). */
export declare const DEFAULT_MAX_PAYLOAD: number;
/** 1048576: the default bound on unsent data per socket. */
export declare const DEFAULT_MAX_BUFFERED: number;
export declare const STATUS_TEXT: Readonly<Record<RefusalStatus, string>>;

export type RefusalStatus = 400 | 401 | 403 | 404 | 429 | 500 | 503;

/** A refused upgrade: what the adapter writes in its runtime's way, before any WebSocket exists. */
export interface Refusal {
  ok: false;
  status: RefusalStatus;
  /** Stable: `bad-handshake`, `not-found`, `unauthorized`, `invalid-user-id`, `origin-not-allowed`, `forbidden`, `user-limit`, `global-limit`, `user-table-full`, `identity-error`, `verify-error`, `internal-error`, `shutting-down`, `store-unavailable`, `upgrade-timeout`. */
  reason: string;
  /** Lower-case names: `content-type`, `cache-control`, and `retry-after` for 429 and 503. */
  headers: Record<string, string>;
  /** JSON: `{ reason, ... }` (`limit` and `active` for a quota refusal). */
  body: string;
  /** The user, when identity had named one. */
  userId: string | null;
  /** When a retry can succeed (429, 503), in ms as the store said, before rounding to `Retry-After`'s seconds; null otherwise. */
  retryAfterMs: number | null;
}

/** `Retry-After` seconds for a delay: `max(1, ceil(ms / 1000))`. */
export declare function retryAfterSeconds(ms: number): number;
/** Whether a socket error is ws's for a message over its maxPayload (ws has sent 1009), directly or as a wrapper's `cause`. */
export declare function isTooBig(err: unknown): boolean;
/** Builds a refusal (the lifecycle's own answers are built with it). */
export declare function refusal(
  status: RefusalStatus,
  body: { reason: string } & Record<string, unknown>,
  retryAfterMs?: number,
  userId?: string | null,
): Refusal;

/** `allowedOrigins`: exact origins, or a function deciding per request. */
export type AllowedOrigins = readonly string[] | ((origin: string | null, request: any) => boolean | Promise<boolean>);
/** The check for `allowedOrigins` (null when every origin is allowed). */
export declare function originCheck(
  allowed: unknown,
  invalid: (message: string) => Error,
): null | ((origin: string | null, request: any) => boolean | Promise<boolean>);
/** A comma-separated list (an environment variable) as `allowedOrigins`, or undefined when empty. */
export declare function parseOriginList(text: string | undefined): string[] | undefined;

/** Levels, lowest first. `silent` logs nothing. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

/**
 * A `console`-compatible logger (gets one JSON string per line) or a pino-style logger
 * (detected by `child` and `levels`; gets `(fields, message)` and writes its own JSON).
 */
export interface Logger {
  debug?(...args: any[]): void;
  info?(...args: any[]): void;
  warn?(...args: any[]): void;
  error?(...args: any[]): void;
  log?(...args: any[]): void;
}
export type LogFn = (level: Exclude<LogLevel, 'silent'>, msg: string, fields: Record<string, unknown>) => void;
export declare function makeLog(logger: Logger | undefined, level: LogLevel | undefined, invalid: (message: string) => Error): LogFn;
/** Lines a client can trigger: at most `burst` per key per interval, then one "suppressed N" line. */
export declare class RateLimitedLog {
  constructor(log: LogFn, options?: { burst?: number; intervalMs?: number; now?: () => number });
  /** Lines left out since this logger was made. */
  suppressed: number;
  write(key: string, level: Exclude<LogLevel, 'silent'>, msg: string, fields: Record<string, unknown>): void;
  /** Writes the summaries of intervals that are over (all with `all`). */
  flush(all?: boolean): void;
}
/** An `onEvent` callback for a LeaseRegistry, rate-limited per event type and reason. */
export declare function eventLogger(
  options: { logger?: Logger; level?: LogLevel; burst?: number; intervalMs?: number } | undefined,
  invalid: (message: string) => Error,
): ((event: { type: string; reason?: string }) => void) & { flush(all?: boolean): void };

export interface LifecycleOptions {
  /** The lease store (an adapter creates a `LeaseRegistry` from its `registry` option). */
  store: LeaseStore;
  /**
   * The user behind an upgrade request, from the host's authentication. `null`,
   * `undefined` or `''` answers 401; a throw, a rejection or any other non-string answers
   * 500 `identity-error`. A user id the store refuses (a lone surrogate, too long) answers
   * 400 `invalid-user-id`. The lifecycle never invents identity.
   */
  userId: (request: any) => string | null | undefined | Promise<string | null | undefined>;
  /**
   * Origins allowed to open sockets, checked before identity and quota: a refused one is
   * answered 403 `origin-not-allowed` and changes nothing. Exact origins
   * (`https://app.example`), or a function. A request without `Origin` is not from a
   * browser page and is allowed by the list form. Set it whenever authentication uses
   * cookies: browsers send cookies with a WebSocket handshake from any site, and
   * WebSockets have no CORS (cross-site WebSocket hijacking).
   */
  allowedOrigins?: AllowedOrigins;
  /**
   * The host's own check, after identity and before the quota: `true` admits, anything
   * else answers 403 `forbidden`, a throw 500 `verify-error`.
   */
  verify?: (request: any, userId: string) => boolean | Promise<boolean>;
  /** Ping interval where the runtime lets the lifecycle ping (default 30000); a socket that missed the previous pong is terminated. */
  heartbeatMs?: number;
  /** How often expired leases are swept and their sockets closed (default `heartbeatMs`). */
  sweepMs?: number;
  /** A message touches the lease at most once per this many ms (default 1000); 0: every message; `false`: never. */
  messageTouchMs?: number | false;
  /** `close()` waits this long for each of: admissions in flight, close handshakes, store calls (default 2000). */
  closeGraceMs?: number;
  /** How long one upgrade may take (identity, verify, the store, the runtime's handshake) before 503 `upgrade-timeout` (default 10000). */
  upgradeTimeoutMs?: number;
  /** How many users' last refusal `lastRefusal(userId)` remembers (default 1000; 0: none). */
  refusalMemory?: number;
  /** Unsent bytes a socket may have queued before `writable()` closes it with 4010 (default 1048576). */
  maxBufferedBytes?: number;
  /** Where the JSON lines go (default `console`). */
  logger?: Logger;
  /** Minimum level logged (default `info`). */
  logLevel?: LogLevel;
  /** Lines a client can trigger (refusals, events) are limited to `logBurst` per kind per `logIntervalMs` (defaults 3 per 10000). */
  logIntervalMs?: number;
  logBurst?: number;
  /** Milliseconds since the epoch, passed to every store call as `now`. Without it the store keeps its own time. */
  clock?: () => number;
}

/** How the lifecycle reaches the adapter's sockets. */
export interface SocketDriver<S = any> {
  close(socket: S, code: number, reason: string): void;
  terminate(socket: S): void;
  /** A protocol ping; leave out where the runtime keeps sockets alive itself (report its pongs with `pong`). */
  ping?: ((socket: S) => void) | null;
  bufferedAmount?(socket: S): number;
  /** Default `socket.readyState` (0-3 as in the WebSocket API). */
  readyState?(socket: S): number;
  /** Runs `fn` once the I/O already received has been read (default `setTimeout(fn, 0)`). */
  afterIO?(fn: () => void): void;
  /**
   * Whether an admitted request that has not opened is already dead (its client left), so
   * its lease goes back before `upgradeTimeoutMs`. Asked about each pending connection at
   * most once a second; `conn.host` is where the adapter keeps its handle on the request.
   */
  abandoned?(conn: Connection): boolean;
}

/** Counters of one lifecycle since it was created. */
export interface LifecycleStats {
  /** Sockets held open (opened and not yet closed). */
  socketsOpen: number;
  /** Upgrades admitted or being admitted, not yet opened or refused. */
  pendingUpgrades: number;
  /** Upgrade answers by HTTP status (101 = accepted). */
  upgrades: Record<'101' | '400' | '401' | '403' | '429' | '500' | '503', number> & Record<string, number>;
  /** Refusals by reason, every one counted. */
  refusals: Record<string, number>;
  /** Leases released when their socket closed. */
  released: number;
  /**
   * Admitted upgrades that a later check refused (ws's own handshake checks,
   * `verifyClient`), the client left before the upgrade, or a timeout: what admission
   * took was given back, nothing was evicted.
   */
  cancelled: number;
  /** Admitted upgrades given back because they neither opened nor were cancelled within `upgradeTimeoutMs`, or their client left first (counted in `cancelled` too). */
  upgradeTimeouts: number;
  heartbeatTicks: number;
  /** Sockets terminated for a missed pong. */
  heartbeatTimeouts: number;
  /** Sockets closed by the host, by close code. */
  closes: Record<'1001' | '1009' | '4008' | '4009' | '4010' | '4029', number> & Record<string, number>;
  /** Store calls that threw or rejected, except those counted in `storeUnavailable`. */
  storeErrors: number;
  /** Store calls refused because the store's backend was unavailable (`code: "REDIS_UNAVAILABLE"`). */
  storeUnavailable: number;
  /** Store calls `close()` stopped waiting for. */
  storeCallsAbandoned: number;
  /** Log lines the rate limit left out. */
  logLinesSuppressed: number;
  closing: boolean;
}

/** One connection, from admission to release. */
export declare class Connection {
  readonly userId: string;
  /** `conn_…`; '' until the lease is granted. */
  leaseId: string;
  /** The adapter's socket once open. */
  socket: any;
  /** Set by an adapter whose runtime may hold an admitted request (an asynchronous check): called when the lifecycle gives up on it (`close()`, or `upgradeTimeoutMs` passed) so the adapter answers it 503. */
  onAbandon: ((reason: 'shutting-down' | 'upgrade-timeout') => void) | null;
  /** Date.now() when its request arrived (upgradeTimeoutMs counts from it). */
  admittedAt: number;
  /** The adapter's own handle on the request until it opens (what `SocketDriver.abandoned` looks at). */
  host: any;
}

export declare const LIFECYCLE_OPTIONS: readonly string[];

/** What every adapter's guard answers about its sockets; adapters extend it and set `lifecycle`. */
export declare class LeaseHost<S = any> {
  /** The adapter's lifecycle. */
  lifecycle: ConnectionLifecycle<S>;
  /** The full lease of an open socket (`undefined` once it closed or its lease is gone). */
  leaseOf(socket: S): Lease | undefined;
  /** The socket's lease id (`conn_…`), without building the lease object. */
  leaseIdOf(socket: S): string | undefined;
  /** The user the socket was admitted for. */
  userIdOf(socket: S): string | undefined;
  /** False once more than `maxBufferedBytes` wait unsent; the socket is then closed with 4010. */
  writable(socket: S): boolean;
  /** The sockets held open. */
  sockets(): IterableIterator<S>;
  /** The user's last refused upgrade, or null. */
  lastRefusal(userId: string): LastRefusal | null;
  stats(): LifecycleStats;
  /** The store's metrics plus the lifecycle's, as Prometheus text. */
  metrics(): Promise<string>;
}
export declare function invalidOption(where: string, message: string): Error;
/** An option in milliseconds (or bytes): an integer from `min` to 2^31 - 1, else `invalid(message)` is thrown. */
export declare function checkMs(value: unknown, name: string, min: number, invalid: (message: string) => Error): number;
/** A LeaseRegistry of the adapter's loader from its `registry` option, its events logged (rate-limited) and the option's `onEvent` called too. */
export declare function loggedRegistry<R>(
  Registry: new (options: any) => R,
  options: { registry?: Record<string, any>; logger?: Logger; logLevel?: LogLevel },
  invalid: (message: string) => Error,
): R;
/** Whether a store's or hook's answer is a promise to wait for. */
export declare function isThenable(value: unknown): value is PromiseLike<any>;

export declare class ConnectionLifecycle<S = any> {
  /** Throws `LeaseError` `INVALID_OPTION` for an option of the wrong type or range. */
  constructor(options: LifecycleOptions, driver: SocketDriver<S>, where: string);
  readonly store: LeaseStore;
  readonly upgradeTimeoutMs: number;
  readonly closeGraceMs: number;
  readonly closing: boolean;
  /** How many sockets are open and registered (`stats().socketsOpen`, without building the stats). */
  readonly openCount: number;
  /** Phase one: a Connection (then `open` or `cancel` it) or a refusal to answer. Never rejects. */
  admit(request: any, origin: string | null | undefined): Promise<Connection | Refusal>;
  /** `admit`, answered at once (no promise, no timer) when the Origin check, identity, verify and the store all answer synchronously; otherwise the same promise as `admit`. */
  admitNow(request: any, origin: string | null | undefined): Connection | Refusal | Promise<Connection | Refusal>;
  /** Phase two: commits a planned eviction, registers the socket; false when the socket was closed instead. */
  open(conn: Connection, socket: S): boolean | Promise<boolean>;
  /** A host check refused after `admit`: gives back what phase one took, and nothing else. */
  cancel(conn: Connection): void;
  /** A refusal the adapter decided itself, counted and logged as the lifecycle's own. */
  refuse(status: RefusalStatus, body: { reason: string } & Record<string, unknown>, retryAfterMs?: number): Refusal;
  message(conn: Connection): void;
  pong(conn: Connection): void;
  closed(conn: Connection): void;
  error(conn: Connection, err: unknown): void;
  /** A message over the adapter's maxPayload (the socket is being closed with 1009): counted, logged (rate-limited) and released. */
  tooBig(conn: Connection): void;
  /** False once more than `maxBufferedBytes` wait unsent; the socket is then closed with 4010. */
  writable(conn: Connection): boolean;
  connectionOf(socket: S): Connection | undefined;
  sockets(): IterableIterator<S>;
  lastRefusal(userId: string): LastRefusal | null;
  leaseOf(conn: Connection): Lease | undefined;
  stats(): LifecycleStats;
  metrics(): Promise<string>;
  /** Refuses new upgrades, closes every socket with 1001, releases every lease; then runs `afterSockets`. Idempotent. */
  close(afterSockets?: () => Promise<void>): Promise<void>;
}
