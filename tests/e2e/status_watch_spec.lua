-- `ops.lua status SERVICE --watch` under a real terminal (tmux): it draws
-- the run — step, weights as bars, each side's error rate and latency from
-- the last measurements, the last verdicts — redraws when the run changes
-- (another process writes rollout.json), and ends when the run does. Colour
-- on the terminal, none with NO_COLOR; piped, one JSON document per change.
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path

local tmux = require "helpers.tmux"
local fs = require "rollout.fs"
local proc = require "rollout.proc"
local json = require "rollout.json"
local fx = require "tests.helpers.report_fixtures"
local fixture = require "tests.helpers.fixture"

local ROOT = os.getenv("ROLLOUT_ROOT") or "."
local BIN = fixture.bin
assert(proc.which("tmux"), "these tests need tmux (make deps)")

describe("ops.lua status --watch", function()
  local dir, state, run_file
  local sessions = {}

  local function write_run(run)
    assert(fs.write_atomic(run_file, json.encode(run, { pretty = true }) .. "\n"))
  end

  -- a canary in progress at step 2 (nobody runs it: the watch only reads)
  local function progressing()
    local run = fx.canary_succeeded()
    run.phase, run.finished, run.step, run.step_title = "progressing", nil, 2, "50% of the traffic to v3"
    run.weights = { v1 = 250, v2 = 250, v3 = 500 }
    local keep = {}
    for i = 1, 6 do keep[i] = run.measurements[i] end
    run.measurements = keep
    return run
  end

  before_each(function()
    dir = assert(fs.mkdtemp("rollout-watch-e2e-"))
    state = dir .. "/state"
    assert(fs.mkdir_p(state .. "/services/microservice-1"))
    run_file = state .. "/services/microservice-1/rollout.json"
  end)

  after_each(function()
    for i = #sessions, 1, -1 do
      sessions[i]:close()
      sessions[i] = nil
    end
    if dir then fs.remove_tree(dir) end
  end)

  -- The screen of a program that ended, with the line tmux scrolled away.
  local function after_exit(s, escapes)
    if escapes then return s:tmux("capture-pane", "-p", "-e", "-S", "-1", "-t", s.target) end
    return s:tmux("capture-pane", "-p", "-S", "-1", "-t", s.target)
  end

  local function start(env_extra)
    local env = { ROLLOUT_STATE_DIR = state, ROLLOUT_DEPLOYMENTS = ROOT .. "/deployments", HOME = dir,
                  TERM = "xterm-256color" }
    for k, v in pairs(env_extra or {}) do env[k] = v end
    local s = tmux.start { argv = { BIN, ROOT .. "/scripts/ops.lua", "status", "microservice-1", "--watch" },
                           env = env, width = 130, height = 40 }
    sessions[#sessions + 1] = s
    return s
  end

  it("draws the run on a terminal, redraws when it changes, ends with it", function()
    write_run(progressing())
    local s = start { NO_COLOR = false }
    s:wait_text("● canary of microservice-1 v3: progressing")
    local lines = s:wait_text("v3 (canary)")
    local screen = table.concat(lines, "\n")
    assert.truthy(screen:find("step 2/3: 50% of the traffic to v3", 1, true), screen)
    assert.truthy(screen:find("v3: 500 → 50.0%  " .. string.rep("█", 12), 1, true), screen)
    assert.truthy(screen:find("no process runs it: rollout scripts/ops.lua resume microservice-1", 1, true), screen)
    assert.truthy(screen:find("0.078% (3/3864)", 1, true), screen)
    assert.truthy(screen:find("✓ latency      step 2", 1, true), screen)
    -- colour on the terminal
    local raw = s:tmux("capture-pane", "-p", "-e", "-t", s.target)
    assert.truthy(raw:find("\27[", 1, true), "no colour on a terminal")

    -- another process records a failing look and the abort: the watch redraws and ends
    local run = progressing()
    run.measurements[#run.measurements + 1] = {
      t = run.started + 70, step = 2, metric = "error-rate", outcome = "fail", effect = "fail",
      value = { metric = "errors", canary = { n = 6440, errors = 300 }, baseline = { n = 6440, errors = 4 } },
      reason = "v3: error rate 4.66% vs baseline 0.06% (p=1e-60)",
    }
    run.phase, run.abort_reason, run.finished = "aborted", "v3: error-rate: error rate 4.66%", run.started + 71
    run.weights = { v1 = 50, v2 = 50, v3 = 0 }
    write_run(run)
    -- it ends with the run; tmux then scrolls the screen one line up to say
    -- "Pane is dead", so the screen is read with that one line of history
    assert.are.equal(1, s:wait_exit()) -- an aborted run: exit 1
    screen = after_exit(s)
    assert.truthy(screen:find("✗ canary of microservice-1 v3: aborted", 1, true), screen)
    assert.truthy(screen:find("✗ error-rate   step 2   v3: error rate 4.66%", 1, true), screen)
    assert.truthy(screen:find("4.66% (300/6440)", 1, true), screen)
    assert.is_nil(screen:find("progressing", 1, true), "the old screen was not cleared:\n" .. screen)
  end)

  it("no colour with NO_COLOR", function()
    local run = progressing()
    run.phase, run.finished = "succeeded", run.started + 90
    write_run(run)
    local s = start { NO_COLOR = "1" }
    assert.are.equal(0, s:wait_exit())
    local raw = after_exit(s, true)
    assert.truthy(raw:find("✓ canary of microservice-1 v3: succeeded", 1, true), raw)
    assert.is_nil(raw:find("\27%[[0-9;]*[1-9][0-9;]*m"), "colour with NO_COLOR:\n" .. raw)
  end)

  it("piped: one JSON document per change", function()
    local run = progressing()
    run.phase, run.finished = "aborted", run.started + 90
    write_run(run)
    local r = assert(proc.run { argv = { BIN, ROOT .. "/scripts/ops.lua", "status", "microservice-1", "--watch" },
      env = { ROLLOUT_STATE_DIR = state, ROLLOUT_DEPLOYMENTS = ROOT .. "/deployments" }, timeout = 30 })
    assert.are.equal(1, r.status, r.stderr)
    local docs = {}
    for line in r.stdout:gmatch("[^\n]+") do docs[#docs + 1] = json.decode(line) end
    assert.are.equal(1, #docs)
    assert.are.equal("aborted", docs[1].phase)
    assert.are.equal(6, #docs[1].measurements)
  end)
end)
