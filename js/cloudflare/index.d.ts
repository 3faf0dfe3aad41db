// Types of socket-lease/cloudflare. Checked by tsconfig.workers.json against
// @cloudflare/workers-types, together with the JSDoc of the .mjs files that import them
// and a usage file (tests/types-workers/cloudflare.ts).
import { DurableObject } from 'cloudflare:workers';

/** What happens when a user is at its limit (`SOCKET_LEASE_POLICY`). */
export type LimitPolicy = 'reject' | 'evict-oldest' | 'evict-idle';

/** The validated env vars. */
export interface SocketLeaseConfig {
  /** `SOCKET_LEASE_LIMIT`: leases per user, 1..32768 (default 20). */
  limit: number;
  /** `SOCKET_LEASE_TTL_MS`: silence after which a lease expires, 1000..86400000 (default 90000). */
  ttlMs: number;
  /** `SOCKET_LEASE_POLICY` (default `reject`). */
  policy: LimitPolicy;
  /**
   * `SOCKET_LEASE_MAX_PAYLOAD`: largest message in bytes, 1..33554432 (default 65536,
   * `DEFAULT_MAX_PAYLOAD`). A larger message is not processed: its socket is closed with
   * 1009 and its lease freed at once.
   */
  maxPayload: number;
  /**
   * `SOCKET_LEASE_ALLOWED_ORIGINS`, comma-separated (`https://app.example,https://admin.example`):
   * the origins whose pages may open sockets. Absent when unset or empty (any origin).
   */
  allowedOrigins?: string[];
}

/** What each accepted socket carries (`ws.deserializeAttachment()`); survives hibernation. */
export interface SocketAttachment {
  /** The lease id (`conn_...`), also the socket's tag. */
  leaseId: string;
  runId: string;
  threadId: string;
  userId: string;
  acquiredAt: number;
  /**
   * The largest message this socket may send, in bytes: the Worker's `maxPayload` (or
   * `SOCKET_LEASE_MAX_PAYLOAD`) when it connected. Absent on sockets accepted by an older
   * version, which get the object's `SOCKET_LEASE_MAX_PAYLOAD`.
   */
  maxPayload?: number;
  /**
   * The last sign of life applied to the lease (ms since the epoch): a message, or a
   * heartbeat the runtime answered, read back by the alarm. Renewals are kept here rather
   * than in storage; a wake after hibernation re-applies it.
   */
  seenAt: number;
}

export interface SocketLeaseWorkerOptions {
  /**
   * The user behind a request, or null/undefined/"" for none (answered 401). Supplied by
   * the host: derive it from authentication, not from anything the client picks freely.
   */
  userId(request: Request, env: any): string | null | undefined | Promise<string | null | undefined>;
  /** Name of the Durable Object binding (default `SOCKET_LEASE`). */
  binding?: string;
  /** WebSocket path (default `/ws`). */
  path?: string;
  /**
   * Prefix of `GET <statsPath><userId>` (JSON leases of one user, the id percent-encoded);
   * off when unset. Without an id: 400 `MISSING_USER`.
   */
  statsPath?: string;
  /**
   * Path of `GET <metricsPath>?user=<id>` (Prometheus text of one user's object); off when
   * unset. Without `?user=`: 400 `MISSING_USER`.
   */
  metricsPath?: string;
  /**
   * Which pages may open sockets, by their `Origin` header: exact origins
   * (`["https://app.example"]`, scheme, host and port, nothing after; `"null"` only if
   * listed as the string `"null"`), or a function deciding each upgrade (it also gets
   * requests without `Origin`, as `null`). An upgrade from another origin is answered
   * 403 `{ "reason": "origin-not-allowed", ... }` by the Worker, before the user's Durable
   * Object is called: no quota work, no eviction, no storage write. A request without an
   * `Origin` header is allowed by the list form: it does not come from a browser page.
   * Default: any origin.
   *
   * Why: browsers send cookies with a WebSocket handshake whatever page opened it, and
   * WebSockets have no CORS. When `userId()` authenticates by cookie, a page on another
   * site can open sockets as the signed-in user (cross-site WebSocket hijacking): read
   * their messages, use up their quota and, under `evict-oldest`, evict their real
   * sockets again and again. A page cannot forge `Origin`, so listing your origins stops
   * that. (A non-browser client can send any `Origin`: this is no authentication.)
   *
   * `SOCKET_LEASE_ALLOWED_ORIGINS` sets the same list from `[vars]`; when both are set, an
   * upgrade must pass both. Validated when the Worker starts (`createSocketLeaseWorker`
   * throws a `TypeError`; `handleSocketLease` on its first call).
   */
  allowedOrigins?: readonly string[] | ((origin: string | null, request: Request) => boolean | Promise<boolean>);
  /**
   * The largest message a socket may send, in bytes, 1..33554432 (workerd's own limit is
   * 32 MiB). Overrides `SOCKET_LEASE_MAX_PAYLOAD` (default 65536). A larger message (a
   * string by its UTF-8 length) is not processed: the socket is closed with 1009 and its
   * lease released at once; the user's other sockets are served as before.
   */
  maxPayload?: number;
}

