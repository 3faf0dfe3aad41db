'use strict';
// `require('socket-lease/redis')`: the Redis-backed lease store. See index.d.ts.
const { RedisLeaseStore, createRedisLeaseStore } = require('./store.cjs');

module.exports = { RedisLeaseStore, createRedisLeaseStore };
