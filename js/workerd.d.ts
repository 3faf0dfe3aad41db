// Types come from the generated web bindings; the module is ready at import time.
export { LeaseRegistry, newId, parseId, deriveId, sameLease, idFromUuid, LeaseError } from '../pkg/web/socket_lease.js';
export type * from '../pkg/web/socket_lease.js';
