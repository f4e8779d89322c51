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
-- forwarded explicitly so the service's methods are one visible list.
--   deploy(version, {restart=})      running, weight 0; idempotent
--   set_weights(w, {write=, source=}) validate -> persist -> apply -> confirm
--   traffic()                        TRAFFIC.yaml: list (file order), text
--   versions()                       {name, weight, share, ready, ...}
--   health([version])                process / pods, health path, routing
--   endpoint()                       the URL checks probe (or nil)
--   gateway_weights()                the weights the gateway/route holds
--   remove_version(version, {force=}), remove(), leftovers()
local TARGET_METHODS = { "deploy", "set_weights", "traffic", "versions", "health", "endpoint",
                         "gateway_weights", "remove_version", "remove", "leftovers" }
for _, m in ipairs(TARGET_METHODS) do
  Service[m] = function(self, ...)
    local t = self.target
    return t[m](t, ...)
  end
end
service.target_methods = TARGET_METHODS

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

Service.__tostring = function(svc)
  return string.format("service %s (%s target)", svc.name, svc.target_name)
end

--- Holds the service lock for the rest of the script (until svc:unlock()
-- or the process ends): every other rollout command on this service is
-- refused ("another rollout is working on ...") or waits with --wait.
-- `what` describes the holder in that message (e.g. "run_all"). Re-entrant.
function Service:lock(what)
  local desc = self.name .. (what and (": " .. what) or "")
  return require("rollout.state").hold(self.target.lock_file, desc, self.opts.wait)
end

--- Gives back one svc:lock().
function Service:unlock()
  return require("rollout.state").release(self.target.lock_file)
end

--- Applies TRAFFIC.yaml as it is (the original's update_traffic): the
-- same checks as set_weights, with the file as the source of messages.
function Service:apply_traffic()
  local t = self.target
  return t:set_weights((t:traffic()), { write = false, source = t.cfg.traffic_file })
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
-- version header). Shows a progress bar on a terminal.
function Service:probe(opts)
  opts = opts or {}
  local probe = require "rollout.probe"
  local headers = {}
  if opts.header then headers[self.config.version_header] = opts.header end
  local bar = opts.quiet and nil or ui.progress(opts.label or "probing", opts.n)
  local res, err = probe.run {
    url = opts.url or self:probe_url(),
    n = opts.n,
    concurrency = opts.concurrency or 32,
    timeout = opts.timeout or 2,
    headers = headers,
    extract = "json:" .. self.config.version_field,
    deadline = opts.deadline or 120,
    on_progress = bar and function(done, total) bar.update(done, total) end or nil,
  }
  if bar then bar.finish() end
  if not res then errors.fail("cannot probe " .. (opts.url or self:probe_url()) .. ": " .. err) end
  return res
end

local function weight_map(w)
  local m = {}
  for _, e in ipairs(traffic.normalize(w)) do m[e.name] = e.weight end
  return m
end

--- Probes and judges the split against `weights` (default: TRAFFIC.yaml).
-- Returns the verdict (see rollout.verify) with .result and .weights.
function Service:check_split(weights, opts)
  opts = opts or {}
  local w = weights and weight_map(weights) or traffic.to_map((self.target:traffic()))
  if not next(w) then errors.fail(self.name .. ": no weights to check (TRAFFIC.yaml is empty)") end
  local n = verify.plan(w, opts)
  local res = self:probe { n = verify.requests(w, opts), label = opts.label or "split" }
  local v = verify.split(res, w, { planned = n, alpha = opts.alpha, error_budget = opts.error_budget,
                                   confidence = opts.confidence })
  v.result, v.weights = res, w
  return v
end

--- Probes with the version header and checks every request reached it.
function Service:check_header(version, opts)
  opts = opts or {}
  local n = opts.n or require("rollout.stats").plan_leak(verify.defaults.leak, 1 - (1 - verify.defaults.power) / 2)
  local res = self:probe { n = n, header = version, label = "header " .. version }
  local v = verify.header(res, version, { planned = n, error_budget = opts.error_budget })
  v.result = res
  return v
end

--- Probes with the version header and checks no request is served.
function Service:check_unavailable(version, opts)
  local res = self:probe { n = (opts and opts.n) or 200, header = version, label = "header " .. version }
  local v = verify.unavailable(res, version)
  v.result = res
  return v
end

--- After a weight change: confirms the new weights are in effect at the
-- endpoint instead of sleeping. Versions just set to 0 must receive none of
-- a confirming sample; versions with weight must receive some. Retries
-- until `timeout` (default 10 s). Returns the last probe result.
function Service:confirm(weights, opts)
  opts = opts or {}
  local w = weights and weight_map(weights) or traffic.to_map((self.target:traffic()))
  local deadline = time.now() + (opts.timeout or 10)
  local n = opts.n or 200
  local last
  repeat
    local res = self:probe { n = n, label = "confirming", quiet = true }
    last = res
    local fine = true
    for v, c in pairs(res.counts) do
      if (w[v] or 0) == 0 and c > 0 then fine = false end
    end
    for v, weight in pairs(w) do
      -- a version with at least 10% of the weight must show up in the sample
      local total = 0
      for _, x in pairs(w) do total = total + x end
      if weight / total >= 0.1 and (res.counts[v] or 0) == 0 then fine = false end
    end
    if fine and (res.error_total or 0) == 0 then return true, res end
    time.sleep(0.05)
  until time.now() > deadline
  return false, last
end

return service
