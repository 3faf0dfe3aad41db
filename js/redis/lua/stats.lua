-- stats: deployment-wide gauges, read only. Returns {now, live leases, users with one}.
local now = clock_ms()
return { now, redis.call('ZCOUNT', all_key, '(' .. now, '+inf'), redis.call('ZCOUNT', users_key, '(' .. now, '+inf') }
