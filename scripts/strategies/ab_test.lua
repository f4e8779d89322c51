-- A/B test: requests that carry a header (or a cookie) go to the new
-- version, all others stay where they are; the two groups are compared,
-- then the new version is promoted or the route removed.
--
--   rollout scripts/strategies/ab_test.lua SERVICE VERSION [--header=x-user-group:beta]
--       [--cookie=canary:always] [--interval=10] [--count=5] [--promote=true] ...
local strategy = require "rollout.strategy"

return strategy.run("ab_test", {
  header = "x-user-group:beta", -- NAME:VALUE that sends a request to the new version ("" = none)
  cookie = "canary:always",     -- NAME:VALUE of a cookie that does the same ("" = none)
  count = 5,                    -- looks of the analysis
  analyses = 1,
  promote = true,               -- false: remove the route after a good test, keep the weights
}, function(s)
  s:step("route the test group to " .. s.version, function()
    s:header_route("ab-test", s.version, s:match_from_params())
  end)
  s:step("compare " .. s.version .. " with the others", function()
    s:analyze()
  end)
  if s.params.promote then
    s:promote()                 -- the new version gets all the traffic, the route goes
  else
    s:finish("the test passed; the route is removed and the weights stay")
  end
end, ...)
