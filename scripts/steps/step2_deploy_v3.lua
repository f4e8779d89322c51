-- Step 2 — deploy v3 with weight 0: normal traffic never reaches it, a
-- request with `x-version: v3` always does.
--   rollout scripts/steps/step2_deploy_v3.lua SERVICE [ENDPOINT]
local step = require "rollout.step"

return step.run(2, "Deploy v3 with weight 0", function(s)
  s:deploy "v3"
  s:set_weights { v1 = 50, v2 = 50, v3 = 0 }
  s:check_split { v1 = 50, v2 = 50, v3 = 0 } -- v3 must serve no default request
  s:check_header "v3"                        -- and every header request
end, ...)
