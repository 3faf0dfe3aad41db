// Public types of `socket-lease/crossws`. The implementation (index.mjs) is checked JS whose
// JSDoc refers to these declarations, so `tsc` fails when the two drift apart.
import type { Hooks, Peer } from 'crossws';
import type { NodeOptions } from 'crossws/adapters/node';
import type { Lease, LeaseEvent, LeaseRegistryOptions } from 'socket-lease';
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

export type { AllowedOrigins, LastRefusal, LeaseStore, LogLevel, Logger, RevokedLease, LeaseEvent };

/** Close codes the hooks send (the same for every host). A quota decision is never a 1011. */
export declare const CloseCodes: typeof LifecycleCloseCodes;

/**
 * How sockets are kept alive and their leases renewed.
 * - `auto` (default): per peer, a protocol ping every `heartbeatMs` where the crossws
 *   adapter can ping (Node's ws, Bun, uWebSockets: a missed pong terminates the socket);
 *   where it cannot (Deno, Cloudflare), the runtime's own idle timeout keeps the socket
 *   alive and the lease of a socket still open is renewed on every heartbeat.
 * - `ping`: always ping (fails every socket on an adapter that cannot ping).
 * - `runtime`: never ping; renew open sockets' leases every `heartbeatMs` and rely on the
 *   adapter's `idleTimeout` (crossws's, default 30 s) to close dead peers.
 */
export type Heartbeat = 'auto' | 'ping' | 'runtime';

export interface LeaseGuardOptions extends Omit<LifecycleOptions, 'store' | 'userId' | 'verify'> {
  /**
   * The user behind an upgrade request (a Web `Request`), from your authentication.
   * `null`, `undefined` or `''` answers 401; a throw, a rejection or any other non-string
   * answers 500 `identity-error`; an id the store refuses (a lone surrogate, too long)
   * answers 400 `invalid-user-id`. The hooks never invent identity.
   */
  userId: (request: Request) => string | null | undefined | Promise<string | null | undefined>;
  /** The lease store. Give either this or `registry`. */
  store?: LeaseStore;
  /** Options of a `LeaseRegistry` the guard creates (its events are logged, rate-limited). */
  registry?: LeaseRegistryOptions;
  /** Origins allowed to open sockets (403 `origin-not-allowed` otherwise), checked before identity and quota. */
  allowedOrigins?: AllowedOrigins;
  /** Your own check after identity: `true` admits, anything else 403 `forbidden`, a throw 500 `verify-error`. */
  verify?: (request: Request, userId: string) => boolean | Promise<boolean>;
  /** Ping (or renewal) interval, default 30000; must be below the registry's `ttlMs`. */
  heartbeatMs?: number;
  /** Default `auto`; see {@link Heartbeat}. */
  heartbeat?: Heartbeat;
  /**
   * How long one upgrade may take: identity, verify and the store (503 `upgrade-timeout`
   * past it), and then the runtime's handshake: an admitted upgrade that reaches no hook
   * (the runtime refused it after our upgrade hook, the client left) gives its lease back
   * within 1.5 times this. Default 10000.
   */
  upgradeTimeoutMs?: number;
  /**
   * Largest message in bytes (default 65536). `nodeOptions()` gives it to ws, which closes
   * a larger frame with 1009 before buffering it; on adapters without a frame limit of
   * their own, the message hook closes the socket with 1009 and releases its lease.
   */
  maxPayload?: number;
  /** Unsent bytes a socket may have queued before `writable()` closes it with 4010 (default 1048576). */
  maxBufferedBytes?: number;
}

export interface LeaseHooksOptions {
  /**
   * Upgrades for any other path are answered 404 `not-found` before any quota work. For a
   * server whose every upgrade reaches these hooks (crossws/server, a bare adapter); leave
   * it out where a router (h3, Nitro) already chose the route.
   */
  path?: string;
}

/** Counters of the guard (the lifecycle's). */
export type GuardStats = LifecycleStats;

export declare class LeaseGuard {
  /** Throws `LeaseError` `INVALID_OPTION` for an unknown option or a bad value. */
  constructor(options: LeaseGuardOptions);
  readonly store: LeaseStore;
  /**
   * crossws hooks holding one lease per connection, composed with yours: your `upgrade`
   * runs after admission (it may still refuse, with a Response returned or thrown: the
   * lease is given back, nothing evicted); your `open`, `message`, `close`, `error` run
   * after ours and only for sockets that hold a lease; `pong` after ours; other hooks are
   * yours untouched. Call it once per route; every route shares this guard's quota.
   */
  hooks(userHooks?: Partial<Hooks>, options?: LeaseHooksOptions): Partial<Hooks>;
  /** Options for crossws's Node adapter: ws's `maxPayload` and `closeTimeout`, `idleTimeout: 0` while the guard pings. */
  nodeOptions(options?: NodeOptions): NodeOptions;
  /** The peer's lease (`undefined` once released). */
  leaseOf(peer: Peer): Lease | undefined;
  leaseIdOf(peer: Peer): string | undefined;
  userIdOf(peer: Peer): string | undefined;
  /** False once more than `maxBufferedBytes` wait unsent to the peer; it is then closed with 4010. Check before each send. */
  writable(peer: Peer): boolean;
  /** Peers holding a lease. */
  sockets(): IterableIterator<Peer>;
  lastRefusal(userId: string): LastRefusal | null;
  stats(): GuardStats;
  /** The store's `socket_lease_*` series plus the guard's, Prometheus text. */
  metrics(): Promise<string>;
  /** Refuses new upgrades (503), closes every socket with 1001, releases every lease. Idempotent. */
  close(): Promise<void>;
}

export declare function createLeaseGuard(options: LeaseGuardOptions): LeaseGuard;
