-- acquire: prune the user's expired leases, reuse a connection key's lease, count, apply
-- the user-table bound, the per-user limit and policy, the global limit, then write.
-- KEYS: 1 user's leases (zset id -> expiry), 2 the new lease's record, 3 the user's
--       connection keys, 4 all leases (zset), 5 users (zset)
-- ARGV: 3 new lease id, 4 user id, 5 limit, 6 ttl ms, 7 grace ms, 8 policy,
--       9 global limit (-1: none), 10 max users, 11 connection key ('' for none)
-- Returns {1, id, acquiredAt, touchedAt, expiresAt, active, reused, expiredCount,
--          {expired ids held by this node}, {evicted ids}, user's active before the write}
--      or {0, reason, limit, active, retryAfterMs, 0, 0, expiredCount, {...}, {},
--          user's active}
local ukey, lkey, ckey = KEYS[1], KEYS[2], KEYS[3]
local id, user = ARGV[3], ARGV[4]
local limit, ttl, grace = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local policy, global, max_users = ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[10])
local conn_key = ARGV[11]
local keep_ms = ttl + grace
local now = clock_ms()

local expired_count, mine = prune_user(user, now, keep_ms)

-- Earliest expiry in a zset as "ms from now", at least 1 (the Retry-After basis).
local function retry_after(key)
  local first = redis.call('ZRANGEBYSCORE', key, '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if not first[2] then return 1 end
  return math.max(1, tonumber(first[2]) - now)
end

if conn_key ~= '' then
  local existing = redis.call('HGET', ckey, conn_key)
  if existing then
    local score = redis.call('ZSCORE', ukey, existing)
    if score then
      -- The same connection asking again: the same lease, touched, never a second one.
      local expires = math.max(tonumber(score), now + ttl)
      local elk = lease_key(existing)
      redis.call('ZADD', ukey, expires, existing)
      redis.call('ZADD', all_key, expires, existing)
      redis.call('ZADD', users_key, 'GT', expires, user)
      redis.call('HSET', elk, 't', now)
      for _, k in ipairs({ ukey, elk, ckey, all_key, users_key }) do keep(k, keep_ms) end
      local acquired = redis.call('HGET', elk, 'a') or now
      local count = redis.call('ZCARD', ukey)
      return { 1, existing, tonumber(acquired), now, expires, count, 1, expired_count, mine, {}, count }
    end
    redis.call('HDEL', ckey, conn_key)
  end
end

local active = redis.call('ZCARD', ukey)

if active == 0 and redis.call('ZCOUNT', users_key, '(' .. now, '+inf') >= max_users then
  -- A memory bound, not a quota: the users index is cleaned before refusing.
  redis.call('ZREMRANGEBYSCORE', users_key, '-inf', now)
  local users = redis.call('ZCARD', users_key)
  if users >= max_users then
    return { 0, 'user-table-full', max_users, users, retry_after(all_key), 0, 0, expired_count, mine, {}, 0 }
  end
end

local victim = false
if active >= limit then
  -- Eviction swaps one lease for one, only at exactly the limit: a lowered limit never
  -- drops existing leases, it refuses until the user is under it.
  if policy ~= 'reject' and limit > 0 and active == limit then
    if policy == 'evict-idle' then
      -- Expiry is the last touch plus the TTL: the first member is the least recently
      -- touched (ties in id order, which is mint order).
      victim = redis.call('ZRANGE', ukey, 0, 0)[1]
    else
      -- Oldest by acquiredAt (Redis time), ties broken by id. O(limit), at the limit only.
      local best_at
      for _, candidate in ipairs(redis.call('ZRANGE', ukey, 0, -1)) do
        local at = tonumber(redis.call('HGET', lease_key(candidate), 'a') or 0)
        if not best_at or at < best_at or (at == best_at and candidate < victim) then
          best_at, victim = at, candidate
        end
      end
    end
  else
    return { 0, 'user-limit', limit, active, retry_after(ukey), 0, 0, expired_count, mine, {}, active }
  end
end

if global >= 0 then
  local freed = victim and 1 or 0
  local count = redis.call('ZCOUNT', all_key, '(' .. now, '+inf')
  if count - freed >= global then
    return { 0, 'global-limit', global, count, retry_after(all_key), 0, 0, expired_count, mine, {}, active }
  end
end

local before = active
local evicted = {}
if victim then
  drop(victim, user, 'evicted', keep_ms)
  evicted[1] = victim
  active = active - 1
end

local expires = now + ttl
redis.call('ZADD', ukey, expires, id)
if conn_key ~= '' then
  redis.call('HSET', lkey, 'u', user, 'n', node, 'a', now, 't', now, 'k', conn_key)
  redis.call('HSET', ckey, conn_key, id)
  keep(ckey, keep_ms)
else
  redis.call('HSET', lkey, 'u', user, 'n', node, 'a', now, 't', now)
end
redis.call('ZADD', all_key, expires, id)
redis.call('ZADD', users_key, 'GT', expires, user)
keep(ukey, keep_ms)
keep(lkey, keep_ms)
keep(all_key, keep_ms)
keep(users_key, keep_ms)
return { 1, id, now, now, expires, active + 1, 0, expired_count, mine, evicted, before }
