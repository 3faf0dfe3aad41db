-- batch: several acquire / release / touch operations of this node in one call, when
-- many are in flight at once (the JS side gathers those issued in one turn of its event
-- loop). Each runs exactly as in its own script, one after the other, at one Redis time;
-- the whole batch is atomic too. One call instead of many saves Redis the per-command
-- work (reading, parsing, the script call itself) and the client the encoding.
-- ARGV: 2.. pairs of: an operation ("a <limit> <lease id>", "r <lease id>" or
--       "t <lease id>"; connection keys are never batched) and the user id ('' for t)
-- Returns one line per operation, each as its own script returns it.
local now = clock_ms()
local out = {}
for i = 2, #ARGV, 2 do
  local op, user = ARGV[i], ARGV[i + 1]
  local kind = string.sub(op, 1, 1)
  if kind == 'a' then
    local limit, id = string.match(op, '^a (%d+) (.+)$')
    out[#out + 1] = acquire(now, id, user, tonumber(limit), '')
  elseif kind == 'r' then
    out[#out + 1] = release(string.sub(op, 3), user, '')
  else
    out[#out + 1] = touch(now, string.sub(op, 3))
  end
end
return table.concat(out, '\n')
