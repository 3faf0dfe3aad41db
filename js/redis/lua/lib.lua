-- The helpers of the rare paths (records read or written with a connection key, expired
-- leases, evictions, other nodes' leases), made once per call of a script that needs
-- them.
local helpers
local function lib()
  if helpers then return helpers end
  local h = {}

  -- A lease record is one string: "<node> <acquiredAt> <user>" or, with a connection key,
  -- "<node> <acquiredAt>#<user length> <user><connection key>" (the user and the key are
  -- arbitrary bytes, hence the length; without a key the user is simply the rest).
  function h.pack(holder, acquired, user, conn_key)
    if conn_key == '' then return holder .. ' ' .. acquired .. ' ' .. user end
    return holder .. ' ' .. acquired .. '#' .. #user .. ' ' .. user .. conn_key
  end

  -- Returns holder, acquiredAt (number), user, connection key ('' for none).
  function h.unpack_record(rec)
    local holder, acquired, sep, at = string.match(rec, '^(%S+) (%d+)([ #])()')
    if sep == ' ' then return holder, tonumber(acquired), string.sub(rec, at), '' end
    local len, start = string.match(rec, '^(%d+) ()', at)
    len = tonumber(len)
    return holder, tonumber(acquired), string.sub(rec, start, start + len - 1), string.sub(rec, start + len)
  end

  -- Removes one lease from its record, its user's set, the global index and its
  -- connection key. When another node holds its socket, that node is told on its channel
  -- (so it closes the socket) and a tombstone records why, so that node does not write
  -- the lease back after an outage.
  function h.drop(id, user, holder, conn_key, why)
    local p = cluster and up(user) or prefix
    redis.call('DEL', p .. 'l:' .. id)
    redis.call('ZREM', p .. 'u:' .. user, id)
    if indexed then redis.call('ZREM', all_key, id) end
    if conn_key ~= '' then h.unmap(user, conn_key, id) end
    if holder ~= node then
      redis.call('SET', p .. 'x:' .. id, why, 'PX', keep)
      redis.call('PUBLISH', prefix .. 'n:' .. holder, why .. ' ' .. id)
    end
  end

  -- Removes a connection key's entry only while it still names this lease: a newer lease
  -- of the same key (given one after this lease's entry was lost) keeps its own.
  function h.unmap(user, conn_key, id)
    local ckey = (cluster and up(user) or prefix) .. 'c:' .. user
    if redis.call('HGET', ckey, conn_key) == id then redis.call('HDEL', ckey, conn_key) end
  end

  -- drop() for a lease known only by id and user (expired, evicted). Returns its holder,
  -- or false when its record was already gone (then only the index entries are removed).
  function h.drop_by_id(id, user, why)
    local p = cluster and up(user) or prefix
    local rec = redis.call('GET', p .. 'l:' .. id)
    if not rec then
      redis.call('ZREM', p .. 'u:' .. user, id)
      if indexed then redis.call('ZREM', all_key, id) end
      return false
    end
    local holder, _, _, conn_key = h.unpack_record(rec)
    h.drop(id, user, holder, conn_key, why)
    return holder
  end

  -- The count at which a user is near its limit: the core's warn threshold
  -- (src/registry/options.rs, warn_threshold), this engine's copy of the rule:
  -- ceil(limit * warnRatio), at least 1, at most the limit (`warn` is the store's
  -- warnRatio, a constant of the script). A new lease that brings the user to it has
  -- crossed it (counts move by one), which is when near-limit fires. The usual cases of
  -- acquire test `limit * warn > 1` instead, which is near_at(limit) > 1 (warn <= 1)
  -- without making these helpers.
  function h.near_at(limit)
    local at = math.ceil(limit * warn)
    if at < 1 then return 1 end
    if at > limit then return limit end
    return at
  end

  helpers = h
  return h
end
