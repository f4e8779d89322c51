--- rollout.k8s.kinds: a kind argument ("Deployment", "deployments",
-- "deployment", "deploy", "apps/v1/deployments", "v1/pods") or a
-- manifest's apiVersion + kind -> {group, version, resource, kind,
-- namespaced}, and the paths of the REST API.
--
-- The core and apps kinds rollout uses are known; the custom resources
-- (Istio, Gateway API) are known by group and name but their version is
-- the one the cluster serves and prefers (discovery, /apis: an
-- APIGroup's preferredVersion, k8s.io/apimachinery/pkg/apis/meta/v1
-- types.go), so that reads and writes use the same version on Istio 1.15
-- to 1.21 (v1beta1 preferred, no v1) and on 1.22+ (v1 preferred). Anything
-- else is found with discovery (/api/v1, /apis/G/V), cached per client.
local util = require "rollout.k8s.util"

local kinds = {}

-- {group, version (nil: the preferred one), resource, kind, singular, short, namespaced}
kinds.BUILTIN = {
  { "", "v1", "namespaces", "Namespace", "namespace", "ns", false },
  { "", "v1", "services", "Service", "service", "svc", true },
  { "", "v1", "pods", "Pod", "pod", "po", true },
  { "", "v1", "events", "Event", "event", "ev", true },
  { "", "v1", "configmaps", "ConfigMap", "configmap", "cm", true },
  { "", "v1", "secrets", "Secret", "secret", nil, true },
  { "apps", "v1", "deployments", "Deployment", "deployment", "deploy", true },
  { "apps", "v1", "replicasets", "ReplicaSet", "replicaset", "rs", true },
  { "networking.istio.io", nil, "virtualservices", "VirtualService", "virtualservice", "vs", true },
  { "networking.istio.io", nil, "destinationrules", "DestinationRule", "destinationrule", "dr", true },
  { "gateway.networking.k8s.io", nil, "httproutes", "HTTPRoute", "httproute", nil, true },
}

local function matches(b, name)
  local l = name:lower()
  return b[4] == name or b[4]:lower() == l or b[3] == l or b[5] == l or (b[6] ~= nil and b[6] == l)
end

local function res(group, version, resource, kind, namespaced)
  return { group = group, version = version, resource = resource, kind = kind, namespaced = namespaced }
end

--- The path of a resource: /api/v1[/namespaces/NS]/RES[/NAME[/SUB]] or
-- /apis/G/V/...; ns is ignored for cluster-scoped resources, nil for all
-- namespaces.
function kinds.path(r, ns, name, sub)
  local p = r.group == "" and ("/api/" .. r.version) or ("/apis/" .. r.group .. "/" .. r.version)
  if r.namespaced and ns then p = p .. "/namespaces/" .. util.escape(ns) end
  p = p .. "/" .. r.resource
  if name then
    p = p .. "/" .. util.escape(name)
    if sub then p = p .. "/" .. sub end
  end
  return p
end

local function unknown(arg)
  return nil, string.format('the server doesn\'t have a resource type "%s"', arg), "not_found", "NoKindMatch"
end

-- The client's discovery: `get(path)` -> decoded JSON | false (404) | nil, msg, code, raw
local Disco = {}
Disco.__index = Disco

function kinds.discovery(get)
  return setmetatable({ get = get, gv = {}, groups = nil }, Disco)
end

