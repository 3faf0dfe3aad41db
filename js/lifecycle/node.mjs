// `import ... from 'socket-lease/lifecycle'` on Node and Bun: the CommonJS copies, which
// use the same LeaseError class as `socket-lease` there (js/node.cjs loads the CommonJS
// runtime), so `instanceof LeaseError` holds for the lifecycle's option errors too.
import lifecycle from './index.cjs';

export const {
  ConnectionLifecycle,
  Connection,
  LIFECYCLE_OPTIONS,
  LeaseHost,
  checkMs,
  invalidOption,
  isThenable,
  loggedRegistry,
  CloseCodes,
  CLOSE_REASONS,
  DEFAULT_MAX_BUFFERED,
  DEFAULT_MAX_PAYLOAD,
  STATUS_TEXT,
  refusal,
  retryAfterSeconds,
  originCheck,
  parseOriginList,
  RateLimitedLog,
  eventLogger,
  makeLog,
} = lifecycle;
