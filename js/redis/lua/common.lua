-- Prepended to every script by store.cjs. Keys are built here only from the configured
-- prefix and from ids that the JS side minted (newId) or validated and converted
-- (parseId/deriveId) with the WASM core: Lua never parses an id to decide anything.
--
-- ARGV[1] is always the key prefix and ARGV[2] the id of the calling node.
local prefix = ARGV[1]
local node = ARGV[2]
local all_key = prefix .. 'all'
local users_key = prefix .. 'users'

-- Redis's own clock, so hosts with skewed clocks agree on every expiry.
local function clock_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function lease_key(id) return prefix .. 'l:' .. id end
local function user_key(user) return prefix .. 'u:' .. user end
local function conn_keys_key(user) return prefix .. 'c:' .. user end

-- The users index holds each user's newest expiry (or not the user at all), so counting
-- users with a live lease is one ZCOUNT.
local function reindex_user(user)
  local top = redis.call('ZRANGE', user_key(user), -1, -1, 'WITHSCORES')
  if top[1] then
    redis.call('ZADD', users_key, top[2], user)
  else
    redis.call('ZREM', users_key, user)
  end
end

-- Removes one lease of `user` from every structure. When another node holds its socket,
-- that node is told on its channel (so it closes the socket) and a tombstone records why,
-- so the lease is not re-registered by that node after an outage. Returns the id of the
-- node that held the lease, or false when its record was already gone.
local function drop(id, user, why, tombstone_ms)
  local lk = lease_key(id)
  local rec = redis.call('HMGET', lk, 'n', 'k')
  redis.call('DEL', lk)
  redis.call('ZREM', user_key(user), id)
  redis.call('ZREM', all_key, id)
  if rec[2] then redis.call('HDEL', conn_keys_key(user), rec[2]) end
  local holder = rec[1]
  if holder and holder ~= node then
    redis.call('SET', prefix .. 'x:' .. id, why, 'PX', tombstone_ms)
    redis.call('PUBLISH', prefix .. 'n:' .. holder, why .. ' ' .. id)
  end
  return holder
end

-- Drops every expired lease of `user`. Returns how many, and the ids of those this node
-- held (its sweep reports them to the host, which closes their sockets).
local function prune_user(user, now, tombstone_ms)
  local expired = redis.call('ZRANGEBYSCORE', user_key(user), '-inf', now)
  local mine = {}
  for i = 1, #expired do
    if drop(expired[i], user, 'expired', tombstone_ms) == node then mine[#mine + 1] = expired[i] end
  end
  if #expired > 0 then reindex_user(user) end
  return #expired, mine
end

-- Writes the keys' TTLs after a change: each key outlives the newest lease it holds by
-- the grace period, so a dead deployment leaves nothing behind for long.
local function keep(key, ms) redis.call('PEXPIRE', key, ms) end
