--- rollout.target.kubernetes: versions as Helm releases on a cluster, routed
-- by objects rollout owns (rollout.target.kubernetes.routing) and writes
-- with server-side apply.
--
-- One Helm release per version, `<service>-<version>`, of the chart in
-- kubernetes.chart (deployments/chart). Routing, for kubernetes.routing:
--   istio        Service <service>, DestinationRule (a subset per version),
--                VirtualService (header routes first, weighted route last)
--   gateway-api  Service <service>, Service <service>-<v> per version,
--                HTTPRoute (header rules first, weighted rule last)
-- Each is applied with field manager "rollout" (force: rollout owns them)
-- and carries app=<service>, app.kubernetes.io/managed-by=rollout.
--
-- A weight change is exactly ONE API write (the route), then a GET that
-- confirms the weights the API server holds; never a helm upgrade. So is a
-- change of the strategy routes (set_routes): the route object holds them,
-- between the version routes and the weighted route, and weight changes
-- keep them.
--
-- The Istio and Gateway API objects are written and read in the version the
-- cluster prefers (discovery): networking.istio.io/v1 on Istio 1.22+,
-- v1beta1 on Istio 1.15-1.21 (relative weights need 1.15+; with
-- kubernetes.normalize_weights older ones work too).
--
-- Readiness of a version is one rule: rollout.k8s.rollout_status (kubectl
-- rollout status), with at least one replica.
--
-- Helm releases left pending-install/-upgrade/-rollback (a helm that was
-- killed: helm then refuses every upgrade with "another operation
-- (install/upgrade/rollback) is in progress", pkg/action/upgrade.go) are
-- listed with that status; deploy recovers one older than
-- kubernetes.pending_grace (default kubernetes.wait_timeout; uninstall when
-- nothing was ever deployed, else
-- helm rollback to the last deployed revision) and refuses a fresher one
-- (another helm may still be working on it); remove and remove_version
-- uninstall them like any release.
--
-- The cluster is the state: versions are the releases, readiness is the
-- Deployments' status and the pods, weights are the route's. TRAFFIC.yaml
-- is the desired state, as for the local target. The only local file is the
-- per-service lock (<state dir>/services/<service>/lock, shared with the
-- local target, since TRAFFIC.yaml is).
--
-- Errors: a kubeconfig that cannot be used (missing context, unreadable CA
-- or credentials) is a refusal (exit 2); the API unreachable, TLS, an
-- exec credential plugin failing or hanging, 401/403, helm failing are
-- failures (exit 1). Every message is one line naming the cause.
local fs = require "rollout.fs"
local time = require "rollout.time"
local sys = require "rollout.sys"
local errors = require "rollout.errors"
local config = require "rollout.config"
local traffic = require "rollout.traffic"
local istio = require "rollout.target.kubernetes.routing"
local base = require "rollout.target.base"
local defaults = require "rollout.defaults"

local M = {}
local K8s = base.class()

local FIELD_MANAGER = "rollout"

-- ------------------------------------------------------------- helpers --

local function tbl(x) return type(x) == "table" and x or {} end

local function oneline(s)
  s = tostring(s or "unknown error"):gsub("%s*\n%s*", "; "):gsub("%s+$", "")
  return s
end

local sorted_keys = base.sorted_keys

local function copy(v, depth)
  depth = depth or 0
  if type(v) ~= "table" then return v end
  if depth > 32 then errors.refuse("kubernetes.values is nested too deeply") end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x, depth + 1) end
  -- keep the YAML/JSON array/object markers (an empty list stays a list)
  local mt = getmetatable(v)
  if type(mt) == "table" and rawget(mt, "__jsontype") then setmetatable(out, mt) end
  return out
end

local function binding(name)
  local ok, mod = pcall(require, "rollout." .. name)
  if not ok then
    errors.fail(string.format("this rollout has no rollout.%s binding (built without it?): %s", name, oneline(mod)))
  end
  return mod
end

--- A Kubernetes target for a loaded service config (rollout.config.load).
-- opts.wait: wait for another rollout working on the service.
function M.new(cfg, opts)
  local t = base.new(K8s, "kubernetes", cfg, opts)
  t.kc = cfg.kubernetes or {}
  t.defaults = defaults.of(cfg)
  t.namespace = t.kc.namespace or "default"
  t.route_kind = istio.route_kind(cfg)
  return t
end

--- Runs fn() holding the service lock (re-entrant within one call chain).
function K8s:locked(fn)
  return self:with_lock(fn)
end

-- ------------------------------------------------------------ the API --

