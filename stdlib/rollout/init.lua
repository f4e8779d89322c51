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

--- Opens a service by name: an object with the target's methods (deploy,
-- set_weights, versions, health, remove_version, remove, endpoint) and the
-- checks (check_split, check_header, confirm). opts: target =, wait =,
-- endpoint =. See stdlib/rollout/service.lua.
function rollout.service(name, opts)
  return require("rollout.service").open(name, opts)
end

--- Returns an error value that makes the program exit with code 2 after
-- printing `message`, without a traceback: for refused input.
function rollout.refuse(message)
  return require("rollout.errors").refused(message)
end

--- Returns the sorted names of the modules the facade can load (used by the
-- REPL's completion): the C bindings registered in package.preload as
-- "rollout.<name>" and the Lua modules found on package.path under rollout/
-- (rollout/<name>.lua or rollout/<name>/init.lua). Runs no module.
function rollout.modules()
  local seen = {}
  for key in pairs(package.preload) do
    local name = type(key) == "string" and key:match("^rollout%.([%w_]+)$")
    if name then seen[name] = true end
  end
  -- directories are read with rollout.fs.list (sorted names, or nil, msg)
  local list
  if package.preload["rollout.fs"] ~= nil then
    local ok, fs = pcall(require, "rollout.fs")
    if ok and type(fs) == "table" and type(fs.list) == "function" then
      list = function(dir)
        local okl, names = pcall(fs.list, dir)
        return okl and type(names) == "table" and names or {}
      end
    end
  end
  if list then
    local dirs = {}
    for template in package.path:gmatch("[^;]+") do
      local dir = template:match("^(.*)/%?%.lua$") or template:match("^(.*)/%?/init%.lua$")
      if dir == nil and (template == "?.lua" or template == "?/init.lua") then dir = "." end
      if dir and not dirs[dir] then
        dirs[dir] = true
        local base = dir .. "/rollout/"
        for _, entry in ipairs(list(base)) do
          local name = entry:match("^([%w_]+)%.lua$")
          if name and name ~= "init" then
            seen[name] = true
          elseif entry:find("^[%w_]+$") then
            local f = io.open(base .. entry .. "/init.lua", "r")
            if f then
              f:close()
              seen[entry] = true
            end
          end
        end
      end
    end
  end
  local names = {}
  for name in pairs(seen) do names[#names + 1] = name end
  table.sort(names)
  return names
end

return rollout
