--- rollout.strategy.routes: the routes a strategy owns beside the weights — "send
-- requests that match this to that version" (A/B tests, previews). Both
-- targets render the same list, after the version-header routes and before
-- the weighted default:
--
--   { { name = "ab", version = "v3",
--       match = { { headers = { ["x-group"] = "beta" } },      -- entries: ANY matches
--                 { cookies = { canary = "always" } } } } }    -- inside one: ALL match
--
-- Header names are matched case-insensitively (kept lowercase), header and
-- cookie values exactly. Names and values are checked here once, so the
-- renderers (HAProxy config, Istio, Gateway API) never see anything that
-- could break out of their syntax.
local errors = require "rollout.errors"
local weights = require "rollout.weights"

local routes = {}

routes.MAX_ROUTES = 16
routes.MAX_ENTRIES = 8
routes.MAX_VALUE = 256

-- RFC 7230 token (header names, cookie names)
local function is_token(s)
  return type(s) == "string" and #s > 0 and #s <= 128 and not s:find("[^%w!#%$%%&'%*%+%-%.%^_`|~]")
end

-- a header value rollout routes on: visible ASCII without quotes,
-- backslashes or '$' (kept out so that no renderer has to escape them)
local function is_header_value(s)
  return type(s) == "string" and #s > 0 and #s <= routes.MAX_VALUE and not s:find("[^\33-\126]")
    and not s:find("[\"'\\%$]")
end

-- RFC 6265 cookie-octet: %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E, and
-- no quote or '$' (as above)
local function is_cookie_value(s)
  return type(s) == "string" and #s > 0 and #s <= routes.MAX_VALUE and not s:find("[^\33-\126]")
    and not s:find("[\",;\\'%$]")
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

--- Checks a list of routes; returns a normalised copy (header names
-- lowercased, entries as { headers = {name = value}, cookies = {...} }) or
-- raises a refusal (exit 2) naming the route and field. `deployed(v)` says
-- whether a version is deployed; `what` names the source in messages.
function routes.normalize(list, deployed, what)
  what = what or "routes"
  if type(list) ~= "table" then errors.refuse(what .. " must be a list of routes") end
  if #list > routes.MAX_ROUTES then
    errors.refuse(string.format("%s: at most %d routes (got %d)", what, routes.MAX_ROUTES, #list))
  end
  local out, seen = {}, {}
  for i, r in ipairs(list) do
    local at = string.format("%s[%d]", what, i)
    if type(r) ~= "table" then errors.refuse(at .. " must be {name=, version=, match=}") end
    if type(r.name) ~= "string" or not weights.is_name(r.name) then
      errors.refuse(string.format("%s.name: %s is not a DNS-1123 label", at, tostring(r.name)))
    end
    if seen[r.name] then errors.refuse(string.format("%s.name: route %s is listed twice", at, r.name)) end
    seen[r.name] = true
    if type(r.version) ~= "string" or not weights.is_name(r.version) then
      errors.refuse(string.format("%s.version: %s is not a DNS-1123 label", at, tostring(r.version)))
    end
    if deployed and not deployed(r.version) then
      errors.refuse(string.format("%s.version: %s is not deployed", at, r.version))
    end
    if type(r.match) ~= "table" or #r.match == 0 then
      errors.refuse(at .. ".match must be a non-empty list of {headers = {...}, cookies = {...}}")
    end
    if #r.match > routes.MAX_ENTRIES then
      errors.refuse(string.format("%s.match: at most %d entries", at, routes.MAX_ENTRIES))
    end
    local entries = {}
    for j, m in ipairs(r.match) do
      local mat = string.format("%s.match[%d]", at, j)
      if type(m) ~= "table" then errors.refuse(mat .. " must be {headers = {...}, cookies = {...}}") end
      for k in pairs(m) do
        if k ~= "headers" and k ~= "cookies" then
          errors.refuse(string.format("%s: unknown field %s (known: cookies, headers)", mat, tostring(k)))
        end
      end
      local e, n = { headers = {}, cookies = {} }, 0
      for _, name in ipairs(sorted_keys(m.headers or {})) do
        local value = m.headers[name]
        if not is_token(name) then
          errors.refuse(string.format("%s.headers: %q is not an HTTP header name", mat, tostring(name)))
        end
        if not is_header_value(value) then
          errors.refuse(string.format("%s.headers.%s: value %s is not allowed (1-%d visible ASCII characters, " ..
            "no quotes, backslash or $)", mat, name, type(value) == "string" and string.format("%q", value)
            or tostring(value), routes.MAX_VALUE))
        end
        local lname = name:lower()
        if e.headers[lname] then errors.refuse(string.format("%s.headers: %s is given twice", mat, lname)) end
        e.headers[lname] = value
        n = n + 1
      end
      for _, name in ipairs(sorted_keys(m.cookies or {})) do
        local value = m.cookies[name]
        if not is_token(name) or name:find("[']") then
          errors.refuse(string.format("%s.cookies: %q is not a cookie name", mat, tostring(name)))
        end
        if not is_cookie_value(value) then
          errors.refuse(string.format("%s.cookies.%s: value %s is not a cookie value (RFC 6265 cookie-octets)",
            mat, name, type(value) == "string" and string.format("%q", value) or tostring(value)))
        end
        e.cookies[name] = value
        n = n + 1
      end
      if n == 0 then errors.refuse(mat .. " matches nothing: give headers or cookies") end
      entries[j] = e
    end
    out[i] = { name = r.name, version = r.version, match = entries }
  end
  return out
end

--- One line per route, e.g. "ab: x-group: beta | cookie canary=always → v3".
function routes.describe(list)
  local lines = {}
  for _, r in ipairs(list or {}) do
    local alts = {}
    for _, m in ipairs(r.match) do
      local parts = {}
      for _, h in ipairs(sorted_keys(m.headers or {})) do parts[#parts + 1] = h .. ": " .. m.headers[h] end
      for _, c in ipairs(sorted_keys(m.cookies or {})) do parts[#parts + 1] = "cookie " .. c .. "=" .. m.cookies[c] end
      alts[#alts + 1] = table.concat(parts, " and ")
    end
    lines[#lines + 1] = string.format("%s: %s → %s", r.name, table.concat(alts, " | "), r.version)
  end
  return lines
end

return routes
