-- Step 5 — retire v1: v1=0 v2=0 v3=100, all traffic to v3.
--   rollout scripts/steps/step5_retire_v1.lua SERVICE [ENDPOINT]
local step = require "rollout.step"

return step.run(5, "Retire v1: v1=0 v2=0 v3=100", function(s)
  s:set_weights { v1 = 0, v2 = 0, v3 = 100 }
  s:check_split()                -- v1 and v2 must serve nothing
end, ...)
