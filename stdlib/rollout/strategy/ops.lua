--- rollout.strategy.ops: status, promote, abort, pause, resume, retry, undo
-- and history of a service's strategy runs, from any shell
-- (`rollout scripts/ops.lua COMMAND SERVICE`).
--
-- While a strategy process runs, a command is a request it acts on at its
-- next check (a tenth of a second while it waits), and the command prints
-- its answer. When none runs (paused by ^C, killed), the command acts
-- itself: abort rolls back, resume and promote run the strategy again here
-- (it resumes at its step), retry starts an aborted run over.
--
-- Idempotent: two aborts are one; abort with nothing in progress changes
-- nothing; promote carries the step it saw (or --expect-step N), so sent
-- twice it advances one step; promote --full says what it did.
local errors = require "rollout.errors"
local journal = require "rollout.strategy.journal"
local strategy = require "rollout.strategy"
local ui = require "rollout.ui"
local json = require "rollout.json"
local time = require "rollout.time"
local fs = require "rollout.fs"

local ops = {}

local function describe(run)
  return strategy.describe_run(run)
end

local function nothing(service, run)
  if not run then return string.format("%s has no strategy run", service) end
  return string.format("%s has no strategy in progress (the last, %s of %s, %s%s)", service, run.strategy,
    run.version, run.phase, run.abort_reason and (": " .. run.abort_reason) or "")
end

