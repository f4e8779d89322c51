--- Helpers shared by the fuzz check scripts (tests/fuzz/*.lua). A check
-- raises (error) on a finding; the harness prints it and aborts.
local F = {}

local function kind(t)
  local mt = getmetatable(t)
  return mt and mt.__jsontype or "none"
end

local function show(v)
  if type(v) == "string" then return string.format("%q", #v > 60 and v:sub(1, 60) .. "..." or v) end
  if math.type(v) then return math.type(v) .. " " .. tostring(v) end
  return tostring(v)
end

--- Deep equality: integers vs floats, NaN equals NaN, the array/object
-- markers of tables, the null sentinel. Returns true or false, where.
function F.same(a, b, path)
  path = path or "value"
  if type(a) ~= type(b) then return false, ("%s: %s vs %s"):format(path, show(a), show(b)) end
  if type(a) == "number" then
    if math.type(a) ~= math.type(b) or (a ~= b and not (a ~= a and b ~= b)) then
      return false, ("%s: %s vs %s"):format(path, show(a), show(b))
    end
    return true
  end
  if type(a) ~= "table" then
    if a ~= b then return false, ("%s: %s vs %s"):format(path, show(a), show(b)) end
    return true
  end
  if kind(a) ~= kind(b) then return false, ("%s: a table marked %s vs %s"):format(path, kind(a), kind(b)) end
  for k, v in pairs(a) do
    local ok, why = F.same(v, b[k], path .. "[" .. show(k) .. "]")
    if not ok then return false, why end
  end
  for k in pairs(b) do
    if a[k] == nil then return false, path .. "[" .. show(k) .. "] only in the second" end
  end
  return true
end

function F.assert_same(a, b, what)
  local ok, why = F.same(a, b)
  if not ok then error((what or "values differ") .. ": " .. why, 2) end
end

--- Lines of text as libyaml counts them (LF, CR, CRLF, NEL, LS, PS end a
-- line; only LF when lf_only) and the longest line in bytes: bounds for a
-- position.
function F.extent(text, lf_only)
  local lines, longest, cur, i, n = 1, 0, 0, 1, #text
  while i <= n do
    local c = text:byte(i)
    local brk = 0
    if c == 10 then brk = 1
    elseif lf_only then brk = 0
    elseif c == 13 then brk = text:byte(i + 1) == 10 and 2 or 1
    elseif c == 0xC2 and text:byte(i + 1) == 0x85 then brk = 2
    elseif c == 0xE2 and text:byte(i + 1) == 0x80 and (text:byte(i + 2) == 0xA8 or text:byte(i + 2) == 0xA9) then brk = 3
    end
    if brk > 0 then
      lines = lines + 1
      if cur > longest then longest = cur end
      cur = 0
      i = i + brk
    else
      cur = cur + 1
      i = i + 1
    end
  end
  if cur > longest then longest = cur end
  return lines, longest
end

--- A line and column inside the text (1-based; one past the end allowed).
function F.check_mark(line, col, lines, longest, what)
  if math.type(line) ~= "integer" or math.type(col) ~= "integer" or line < 1 or col < 1
    or line > lines or col > longest + 1 then
    error(("%s: position %s:%s outside the text (%d lines, longest %d)"):format(what, show(line), show(col),
      lines, longest), 2)
  end
end

--- The error message of a failed load: "NAME:LINE:COL: ..." within the text.
function F.check_located(msg, name, text, what)
  if type(msg) ~= "string" then error(what .. ": message is " .. show(msg), 2) end
  local pat = "^" .. name:gsub("%p", "%%%0") .. ":(%d+):(%d+): ."
  local l, c = msg:match(pat)
  if not l then error(what .. ": message does not start with " .. name .. ":LINE:COL: " .. show(msg), 2) end
  local lines, longest = F.extent(text)
  F.check_mark(math.tointeger(l), math.tointeger(c), lines, longest, what .. " " .. show(msg))
end

--- A refusal from rollout.errors (exit 2) whose message names the file,
-- and file:line:col when the text is YAML that loads.
function F.check_refusal(e, name, text)
  local errors = require "rollout.errors"
  if not errors.is(e, "refused") or e.exit ~= 2 then
    if type(e) == "table" then error("not a refusal: " .. show(e.message) .. " exit=" .. show(e.exit), 2) end
    error(e, 0) -- a crash: keep its traceback
  end
  if type(e.message) ~= "string" or e.message:sub(1, #name + 1) ~= name .. ":" then
    error("a refusal that does not start with the file name: " .. show(e.message), 2)
  end
  -- YAML gives no nil (null is yaml.null): "not nil" means a value was lost
  if (e.message:find("not nil", 1, true) or e.message:find("got nil", 1, true)) and not text:find("nil", 1, true) then
    error("a refusal that lost the value it refuses: " .. show(e.message), 2)
  end
  local yaml = require "rollout.yaml"
  local doc = yaml.load(text)
  -- an empty document (no value, or null) has no line to point at
  if doc ~= nil and doc ~= yaml.null then F.check_located(e.message, name, text, "refusal of YAML that loads") end
end

return F
