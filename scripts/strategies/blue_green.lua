-- Blue-green: the new version ("green") runs beside the old ones with no
-- default traffic; it is previewed through the version header, analysed,
-- then gets all the traffic in one switch; analysed again, switched back
-- on failure; the old versions are removed after a scale-down delay.
--
--   rollout scripts/strategies/blue_green.lua SERVICE VERSION [--interval=10] [--count=3]
--       [--scale-down-delay=30] [--auto-promote=true] ...
local strategy = require "rollout.strategy"

return strategy.run("blue_green", {
  analyses = 2,            -- pre- and post-promotion (for the sequential design)
  auto_promote = true,     -- false: wait for `ops.lua promote` after the preview analysis
  scale_down_delay = 30.0, -- seconds the old versions keep running after the switch (-1: forever)
}, function(s)
  s:step("preview: " .. s.version .. " by header only", function()
    s:set_weights(s:with_share(0))          -- no default traffic for the new version
    s:analyze()                             -- pre-promotion: the preview against the old ones
    if not s.params.auto_promote then s:pause("waiting for promote (auto_promote = false)") end
  end)
  s:step("switch all traffic to " .. s.version, function()
    s:set_weights(s:with_share(100))        -- one change: the old versions keep running
    s:analyze()                             -- post-promotion: a failure switches back (abort)
  end)
  s:promote()
  s:scale_down(s.params.scale_down_delay)   -- the old versions go after the delay
end, ...)