--- Runs the recorded strategy script of `run` again in this process (it
-- resumes where the run stopped, or starts over when the run has ended).
-- Does not return: the strategy ends the process with its exit code.
function ops.run_again(run, json_out)
  local script = run.script
  if not script or not fs.exists(script) then
    errors.fail(string.format("cannot run the strategy again: its script %s is gone", tostring(script)))
  end
  local chunk, err = loadfile(script)
  if not chunk then errors.fail(err) end
  local args = {}
  for i, a in ipairs(run.args or {}) do
    if a ~= "--json" then args[#args + 1] = a end
    if i > 64 then break end
  end
  if json_out then args[#args + 1] = "--json" end
  strategy.script = script
  -- the strategy prints to stdout; the caller's --json moved ui to stderr
  return chunk(table.unpack(args))
end

-- Files a request for the live owner and prints its answer. Returns the
-- answer (nil when the owner did not answer in time).
local function ask(service, req)
  local id = journal.request(service, req)
  local answer = journal.wait_answer(service, id, 15)
  if not answer then
    local run = journal.load(service)
    if run and not journal.owner_alive(run) then
      return nil, "the strategy process ended before it answered"
    end
    return nil, "the strategy process did not answer within 15 s (is it stuck?)"
  end
  return answer
end

local function print_answer(answer, json_out)
  if json_out then
    io.stdout:write(json.encode(answer, { pretty = true }), "\n")
  elseif answer.result == "ok" then
    ui.ok(answer.message)
  else
    ui.info(answer.message)
  end
end

-- A Run attached to a saved run whose process is gone: what abort needs.
local function attach(svc, run)
  return strategy.attach(svc, run)
end

--- abort SERVICE: back to exactly the weights and routes of before the run.
function ops.abort(svc, opts)
  local run = journal.load(svc.name)
  if not journal.active(run) then
    local msg = nothing(svc.name, run) .. ": nothing to abort, nothing changed"
    if opts.json then io.stdout:write(json.encode { result = "noop", message = msg }, "\n") else ui.info(msg) end
    return 0
  end
  if journal.owner_alive(run) then
    local answer, err = ask(svc.name, { action = "abort" })
    if not answer then errors.fail(err) end
    -- the owner rolls back and ends; wait for it to say so
    local deadline = time.now() + 60
    repeat
      run = journal.load(svc.name)
      if journal.TERMINAL[run.phase] then break end
      time.sleep(0.1)
    until time.now() > deadline
    if not journal.TERMINAL[run.phase] then errors.fail("the strategy process did not finish its abort within 60 s") end
  else
    svc:lock("abort of " .. run.version)
    local s = attach(svc, run)
    local ok, err = pcall(s.abort, s, "aborted by " .. journal.who())
    if not ok and not strategy.is_abort(err) then error(err, 0) end
    run = journal.load(svc.name)
  end
  local msg = string.format("%s %s: %s", run.strategy, run.phase, strategy.weights_text(run.weights))
  if opts.json then
    io.stdout:write(json.encode(strategy.status_doc(run), { pretty = true }), "\n")
  else
    ui.ok(msg)
  end
  return run.phase == "aborted" and 0 or 1
end

--- promote SERVICE [--full] [--expect-step N]
function ops.promote(svc, opts)
  local run = journal.load(svc.name)
  if not journal.active(run) then
    if run and run.phase == "succeeded" then
      local msg = string.format("%s %s is already promoted (%s): nothing to do", run.strategy, run.version,
        strategy.weights_text(run.weights))
      if opts.json then io.stdout:write(json.encode { result = "noop", message = msg }, "\n") else ui.info(msg) end
      return 0
    end
    errors.refuse(nothing(svc.name, run) .. ": nothing to promote")
  end
  local req = { action = "promote", full = opts.full or nil, expect_step = opts.expect_step or run.step }
  if journal.owner_alive(run) then
    local answer, err = ask(svc.name, req)
    if not answer then errors.fail(err) end
    print_answer(answer, opts.json)
    return 0
  end
  -- nobody runs it: file the request and resume it here
  journal.request(svc.name, req)
  ui.info(string.format("no process runs %s: resuming it here", describe(run)))
  return ops.run_again(run, opts.json)
end

--- pause SERVICE
function ops.pause(svc, opts)
  local run = journal.load(svc.name)
  if not journal.active(run) then errors.refuse(nothing(svc.name, run) .. ": nothing to pause") end
  if journal.owner_alive(run) then
    local answer, err = ask(svc.name, { action = "pause" })
    if not answer then errors.fail(err) end
    print_answer(answer, opts.json)
    return 0
  end
  local msg
  if run.phase == "paused" then
    msg = string.format("already paused at step %s (%s); no process runs it", tostring(run.step),
      tostring(run.pause_reason))
  else
    svc:lock("pause")
    run.phase, run.pause_reason = "paused", "paused by " .. journal.who() .. " (no process was running it)"
    journal.save(run)
    journal.append(svc.name, { action = "pause", run = run.id, why = run.pause_reason })
    msg = "paused at step " .. tostring(run.step)
  end
  if opts.json then io.stdout:write(json.encode { result = "ok", message = msg }, "\n") else ui.ok(msg) end
  return 0
end

--- resume SERVICE: a paused run goes on (run here when no process runs it).
function ops.resume(svc, opts)
  local run = journal.load(svc.name)
  if not journal.active(run) then errors.refuse(nothing(svc.name, run) .. ": nothing to resume") end
  if journal.owner_alive(run) then
    local answer, err = ask(svc.name, { action = "resume" })
    if not answer then errors.fail(err) end
    print_answer(answer, opts.json)
    return 0
  end
  ui.info(string.format("resuming %s here", describe(run)))
  return ops.run_again(run, opts.json)
end

--- retry SERVICE: an aborted (or failed) run starts over, here.
function ops.retry(svc, opts)
  local run = journal.load(svc.name)
  if not run then errors.refuse(nothing(svc.name, run) .. ": nothing to retry") end
  if journal.active(run) then
    errors.refuse(string.format("%s is in progress: resume, promote or abort it (retry starts over an aborted run)",
      describe(run)))
  end
  if run.phase == "succeeded" then
    errors.refuse(string.format("the last run (%s of %s) succeeded: nothing to retry", run.strategy, run.version))
  end
  ui.info(string.format("retrying the %s of %s from the start", run.strategy, run.version))
  return ops.run_again(run, opts.json)
end

--- undo SERVICE: back to the previous good weights (from the journal),
-- confirmed and checked at the gateway.
function ops.undo(svc, opts)
  local run = journal.load(svc.name)
  if journal.active(run) then
    errors.refuse(string.format("%s is in progress: abort it instead (it restores the weights of before)", describe(run)))
  end
  svc:lock("undo")
  local current = {}
  for _, v in ipairs(svc:versions()) do current[v.name] = v.weight or 0 end
  local deployed = current
  local point = journal.undo_target(svc.name, current, function(weights)
    for v, w in pairs(weights) do
      if w > 0 and deployed[v] == nil then return false end
    end
    return true
  end)
  if not point then
    errors.refuse(string.format("%s: the journal has no earlier good weights to go back to (now %s)", svc.name,
      strategy.weights_text(current)))
  end
  local target = point.entry
  local w = {}
  for v in pairs(deployed) do w[v] = target.weights[v] or 0 end
  svc:set_weights(w, { journal = false })
  local ok, _, why = svc:confirm(w)
  if not ok then errors.fail("undo: " .. why.message) end
  local verdict = svc:check_split(w)
  journal.append(svc.name, { action = "undo", from = current, to = w, weights = w, good = verdict.ok,
                             restored = point.index,
                             why = string.format("back to the good weights of %s (%s)",
                               os.date("!%Y-%m-%d %H:%M:%S", math.floor(target.t or 0)), target.action or "?") })
  if opts.json then
    io.stdout:write(json.encode({ from = current, to = w, ok = verdict.ok, reason = verdict.reason or json.null },
      { pretty = true }), "\n")
  else
    ui.ok(string.format("undone: %s → %s", strategy.weights_text(current), strategy.weights_text(w)))
    ui.verdict(verdict)
  end
  return verdict.ok and 0 or 1
end

-- ------------------------------------------------------------- status --

local function ago(t)
  if not t then return "-" end
  local d = time.wall() - t
  if d < 90 then return string.format("%ds ago", math.floor(d)) end
  if d < 5400 then return string.format("%dm ago", math.floor(d / 60)) end
  return string.format("%.1fh ago", d / 3600)
end

-- A reason or other text on one line of at most `max` characters.
local function one_line(s, max)
  s = tostring(s or ""):gsub("[%c]+", " ")
  if (utf8.len(s) or #s) > max then
    local cut = utf8.offset(s, max) or (max + 1)
    s = s:sub(1, cut - 1) .. "…"
  end
  return s
end

local VERDICT_MARK = { pass = { "✓", "green" }, fail = { "✗", "red" }, error = { "✗", "red" },
                       inconclusive = { "?", "yellow" }, no_data = { "∅", "yellow" } }

local function verdict_mark(outcome)
  local m = VERDICT_MARK[outcome] or { "·", "yellow" }
  return ui.paint(m[1], m[2])
end

--- The lines of a run's status (what `status` prints and --watch redraws):
-- the phase, the step, the weights as bars, the observed split of the last
-- confirming sample, each version's error rate and latency from the last
-- measurements, the last verdict of each metric and a tally of the
-- measurements.
function ops.status_lines(run, service)
  local lines = {}
  local function add(s) lines[#lines + 1] = s end
  if not run then
    add(string.format("%s: no strategy run", service))
    return lines
  end
  local html = require "rollout.report.html"
  local latest = require("rollout.report").latest(run)
  local mark = run.phase == "succeeded" and ui.paint("✓", "green") or
    ((run.phase == "aborted" or run.phase == "failed") and ui.paint("✗", "red")) or ui.paint("●", "yellow")
  add(string.format("%s %s of %s %s: %s", mark, tostring(run.strategy), tostring(run.service), tostring(run.version),
    ui.paint(tostring(run.phase), "bold")))
  local steps = run.params and type(run.params.steps) == "table" and #run.params.steps or nil
  add(string.format("  step %s%s%s", tostring(run.step), steps and ("/" .. steps) or "",
    run.step_title and (": " .. tostring(run.step_title)) or ""))
  if run.pause_reason then add("  paused: " .. tostring(run.pause_reason)) end
  if run.abort_reason then add("  aborted: " .. tostring(run.abort_reason)) end
  local owner = run.owner and run.owner.pid
  if journal.active(run) then
    if journal.owner_alive(run) then
      add(string.format("  running in pid %d (%s)", owner, tostring(run.owner.who)))
    else
      add(string.format("  no process runs it: rollout scripts/ops.lua resume %s (or abort)", tostring(run.service)))
    end
  end
  local total = 0
  for _, w in pairs(run.weights or {}) do if type(w) == "number" then total = total + w end end
  local rows, names = {}, {}
  for v, w in pairs(run.weights or {}) do if type(w) == "number" then names[#names + 1] = v end end
  table.sort(names)
  for _, v in ipairs(names) do
    rows[#rows + 1] = { name = v, weight = run.weights[v], share = total > 0 and run.weights[v] / total or 0 }
  end
  add("  weights:")
  for _, l in ipairs(ui.traffic_lines(rows, 24)) do add("    " .. ui.paint(l, "cyan")) end
  -- what the gateway served in the last confirming sample
  local obs = type(run.observed) == "table" and type(run.observed.counts) == "table" and run.observed.counts
  if obs then
    local n, parts, vs = 0, {}, {}
    for v, c in pairs(obs) do if type(c) == "number" then n = n + c; vs[#vs + 1] = v end end
    table.sort(vs)
    for _, v in ipairs(vs) do parts[#parts + 1] = string.format("%s %s", v, html.pct(n > 0 and obs[v] / n or 0)) end
    if n > 0 then
      add(string.format("  observed (last confirming sample, n=%d, for %s): %s", n,
        html.weights(run.observed.weights or run.weights), table.concat(parts, "  ")))
    end
  end
  -- each side's error rate and latency, from the last measurements
  if latest.measured then
    add("  analysis (the last look, cumulative):")
    local trows = {}
    for _, r in ipairs(latest.rows) do
      local err = "-"
      if r.error_rate then
        err = html.rate(r.error_rate)
        if r.errors and r.n then err = string.format("%s (%d/%d)", err, math.floor(r.errors), math.floor(r.n)) end
      end
      trows[#trows + 1] = { r.label, err, r.p50 and html.ms(r.p50) or "-", r.p90 and html.ms(r.p90) or "-",
                            r.p99 and html.ms(r.p99) or "-" }
    end
    for _, l in ipairs(ui.table({ { title = "version" }, { title = "errors", right = true },
                                  { title = "p50", right = true }, { title = "p90", right = true },
                                  { title = "p99", right = true } }, trows)) do
      add("  " .. l)
    end
  end
  if #latest.verdicts > 0 then
    add("  last verdict:")
    for _, m in ipairs(latest.verdicts) do
      add(string.format("    %s %-12s step %-3s %s", verdict_mark(m.outcome), one_line(m.metric or "?", 24),
        tostring(m.step or "-"), one_line(m.reason or m.outcome, 100)))
    end
  end
  local ms = type(run.measurements) == "table" and run.measurements or {}
  if #ms > 0 then
    local tally, order = {}, {}
    for _, m in ipairs(ms) do
      local o = tostring(m.outcome or "?")
      if not tally[o] then order[#order + 1] = o end
      tally[o] = (tally[o] or 0) + 1
    end
    local parts = {}
    for _, o in ipairs(order) do parts[#parts + 1] = tally[o] .. " " .. o end
    add(string.format("  measurements: %d (%s)%s", #ms, table.concat(parts, ", "),
      #ms >= journal.KEEP_MEASUREMENTS and ", the last ones; all in the report and the journal" or ""))
  end
  add(string.format("  started %s, updated %s", ago(run.started), ago(run.updated)))
  return lines
end

local function exit_for(run)
  if not run then return 0 end
  if run.phase == "aborted" or run.phase == "failed" then return 1 end
  return 0
end

--- status SERVICE [--json] [--watch]
function ops.status(svc, opts)
  local run = journal.load(svc.name)
  if not opts.watch then
    if opts.json then
      io.stdout:write(json.encode(strategy.status_doc(run), { pretty = true }), "\n")
    else
      for _, l in ipairs(ops.status_lines(run, svc.name)) do ui.print(l) end
    end
    return exit_for(run)
  end
  -- --watch: redraw on a terminal, JSON lines otherwise, until the run ends
  local tty = ui.is_tty() and not opts.json
  local last
  while true do
    run = journal.load(svc.name)
    local doc = strategy.status_doc(run)
    local key = json.encode(doc)
    if key ~= last then
      last = key
      if tty then
        io.stdout:write("\27[H\27[2J")
        for _, l in ipairs(ops.status_lines(run, svc.name)) do io.stdout:write(l, "\n") end
        io.stdout:flush()
      else
        io.stdout:write(json.encode(doc), "\n")
        io.stdout:flush()
      end
    end
    if not journal.active(run) then break end
    time.sleep(0.25)
  end
  return exit_for(run)
end

--- history SERVICE [--json]: the journal.
function ops.history(svc, opts)
  local h = journal.history(svc.name)
  if opts.json then
    io.stdout:write(json.encode(json.array(h), { pretty = true }), "\n")
    return 0
  end
  if #h == 0 then ui.info(svc.name .. ": the journal is empty") return 0 end
  for _, e in ipairs(h) do
    local what = e.action
    if e.action == "measurement" then
      what = string.format("measurement %s %s: %s", tostring(e.metric), tostring(e.outcome), tostring(e.reason))
      e.why = nil
    elseif e.action == "observed" then
      local o = type(e.observed) == "table" and e.observed or {}
      what = "observed " .. strategy.weights_text(type(o.counts) == "table" and o.counts or {}) ..
        " (the confirming sample)"
    elseif e.action == "control" then
      what = string.format("control %s: %s", tostring(e.request), tostring(e.result))
    elseif e.action == "step" then
      what = string.format("step %s %s", tostring(e.step), tostring(e.phase))
    end
    if e.from or e.to then
      local function txt(x)
        if type(x) ~= "table" then return tostring(x) end
        if #x > 0 or next(x) == nil then return #x .. " route(s)" end
        return strategy.weights_text(x)
      end
      what = string.format("%s %s → %s", e.action, txt(e.from), txt(e.to))
    end
    ui.print(string.format("%s  %-28s %s%s", os.date("!%Y-%m-%d %H:%M:%S", math.floor(e.t or 0)),
      tostring(e.who), what, e.why and ("  (" .. tostring(e.why) .. ")") or ""))
  end
  return 0
end

--- Refuses (exit 2) a command that would change the service while a
-- strategy run is in progress or paused: the control commands are the
-- only way in.
function ops.guard(svc, command)
  local run = journal.load(svc.name)
  if journal.active(run) then
    errors.refuse(string.format("%s: %s is in progress, so %s would fight it: use rollout scripts/ops.lua " ..
      "status|promote|abort|pause|resume %s", svc.name, describe(run), command, svc.name))
  end
end

return ops
