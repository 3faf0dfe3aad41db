-- batch: several acquire / release / touch operations of this node in one call, when
-- many are in flight at once (the JS side gathers those issued in one turn of its event
-- loop). Each runs exactly as in its own script, one after the other, at one Redis time;
-- the whole batch is atomic too. One call instead of many saves Redis the per-command
-- work (reading, parsing, the script call itself) and the client the encoding.
-- ARGV: 1 this node's id, then per operation 3 values: "a<limit>" (acquire), "r"
--       (release) or "t" (touch); the lease id; the user id ('' for a touch, and for a
--       release by a node that does not hold the lease). Connection keys are never
--       batched.
-- Returns one element per operation, each what its own script returns. The records of
-- released leases are deleted together at the end (see release.lua).
node = ARGV[1]
local now, now_s = clock()
local out = {}
local dels = {}
local expires_s = string.format('%d', now + ttl)
for i = 2, #ARGV, 3 do
  local op = ARGV[i]
  local kind = string.byte(op)
  if kind == 97 then -- a
    out[#out + 1] = acquire(now, now_s, ARGV[i + 1], ARGV[i + 2], tonumber(string.sub(op, 2)), '', nil, expires_s)
  elseif kind == 114 then -- r
    out[#out + 1] = release(ARGV[i + 1], ARGV[i + 2], '', dels)
  else
    out[#out + 1] = touch(now, ARGV[i + 1])
  end
end
if #dels > 0 then redis.call('DEL', unpack(dels)) end
return out
