--- rollout.schema: checks a decoded YAML document against a small schema and
-- refuses bad input with `file:line:col: field: message` (exit code 2).
--
--   local S = require "rollout.schema"
--   local spec = S.object { fields = { port = S.integer { min = 1, max = 65535, default = 8080 } } }
--   local cfg = S.check(doc, spec, { file = "service.yaml", pos = pos })
--
-- `pos` is the positions table of rollout.yaml.load(text, {positions = true}).
local errors = require "rollout.errors"

local S = {}

local function kind(spec, t) spec.kind = t; return spec end
function S.object(spec) return kind(spec, "object") end
function S.list(spec) return kind(spec, "list") end
function S.string(spec) return kind(spec or {}, "string") end
function S.integer(spec) return kind(spec or {}, "integer") end
function S.number(spec) return kind(spec or {}, "number") end
function S.boolean(spec) return kind(spec or {}, "boolean") end
function S.any(spec) return kind(spec or {}, "any") end
--- A map from names (strings) to values of one spec.
function S.map(spec) return kind(spec, "map") end

local NULL = nil
pcall(function() NULL = require("rollout.yaml").null end)

local function describe(v)
  if v == NULL and v ~= nil then return "null" end
  local t = math.type(v) or type(v)
  if t == "float" and v ~= v then return "NaN (not a number)" end
  if t == "float" and (v == math.huge or v == -math.huge) then return (v < 0 and "-" or "") .. "infinity" end
  if t == "float" then return "the number " .. tostring(v) end
  if t == "integer" then return "the integer " .. tostring(v) end
  if t == "string" then return string.format("the string %q", #v > 40 and v:sub(1, 40) .. "..." or v) end
  if t == "table" then return (#v > 0 or (getmetatable(v) or {}).__jsontype == "array") and "a list" or "a mapping" end
  return t
end

local KIND_TEXT = { object = "a mapping", map = "a mapping", list = "a list", string = "a string",
  integer = "an integer", number = "a number", boolean = "true or false" }

local function path_join(path, key)
  if type(key) == "number" then return string.format("%s[%d]", path, key) end
  if path == "" then return key end
  return path .. "." .. key
end

-- ctx: { file=, pos=, parent=table, key=key } to locate a value
local function where(ctx, parent, key)
  local line, col
  local p = ctx.pos and parent and ctx.pos[parent]
  if p then
    local at = key ~= nil and p.at and p.at[key]
    if at then line, col = at.line, at.col else line, col = p.line, p.col end
  end
  -- the document itself (a scalar, or a table made for an empty one): where
  -- its root begins
  if not line and ctx.pos and ctx.pos.root then line, col = ctx.pos.root.line, ctx.pos.root.col end
  if line then return string.format("%s:%d:%d", ctx.file or "<input>", line, col or 1) end
  return ctx.file or "<input>"
end

local function refuse(ctx, parent, key, path, msg)
  errors.refuse(string.format("%s: %s%s", where(ctx, parent, key), path ~= "" and (path .. ": ") or "", msg),
    { file = ctx.file, field = path })
end

local check

local function check_value(v, spec, ctx, parent, key, path)
  if v == NULL and NULL ~= nil then v = nil end
  if v == nil then
    if spec.required then refuse(ctx, parent, key, path, "is required") end
    if type(spec.default) == "table" then
      local copy = {}
      for k, x in pairs(spec.default) do copy[k] = x end
      return copy
    end
    return spec.default
  end
  return check(v, spec, ctx, parent, key, path)
end

function check(v, spec, ctx, parent, key, path)
  local k = spec.kind
  if k == "any" then return v end
  if k == "string" then
    if type(v) ~= "string" then refuse(ctx, parent, key, path, "must be a string, not " .. describe(v)) end
    if spec.one_of then
      local ok = false
      for _, allowed in ipairs(spec.one_of) do if v == allowed then ok = true end end
      if not ok then
        refuse(ctx, parent, key, path, string.format("must be one of %s (got %q)",
          table.concat(spec.one_of, ", "), v))
      end
    end
  elseif k == "integer" then
    local given = v
    -- 50.0 is 50; NaN, infinities and floats beyond 64 bits stay floats and are refused
    if math.type(v) == "float" and v == math.floor(v) then v = math.tointeger(v) or v end
    if math.type(v) ~= "integer" then refuse(ctx, parent, key, path, "must be an integer, not " .. describe(given)) end
    if spec.min and v < spec.min then refuse(ctx, parent, key, path, string.format("must be >= %d (got %d)", spec.min, v)) end
    if spec.max and v > spec.max then refuse(ctx, parent, key, path, string.format("must be <= %d (got %d)", spec.max, v)) end
  elseif k == "number" then
    if type(v) ~= "number" then refuse(ctx, parent, key, path, "must be a number, not " .. describe(v)) end
    if v ~= v or v == math.huge or v == -math.huge then
      refuse(ctx, parent, key, path, "must be a finite number, not " .. describe(v))
    end
    if spec.min and v < spec.min then refuse(ctx, parent, key, path, string.format("must be >= %g (got %g)", spec.min, v)) end
    if spec.max and v > spec.max then refuse(ctx, parent, key, path, string.format("must be <= %g (got %g)", spec.max, v)) end
  elseif k == "boolean" then
    if type(v) ~= "boolean" then refuse(ctx, parent, key, path, "must be true or false, not " .. describe(v)) end
  elseif k == "list" then
    if type(v) ~= "table" or (next(v) ~= nil and #v == 0) or (getmetatable(v) or {}).__jsontype == "object" then
      refuse(ctx, parent, key, path, "must be a list, not " .. describe(v))
    end
    if spec.min and #v < spec.min then
      refuse(ctx, parent, key, path, string.format("needs at least %d item%s", spec.min, spec.min == 1 and "" or "s"))
    end
    local out = {}
    for i, item in ipairs(v) do
      if item == NULL and NULL ~= nil and spec.item.kind ~= "any" then
        -- an empty item ("- " alone): refused, or the list would have a
        -- hole and ipairs would silently stop before the items after it
        refuse(ctx, v, i, path_join(path, i), "must be " .. (KIND_TEXT[spec.item.kind] or spec.item.kind) ..
          ", not null (an empty item)")
      end
      out[i] = item == NULL and item or check_value(item, spec.item, ctx, v, i, path_join(path, i))
    end
    v = out
  elseif k == "object" or k == "map" then
    if type(v) ~= "table" or (#v > 0) or (getmetatable(v) or {}).__jsontype == "array" then
      refuse(ctx, parent, key, path, "must be a mapping, not " .. describe(v))
    end
    local out = {}
    if k == "map" then
      for name, item in pairs(v) do
        if type(name) ~= "string" then refuse(ctx, v, name, path, "keys must be strings") end
        out[name] = check_value(item, spec.item, ctx, v, name, path_join(path, name))
      end
    else
      local names = {}
      for name in pairs(v) do names[#names + 1] = tostring(name) end
      table.sort(names)
      for _, name in ipairs(names) do
        if not spec.fields[name] and not spec.open then
          local known = {}
          for f in pairs(spec.fields) do known[#known + 1] = f end
          table.sort(known)
          refuse(ctx, v, name, path_join(path, name),
            "unknown field (known: " .. table.concat(known, ", ") .. ")")
        end
      end
      for name, fspec in pairs(spec.fields) do
        out[name] = check_value(v[name], fspec, ctx, v, name, path_join(path, name))
      end
      if spec.open then
        for name, item in pairs(v) do if out[name] == nil then out[name] = item end end
      end
    end
    v = out
  end
  if spec.check then
    local ok, msg = spec.check(v)
    if not ok then refuse(ctx, parent, key, path, msg) end
  end
  return v
end

--- Checks `doc` against `spec`; returns the checked value (defaults filled,
-- integral floats made integers) or raises a refusal naming file, line,
-- column and field.
function S.check(doc, spec, ctx)
  ctx = ctx or {}
  return check_value(doc, spec, ctx, nil, nil, "")
end

--- Raises a refusal located at the field `key` of the table `parent`.
function S.refuse_at(ctx, parent, key, path, msg) refuse(ctx, parent, key, path, msg) end

return S
