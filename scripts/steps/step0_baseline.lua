-- Step 0 — baseline: v1 and v2 running, weights v1=50 v2=50, both healthy.
--   rollout scripts/steps/step0_baseline.lua SERVICE [ENDPOINT]
local step = require "rollout.step"

return step.run(0, "Baseline: deploy v1 and v2 at 50/50", function(s)
  s:deploy "v1"
  s:deploy "v2"
  s:set_weights { v1 = 50, v2 = 50 }
  s:expect_healthy { "v1", "v2" }
end, ...)
