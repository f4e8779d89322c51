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

strategies (scripts/strategies/*.lua), from any shell:
  status SERVICE                phase, step, weights, last measurements (--watch follows it)
  promote SERVICE               end this step's analysis, go to the next (--full: to 100% now)
  abort SERVICE                 back to exactly the weights and routes of before the run
  pause SERVICE / resume SERVICE  hold the run at its step / go on (resumes a stopped run here)
  retry SERVICE                 start an aborted run over
  undo SERVICE                  back to the previous good weights in the journal
  history SERVICE               the journal: every change, who, when, why

options:
  --json           machine-readable output on stdout (every command; messages go to stderr)
  --wait           wait for another rollout working on SERVICE instead of failing
  --force          delete_version: drain a version that still has weight first
  --restart        start: restart a version that is already running
  --endpoint URL   probe this URL instead of the target's gateway (also GATEWAY_ENDPOINT)
  --watch          status: follow the run until it ends (redraws on a terminal, JSON lines otherwise)
  --full           promote: all the traffic to the new version at once
  --expect-step N  promote: only if the run is at step N (default: the step status shows now)

exit codes: 0 success, 1 a failed check or operation, 2 usage error or refused input]]

local opts, pos = cli.parse(cli.args(...), {
  usage = usage,
  flags = { json = "boolean", wait = "boolean", force = "boolean", restart = "boolean", endpoint = "string",
            watch = "boolean", full = "boolean", expect_step = "number" },
})

local command, name, version = pos[1], pos[2], pos[3]
if not command then errors.refuse("no command given\n" .. usage) end

local needs_version = { start = true, delete_version = true, test_version = true }
local known = { start = true, list = true, update_traffic = true, ping = true, test_traffic = true,
                test_version = true, delete_version = true, delete_service = true, status = true, promote = true,
                abort = true, pause = true, resume = true, retry = true, undo = true, history = true }
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

local function emit_json(value)
  io.stdout:write(json.encode(value, { pretty = true }), "\n")
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

function commands.start()
  ui.print(string.format("Deploying %s %s on the %s target...", name, version, svc.target_name))
  local info = svc:deploy(version, { restart = opts.restart })
  if opts.json then
    emit_json { service = name, target = svc.target_name, version = version, started = info.started == true,
                restarted = info.restarted == true, weight = info.weight or 0, pid = info.pid or json.null,
                port = info.port or json.null, release = info.release or json.null }
  end
  local where = info.release and ("release " .. info.release)
    or string.format("pid %s, port %s", tostring(info.pid or "-"), tostring(info.port or "-"))
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
  else
    for _, line in ipairs(ui.versions_lines(versions)) do ui.print(line) end
  end
  ui.print("  endpoint: " .. (endpoint or (svc.target_name == "local" and "(none: nothing deployed)"
    or "(none configured: set kubernetes.endpoint in service.yaml or GATEWAY_ENDPOINT)")))
end

local strategy_ops = require "rollout.strategy_ops"

for _, c in ipairs { "status", "promote", "abort", "pause", "resume", "retry", "undo", "history" } do
  commands[c] = function()
    os.exit(strategy_ops[c](svc, opts) or 0)
  end
end

function commands.update_traffic()
  strategy_ops.guard(svc, "update_traffic")
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
  else
    ui.fail(why.message .. " (at " .. svc:probe_url() .. ")")
  end
  if opts.json then
    emit_json { service = name, ok = ok, weights = res.weights, previous = res.previous,
                traffic = json.array(rows), confirmed = ok, cause = why and why.cause or json.null,
                message = why and why.message or json.null,
                errors_by_version = last and last.errors_by_version or {} }
  end
  if not ok then os.exit(1) end
end

function commands.ping()
  local list = version and { svc:health(version) } or svc:health()
  if opts.json then
    emit_json { service = name, versions = json.array(list) }
  else
    if #list == 0 then ui.info("no versions deployed") end
    for _, h in ipairs(list) do
      if h.ok then
        ui.ok(string.format("%s healthy (pid %s, port %s, gateway %s)", h.version, tostring(h.pid or "-"),
          tostring(h.port or "-"), tostring(h.gateway)))
      else
        ui.fail(string.format("%s down: %s", h.version, h.detail or "unhealthy"))
      end
    end
  end
  for _, h in ipairs(list) do if not h.ok then os.exit(1) end end
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
  if not verdict.ok then os.exit(1) end
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
  if info.release then
    ui.ok(string.format("%s removed (release %s uninstalled)", version, info.release))
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

commands[command]()
