-- Small helpers shared by specs.
--   check.same(a, b)        deep equality that also tells integers from floats
--                           (NaN equals NaN); returns ok, where-they-differ
--   check.assert_same(expected, got)
--   check.kind(t)           the "array"/"object" marker of a decoded table
--   check.refusal(f, ...)   runs f, asserts it refused (exit 2); the message
--   (waiting, timeouts, pids, servers: tests/helpers/fixture.lua)

local check = {}

--- Runs f(...) and returns the message of the refusal it raised; fails
-- when it raised none, or another error.
function check.refusal(f, ...)
  local errors = require "rollout.errors"
  local ok, err = pcall(f, ...)
  assert(not ok, "expected a refusal")
  assert(errors.is(err, "refused"), "expected a refusal, got: " .. tostring(err))
  assert(err.exit == 2, "expected exit 2, got: " .. tostring(err.exit))
  return err.message
end

function check.same(a, b, path)
  path = path or "value"
  if type(a) ~= type(b) then return false, ("%s: %s vs %s"):format(path, type(a), type(b)) end
  if type(a) == "number" then
    if math.type(a) ~= math.type(b) then return false, ("%s: %s vs %s"):format(path, math.type(a), math.type(b)) end
    if a ~= b and not (a ~= a and b ~= b) then return false, ("%s: %s vs %s"):format(path, a, b) end
    return true
  end
  if type(a) ~= "table" then
    if a ~= b then return false, ("%s: %s vs %s"):format(path, tostring(a), tostring(b)) end
    return true
  end
  for k, v in pairs(a) do
    local ok, why = check.same(v, b[k], path .. "." .. tostring(k))
    if not ok then return false, why end
  end
  for k in pairs(b) do
    if a[k] == nil then return false, path .. "." .. tostring(k) .. " missing" end
  end
  return true
end

function check.assert_same(expected, got)
  local ok, why = check.same(expected, got)
  assert(ok, why)
end

function check.kind(t)
  local mt = getmetatable(t)
  return mt and mt.__jsontype
end

return check
