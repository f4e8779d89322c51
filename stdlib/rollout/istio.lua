--- rollout.istio: the routing objects rollout owns on Kubernetes, rendered
-- as plain Lua tables (manifests). Pure functions: no I/O, no cluster.
--
--   istio.service(cfg)                       -- v1 Service selecting app=<service>
--   istio.version_service(cfg, v)            -- v1 Service <service>-<v> (Gateway API backends)
--   istio.destination_rule(cfg, versions)    -- one subset per deployed version
--   istio.virtual_service(cfg, weights, opts)-- header routes first, weighted route last
--   istio.http_route(cfg, weights, opts)     -- Gateway API v1 HTTPRoute, same rules
--   istio.manifests(cfg, weights, opts)      -- everything for cfg.kubernetes.routing, in apply order
--   istio.route_weights(cfg, obj)            -- {v = weight} read back from a VirtualService/HTTPRoute
--
-- `cfg` is a loaded service config (rollout.config.load): name, port,
-- version_header, kubernetes.{namespace, host, gateway, parent_ref,
-- routing, normalize_weights}. `weights` is {v1 = 50, v2 = 0} or a list
-- {{name =, weight =}, ...}: every deployed version, weight 0 included (a
-- weight-0 destination is kept in the route, so a rollback is one change).
-- Weights are relative and rendered as given; opts.normalize (default:
-- cfg.kubernetes.normalize_weights) renders integer percentages summing to
-- exactly 100 (largest remainder, rollout.weights.percentages).
--
-- Every name is checked (DNS-1123 label; DNS-1035 for Service names) before
-- anything is rendered: a bad one is a refusal (exit 2). Every object
-- carries the owner labels app=<service> and app.kubernetes.io/managed-by:
-- rollout, which is how rollout finds what it owns.
local weights_lib = require "rollout.weights"
local errors = require "rollout.errors"

local istio = {}

istio.ISTIO_API = "networking.istio.io/v1"
istio.GATEWAY_API = "gateway.networking.k8s.io/v1"
istio.MANAGED_BY = "app.kubernetes.io/managed-by"
istio.MANAGER = "rollout"
--- Gateway API allows at most 16 rules per HTTPRoute: one header rule per
-- version plus the weighted rule.
istio.MAX_GATEWAY_API_VERSIONS = 15

local function array(t)
  -- an explicit JSON array marker (an empty list must not become {})
  local ok, json = pcall(require, "rollout.json")
  if ok and json.array then return json.array(t) end
  return t
end

-- ------------------------------------------------------------- names --

local function quote(v)
  return type(v) == "string" and string.format("%q", v) or tostring(v)
end

--- Refuses `name` unless it is a DNS-1123 label; returns it.
function istio.check_label(name, what)
  if type(name) ~= "string" or not weights_lib.is_name(name) then
    errors.refuse(string.format("%s %s is not a DNS-1123 label (a-z, 0-9 and '-', at most 63 characters)",
      what or "name", quote(name)))
  end
  return name
end

--- Refuses `name` unless it is a DNS-1035 label (a Service name: a DNS-1123
-- label that starts with a letter); returns it.
function istio.check_service_name(name, what)
  istio.check_label(name, what or "Service name")
  if not name:match("^[a-z]") then
    errors.refuse(string.format("%s %s must start with a letter: Kubernetes Service names are DNS-1035 labels",
      what or "Service name", quote(name)))
  end
  return name
end

-- "[namespace/]name" -> namespace (or nil), name; both checked.
local function split_ref(ref, what)
  if type(ref) ~= "string" or ref == "" then
    errors.refuse(string.format("%s must be \"[namespace/]name\" (got %s)", what, quote(ref)))
  end
  local ns, name = ref:match("^([^/]+)/([^/]+)$")
  if not ns then ns, name = nil, ref end
  if ns then istio.check_label(ns, what .. " namespace") end
  -- Gateway names are DNS-1123 subdomains: dots allowed, each part a label
  if #name > 253 then errors.refuse(string.format("%s name %s is longer than 253 characters", what, quote(name))) end
  for part in (name .. "."):gmatch("([^.]*)%.") do
    if not weights_lib.is_name(part) then
      errors.refuse(string.format("%s name %s is not a DNS-1123 subdomain", what, quote(name)))
    end
  end
  return ns, name
