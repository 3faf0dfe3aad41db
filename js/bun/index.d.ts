// Public types of `socket-lease/bun`. The implementation (index.mjs) is checked JS whose
// JSDoc refers to these declarations, so `tsc` fails when the two drift apart.
//
// The package does not depend on bun-types: the few shapes of Bun's API used here are
// declared below (`BunServerWebSocket`, `BunUpgradeServer`, `BunWebSocketHandler`), as
// subsets of Bun's own `ServerWebSocket`, `Server` and `WebSocketHandler`, so the values of
// Bun's types fit them and the handler object returned by `websocket()` fits `Bun.serve`.
import type { Lease, LeaseEvent, LeaseRegistry, LeaseRegistryOptions } from 'socket-lease';
import type {
  AllowedOrigins,
  CloseCodes as LifecycleCloseCodes,
  LastRefusal,
  LeaseStore,
  LifecycleStats,
  LogLevel,
  Logger,
  RevokedLease,
  LifecycleOptions,
} from 'socket-lease/lifecycle';

export type { AllowedOrigins, LastRefusal, Lease, LeaseEvent, LeaseRegistry, LeaseStore, LogLevel, Logger, RevokedLease };

/** Close codes every host sends (`socket-lease/lifecycle`). A quota decision is never a 1011. */
export declare const CloseCodes: typeof LifecycleCloseCodes;

/** The part of Bun's `ServerWebSocket<T>` the adapter uses. */
export interface BunServerWebSocket<T = unknown> {
  /** What `server.upgrade(req, { data })` was given: here a `LeaseData`. */
  data: T;
  /** 0 connecting, 1 open, 2 closing, 3 closed (Bun reports 3 as soon as `close()` is called). */
  readonly readyState: number;
  /** -1: queued behind unsent data (backpressure), 0: dropped, otherwise the bytes sent. */
  send(data: string | ArrayBufferView | ArrayBuffer, compress?: boolean): number;
  close(code?: number, reason?: string): void;
  terminate(): void;
  ping(data?: string | ArrayBufferView | ArrayBuffer): number;
  getBufferedAmount(): number;
}

/** The part of Bun's `Server` that `upgrade()` calls. */
export interface BunUpgradeServer {
  upgrade(request: Request, options?: { data?: any; headers?: HeadersInit }): boolean;
}

/**
 * The lease of an accepted socket, as `ws.data.lease`: the lifecycle's connection record.
 * Read `userId` and `leaseId`; everything else of it belongs to the lifecycle.
 */
export interface SocketLease {
  /** The user the socket was admitted for (from `userId(req)`). */
  readonly userId: string;
  /** `conn_…`: the lease id; derive `run_`/`thread_` ids from it with `deriveId`. */
  readonly leaseId: string;
}

/**
 * `ws.data` of a socket accepted by `upgrade()`: a shallow copy of the `data` given to
 * `upgrade()`, plus `lease`.
 */
export type LeaseData<T extends object = object> = T & { readonly lease: SocketLease };

/** Your handlers, as in Bun's `websocket` object; `ws.data` is typed `LeaseData<T>`. */
export interface BunLeaseHandlers<T extends object = object> {
  /** Called once the lease is committed (never for a socket the lifecycle closed at once: 4029, 4008, 1001). */
  open?(ws: BunServerWebSocket<LeaseData<T>>): void | Promise<void>;
  message?(ws: BunServerWebSocket<LeaseData<T>>, message: string | Buffer): void | Promise<void>;
  /** Called for every socket `open` was called for, after its lease was released. */
  close?(ws: BunServerWebSocket<LeaseData<T>>, code: number, reason: string): void | Promise<void>;
  drain?(ws: BunServerWebSocket<LeaseData<T>>): void | Promise<void>;
  ping?(ws: BunServerWebSocket<LeaseData<T>>, data: Buffer): void | Promise<void>;
  pong?(ws: BunServerWebSocket<LeaseData<T>>, data: Buffer): void | Promise<void>;
  /** Passed to Bun unchanged. */
  perMessageDeflate?: boolean | { compress?: boolean | string; decompress?: boolean | string };
  /** Passed to Bun unchanged. */
  publishToSelf?: boolean;
}

/**
 * The `websocket` object for `Bun.serve`: your handlers wrapped, plus the limits derived
 * from the adapter's options (`maxPayload`, `maxBufferedBytes`) and Bun's own idle
 * timeout and pings turned off (the adapter pings; see docs/bun.md).
 */
export interface BunWebSocketHandler<T> {
  open(ws: BunServerWebSocket<T>): void | Promise<void>;
  message(ws: BunServerWebSocket<T>, message: string | Buffer): void | Promise<void>;
  close(ws: BunServerWebSocket<T>, code: number, reason: string): void | Promise<void>;
  drain(ws: BunServerWebSocket<T>): void | Promise<void>;
  pong(ws: BunServerWebSocket<T>, data: Buffer): void | Promise<void>;
  ping?(ws: BunServerWebSocket<T>, data: Buffer): void | Promise<void>;
  /** `maxPayload`: a larger frame is closed with 1009 by Bun (the peer sees 1009, the `close` handler 1006). */
  maxPayloadLength: number;
  /** Twice `maxBufferedBytes`: the backstop for sends that did not ask `writable(ws)` first. */
  backpressureLimit: number;
  /** true: past `backpressureLimit` Bun drops the connection rather than silently drop messages. */
  closeOnBackpressureLimit: boolean;
  /** 0: the adapter's heartbeat decides liveness (Bun's resolution is about 4 s). */
  idleTimeout: number;
  sendPings: boolean;
  perMessageDeflate?: boolean | { compress?: boolean | string; decompress?: boolean | string };
  publishToSelf?: boolean;
}

