-- stats: the deployment-wide count of live leases, read only, when there is a global
-- index (a global limit); -1 otherwise. Returns {now, live leases or -1}.
local now = clock()
if not indexed then return { now, -1 } end
return { now, redis.call('ZCOUNT', all_key, '(' .. now, '+inf') }
