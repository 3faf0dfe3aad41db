// JS half of the boundary, shared by the browser and workerd loaders.
// Twin of runtime.cjs (Node 20 cannot load one file from both `require` and browsers);
// keep the two identical apart from the module syntax.

/**
 * Thrown by socket-lease for misuse (bad input). A quota refusal is never an error: it
 * is `{ ok: false, ... }`. The wasm core constructs this class (the loader registers it),
 * so `instanceof LeaseError` holds and `code` is stable.
 */
export class LeaseError extends Error {
  /**
   * @param {string} message
   * @param {import('../pkg/web/socket_lease.js').LeaseErrorCode} code
   */
  constructor(message, code) {
    super(message);
    this.name = 'LeaseError';
    this.code = code;
  }
}

/** @param {unknown} v */
const kind = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/**
 * The fast path takes its strings and numbers straight into wasm, skipping the JsValue
 * round trip that doubles its cost; the generated glue would silently coerce a wrong
 * type (or throw a bare TypeError), so the types are checked here instead, once, before
 * the call. Wraps the methods on the class itself, so every registry (also restored
 * ones) gets the checks.
 * @param {any} LeaseRegistry
 */
export function guardFastPath(LeaseRegistry) {
  const proto = LeaseRegistry.prototype;
  const acquireHandle = proto.acquireHandle;
  const releaseHandle = proto.releaseHandle;
  const touchHandle = proto.touchHandle;
  /** @param {unknown} now */
  const checkNow = (now) => {
    if (now !== undefined && now !== null && typeof now !== 'number') {
      throw new LeaseError(`invalid time: now must be a number of milliseconds, got ${kind(now)}`, 'INVALID_TIME');
    }
  };
  /** @param {unknown} handle */
  const checkHandle = (handle) => {
    if (typeof handle !== 'number') {
      throw new LeaseError(`invalid id: a lease handle must be a number, got ${kind(handle)}`, 'INVALID_ID');
    }
  };
  proto.acquireHandle = function (/** @type {unknown} */ userId, /** @type {unknown} */ connectionKey, /** @type {unknown} */ now) {
    if (typeof userId !== 'string') {
      throw new LeaseError(`invalid user id: user id must be a string, got ${kind(userId)}`, 'INVALID_USER_ID');
    }
    if (connectionKey !== undefined && connectionKey !== null && typeof connectionKey !== 'string') {
      throw new LeaseError(`invalid option: connectionKey must be a string, got ${kind(connectionKey)}`, 'INVALID_OPTION');
    }
    checkNow(now);
    return acquireHandle.call(this, userId, connectionKey ?? undefined, now ?? undefined);
  };
  proto.releaseHandle = function (/** @type {unknown} */ handle, /** @type {unknown} */ now) {
    checkHandle(handle);
    checkNow(now);
    return releaseHandle.call(this, handle, now ?? undefined);
  };
  proto.touchHandle = function (/** @type {unknown} */ handle, /** @type {unknown} */ now) {
    checkHandle(handle);
    checkNow(now);
    return touchHandle.call(this, handle, now ?? undefined);
  };
}
