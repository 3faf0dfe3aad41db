// Public types of `socket-lease/deno`. The implementation (index.mjs) is checked JS whose
// JSDoc refers to these declarations, so `tsc` fails when the two drift apart. Deno's own
// globals are not typed in this repository: the few shapes used are the web standard's
// (`Request`, `Response`, `WebSocket`, `MessageEvent`, `CloseEvent`), which Deno implements.
import type { Lease, LeaseEvent, LeaseRegistryOptions } from 'socket-lease';
import type {
  LeaseStore,
  RevokedLease,
  LastRefusal,
  LifecycleStats,
  LogLevel,
  AllowedOrigins,
  CloseCodes as LifecycleCloseCodes,
  LifecycleOptions,
} from 'socket-lease/lifecycle';

export type { LeaseStore, RevokedLease, LastRefusal, LogLevel, AllowedOrigins, Lease, LeaseEvent };
/** The core, loaded for Deno without --allow-read (the same API as `socket-lease`). */
export { LeaseRegistry, LeaseError, newId, parseId, deriveId, sameLease, idFromUuid } from 'socket-lease';

/** Close codes the host sends (the same for every host). Never 1011 for a quota decision. */
export declare const CloseCodes: typeof LifecycleCloseCodes;

export interface DenoLeaseOptions extends Omit<LifecycleOptions, 'store' | 'userId' | 'verify'> {
  /**
   * The user behind an upgrade request, from the host's authentication (a session cookie,
   * a verified token), possibly async. `null`, `undefined` or `''` answers HTTP 401; a
   * throw, a rejection or a non-string 500 `identity-error`; an id the store refuses (a
   * lone surrogate, too long) 400 `invalid-user-id`. Never invented by the host.
   */
  userId: (request: Request) => string | null | undefined | Promise<string | null | undefined>;
  /** The lease store. Give either this or `registry`. */
  store?: LeaseStore;
  /** Options of a `LeaseRegistry` the host creates (its events are logged, rate-limited; an `onEvent` given here is called too). */
  registry?: LeaseRegistryOptions;
  /**
   * Largest message in bytes, UTF-8 for text (default 65536). A larger one is closed with
   * 1009 and its lease released before your `onMessage` sees it. Deno has no frame-size
   * option: the runtime has already received the whole message (see docs/deno.md).
   */
  maxPayload?: number;
  /** Origins allowed to open sockets (exact origins, or a function), checked before identity and quota: others get 403. Set it with cookie authentication. */
  allowedOrigins?: AllowedOrigins;
  /** The host's own check after identity, before the quota: `true` admits, anything else answers 403 `forbidden`. */
  verify?: (request: Request, userId: string) => boolean | Promise<boolean>;
  /**
   * Heartbeat interval (default 30000). Deno pings: each socket is upgraded with
   * `idleTimeout` = 2 x heartbeatMs, so Deno pings a peer silent for heartbeatMs and
   * closes it when nothing came back within another heartbeatMs; every heartbeatMs the
   * lease of each socket still open is renewed. Keep the registry's `ttlMs` above it.
   */
  heartbeatMs?: number;
  /**
   * How long one upgrade may wait for `userId`, `verify` and the store before 503
   * `upgrade-timeout`; a handshake Deno never finishes gives its lease back after between
   * one and two of these (default 10000).
   */
  upgradeTimeoutMs?: number;
  /** Unsent bytes (`socket.bufferedAmount`) a socket may queue before `writable(ws)` closes it with 4010 (default 1048576). */
  maxBufferedBytes?: number;
}

/** What to do with an accepted socket. Each hook runs only for a socket that holds its lease. */
export interface UpgradeHooks {
  /** A subprotocol the client offered, passed to `Deno.upgradeWebSocket` (one it did not offer: 400, lease given back). */
  protocol?: string;
  /** The socket is open and holds its lease. A throw closes it (1011) and releases the lease. */
  onOpen?: (ws: WebSocket) => void;
  /** A message within `maxPayload`, after the lease was touched. */
  onMessage?: (ws: WebSocket, event: MessageEvent) => void;
  /** The socket closed; its lease is already released. */
  onClose?: (ws: WebSocket, event: CloseEvent) => void;
  /** Deno reported an error (then closes the socket); the lease is already released. */
  onError?: (ws: WebSocket, event: Event) => void;
}

export type DenoLeaseStats = LifecycleStats;

export declare class DenoLease {
  /** Throws `LeaseError` `INVALID_OPTION` for an unknown option, a missing `userId`, a value of the wrong type or range, or outside Deno. */
  constructor(options: DenoLeaseOptions);
  /** The store in use (the created `LeaseRegistry` when `registry` options were given). */
  readonly store: LeaseStore;
  /**
   * Answers a WebSocket upgrade request: a refusal `Response` (400, 401, 403, 429 with
   * `Retry-After`, 500, 503) before any WebSocket exists, or the 101 response of
   * `Deno.upgradeWebSocket` with a socket that holds one lease. Return it from your
   * `Deno.serve` handler as it is. A promise only while `userId`, `verify` or the store
   * answer with one. Throws `INVALID_OPTION` for an unknown hook name.
   */
  upgrade(request: Request, hooks?: UpgradeHooks): Response | Promise<Response>;
  /** The socket's lease (`undefined` once closed); built once per socket. */
  leaseOf(ws: WebSocket): Lease | undefined;
  /** Its lease id (`conn_…`), without building the lease object. */
  leaseIdOf(ws: WebSocket): string | undefined;
  /** The user it was accepted for. */
  userIdOf(ws: WebSocket): string | undefined;
  /** False once more than `maxBufferedBytes` wait unsent: the socket is then closed with 4010 and its lease released. Check it before each send. */
  writable(ws: WebSocket): boolean;
  /** The sockets held open. */
  sockets(): IterableIterator<WebSocket>;
  /** The user's last refused upgrade (429 or 503) on this host, or null. */
  lastRefusal(userId: string): LastRefusal | null;
  stats(): DenoLeaseStats;
  /** The store's `socket_lease_*` series plus the host's, Prometheus text. */
  metrics(): Promise<string>;
  /**
   * Refuses new upgrades (503), closes every socket with 1001, releases every lease (also
   * of sockets whose peer does not finish the close handshake within `closeGraceMs`),
   * waits (bounded) for the store. Stop `Deno.serve` after it. Idempotent.
   */
  close(): Promise<void>;
}

/** `new DenoLease(options)`. */
export declare function createDenoLease(options: DenoLeaseOptions): DenoLease;
