// `import ... from 'socket-lease/socket.io'`: re-exports the CommonJS module, so `import`
// and `require` share one instance (and one LeaseRegistry class) on every Node >= 20.
import guard from './guard.cjs';

export const { LeaseGuard, createLeaseGuard, CloseCodes, CLOSE_REASONS, CLOSED_EVENT } = guard;
