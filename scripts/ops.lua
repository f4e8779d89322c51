--- The original ops commands:
--   rollout scripts/ops.lua COMMAND SERVICE [VERSION] [options]
-- Every command works on any target (--target local|kubernetes).
local rollout = require "rollout"
local cli = require "rollout.cli"
local ui = require "rollout.ui"
local json = require "rollout.json"
local errors = require "rollout.errors"

local usage = [[
usage: rollout scripts/ops.lua COMMAND SERVICE [VERSION] [options]

commands:
  start SERVICE VERSION         deploy VERSION (running, weight 0)
  list SERVICE                  versions, weight, share, ready, endpoint
  update_traffic SERVICE        apply deployments/SERVICE/TRAFFIC.yaml
  ping SERVICE [VERSION]        health of each version (process, health path, gateway)
  test_traffic SERVICE          probe the gateway and judge the split against TRAFFIC.yaml
  test_version SERVICE VERSION  check that the version header reaches VERSION only
  delete_version SERVICE VERSION  stop VERSION and remove it (it must have weight 0)
  delete_service SERVICE        remove every version, route and state of SERVICE
  repair SERVICE                make the gateway and the state match TRAFFIC.yaml again: roll back a
                                weight change cut short, stop a second HAProxy master, start a gateway
                                that is down, overwrite weights changed behind rollout's back (a bad
                                or missing TRAFFIC.yaml is refused, exit 2, and nothing changes)

strategies (scripts/strategies/*.lua), from any shell:
  status SERVICE                phase, step, weights, last measurements (--watch follows it)
  promote SERVICE               end this step's analysis, go to the next (--full: to 100% now)
  abort SERVICE                 back to exactly the weights and routes of before the run
  pause SERVICE / resume SERVICE  hold the run at its step / go on (resumes a stopped run here)
  retry SERVICE                 start an aborted run over
  undo SERVICE                  back to the previous good weights in the journal
  history SERVICE               the journal: every change, who, when, why

Prometheus for the local gateway (rollout.metrics.prometheus; --metrics=prometheus):
  prometheus start SERVICE      start (or re-target) a Prometheus of rollout's own under the
                                state directory, scraping the gateway's HAProxy exporter every 1 s
  prometheus stop SERVICE       stop it (by its pid) and remove its data
  prometheus status SERVICE     its URL and pid, the exporter's URL and the scrape health

options:
  --json           machine-readable output on stdout (every command; messages go to stderr)
  --wait           wait for another rollout working on SERVICE instead of failing
  --force          delete_version: drain a version that still has weight first
  --restart        start: restart a version that is already running
  --endpoint URL   probe this URL instead of the target's gateway (also GATEWAY_ENDPOINT)
  --watch          status: follow the run until it ends (redraws on a terminal, JSON lines otherwise)
  --full           promote: all the traffic to the new version at once
  --expect-step N  promote: only if the run is at step N (default: the step status shows now)

Every command ends by checking that TRAFFIC.yaml, the state and the gateway agree; when they do
not, it says where on stderr (and as "drift" in --json output), with the command that repairs it.

exit codes: 0 success, 1 a failed check or operation, 2 usage error or refused input]]

local opts, pos = cli.parse(cli.args(...), {
  usage = usage,
  flags = { json = "boolean", wait = "boolean", force = "boolean", restart = "boolean", endpoint = "string",
            watch = "boolean", full = "boolean", expect_step = "number" },
})

local command, name, version = pos[1], pos[2], pos[3]
if not command then errors.refuse("no command given\n" .. usage) end
-- prometheus ACTION SERVICE
local prom_action
if command == "prometheus" then
  prom_action, name, version = pos[2], pos[3], nil
  if not ({ start = true, stop = true, status = true })[tostring(prom_action)] then
    errors.refuse("prometheus needs an action: start, stop or status\n" .. usage)
  end
end

local needs_version = { start = true, delete_version = true, test_version = true }
local known = { start = true, list = true, update_traffic = true, ping = true, test_traffic = true,
                test_version = true, delete_version = true, delete_service = true, repair = true, status = true,
                promote = true, abort = true, pause = true, resume = true, retry = true, undo = true,
                history = true, prometheus = true }
if not known[command] then
  local names = {}
  for k in pairs(known) do names[#names + 1] = k end
  table.sort(names)
  errors.refuse(string.format("unknown command %q%s\n%s", command, cli.suggest(command, names), usage))
end
-- with --json, stdout carries exactly one JSON document: messages go to stderr
if opts.json then ui.set_output(io.stderr) end
if not name then errors.refuse(command .. " needs a SERVICE\n" .. usage) end
if needs_version[command] and not version then errors.refuse(command .. " needs a VERSION\n" .. usage) end

local svc = rollout.service(name, { wait = opts.wait, endpoint = opts.endpoint })

-- The JSON document of the command, written by finish() with the drift.
local out_json

local function emit_json(value)
  out_json = value
end

-- The invariant every command ends with: TRAFFIC.yaml, the state and the
-- gateway agree, or the difference is reported with the repairing command.
local drift_shown = false
local checked -- the check a command made itself (ping, repair): false when it found no drift

local function drift_check()
  local ok, d = errors.pcall(svc.drift, svc)
  if not ok then return { differences = { "cannot check: " .. errors.message(d) }, repair = "see the message" } end
  return d
end

local function drift_lines(d)
  local lines = { "TRAFFIC.yaml, the state and the gateway disagree:" }
  for _, x in ipairs(d.differences) do lines[#lines + 1] = "  - " .. x end
  lines[#lines + 1] = "  " .. d.repair
  return lines
end

local function warn_drift(d)
  if not d or drift_shown then return end
  drift_shown = true
  for i, line in ipairs(drift_lines(d)) do io.stderr:write(i == 1 and "rollout: warning: " or "", line, "\n") end
end

-- Ends the command: the invariant check, the JSON document, the exit code.
local function finish(code)
  local d
  if checked ~= nil then d = checked or nil else d = drift_check() end
  if out_json then
    out_json.drift = d or json.null
    io.stdout:write(json.encode(out_json, { pretty = true }), "\n")
  end
  warn_drift(d)
  os.exit(code or 0)
end

local function traffic_rows(list)
  local total = 0
  for _, e in ipairs(list) do total = total + e.weight end
  local rows = {}
  for _, e in ipairs(list) do
    rows[#rows + 1] = { name = e.name, weight = e.weight, share = total > 0 and e.weight / total or 0 }
  end
  return rows
end

local commands = {}

local kubernetes = svc.target_name == "kubernetes"

-- What the target calls a running version: a release and its pods, or a
-- process on a port.
local function where_of(info)
  if kubernetes or info.release then
    return string.format("release %s, %s/%s replicas ready", tostring(info.release), tostring(info.ready or 0),
      tostring(info.replicas or 0))
  end
  return string.format("pid %s, port %s", tostring(info.pid or "-"), tostring(info.port or "-"))
end

local NO_ENDPOINT = "(none configured: set kubernetes.endpoint in service.yaml or GATEWAY_ENDPOINT)"

function commands.start()
  ui.print(string.format("Deploying %s %s on the %s target...", name, version, svc.target_name))
  local info = svc:deploy(version, { restart = opts.restart })
  if opts.json then
    emit_json { service = name, target = svc.target_name, version = version, started = info.started == true,
                restarted = info.restarted == true, weight = info.weight or 0, pid = info.pid or json.null,
                port = info.port or json.null, release = info.release or json.null }
  end
  local where = where_of(info)
  if info.started and (info.weight or 0) > 0 then
    ui.ok(string.format("%s %s (%s), back at weight %d", version, info.restarted and "restarted" or "running",
      where, info.weight))
  elseif info.started then
    ui.ok(string.format("%s %s (%s), weight 0 until traffic is given to it", version,
      info.restarted and "restarted" or "running", where))
  else
    ui.ok(string.format("%s was already running (%s)", version, where))
  end
end

function commands.list()
  local versions = svc:versions()
  local endpoint = svc:endpoint()
  if opts.json then
    emit_json { service = name, target = svc.target_name, endpoint = endpoint or json.null,
                versions = json.array(versions) }
    return
  end
  ui.heading(string.format("%s (%s target)", name, svc.target_name))
  if #versions == 0 then
    ui.info("no versions deployed")
  elseif kubernetes then
    local rows = {}
    for _, v in ipairs(versions) do
      rows[#rows + 1] = { v.name, tostring(v.weight), ui.percent(v.share), v.ready and "yes" or "no",
                          string.format("%s/%s", tostring(v.ready_replicas or 0), tostring(v.replicas or 0)),
                          tostring(v.release or "-"), tostring(v.status or "-"), v.gateway or "-" }
    end
    for _, line in ipairs(ui.table({ { title = "version" }, { title = "weight", right = true },
      { title = "share", right = true }, { title = "ready" }, { title = "replicas", right = true },
      { title = "release" }, { title = "helm" }, { title = "route" } }, rows)) do
      ui.print(line)
    end
    for _, v in ipairs(versions) do
      if v.pending or (not v.ready and v.detail) then ui.info(string.format("%s: %s", v.name, v.detail)) end
    end
  else
    for _, line in ipairs(ui.versions_lines(versions)) do ui.print(line) end
  end
  if kubernetes then
    local kc = svc.config.kubernetes
    -- the header naming no deployed version is refused by both routings, with different statuses
    ui.print(string.format("  routing: %s; a %s naming no deployed version gets %s", kc.routing == "gateway-api"
      and "Gateway API HTTPRoute" or "Istio VirtualService", svc.config.version_header,
      kc.routing == "gateway-api" and "500 (a rule without backends)" or "503"))
  end
  ui.print("  endpoint: " .. (endpoint or (svc.target_name == "local" and "(none: nothing deployed)" or NO_ENDPOINT)))
end

local strategy_ops = require "rollout.strategy.ops"

for _, c in ipairs { "status", "promote", "abort", "pause", "resume", "retry", "undo", "history" } do
  commands[c] = function()
    finish(strategy_ops[c](svc, opts) or 0)
  end
end

function commands.update_traffic()
  strategy_ops.guard(svc, "update_traffic")
  -- the change is confirmed at the endpoint: without one, refuse before
  -- changing anything (the local target's gateway is its own endpoint)
  if kubernetes and not opts.endpoint and (os.getenv("GATEWAY_ENDPOINT") or "") == "" and not svc:endpoint() then
    errors.refuse(string.format("%s has no endpoint to confirm the new weights at %s; nothing was changed", name,
      NO_ENDPOINT))
  end
  local res = svc:apply_traffic()
  local list = svc:traffic()
  ui.print("New Traffic Distribution:")
  local rows = traffic_rows(list)
  ui.traffic(rows)
  local ok, last, why = svc:confirm(res.weights)
  local bad, why_errors = require("rollout.verify").version_errors(last or {}, 0)
  if ok then
    ui.ok("the gateway serves the new weights")
    if #bad > 0 then ui.warn("errors in the confirming sample: " .. why_errors) end
    require("rollout.strategy.journal").append(name, { action = "update_traffic", from = res.previous, to = res.weights,
                                              weights = res.weights, good = true, why = "TRAFFIC.yaml applied" })
  else
    ui.fail(why.message .. " (at " .. svc:probe_url() .. ")")
  end
  if opts.json then
    emit_json { service = name, ok = ok, weights = res.weights, previous = res.previous,
                traffic = json.array(rows), confirmed = ok, cause = why and why.cause or json.null,
                message = why and why.message or json.null,
                errors_by_version = last and last.errors_by_version or {} }
  end
  if not ok then finish(1) end
end

function commands.ping()
  local list = version and { svc:health(version) } or svc:health()
  -- ping reports the invariant itself (a warning: the exit code is the versions' health)
  local d = drift_check()
  drift_shown, checked = true, d or false
  if opts.json then
    emit_json { service = name, versions = json.array(list) }
  else
    if #list == 0 then ui.info("no versions deployed") end
    for _, h in ipairs(list) do
      if h.ok and kubernetes then
        ui.ok(string.format("%s healthy (release %s, %s/%s pods ready, %s)", h.version, tostring(h.release),
          tostring(h.ready_replicas or 0), tostring(h.replicas or 0), tostring(h.gateway)))
      elseif h.ok then
        ui.ok(string.format("%s healthy (pid %s, port %s, gateway %s)", h.version, tostring(h.pid or "-"),
          tostring(h.port or "-"), tostring(h.gateway)))
      else
        ui.fail(string.format("%s down: %s", h.version, h.detail or "unhealthy"))
      end
    end
    if d then
      for _, line in ipairs(drift_lines(d)) do ui.warn(line) end
    elseif #list > 0 then
      ui.ok("TRAFFIC.yaml, the state and the gateway agree")
    end
  end
  for _, h in ipairs(list) do if not h.ok then finish(1) end end
end

function commands.repair()
  strategy_ops.guard(svc, "repair")
  local res = svc:repair()
  local after = drift_check()
  checked = after or false
  local names = {}
  for v in pairs(res.weights or {}) do names[#names + 1] = v end
  table.sort(names)
  local parts = {}
  for _, v in ipairs(names) do parts[#parts + 1] = v .. "=" .. res.weights[v] end
  if res.before then
    ui.info("found: " .. table.concat(res.before.differences, "; "))
  end
  if after then
    drift_shown = true
    for _, line in ipairs(drift_lines(after)) do ui.fail(line) end
  elseif #names == 0 then
    ui.ok("nothing deployed: nothing to repair")
  else
    ui.ok(string.format("TRAFFIC.yaml, the state and the gateway agree: %s", table.concat(parts, " ")))
  end
  if opts.json then
    emit_json { service = name, ok = after == nil, weights = res.weights or {}, previous = res.previous or {},
                found = res.before or json.null }
  end
  finish(after and 1 or 0)
end

local function report(verdict, what)
  if opts.json then
    local out = {}
    for k, v in pairs(verdict) do if k ~= "result" then out[k] = v end end
    out.check = what
    out.counts = verdict.result and verdict.result.counts
    emit_json(out)
  else
    ui.verdict(verdict)
  end
  if verdict.failure == "drift" then drift_shown = true end
  if not verdict.ok then finish(1) end
end

function commands.test_traffic()
  if not opts.json then
    ui.print(string.format("Testing the traffic split of %s at %s", name, svc:probe_url()))
  end
  report(svc:check_split(), "split")
end

function commands.test_version()
  if not opts.json then
    ui.print(string.format("Testing header routing to %s at %s", version, svc:probe_url()))
  end
  report(svc:check_header(version), "header")
end

function commands.delete_version()
  strategy_ops.guard(svc, "delete_version")
  local info = svc:remove_version(version, { force = opts.force })
  if kubernetes then
    ui.ok(string.format("%s removed (release %s uninstalled, its pods are going)", version, tostring(info.release)))
  else
    ui.ok(string.format("%s removed (process %s stopped)", version, tostring(info.pid or "-")))
  end
  if opts.json then
    emit_json { service = name, version = version, removed = true, pid = info.pid or json.null,
                release = info.release or json.null }
  end
end

function commands.delete_service()
  strategy_ops.guard(svc, "delete_service")
  local res = svc:remove()
  ui.ok(string.format("%s deleted: %d version%s removed", name, #res.versions, #res.versions == 1 and "" or "s"))
  if opts.json then
    emit_json { service = name, removed = json.array(res.versions) }
  end
end

-- A Prometheus of rollout's own for the local gateway (STATE/prometheus/):
-- scrapes HAProxy's exporter every second; found by
-- rollout.metrics.prometheus when neither PROMETHEUS_URL nor
-- prometheus.url is set.
function commands.prometheus()
  if svc.target_name ~= "local" then
    errors.refuse("prometheus start|stop|status is for the local target's gateway; on Kubernetes point " ..
      "prometheus.url (service.yaml) or PROMETHEUS_URL at your cluster's Prometheus")
  end
  local server = require("rollout.metrics.prometheus_server").managed(require("rollout.config").state_dir())
  local exporter, why = svc:exporter()
  if not exporter then errors.fail(why) end
  server.targets = { "127.0.0.1:" .. exporter.port }
  if prom_action == "start" then
    local gateway_up = exporter.up
    local was = server:pid()
    local info = server:start { wait_scrape = gateway_up }
    ui.ok(string.format("Prometheus %s at %s (pid %d), scraping %s every %gs%s", was and "running" or "started",
      info.url, info.pid, exporter.url, server.scrape_interval,
      gateway_up and "" or " (the gateway is not running yet: scraped once it is)"))
    if opts.json then emit_json { url = info.url, pid = info.pid, exporter = exporter.url, dir = server.dir } end
  elseif prom_action == "stop" then
    local pid = server:stop()
    if pid then ui.ok(string.format("Prometheus (pid %d) stopped", pid)) else ui.info("no Prometheus was running") end
    if opts.json then emit_json { stopped = pid or json.null } end
  else
    local pid = server:pid()
    local health, why
    if pid then health, why = server:scraping() end
    if opts.json then
      emit_json { running = pid ~= nil, pid = pid or json.null, url = pid and server:url() or json.null,
                  exporter = exporter.url, scraping = health == true, problem = why or json.null }
      return
    end
    ui.print("gateway exporter: " .. exporter.url)
    if pid then
      ui.print(string.format("Prometheus: %s (pid %d), %s", server:url(), pid,
        health and "scraping the gateway" or ("not scraping: " .. tostring(why))))
    else
      ui.print("Prometheus: not running (rollout scripts/ops.lua prometheus start " .. name .. ")")
    end
  end
end


-- every command ends with the invariant check, also when it fails
local ok, err = xpcall(commands[command], errors.traceback)
if not ok then
  warn_drift(drift_check())
  error(err, 0)
end
finish(0)