end

-- A hostname for VirtualService hosts / HTTPRoute hostnames: a DNS-1123
-- subdomain, optionally starting with "*.".
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
    error("rollout.istio: cfg must be a service config (rollout.config.load)", 3)
  end
  return cfg.kubernetes or {}
end

local function namespace(cfg)
  return istio.check_label(k8s_cfg(cfg).namespace or "default", "namespace")
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
  -- Istio matches header names in lower case only
  return h:lower()
end

-- ---------------------------------------------------------- weights --

--- The weights as an ordered, checked list {{name =, weight =}, ...}: a
-- map in name order, a list in its own order. Names must be DNS-1123
-- labels and unique, weights integers 0..rollout.weights.MAX_WEIGHT.
function istio.weight_list(w)
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
    istio.check_label(e.name, "version name")
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

-- Names of the deployed versions from a list of names, a weight map or a
-- weight list.
local function version_names(versions)
  if type(versions) ~= "table" then errors.refuse("versions must be a list of version names") end
  local names = {}
  if #versions > 0 then
    for i, v in ipairs(versions) do
      names[i] = type(v) == "table" and v.name or v
    end
  else
    for v in pairs(versions) do names[#names + 1] = v end
    table.sort(names, function(a, b) return tostring(a) < tostring(b) end)
  end
  local seen = {}
  for _, v in ipairs(names) do
    istio.check_label(v, "version name")
    if seen[v] then errors.refuse(string.format("version %s is listed twice", v)) end
    seen[v] = true
  end
  return names
end

-- The weights to render: as given, or percentages summing to 100.
local function rendered_weights(cfg, list, opts)
  local normalize = opts and opts.normalize
  if normalize == nil then normalize = k8s_cfg(cfg).normalize_weights end
  local out = {}
  if not normalize then
    for i, e in ipairs(list) do out[i] = e.weight end
    return out
  end
  local any = false
  for _, e in ipairs(list) do if e.weight > 0 then any = true end end
  if not any then
    -- nothing to share yet (a first version deployed at weight 0)
    for i in ipairs(list) do out[i] = 0 end
    return out
  end
  local pct = weights_lib.percentages(list)
  for i, e in ipairs(list) do out[i] = pct[e.name] end
  return out
end

-- --------------------------------------------------------- metadata --

--- The labels on every object rollout owns for the service.
function istio.labels(cfg, extra)
  local l = { app = cfg.name, [istio.MANAGED_BY] = istio.MANAGER }
  for k, v in pairs(extra or {}) do l[k] = v end
  return l
end

--- The label selector of the objects rollout owns for the service.
function istio.selector(cfg)
  return string.format("app=%s,%s=%s", cfg.name, istio.MANAGED_BY, istio.MANAGER)
end

local function metadata(cfg, name, extra_labels)
  return { name = name, namespace = namespace(cfg), labels = istio.labels(cfg, extra_labels) }
end

-- ---------------------------------------------------------- objects --

--- The Service of the whole service: selects app=<service>; port "http".
function istio.service(cfg)
  k8s_cfg(cfg)
  local name = istio.check_service_name(cfg.name, "service name")
  local p = port(cfg)
  return {
    apiVersion = "v1",
    kind = "Service",
    metadata = metadata(cfg, name),
    spec = {
      selector = { app = name },
      ports = array { { name = "http", port = p, targetPort = p, protocol = "TCP" } },
    },
  }
end

--- The name of a version's own Service: <service>-<version>.
function istio.version_service_name(cfg, version)
  k8s_cfg(cfg)
  istio.check_service_name(cfg.name, "service name")
  istio.check_label(version, "version name")
  local name = cfg.name .. "-" .. version
  if #name > 63 then
    errors.refuse(string.format("the Service name %s (service-version) is longer than 63 characters", name))
  end
  return name
end

--- A version's own Service (app=<service>, version=<v>): the backend of
-- the Gateway API routes, which route to Services, not subsets.
function istio.version_service(cfg, version)
  local name = istio.version_service_name(cfg, version)
  local p = port(cfg)
  return {
    apiVersion = "v1",
    kind = "Service",
    metadata = metadata(cfg, name, { version = version }),
    spec = {
      selector = { app = cfg.name, version = version },
      ports = array { { name = "http", port = p, targetPort = p, protocol = "TCP" } },
    },
  }
end

--- The DestinationRule: one subset per deployed version (labels version=v).
function istio.destination_rule(cfg, versions)
  k8s_cfg(cfg)
  istio.check_service_name(cfg.name, "service name")
  local subsets = {}
  for i, v in ipairs(version_names(versions)) do
    subsets[i] = { name = v, labels = { version = v } }
  end
  return {
    apiVersion = istio.ISTIO_API,
    kind = "DestinationRule",
    metadata = metadata(cfg, cfg.name),
    spec = { host = cfg.name, subsets = array(subsets) },
  }
end

--- The VirtualService: for each deployed version a header route
-- (headers[version_header].exact = v -> subset v) FIRST, then the weighted
-- default route LAST with every deployed version (weight 0 kept).
function istio.virtual_service(cfg, weights, opts)
  local kc = k8s_cfg(cfg)
  istio.check_service_name(cfg.name, "service name")
  local list = istio.weight_list(weights)
  local w = rendered_weights(cfg, list, opts)
  local hdr, p = header(cfg), port(cfg)
  local http = {}
  for _, e in ipairs(list) do
    http[#http + 1] = {
      name = "version-" .. e.name,
      match = array { { headers = { [hdr] = { exact = e.name } } } },
      route = array { { destination = { host = cfg.name, subset = e.name, port = { number = p } } } },
    }
  end
  -- the header naming a version that is not deployed: 503, never the
  -- weighted route (a request for vN is served by vN or fails)
  http[#http + 1] = {
    name = "unknown-version",
    match = array { { headers = { [hdr] = { regex = ".+" } } } },
    directResponse = { status = 503, body = { string = '{"error":"no such version"}' } },
  }
  local default = {}
  for i, e in ipairs(list) do
    default[i] = { destination = { host = cfg.name, subset = e.name, port = { number = p } }, weight = w[i] }
  end
  http[#http + 1] = { name = "default", route = array(default) }
  local spec = { hosts = array { check_host(kc.host or cfg.name) }, http = array(http) }
  if kc.gateway and kc.gateway ~= "" then
    split_ref(kc.gateway, "kubernetes.gateway")
    spec.gateways = array { kc.gateway }
  end
  return {
    apiVersion = istio.ISTIO_API,
    kind = "VirtualService",
    metadata = metadata(cfg, cfg.name),
    spec = spec,
  }
end

-- parentRefs: kubernetes.parent_ref or kubernetes.gateway ("[ns/]name" of
-- a Gateway), else the service's own Service (GAMMA: mesh routing).
local function parent_refs(cfg)
  local kc = k8s_cfg(cfg)
  local ref = kc.parent_ref
  local what = "kubernetes.parent_ref"
  if not ref or ref == "" then ref, what = kc.gateway, "kubernetes.gateway" end
  if ref and ref ~= "" then
    local ns, name = split_ref(ref, what)
    return array { { group = "gateway.networking.k8s.io", kind = "Gateway", name = name, namespace = ns } }
  end
  return array { { group = "", kind = "Service", name = cfg.name, port = port(cfg) } }
end

--- The Gateway API HTTPRoute: a header rule per deployed version (to the
-- version's Service <service>-<v>) FIRST, then the weighted default rule
-- LAST with every deployed version's Service (weight 0 kept).
function istio.http_route(cfg, weights, opts)
  local kc = k8s_cfg(cfg)
  istio.check_service_name(cfg.name, "service name")
  local list = istio.weight_list(weights)
  if #list > istio.MAX_GATEWAY_API_VERSIONS then
    errors.refuse(string.format("Gateway API routing supports at most %d versions (an HTTPRoute has at most 16 rules); got %d",
      istio.MAX_GATEWAY_API_VERSIONS, #list))
  end
  local w = rendered_weights(cfg, list, opts)
  local hdr, p = header(cfg), port(cfg)
  local rules = {}
  for _, e in ipairs(list) do
    rules[#rules + 1] = {
      matches = array { { headers = array { { type = "Exact", name = hdr, value = e.name } } } },
      backendRefs = array { { name = istio.version_service_name(cfg, e.name), port = p } },
    }
  end
  local refs = {}
  for i, e in ipairs(list) do
    refs[i] = { name = istio.version_service_name(cfg, e.name), port = p, weight = w[i] }
  end
  rules[#rules + 1] = { backendRefs = array(refs) }
  return {
    apiVersion = istio.GATEWAY_API,
    kind = "HTTPRoute",
    metadata = metadata(cfg, cfg.name),
    spec = {
      parentRefs = parent_refs(cfg),
      hostnames = array { check_host(kc.host or cfg.name) },
      rules = array(rules),
    },
  }
end

-- ------------------------------------------------------------ sets --

--- The kind of the route object for the config's routing mode.
function istio.route_kind(cfg)
  return (k8s_cfg(cfg).routing == "gateway-api") and "HTTPRoute" or "VirtualService"
end

--- The route object for the config's routing mode.
function istio.route(cfg, weights, opts)
  if istio.route_kind(cfg) == "HTTPRoute" then return istio.http_route(cfg, weights, opts) end
  return istio.virtual_service(cfg, weights, opts)
end

--- Every object of the config's routing mode for these weights, in the
-- order to apply them (what a route refers to comes before the route):
--   istio:       Service, DestinationRule, VirtualService
--   gateway-api: Service, Service <service>-<v> per version, HTTPRoute
function istio.manifests(cfg, weights, opts)
  local list = istio.weight_list(weights)
  local out = { istio.service(cfg) }
  if istio.route_kind(cfg) == "HTTPRoute" then
    for _, e in ipairs(list) do out[#out + 1] = istio.version_service(cfg, e.name) end
  else
    out[#out + 1] = istio.destination_rule(cfg, list)
  end
  out[#out + 1] = istio.route(cfg, list, opts)
  return out
end

-- ---------------------------------------------------------- reading --

--- The weights of the weighted (last, match-less) route of a live
-- VirtualService or HTTPRoute as {version = weight}, or nil when the object
-- has none. Destinations that are not this service's versions are ignored.
function istio.route_weights(cfg, obj)
  if type(obj) ~= "table" or type(obj.spec) ~= "table" then return nil end
  local spec = obj.spec
  local out = {}
  if obj.kind == "HTTPRoute" then
    local rules = spec.rules or {}
    local last = rules[#rules]
    if type(last) ~= "table" then return nil end
    for _, m in ipairs(last.matches or {}) do
      if type(m) == "table" and ((m.headers and #m.headers > 0) or (m.queryParams and #m.queryParams > 0)) then
        return nil
      end
    end
    local prefix = cfg.name .. "-"
    for _, b in ipairs(last.backendRefs or {}) do
      if type(b.name) == "string" and b.name:sub(1, #prefix) == prefix then
        out[b.name:sub(#prefix + 1)] = math.tointeger(b.weight == nil and 1 or b.weight) or b.weight
      end
    end
    return out
  end
  local http = spec.http or {}
  local last = http[#http]
  if type(last) ~= "table" or (last.match and #last.match > 0) then return nil end
  for _, d in ipairs(last.route or {}) do
    local dest = d.destination or {}
    if dest.subset then
      local w = d.weight
      if w == nil then w = (#last.route == 1) and 100 or 0 end
      out[dest.subset] = math.tointeger(w) or w
    end
  end
  return out
end

--- The versions a live route has a header route for (sorted).
function istio.route_versions(cfg, obj)
  local out = {}
  local w = istio.route_weights(cfg, obj) or {}
  for v in pairs(w) do out[#out + 1] = v end
  table.sort(out)
  return out
end

return istio