/** Thrown by `readConfig` for a bad env var; answered as HTTP 500 `{ error, code }`. */
export declare class ConfigError extends Error {
  constructor(message: string);
  readonly name: 'ConfigError';
  readonly code: 'INVALID_CONFIG';
}

/**
 * Validates the `SOCKET_LEASE_*` env vars. `SOCKET_LEASE_GLOBAL_LIMIT` and
 * `SOCKET_LEASE_HEARTBEAT_MS` (Node host settings the edge cannot honour) are refused.
 */
export declare function readConfig(env: Record<string, unknown>): SocketLeaseConfig;

/** The body of a 429: the Node guard's shape, so one client handles both hosts. */
export interface QuotaRefusalBody {
  reason: 'user-limit';
  limit: number;
  active: number;
}

/**
 * The `reason` of each `ErrorCode` (the Node host's names where it answers the same):
 * `invalid-user-id`, `missing-user`, `unauthorized` (401), `origin-not-allowed` (403),
 * `not-found`, `method-not-allowed`, `upgrade-required`, `invalid-config`,
 * `identity-error`, `wrong-object`, `internal-error`. A core `LeaseError` answered 400
 * gets its code in lower case with dashes.
 */
export type ErrorReason =
  | 'invalid-user-id'
  | 'missing-user'
  | 'unauthorized'
  | 'origin-not-allowed'
  | 'not-found'
  | 'method-not-allowed'
  | 'upgrade-required'
  | 'invalid-config'
  | 'identity-error'
  | 'wrong-object'
  | 'internal-error';

/**
 * The stable codes of `ErrorBody`:
 * - 400 `INVALID_USER_ID`: over 256 bytes of UTF-8, not well-formed Unicode, or a stats
 *   path that is not percent-encoded UTF-8;
 * - 400 `MISSING_USER`: a stats or metrics request naming no user;
 * - 401 `UNAUTHENTICATED`: `userId()` gave no user for an upgrade;
 * - 403 `ORIGIN_NOT_ALLOWED`: the upgrade's `Origin` is not allowed (`allowedOrigins`);
 * - 404 `NOT_FOUND`, 405 `METHOD_NOT_ALLOWED`, 426 `UPGRADE_REQUIRED`;
 * - 500 `INVALID_CONFIG` (bad env var, missing binding), `IDENTITY_ERROR` (`userId()`
 *   threw), `WRONG_OBJECT` (not routed by `idFromName(userId)`), `INTERNAL_ERROR` (the
 *   lease could not be stored or the socket accepted, and the lease was released; or an
 *   `allowedOrigins` function threw).
 */
