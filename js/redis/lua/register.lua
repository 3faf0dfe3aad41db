-- register: after an outage, puts this node's live sockets back in Redis.
-- ARGV: 2 redis restarted (1: Redis lost or may have lost data, so every lease this
--       node holds is written back), then per lease 5 values:
--       id, user, acquiredAt, local (1: accepted while Redis was away), connection key.
-- A lease Redis still has is touched. A missing one is written back when it was accepted
-- locally or Redis restarted; otherwise another node removed it meanwhile (evicted,
-- released, or expired and reclaimed), so this node must close its socket.
-- Written back even above the limit: quotas apply to new connections from here on.
-- Returns a flat list: id, status ('ok', 'evicted', 'released' or 'expired').
node = ARGV[1]
local restarted = ARGV[2] == '1'
local now = clock()
local out = {}
for i = 3, #ARGV, 5 do
  local id, user, acquired, is_local, conn_key = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local lk = prefix .. 'l:' .. id
  local ukey = prefix .. 'u:' .. user
  local score = redis.call('ZSCORE', ukey, id)
  local status = 'ok'
  if score and tonumber(score) > now then
    local expires = math.max(tonumber(score), now + ttl)
    redis.call('ZADD', ukey, expires, id)
    if indexed then redis.call('ZADD', all_key, expires, id) end
    if redis.call('PEXPIRE', lk, keep) == 0 then
      redis.call('SET', lk, lib().pack(node, acquired, user, conn_key), 'PX', keep)
    end
  elseif score then
    status = 'expired'
  else
    local tomb = redis.call('GET', prefix .. 'x:' .. id)
    if tomb then
      status = tomb
    elseif is_local == '1' or restarted then
      local expires = now + ttl
      redis.call('ZADD', ukey, expires, id)
      if indexed then redis.call('ZADD', all_key, expires, id) end
      redis.call('SET', lk, lib().pack(node, acquired, user, conn_key), 'PX', keep)
      if conn_key ~= '' then
        redis.call('HSET', prefix .. 'c:' .. user, conn_key, id)
        redis.call('PEXPIRE', prefix .. 'c:' .. user, keep)
      end
    else
      status = 'expired'
    end
  end
  if status == 'ok' then redis.call('PEXPIRE', ukey, keep) end
  out[#out + 1] = id
  out[#out + 1] = status
end
if redis.call('EXISTS', all_key) == 1 then redis.call('PEXPIRE', all_key, keep) end
return out
