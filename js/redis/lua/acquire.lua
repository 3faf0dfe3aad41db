-- acquire: prune the user's expired leases, reuse a connection key's lease, count, apply
-- the per-user limit and policy and the global limit, then write. `now` is Redis's TIME
-- (`now_s` the same as a string).
-- Returns, in the usual case (granted, a new lease, nothing expired or evicted, fewer
-- than 1000 leases, the near-limit threshold not reached), one integer: now * 1000 + the
-- user's leases after it (the lease's times and its previous count follow from these).
-- Otherwise one line of space-separated fields (ids are TypeIDs: no spaces):
--   granted: 1 id acquiredAt touchedAt expiresAt active reused userActiveBefore
--            near n <n expired ids> <evicted ids>
--            (near: 1 when this new lease brought the user to near_at(limit), lib.lua)
--   refused: 0 reason limit active retryAfterMs userActive evictable n <n expired ids>
-- The expired ids are every expired lease of the user this call removed, whichever node
-- held it (the others are told on their channels, see lib.lua).
-- An integer or one bulk string is far cheaper for both sides than nested arrays, and
-- the integer spares Redis formatting numbers.
-- `entries`: the user's set as ZRANGE … WITHSCORES gives it, when the caller read it.
-- `expires_s`: now + ttl as a string, when the caller made it (a batch makes it once for
-- all its acquires: a score handed over as a number is formatted by Redis each time).
-- `no_evict`: true when it may not evict (`evict: false`, phase one of a two-phase
-- admission): where the policy would evict, it refuses with evictable 1 instead and
-- writes nothing (expired leases are still removed).
local function acquire(now, now_s, id, user, limit, conn_key, entries, expires_s, no_evict)
  local up_user = cluster and up(user) or prefix
  local ukey = up_user .. 'u:' .. user

  -- One read gives the count, the expired leases and the earliest expiry (the user's
  -- set is small: at most its limit, plus what expired since its last operation).
  entries = entries or redis.call('ZRANGE', ukey, 0, -1, 'WITHSCORES')
  local n = #entries
  if n == 0 and conn_key == '' and not indexed and limit * warn > 1 then
    -- The usual case, with nothing to count, prune, evict or look up (as in
    -- acquire_alone.lua).
    redis.call('ZADD', ukey, expires_s or string.format('%d', now + ttl), id)
    redis.call('PEXPIRE', ukey, keep)
    redis.call('PSETEX', up_user .. 'l:' .. id, keep, node .. ' ' .. now_s .. ' ' .. user)
    return now * 1000 + 1
  end

  local active = 0
  local live, expired = {}, {}
  local first_live_at = false
  for i = 1, n, 2 do
    local member, at = entries[i], tonumber(entries[i + 1])
    if at <= now then
      expired[#expired + 1] = member
      lib().drop_by_id(member, user, 'expired')
    else
      active = active + 1
      live[active] = member
      if not first_live_at then first_live_at = at end
    end
  end

  local function granted(lease, acquired, expires, count, reused, before, near, evicted)
    local line = table.concat({ 1, lease, acquired, now, expires, count, reused, before, near and 1 or 0, #expired, unpack(expired) }, ' ')
    if evicted then return line .. ' ' .. evicted end
    return line
  end

  local function refuse(reason, lim, count, retry, evictable)
    return table.concat({ 0, reason, lim, count, math.max(1, retry), active, evictable and 1 or 0, #expired, unpack(expired) }, ' ')
  end

  if conn_key ~= '' then
    local ckey = up_user .. 'c:' .. user
    local existing = redis.call('HGET', ckey, conn_key)
    if existing then
      local score = redis.call('ZSCORE', ukey, existing)
      if score then
        -- The same connection asking again: the same lease, touched, never a second one.
        local expires = math.max(tonumber(score), now + ttl)
        local elk = up_user .. 'l:' .. existing
        redis.call('ZADD', ukey, expires, existing)
        if indexed then redis.call('ZADD', all_key, expires, existing) end
        redis.call('PEXPIRE', ukey, keep)
        redis.call('PEXPIRE', ckey, keep)
        redis.call('PEXPIRE', elk, keep)
        local rec = redis.call('GET', elk)
        local acquired = now
        if rec then
          local _
          _, acquired = lib().unpack_record(rec)
        end
        return granted(existing, acquired, expires, active, 1, active, false, false)
      end
      redis.call('HDEL', ckey, conn_key)
    end
  end

  local victim = false
  if active >= limit then
    -- Eviction swaps one lease for one, only at exactly the limit: a lowered limit never
    -- drops existing leases, it refuses until the user is under it.
    if policy ~= 'reject' and limit > 0 and active == limit then
      if no_evict then
        -- An eviction would admit: which lease it would take is phase two's to decide.
        victim = true
      elseif policy == 'evict-idle' then
        -- Expiry is the last touch plus the TTL: the first live member is the least
        -- recently touched (ties in id order, which is mint order).
        victim = live[1]
      else
        -- Oldest by acquiredAt (Redis time), ties broken by id. O(limit), at the limit.
        local best_at
        for _, candidate in ipairs(live) do
          local rec = redis.call('GET', up_user .. 'l:' .. candidate)
          local at = 0
          if rec then
            local _
            _, at = lib().unpack_record(rec)
          end
          if not best_at or at < best_at or (at == best_at and candidate < victim) then
            best_at, victim = at, candidate
          end
        end
      end
    else
      return refuse('user-limit', limit, active, first_live_at and (first_live_at - now) or 1)
    end
  end

  if indexed then
    local freed = victim and 1 or 0
    local count = redis.call('ZCOUNT', all_key, '(' .. now_s, '+inf')
    if count - freed >= global then
      local first = redis.call('ZRANGEBYSCORE', all_key, '(' .. now_s, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
      return refuse('global-limit', global, count, first[2] and (tonumber(first[2]) - now) or 1)
    end
  end

  -- Not allowed to evict, and nothing but the eviction stands in the way.
  if no_evict and victim then return refuse('user-limit', limit, active, first_live_at and (first_live_at - now) or 1, true) end

  local after = active + 1
  if victim then
    lib().drop_by_id(victim, user, 'evicted')
    after = active
  end

  local expires = now + ttl
  redis.call('ZADD', ukey, expires, id)
  redis.call('PEXPIRE', ukey, keep)
  redis.call('PSETEX', up_user .. 'l:' .. id, keep, lib().pack(node, now_s, user, conn_key))
  if indexed then
    redis.call('ZADD', all_key, expires, id)
    redis.call('PEXPIRE', all_key, keep)
  end
  if conn_key ~= '' then
    local ckey = up_user .. 'c:' .. user
    redis.call('HSET', ckey, conn_key, id)
    redis.call('PEXPIRE', ckey, keep)
  end
  local near = limit > 0 and after == lib().near_at(limit)
  if not victim and #expired == 0 and after < 1000 and conn_key == '' and not near then return now * 1000 + after end
  return granted(id, now, expires, after, 0, active, near, victim)
end
