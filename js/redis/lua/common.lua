-- The start of every script, after a header that store.cjs generates from the store's
-- options: `prefix`, `ttl`, `grace` (ms), `keep` (ttl + grace, as a string), `policy`,
-- `global` (-1: none) and `warn` (the warnRatio) are constants of the script, so a call sends only what changes
-- (every argument costs both sides time). Nodes with the same options share
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
-- id to decide anything. Every key of a user (its set, its leases' records and
-- tombstones, its connection keys) starts with `cluster and up(user) or prefix`. On one
-- Redis (standalone, or a primary with replicas) that is the prefix, and no key is
-- declared in KEYS. In a Redis
-- Cluster (`cluster`, a constant of the header) it is the prefix and a hash tag made from
-- the user id, so that all of a user's keys are in one slot and each script, routed by
-- the user's set given as KEYS[1] (the JS side builds the same key, keys.cjs), runs on
-- the shard that has them all; the global index (a global limit) is refused there.
--
-- Every redis.call costs Redis's single thread time (and in Redis 7.0 every number
-- passed to it, or joined into a string with `..`, is formatted with sprintf), so the
-- hot paths make as few calls as they can, pass constants as strings and build
-- strings from strings (the one number they format, the expiry score, with '%d', which
-- is cheaper, and once per batch): that, not the network, bounds throughput. For the same reason
-- each call of a script creates as few closures as it can (a closure costs an
-- allocation and a walk of the open upvalues for each one it captures): the helpers of
-- the rare paths are made by lib() when one of those paths runs.
local node -- the calling node's id: set by each script's first line when it needs it
local all_key = prefix .. 'all'
local indexed = global >= 0

-- In a cluster, the start of every key of `user` (see above): the tag is the user id
-- without its '}' (a '}' would end the tag early), '_' when nothing is left; users whose
-- tags agree share a slot, which costs nothing but spread. Made only in a cluster, and
-- every use reads `cluster and up(user) or prefix`: on one Redis that costs one test, not
-- a closure per call and a function call per key.
local up
if cluster then
  up = function(user)
    local tag = string.gsub(user, '}', '')
    if tag == '' then tag = '_' end
    return prefix .. '{' .. tag .. '}'
  end
end

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
