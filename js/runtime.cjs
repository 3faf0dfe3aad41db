'use strict';
// The error class thrown by socket-lease for misuse (bad input). A quota refusal is never
// an error: it is `{ ok: false, ... }`. The wasm core constructs this class through the
// loader's registration, so `instanceof LeaseError` holds and `code` is stable.
// Twin of lease-error.mjs (Node 20 cannot share one file between require and browsers).
class LeaseError extends Error {
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

module.exports = { LeaseError };
