-- Step 6 — cleanup: delete the service. No version, process, route or
-- state may be left.
--   rollout scripts/steps/step6_cleanup.lua SERVICE [ENDPOINT]
local step = require "rollout.step"

return step.run(6, "Cleanup: delete the service", function(s)
  local before = step.footprint(s.service)
  local endpoint = s.service:endpoint()
  local removed = s.service:remove()
  s:say(string.format("Deleted %d version(s)", #removed.versions))
  s:expect_removed(before, endpoint)
end, ...)
