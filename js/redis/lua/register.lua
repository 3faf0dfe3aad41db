-- register: after an outage, puts this node's live sockets back in Redis.
-- ARGV: 2 redis restarted (1: Redis lost or may have lost data, so every lease this
--       node holds is written back), then per lease 5 values:
--       id, user, acquiredAt, alive, connection key. Alive (1): accepted while Redis
--       was away, or renewed on this node within the TTL (its socket heartbeats there).
-- A lease Redis still has unexpired is touched. One that another node removed meanwhile
-- (evicted, released, or expired and reclaimed: that node left a tombstone) is reported,
-- so this node closes its socket. Otherwise an alive lease is written back, even one that
-- Redis let expire or lost during the outage: nobody took its slot on purpose, and its
-- socket never stopped. A lease neither alive nor in Redis has expired.
-- Written back even above the limit: quotas apply to new connections from here on.
-- Returns a flat list: id, status ('ok', 'evicted', 'released' or 'expired').
-- The connection key leads to this lease again, unless it leads to another one by now
-- (asked again through another node meanwhile: that lease is the key's).
local function keep_conn_key(user, conn_key, id)
  local ckey = (cluster and up(user) or prefix) .. 'c:' .. user
  redis.call('HSETNX', ckey, conn_key, id)
  redis.call('PEXPIRE', ckey, keep)
end

node = ARGV[1]
local restarted = ARGV[2] == '1'
local now = clock()
local out = {}
for i = 3, #ARGV, 5 do
  local id, user, acquired, alive, conn_key = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3] == '1', ARGV[i + 4]
  local p = cluster and up(user) or prefix
  local lk = p .. 'l:' .. id
  local ukey = p .. 'u:' .. user
  local score = redis.call('ZSCORE', ukey, id)
  local status = 'ok'
  if score and (tonumber(score) > now or alive) then
    local expires = math.max(tonumber(score), now + ttl)
    redis.call('ZADD', ukey, expires, id)
    if indexed then redis.call('ZADD', all_key, expires, id) end
    if redis.call('PEXPIRE', lk, keep) == 0 then
      redis.call('SET', lk, lib().pack(node, acquired, user, conn_key), 'PX', keep)
    end
    if conn_key ~= '' then keep_conn_key(user, conn_key, id) end
  elseif score then
    status = 'expired'
  else
    local tomb = redis.call('GET', p .. 'x:' .. id)
    if tomb then
      status = tomb
    elseif alive or restarted then
      local expires = now + ttl
      redis.call('ZADD', ukey, expires, id)
      if indexed then redis.call('ZADD', all_key, expires, id) end
      redis.call('SET', lk, lib().pack(node, acquired, user, conn_key), 'PX', keep)
      if conn_key ~= '' then keep_conn_key(user, conn_key, id) end
    else
      status = 'expired'
    end
  end
  if status == 'ok' then redis.call('PEXPIRE', ukey, keep) end
  out[#out + 1] = id
  out[#out + 1] = status
end
if indexed and redis.call('EXISTS', all_key) == 1 then redis.call('PEXPIRE', all_key, keep) end
return out
