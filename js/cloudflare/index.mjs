// socket-lease/cloudflare: per-user WebSocket leases on Cloudflare Workers with one
// Durable Object per user and the hibernation API. See docs/cloudflare.md.
export { SocketLeaseObject } from './object.mjs';
export { handleSocketLease, createSocketLeaseWorker } from './worker.mjs';
export { readConfig, ConfigError, DEFAULT_LIMIT, DEFAULT_TTL_MS, MIN_TTL_MS, MAX_TTL_MS } from './config.mjs';
export {
  CLOSE_EVICTED,
  CLOSE_LEASE_EXPIRED,
  CLOSE_MESSAGE_TOO_BIG,
  CLOSE_REASONS,
  DEFAULT_MAX_PAYLOAD,
  MAX_MAX_PAYLOAD,
  HEARTBEAT_PING,
  HEARTBEAT_PONG,
  MAX_SOCKETS_PER_OBJECT,
} from './protocol.mjs';
