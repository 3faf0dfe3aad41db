// `import ... from 'socket-lease/redis'`: re-exports the CommonJS module, so `import` and
// `require` share one instance (and one WASM instance minting the ids).
import store from './index.cjs';

export const { RedisLeaseStore, createRedisLeaseStore } = store;
