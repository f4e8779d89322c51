--- rollout.cli: argument handling for scripts. Flags may come anywhere;
-- a usage error is a refusal (exit code 2) that shows the usage.
local errors = require "rollout.errors"

local cli = {}

--- Parses `args` (a list of strings) with `spec`:
--   { flags = { json = "boolean", endpoint = "string", ... }, usage = "..." }
-- Returns options (flag = value) and the positional arguments.
function cli.parse(args, spec)
  local opts, pos = {}, {}
  local flags = spec.flags or {}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--" then
      for j = i + 1, #args do pos[#pos + 1] = args[j] end
      break
    end
    local name, value = a:match("^%-%-([%w%-_]+)=(.*)$")
    if not name then name = a:match("^%-%-([%w%-_]+)$") end
    if name then
      local key = name:gsub("%-", "_")
      local kind = flags[key]
      if key == "help" then
        io.stdout:write(spec.usage, "\n")
        os.exit(0)
      end
      if not kind then
        errors.refuse(string.format("unknown option --%s\n%s", name, spec.usage))
      end
      if kind == "boolean" then
        if value then errors.refuse(string.format("--%s takes no value\n%s", name, spec.usage)) end
        opts[key] = true
      else
        if not value then
          i = i + 1
          value = args[i]
          if value == nil then errors.refuse(string.format("--%s needs a value\n%s", name, spec.usage)) end
        end
        if kind == "number" then
          local n = tonumber(value)
          if not n then errors.refuse(string.format("--%s needs a number (got %q)\n%s", name, value, spec.usage)) end
          value = n
        end
        opts[key] = value
      end
    elseif a:match("^%-%a") then
      errors.refuse(string.format("unknown option %s\n%s", a, spec.usage))
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  return opts, pos
end

--- The script's arguments (the `...` of the chunk, or the global arg).
function cli.args(...)
  local list = table.pack(...)
  if list.n == 0 and type(arg) == "table" then
    list = {}
    for i = 1, #arg do list[i] = arg[i] end
    return list
  end
  local out = {}
  for i = 1, list.n do out[i] = tostring(list[i]) end
  return out
end

return cli
