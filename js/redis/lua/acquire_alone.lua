-- The acquire script (not the batch) starts here: its usual case (a user with no lease
-- left, no connection key, no global limit, and a first lease that is not already near
-- the limit) is decided and written before any function of the general case is made,
-- since making closures costs Redis time on every call. The same case in acquire()
-- (acquire.lua) does the same writes.
-- ARGV: node, lease id, user, limit[, connection key ('' for none)[, '1': may not evict]]
node = ARGV[1]
local now, now_s = clock()
local id, user, limit, conn_key = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5] or ''
local up_user = cluster and up(user) or prefix
local ukey = up_user .. 'u:' .. user
local entries = redis.call('ZRANGE', ukey, 0, -1, 'WITHSCORES')
if #entries == 0 and conn_key == '' and not indexed and limit * warn > 1 then
  redis.call('ZADD', ukey, string.format('%d', now + ttl), id)
  redis.call('PEXPIRE', ukey, keep)
  redis.call('PSETEX', up_user .. 'l:' .. id, keep, node .. ' ' .. now_s .. ' ' .. user)
  return now * 1000 + 1
end
