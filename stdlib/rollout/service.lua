--- rollout.service: a service on its target, plus the checks every workflow
-- needs (probe the gateway, verify a split, verify header routing, confirm
-- a weight change is in effect). `rollout.service(name)` returns one.
--
--   local svc = rollout.service "microservice-1"
--   svc:deploy "v3"                     -- running, weight 0
--   svc:set_weights { v1 = 50, v2 = 50, v3 = 50 }
--   local verdict = svc:check_split()   -- against TRAFFIC.yaml
local config = require "rollout.config"
local errors = require "rollout.errors"
local verify = require "rollout.verify"
local traffic = require "rollout.traffic"
local sys = require "rollout.sys"
local time = require "rollout.time"
local ui = require "rollout.ui"
local defaults = require "rollout.defaults"

local service = {}
local Service = {}

local targets = { ["local"] = "rollout.target.local", kubernetes = "rollout.target.kubernetes" }

--- The target name: opts.target, --target / ROLLOUT_TARGET, the service
-- config's `target:`, else "local".
function service.target_name(cfg, opts)
  local name = (opts and opts.target) or sys.target() or cfg.target or "local"
  if not targets[name] then
    errors.refuse(string.format("unknown target %q (known: kubernetes, local)", name))
  end
  return name
end

--- Opens a service. opts: target =, wait = (wait for another rollout's lock),
-- endpoint = (override the URL probed; also GATEWAY_ENDPOINT).
function service.open(name, opts)
  opts = opts or {}
  local cfg = config.load(name)
  local tname = service.target_name(cfg, opts)
  local target = require(targets[tname]).new(cfg, opts)
  local svc = setmetatable({ name = name, config = cfg, target = target, target_name = tname,
                             opts = opts }, Service)
  return svc
end

Service.__index = Service
Service.__name = "rollout.service"

-- The target interface: what every target (stdlib/rollout/target/) provides,
-- forwarded explicitly so the service's methods are one visible list
-- (rollout.target.base documents it, and what the targets share).
--   deploy(version, {restart=})      running, weight 0; idempotent
--   set_weights(w, {write=, source=}) validate -> persist -> apply -> confirm
--   traffic()                        TRAFFIC.yaml: list (file order), text
--   versions()                       {name, weight, share, ready, ...}
--   health([version])                process / pods, health path, routing
--   endpoint()                       the URL checks probe (or nil)
--   gateway_weights()                the weights the gateway/route holds
--   set_routes(routes), routes()     strategy-owned routes (rollout.strategy.routes)
--   remove_version(version, {force=}), remove(), leftovers()
local TARGET_METHODS = { "deploy", "set_weights", "traffic", "versions", "health", "endpoint",
                         "gateway_weights", "remove_version", "leftovers" }
for _, m in ipairs(TARGET_METHODS) do
  Service[m] = function(self, ...)
    local t = self.target
    return t[m](t, ...)
  end
end
service.target_methods = TARGET_METHODS

--- Sets the weights on the target (validate → persist → apply, see the
-- target) and records the change in the service's journal (who, when,
-- from, to, why = opts.why). opts.journal = false leaves the record to the
-- caller (a strategy run journals its own changes).
function Service:set_weights(w, opts)
  local res = self.target:set_weights(w, opts)
  if not (opts and opts.journal == false) then
    require("rollout.strategy.journal").append(self.name, {
      action = "set_weights", from = res.previous, to = res.weights, why = opts and opts.why or "set_weights" })
  end
  return res
end

--- Removes the whole service from its target (every version, route and
-- state), and its journal with it.
function Service:remove(...)
  local res = self.target:remove(...)
  require("rollout.strategy.journal").forget(self.name)
  return res
end

-- Strategy-owned routes (header/cookie matches to a version), for the
-- progressive-delivery strategies; targets that have them provide
--   set_routes(routes), routes()
-- (stdlib/rollout/target/kubernetes/init.lua documents the shape).
for _, m in ipairs { "set_routes", "routes" } do
  Service[m] = function(self, ...)
    local t = self.target
    if type(t[m]) ~= "function" then
      errors.refuse(string.format("the %s target has no strategy routes (%s)", self.target_name, m))
    end
    return t[m](t, ...)
  end
