-- Step 4 — retire v2: v2=0, so v1 and v3 share the traffic half and half.
-- v2 keeps running with weight 0: rolling back is one weight change.
--   rollout scripts/steps/step4_retire_v2.lua SERVICE [ENDPOINT]
local step = require "rollout.step"

return step.run(4, "Retire v2: v1=50 v2=0 v3=50", function(s)
  s:set_weights { v1 = 50, v2 = 0, v3 = 50 }
  s:check_split()                -- v2 must serve nothing
  s:expect_healthy { "v2" }      -- but is still running, for an instant rollback
end, ...)
