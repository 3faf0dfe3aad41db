-- userStats: one user's live leases, read only.
-- ARGV: 2 user id. touchedAt is the expiry minus the TTL.
-- Returns {now, then per lease: id, expiresAt, acquiredAt, touchedAt, connection key or ''}
local now = clock()
local out = { now }
local p = cluster and up(ARGV[2]) or prefix
local rows = redis.call('ZRANGEBYSCORE', p .. 'u:' .. ARGV[2], '(' .. now, '+inf', 'WITHSCORES')
for i = 1, #rows, 2 do
  local rec = redis.call('GET', p .. 'l:' .. rows[i])
  local acquired, conn_key = 0, ''
  if rec then
    local _
    _, acquired, _, conn_key = lib().unpack_record(rec)
  end
  local expires = tonumber(rows[i + 1])
  out[#out + 1] = rows[i]
  out[#out + 1] = expires
  out[#out + 1] = acquired
  out[#out + 1] = math.max(acquired, expires - ttl)
  out[#out + 1] = conn_key
end
return out
