-- The release script (not the batch) starts here: the holder's release without a
-- connection key or global index is done before any function is made (making closures
-- costs Redis time on every call). The same as release() (release.lua) in that case.
-- ARGV: lease id, user, connection key (the holder), or lease id, '', '', node[, its user
--       (in a cluster)] (another node)
local id, user, conn_key, where = ARGV[1], ARGV[2], ARGV[3] or '', ARGV[5]
node = ARGV[4]
if user ~= '' and conn_key == '' and not indexed then
  local p = cluster and up(user) or prefix
  local removed = redis.call('ZREM', p .. 'u:' .. user, id)
  redis.call('DEL', p .. 'l:' .. id)
  return removed
end
