// Types come from the generated bindings; this file only points at them.
export * from '../pkg/nodejs/socket_lease.js';
