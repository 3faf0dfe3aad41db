// `import ... from 'socket-lease/node'`: re-exports the CommonJS module, so `import` and
// `require` share one instance (and one LeaseRegistry class) on every Node >= 20.
import guard from './guard.cjs';

export const { LeaseGuard, createLeaseGuard, createEventLogger, CloseCodes } = guard;
