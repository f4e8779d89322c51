--- rollout: the facade. `local rollout = require "rollout"`.
-- The C bindings are reachable as fields (rollout.weights, rollout.yaml, ...)
-- and load on first use.
local rollout = {}

setmetatable(rollout, {
  __index = function(t, k)
    if type(k) ~= "string" then return nil end
    local ok, mod = pcall(require, "rollout." .. k)
    if ok then
      rawset(t, k, mod)
      return mod
    end
    if not tostring(mod):find("module 'rollout." .. k .. "' not found", 1, true) then
      error(mod, 2)
    end
    return nil
  end,
})

--- Returns an error value that makes the program exit with `code` (default 2)
-- after printing `message`, without a traceback: for refused input.
function rollout.refuse(message, code)
  return setmetatable({ message = message, exit = code or 2 },
    { __tostring = function(e) return e.message end })
end

return rollout
