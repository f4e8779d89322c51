-- Canary: move traffic to the new version in steps, judge it against the
-- versions that serve now at every step, promote at the end, roll back to
-- exactly the weights of before on any failure.
--
--   rollout scripts/strategies/canary.lua SERVICE VERSION [--steps=5,10,25,50,100]
--       [--interval=10] [--count=3] [--alpha=0.01] [--report=FILE] [--json] ...
--
-- Every parameter below can be given as --name=value, or in service.yaml
-- under `strategy:` (or `strategy: {canary: {...}}`). Copy this file to
-- write your own: each line is a step of the workflow.
local strategy = require "rollout.strategy"

return strategy.run("canary", {
  steps = { 5, 10, 25, 50, 100 }, -- % of the traffic for the new version, step by step
  interval = 10.0,                -- seconds between two looks of the analysis
  count = 3,                      -- looks per step (a clearly good canary moves on sooner)
}, function(s)
  for _, percent in ipairs(s.params.steps) do
    s:step(string.format("%g%% of the traffic to %s", percent, s.version), function()
      s:set_weights(s:with_share(percent))  -- the others keep their relative weights
      if percent < 100 then s:analyze() end -- error rate and latency against the baseline
    end)
  end
  s:promote()                               -- all traffic to the new version; the old ones
end, ...)                                   -- keep running at weight 0 (instant rollback)
