-- sweep: reports which of this node's leases expired (or vanished: removed by another
-- node while the message about it was lost), and reclaims them. With a global index it
-- also reclaims expired leases of every user, at most a batch per call so that one call
-- never blocks Redis for long: a node that died (SIGKILL) needs nobody to notice, its
-- leases are reclaimed here or by the next acquire of their user (and their keys expire).
-- ARGV: 2 batch size (0: no global pass), then pairs of lease id and user id: this
--       node's leases not renewed for a while (the JS side picks them)
-- Returns {reclaimed count, {id, user, user's leases left, ... for those this node held},
--          more (1 if the global batch was full)}
node = ARGV[1]
local batch = tonumber(ARGV[2])
local now = clock()
local mine = {}
local reclaimed = 0
for i = 3, #ARGV, 2 do
  local id, user = ARGV[i], ARGV[i + 1]
  local ukey = (cluster and up(user) or prefix) .. 'u:' .. user
  local score = redis.call('ZSCORE', ukey, id)
  if not score or tonumber(score) <= now then
    if score then
      lib().drop_by_id(id, user, 'expired')
      reclaimed = reclaimed + 1
    end
    mine[#mine + 1] = id
    mine[#mine + 1] = user
    mine[#mine + 1] = redis.call('ZCARD', ukey)
  end
end
local more = 0
if indexed and batch > 0 then
  local expired = redis.call('ZRANGEBYSCORE', all_key, '-inf', now, 'LIMIT', 0, batch)
  for i = 1, #expired do
    local id = expired[i]
    -- (One Redis only: a global limit is refused in a cluster, so keys carry no tag here.)
    local rec = redis.call('GET', prefix .. 'l:' .. id)
    if rec then
      local holder, _, user, conn_key = lib().unpack_record(rec)
      local ukey = prefix .. 'u:' .. user
      -- Touched since it was indexed? The user's set has the authoritative expiry.
      local score = tonumber(redis.call('ZSCORE', ukey, id) or 0)
      if score > now then
        redis.call('ZADD', all_key, score, id)
      else
        lib().drop(id, user, holder, conn_key, 'expired')
        reclaimed = reclaimed + 1
        if holder == node then
          mine[#mine + 1] = id
          mine[#mine + 1] = user
          mine[#mine + 1] = redis.call('ZCARD', ukey)
        end
      end
    else
      -- The record's own TTL ran out first: only the index entry is left.
      redis.call('ZREM', all_key, id)
    end
  end
  if redis.call('EXISTS', all_key) == 1 then redis.call('PEXPIRE', all_key, keep) end
  if #expired == batch then more = 1 end
end
return { reclaimed, mine, more }
