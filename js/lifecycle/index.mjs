// `import ... from 'socket-lease/lifecycle'`: the runtime-neutral connection lifecycle, for
// writing a host adapter of your own. See index.d.ts and docs/hosts.md.
export { ConnectionLifecycle, Connection, LIFECYCLE_OPTIONS, LeaseHost, checkMs, invalidOption, isThenable, loggedRegistry } from './lifecycle.mjs';
export { CloseCodes, CLOSE_REASONS, DEFAULT_MAX_BUFFERED, DEFAULT_MAX_PAYLOAD, STATUS_TEXT, isTooBig, refusal, retryAfterSeconds } from './protocol.mjs';
export { originCheck, parseOriginList } from './origin.mjs';
export { RateLimitedLog, eventLogger, makeLog } from './log.mjs';
