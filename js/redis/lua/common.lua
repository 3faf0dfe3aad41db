-- Prepended to every script by store.cjs, after a header that store.cjs generates from
-- the store's options: `prefix`, `ttl`, `grace` (ms), `policy` and `global` (-1: none)
-- are constants of the script, so a call sends only what changes (every argument costs
-- the client time to encode). Nodes with the same options share scripts, and every node
-- of a deployment must have the same options.
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
-- ARGV[1] is always the id of the calling node.
--
-- Every redis.call costs Redis's single thread time, so the scripts make as few as they
-- can: that, not the network, bounds throughput with many operations in flight.
local node = ARGV[1]
local keep_ms = ttl + grace
local all_key = prefix .. 'all'
local indexed = global >= 0

-- Redis's own clock, so hosts with skewed clocks agree on every expiry.
local function clock_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A lease record is one string: "<node> <acquiredAt> <user length> <user><connection key>"
-- (the user and the key are arbitrary bytes, hence the length).
local function pack(holder, acquired, user, conn_key)
  return holder .. ' ' .. acquired .. ' ' .. #user .. ' ' .. user .. conn_key
end

local function unpack_record(rec)
  local holder, acquired, len, at = string.match(rec, '^(%S+) (%d+) (%d+) ()')
  len = tonumber(len)
  return holder, tonumber(acquired), string.sub(rec, at, at + len - 1), string.sub(rec, at + len)
end

-- Removes one lease from its record, its user's set, the global index and its connection
-- key. When another node holds its socket, that node is told on its channel (so it closes
-- the socket) and a tombstone records why, so that node does not write the lease back
-- after an outage.
local function drop(id, user, holder, conn_key, why)
  redis.call('DEL', prefix .. 'l:' .. id)
  redis.call('ZREM', prefix .. 'u:' .. user, id)
  if indexed then redis.call('ZREM', all_key, id) end
  if conn_key ~= '' then redis.call('HDEL', prefix .. 'c:' .. user, conn_key) end
  if holder ~= node then
    redis.call('SET', prefix .. 'x:' .. id, why, 'PX', keep_ms)
    redis.call('PUBLISH', prefix .. 'n:' .. holder, why .. ' ' .. id)
  end
end

-- drop() for a lease known only by id and user (expired, evicted). Returns its holder,
-- or false when its record was already gone (then only the index entries are removed).
local function drop_by_id(id, user, why)
  local rec = redis.call('GET', prefix .. 'l:' .. id)
  if not rec then
    redis.call('ZREM', prefix .. 'u:' .. user, id)
    if indexed then redis.call('ZREM', all_key, id) end
    return false
  end
  local holder, _, _, conn_key = unpack_record(rec)
  drop(id, user, holder, conn_key, why)
  return holder
end
