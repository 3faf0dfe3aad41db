-- register: after an outage, puts this node's live sockets back in Redis.
-- ARGV: 3 ttl ms, 4 grace ms, 5 redis restarted (1: Redis lost or may have lost data,
--       so every lease this node holds is written back), then per lease 5 values:
--       id, user, acquiredAt, local (1: accepted while Redis was away), connection key.
-- A lease Redis still has is touched. A missing one is written back when it was accepted
-- locally or Redis restarted; otherwise another node removed it meanwhile (evicted,
-- released, or expired and reclaimed), so this node must close its socket.
-- Written back even above the limit: quotas apply to new connections from here on.
-- Returns a flat list: id, status ('ok', 'evicted', 'released' or 'expired').
local ttl, grace = tonumber(ARGV[3]), tonumber(ARGV[4])
local restarted = ARGV[5] == '1'
local keep_ms = ttl + grace
local now = clock_ms()
local out = {}
local users = {}
for i = 6, #ARGV, 5 do
  local id, user, acquired, is_local, conn_key = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local lk = lease_key(id)
  local ukey = user_key(user)
  local score = redis.call('ZSCORE', ukey, id)
  local status = 'ok'
  if score and tonumber(score) > now then
    local expires = math.max(tonumber(score), now + ttl)
    redis.call('ZADD', ukey, expires, id)
    redis.call('ZADD', all_key, expires, id)
    redis.call('HSET', lk, 't', now)
  elseif score then
    status = 'expired'
  else
    local tomb = redis.call('GET', prefix .. 'x:' .. id)
    if tomb then
      status = tomb
    elseif is_local == '1' or restarted then
      local expires = now + ttl
      redis.call('ZADD', ukey, expires, id)
      redis.call('ZADD', all_key, expires, id)
      redis.call('HSET', lk, 'u', user, 'n', node, 'a', acquired, 't', now)
      if conn_key ~= '' then
        redis.call('HSET', lk, 'k', conn_key)
        redis.call('HSET', conn_keys_key(user), conn_key, id)
        keep(conn_keys_key(user), keep_ms)
      end
    else
      status = 'expired'
    end
  end
  if status == 'ok' then
    keep(lk, keep_ms)
    keep(ukey, keep_ms)
    users[user] = true
  end
  out[#out + 1] = id
  out[#out + 1] = status
end
for user in pairs(users) do reindex_user(user) end
keep(all_key, keep_ms)
keep(users_key, keep_ms)
return out
