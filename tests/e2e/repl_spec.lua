-- The REPL driven under a real terminal (tmux): line editing, evaluation,
-- continuation lines, errors, history across sessions, completion, ^C, ^D;
-- and a service of the local target (real versions behind HAProxy):
-- svc:<Tab>, svc:versions() as rows, a verdict, help().
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path

local tmux = require "helpers.tmux"
local fs = require "rollout.fs"
local proc = require "rollout.proc"

local local_env = require "tests.helpers.local_env"
local fixture = require "tests.helpers.fixture"

local BIN = fixture.bin
assert(proc.which("tmux"), "these tests need tmux (make deps)")

describe("the REPL under a terminal", function()
  local dir, history
  local sessions = {}

  before_each(function()
    dir = assert(fs.mkdtemp("rollout-repl-e2e-"))
    history = dir .. "/history"
  end)

  -- every session a test started is stopped, pass or fail (busted keeps
  -- only one finally() per test, so they are closed here)
  after_each(function()
    for i = #sessions, 1, -1 do
      sessions[i]:close()
      sessions[i] = nil
    end
    if dir then fs.remove_tree(dir) end
  end)

  -- Starts `rollout` (no arguments: stdin is a terminal) with a private
  -- HOME and history file.
  local function start()
    local s = tmux.start {
      argv = { BIN },
      env = { HOME = dir, ROLLOUT_HISTORY = history, NO_COLOR = "1", EDITRC = false },
    }
    sessions[#sessions + 1] = s
    s:wait_prompt()
    return s
  end

  -- Types a line and presses Enter.
  local function enter(s, text)
    s:type(text)
    s:key("Enter")
  end

  local function history_entries()
    local text = assert(fs.read(history))
    local lines = {}
    for line in text:gmatch("[^\n]+") do lines[#lines + 1] = line end
    return lines
  end

  it("prints the version, then evaluates 1+1 to 2", function()
    local s = start()
    assert.truthy(s:screen():find("^rollout %d+%.%d+%.%d+ %(Lua 5%.4"))
    enter(s, "1+1")
    s:wait_line("2")
    enter(s, "=10*3") -- the 5.1 form
    s:wait_line("30")
    enter(s, "{b = 1, a = 'x'}, nil")
    s:wait_match('^{a = "x", b = 1}%s+nil$') -- a tab on the terminal
    assert.is_true(proc.alive(s.pid))
  end)

  it("reads a for loop typed over two lines with the >> prompt", function()
    local s = start()
    enter(s, "for i = 1, 3 do")
    s:wait_prompt(">>")
    enter(s, "io.write(i * 11, ' ') end print()")
    s:wait_line("11 22 33")
    s:wait_prompt(">")
  end)

  it("reports a syntax error and goes on", function()
    local s = start()
    enter(s, "x = = 1")
    s:wait_text("unexpected symbol near '='")
    s:wait_prompt()
    enter(s, "'still' .. ' here'")
    s:wait_line("still here")
  end)

  it("reports a runtime error with a traceback and goes on", function()
    local s = start()
    enter(s, "error('boom')")
    s:wait_text("boom")
    s:wait_text("stack traceback:")
    s:wait_prompt()
    enter(s, "6 * 7")
    s:wait_line("42")
  end)

  it("keeps history across sessions: one entry per chunk, no blanks, no repeats", function()
    local s = start()
    enter(s, "marker = 6 * 7")
    s:wait_prompt()
    enter(s, "marker")
    s:wait_line("42")
    enter(s, "marker")
    s:wait_prompt()
    enter(s, "   ")
    s:wait_prompt()
    enter(s, "for i = 1, 2 do")
    s:wait_prompt(">>")
    enter(s, "end")
    s:wait_prompt()
    -- written as entered: already on disk while the REPL still runs
    local entries = history_entries()
    assert.same({ "_HiStOrY_V2_", "marker\\040=\\0406\\040*\\0407", "marker",
                  "for\\040i\\040=\\0401,\\0402\\040do\\012end" }, entries)
    s:key("C-d")
    assert.equal(0, s:wait_exit())

    local s2 = start()
    s2:key("Up")
    s2:wait_text("> for i = 1, 2 do")
    s2:key("Up")
    s2:wait_line("> marker")
    s2:key("Up")
    s2:wait_line("> marker = 6 * 7")
    s2:key("Enter")
    s2:wait_prompt()
    enter(s2, "marker + 1")
    s2:wait_line("43")
  end)

  it("caps the history file at 1000 entries, keeping the newest", function()
    local lines = { "_HiStOrY_V2_" }
    for i = 1, 1500 do lines[#lines + 1] = ("old\\040%d"):format(i) end
    assert(fs.write_atomic(history, table.concat(lines, "\n") .. "\n"))
    local s = start()
    local entries = history_entries()
    assert.equal(1001, #entries) -- the header and 1000 entries
    assert.equal("_HiStOrY_V2_", entries[1])
    assert.equal("old\\040501", entries[2])
    assert.equal("old\\0401500", entries[1001])
    s:key("Up")
    s:wait_line("> old 1500")
    s:key("C-u")
    enter(s, "new = 1")
    s:wait_prompt()
    assert.equal(1002, #history_entries()) -- appended at once
    s:key("C-d")
    assert.equal(0, s:wait_exit())
    entries = history_entries()
    assert.equal(1001, #entries) -- compacted again at exit
    assert.equal("old\\040502", entries[2])
    assert.equal("new\\040=\\0401", entries[1001])
  end)

  it("completes rollout.we<TAB> to rollout.weights", function()
    local s = start()
    s:type("rollout.we")
    s:key("Tab")
    s:wait_line("> rollout.weights")
    s:type(".sha")
    s:key("Tab")
    s:wait_line("> rollout.weights.shares")
    enter(s, "{ v1 = 1, v2 = 3 }")
    s:wait_line("v1=0.25 v2=0.75") -- through its __tostring
  end)

  it("lists candidates when TAB cannot extend the name", function()
    local s = start()
    enter(s, "cfg = { alpha = 1, alpine = 2 }")
    s:wait_prompt()
    s:type("cfg.al")
    s:key("Tab")
    s:wait_line("> cfg.alp")
    s:key("Tab")
    s:wait_match("^alpha +alpine$")
    s:wait_line("> cfg.alp")
  end)

  it("survives a completion that raises", function()
    local s = start()
    enter(s, "require('rollout.repl').tab = function() error('broken completion') end")
    s:wait_prompt()
    s:type("rollout.we")
    s:key("Tab")
    s:type("ights ~= nil, 'typed'") -- TAB added nothing
    s:key("Enter")
    s:wait_match("^true%s+typed$")
    assert.falsy(s:screen():find("stdin:1: broken completion", 1, true)) -- never shown
  end)

  it("^C on a half-typed line gives a fresh prompt and the REPL still answers", function()
    local s = start()
    s:type("print('never")
    s:wait_text("> print('never")
    s:key("C-c")
    s:wait_prompt()
    enter(s, "40 + 2")
    s:wait_line("42")
    for _, line in ipairs(s:lines()) do assert.not_equal("never", line) end
  end)

  it("^C in a continuation line drops the whole chunk", function()
    local s = start()
    enter(s, "for i = 1, 2 do")
    s:wait_prompt(">>")
    s:type("print('dropped')")
    s:wait_text(">> print('dropped')")
    s:key("C-c")
    s:wait_prompt(">")
    enter(s, "'after'")
    s:wait_line("after")
    for _, line in ipairs(s:lines()) do assert.not_equal("dropped", line) end
  end)

  it("^C interrupts a running chunk and the REPL still answers", function()
    local s = start()
    enter(s, "print('spinning') while true do end")
    s:wait_line("spinning") -- the chunk runs (a ^C sooner would cancel the line)
    local before = #s:lines()
    s:key("C-c")
    s:wait_text("interrupted", before)
    s:wait_prompt()
    enter(s, "7 * 6")
    s:wait_line("42")
  end)

  it("^D on an empty line exits with status 0", function()
    local s = start()
    enter(s, "x = 1")
    s:wait_prompt()
    s:key("C-d")
    assert.equal(0, s:wait_exit())
    assert.is_false(proc.alive(s.pid))
  end)
end)

describe("the REPL with a local service", function()
  local world, dir
  local sessions = {}

  setup(function()
    world = local_env.new()
    local ok, err = pcall(function()
      for _, v in ipairs { "v1", "v2" } do
        local r = world:ops("start", local_env.service, v)
        assert(r.status == 0, r.stdout .. r.stderr)
      end
      local r = world:lua([[require("rollout").service("microservice-1"):set_weights { v1 = 50, v2 = 50 }]])
      assert(r.status == 0, r.stderr)
    end)
    if not ok then
      world:cleanup() -- every version and the gateway, by PID
      world = nil
      error(err, 0)
    end
    dir = assert(fs.mkdtemp("rollout-repl-e2e-"))
  end)

  teardown(function()
    for i = #sessions, 1, -1 do sessions[i]:close() end
    if world then world:cleanup() end
    if dir then fs.remove_tree(dir) end
  end)

  after_each(function()
    for i = #sessions, 1, -1 do
      sessions[i]:close()
      sessions[i] = nil
    end
  end)

  -- The REPL in the world of this describe (its state and deployments).
  local function start()
    local env = { HOME = dir, ROLLOUT_HISTORY = dir .. "/history", NO_COLOR = "1", EDITRC = false }
    for k, v in pairs(world.env) do env[k] = v end
    local s = tmux.start { argv = { BIN }, env = env, height = 40 }
    sessions[#sessions + 1] = s
    s:wait_prompt()
    return s
  end

  local function enter(s, text)
    s:type(text)
    s:key("Enter")
  end

  it("completes svc:ch<TAB> to the checks, and svc:versions() prints rows", function()
    local s = start()
    enter(s, 'svc = rollout.service "microservice-1"')
    s:wait_prompt()
    s:type("svc:ch")
    s:key("Tab")
    s:wait_line("> svc:check_")
    s:key("Tab")
    s:wait_match("^check_header +check_split +check_unavailable$")
    s:wait_line("> svc:check_")
    s:key("C-u")
    local before = #s:lines()
    enter(s, "svc:versions()")
    s:wait_match("^  version +weight +share +ready +pid +port +gateway$", before)
    local lines = s:wait_match("^  v2 +50 +50%.0%% +yes +%d+ +%d+ +UP", before)
    local pids = world:state_json().versions
    local seen = 0
    for _, l in ipairs(lines) do
      local name, pid = l:match("^  (v%d) +50 +50%.0%% +yes +(%d+) ")
      if name then
        seen = seen + 1
        assert.equal(pids[name].pid, tonumber(pid)) -- the real processes
      end
    end
    assert.equal(2, seen)
    assert.falsy(s:screen():find("{{", 1, true)) -- no raw table
  end)

  it("prints a verdict as its table, help() for a method, rawprint for the table", function()
    local s = start()
    enter(s, 'svc = rollout.service "microservice-1"')
    s:wait_prompt()
    local before = #s:lines()
    enter(s, "svc:check_split()")
    s:wait_match("^  version +weight +expected +observed +99%% CI +count$", before)
    s:wait_match("^  v1 +50 +50%.0%% +[%d.]+%% +%[", before)
    s:wait_text("split matches the weights (n=", before, 60)
    s:wait_prompt()
    s:key("C-l") -- a clean screen for the next answers
    s:wait_prompt()
    enter(s, "help(svc.check_split)")
    s:wait_match("^Service:check_split%(weights, opts%) +stdlib/rollout/service%.lua:%d+$")
    s:wait_text("Probes and judges the split against `weights`")
    s:wait_prompt()
    s:key("C-l")
    s:wait_prompt()
    enter(s, "rawprint(svc:check_header('v2', { n = 50 }), { depth = 1 })")
    s:wait("the raw verdict", function(_, screen)
      local flat = screen:gsub("\n", "")
      return flat:find("{confidence = 0.99, ", 1, true) and flat:find("ok = true", 1, true)
        and flat:find("rows = {...}", 1, true) and flat:find("summary = \"all 50 requests with the header", 1, true)
    end)
    s:wait_prompt()
  end)
end)
