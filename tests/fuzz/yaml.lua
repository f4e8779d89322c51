--- Fuzz check for rollout.yaml (runtime/bindings/yaml.c): load with positions,
-- load_all, dump of what loaded; the round trip must load again, equal.
local yaml = require "rollout.yaml"
local F = require "fuzz_common"

local NAME = "in.yaml"

-- Every table has a position, and so has each of its values (and keys of
-- mappings); all within the text.
local function check_positions(v, pos, lines, longest, seen)
  if type(v) ~= "table" or seen[v] then return end
  seen[v] = true
  local p = pos[v]
  if not p then error("a table without a position") end
  F.check_mark(p.line, p.col, lines, longest, "table")
  local is_map = getmetatable(v).__jsontype == "object"
  for k, x in pairs(v) do
    local at = p.at[k]
    if not at then error("no position for the value of key " .. tostring(k)) end
    F.check_mark(at.line, at.col, lines, longest, "value")
    if is_map then
      local kp = p.keys[k]
      if not kp then error("no position for key " .. tostring(k)) end
      F.check_mark(kp.line, kp.col, lines, longest, "key")
    end
    check_positions(x, pos, lines, longest, seen)
  end
end

-- dump, load again: the same value (and dump of that: the same text)
local function round_trip(doc, opts, what)
  local ok, text = pcall(yaml.dump, doc, opts)
  if not ok then error(what .. ": dump of a loaded value raised: " .. tostring(text)) end
  local back, err = yaml.load(text, opts)
  if back == nil then error(what .. ": dump's output does not load: " .. err .. "\n--- output:\n" .. text) end
  F.assert_same(doc, back, what .. ": round trip")
  local again = yaml.dump(back, opts)
  if again ~= text then error(what .. ": dump is not stable:\n" .. text .. "\n--- vs\n" .. again) end
end

-- Documents beyond this many nodes (alias expansion: the default cap is
-- 1,000,000) are only loaded, to see that the caps hold in time; the
-- checks below would cost the fuzzer seconds for each.
local CHECKED_NODES = 20000

return function(data)
  -- the size cap is checked up front
  if #data > 0 then
    local v, msg = yaml.load(data, { name = NAME, max_size = #data - 1 })
    if v ~= nil or msg ~= ("%s: input is larger than %d bytes (max_size)"):format(NAME, #data - 1) then
      error("max_size not enforced: " .. tostring(msg))
    end
  end
  local doc, pos = yaml.load(data, { name = NAME, positions = true, max_size = #data })
  if doc ~= nil and not yaml.load(data, { max_nodes = CHECKED_NODES }) then return end
  local docs, err = yaml.load_all(data, { name = NAME })
  if doc == nil then
    F.check_located(pos, NAME, data, "load error")
    if docs ~= nil then error("load refused what load_all accepted: " .. pos) end
    F.check_located(err, NAME, data, "load_all error")
    if pos:find("nesting deeper than", 1, true) then
      -- the largest depth the binding accepts: the C stack must hold
      local deep = yaml.load(data, { max_depth = 1000 })
      if deep ~= nil then round_trip(deep, { max_depth = 1000 }, "max_depth 1000") end
    end
    return
  end
  local lines, longest = F.extent(data)
  check_positions(doc, pos, lines, longest, {})
  round_trip(doc, nil, "document 1")
  -- load only checks the syntax of the documents after the first: load_all
  -- may refuse what load accepts (an undefined alias in document 2)
  if docs == nil then
    F.check_located(err, NAME, data, "load_all error")
    return
  end
  F.assert_same(docs[1] == nil and yaml.null or docs[1], doc, "load vs load_all")
  for i = 2, #docs do round_trip(docs[i], nil, "document " .. i) end
end
