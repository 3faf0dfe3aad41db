-- The count at which a user is near its limit: the core's warn threshold
-- (src/registry/options.rs, warn_threshold), this engine's copy of the rule:
-- ceil(limit * warnRatio), at least 1, at most the limit. `warn` is the store's
-- warnRatio (a constant of the script, see common.lua). A new lease that brings the user
-- to it has crossed it (counts move by one), which is when near-limit fires. Only the
-- acquire and batch scripts include this file.
local function near_at(limit)
  local at = math.ceil(limit * warn)
  if at < 1 then return 1 end
  if at > limit then return limit end
  return at
end
