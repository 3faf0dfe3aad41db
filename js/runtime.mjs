// The error class thrown by socket-lease for misuse (bad input). A quota refusal is never
// an error: it is `{ ok: false, ... }`. Twin of lease-error.cjs, for browsers and workerd.
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
