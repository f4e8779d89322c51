-- The seven-step release workflow: v1+v2 → v3, every step verified.
--   rollout scripts/run_all.lua SERVICE [ENDPOINT] [--keep-going] [--json] [--json-file FILE]
--                                [--report FILE]
-- Runs steps 0–6 in order (each is also a script of its own in
-- scripts/steps/), stops at the first failure unless --keep-going, prints a
-- summary and exits non-zero on any failure. --json prints a machine-
-- readable report on stdout (the human output goes to stderr);
-- --json-file writes it to FILE. --report FILE writes the HTML report
-- (rollout.report: weights per step, observed split against the weights,
-- every step and check) — one self-contained file to open in a browser.
local step = require "rollout.step"
local cli = require "rollout.cli"
local ui = require "rollout.ui"
local json = require "rollout.json"
local fs = require "rollout.fs"
local time = require "rollout.time"
local errors = require "rollout.errors"

local usage = "usage: rollout scripts/run_all.lua SERVICE [ENDPOINT] [--keep-going] [--json] [--json-file FILE] [--report FILE] [--wait]"
local opts, pos = cli.parse(cli.args(...), {
  usage = usage,
  flags = { keep_going = "boolean", json = "boolean", json_file = "string", report = "string", wait = "boolean",
            endpoint = "string" },
})
local service, endpoint = pos[1], pos[2] or opts.endpoint
if not service then errors.refuse("no SERVICE given\n" .. usage) end

-- a misspelled service or a bad service.yaml is refused here, once (exit 2),
-- and the service is held for the whole run: no other rollout command can
-- change it between two steps
local svc = require("rollout").service(service, { endpoint = endpoint, wait = opts.wait })
svc:lock("run_all")
require("rollout.strategy.ops").guard(svc, "run_all")

local steps = {
  "step0_baseline.lua",
  "step1_verify_baseline.lua",
  "step2_deploy_v3.lua",
  "step3_add_v3.lua",
  "step4_retire_v2.lua",
  "step5_retire_v1.lua",
  "step6_cleanup.lua",
}

if opts.json then ui.set_output(io.stderr) end

-- the steps sit next to this script
local here = fs.dirname(debug.getinfo(1, "S").source:sub(2))
local step_args = { service }
if endpoint then step_args[2] = endpoint end
if opts.wait then step_args[#step_args + 1] = "--wait" end

step.embedded = true
local t0 = time.now()
local reports, passed, failed = {}, 0, 0
local interrupted
for i, file in ipairs(steps) do
  local chunk, err = loadfile(fs.join(here, "steps", file))
  if not chunk then errors.fail(err) end
  local ok, report = xpcall(chunk, errors.traceback, table.unpack(step_args))
  if not ok then
    if not errors.is_interrupt(report) then error(report, 0) end
    -- ^C: say where it stopped, then the summary of what ran
    interrupted = { step = i - 1, script = "scripts/steps/" .. file }
    break
  end
  report.script = "scripts/steps/" .. file
  reports[i] = report
  if report.ok then passed = passed + 1 else failed = failed + 1 end
  if not report.ok and not opts.keep_going then break end
end
local duration = time.now() - t0
local not_run = #steps - #reports
if interrupted then
  ui.print("")
  ui.fail(string.format("interrupted (^C) during step %d (%s)", interrupted.step, interrupted.script))
end

ui.print("")
ui.print("==========================================")
ui.heading("Summary")
ui.print("==========================================")
ui.print(string.format("Total steps: %d (Step 0-%d)", #steps, #steps - 1))
ui.print(string.format("Passed: %d", passed))
ui.print(string.format("Failed: %d", failed))
if not_run > 0 then ui.print(string.format("Not run: %d", not_run)) end
local requests = 0
for _, r in ipairs(reports) do requests = requests + (r.requests or 0) end
ui.print(string.format("Duration: %.1f s, %d requests", duration, requests))
if failed == 0 and not_run == 0 then
  ui.ok("All steps passed!")
else
  for _, r in ipairs(reports) do
    if not r.ok then ui.fail(string.format("Step %d failed: %s", r.step, r.reason)) end
  end
end

if opts.json or opts.json_file or opts.report then
  local doc = {
    service = service, target = svc.target_name, ok = failed == 0 and not_run == 0,
    interrupted = interrupted and interrupted.step or nil,
    passed = passed, failed = failed, not_run = not_run, total = #steps, duration = duration,
    requests = requests, steps = json.array(reports),
  }
  local text = json.encode(doc, { pretty = true }) .. "\n"
  if opts.json then io.stdout:write(text) end
  if opts.json_file then
    local ok, err = fs.write_atomic(opts.json_file, text)
    if not ok then errors.fail("cannot write " .. opts.json_file .. ": " .. err) end
  end
  if opts.report then
    local ok, err = fs.write_atomic(opts.report, require("rollout.report").render_run_all(doc))
    if not ok then errors.fail("cannot write " .. opts.report .. ": " .. err) end
    ui.info("report: " .. opts.report)
  end
end

if interrupted then os.exit(130) end
os.exit((failed == 0 and not_run == 0) and 0 or 1)
