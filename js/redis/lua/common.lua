-- Prepended to every script by store.cjs, after a header that store.cjs generates from
-- the store's options: `prefix`, `ttl`, `grace` (ms), `keep` (ttl + grace, as a string),
-- `policy` and `global` (-1: none) are constants of the script, so a call sends only what
-- changes (every argument costs both sides time). Nodes with the same options share
-- scripts, and every node of a deployment must have the same options.
--
-- The data: per user a sorted set of lease ids scored by expiry (u:<user>); per lease a
-- record (l:<lease id>) that every derived id leads to; per user the ids of its
-- connection keys (c:<user>, only when keys are used); tombstones (x:<lease id>) of
-- leases another node removed. Only with a global limit, a global sorted set of all
-- leases (all) to count them: without one nothing global is written at all.
--
-- Keys are built here only from the prefix and from ids that the JS side minted (newId)
-- or validated and converted (parseId/deriveId) with the WASM core: Lua never parses an
-- id to decide anything. Keys are not declared in KEYS: one deployment is one Redis
-- (standalone, or a primary with replicas), not a Redis Cluster.
--
-- Every redis.call costs Redis's single thread time (and in Redis 7.0 every number
-- passed to it, or joined into a string with `..`, is formatted with sprintf), so the
-- hot paths make as few calls as they can, pass constants as strings and build
-- strings from strings: that, not the network, bounds throughput. For the same reason
-- each call of a script creates as few closures as it can (a closure costs an
-- allocation and a walk of the open upvalues for each one it captures): the helpers of
-- the rare paths are made by lib() when one of those paths runs.
local node -- the calling node's id: set by each script's first line when it needs it
local all_key = prefix .. 'all'
local indexed = global >= 0

-- Redis's own clock, so hosts with skewed clocks agree on every expiry. Returns the time
-- in ms as a number and as its decimal string, the string made from TIME's own strings
-- (seconds, microseconds) without formatting a number.
local function clock()
  local t = redis.call('TIME')
  local us = t[2]
  local n = #us
  local s
  if n == 6 then
    s = t[1] .. string.sub(us, 1, 3)
  elseif n > 3 then
    s = t[1] .. string.rep('0', 6 - n) .. string.sub(us, 1, n - 3)
  else
    s = t[1] .. '000'
  end
  return tonumber(s), s
end

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
    redis.call('DEL', prefix .. 'l:' .. id)
    redis.call('ZREM', prefix .. 'u:' .. user, id)
    if indexed then redis.call('ZREM', all_key, id) end
    if conn_key ~= '' then redis.call('HDEL', prefix .. 'c:' .. user, conn_key) end
    if holder ~= node then
      redis.call('SET', prefix .. 'x:' .. id, why, 'PX', keep)
      redis.call('PUBLISH', prefix .. 'n:' .. holder, why .. ' ' .. id)
    end
  end

  -- drop() for a lease known only by id and user (expired, evicted). Returns its holder,
  -- or false when its record was already gone (then only the index entries are removed).
  function h.drop_by_id(id, user, why)
    local rec = redis.call('GET', prefix .. 'l:' .. id)
    if not rec then
      redis.call('ZREM', prefix .. 'u:' .. user, id)
      if indexed then redis.call('ZREM', all_key, id) end
      return false
    end
    local holder, _, _, conn_key = h.unpack_record(rec)
    h.drop(id, user, holder, conn_key, why)
    return holder
  end

  helpers = h
  return h
end
