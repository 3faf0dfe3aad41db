// Node loader (ESM): the same instance as the CommonJS entry, so a registry created
// through `require` and one through `import` are the same class.
import cjs from './node.cjs';

export const { LeaseRegistry, LeaseError, newId, parseId, deriveId, sameLease, idFromUuid } = cjs;
