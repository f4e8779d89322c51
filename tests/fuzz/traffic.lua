--- Fuzz check for TRAFFIC.yaml validation: rollout.traffic.parse. Accepted
-- or refused (a rollout.errors refusal, exit 2, naming the file, and
-- file:line:col when the text is YAML that loads) are both fine; any other
-- error is a finding. What is accepted must hold the rules, survive
-- render -> parse unchanged, and pass traffic.normalize unchanged.
local traffic = require "rollout.traffic"
local weights = require "rollout.weights"
local errors = require "rollout.errors"
local F = require "fuzz_common"

local NAME = "TRAFFIC.yaml"

local function check_list(list)
  if type(list) ~= "table" then error("parse returned a " .. type(list)) end
  local seen = {}
  for i, e in ipairs(list) do
    if type(e.name) ~= "string" or not weights.is_name(e.name) then error(("entry %d: bad name %s"):format(i, tostring(e.name))) end
    if math.type(e.weight) ~= "integer" or e.weight < 0 or e.weight > weights.MAX_WEIGHT then
      error(("entry %d: bad weight %s"):format(i, tostring(e.weight)))
    end
    if seen[e.name] then error("duplicate " .. e.name .. " accepted") end
    seen[e.name] = true
  end
  if #list ~= (function() local n = 0; for _ in pairs(list) do n = n + 1 end; return n end)() then
    error("the list has holes or extra keys")
  end
end

return function(data)
  local ok, list = xpcall(traffic.parse, errors.traceback, data, NAME)
  if not ok then
    F.check_refusal(list, NAME, data)
    return
  end
  check_list(list)
  -- the file rollout writes reads back the same
  local text = traffic.render(list)
  local ok2, again = xpcall(traffic.parse, errors.traceback, text, NAME)
  if not ok2 then error("render's output is refused: " .. errors.message(again) .. "\n--- output:\n" .. text) end
  F.assert_same(list, again, "render -> parse")
  -- the targets normalize what they read: it must not change or refuse it
  local ok3, norm = xpcall(traffic.normalize, errors.traceback, list, NAME)
  if not ok3 then error("normalize refused a parsed list: " .. errors.message(norm)) end
  if #list > 0 then F.assert_same(list, norm, "normalize") end
  -- shares and percentages when there is weight to share
  local valid = weights.validate(list)
  if valid then
    local pct, sum = weights.percentages(list), 0
    for _, p in pairs(pct) do sum = sum + p end
    if sum ~= 100 then error("percentages sum to " .. sum) end
  end
end
