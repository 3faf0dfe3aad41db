//! TypeScript shapes of the plain objects that cross the boundary. Emitted into the
//! generated `.d.ts`, next to the classes and functions wasm-bindgen types itself.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** Stable codes of every `LeaseError`. */
export type LeaseErrorCode =
  | "INVALID_USER_ID"
  | "INVALID_ID"
  | "INVALID_OPTION"
  | "INVALID_TIME"
  | "INVALID_SNAPSHOT";

/** Thrown for misuse (bad input). A quota refusal is never an error: it is `{ ok: false }`. */
export declare class LeaseError extends Error {
  constructor(message: string, code: LeaseErrorCode);
  readonly name: "LeaseError";
  readonly code: LeaseErrorCode;
}

/** What happens when a user is at its limit. */
export type LimitPolicy = "reject" | "evict-oldest" | "evict-idle";

/** Why an acquire was refused. */
export type RefusalReason = "user-limit" | "global-limit" | "user-table-full";

export interface LeaseRegistryOptions {
  /** Leases per user (default 20). */
  perUserLimit?: number;
  /** Leases across all users (default: none). `null` clears it in `setLimits`. */
  globalLimit?: number | null;
  /** Per-user overrides of `perUserLimit`. */
  userLimits?: Record<string, number> | Map<string, number>;
  /** A lease expires this long after its last acquire or touch (default 90000). */
  ttlMs?: number;
  /** Policy at the limit (default "reject"). */
  onLimit?: LimitPolicy;
  /** Fraction of the limit at which `near-limit` fires (default 0.8). */
  warnRatio?: number;
  /** Bound on users holding leases at once (default 1000000). */
  maxUsers?: number;
  /** "dry-run" reports refusals without enforcing them (default "enforce"). */
  mode?: "enforce" | "dry-run";
  /** Extra id kinds derived from every lease, besides conn, run and thread. */
  kinds?: string[];
  /** Called after each change with notable events; exceptions are caught and counted. */
  onEvent?: (event: LeaseEvent) => void;
}

export interface AcquireOptions {
  /** Identifies the connection: acquiring again with the same key returns the same lease. */
  connectionKey?: string;
  /** Milliseconds since the epoch (default `Date.now()`). */
  now?: number;
  /**
   * `false`: never evict (phase one of a two-phase admission). Where the policy
   * (`evict-oldest`, `evict-idle`) would evict one of the user's leases to admit this one,
   * the answer is `{ ok: false, reason: "user-limit", ..., evictable: true }` and nothing
   * changes: no lease is evicted or touched, it is not counted in `rejected` and no
   * `rejected` event is sent, because the host is expected to ask again with eviction
   * allowed once its own checks passed. Expired leases are still reclaimed. Where no
   * eviction would help (the `reject` policy, a user over a lowered limit, the global
   * limit, a full user table) the refusal is the usual one, without `evictable`. In
   * dry-run mode, which never refuses for a quota, it changes nothing. Default `true`.
   */
  evict?: boolean;
}

export interface Lease {
  /** The lease id, equal to `connectionId`. */
  id: string;
  connectionId: string;
  runId: string;
  threadId: string;
  userId: string;
  connectionKey?: string;
  acquiredAt: number;
  touchedAt: number;
  expiresAt: number;
  /** Ids of the extra `kinds`, when configured. */
  ids?: Record<string, string>;
}

/** A refusal, as in `AcquireResult` and `lastRefusal()`. */
export type Refusal = {
  ok: false;
  reason: RefusalReason;
  limit: number;
  active: number;
  retryAfterMs: number;
  /**
   * Only with `evict: false`, and then `true`: the policy would evict one of the user's
   * leases to admit it (ask again with eviction allowed). Absent on every other refusal.
   */
  evictable?: boolean;
};

/**
 * What `acquire` answers. `evicted` (by the policy) and `reclaimed` (expired, of any user)
 * name leases this acquire removed: close those sockets. Both are empty in the common
 * case; a refusal carries `reclaimed` only when it reclaimed some.
 */
export type AcquireResult =
  | { ok: true; lease: Lease; evicted: string[]; reclaimed: string[]; reused: boolean }
  | (Refusal & { reclaimed?: string[] });

/**
 * What `parseId` returns. `uuid` is made when first read (an accessor; the other four are
 * own properties), so a spread or `structuredClone` leaves it out: `toJSON()` (and
 * `JSON.stringify`) give all five as a plain object.
 */
export interface ParsedId {
  kind: string;
  suffix: string;
  uuid: string;
  timestampMs: number;
  version: number;
  /** All five parts as a plain object (what `JSON.stringify` writes). */
  toJSON(): { kind: string; suffix: string; uuid: string; timestampMs: number; version: number };
}

export interface LeaseStats {
  active: number;
  users: number;
  highWater: number;
  acquired: number;
  released: number;
  expired: number;
  evicted: number;
  rejected: number;
  unknownReleases: number;
  nearLimitEvents: number;
  reconciled: number;
  callbackErrors: number;
}

export interface UserStats {
  active: number;
  limit: number;
  leases: Lease[];
}

export type LeaseEventType = "near-limit" | "limit-reached" | "rejected" | "evicted" | "expired";

export interface LeaseEvent {
  type: LeaseEventType;
  userId: string;
  leaseId?: string;
  active: number;
  limit: number;
  reason?: RefusalReason;
  dryRun: boolean;
  at: number;
}
"#;
