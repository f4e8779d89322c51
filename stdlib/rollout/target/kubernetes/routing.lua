--- rollout.target.kubernetes.routing: the routing objects rollout owns on
-- Kubernetes, rendered as plain Lua tables (manifests), and read back.
-- Pure functions: no I/O, no cluster. (`rollout.istio` is this module.)
--
--   routing.service(cfg)                        -- v1 Service selecting app=<service>
--   routing.version_service(cfg, v)             -- v1 Service <service>-<v> (Gateway API backends)
--   routing.destination_rule(cfg, versions, opts) -- one subset per deployed version
--   routing.virtual_service(cfg, weights, opts) -- version routes, strategy routes, weighted route
--   routing.http_route(cfg, weights, opts)      -- Gateway API HTTPRoute, the same rules
--   routing.manifests(cfg, weights, opts)       -- everything for cfg.kubernetes.routing, in apply order
--   routing.route_weights(cfg, obj)             -- {v = weight} read back from a VirtualService/HTTPRoute
--   routing.routes(cfg, obj)                    -- the strategy routes read back
--   routing.check_routes(cfg, routes, deployed) -- strategy routes checked (refusal on bad input)
--
-- `cfg` is a loaded service config (rollout.config.load): name, port,
-- version_header, kubernetes.{namespace, host, gateway, gateway_only,
-- parent_ref, routing, normalize_weights}. `weights` is {v1 = 50, v2 = 0}
-- or a list {{name =, weight =}, ...}: every deployed version, weight 0
-- included. opts: normalize (default cfg.kubernetes.normalize_weights:
-- integer percentages summing to exactly 100, largest remainder),
-- api_version (the group/version to write: the one the cluster prefers,
-- from rollout.k8s discovery; default networking.istio.io/v1 and
-- gateway.networking.k8s.io/v1), routes (the strategy routes, checked).
--
-- The rules, in order (first match wins on Istio):
--   1. version-vN: header version_header = vN -> vN only;
--   2. unknown-version: the header naming any other value is refused (Istio
--      503 directResponse; Gateway API: a rule without backends, which
--      answers 500 - gateway-api apis/v1/httproute_types.go BackendRefs, and
--      Istio's own conversion, pilot/pkg/config/kube/gateway/conversion.go:
--      "when there are no >0 weight backends return 500");
--   3. route-NAME: the strategy routes, in list order;
--   4. default: the weighted route over every deployed version.
--
-- What the weights mean, on the real systems:
--   * a destination alone in a rule receives all traffic whatever its
--     weight (istio/api networking/v1alpha3/virtual_service.proto: "If
--     there is only one destination in a rule, it will receive all
--     traffic"; pilot/pkg/networking/core/route/route.go ignores the weight
--     of a lone destination), and two or more destinations whose weights
--     sum to 0 are refused ("total destination weight = 0",
--     pkg/config/validation/validation.go, Istio >= 1.15). So when no
--     version has weight the default rule is a 503 directResponse ("no
--     version has weight"), never a route;
--   * weight-0 destinations among others get nothing (route.go: "Ignore 0
--     weighted clusters if there are other clusters in the route") and are
--     kept, so a rollback is one change;
--   * Istio before 1.15 requires the weights of a rule to sum to 100
--     (validation.go in 1.14: "total destination weight %v != 100"): set
--     kubernetes.normalize_weights there;
--   * Gateway API: weight 0 forwards nothing, a rule whose weights sum to 0
--     answers 500 (httproute_types.go / shared_types.go Weight).
--
-- spec.gateways: kubernetes.gateway plus the reserved name `mesh`, so
-- callers inside the mesh follow the same weights (virtual_service.proto:
-- "If a list of gateway names is provided, the rules will apply only to the
-- gateways. To apply the rules to both gateways and sidecars, specify mesh
-- as one of the gateway names"); kubernetes.gateway_only: true leaves mesh
-- out.
--
-- Strategy routes: {{name = "ab", version = "v3", match = {{headers = {
-- ["x-group"] = "beta"}, cookies = {canary = "always"}}, ...}}, ...}. A
-- request matches a route when it matches ANY entry of match; an entry
-- matches when ALL its headers (exact value; names case-insensitive,
-- rendered lowercase as Istio requires) and ALL its cookies (exact value of
-- the named cookie) match. A cookie is a regular-expression match of the
-- Cookie header (Istio and Gateway API match headers, not cookies), RE2
-- syntax (virtual_service.proto StringMatch.regex: "RE2 style regex-based
-- match"), full match: ^(.*?;\s*)?NAME=VALUE(;.*)?$ with NAME and VALUE
-- escaped; several cookies of one entry become one expression (one header
-- name per match: a map in Istio, a list keyed by name in Gateway API).
--
-- Gateway API orders rules by precedence, not by position (httproute_types.go
-- Matches: the largest number of header matches wins, then list order).
-- So that a version header still wins over a strategy route that tests more
-- headers, each version rule (and the unknown-version rule) also gets, for
-- every strategy match entry, that entry plus the version header: one more
-- header match than the entry alone.
--
-- Every name is checked (DNS-1123 label; DNS-1035 for Service names) before
-- anything is rendered: a bad one is a refusal (exit 2). Every object
-- carries the owner labels app=<service> and app.kubernetes.io/managed-by:
-- rollout, which is how rollout finds what it owns.
local weights_lib = require "rollout.weights"
local errors = require "rollout.errors"

local routing = {}

routing.ISTIO_API = "networking.istio.io/v1"
routing.GATEWAY_API = "gateway.networking.k8s.io/v1"
routing.MANAGED_BY = "app.kubernetes.io/managed-by"
routing.MANAGER = "rollout"
--- Gateway API allows at most 16 rules per HTTPRoute: one per version, the
-- unknown-version rule and the weighted rule (strategy routes take more).
routing.MAX_GATEWAY_API_RULES = 16
routing.MAX_GATEWAY_API_MATCHES = 128 -- in all rules (the CRD's CEL rule)
routing.MAX_GATEWAY_API_RULE_MATCHES = 64
routing.MAX_GATEWAY_API_VERSIONS = routing.MAX_GATEWAY_API_RULES - 2
routing.MAX_COOKIES = 3
routing.NO_WEIGHT_BODY = '{"error":"no version has weight"}'
routing.UNKNOWN_VERSION_BODY = '{"error":"no such version"}'

local function array(t)
  local ok, json = pcall(require, "rollout.json")
  if ok and json.array then return json.array(t) end
  return t
end

-- ------------------------------------------------------------- names --

local function quote(v)
  return type(v) == "string" and string.format("%q", v) or tostring(v)
end

--- Refuses `name` unless it is a DNS-1123 label; returns it.
function routing.check_label(name, what)
  if type(name) ~= "string" or not weights_lib.is_name(name) then
    errors.refuse(string.format("%s %s is not a DNS-1123 label (a-z, 0-9 and '-', at most 63 characters)",
      what or "name", quote(name)))
  end
  return name
end

--- Refuses `name` unless it is a DNS-1035 label (a Service name).
function routing.check_service_name(name, what)
  routing.check_label(name, what or "Service name")
  if not name:match("^[a-z]") then
    errors.refuse(string.format("%s %s must start with a letter: Kubernetes Service names are DNS-1035 labels",
      what or "Service name", quote(name)))
  end
  return name
end

local function split_ref(ref, what)
  if type(ref) ~= "string" or ref == "" then
    errors.refuse(string.format("%s must be \"[namespace/]name\" (got %s)", what, quote(ref)))
  end
  local ns, name = ref:match("^([^/]+)/([^/]+)$")
  if not ns then ns, name = nil, ref end
  if ns then routing.check_label(ns, what .. " namespace") end
  if #name > 253 then errors.refuse(string.format("%s name %s is longer than 253 characters", what, quote(name))) end
  for part in (name .. "."):gmatch("([^.]*)%.") do
    if not weights_lib.is_name(part) then
      errors.refuse(string.format("%s name %s is not a DNS-1123 subdomain", what, quote(name)))
    end
  end
  return ns, name
end

local function check_host(host)
  local rest = host
  if type(host) == "string" and host:sub(1, 2) == "*." then rest = host:sub(3) end
  local ok = type(rest) == "string" and rest ~= "" and #host <= 253
  if ok then
    for part in (rest .. "."):gmatch("([^.]*)%.") do
      if not weights_lib.is_name(part) then ok = false end
    end
  end
  if not ok then
    errors.refuse(string.format("kubernetes.host %s is not a host name (a DNS-1123 subdomain, optionally *.)",
      quote(host)))
  end
  return host
end

local function k8s_cfg(cfg)
  if type(cfg) ~= "table" or type(cfg.name) ~= "string" then
    error("rollout.target.kubernetes.routing: cfg must be a service config (rollout.config.load)", 3)
  end
  return cfg.kubernetes or {}
end

local function namespace(cfg)
  return routing.check_label(k8s_cfg(cfg).namespace or "default", "namespace")
end

local function port(cfg)
  local p = cfg.port or 8080
  if math.type(p) ~= "integer" or p < 1 or p > 65535 then
    errors.refuse(string.format("port %s is not a TCP port (1-65535)", tostring(p)))
  end
  return p
end

local function header(cfg)
  local h = cfg.version_header or "x-version"
  if type(h) ~= "string" or not h:match("^[A-Za-z0-9][A-Za-z0-9-]*$") then
    errors.refuse(string.format("version_header %s is not an HTTP header name", quote(h)))
  end
  return h:lower() -- Istio matches header names in lower case only
end

local function api_of(opts, default)
  local v = opts and opts.api_version
  if v == nil then return default end
  if type(v) ~= "string" or not v:match("^[%w.-]+/v%w+$") then
    error("rollout.target.kubernetes.routing: opts.api_version must be GROUP/VERSION", 3)
  end
  return v
end

-- ---------------------------------------------------------- weights --

--- The weights as an ordered, checked list {{name =, weight =}, ...}.
function routing.weight_list(w)
  if type(w) ~= "table" then errors.refuse("weights must be a table like {v1 = 50, v2 = 0}") end
  local list = {}
  if #w > 0 then
    for i, e in ipairs(w) do
      if type(e) ~= "table" then errors.refuse(string.format("weights[%d] must be {name =, weight =}", i)) end
      list[i] = { name = e.name, weight = e.weight }
    end
  else
    for name, weight in pairs(w) do list[#list + 1] = { name = name, weight = weight } end
    table.sort(list, function(a, b) return tostring(a.name) < tostring(b.name) end)
  end
  local seen = {}
  for _, e in ipairs(list) do
    routing.check_label(e.name, "version name")
    if seen[e.name] then errors.refuse(string.format("version %s is listed twice", e.name)) end
    seen[e.name] = true
    local wt = e.weight
    if math.type(wt) == "float" and wt == math.floor(wt) then wt = math.tointeger(wt) end
    if math.type(wt) ~= "integer" or wt < 0 or wt > weights_lib.MAX_WEIGHT then
      errors.refuse(string.format("weight of %s must be an integer between 0 and %d (got %s)", e.name,
        weights_lib.MAX_WEIGHT, quote(e.weight)))
    end
    e.weight = wt
  end
  return list
end

local function version_names(versions)
  if type(versions) ~= "table" then errors.refuse("versions must be a list of version names") end
  local names = {}
  if #versions > 0 then
    for i, v in ipairs(versions) do names[i] = type(v) == "table" and v.name or v end
  else
    for v in pairs(versions) do names[#names + 1] = v end
    table.sort(names, function(a, b) return tostring(a) < tostring(b) end)
  end
  local seen = {}
  for _, v in ipairs(names) do
    routing.check_label(v, "version name")
    if seen[v] then errors.refuse(string.format("version %s is listed twice", v)) end
    seen[v] = true
  end
  return names
end

-- The weights to render: as given, or percentages summing to 100; and
-- whether any version has weight.
local function rendered_weights(cfg, list, opts)
  local normalize = opts and opts.normalize
  if normalize == nil then normalize = k8s_cfg(cfg).normalize_weights end
  local out, any = {}, false
  for _, e in ipairs(list) do if e.weight > 0 then any = true end end
  if not normalize or not any then
    for i, e in ipairs(list) do out[i] = e.weight end
    return out, any
  end
  local pct = weights_lib.percentages(list)
  for i, e in ipairs(list) do out[i] = pct[e.name] end
  return out, any
end

-- ------------------------------------------------- strategy routes --

-- RFC 7230 token (header names, cookie names: RFC 6265 cookie-name = token)
local function is_token(s)
  return type(s) == "string" and s ~= "" and #s <= 256 and not s:find("[^%w!#$%%&'*+%-.^_`|~]")
end

-- RFC 7230 field-value: visible ASCII and spaces inside, no control characters
local function is_header_value(s)
  return type(s) == "string" and s ~= "" and #s <= 4096 and not s:find("[^\32-\126]") and
    not s:find("^%s") and not s:find("%s$")
end

-- RFC 6265 cookie-value: cookie-octets (no space, DQUOTE, comma, semicolon
-- or backslash), optionally in double quotes
local function is_cookie_value(s)
  if type(s) ~= "string" or #s > 4096 then return false end
  local inner = s:match('^"(.*)"$') or s
  for i = 1, #inner do
    local b = inner:byte(i)
    -- cookie-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E
    if not (b == 0x21 or (b >= 0x23 and b <= 0x2B) or (b >= 0x2D and b <= 0x3A) or (b >= 0x3C and b <= 0x5B) or
            (b >= 0x5D and b <= 0x7E)) then
      return false
    end
  end
  return true
end

--- RE2 (and Python re) escaping of a literal: a backslash before every
-- character that is not a letter, digit or underscore.
function routing.re_escape(s)
  return (s:gsub("[^%w_]", function(c) return "\\" .. c end))
end

local function re_unescape(s)
  return (s:gsub("\\(.)", "%1"))
end

local function permutations(list)
  if #list <= 1 then return { list } end
  local out = {}
  for i = 1, #list do
    local rest = {}
    for j = 1, #list do if j ~= i then rest[#rest + 1] = list[j] end end
    for _, p in ipairs(permutations(rest)) do
      table.insert(p, 1, list[i])
      out[#out + 1] = p
    end
  end
  return out
end

--- The regular expression matching a Cookie header that holds every cookie
-- of `cookies` ({name = value}) with exactly that value, in any order.
function routing.cookie_regex(cookies)
  local pairs_list = {}
  for name, value in pairs(cookies) do
    pairs_list[#pairs_list + 1] = routing.re_escape(name) .. "=" .. routing.re_escape(value)
  end
  table.sort(pairs_list)
  if #pairs_list == 1 then return "^(.*?;\\s*)?" .. pairs_list[1] .. "(;.*)?$" end
  local alts = {}
  for _, p in ipairs(permutations(pairs_list)) do
    alts[#alts + 1] = "(.*?;\\s*)?" .. table.concat(p, ";\\s*(.*?;\\s*)?") .. "(;.*)?"
  end
  return "^(?:" .. table.concat(alts, "|") .. ")$"
end

--- The cookies a regular expression of cookie_regex stands for, or nil.
function routing.parse_cookie_regex(re)
  if type(re) ~= "string" then return nil end
  local body = re:match("^%^%(%?:(.*)%)%$$")
  if body then
    -- the first alternative, up to an unescaped "|"
    local i, first = 1, nil
    while i <= #body do
      local c = body:sub(i, i)
      if c == "\\" then i = i + 2
      elseif c == "|" then first = body:sub(1, i - 1); break
      else i = i + 1 end
    end
    body = first or body
  else
    body = re:match("^%^(.*)%$$")
    if not body then return nil end
  end
  body = body:match("^%(%.%*%?;\\s%*%)%?(.*)%(;%.%*%)%?$")
  if not body then return nil end
  local out, any = {}, false
  for piece in (body .. ";\\s*(.*?;\\s*)?"):gmatch("(.-);\\s%*%(%.%*%?;\\s%*%)%?") do
    local name, value = piece:match("^(.-[^\\])=(.*)$")
    if not name then return nil end
    out[re_unescape(name)] = re_unescape(value)
    any = true
  end
  return any and out or nil
end

local sorted_keys = require("rollout.target.base").sorted_keys

--- Checks strategy routes; returns them normalized ({name, version, match
-- = {{headers = {lowercase = value}, cookies = {name = value}}}}). Refuses
-- (exit 2) a bad name, a duplicate, a version not in `deployed` (a set), a
-- bad header name or value, a bad cookie name or value, an empty match.
function routing.check_routes(cfg, routes, deployed)
  if type(routes) ~= "table" then errors.refuse("routes must be a list like {{name =, version =, match = {...}}}") end
  local hdr = header(cfg)
  local out, seen = {}, {}
  for i, r in pairs(routes) do
    if math.type(i) ~= "integer" or i < 1 or i > #routes then errors.refuse("routes must be a list (1..n)") end
  end
  for i, r in ipairs(routes) do
    local where = string.format("routes[%d]", i)
    if type(r) ~= "table" then errors.refuse(where .. " must be {name =, version =, match = {...}}") end
    for k in pairs(r) do
      if k ~= "name" and k ~= "version" and k ~= "match" then
        errors.refuse(string.format("%s: unknown field %s (name, version, match)", where, quote(k)))
      end
    end
    routing.check_label(r.name, where .. ".name")
    if seen[r.name] then errors.refuse(string.format("%s: route %s is listed twice", where, r.name)) end
    seen[r.name] = true
    where = string.format("route %s", r.name)
    routing.check_label(r.version, where .. ": version")
    if deployed and not deployed[r.version] then
      local names = sorted_keys(deployed)
      errors.refuse(string.format("%s: version %s is not deployed (deployed: %s)", where, r.version,
        #names > 0 and table.concat(names, ", ") or "none"))
    end
    if type(r.match) ~= "table" or #r.match == 0 then
      errors.refuse(where .. ": match must be a non-empty list of {headers =, cookies =}")
    end
    local entries = {}
    for j, m in ipairs(r.match) do
      local mw = string.format("%s: match[%d]", where, j)
      if type(m) ~= "table" then errors.refuse(mw .. " must be {headers =, cookies =}") end
      for k in pairs(m) do
        if k ~= "headers" and k ~= "cookies" then
          errors.refuse(string.format("%s: unknown field %s (headers, cookies)", mw, quote(k)))
        end
      end
      local e = { headers = {}, cookies = {} }
      local nconds = 0
      if m.headers ~= nil then
        if type(m.headers) ~= "table" then errors.refuse(mw .. ".headers must be a table {name = value}") end
        for name, value in pairs(m.headers) do
          if not is_token(name) then
            errors.refuse(string.format("%s: header name %s is not an HTTP token (RFC 7230)", mw, quote(name)))
          end
          local lname = name:lower()
          if lname == hdr then
            errors.refuse(string.format("%s: header %s is the version header; use a version route", mw, name))
          end
          if lname == "cookie" then errors.refuse(mw .. ": match cookies with cookies = {name = value}, not a Cookie header") end
          if lname == "host" or lname:sub(1, 1) == ":" then
            errors.refuse(string.format("%s: header %s cannot be matched", mw, name))
          end
          if e.headers[lname] then errors.refuse(string.format("%s: header %s is given twice", mw, lname)) end
          if not is_header_value(value) then
            errors.refuse(string.format("%s: the value of header %s must be visible ASCII without control characters " ..
              "or leading/trailing spaces", mw, lname))
          end
          e.headers[lname] = value
          nconds = nconds + 1
        end
      end
      if m.cookies ~= nil then
        if type(m.cookies) ~= "table" then errors.refuse(mw .. ".cookies must be a table {name = value}") end
        local n = 0
        for name, value in pairs(m.cookies) do
          if not is_token(name) then
            errors.refuse(string.format("%s: cookie name %s is not a token (RFC 6265)", mw, quote(name)))
          end
          if not is_cookie_value(value) then
            errors.refuse(string.format("%s: the value of cookie %s is not cookie-octets (RFC 6265)", mw, name))
          end
          e.cookies[name] = value
          n = n + 1
        end
        if n > routing.MAX_COOKIES then
          errors.refuse(string.format("%s: at most %d cookies per match entry", mw, routing.MAX_COOKIES))
        end
        nconds = nconds + n
      end
      if nconds == 0 then errors.refuse(mw .. " has no header and no cookie (it would match every request)") end
      entries[j] = e
    end
    out[#out + 1] = { name = r.name, version = r.version, match = entries }
  end
  return out
end

local function istio_match(e)
  local h = {}
  for name, value in pairs(e.headers) do h[name] = { exact = value } end
  if next(e.cookies) then h.cookie = { regex = routing.cookie_regex(e.cookies) } end
  return { headers = h }
end

local function gateway_match(e, extra)
  local list = {}
  if extra then list[1] = extra end
  for _, name in ipairs(sorted_keys(e.headers)) do
    list[#list + 1] = { type = "Exact", name = name, value = e.headers[name] }
  end
  if next(e.cookies) then
    list[#list + 1] = { type = "RegularExpression", name = "cookie", value = routing.cookie_regex(e.cookies) }
  end
  return { headers = array(list) }
end

-- --------------------------------------------------------- metadata --

function routing.labels(cfg, extra)
  local l = { app = cfg.name, [routing.MANAGED_BY] = routing.MANAGER }
  for k, v in pairs(extra or {}) do l[k] = v end
  return l
end

function routing.selector(cfg)
  return string.format("app=%s,%s=%s", cfg.name, routing.MANAGED_BY, routing.MANAGER)
end

local function metadata(cfg, name, extra_labels)
  return { name = name, namespace = namespace(cfg), labels = routing.labels(cfg, extra_labels) }
end

-- ---------------------------------------------------------- objects --

function routing.service(cfg)
  k8s_cfg(cfg)
  local name = routing.check_service_name(cfg.name, "service name")
  local p = port(cfg)
  return {
    apiVersion = "v1", kind = "Service", metadata = metadata(cfg, name),
    spec = { selector = { app = name }, ports = array { { name = "http", port = p, targetPort = p, protocol = "TCP" } } },
  }
end

function routing.version_service_name(cfg, version)
  k8s_cfg(cfg)
  routing.check_service_name(cfg.name, "service name")
  routing.check_label(version, "version name")
  local name = cfg.name .. "-" .. version
  if #name > 63 then
    errors.refuse(string.format("the Service name %s (service-version) is longer than 63 characters", name))
  end
  return name
end

function routing.version_service(cfg, version)
  local name = routing.version_service_name(cfg, version)
  local p = port(cfg)
  return {
    apiVersion = "v1", kind = "Service", metadata = metadata(cfg, name, { version = version }),
    spec = { selector = { app = cfg.name, version = version },
             ports = array { { name = "http", port = p, targetPort = p, protocol = "TCP" } } },
  }
end

function routing.destination_rule(cfg, versions, opts)
  k8s_cfg(cfg)
  routing.check_service_name(cfg.name, "service name")
  local subsets = {}
  for i, v in ipairs(version_names(versions)) do subsets[i] = { name = v, labels = { version = v } } end
  return {
    apiVersion = api_of(opts, routing.ISTIO_API), kind = "DestinationRule", metadata = metadata(cfg, cfg.name),
    spec = { host = cfg.name, subsets = array(subsets) },
  }
end

--- The VirtualService (see the module header for the rules and their order).
function routing.virtual_service(cfg, weights, opts)
  local kc = k8s_cfg(cfg)
  routing.check_service_name(cfg.name, "service name")
  local list = routing.weight_list(weights)
  local w, any = rendered_weights(cfg, list, opts)
  local hdr, p = header(cfg), port(cfg)
  local set = {}
  for _, e in ipairs(list) do set[e.name] = true end
  local routes = routing.check_routes(cfg, opts and opts.routes or {}, set)
  local http = {}
  local function dest(v) return { host = cfg.name, subset = v, port = { number = p } } end
  for _, e in ipairs(list) do
    http[#http + 1] = {
      name = "version-" .. e.name,
      match = array { { headers = { [hdr] = { exact = e.name } } } },
      route = array { { destination = dest(e.name) } },
    }
  end
  http[#http + 1] = {
    name = "unknown-version",
    match = array { { headers = { [hdr] = { regex = ".+" } } } },
    directResponse = { status = 503, body = { string = routing.UNKNOWN_VERSION_BODY } },
  }
  for _, r in ipairs(routes) do
    local m = {}
    for i, e in ipairs(r.match) do m[i] = istio_match(e) end
    http[#http + 1] = { name = "route-" .. r.name, match = array(m), route = array { { destination = dest(r.version) } } }
  end
  if any then
    local default = {}
    for i, e in ipairs(list) do default[i] = { destination = dest(e.name), weight = w[i] } end
    http[#http + 1] = { name = "default", route = array(default) }
  else
    -- no version has weight: a lone destination would take everything and
    -- several at 0 are refused, so nothing is routed
    http[#http + 1] = { name = "default", directResponse = { status = 503, body = { string = routing.NO_WEIGHT_BODY } } }
  end
  local spec = { hosts = array { check_host(kc.host or cfg.name) }, http = array(http) }
  if kc.gateway and kc.gateway ~= "" then
    split_ref(kc.gateway, "kubernetes.gateway")
    spec.gateways = kc.gateway_only and array { kc.gateway } or array { kc.gateway, "mesh" }
  end
  return { apiVersion = api_of(opts, routing.ISTIO_API), kind = "VirtualService", metadata = metadata(cfg, cfg.name),
           spec = spec }
end

local function parent_refs(cfg)
  local kc = k8s_cfg(cfg)
  local ref, what = kc.parent_ref, "kubernetes.parent_ref"
  if not ref or ref == "" then ref, what = kc.gateway, "kubernetes.gateway" end
  if ref and ref ~= "" then
    local ns, name = split_ref(ref, what)
    return array { { group = "gateway.networking.k8s.io", kind = "Gateway", name = name, namespace = ns } }
  end
  return array { { group = "", kind = "Service", name = cfg.name, port = port(cfg) } }
end

--- The Gateway API HTTPRoute (see the module header).
function routing.http_route(cfg, weights, opts)
  local kc = k8s_cfg(cfg)
  routing.check_service_name(cfg.name, "service name")
  local list = routing.weight_list(weights)
  local set = {}
  for _, e in ipairs(list) do set[e.name] = true end
  local routes = routing.check_routes(cfg, opts and opts.routes or {}, set)
  local nrules = #list + 2 + #routes
  if #list > routing.MAX_GATEWAY_API_VERSIONS or nrules > routing.MAX_GATEWAY_API_RULES then
    errors.refuse(string.format("Gateway API routing supports at most %d versions and routes together (an HTTPRoute " ..
      "has at most %d rules: one per version and route, plus 2); got %d versions and %d routes",
      routing.MAX_GATEWAY_API_VERSIONS, routing.MAX_GATEWAY_API_RULES, #list, #routes))
  end
  local w = rendered_weights(cfg, list, opts)
  local hdr, p = header(cfg), port(cfg)
  local entries = {}
  for _, r in ipairs(routes) do for _, e in ipairs(r.match) do entries[#entries + 1] = e end end
  local function version_matches(first)
    local m = { { headers = array { first } } }
    for _, e in ipairs(entries) do m[#m + 1] = gateway_match(e, first) end
    return array(m)
  end
  local rules = {}
  for _, e in ipairs(list) do
    rules[#rules + 1] = {
      name = "version-" .. e.name,
      matches = version_matches { type = "Exact", name = hdr, value = e.name },
      backendRefs = array { { name = routing.version_service_name(cfg, e.name), port = p } },
    }
  end
  rules[#rules + 1] = { name = "unknown-version",
                        matches = version_matches { type = "RegularExpression", name = hdr, value = ".+" } }
  for _, r in ipairs(routes) do
    local m = {}
    for i, e in ipairs(r.match) do m[i] = gateway_match(e) end
    rules[#rules + 1] = { name = "route-" .. r.name, matches = array(m),
                          backendRefs = array { { name = routing.version_service_name(cfg, r.version), port = p } } }
  end
  local refs = {}
  for i, e in ipairs(list) do
    refs[i] = { name = routing.version_service_name(cfg, e.name), port = p, weight = w[i] }
  end
  rules[#rules + 1] = { name = "default", backendRefs = array(refs) }
  local total, per_rule = 1, 0 -- the default rule's defaulted match counts too
  for _, r in ipairs(rules) do
    if r.matches then
      total = total + #r.matches
      per_rule = math.max(per_rule, #r.matches)
    end
  end
  if per_rule > routing.MAX_GATEWAY_API_RULE_MATCHES or total > routing.MAX_GATEWAY_API_MATCHES then
    errors.refuse(string.format("the strategy routes need %d matches in an HTTPRoute (at most %d, %d per rule): " ..
      "use fewer match entries", total, routing.MAX_GATEWAY_API_MATCHES, routing.MAX_GATEWAY_API_RULE_MATCHES))
  end
  return {
    apiVersion = api_of(opts, routing.GATEWAY_API), kind = "HTTPRoute", metadata = metadata(cfg, cfg.name),
    spec = { parentRefs = parent_refs(cfg), hostnames = array { check_host(kc.host or cfg.name) },
             rules = array(rules) },
  }
end

-- ------------------------------------------------------------ sets --

function routing.route_kind(cfg)
  return (k8s_cfg(cfg).routing == "gateway-api") and "HTTPRoute" or "VirtualService"
end

function routing.route(cfg, weights, opts)
  if routing.route_kind(cfg) == "HTTPRoute" then return routing.http_route(cfg, weights, opts) end
  return routing.virtual_service(cfg, weights, opts)
end

--- Every object of the config's routing mode, in the order to apply them
-- (what a route refers to comes before the route). opts.api_versions =
-- {istio =, gateway =} or opts.api_version for the route and rule.
function routing.manifests(cfg, weights, opts)
  local list = routing.weight_list(weights)
  local out = { routing.service(cfg) }
  if routing.route_kind(cfg) == "HTTPRoute" then
    for _, e in ipairs(list) do out[#out + 1] = routing.version_service(cfg, e.name) end
  else
    out[#out + 1] = routing.destination_rule(cfg, list, opts)
  end
  out[#out + 1] = routing.route(cfg, list, opts)
  return out
end

-- ---------------------------------------------------------- reading --

local function tbl(x) return type(x) == "table" and x or {} end

--- The weights of a live VirtualService or HTTPRoute as {version =
-- weight}: the weighted default rule's, and 0 for every version that has a
-- version rule but no weight there (a default rule that answers directly
-- gives every version 0). nil when the object has no default rule.
-- Destinations that are not this service's versions are ignored.
function routing.route_weights(cfg, obj)
  if type(obj) ~= "table" or type(obj.spec) ~= "table" then return nil end
  local spec = obj.spec
  local out = {}
  local hdr = header(cfg)
  if obj.kind == "HTTPRoute" then
    local rules = tbl(spec.rules)
    local last = rules[#rules]
    if type(last) ~= "table" then return nil end
    for _, m in ipairs(tbl(last.matches)) do
      if type(m) == "table" and ((m.headers and #m.headers > 0) or (m.queryParams and #m.queryParams > 0)) then
        return nil
      end
    end
    local prefix = cfg.name .. "-"
    for _, b in ipairs(tbl(last.backendRefs)) do
      if type(b.name) == "string" and b.name:sub(1, #prefix) == prefix then
        out[b.name:sub(#prefix + 1)] = math.tointeger(b.weight == nil and 1 or b.weight) or b.weight
      end
    end
    for _, r in ipairs(rules) do
      local h = tbl(tbl(tbl(r.matches)[1]).headers)[1]
      if type(r.name) == "string" and r.name:match("^version%-") and type(h) == "table" and h.name == hdr and
         h.type ~= "RegularExpression" and type(h.value) == "string" and out[h.value] == nil then
        out[h.value] = 0
      end
    end
    return out
  end
  local http = tbl(spec.http)
  local last = http[#http]
  if type(last) ~= "table" or (last.match and #last.match > 0) then return nil end
  for _, d in ipairs(tbl(last.route)) do
    local dest = tbl(d.destination)
    if dest.subset then
      local w = d.weight
      if w == nil then w = (#last.route == 1) and 100 or 0 end
      out[dest.subset] = math.tointeger(w) or w
    end
  end
  for _, r in ipairs(http) do
    local m = tbl(tbl(tbl(r.match)[1]).headers)[hdr]
    if type(r.name) == "string" and r.name:match("^version%-") and type(m) == "table" and type(m.exact) == "string" and
       out[m.exact] == nil then
      out[m.exact] = 0
    end
  end
  return out
end

--- The strategy routes of a live VirtualService or HTTPRoute (the rules
-- named route-NAME), in order, in the shape check_routes returns.
function routing.routes(cfg, obj)
  local out = {}
  if type(obj) ~= "table" or type(obj.spec) ~= "table" then return out end
  if obj.kind == "HTTPRoute" then
    local prefix = cfg.name .. "-"
    for _, r in ipairs(tbl(obj.spec.rules)) do
      local name = type(r.name) == "string" and r.name:match("^route%-(.+)$")
      local b = tbl(tbl(r.backendRefs)[1])
      if name and type(b.name) == "string" and b.name:sub(1, #prefix) == prefix then
        local match = {}
        for _, m in ipairs(tbl(r.matches)) do
          local e = { headers = {}, cookies = {} }
          for _, h in ipairs(tbl(m.headers)) do
            if h.name == "cookie" and h.type == "RegularExpression" then
              e.cookies = routing.parse_cookie_regex(h.value) or {}
            elseif type(h.name) == "string" then
              e.headers[h.name] = h.value
            end
          end
          match[#match + 1] = e
        end
        out[#out + 1] = { name = name, version = b.name:sub(#prefix + 1), match = match }
      end
    end
    return out
  end
  for _, r in ipairs(tbl(obj.spec.http)) do
    local name = type(r.name) == "string" and r.name:match("^route%-(.+)$")
    local d = tbl(tbl(tbl(r.route)[1]).destination)
    if name and type(d.subset) == "string" then
      local match = {}
      for _, m in ipairs(tbl(r.match)) do
        local e = { headers = {}, cookies = {} }
        for hname, sm in pairs(tbl(m.headers)) do
          if hname == "cookie" and type(sm) == "table" and sm.regex then
            e.cookies = routing.parse_cookie_regex(sm.regex) or {}
          elseif type(sm) == "table" and sm.exact then
            e.headers[hname] = sm.exact
          end
        end
        match[#match + 1] = e
      end
      out[#out + 1] = { name = name, version = d.subset, match = match }
    end
  end
  return out
end

local function same_map(a, b)
  for k, v in pairs(a or {}) do if (b or {})[k] ~= v then return false end end
  for k, v in pairs(b or {}) do if (a or {})[k] ~= v then return false end end
  return true
end

--- Are two lists of strategy routes (as check_routes/routes return them)
-- the same, in the same order?
function routing.same_routes(a, b)
  if #a ~= #b then return false end
  for i, r in ipairs(a) do
    local s = b[i]
    if r.name ~= s.name or r.version ~= s.version or #r.match ~= #s.match then return false end
    for j, e in ipairs(r.match) do
      if not same_map(e.headers, s.match[j].headers) or not same_map(e.cookies, s.match[j].cookies) then
        return false
      end
    end
  end
  return true
end

return routing
