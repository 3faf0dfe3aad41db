// Types come from the generated web bindings; this file only points at them.
export * from '../pkg/web/socket_lease.js';
export { default } from '../pkg/web/socket_lease.js';
