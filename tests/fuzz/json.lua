--- Fuzz check for rollout.json (runtime/bindings/json.c): decode, and encode of
-- what decoded; decode(encode(x)) must equal x (kinds, integers vs floats,
-- the markers of empty tables), in compact and pretty form.
local json = require "rollout.json"
local F = require "fuzz_common"

local NAME = "in.json"

-- 1e400 decodes to inf (cJSON's leniency, documented); JSON cannot hold it
local function has_nonfinite(v)
  if type(v) == "number" then return v ~= v or v == math.huge or v == -math.huge end
  if type(v) == "table" then
    for _, x in pairs(v) do if has_nonfinite(x) then return true end end
  end
  return false
end

local function round_trip(v, opts, what)
  local ok, text = pcall(json.encode, v, opts)
  if not ok then
    if has_nonfinite(v) and tostring(text):find("cannot encode", 1, true) then return end
    error(what .. ": encode of a decoded value raised: " .. tostring(text))
  end
  local back, err = json.decode(text, opts)
  if back == nil then error(what .. ": encode's output does not decode: " .. err .. "\n--- output:\n" .. text) end
  F.assert_same(v, back, what .. ": round trip")
  local again = json.encode(back, opts)
  if again ~= text then error(what .. ": encode is not stable:\n" .. text .. "\n--- vs\n" .. again) end
end

return function(data)
  if #data > 0 then
    local v, msg = json.decode(data, { name = NAME, max_size = #data - 1 })
    if v ~= nil or not tostring(msg):find("larger than " .. (#data - 1) .. " bytes", 1, true) then
      error("max_size not enforced: " .. tostring(msg))
    end
  end
  local v, err = json.decode(data, { name = NAME, max_size = #data })
  if v == nil then
    local l, c = tostring(err):match("^in%.json: line (%d+), column (%d+): .")
    if not l then error("decode error without a position: " .. tostring(err)) end
    local lines, longest = F.extent(data, true)
    F.check_mark(math.tointeger(l), math.tointeger(c), lines, longest, "decode error " .. err)
    if err:find("nesting deeper than", 1, true) then
      local deep = json.decode(data, { max_depth = 1000 })
      if deep ~= nil then round_trip(deep, { max_depth = 1000 }, "max_depth 1000") end
    end
    return
  end
  round_trip(v, nil, "compact")
  round_trip(v, { pretty = true }, "pretty")
end