end

--- The gateway's Prometheus exporter: { port =, url =, up = (the gateway
-- runs, so it can be scraped now) }, or nil and why (a target or an
-- HAProxy without one).
function Service:exporter()
  local t = self.target
  if type(t.exporter) ~= "function" then
    return nil, string.format("the %s target has no gateway exporter (use your cluster's Prometheus)",
      self.target_name)
  end
  return t:exporter()
end

--- The responses and 5xx of each version on the weighted default route, as
-- the gateway counts them (cumulative): { [version] = { n =, errors = } },
-- or nil and why (the local target's gateway only).
function Service:gateway_counters()
  local t = self.target
  if type(t.gateway_counters) ~= "function" then
    return nil, "the gateway's counters are read on the local target only (use a Prometheus metric)"
  end
  return t:gateway_counters()
end

-- Results the REPL displays by name (rollout.display); JSON encodes them as before.
local VERSIONS = { __name = "rollout.versions", __jsontype = "array" }
local PROBE_RESULT = { __name = "rollout.probe.result", __jsontype = "object" }
local target_versions = Service.versions

--- Every deployed version: {name, weight, share, ready, ...} (the REPL shows rows).
function Service:versions()
  return setmetatable(target_versions(self), VERSIONS)
end

Service.__tostring = function(svc)
  return string.format("service %s (%s target)", svc.name, svc.target_name)
end

--- Holds the service lock for the rest of the script (until svc:unlock()
-- or the process ends): every other rollout command on this service is
-- refused ("another rollout is working on ...") or waits with --wait.
-- `what` describes the holder in that message (e.g. "run_all"). Re-entrant.
function Service:lock(what)
  return require("rollout.state").hold(self.target.lock_file, self.name, self.opts.wait, what or "a script")
end

--- Gives back one svc:lock().
function Service:unlock()
  return require("rollout.state").release(self.target.lock_file)
end

--- Applies TRAFFIC.yaml as it is (the original's update_traffic): the
-- same checks as set_weights, with the file as the source of messages.
function Service:apply_traffic()
  local t = self.target
  local list, text = t:traffic()
  if text == nil then
    errors.refuse(string.format("%s: no such file: nothing to apply (write the desired weights there, e.g. " ..
      "\"versions: [{name: v1, weight: 100}]\", or use set_weights)", t.cfg.traffic_file))
  end
  return self:set_weights(list, { write = false, source = t.cfg.traffic_file, journal = false })
end

--- The names of the deployed versions, sorted.
function Service:deployed()
  local names = {}
  for _, v in ipairs(self.target:versions()) do names[#names + 1] = v.name end
  table.sort(names)
  return names
end

--- Refuses (exit 2) a version that is not deployed, naming those that are.
function Service:expect_deployed(version)
  config.check_name(version, "version")
  local names = self:deployed()
  for _, v in ipairs(names) do if v == version then return true end end
  errors.refuse(string.format("%s has no version %s (deployed: %s)", self.name, version,
    #names > 0 and table.concat(names, ", ") or "none"))
end

--- The endpoint given instead of the target's own (opts.endpoint or
-- GATEWAY_ENDPOINT), or nil.
function Service:external_endpoint()
  local url = self.opts.endpoint
  if not url or url == "" then url = os.getenv("GATEWAY_ENDPOINT") end
  if url == "" then url = nil end
  return url
end

--- The URL probes go to: opts.endpoint, GATEWAY_ENDPOINT, else the target's.
-- A URL without a path gets the service's probe path.
function Service:probe_url()
  local url = self.opts.endpoint
  if not url or url == "" then url = os.getenv("GATEWAY_ENDPOINT") end
  if not url or url == "" then url = self.target:endpoint() end
  if not url then
    errors.fail(self.name .. " has no endpoint: nothing is deployed (deploy a version first)")
  end
  if not url:match("^https?://") then url = "http://" .. url end
  if not url:match("^https?://[^/]+/") then url = url .. self.config.probe_path end
  return url
end

--- Sends `n` requests to the endpoint (opts.header = version adds the
-- version header, opts.headers = {name = value} more headers). Shows a progress bar on a terminal.
-- opts.concurrency, opts.timeout, opts.deadline: defaults.probe_*.
function Service:probe(opts)
  opts = opts or {}
  local d = defaults.of(self.config)
  local probe = require "rollout.probe"
  local headers = {}
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  if opts.header then headers[self.config.version_header] = opts.header end
  local bar = opts.quiet and nil or ui.progress(opts.label or "probing", opts.n)
  local res, err = probe.run {
    url = opts.url or self:probe_url(),
    n = opts.n,
    concurrency = opts.concurrency or d.probe_concurrency,
    timeout = opts.timeout or d.probe_timeout,
    headers = headers,
    extract = "json:" .. self.config.version_field,
    served_by = self.config.served_by_header,
    latencies = opts.latencies,
    variants = opts.variants,
    deadline = opts.deadline or d.probe_deadline,
    on_progress = bar and function(done, total) bar.update(done, total) end or nil,
  }
  if bar then bar.finish() end
  if not res then errors.fail("cannot probe " .. (opts.url or self:probe_url()) .. ": " .. err) end
  return setmetatable(res, PROBE_RESULT)
end

local function weight_map(w)
  local m = {}
  for _, e in ipairs(traffic.normalize(w)) do m[e.name] = e.weight end
  return m
end

--- Where TRAFFIC.yaml, what rollout last applied and what the gateway (or
-- route) holds disagree: nil when they agree (or the target cannot tell),
-- else { differences = {"..."}, repair = "the command that repairs it" }.
function Service:drift()
  local t = self.target
  if type(t.drift) ~= "function" then return nil end
  return t:drift()
end

--- Brings TRAFFIC.yaml, the state and the gateway (or route) together,
-- TRAFFIC.yaml winning; a bad or missing file is refused (exit 2) before
-- anything changes. On a target without its own repair, TRAFFIC.yaml is
-- applied. Returns { weights =, previous =, before = (the drift found) }.
function Service:repair()
  local t = self.target
  if type(t.repair) == "function" then return t:repair() end
  local before = self:drift()
  local res = self:apply_traffic()
  res.before = before
  return res
end

-- The weights the gateway holds now, as a comparable string (nil when the
-- target cannot say).
local function gateway_snapshot(svc)
  local ok, gw = pcall(svc.target.gateway_weights, svc.target)
  if not ok or type(gw) ~= "table" then return nil end
  local keys = {}
  for v in pairs(gw) do keys[#keys + 1] = v end
  table.sort(keys)
  local parts = {}
  for _, v in ipairs(keys) do parts[#parts + 1] = v .. "=" .. tostring(gw[v]) end
  return table.concat(parts, " ")
end

--- Probes and judges the split against `weights` (default: TRAFFIC.yaml).
-- Returns the verdict (see rollout.verify) with .result and .weights.
-- Checked against TRAFFIC.yaml, a gateway that holds other weights fails at
-- once, naming both and the command that applies the file; weights that
-- change while the probe runs make the verdict say so (failure "changed")
-- instead of judging a sample that mixes two splits.
function Service:check_split(weights, opts)
  opts = opts or {}
  local w = weights and weight_map(weights) or traffic.to_map((self.target:traffic()))
  if not next(w) then errors.fail(self.name .. ": no weights to check (TRAFFIC.yaml is empty)") end
  if not weights and not self:external_endpoint() then
    local d = self:drift()
    if d then
      local v = { ok = false, failure = "drift", weights = w, rows = {}, n = 0, errors = 0,
                  reason = table.concat(d.differences, "; ") .. "; " .. d.repair, drift = d }
      return verify.verdict(v)
    end
  end
  local n = verify.plan(w, opts)
  local before = gateway_snapshot(self)
  local res = self:probe { n = verify.requests(w, opts), label = opts.label or "split" }
  local after = gateway_snapshot(self)
  local v = verify.split(res, w, { planned = n, alpha = opts.alpha, error_budget = opts.error_budget,
                                   confidence = opts.confidence })
  v.result, v.weights = res, w
  if before and after and before ~= after then
    v.ok, v.failure = false, "changed"
    v.reason = string.format("the gateway's weights changed while the probe ran (%s, then %s): " ..
      "the sample mixes two splits, so it is not judged; run the check again", before, after)
  end
  return v
end

--- Probes with the version header and checks every request reached it.
-- A version that is not deployed is refused at once (exit 2).
function Service:check_header(version, opts)
  opts = opts or {}
  -- against the target's own gateway, an undeployed version is refused at
  -- once (an external ENDPOINT may route versions this target does not run)
  if not self:external_endpoint() then self:expect_deployed(version) end
  local n = opts.n or require("rollout.stats").plan_leak(verify.defaults.leak, 1 - (1 - verify.defaults.power) / 2)
  local res = self:probe { n = n, header = version, label = "header " .. version }
  local v = verify.header(res, version, { planned = n, error_budget = opts.error_budget })
  v.result = res
  return v
end

--- Probes with the version header and checks no request is served
-- (opts.n requests, default defaults.unavailable_requests).
function Service:check_unavailable(version, opts)
  local n = (opts and opts.n) or defaults.of(self.config).unavailable_requests
  local res = self:probe { n = n, header = version, label = "header " .. version }
  local v = verify.unavailable(res, version)
  v.result = res
  return v
end

--- After a weight change: confirms the new weights are in effect at the
-- endpoint instead of sleeping. Versions just set to 0 must receive none of
-- a confirming sample (a request a version answered with an error counts:
-- it was routed there); versions with at least 10% of the weight must
-- receive some. Samples of opts.n requests (defaults.confirm_requests),
-- retried every defaults.confirm_pause until opts.timeout
-- (defaults.confirm_timeout).
-- Returns ok, the last probe result, and when not ok a table
-- { cause = "not_in_effect" | "requests_failed", message = "..." }: errors
-- are never taken for weights that are not in effect. With ok, the caller
-- judges the errors of the sample (res.errors_by_version) itself.
function Service:confirm(weights, opts)
  opts = opts or {}
  local w = weights and weight_map(weights) or traffic.to_map((self.target:traffic()))
  local d = defaults.of(self.config)
  local deadline = time.now() + (opts.timeout or d.confirm_timeout)
  local n = opts.n or d.confirm_requests
  local total = 0
  for _, x in pairs(w) do total = total + x end
  local last, why
  repeat
    local res = self:probe { n = n, label = "confirming", quiet = true }
    last = res
    local per = verify.per_version(res)
    local routed, wrong, missing = 0, {}, {}
    for v, e in pairs(per) do
      routed = routed + e.routed
      if (w[v] or 0) == 0 and e.routed > 0 then
        wrong[#wrong + 1] = string.format("%s (%s) received %d", v, w[v] and "weight 0" or "not in the weights",
          e.routed)
      end
    end
    for v, weight in pairs(w) do
      if total > 0 and weight / total >= 0.1 and not per[v] then missing[#missing + 1] = v end
    end
    table.sort(wrong)
    table.sort(missing)
    if routed < n / 2 then
      -- too few requests reached any version to tell where the weights are
      why = { cause = "requests_failed", message = string.format(
        "requests failed: %d of %d confirming requests reached no version (%s)", res.sent - routed, res.sent,
        verify.kinds_text(res.errors or {})) }
    elseif #wrong > 0 or #missing > 0 then
      local parts = {}
      if #wrong > 0 then parts[#parts + 1] = table.concat(wrong, ", ") end
      if #missing > 0 then parts[#parts + 1] = "no request reached " .. table.concat(missing, ", ") end
      why = { cause = "not_in_effect", message = "the new weights are not in effect at the gateway: " ..
        table.concat(parts, "; ") }
    else
      return true, res
    end
    time.sleep(d.confirm_pause)
  until time.now() > deadline
  return false, last, why
end

return service
