--- rollout.traffic: deployments/<service>/TRAFFIC.yaml, the desired weights,
-- in the original format:
--
--   versions:
--     - name: v1
--       weight: 50
--
-- load() refuses malformed files naming file, line, column and field;
-- save() writes atomically (temp file, fsync, rename).
local fs = require "rollout.fs"
local yaml = require "rollout.yaml"
local weights = require "rollout.weights"
local errors = require "rollout.errors"
local S = require "rollout.schema"

local traffic = {}

local function version_name(v)
  if weights.is_name(v) then return true end
  return false, string.format("%q is not a DNS-1123 label (a-z, 0-9 and '-', at most 63 characters)", v)
end

traffic.spec = S.object {
  fields = {
    versions = S.list {
      default = {},
      item = S.object {
        fields = {
          name = S.string { required = true, check = version_name },
          weight = S.integer { required = true, min = 0, max = weights.MAX_WEIGHT },
        },
      },
    },
  },
}

--- Parses TRAFFIC.yaml text. Returns the list of {name=, weight=} in file
-- order, or raises a refusal. `name` is the file name used in messages.
-- An empty list is allowed (nothing deployed); duplicates are refused.
function traffic.parse(text, name)
  local doc, pos = yaml.load(text, { name = name, positions = true })
  if doc == nil then errors.refuse(pos) end
  if doc == yaml.null then doc = {} end
  local ctx = { file = name, pos = pos }
  local checked = S.check(doc, traffic.spec, ctx)
  local seen = {}
  for i, v in ipairs(checked.versions) do
    if seen[v.name] then
      S.refuse_at(ctx, doc.versions, i, string.format("versions[%d].name", i),
        string.format("version %s is listed twice (first as versions[%d])", v.name, seen[v.name]))
    end
    seen[v.name] = i
  end
  return checked.versions
end

--- Loads a TRAFFIC.yaml file. A missing file is an empty list.
-- Returns list, text (the exact bytes, for "nothing changed" checks).
function traffic.load(path)
  local text, err, code = fs.read(path, { max = 1024 * 1024 })
  if not text then
    if code == "not_found" then return {}, nil end
    errors.refuse(err, { file = path })
  end
  return traffic.parse(text, path), text
end

--- Renders a list of {name=, weight=} in the original format.
function traffic.render(list)
  local versions = {}
  for i, v in ipairs(list) do versions[i] = { name = v.name, weight = v.weight } end
  if #versions == 0 then return "versions: []\n" end
  return yaml.dump({ versions = versions }, { key_order = { "versions", "name", "weight" } })
end

--- Writes the list atomically. Returns true or raises a failure.
function traffic.save(path, list)
  local ok, err = fs.write_atomic(path, traffic.render(list))
  if not ok then errors.fail("cannot write " .. path .. ": " .. err) end
  return true
end

--- The TRAFFIC.yaml list after a weight change: the file's versions in the
-- file's order (those still named or deployed), then newly named versions in
-- the order given, then deployed versions named nowhere, at weight 0.
-- `deployed(name)` says whether a version is deployed; `deployed_names` is
-- the sorted list of them.
function traffic.merge(old_list, list, deployed, deployed_names)
  local new_list, seen, wanted = {}, {}, {}
  for _, e in ipairs(list) do wanted[e.name] = e.weight end
  for _, e in ipairs(old_list) do
    if wanted[e.name] ~= nil or deployed(e.name) then
      new_list[#new_list + 1] = { name = e.name, weight = wanted[e.name] or 0 }
      seen[e.name] = true
    end
  end
  for _, e in ipairs(list) do
    if not seen[e.name] then
      new_list[#new_list + 1] = { name = e.name, weight = e.weight }
      seen[e.name] = true
    end
  end
  for _, v in ipairs(deployed_names) do
    if not seen[v] then new_list[#new_list + 1] = { name = v, weight = 0 } end
  end
  return new_list
end

--- Writes `new_list` to `path` (unless write is false) and runs apply();
-- when apply fails, puts the file's previous bytes (`old_text`, nil: no
-- file) back and re-raises apply's error. The whole runs with ^C deferred,
-- so a change ends whole: file and gateway agree.
function traffic.transaction(path, new_list, old_text, write, apply)
  return require("rollout.sys").critical(function()
    if write ~= false then traffic.save(path, new_list) end
    local res = table.pack(xpcall(apply, errors.traceback))
    if not res[1] then
      if write ~= false then
        if old_text then fs.write_atomic(path, old_text) else fs.remove(path) end
      end
      error(res[2], 0)
    end
    return table.unpack(res, 2, res.n)
  end)
end

--- {name = weight} from a list.
function traffic.to_map(list)
  local m = {}
  for _, v in ipairs(list) do m[v.name] = v.weight end
  return m
end

--- A sorted list from {name = weight} or a list; validates names and
-- integer weights >= 0 (not the all-zero rule: callers decide).
function traffic.normalize(w, what)
  local list = {}
  what = what or "weights"
  if type(w) ~= "table" then errors.refuse(what .. " must be a table like {v1 = 50, v2 = 50}") end
  if #w > 0 then
    for i, e in ipairs(w) do
      if type(e) ~= "table" then errors.refuse(string.format("%s[%d] must be {name=, weight=}", what, i)) end
      list[#list + 1] = { name = e.name, weight = e.weight }
    end
  else
    for name, weight in pairs(w) do list[#list + 1] = { name = name, weight = weight } end
    table.sort(list, function(a, b) return tostring(a.name) < tostring(b.name) end)
  end
  local seen = {}
  for _, e in ipairs(list) do
    if type(e.name) ~= "string" or not weights.is_name(e.name) then
      errors.refuse(string.format("%s: version name %s is not a DNS-1123 label", what,
        type(e.name) == "string" and string.format("%q", e.name) or tostring(e.name)))
    end
    if seen[e.name] then errors.refuse(string.format("%s: version %s is listed twice", what, e.name)) end
    seen[e.name] = true
    local wt = e.weight
    if math.type(wt) == "float" and wt == math.floor(wt) then wt = math.tointeger(wt) or wt end
    if math.type(wt) ~= "integer" then
      local shown = type(e.weight) == "string" and string.format("%q", e.weight) or tostring(e.weight)
      if e.weight ~= e.weight then shown = "NaN" end
      errors.refuse(string.format("%s: weight of %s must be an integer >= 0 (got %s)", what, e.name, shown))
    end
    if wt < 0 or wt > weights.MAX_WEIGHT then
      errors.refuse(string.format("%s: weight of %s must be between 0 and %d (got %d)", what, e.name,
        weights.MAX_WEIGHT, wt))
    end
    e.weight = wt
  end
  return list
end

return traffic
