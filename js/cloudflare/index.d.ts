// Types of socket-lease/cloudflare. Checked by tsconfig.workers.json against
// @cloudflare/workers-types, together with the JSDoc of the .mjs files that import them
// and a usage file (tests/types/cloudflare.ts).
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
 * The stable codes of `ErrorBody`:
 * - 400 `INVALID_USER_ID`: over 256 bytes of UTF-8, not well-formed Unicode, or a stats
 *   path that is not percent-encoded UTF-8;
 * - 400 `MISSING_USER`: a stats or metrics request naming no user;
 * - 401 `UNAUTHENTICATED`: `userId()` gave no user for an upgrade;
 * - 404 `NOT_FOUND`, 405 `METHOD_NOT_ALLOWED`, 426 `UPGRADE_REQUIRED`;
 * - 500 `INVALID_CONFIG` (bad env var, missing binding), `WRONG_OBJECT` (not routed by
 *   `idFromName(userId)`), `INTERNAL_ERROR` (the lease could not be stored or the socket
 *   accepted; the lease was released).
 */
export type ErrorCode =
  | 'INVALID_USER_ID'
  | 'MISSING_USER'
  | 'UNAUTHENTICATED'
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'UPGRADE_REQUIRED'
  | 'INVALID_CONFIG'
  | 'WRONG_OBJECT'
  | 'INTERNAL_ERROR';

/** The body of every other answer that is not a 101. */
export interface ErrorBody {
  /** For people. */
  error: string;
  /** For programs: one of `ErrorCode`. */
  code: ErrorCode;
}

/**
 * The socket-lease routes of `request`, or `null` for any other path. Answers 101; 429
 * with `Retry-After` and a `QuotaRefusalBody`; or 400, 401, 405, 426, 500 with an
 * `ErrorBody` (see `ErrorCode`).
 */
export declare function handleSocketLease(
  request: Request,
  env: Record<string, unknown>,
  options: SocketLeaseWorkerOptions,
): Promise<Response | null>;

/** A Worker default export: socket-lease routes, then `fallback` (or 404). */
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

/** Close code sent to a socket evicted by a newer connection (same as the Node guard). */
export declare const CLOSE_EVICTED: 4008;
/** Close code sent to a socket silent for longer than the TTL. */
export declare const CLOSE_LEASE_EXPIRED: 4009;
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
