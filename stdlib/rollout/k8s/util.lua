--- rollout.k8s.util: small pure helpers of the Kubernetes client: base64
-- (kubeconfig *-data fields, exec cluster info), PEM checks, RFC 3339
-- times, URL escaping and one-line messages. No I/O.
local util = {}

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local DEC = {}
for i = 1, #B64 do DEC[B64:byte(i)] = i - 1 end

--- Standard base64 (RFC 4648 §4) -> bytes; whitespace is ignored and the
-- padding is optional, as Go's encoding/base64 StdEncoding with the
-- kubeconfig loader's tolerance. nil when the text is not base64.
function util.base64_decode(text)
  if type(text) ~= "string" then return nil end
  local s = text:gsub("%s", "")
  s = s:gsub("=+$", "")
  if #s % 4 == 1 then return nil end
  local out, n = {}, 0
  for i = 1, #s, 4 do
    local a, b, c, d = DEC[s:byte(i)], DEC[s:byte(i + 1) or -1], s:byte(i + 2), s:byte(i + 3)
    if a == nil or b == nil then return nil end
    local cv, dv = c and DEC[c], d and DEC[d]
    if (c and cv == nil) or (d and dv == nil) then return nil end
    local v = (a << 18) | (b << 12) | ((cv or 0) << 6) | (dv or 0)
    n = n + 1
    if not c then
      out[n] = string.char((v >> 16) & 255)
    elseif not d then
      out[n] = string.char((v >> 16) & 255, (v >> 8) & 255)
    else
      out[n] = string.char((v >> 16) & 255, (v >> 8) & 255, v & 255)
    end
  end
  return table.concat(out)
end

--- bytes -> standard base64 with padding.
function util.base64_encode(bytes)
  local out, n = {}, 0
  for i = 1, #bytes, 3 do
    local a, b, c = bytes:byte(i, i + 2)
    local v = (a << 16) | ((b or 0) << 8) | (c or 0)
    local function ch(k) return B64:sub(k + 1, k + 1) end
    n = n + 1
    out[n] = ch((v >> 18) & 63) .. ch((v >> 12) & 63) .. (b and ch((v >> 6) & 63) or "=") .. (c and ch(v & 63) or "=")
  end
  return table.concat(out)
end

--- Does the PEM text hold a block of that type? "PRIVATE KEY" matches any
-- "... PRIVATE KEY" (EC, RSA, PKCS#8).
function util.pem_has(text, kind)
  if type(text) ~= "string" or text:find("\0", 1, true) then return false end
  if kind == "PRIVATE KEY" then
    return text:find("%-%-%-%-%-BEGIN [A-Z ]*PRIVATE KEY%-%-%-%-%-") ~= nil
  end
  return text:find("-----BEGIN " .. kind .. "-----", 1, true) ~= nil
end

-- Days since 1970-01-01 of a proleptic Gregorian date.
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

--- RFC 3339 ("2026-11-26T21:16:44Z", "...44.5+01:00") -> epoch seconds, or
-- nil when it is not one.
function util.rfc3339(ts)
  if type(ts) ~= "string" then return nil end
  local y, mo, d, h, mi, s, rest = ts:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[Tt ](%d%d):(%d%d):(%d%d)(.*)$")
  if not y then return nil end
  y, mo, d, h, mi, s = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(s)
  if mo < 1 or mo > 12 or d < 1 or d > 31 or h > 23 or mi > 59 or s > 60 then return nil end
  local frac = 0
  local f, after = rest:match("^%.(%d+)(.*)$")
  if f then frac, rest = tonumber("0." .. f), after end
  local offset
  if rest == "Z" or rest == "z" then
    offset = 0
  else
    local sign, oh, om = rest:match("^([+-])(%d%d):(%d%d)$")
    if not sign then return nil end
    offset = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "-" and -1 or 1)
  end
  return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s + frac - offset
end

--- Percent-encodes s, keeping RFC 3986's unreserved characters.
function util.escape(s)
  return (tostring(s):gsub("[^A-Za-z0-9%-._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

--- "k1=v1&k2=v2" from a list of {key, value} pairs (escaped).
function util.query(pairs_list)
  local out = {}
  for _, kv in ipairs(pairs_list) do
    if kv[2] ~= nil then out[#out + 1] = util.escape(kv[1]) .. "=" .. util.escape(kv[2]) end
  end
  return table.concat(out, "&")
end

--- The first line of s (CR, LF and TAB runs become one space), at most max
-- bytes ("..." when cut).
function util.one_line(s, max)
  s = tostring(s or ""):gsub("[\r\n\t]+", " "):gsub("^%s+", ""):gsub("%s+$", "")
  max = max or 2000
  if #s > max then s = s:sub(1, max) .. "..." end
  return s
end

--- The first non-empty line of s, trimmed, at most 300 bytes.
function util.first_line(s)
  for line in tostring(s or ""):gmatch("[^\n]+") do
    line = line:gsub("^%s+", ""):gsub("%s+$", "")
    if line ~= "" then return line:sub(1, 300) end
  end
  return nil
end

--- "scheme://host[:port]/path" of url, without userinfo, query or fragment.
function util.redact_url(url)
  local scheme, rest = tostring(url):match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return "(invalid URL)" end
  rest = rest:gsub("[?#].*$", "")
  local authority, path = rest:match("^([^/]*)(.*)$")
  authority = authority:gsub("^.*@", "")
  return scheme .. "://" .. authority .. path
end

--- Copies a plain value deeply (tables without metatables are copied as
-- tables; the JSON array/object markers are kept).
function util.copy(v, depth)
  if type(v) ~= "table" then return v end
  depth = (depth or 0) + 1
  if depth > 100 then error("value nested too deeply", 2) end
  local out = {}
  for k, x in pairs(v) do out[k] = util.copy(x, depth) end
  return setmetatable(out, getmetatable(v))
end

return util