export interface BunLeaseOptions extends Omit<LifecycleOptions, 'store' | 'userId' | 'verify'> {
  /**
   * The user behind an upgrade request, from your authentication (a session cookie, a
   * verified token). `null`, `undefined` or `''` answers 401; a throw, a rejection or a
   * non-string answers 500 `identity-error`; an id the store refuses answers 400
   * `invalid-user-id`. The adapter never invents identity.
   */
  userId: (req: Request) => string | null | undefined | Promise<string | null | undefined>;
  /** The lease store. Give either this or `registry`. */
  store?: LeaseStore;
  /** Options of a `LeaseRegistry` the adapter creates; its events are logged (rate-limited), an `onEvent` given here is called too. */
  registry?: LeaseRegistryOptions;
  /** Largest message in bytes (default 65536): Bun's `maxPayloadLength`; larger frames are closed with 1009. */
  maxPayload?: number;
  /** Origins allowed to open sockets, checked before identity and quota: others get 403 `origin-not-allowed`. */
  allowedOrigins?: AllowedOrigins;
  /** Your check after identity, before the quota: `true` admits, anything else answers 403 `forbidden`. */
  verify?: (req: Request, userId: string) => boolean | Promise<boolean>;
  /** Protocol ping interval; a socket that did not answer the previous ping is terminated (default 30000). */
  heartbeatMs?: number;
  /** How long `userId`, `verify` and the store may take before 503 `upgrade-timeout` (default 10000). */
  upgradeTimeoutMs?: number;
  /** Unsent bytes a socket may queue before `writable(ws)` closes it with 4010 (default 1048576). */
  maxBufferedBytes?: number;
}

/** What `upgrade()` passes on to `server.upgrade`. */
export interface BunUpgradeOptions<T extends object = object> {
  /** Your per-socket data: `ws.data` is a shallow copy of it plus `lease` (so it must not have a `lease` key). */
  data?: T;
  /** Extra headers of the 101 response (e.g. `Set-Cookie`). */
  headers?: HeadersInit;
}

/** Counters of one adapter since it was created (see `socket-lease/lifecycle`). */
export type BunLeaseStats = LifecycleStats;

export declare class BunLease<T extends object = object> {
  /** Throws `LeaseError` `INVALID_OPTION` for an unknown option name, a missing `userId`, or a value of the wrong type or range. */
  constructor(options: BunLeaseOptions);
  /** The store in use (the created `LeaseRegistry` when `registry` options were given). */
  readonly store: LeaseStore;
  /**
   * Answers an upgrade request inside your `fetch`: a `Response` to return (400, 401,
   * 403, 429 with `Retry-After`, 500, 503, JSON bodies as on every host), or `undefined`
   * once `server.upgrade` accepted it (return nothing from `fetch` then). A promise only
   * when `userId`, `verify`, the Origin check or the store answered with one.
   */
  upgrade(req: Request, server: BunUpgradeServer, options?: BunUpgradeOptions<T>): Response | undefined | Promise<Response | undefined>;
  /** The `websocket` object for `Bun.serve`, with your handlers wrapped. Throws INVALID_OPTION for a key it does not know or owns. */
  websocket(handlers?: BunLeaseHandlers<T>): BunWebSocketHandler<LeaseData<T>>;
  /** The socket's full lease (`undefined` once it closed or its lease is gone); built once per socket. */
  leaseOf(ws: BunServerWebSocket<any>): Lease | undefined;
  /** Its lease id (`conn_…`), `undefined` once closed. */
  leaseIdOf(ws: BunServerWebSocket<any>): string | undefined;
  /** The user it was accepted for, `undefined` once closed. */
  userIdOf(ws: BunServerWebSocket<any>): string | undefined;
  /**
   * Whether `ws` can take more data: false once more than `maxBufferedBytes` wait unsent
   * (a peer that does not read). The socket is then closed with 4010 as soon as its
   * buffer drains, terminated if it has not within `closeGraceMs`, and its lease released.
   * Check it before each send.
   */
  writable(ws: BunServerWebSocket<any>): boolean;
  /** The sockets the adapter holds open. */
  sockets(): IterableIterator<BunServerWebSocket<LeaseData<T>>>;
  /** The user's last refused upgrade (429 or 503), or null. */
  lastRefusal(userId: string): LastRefusal | null;
  stats(): BunLeaseStats;
  /** The store's `socket_lease_*` series plus the adapter's, Prometheus text. */
  metrics(): Promise<string>;
  /**
   * Refuses new upgrades (503 `shutting-down`), closes every socket with 1001 (terminating
   * those that do not close within `closeGraceMs`), releases every lease, waits (bounded)
   * for the store. Stopping `Bun.serve` is yours. Idempotent.
   */
  close(): Promise<void>;
}

/** `new BunLease(options)`. */
export declare function createBunLease<T extends object = object>(options: BunLeaseOptions): BunLease<T>;
