-- Step 1 — verify the baseline: the split is 50/50 and v3 gets nothing.
--   rollout scripts/steps/step1_verify_baseline.lua SERVICE [ENDPOINT]
local step = require "rollout.step"

return step.run(1, "Verify the baseline: 50/50, nothing for v3", function(s)
  -- a request served by v3 (or any version outside the weights) fails the check
  s:check_split { v1 = 50, v2 = 50 }
end, ...)
