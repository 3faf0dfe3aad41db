-- release: the lease named by KEYS[1] (its record, found from any derived id), from
-- whichever node. Idempotent: 0 when there is nothing (left) to release.
-- KEYS: 1 the lease's record.  ARGV: 3 lease id (conn_...), 4 tombstone ms
-- Returns 1 if released, 0 if unknown.
local id = ARGV[3]
local user = redis.call('HGET', KEYS[1], 'u')
if not user then return 0 end
local was_member = redis.call('ZSCORE', user_key(user), id)
drop(id, user, 'released', tonumber(ARGV[4]))
reindex_user(user)
-- A record whose user set already lost it (the set's own TTL ran out) is not a release.
if was_member then return 1 end
return 0
