-- release: the lease named by its id (the JS side turned any derived id into it), from
-- whichever node. Idempotent: 0 when there is nothing (left) to release. The holder
-- passes the user and connection key it knows, which spares reading the record (and
-- the holder's own id: nobody else is told); any other caller passes '' and the record
-- is read.
-- Returns 1 if released, 0 if unknown.
local function release(id, user, conn_key)
  local lkey = prefix .. 'l:' .. id
  local holder = false
  if user == '' then
    local rec = redis.call('GET', lkey)
    if not rec then return 0 end
    local _
    holder, _, user, conn_key = unpack_record(rec)
  end
  if redis.call('ZREM', prefix .. 'u:' .. user, id) == 0 then
    -- Already gone from the user's set (released, or reclaimed with the set's TTL).
    redis.call('DEL', lkey)
    if indexed then redis.call('ZREM', all_key, id) end
    return 0
  end
  redis.call('DEL', lkey)
  if indexed then redis.call('ZREM', all_key, id) end
  if conn_key ~= '' then redis.call('HDEL', prefix .. 'c:' .. user, conn_key) end
  if holder and holder ~= node then
    redis.call('SET', prefix .. 'x:' .. id, 'released', 'PX', keep)
    redis.call('PUBLISH', prefix .. 'n:' .. holder, 'released ' .. id)
  end
  return 1
end
