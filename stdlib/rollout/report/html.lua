--- rollout.report.html: escaping and formatting for the HTML report.
--
-- Every string that comes from a run (version names, reasons, metric
-- names, who, why, parameters) goes through html.esc before it is written,
-- in text and in (double-quoted) attributes alike — in HTML and in the
-- inline SVG, which the HTML parser reads the same way. esc also makes the
-- text valid UTF-8 and drops control characters, so a hostile or broken
-- value can neither open a tag nor corrupt the page.
local html = {}

local REPLACEMENT = "\u{FFFD}"

--- `s` as valid UTF-8 without control characters (tab and newline kept):
-- each invalid byte and each control character becomes U+FFFD.
function html.clean(s)
  s = tostring(s)
  if not utf8.len(s) then
    local out, i, n = {}, 1, #s
    while i <= n do
      local ok, bad = utf8.len(s, i)
      if ok then out[#out + 1] = s:sub(i) break end
      out[#out + 1] = s:sub(i, bad - 1)
      out[#out + 1] = REPLACEMENT
      i = bad + 1
    end
    s = table.concat(out)
  end
  -- C0 controls but \t \n, DEL, and the C1 controls (U+0080..U+009F)
  s = s:gsub("[%z\1-\8\11-\31\127]", REPLACEMENT):gsub("\194[\128-\159]", REPLACEMENT)
  return s
end

local ENTITIES = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }

--- Escapes text for HTML/SVG text content and double- or single-quoted
-- attribute values.
function html.esc(s)
  if s == nil then return "" end
  return (html.clean(s):gsub("[&<>\"']", ENTITIES))
end

--- Shortens `s` to at most `max` characters (UTF-8), with an ellipsis.
function html.trim(s, max)
  s = html.clean(s)
  if utf8.len(s) <= max then return s end
  return s:sub(1, utf8.offset(s, max) - 1) .. "…"
end

local function finite(x) return type(x) == "number" and x == x and x ~= math.huge and x ~= -math.huge end

--- A number for an SVG attribute: finite, one decimal (0 when not finite —
-- callers check first; this is the last guard against "nan" in a path).
function html.n(x)
  if not finite(x) then return "0" end
  local s = string.format("%.1f", x)
  if s == "-0.0" then s = "0.0" end
  return (s:gsub("%.0$", ""))
end

--- A percentage for a share 0..1.
function html.pct(x, digits)
  if not finite(x) then return "–" end
  return string.format("%." .. (digits or 1) .. "f%%", 100 * x)
end

--- A rate 0..1 as a percentage with enough digits for small rates.
function html.rate(x)
  if not finite(x) then return "–" end
  if x == 0 then return "0%" end
  if x < 0.001 then return string.format("%.3f%%", 100 * x) end
  if x < 0.1 then return string.format("%.2f%%", 100 * x) end
  return string.format("%.1f%%", 100 * x)
end

--- Milliseconds.
function html.ms(x)
  if not finite(x) then return "–" end
  if x >= 1000 then return string.format("%.2f s", x / 1000) end
  if x >= 100 then return string.format("%.0f ms", x) end
  if x >= 10 then return string.format("%.1f ms", x) end
  return string.format("%.2f ms", x)
end

--- Any value as short text: numbers with 4 significant digits, NaN and
-- ±Inf by name, tables as compact JSON (or a summary when they cannot be).
function html.value(v)
  local t = type(v)
  if t == "number" then
    if v ~= v then return "NaN" end
    if v == math.huge then return "+Inf" end
    if v == -math.huge then return "-Inf" end
    if math.type(v) == "integer" then return tostring(v) end
    return string.format("%.4g", v)
  elseif t == "string" then
    return v
  elseif t == "boolean" or t == "nil" then
    return tostring(v)
  elseif t == "table" then
    local ok, s = pcall(require("rollout.json").encode, v)
    if ok then return s end
    local n = 0
    for _ in pairs(v) do n = n + 1 end
    return string.format("{%d fields}", n)
  end
  return "<" .. t .. ">"
end

--- Seconds as a duration: 42s, 3m05s, 1h02m.
function html.duration(s)
  if not finite(s) then return "–" end
  if s < 10 then return string.format("%.1fs", s) end
  s = math.floor(s + 0.5)
  if s < 60 then return string.format("%ds", s) end
  if s < 3600 then return string.format("%dm%02ds", s // 60, s % 60) end
  return string.format("%dh%02dm", s // 3600, (s % 3600) // 60)
end

--- A wall-clock time in UTC.
function html.utc(t)
  if not finite(t) then return "–" end
  return os.date("!%Y-%m-%d %H:%M:%S UTC", math.floor(t))
end

--- "v1=50 v2=50" for a weights table.
function html.weights(w)
  if type(w) ~= "table" then return "–" end
  local ks = {}
  for k in pairs(w) do if type(k) == "string" then ks[#ks + 1] = k end end
  table.sort(ks)
  local parts = {}
  for _, k in ipairs(ks) do parts[#parts + 1] = k .. "=" .. html.value(w[k]) end
  return #parts > 0 and table.concat(parts, " ") or "–"
end

return html
