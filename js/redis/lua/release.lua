-- release: the lease named by its id (the JS side turned any derived id into it), from
-- whichever node. Idempotent: 0 when there is nothing (left) to release. The holder
-- passes the user and connection key it knows, which spares reading the record (and
-- the holder's own id: nobody else is told); any other caller passes '' and the record
-- is read. `dels`, in a batch: the records to delete are added to it, and the batch
-- deletes them all in one call at its end (nothing in a batch reads the record of a
-- lease already gone from its user's set, so no operation can tell the difference).
-- `where`: in a cluster, the lease's user when the caller is not its holder (the JS side
-- found it in the id index, keys.cjs): the record's key carries the user's hash tag.
-- Returns 1 if released, 0 if unknown.
local function release(id, user, conn_key, dels, where)
  local p = cluster and up(user ~= '' and user or where or '') or prefix
  local lkey = p .. 'l:' .. id
  local holder = false
  if user == '' then
    local rec = redis.call('GET', lkey)
    if not rec then return 0 end
    local _
    holder, _, user, conn_key = lib().unpack_record(rec)
  end
  local removed = redis.call('ZREM', p .. 'u:' .. user, id)
  if dels then dels[#dels + 1] = lkey else redis.call('DEL', lkey) end
  if indexed then redis.call('ZREM', all_key, id) end
  -- 0: already gone from the user's set (released, or reclaimed with the set's TTL).
  if removed == 0 then return 0 end
  if conn_key ~= '' then lib().unmap(user, conn_key, id) end
  if holder and holder ~= node then
    redis.call('SET', p .. 'x:' .. id, 'released', 'PX', keep)
    redis.call('PUBLISH', prefix .. 'n:' .. holder, 'released ' .. id)
  end
  return 1
end
