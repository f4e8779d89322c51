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
          if n and (n ~= n or n == math.huge or n == -math.huge) then n = nil end -- "1e999", "inf"
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

-- Edit distance (insertions, deletions, substitutions, transpositions).
local function distance(a, b)
  local la, lb = #a, #b
  local d = {}
  for i = 0, la do d[i] = { [0] = i } end
  for j = 0, lb do d[0][j] = j end
  for i = 1, la do
    for j = 1, lb do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      local v = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and a:sub(i, i) == b:sub(j - 1, j - 1) and a:sub(i - 1, i - 1) == b:sub(j, j) then
        v = math.min(v, d[i - 2][j - 2] + 1)
      end
      d[i][j] = v
    end
  end
  return d[la][lb]
end

--- " (did you mean X?)" when one of `candidates` is close to `word`
-- (at most a third of its letters off), else "".
function cli.suggest(word, candidates)
  local best, best_d
  for _, c in ipairs(candidates) do
    local dist = distance(word:lower(), c:lower())
    if dist <= math.max(1, #c // 3) and (not best_d or dist < best_d) then best, best_d = c, dist end
  end
  return best and string.format(" (did you mean %s?)", best) or ""
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
