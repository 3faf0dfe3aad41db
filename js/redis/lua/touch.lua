-- touch: the heartbeat. Moves the expiry to now + ttl (never earlier than it was).
-- KEYS: 1 the lease's record.  ARGV: 3 lease id, 4 ttl ms, 5 grace ms
-- Returns {1, touchedAt, expiresAt}, or {0, now} when the lease is unknown or expired
-- (the host closes that socket; the next acquire or sweep reclaims the lease).
local id = ARGV[3]
local ttl, grace = tonumber(ARGV[4]), tonumber(ARGV[5])
local user = redis.call('HGET', KEYS[1], 'u')
local now = clock_ms()
if not user then return { 0, now } end
local ukey = user_key(user)
local score = redis.call('ZSCORE', ukey, id)
if not score or tonumber(score) <= now then return { 0, now } end
local expires = tonumber(score)
if now + ttl > expires then
  expires = now + ttl
  redis.call('ZADD', ukey, expires, id)
  redis.call('ZADD', all_key, expires, id)
  redis.call('ZADD', users_key, 'GT', expires, user)
  keep(ukey, ttl + grace)
  keep(all_key, ttl + grace)
  keep(users_key, ttl + grace)
end
redis.call('HSET', KEYS[1], 't', now)
keep(KEYS[1], ttl + grace)
return { 1, now, expires }