export type ErrorCode =
  | 'INVALID_USER_ID'
  | 'MISSING_USER'
  | 'UNAUTHENTICATED'
  | 'ORIGIN_NOT_ALLOWED'
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'UPGRADE_REQUIRED'
  | 'INVALID_CONFIG'
  | 'IDENTITY_ERROR'
  | 'WRONG_OBJECT'
  | 'INTERNAL_ERROR';

/**
 * The body of every other answer that is not a 101. Like the 429's, it has a `reason`, so
 * a client can read that field alone on every refusal, of every host.
 */
export interface ErrorBody {
  /** For programs, the same on every host: see `ErrorReason`. */
  reason: ErrorReason;
  /** For people. */
  error: string;
  /** For programs: one of `ErrorCode`. */
  code: ErrorCode;
}

/**
 * The socket-lease routes of `request`, or `null` for any other path. Answers 101; 429
 * with `Retry-After` and a `QuotaRefusalBody`; or 400, 401, 403, 405, 426, 500 with an
 * `ErrorBody` (see `ErrorCode`). Throws a `TypeError` for bad `options` (first call).
 */
export declare function handleSocketLease(request: Request, env: Record<string, unknown>, options: SocketLeaseWorkerOptions): Promise<Response | null>;

/**
 * A Worker default export: socket-lease routes, then `fallback` (or 404). Throws a
 * `TypeError` for bad options (`userId` missing, `allowedOrigins`, `maxPayload`).
 */
export declare function createSocketLeaseWorker(
  options: SocketLeaseWorkerOptions & {
    fallback?: (request: Request, env: any, ctx: ExecutionContext) => Response | Promise<Response>;
  },
): { fetch(request: Request, env: any, ctx: ExecutionContext): Promise<Response> };

/**
 * The Durable Object holding one user's leases. Export it from the Worker under the
 * `class_name` of the binding, and route with `idFromName(userId)`.
 */
export declare class SocketLeaseObject extends DurableObject<Record<string, unknown>> {
  constructor(ctx: DurableObjectState, env: Record<string, unknown>);
  fetch(request: Request): Promise<Response>;
  webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void>;
  webSocketClose(ws: WebSocket, code: number, reason: string, wasClean: boolean): Promise<void>;
  webSocketError(ws: WebSocket, error: unknown): Promise<void>;
  alarm(): Promise<void>;
}

/** Close code sent to a socket evicted by a newer connection (every host's, `CloseCodes.EVICTED`). */
export declare const CLOSE_EVICTED: 4008;
/** Close code sent to a socket silent for longer than the TTL (`CloseCodes.LEASE_EXPIRED`). */
export declare const CLOSE_LEASE_EXPIRED: 4009;
/** Close code sent to a socket whose message was larger than `maxPayload` (`CloseCodes.MESSAGE_TOO_BIG`). */
export declare const CLOSE_MESSAGE_TOO_BIG: 1009;
/** The reason sent with each close code: every host's (js/lifecycle/protocol.mjs). */
export declare const CLOSE_REASONS: Readonly<Record<1001 | 1009 | 4008 | 4009 | 4010 | 4029, string>>;
/** Default `maxPayload`: 64 KiB. */
export declare const DEFAULT_MAX_PAYLOAD: 65536;
/** Largest `maxPayload`: 32 MiB, workerd's own message limit. */
export declare const MAX_MAX_PAYLOAD: 33554432;
/** The client heartbeat, answered by the runtime without waking the object. */
export declare const HEARTBEAT_PING: '{"type":"ping"}';
/** The answer to `HEARTBEAT_PING`. */
export declare const HEARTBEAT_PONG: '{"type":"pong"}';
/** A Durable Object holds at most this many WebSockets; also the largest `SOCKET_LEASE_LIMIT`. */
export declare const MAX_SOCKETS_PER_OBJECT: 32768;
export declare const DEFAULT_LIMIT: 20;
export declare const DEFAULT_TTL_MS: 90000;
export declare const MIN_TTL_MS: 1000;
export declare const MAX_TTL_MS: 86400000;
