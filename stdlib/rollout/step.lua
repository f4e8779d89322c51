--- rollout.step: what a workflow step script is made of.
--
--   local step = require "rollout.step"
--   return step.run(3, "Add v3: v1=50 v2=50 v3=50", function(s)
--     s:set_weights { v1 = 50, v2 = 50, v3 = 50 }
--     s:check_split()
--   end, ...)
--
-- A step script takes SERVICE [ENDPOINT] (ENDPOINT, or GATEWAY_ENDPOINT,
-- replaces the target's own gateway for the checks). Run alone it prints
-- what it does and ends with "✓ Step N passed" (exit 0) or
-- "✗ Step N failed: reason" (exit 1); run by run_all it returns its report.
local rollout = require "rollout"
local ui = require "rollout.ui"
local cli = require "rollout.cli"
local errors = require "rollout.errors"
local time = require "rollout.time"
local proc = require "rollout.proc"

local step = {}

--- Set by run_all: steps return their report instead of exiting.
step.embedded = false

local Step = {}
Step.__index = Step

local function copy_counts(result)
  local c = {}
  for k, v in pairs(result and result.counts or {}) do c[k] = v end
  return c
end

-- Records a verdict in the report and fails the step when it failed.
function Step:record(kind, verdict, extra)
  local entry = {
    check = kind, ok = verdict.ok, reason = verdict.reason, n = verdict.n,
    p_value = verdict.p_value, method = verdict.method, errors = verdict.errors,
    error_kinds = verdict.error_kinds, counts = copy_counts(verdict.result),
    requests = verdict.result and verdict.result.sent, weights = verdict.weights,
    duration = verdict.result and verdict.result.duration,
  }
  for k, v in pairs(extra or {}) do entry[k] = v end
  self.report.checks[#self.report.checks + 1] = entry
  self.report.requests = self.report.requests + (entry.requests or 0)
  if not verdict.ok then errors.fail(verdict.reason or "check failed") end
  return verdict
end

--- Deploys a version (idempotent: a running, healthy version is kept).
function Step:deploy(version)
  ui.print(string.format("Deploying %s %s...", self.service.name, version))
  local info = self.service:deploy(version)
  local where
  if info.release then
    where = string.format("release %s%s", info.release,
      info.replicas and string.format(", %s/%s ready", tostring(info.ready or 0), tostring(info.replicas)) or "")
  else
    where = string.format("pid %s, port %s", tostring(info.pid or "-"), tostring(info.port or "-"))
  end
  ui.ok(string.format("%s %s (%s)", version, info.started and "running" or "already running", where))
  return info
end

--- Sets the weights, shows the distribution, and confirms at the endpoint
-- that they are in effect (no fixed sleep).
function Step:set_weights(w)
  local res = self.service:set_weights(w, { why = string.format("step %d: %s", self.number, self.report.title or "") })
  local rows, total = {}, 0
  for _, e in ipairs(res.traffic) do total = total + e.weight end
  for _, e in ipairs(res.traffic) do
    rows[#rows + 1] = { name = e.name, weight = e.weight, share = total > 0 and e.weight / total or 0 }
  end
  self.report.weights = res.weights
  ui.print("New Traffic Distribution:")
  ui.traffic(rows)
  local t0 = time.now()
  local ok, last, why = self.service:confirm(res.weights)
  self.report.requests = self.report.requests + (last and last.sent or 0)
  if not ok then errors.fail(why.message) end
  ui.ok(string.format("weights in effect at the gateway (confirmed in %.0f ms)", 1000 * (time.now() - t0)))
  local bad, why_errors = require("rollout.verify").version_errors(last, 0)
  if #bad > 0 then ui.warn("errors in the confirming sample: " .. why_errors) end
  return res
end

--- Every version listed must be healthy (process, health path, gateway).
function Step:expect_healthy(versions)
  for _, v in ipairs(versions) do
    local h = self.service:health(v)
    if not h.ok then errors.fail(string.format("%s is not healthy: %s", v, h.detail or "down")) end
    if h.release then -- Kubernetes: a release, its pods, the route
      ui.ok(string.format("%s healthy (release %s, %s/%s pods ready, %s)", v, h.release, tostring(h.ready_replicas or 0),
        tostring(h.replicas or 0), tostring(h.gateway)))
    else
      ui.ok(string.format("%s healthy (%s)", v, h.gateway and ("gateway " .. h.gateway) or "ready"))
    end
  end
end

--- Probes the endpoint and judges the split against `weights` (default:
-- the service's TRAFFIC.yaml).
function Step:check_split(weights, label)
  ui.print(string.format("Verifying the split at %s", self.service:probe_url()))
  local v = self.service:check_split(weights)
  ui.verdict(v)
  return self:record(label or "split", v)
end

--- Every request with the version header must reach that version.
function Step:check_header(version)
  ui.print(string.format("Verifying header routing: %s: %s", self.service.config.version_header, version))
  local v = self.service:check_header(version)
  ui.verdict(v)
  return self:record("header " .. version, v)
end

--- After a delete: no version, process, port, route or state left.
-- `before` is step.footprint() taken before; `endpoint` the old endpoint.
function Step:expect_removed(before, endpoint)
  local http = require "rollout.http"
  local left = {}
  local versions = self.service:versions()
  for _, v in ipairs(versions) do left[#left + 1] = "version " .. v.name end
  for _, pid in ipairs(before.pids) do
    if proc.alive(pid) then left[#left + 1] = "process " .. pid end
  end
  local function answers(url)
    local res = http.request { url = url, timeout = 1, connect_timeout = 1 }
    return res ~= nil
  end
  for _, port in ipairs(before.ports) do
    if answers(string.format("http://127.0.0.1:%d/", port)) then left[#left + 1] = "port " .. port end
  end
  -- a shared gateway may still answer (404): only a served request is a route left
  if endpoint then
    local res = http.request { url = endpoint, timeout = 1, connect_timeout = 1 }
    if res and res.status >= 200 and res.status < 300 then left[#left + 1] = "route at " .. endpoint end
  end
  for _, l in ipairs(self.service:leftovers()) do left[#left + 1] = l end
  if #left > 0 then errors.fail("left behind: " .. table.concat(left, ", ")) end
  if self.service.target_name == "kubernetes" then
    ui.ok("nothing left: no Helm release, Deployment, pod, route or state")
  else
    ui.ok(string.format("nothing left: %d process(es) stopped, ports closed, no route, no state",
      #before.pids))
  end
end

function Step:say(message) ui.print(message) end

local function parse(...)
  local opts, pos = cli.parse(cli.args(...), {
    usage = "usage: rollout STEP.lua SERVICE [ENDPOINT] [--wait]",
    flags = { wait = "boolean", endpoint = "string" },
  })
  if not pos[1] then errors.refuse("usage: rollout STEP.lua SERVICE [ENDPOINT]") end
  return pos[1], pos[2] or opts.endpoint, opts
end

--- Runs a step. `body(s)` does the work with the Step methods above and
-- raises (errors.fail) on failure. The remaining arguments are the
-- script's own (SERVICE [ENDPOINT]).
function step.run(number, title, body, ...)
  local name, endpoint, opts = parse(...)
  local report = { step = number, title = title, ok = false, checks = {}, requests = 0 }
  local t0 = time.now()
  ui.print("")
  ui.heading(string.format("Step %d: %s", number, title))
  local s = setmetatable({ number = number, report = report }, Step)
  local ok, err = xpcall(function()
    s.service = rollout.service(name, { endpoint = endpoint, wait = opts.wait })
    -- held for the whole step (run_all holds it for all of them)
    s.service:lock(string.format("step %d", number))
    body(s)
  end, errors.traceback)
  report.duration = time.now() - t0
  if ok then
    report.ok = true
    ui.ok(string.format("Step %d passed", number))
  else
    if errors.is_interrupt(err) then error(err, 0) end
    report.reason = errors.message(err)
    report.exit = errors.is(err) and err.exit or 1
    ui.fail(string.format("Step %d failed: %s", number, report.reason))
  end
  if step.embedded then return report end
  os.exit(report.ok and 0 or report.exit)
end

--- Processes and ports a service uses now (for the cleanup check).
function step.footprint(svc)
  local fp = { pids = {}, ports = {} }
  for _, v in ipairs(svc:versions()) do
    if v.pid then fp.pids[#fp.pids + 1] = v.pid end
    if v.port then fp.ports[#fp.ports + 1] = v.port end
  end
  return fp
end

return step
