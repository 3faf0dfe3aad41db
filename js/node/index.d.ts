// Public types of `socket-lease/node`. The implementation (guard.cjs) is checked JS whose
// JSDoc refers to these declarations, so `tsc` fails when the two drift apart.
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket, WebSocketServer } from 'ws';
import type { Lease, LeaseEvent, LeaseRegistry, LeaseRegistryOptions } from 'socket-lease';

import type {
  LeaseStore,
  RevokedLease,
  LastRefusal,
  LifecycleOptions,
  LifecycleStats,
  LogLevel,
  Logger,
  AllowedOrigins,
  CloseCodes as LifecycleCloseCodes,
} from 'socket-lease/lifecycle';

export type { LeaseStore, RevokedLease, LastRefusal, LogLevel, AllowedOrigins };
/** A `console`-compatible or pino-style logger (see `socket-lease/lifecycle`). */
export type GuardLogger = Logger;

/** Close codes the guard sends (the same for every host). The guard never sends 1011 for a quota decision. */
export declare const CloseCodes: typeof LifecycleCloseCodes;

export interface EventLoggerOptions {
  /** Default `console`. */
  logger?: GuardLogger;
  /** Minimum level written (default `info`). */
  level?: LogLevel;
  /** At most `burst` lines per event type (and refusal reason) per `intervalMs`, then one "suppressed N" line (defaults 3 per 10000). */
  burst?: number;
  intervalMs?: number;
}

/**
 * The lifecycle's options (`socket-lease/lifecycle`: heartbeat, timeouts, origins, logging,
 * bounds; documented there once), with the request typed as Node's and the guard's own.
 */
export interface LeaseGuardOptions extends Omit<LifecycleOptions, 'store' | 'userId' | 'verify'> {
  /**
   * The user behind an upgrade request, from the host's authentication. `null`,
   * `undefined` or `''` answers HTTP 401; a throw, a rejection or any other non-string
   * answers 500 `identity-error` (logged at error); an id the store refuses (a lone
   * surrogate, too long) answers 400 `invalid-user-id`. Bounded by `upgradeTimeoutMs`.
   * The guard never invents identity.
   */
  userId: (req: IncomingMessage) => string | null | undefined | Promise<string | null | undefined>;
  /** The host's own check after identity, before the quota: `true` admits, anything else answers 403 `forbidden`. */
  verify?: (req: IncomingMessage, userId: string) => boolean | Promise<boolean>;
  /** The lease store. Give either this or `registry`. */
  store?: LeaseStore;
  /**
   * Options of a `LeaseRegistry` the guard creates (when `store` is not given). Its
   * events are logged by the guard (rate-limited); an `onEvent` given here is called too.
   */
  registry?: LeaseRegistryOptions;
  /**
   * A `ws` server in `noServer` mode (anything else throws INVALID_OPTION). Created (and
   * closed by `close()`) when omitted. Its checks (path, subprotocols, extensions,
   * `verifyClient`) run after admission and before an eviction is committed: a request
   * it refuses gives back what admission took and evicts nothing. Give it a `maxPayload`
   * of its own (ws's default is 100 MiB).
   */
  wss?: WebSocketServer;
  /**
   * Largest message, in bytes, of the `ws` server the guard creates (default 65536); a
   * larger frame is closed with 1009 before it is buffered. Not with `wss`.
   */
  maxPayload?: number;
}

/** Counters of one guard since it was created (see `socket-lease/lifecycle`). */
export type GuardStats = LifecycleStats;

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
  /**
   * Whether `ws` can take more data. False once more than `maxBufferedBytes` wait unsent
   * (a peer that does not read): the socket is then closed with 4010, terminated if the
   * close cannot be delivered within `closeGraceMs`, and its lease released.
   */
  writable(ws: WebSocket): boolean;
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
