-- sweep: reclaims expired leases of every user, at most ARGV[3] per call so that one
-- call never blocks Redis for long. Each node's guard sweeps, so a node that died
-- (SIGKILL) needs nobody to notice: its leases are reclaimed here or by the next acquire
-- of their user.
-- KEYS: 1 all leases.  ARGV: 3 batch size, 4 tombstone ms
-- Returns {reclaimed count, {id, user, user's leases left, ... for those this node held},
--          more (1 if the batch was full)}
local batch, keep_ms = tonumber(ARGV[3]), tonumber(ARGV[4])
local now = clock_ms()
local expired = redis.call('ZRANGEBYSCORE', all_key, '-inf', now, 'LIMIT', 0, batch)
local mine = {}
local touched_users = {}
for i = 1, #expired do
  local id = expired[i]
  local user = redis.call('HGET', lease_key(id), 'u')
  if user then
    if drop(id, user, 'expired', keep_ms) == node then
      mine[#mine + 1] = id
      mine[#mine + 1] = user
      mine[#mine + 1] = redis.call('ZCARD', user_key(user))
    end
    touched_users[user] = true
  else
    -- The record's own TTL ran out first: only the index entry is left.
    redis.call('ZREM', all_key, id)
  end
end
for user in pairs(touched_users) do reindex_user(user) end
redis.call('ZREMRANGEBYSCORE', users_key, '-inf', now)
local more = 0
if #expired == batch then more = 1 end
return { #expired, mine, more }
