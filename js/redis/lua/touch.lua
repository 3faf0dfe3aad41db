-- touch: the heartbeat. Moves the expiry to now + ttl (never earlier than it was) and
-- renews the TTLs of the keys the lease lives in.
-- Returns touchedAt (Redis's now, an integer), or 0 when the lease is unknown or expired
-- (the host closes that socket; the next acquire or sweep reclaims the lease).
-- `where`: in a cluster, the lease's user (the record's key carries its hash tag). Then
-- the user's set alone says whether the lease lives: while its slot moves to another
-- master, the set may be there before the record.
local function touch(now, id, where)
  local p = cluster and up(where or '') or prefix
  local lkey = p .. 'l:' .. id
  local user, conn_key, score
  if where then
    user = where
    score = redis.call('ZSCORE', p .. 'u:' .. user, id)
    if not score or tonumber(score) <= now then return 0 end
    local rec = redis.call('GET', lkey)
    conn_key = ''
    if rec then
      local _
      _, _, _, conn_key = lib().unpack_record(rec)
    end
  else
    local rec = redis.call('GET', lkey)
    if not rec then return 0 end
    local _
    _, _, user, conn_key = lib().unpack_record(rec)
    score = redis.call('ZSCORE', p .. 'u:' .. user, id)
    if not score or tonumber(score) <= now then return 0 end
  end
  local ukey = p .. 'u:' .. user
  local expires = math.max(tonumber(score), now + ttl)
  redis.call('ZADD', ukey, expires, id)
  redis.call('PEXPIRE', ukey, keep)
  redis.call('PEXPIRE', lkey, keep)
  if conn_key ~= '' then
    -- The key's entry must live as long as its lease: a connection that only heartbeats
    -- never acquires with its key again, and if the entry expired, that connection asking
    -- again would get a second lease. HSETNX also puts back an entry that was lost, never
    -- over one that names another lease of the key.
    local ckey = p .. 'c:' .. user
    redis.call('HSETNX', ckey, conn_key, id)
    redis.call('PEXPIRE', ckey, keep)
  end
  if indexed then
    redis.call('ZADD', all_key, expires, id)
    redis.call('PEXPIRE', all_key, keep)
  end
  return now
end