--- {group -> preferred version} and the list of preferred group-versions
-- ("v1" first), from /apis.
function Disco:preferred()
  if self.groups then return self.groups end
  local doc, err, code, raw = self.get("/apis")
  if doc == nil then return nil, err, code, raw end
  local g = { [""] = "v1" }
  local order = { "v1" }
  for _, grp in ipairs(type(doc) == "table" and type(doc.groups) == "table" and doc.groups or {}) do
    local pv = type(grp.preferredVersion) == "table" and grp.preferredVersion.version
    if type(grp.name) == "string" and type(pv) == "string" then
      g[grp.name] = pv
      order[#order + 1] = grp.name .. "/" .. pv
    end
  end
  self.groups, self.order = g, order
  return g
end

--- The resources of group-version gv, or false when it is not served.
function Disco:resources(gv)
  if self.gv[gv] ~= nil then return self.gv[gv] end
  local doc, err, code, raw = self.get(gv == "v1" and "/api/v1" or ("/apis/" .. gv))
  if doc == nil then return nil, err, code, raw end
  local list = false
  if type(doc) == "table" then list = type(doc.resources) == "table" and doc.resources or {} end
  self.gv[gv] = list
  return list
end

local function find_in(list, name, kind_only)
  for pass = 1, 2 do
    for _, r in ipairs(list) do
      if type(r.name) == "string" and not r.name:find("/", 1, true) then
        local hit
        if pass == 1 then
          hit = r.kind == name
        elseif kind_only then
          hit = type(r.kind) == "string" and r.kind:lower() == name:lower()
        else
          local l = name:lower()
          hit = (type(r.kind) == "string" and r.kind:lower() == l) or r.name:lower() == l or
            (type(r.singularName) == "string" and r.singularName:lower() == l)
          for _, s in ipairs(type(r.shortNames) == "table" and r.shortNames or {}) do
            if s:lower() == l then hit = true end
          end
        end
        if hit then return r end
      end
    end
  end
end

local function from_api(gv, r)
  local group, version = gv:match("^(.*)/(.*)$")
  if not group then group, version = "", gv end
  return res(group, version, r.name, r.kind, r.namespaced == true)
end

--- The preferred version of a group, or nil, message, "not_found" when the
-- cluster does not serve it.
function Disco:version_of(group)
  if group == "" then return "v1" end
  local g, err, code, raw = self:preferred()
  if not g then return nil, err, code, raw end
  local v = g[group]
  if not v then
    return nil, string.format("the server does not serve the API group %s", group), "not_found", "NoKindMatch"
  end
  return v
end

--- A kind argument -> resource, or nil, message, code, raw.
function Disco:resolve(arg)
  if type(arg) ~= "string" or arg == "" then error("kind must be a non-empty string", 3) end
  if arg:find("/", 1, true) then
    local parts = {}
    for p in (arg .. "/"):gmatch("([^/]*)/") do parts[#parts + 1] = p end
    local g, v, name
    if #parts == 3 then g, v, name = parts[1], parts[2], parts[3]
    elseif #parts == 2 then g, v, name = "", parts[1], parts[2]
    else return unknown(arg) end
    if v == "" or name == "" then return unknown(arg) end
    for _, b in ipairs(kinds.BUILTIN) do
      if b[1] == g and matches(b, name) then return res(g, v, b[3], b[4], b[7]) end
    end
    local gv = g == "" and v or (g .. "/" .. v)
    local list, err, code, raw = self:resources(gv)
    if list == nil then return nil, err, code, raw end
    local r = list and find_in(list, name, false)
    if not r then return unknown(arg) end
    return from_api(gv, r)
  end
  for _, b in ipairs(kinds.BUILTIN) do
    if matches(b, arg) then
      local v = b[2]
      if v == nil then
        local err, code, raw
        v, err, code, raw = self:version_of(b[1])
        if not v then
          if code == "not_found" then return unknown(arg) end
          return nil, err, code, raw
        end
      end
      return res(b[1], v, b[3], b[4], b[7])
    end
  end
  local _, err, code, raw = self:preferred()
  if err then return nil, err, code, raw end
  for _, gv in ipairs(self.order) do
    local list, lerr, lcode, lraw = self:resources(gv)
    if list == nil then return nil, lerr, lcode, lraw end
    local r = list and find_in(list, arg, false)
    if r then return from_api(gv, r) end
  end
  return unknown(arg)
end

--- A manifest's apiVersion and kind -> resource, or nil, message, code, raw.
function Disco:resolve_gvk(api_version, kind)
  local g, v = api_version:match("^([^/]*)/([^/]*)$")
  if not g then g, v = "", api_version end
  if v == "" or v:find("/", 1, true) or (api_version:find("/", 1, true) and g == "") then
    return nil, string.format('apiVersion "%s" is not GROUP/VERSION or VERSION', api_version), "invalid", "apiVersion"
  end
  for _, b in ipairs(kinds.BUILTIN) do
    if b[1] == g and b[4] == kind then return res(g, v, b[3], b[4], b[7]) end
  end
  local list, err, code, raw = self:resources(api_version)
  if list == nil then return nil, err, code, raw end
  local r = list and find_in(list, kind, true)
  if not r then
    return nil, string.format('no matches for kind "%s" in version "%s"', kind, api_version), "not_found",
      "NoKindMatch"
  end
  return from_api(api_version, r)
end

return kinds