--- The API client, created on first use (so a missing cluster breaks only
-- what needs it). A kubeconfig that cannot be used (missing, unreadable,
-- refused by client-go's rules) is a refusal, exit 2: nothing was tried.
function K8s:client()
  if self._client then return self._client end
  local k8s = binding("k8s")
  local timeout = self.kc.api_timeout or self.defaults.api_timeout
  local c, err, code, raw = k8s.client {
    context = self.kc.context,
    namespace = self.namespace,
    timeout = timeout,
    exec_timeout = math.min(timeout, self.defaults.exec_timeout),
  }
  if not c then
    errors.refuse("cannot use the kubeconfig: " .. oneline(err), { code = code, raw = raw })
  end
  self._client = c
  return c
end

--- The options that give helm the same cluster, user and context as the
-- API client: the kubeconfig option or the same $KUBECONFIG list, and the
-- context the client resolved (so a kubeconfig list that client-go merges
-- is merged by helm the same way, and both use one context).
function K8s:helm_opts(t)
  local src = self:client():source()
  if not src.in_cluster then
    if src.kubeconfig then
      t.kubeconfig = src.kubeconfig
    elseif #src.files > 0 then
      t.env = t.env or {}
      t.env.KUBECONFIG = os.getenv("KUBECONFIG") or table.concat(src.files, ":")
    end
    t.kube_context = src.context
  end
  return t
end

local hints = {
  connect = "is the API server up and the kubeconfig's server address right?",
  timeout = "the API server did not answer in time",
  tls = "TLS failed: check the kubeconfig's certificate-authority and tls-server-name",
  unauthorized = "the API server refused the credentials (401)",
  forbidden = "the kubeconfig's user lacks the RBAC permission (403)",
  unavailable = "the API server is busy or down (429/5xx, retried as it asked)",
}

-- Raises the failure of an API call: one line, what was being done, the
-- server's or transport's message and its code.
function K8s:api_fail(what, err, code, extra, raw)
  local msg = string.format("cannot %s: %s", what, oneline(err))
  local hint = hints[code]
  if hint and not msg:find(hint, 1, true) and (code ~= "forbidden" or not msg:find("forbidden", 1, true)) then
    msg = msg .. " (" .. hint .. ")"
  end
  if extra then msg = msg .. "; " .. extra end
  errors.fail(msg, { code = code, raw = raw })
end

--- The apiVersion to write a kind in: the one the cluster prefers for its
-- group (discovery); the read path resolves the kind the same way.
function K8s:api_version(kind)
  self._api = self._api or {}
  if self._api[kind] then return self._api[kind] end
  local group = ({ VirtualService = "networking.istio.io", DestinationRule = "networking.istio.io",
                   HTTPRoute = "gateway.networking.k8s.io" })[kind]
  local v, err, code, raw = self:client():preferred_version(group)
  if not v then
    if code == "not_found" then
      errors.fail(string.format("the cluster does not serve %s (%s): %s", group,
        group == "networking.istio.io" and "is Istio installed?" or "are the Gateway API CRDs installed?",
        oneline(err)), { code = code, raw = raw })
    end
    self:api_fail("discover the API group " .. group, err, code, nil, raw)
  end
  self._api[kind] = group .. "/" .. v
  return self._api[kind]
end

-- Options for rendering: the API versions the cluster serves.
function K8s:render_opts(extra)
  local o = { normalize = self.kc.normalize_weights,
              api_version = self:api_version(self.route_kind) }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

local function describe(kind, name) return kind .. " " .. name end

--- GET an object of the service's namespace; nil when it does not exist.
function K8s:get(kind, name)
  local obj, err, code, raw = self:client():get(kind, name, { namespace = self.namespace })
  if obj then
    if obj.kind == nil then obj.kind = kind end
    return obj
  end
  if code == "not_found" then return nil end
  self:api_fail("read " .. describe(kind, name), err, code, nil, raw)
end

--- LIST objects by label selector; an empty list when the kind is not
-- served (e.g. no Istio CRDs on a Gateway API cluster).
function K8s:list(kind, selector)
  local res, err, code, raw = self:client():list(kind, { namespace = self.namespace, selector = selector })
  if res then return tbl(res.items) end
  if code == "not_found" then return {} end
  self:api_fail(string.format("list %ss (%s)", kind, selector), err, code, nil, raw)
end

--- One server-side apply (field manager rollout, force).
function K8s:apply(manifest, extra_on_fail)
  local obj, err, code, raw = self:client():apply(manifest, { field_manager = FIELD_MANAGER, force = true })
  if obj then return obj end
  self:api_fail("apply " .. describe(manifest.kind, manifest.metadata.name), err, code, extra_on_fail, raw)
end

--- DELETE; true when deleted, false when it was not there.
function K8s:delete(kind, name)
  local obj, err, code, raw = self:client():delete(kind, name, { namespace = self.namespace })
  if obj then return true end
  if code == "not_found" then return false end
  self:api_fail("delete " .. describe(kind, name), err, code, nil, raw)
end

-- --------------------------------------------------------------- helm --

function K8s:release_name(version)
  config.check_name(version, "version")
  local release = self.name .. "-" .. version
  if #release > 53 then
    errors.refuse(string.format("the Helm release name %s (service-version) is longer than 53 characters", release))
  end
  return release
end

local function helm_fail(what, err, code, raw)
  errors.fail(string.format("cannot %s: %s", what, oneline(err)), { code = code, raw = raw })
end

-- The service's releases: {version = {name, release, revision, status,
-- chart, pending}}. Every state (helm list --all): a release a killed helm
-- left pending-* is one of them (helm list alone hides it:
-- pkg/action/list.go SetStateMask shows deployed and failed only).
function K8s:releases()
  local helm = binding("helm")
  local list, err, code, raw = helm.list(self:helm_opts { namespace = self.namespace,
                                                          filter = "^" .. self.name .. "-", all = true })
  if not list then helm_fail("list the Helm releases of " .. self.name, err, code, raw) end
  local prefix = self.name .. "-"
  local out = {}
  for _, r in ipairs(list) do
    if type(r.name) == "string" and r.name:sub(1, #prefix) == prefix then
      local v = r.name:sub(#prefix + 1)
      if v ~= "" and require("rollout.weights").is_name(v) then
        if r.status ~= "uninstalled" and r.status ~= "superseded" then
          out[v] = { name = v, release = r.name, revision = tonumber(r.revision) or r.revision, status = r.status,
                     chart = r.chart, app_version = r.app_version, updated = r.updated,
                     pending = helm.pending(r.status) }
        end
      end
    end
  end
  return out
end

-- ----------------------------------------------------------- observing --

--- Everything the decisions need, read (never written) in one go:
-- {releases, versions (names, sorted), deployments (by name), pods (list),
--  route (live object or nil), weights (from the route or {}), routes (the
--  strategy routes the route holds), dr, services; and, for
--  rollout.target.base, deployed = releases and names = versions}.
function K8s:observe()
  local obs = {}
  self:client() -- a kubeconfig problem is reported before anything else
  obs.route = self:get(self.route_kind, self.name)
  obs.weights = obs.route and istio.route_weights(self.cfg, obs.route) or {}
  obs.routes = istio.routes(self.cfg, obs.route)
  obs.deployments = {}
  for _, d in ipairs(self:list("Deployment", "app=" .. self.name)) do
    obs.deployments[tbl(d.metadata).name or "?"] = d
  end
  obs.pods = self:list("Pod", "app=" .. self.name)
  if self.route_kind == "HTTPRoute" then
    obs.services = {}
    for _, s in ipairs(self:list("Service", istio.selector(self.cfg))) do
      obs.services[tbl(s.metadata).name or "?"] = s
    end
  else
    obs.dr = self:get("DestinationRule", self.name)
  end
  local releases = self:releases()
  -- a release whose Deployment belongs to another service is not ours
  -- (service "a" and service "a-b" in one namespace: "a-b-v1")
  for v, r in pairs(releases) do
    local d = obs.deployments[r.release]
    if d == nil then
      local other = self:get("Deployment", r.release)
      if other and tbl(tbl(other.metadata).labels).app ~= self.name then releases[v] = nil end
    end
  end
  obs.releases = releases
  obs.versions = sorted_keys(releases)
  obs.deployed, obs.names = obs.releases, obs.versions
  return obs
end

--- What the weight decisions need (rollout.target.base): the cluster now.
function K8s:view()
  return self:observe()
end

-- Why a pod is not ready, from its container statuses (e.g. ImagePullBackOff).
local function pod_problem(pod)
  local st = tbl(pod.status)
  for _, cs in ipairs(tbl(st.containerStatuses)) do
    local w = tbl(tbl(cs.state).waiting)
    if w.reason then
      local m = type(w.message) == "string" and (": " .. w.message) or ""
      return string.format("pod %s: %s%s", tbl(pod.metadata).name or "?", w.reason, m)
    end
    local term = tbl(tbl(cs.state).terminated)
    if term.reason then
      return string.format("pod %s: %s", tbl(pod.metadata).name or "?", term.reason)
    end
  end
  if st.phase and st.phase ~= "Running" then
    return string.format("pod %s is %s", tbl(pod.metadata).name or "?", st.phase)
  end
  return nil
end

local function pod_ready(pod)
  for _, c in ipairs(tbl(tbl(pod.status).conditions)) do
    if c.type == "Ready" then return c.status == "True" end
  end
  return false
end

function K8s:version_pods(obs, version)
  local out = {}
  for _, p in ipairs(obs.pods) do
    local l = tbl(tbl(p.metadata).labels)
    if l.version == version and not tbl(p.metadata).deletionTimestamp then out[#out + 1] = p end
  end
  return out
end

--- Readiness of a version from its Deployment and pods: its rollout is
-- complete by kubectl's rules (rollout.k8s.rollout_status) and it has
-- replicas. -> ready (boolean), detail (why not), replicas, ready replicas.
function K8s:readiness(obs, version)
  local release = self.name .. "-" .. version
  local d = obs.deployments[release]
  if not d then return false, "its Deployment " .. release .. " does not exist", 0, 0 end
  local spec, st = tbl(d.spec), tbl(d.status)
  local want = math.tointeger(spec.replicas) or 1
  local ready = math.tointeger(st.readyReplicas) or 0
  if want == 0 then return false, "its Deployment is scaled to 0 replicas", 0, 0 end
  local done, status_msg, failed = binding("k8s").rollout_status(d)
  if done then return true, nil, want, ready end
  local why = string.format("%d/%d pods ready", ready, want)
  if failed then why = why .. ", " .. status_msg end
  for _, p in ipairs(self:version_pods(obs, version)) do
    local problem = not pod_ready(p) and pod_problem(p)
    if problem then
      why = why .. ", " .. problem
      break
    end
  end
  return false, why, want, ready
end

-- Whether the routing objects other than the route know the version.
function K8s:routable(obs, version)
  if self.route_kind == "HTTPRoute" then
    local svc = istio.version_service_name(self.cfg, version)
    if not obs.services[svc] then return false, "its Service " .. svc .. " does not exist" end
    return true
  end
  for _, s in ipairs(tbl(tbl(tbl(obs.dr).spec).subsets)) do
    if s.name == version then return true end
  end
  return false, "the DestinationRule has no subset " .. version
end

-- ---------------------------------------------------------- rendering --

-- The route for weights {v = w} over `versions` (every one; 0 if absent)
-- with the strategy routes `routes`.
function K8s:render_route(versions, weights, routes)
  local list = {}
  for _, v in ipairs(versions) do list[#list + 1] = { name = v, weight = weights[v] or 0 } end
  return istio.route(self.cfg, list, self:render_opts { routes = routes or {} })
end

-- The weights a rendered route carries (normalized or not), {v = w}.
local function rendered_weights(cfg, manifest)
  return istio.route_weights(cfg, manifest)
end

local function same_weights(a, b)
  for k, v in pairs(a or {}) do if (b or {})[k] ~= v then return false end end
  for k, v in pairs(b or {}) do if (a or {})[k] ~= v then return false end end
  return true
end

local function weights_text(w)
  local text = base.weights_text(w or {})
  return text ~= "" and text or "none"
end

-- A manifest that puts the live object's spec back (for a restore).
local function restore_manifest(live)
  local md = tbl(live.metadata)
  return { apiVersion = live.apiVersion, kind = live.kind,
           metadata = { name = md.name, namespace = md.namespace, labels = md.labels }, spec = live.spec }
end

-- ------------------------------------------------------------- deploy --

--- The chart: kubernetes.chart, a path relative to the project directory
-- (the parent of the deployments directory); "deployments/..." is also
-- looked up in the deployments directory itself ($ROLLOUT_DEPLOYMENTS),
-- then beside the stdlib (the shipped chart). Absolute paths and URLs are
-- used as they are.
function K8s:chart()
  local chart = self.kc.chart or "deployments/chart"
  if chart:sub(1, 1) == "/" or chart:find("://", 1, true) then return chart end
  local candidates = { fs.join(self.cfg.project_dir or config.project_dir(), chart) }
  local rest = chart:match("^deployments/(.+)$")
  if rest then candidates[#candidates + 1] = fs.join(config.deployments_dir(), rest) end
  if sys.root then candidates[#candidates + 1] = fs.join(sys.root, chart) end
  for _, p in ipairs(candidates) do
    if fs.exists(p) then return p end
  end
  return candidates[1]
end

-- Uninstalls a release this call created; returns the sentence to add.
function K8s:undo_install(release)
  local helm = binding("helm")
  local ok, _, code = helm.uninstall(self:helm_opts { release = release, namespace = self.namespace })
  if ok then return "; the new release was uninstalled" end
  if code == "not_found" then return "" end
  return "; uninstalling the new release failed too"
end

--- The chart values for a version: kubernetes.values, then the fields of
-- service.yaml (which win): service, version, image, replicaCount, port,
-- healthPath. {version} and {service} expand in image.repository/tag.
function K8s:values(version)
  local kc = self.kc
  local vars = { version = version, service = self.name }
  local v = copy(kc.values or {})
  if type(v) ~= "table" then errors.refuse(self.cfg.file .. ": kubernetes.values must be a mapping") end
  local img = tbl(kc.image)
  v.service = self.name
  v.version = version
  v.image = type(v.image) == "table" and v.image or {}
  v.image.repository = config.expand(img.repository or self.name, vars, self.cfg.file .. ": kubernetes.image.repository")
  v.image.tag = config.expand(img.tag or "{version}", vars, self.cfg.file .. ": kubernetes.image.tag")
  v.image.pullPolicy = img.pull_policy or "IfNotPresent"
  v.replicaCount = kc.replicas or 1
  v.port = self.cfg.port
  v.healthPath = self.cfg.health_path
  return v
end

-- Applies the routing objects for `weights` over `versions`, in order; on
-- a failure puts back the live DestinationRule/route it had (best effort).
function K8s:apply_routing(obs, versions, weights)
  local list = {}
  for _, v in ipairs(versions) do list[#list + 1] = { name = v, weight = weights[v] or 0 } end
  local manifests = istio.manifests(self.cfg, list, self:render_opts { routes = obs.routes })
  local applied = {}
  local ok, err = errors.pcall(function()
    for _, m in ipairs(manifests) do
      self:apply(m)
      applied[#applied + 1] = m
    end
  end)
  if ok then return manifests end
  -- put back what the route and DestinationRule were
  local restored = {}
  for _, m in ipairs(applied) do
    local live = (m.kind == self.route_kind and obs.route) or (m.kind == "DestinationRule" and obs.dr) or nil
    if live then
      local rok = errors.pcall(self.apply, self, restore_manifest(live))
      if rok then restored[#restored + 1] = m.kind end
    end
  end
  if #restored > 0 then
    error(errors.failed(errors.message(err) .. "; restored the previous " .. table.concat(restored, " and ")), 0)
  end
  error(err, 0)
end

--- Deploys a version: helm upgrade --install <service>-<version> (waiting
-- for it), then the routing with the version at weight 0 (a weight it
-- already had is kept). Idempotent for a ready version already routed
-- (opts.restart upgrades it anyway). A fresh release that fails is
-- uninstalled again. Returns {name, release, revision, started = bool,
-- replicas, ready}.
function K8s:deploy(version, opts)
  opts = opts or {}
  local release = self:release_name(version)
  return self:locked(function()
    local obs = self:observe()
    local existing = obs.releases[version]
    if existing and existing.pending then
      self:recover_pending(existing)
      obs = self:observe()
      existing = obs.releases[version]
    end
    local values = self:values(version)
    if existing and not opts.restart then
      local ready, _, want, have = self:readiness(obs, version)
      local d = obs.deployments[release]
      local c = tbl(tbl(tbl(tbl(d).spec).template).spec).containers
      local image = tbl(tbl(c)[1]).image
      local want_image = values.image.repository .. ":" .. values.image.tag
      if ready and image == want_image and existing.status == "deployed" then
        if obs.weights[version] == nil or not self:routable(obs, version) then
          self:routing_with(obs, version)
        end
        return { name = version, release = release, revision = existing.revision, started = false,
                 replicas = want, ready = have }
      end
    end
    local helm = binding("helm")
    local wait_timeout = self.kc.wait_timeout or self.defaults.wait_timeout
    local res, err, code, raw = helm.install(self:helm_opts {
      release = release, chart = self:chart(), namespace = self.namespace, values = values,
      wait = true, timeout = wait_timeout,
    })
    local function give_up(what, msg, c, r)
      local why = ""
      local okr, fresh = errors.pcall(self.observe, self)
      if okr then
        local ready, detail = self:readiness(fresh, version)
        if not ready and detail then why = " (" .. detail .. ")" end
      end
      local cleanup = existing and "" or self:undo_install(release)
      errors.fail(string.format("cannot %s: %s%s%s", what, oneline(msg), why, cleanup), { code = c, raw = r })
    end
    if not res then give_up("deploy " .. self.name .. " " .. version .. " with helm", err, code, raw) end
    local client = self:client()
    local ok, werr, wcode, wraw = client:wait_rollout(release, { namespace = self.namespace, timeout = wait_timeout })
    if not ok then give_up("roll out " .. release, werr, wcode, wraw) end
    local after = self:observe()
    local rok, rerr = errors.pcall(self.routing_with, self, after, version)
    if not rok then
      local msg = errors.message(rerr) .. (existing and "" or self:undo_install(release))
      if errors.is(rerr, "refused") then errors.refuse(msg) end
      errors.fail(msg)
    end
    local _, _, want, have = self:readiness(after, version)
    return { name = version, release = release, revision = tonumber(tbl(res).version) or tbl(res).version,
             started = true, replicas = want, ready = have }
  end)
end

-- The routing of the deployed versions plus `version` (weight kept, else 0).
function K8s:routing_with(obs, version)
  local set = {}
  for _, v in ipairs(obs.versions) do set[v] = true end
  set[version] = true
  local versions = sorted_keys(set)
  local w = {}
  for _, v in ipairs(versions) do w[v] = obs.weights[v] or 0 end
  return self:apply_routing(obs, versions, w)
end

-- ------------------------------------------------------------ weights --

--- Why a deployed version cannot take weight (nil when it can): it is not
-- ready (kubectl rollout status's rules), or the routing does not know it.
function K8s:unready(obs, version)
  local ready, why = self:readiness(obs, version)
  if not ready then return "is not ready (" .. why .. ")" end
  local routable, rwhy = self:routable(obs, version)
  if not routable then return "is not routed (" .. rwhy .. "): deploy it again" end
  return nil
end

-- Applies the route for `map` (ONE write) and confirms with a GET that the
-- API server holds those weights. On failure puts the previous route back
-- and raises a failure that says what state the route is in.
function K8s:apply_weights(obs, map, routes)
  local manifest = self:render_route(obs.versions, map, routes or obs.routes)
  local want = rendered_weights(self.cfg, manifest)
  local kind, name = manifest.kind, manifest.metadata.name
  local previous = obs.route
  local client = self:client()
  local function restore(why)
    if not previous then
      local ok = errors.pcall(self.delete, self, kind, name)
      return why .. (ok and "; the new " .. kind .. " was deleted" or "; deleting the new " .. kind .. " failed too")
    end
    local ok = client:apply(restore_manifest(previous), { field_manager = FIELD_MANAGER, force = true })
    return why .. (ok and "; the previous weights were restored" or "; restoring the previous weights failed too")
  end
  local obj, err, code, raw = client:apply(manifest, { field_manager = FIELD_MANAGER, force = true })
  if not obj and code ~= "timeout" then
    -- refused by the server, or never sent: nothing changed
    self:api_fail("apply " .. describe(kind, name), err, code, "the route is unchanged", raw)
  elseif not obj then
    -- a timeout: the request may have been carried out anyway
    local live = client:get(kind, name, { namespace = self.namespace })
    local now = live and istio.route_weights(self.cfg, live)
    if live and same_weights(now, want) then
      obj = live
    elseif (not previous and not live) or (live and same_weights(now, obs.weights)) then
      self:api_fail("apply " .. describe(kind, name), err, code, "the route is unchanged")
    else
      self:api_fail("apply " .. describe(kind, name), err, code,
        restore("the route may have changed"))
    end
  end
  -- read back what the API server holds
  local live, gerr, gcode = client:get(kind, name, { namespace = self.namespace })
  if not live then
    self:api_fail("read back " .. describe(kind, name), gerr, gcode, restore("the weights could not be confirmed"))
  end
  local got = istio.route_weights(self.cfg, live)
  if not same_weights(got, want) then
    errors.fail(string.format("the API server holds %s weights %s instead of %s (another controller?)%s",
      kind, weights_text(got), weights_text(want), restore("")))
  end
  return live, got
end

--- Sets the weights: validate → write TRAFFIC.yaml atomically → ONE
-- server-side apply of the route → GET to confirm. `w` is {v1 = 50, ...} or
-- a TRAFFIC-style list; deployed versions not named get 0. On invalid input
-- nothing changes (refusal, exit 2); on a failure the previous TRAFFIC.yaml
-- and route are put back (exit 1). opts.write = false applies without
-- writing TRAFFIC.yaml. Returns {previous =, weights = (every deployed
-- version), traffic = (the new TRAFFIC.yaml list), applied = (the weights
-- the route holds, normalized when configured)}: the flow of
-- rollout.target.base.
function K8s:set_weights(w, opts)
  opts = opts or {}
  return base.set_weights(self, w, opts, function(obs, map, _, new_list, old_text)
    local applied
    -- file and route change whole, even on ^C; a failure puts TRAFFIC.yaml back
    local ok, err = errors.pcall(traffic.transaction, self.cfg.traffic_file, new_list, old_text, opts.write,
      function()
        local _, got = self:apply_weights(obs, map)
        applied = got
      end)
    if not ok then
      if not errors.is(err) then error(err, 0) end -- a bug: keep its traceback
      local msg = err.message
      if opts.write ~= false then msg = msg .. "; TRAFFIC.yaml is unchanged" end
      if err.kind == "refused" then errors.refuse(msg, { code = err.code }) end
      errors.fail(msg, { code = err.code })
    end
    return applied
  end)
end

-- ------------------------------------------------------ strategy routes --

--- Replaces the strategy-owned routes of the service (see
-- rollout.target.kubernetes.routing for their shape and how they render):
-- the version routes come first, then these in list order, then the
-- weighted route. Refused (exit 2, nothing changed): a bad name, header or
-- cookie, a route naming a version that is not deployed, more than the
-- route object can hold. set_routes({}) clears them. Exactly one
-- server-side apply of the route object (weights kept), then read back to
-- confirm. Returns the routes in effect.
function K8s:set_routes(routes)
  return self:locked(function()
    local obs = self:observe()
    if not obs.route then
      errors.refuse(string.format("%s has no %s yet: deploy a version first", self.name, self.route_kind))
    end
    local deployed = {}
    for _, v in ipairs(obs.versions) do deployed[v] = true end
    local want = istio.check_routes(self.cfg, routes, deployed)
    -- render everything before writing anything (a refusal changes nothing)
    local weights = {}
    for _, v in ipairs(obs.versions) do weights[v] = obs.weights[v] or 0 end
    local manifest = self:render_route(obs.versions, weights, want)
    local kind, name = manifest.kind, manifest.metadata.name
    local client = self:client()
    local obj, err, code, raw = client:apply(manifest, { field_manager = FIELD_MANAGER, force = true })
    if not obj then
      self:api_fail("apply " .. describe(kind, name), err, code,
        code == "timeout" and "the routes may have changed" or "the routes are unchanged", raw)
    end
    local live, gerr, gcode, graw = client:get(kind, name, { namespace = self.namespace })
    if not live then self:api_fail("read back " .. describe(kind, name), gerr, gcode, nil, graw) end
    local got = istio.routes(self.cfg, live)
    if not istio.same_routes(got, want) then
      errors.fail(string.format("the API server holds other routes in %s %s than were applied (another controller?)",
        kind, name))
    end
    return got
  end)
end

--- The strategy routes in effect (read back from the route object), in
-- order: {{name, version, match = {{headers = {}, cookies = {}}}}}.
function K8s:routes()
  local route = self:get(self.route_kind, self.name)
  return istio.routes(self.cfg, route)
end

-- ----------------------------------------------------- pending releases --

--- A release a killed helm left pending-*: recovered when it is older
-- than kubernetes.pending_grace (default kubernetes.wait_timeout: a helm
-- started with that --timeout has given up by then), by
-- `helm uninstall` when no revision was ever deployed, else `helm rollback`
-- to the last deployed revision; refused while fresher (another helm may
-- still be working on it).
function K8s:recover_pending(r)
  local helm = binding("helm")
  local hist, err, code, raw = helm.history(self:helm_opts { release = r.release, namespace = self.namespace })
  if not hist then helm_fail("read the history of " .. r.release, err, code, raw) end
  local last = hist[#hist] or {}
  local updated = require("rollout.k8s.util").rfc3339(last.updated)
  local age = updated and (time.wall() - updated) or math.huge
  local limit = self.kc.pending_grace or self.kc.wait_timeout or self.defaults.wait_timeout
  if age < limit then
    errors.fail(string.format("the Helm release %s is %s since %ds: another helm may still be working on it; " ..
      "try again after %ds (kubernetes.pending_grace), or finish it with helm", r.release, tostring(r.status),
      math.floor(age), math.ceil(limit - age)), { code = "conflict", raw = r.status })
  end
  local target
  for i = #hist, 1, -1 do
    local h = hist[i]
    if h.status == "deployed" or h.status == "superseded" then
      target = math.tointeger(h.revision)
      break
    end
  end
  local ok
  if target then
    ok, err, code, raw = helm.rollback(self:helm_opts { release = r.release, namespace = self.namespace,
      revision = target, timeout = self.kc.wait_timeout or self.defaults.wait_timeout })
    if not ok then helm_fail(string.format("roll %s (%s) back to revision %d", r.release, r.status, target), err, code,
      raw) end
  else
    ok, err, code, raw = helm.uninstall(self:helm_opts { release = r.release, namespace = self.namespace })
    if not ok and code ~= "not_found" then
      helm_fail(string.format("uninstall %s (%s, never deployed)", r.release, r.status), err, code, raw)
    end
  end
  return target and ("rolled back to revision " .. target) or "uninstalled"
end

-- ------------------------------------------------------------ queries --

--- Every deployed version: {name, weight, share, ready, replicas,
-- ready_replicas, release, revision, status (helm's), chart, gateway =
-- "routed" | "absent", detail (why not ready)}.
function K8s:versions()
  local obs = self:observe()
  local total = 0
  for _, v in ipairs(obs.versions) do total = total + (obs.weights[v] or 0) end
  local out = {}
  for _, v in ipairs(obs.versions) do
    local r = obs.releases[v]
    local ready, why, want, have = self:readiness(obs, v)
    local weight = obs.weights[v] or 0
    out[#out + 1] = {
      name = v, weight = weight, share = total > 0 and weight / total or 0, ready = ready,
      replicas = want, ready_replicas = have, release = r.release, revision = r.revision, status = r.status,
      chart = r.chart, gateway = obs.weights[v] ~= nil and "routed" or "absent",
      detail = r.pending and ("the Helm release is " .. r.status .. ": a helm operation did not finish") or why,
      pending = r.pending or nil,
    }
  end
  return out
end

--- Health of one version (or all): the release, the Deployment and its
-- pods, and the route. {version, ok, ready, replicas, ready_replicas,
-- release, status, gateway, detail (why not ok, e.g. ImagePullBackOff)}.
function K8s:health(version)
  local obs = self:observe()
  local function one(v)
    local r = obs.releases[v]
    if not r then return { version = v, ok = false, ready = false, detail = "not deployed" } end
    local ready, why, want, have = self:readiness(obs, v)
    local routed = obs.weights[v] ~= nil
    local routable, rwhy = self:routable(obs, v)
    local detail = why
    if r.pending then
      detail = "the Helm release is " .. r.status .. ": a helm operation did not finish (deploy it again to recover)"
    elseif ready and not routed then
      detail = "absent from the " .. self.route_kind
    elseif ready and not routable then
      detail = rwhy
    elseif ready and r.status ~= "deployed" then
      detail = "the Helm release is " .. tostring(r.status)
    end
    return {
      version = v, ok = ready and routed and routable and r.status == "deployed", ready = ready,
      replicas = want, ready_replicas = have, release = r.release, status = r.status,
      gateway = routed and string.format("routed, weight %s", tostring(obs.weights[v])) or "absent",
      weight = obs.weights[v], detail = ready and routed and routable and r.status == "deployed" and nil or detail,
    }
  end
  if version then return one(version) end
  local all = {}
  for _, v in ipairs(obs.versions) do all[#all + 1] = one(v) end
  return all
end

--- The URL verification probes: kubernetes.endpoint (GATEWAY_ENDPOINT and
-- --endpoint override it in rollout.service), or nil.
function K8s:endpoint()
  local e = self.kc.endpoint
  if e == nil or e == "" then return nil end
  return e
end

--- The weights the route on the API server holds, or nil without a route.
function K8s:gateway_weights()
  local route = self:get(self.route_kind, self.name)
  return route and istio.route_weights(self.cfg, route) or nil
end

-- Objects rollout owns for the service, as {kind, name}; routes first.
function K8s:owned()
  local sel = istio.selector(self.cfg)
  local out = {}
  for _, kind in ipairs { "VirtualService", "HTTPRoute", "DestinationRule", "Service" } do
    for _, o in ipairs(self:list(kind, sel)) do
      out[#out + 1] = { kind = kind, name = tbl(o.metadata).name }
    end
  end
  return out
end

--- What is left of the service on the cluster: Helm releases, the objects
-- rollout owns, Deployments and pods labelled app=<service>. An empty list
-- when nothing is.
function K8s:leftovers()
  local left = {}
  for _, v in ipairs(sorted_keys(self:releases())) do
    left[#left + 1] = "helm release " .. self.name .. "-" .. v
  end
  for _, o in ipairs(self:owned()) do
    left[#left + 1] = string.format("%s %s/%s", o.kind, self.namespace, o.name)
  end
  for _, d in ipairs(self:list("Deployment", "app=" .. self.name)) do
    left[#left + 1] = string.format("Deployment %s/%s", self.namespace, tbl(d.metadata).name)
  end
  for _, p in ipairs(self:list("Pod", "app=" .. self.name)) do
    left[#left + 1] = string.format("Pod %s/%s", self.namespace, tbl(p.metadata).name)
  end
  return left
end

-- ------------------------------------------------------------- removal --

--- Removes a version: refused while it has weight unless opts.force (then
-- it is drained first, if others can take over); the routing without it
-- (route first, then the DestinationRule subset or its Service); then helm
-- uninstall; its TRAFFIC.yaml entry goes. Returns {name, release}.
function K8s:remove_version(version, opts)
  local release = self:release_name(version)
  return base.remove_version(self, version, opts, function(obs)
    local remaining = {}
    for _, v in ipairs(obs.versions) do if v ~= version then remaining[#remaining + 1] = v end end
    if #remaining > 0 then
      local w = {}
      for _, v in ipairs(remaining) do w[v] = obs.weights[v] or 0 end
      -- the route stops naming the version before its subset/Service goes
      self:apply(self:render_route(remaining, w, obs.routes))
      if self.route_kind == "HTTPRoute" then
        self:delete("Service", istio.version_service_name(self.cfg, version))
      else
        self:apply(istio.destination_rule(self.cfg, remaining, { api_version = self:api_version("DestinationRule") }))
      end
    else
      self:delete_routing()
    end
    local helm = binding("helm")
    local ok, err, code, raw = helm.uninstall(self:helm_opts { release = release, namespace = self.namespace })
    if not ok and code ~= "not_found" then helm_fail("uninstall " .. release, err, code, raw) end
    return { name = version, release = release }
  end)
end

-- Deletes every routing object rollout owns for the service (routes first).
function K8s:delete_routing()
  local deleted = {}
  for _, o in ipairs(self:owned()) do
    if self:delete(o.kind, o.name) then deleted[#deleted + 1] = o.kind .. "/" .. o.name end
  end
  return deleted
end

--- Removes the whole service: its routes (traffic stops first), every
-- release, the Services; then waits until no release, owned object,
-- Deployment or pod is left (raises naming what is). TRAFFIC.yaml, the
-- desired state, is left as it is. Returns {versions = {{name, release}},
-- objects = {"Kind/name", ...}}.
function K8s:remove()
  local result = self:locked(function()
    local releases = self:releases()
    local sel = istio.selector(self.cfg)
    local objects = {}
    -- routes and DestinationRule first: no traffic to versions going away
    for _, kind in ipairs { "VirtualService", "HTTPRoute", "DestinationRule" } do
      for _, o in ipairs(self:list(kind, sel)) do
        local name = tbl(o.metadata).name
        if self:delete(kind, name) then objects[#objects + 1] = kind .. "/" .. name end
      end
    end
    local helm = binding("helm")
    local removed = {}
    for _, v in ipairs(sorted_keys(releases)) do
      local r = releases[v]
      local ok, err, code, raw = helm.uninstall(self:helm_opts { release = r.release, namespace = self.namespace })
      if not ok and code ~= "not_found" then helm_fail("uninstall " .. r.release, err, code, raw) end
      removed[#removed + 1] = { name = v, release = r.release }
    end
    for _, o in ipairs(self:list("Service", sel)) do
      local name = tbl(o.metadata).name
      if self:delete("Service", name) then objects[#objects + 1] = "Service/" .. name end
    end
    -- the controllers take the pods away: wait for it, then verify
    local deadline = time.now() + math.min(self.kc.wait_timeout or self.defaults.wait_timeout,
      self.defaults.remove_timeout)
    local left = self:leftovers()
    while #left > 0 and time.now() < deadline do
      time.sleep(0.1)
      left = self:leftovers()
    end
    if #left > 0 then errors.fail("removing " .. self.name .. " left behind: " .. table.concat(left, ", ")) end
    return { versions = removed, objects = objects }
  end)
  -- the lock file last, once it is released (the directory only if empty:
  -- the local target keeps its state there)
  if fs.exists(self.lock_file) then fs.remove(self.lock_file) end
  if fs.exists(self.dir) then pcall(fs.remove, self.dir) end
  return result
end

return M
