-- userStats: one user's live leases, read only.
-- KEYS: 1 the user's leases.
-- Returns {now, then per lease: id, expiresAt, acquiredAt, touchedAt, connection key or ''}
local now = clock_ms()
local out = { now }
local rows = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES')
for i = 1, #rows, 2 do
  local rec = redis.call('HMGET', lease_key(rows[i]), 'a', 't', 'k')
  out[#out + 1] = rows[i]
  out[#out + 1] = tonumber(rows[i + 1])
  out[#out + 1] = tonumber(rec[1] or 0)
  out[#out + 1] = tonumber(rec[2] or 0)
  out[#out + 1] = rec[3] or ''
end
return out
