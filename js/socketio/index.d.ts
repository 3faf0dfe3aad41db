// Public types of `socket-lease/socket.io`. The implementation (guard.cjs) is checked JS
// whose JSDoc refers to these declarations, so `tsc` fails when the two drift apart.
import type { Socket } from 'socket.io';
import type { Lease, LeaseRegistry, LeaseRegistryOptions } from 'socket-lease';
import type {
  AllowedOrigins,
  CLOSE_REASONS as LifecycleCloseReasons,
  CloseCode,
  CloseCodes as LifecycleCloseCodes,
  LastRefusal,
  LeaseStore,
  LifecycleStats,
  LogLevel,
  Logger,
  RefusalStatus,
  RevokedLease,
  LifecycleOptions,
} from 'socket-lease/lifecycle';

export type { AllowedOrigins, CloseCode, LastRefusal, LeaseStore, LogLevel, RevokedLease, Lease, LeaseRegistry };
/** A `console`-compatible or pino-style logger (see `socket-lease/lifecycle`). */
export type GuardLogger = Logger;

/** The codes sent in `socket-lease:closed` (the close codes of every host). */
export declare const CloseCodes: typeof LifecycleCloseCodes;
/** The reason sent with each code. */
export declare const CLOSE_REASONS: typeof LifecycleCloseReasons;

/**
 * `'socket-lease:closed'`: the event a socket receives, with {@link ClosedEventData},
 * right before the guard disconnects it (Socket.IO has no close codes). The client then
 * sees a disconnect with the reason `io server disconnect`.
 */
export declare const CLOSED_EVENT: 'socket-lease:closed';

/** What `socket-lease:closed` carries. */
export interface ClosedEventData {
  /**
   * 1001 shutting down, 4008 evicted, 4009 lease expired or revoked, 4010 not reading, 4029
   * the slot went to another connection (or a recovered socket was refused for the quota),
   * 1008 a recovered socket refused for another reason.
   */
  code: CloseCode | 1008;
  reason: string;
  /** A socket restored by connectionStateRecovery (no middleware ran) and refused on admission: what a connect_error's data would have carried. */
  refusal?: LeaseRefusalData;
}

/**
 * `err.data` of the `connect_error` a refused client receives (`err.message` is the
 * reason). The same answer as the HTTP refusal of the WebSocket hosts.
 */
export interface LeaseRefusalData {
  /** The HTTP status the other hosts answer: 400, 401, 403, 429, 500, 503. */
  status: RefusalStatus;
  /** Stable: `unauthorized`, `invalid-user-id`, `origin-not-allowed`, `forbidden`, `user-limit`, `global-limit`, `user-table-full`, `identity-error`, `verify-error`, `internal-error`, `shutting-down`, `store-unavailable`, `upgrade-timeout`. */
  reason: string;
  /** The limit that refused (429), else null. */
  limit: number | null;
  /** Leases counted against it at the refusal (429), else null. */
  active: number | null;
  /** When a retry can succeed (429, 503), else null: nothing to wait for. */
  retryAfterMs: number | null;
}

export interface LeaseGuardOptions extends Omit<LifecycleOptions, 'store' | 'userId' | 'verify'> {
  /**
   * The user behind a connecting socket, from your authentication: a session read from
   * `socket.request`, a token in `socket.handshake.auth`, or `socket.data` set by an
   * earlier middleware. `null`, `undefined` or `''` refuses with 401 `unauthorized`; a
   * throw or a non-string with 500 `identity-error`; an id the store refuses with 400
   * `invalid-user-id`.
   */
  userId: (socket: Socket) => string | null | undefined | Promise<string | null | undefined>;
  /** The lease store. Give either this or `registry`. */
  store?: LeaseStore;
  /** Options of a `LeaseRegistry` the guard creates (its events are logged, rate-limited). */
  registry?: LeaseRegistryOptions;
  /**
   * Origins allowed to connect (exact origins, or a function of the `Origin` header and
   * the socket), checked before identity and quota: others are refused with 403
   * `origin-not-allowed`. Socket.IO's `cors` option does not protect the WebSocket
   * transport (WebSockets have no CORS); set this with cookie authentication.
   */
  allowedOrigins?: AllowedOrigins;
  /** Your own check after identity, before the quota: `true` admits, anything else is 403 `forbidden`. */
  verify?: (socket: Socket, userId: string) => boolean | Promise<boolean>;
  /**
   * Not a ping interval here: engine.io pings (`pingInterval`, `pingTimeout` of the
   * Server) and each pong renews the lease. This is how often the guard looks for
   * sockets whose `disconnect` never came (default 30000), and `sweepMs`'s default.
   */
  heartbeatMs?: number;
  /**
   * How long an admission may take (identity, verify, the store: then 503
   * `upgrade-timeout`), and how long an admitted socket may wait in later middlewares
   * before what its admission took is given back (default 10000).
   */
  upgradeTimeoutMs?: number;
  /**
   * Bytes of engine.io packets a socket may have waiting unsent before `writable(socket)`
   * disconnects it with 4010 (default 1048576).
   */
  maxBufferedBytes?: number;
}

/** Counters of one guard since it was created (see `socket-lease/lifecycle`). */
export type GuardStats = LifecycleStats;

export declare class LeaseGuard {
  /** Throws `LeaseError` `INVALID_OPTION` for an unknown option (`maxPayload`: use the Server's `maxHttpBufferSize`), a missing `userId`, or a bad value. */
  constructor(options: LeaseGuardOptions);
  readonly store: LeaseStore;
  /**
   * `io.use(guard.middleware)` (or `io.of('/ns').use(...)`), after your authentication
   * middleware: refuses with `connect_error` ({@link LeaseRefusalData}) or admits. The
   * lease is committed when the socket connects (the namespace's `connection`, before
   * your listeners) and released on its `disconnect`, whatever the reason.
   */
  readonly middleware: (socket: Socket, next: (err?: Error) => void) => void;
  /** The socket's lease (`undefined` once disconnected). */
  leaseOf(socket: Socket): Lease | undefined;
  /** The socket's lease id (`conn_…`). */
  leaseIdOf(socket: Socket): string | undefined;
  userIdOf(socket: Socket): string | undefined;
  /**
   * False once more than `maxBufferedBytes` wait unsent (a peer that does not read): the
   * socket is then disconnected (4010) and its lease released. Check it before emitting.
   */
  writable(socket: Socket): boolean;
  /** The connected sockets holding a lease. */
  sockets(): IterableIterator<Socket>;
  lastRefusal(userId: string): LastRefusal | null;
  stats(): GuardStats;
  metrics(): Promise<string>;
  /**
   * Refuses new sockets (503 `shutting-down`), tells every socket 1001 and disconnects it,
   * releases every lease, waits (bounded) for the store. Idempotent. Does not close the
   * Socket.IO server: call `io.close()` after it.
   */
  close(): Promise<void>;
}

export declare function createLeaseGuard(options: LeaseGuardOptions): LeaseGuard;
