-- Step 3 — give v3 traffic: v1=50 v2=50 v3=50 (relative weights, total 150),
-- so each version gets a third.
--   rollout scripts/steps/step3_add_v3.lua SERVICE [ENDPOINT]
local step = require "rollout.step"

return step.run(3, "Add v3: v1=50 v2=50 v3=50 (a third each)", function(s)
  s:set_weights { v1 = 50, v2 = 50, v3 = 50 }
  s:check_split()
end, ...)
