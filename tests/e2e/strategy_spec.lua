-- Progressive delivery on the local target, end to end: the shipped
-- strategies against real demo processes behind a real HAProxy, faults set
-- per version through their /admin/faults endpoint, the gateway checked by
-- counting requests from an independent client, the run driven from
-- another shell through ops.lua.
local proc = require "rollout.proc"
local fs = require "rollout.fs"
local json = require "rollout.json"
local http = require "rollout.http"
local time = require "rollout.time"
local probe = require "rollout.probe"
local verify = require "rollout.verify"
local local_env = require "tests.helpers.local_env"

local SVC = local_env.service
local wait = local_env.wait

local function faults(env, version, query)
  local st = env:state_json()
  local port = st.versions[version].port
  local r = assert(http.request { url = string.format("http://127.0.0.1:%d/admin/faults?%s", port, query),
                                  method = "POST", timeout = 2 })
  assert.equal(200, r.status, r.body)
end

-- v1=70 v2=30, v3 deployed at weight 0 (so its faults can be set first)
local function baseline(env)
  for _, v in ipairs { "v1", "v2", "v3" } do
    local r = env:ops("start", SVC, v)
    assert(r.status == 0, r.stdout .. r.stderr)
  end
  local r = env:lua([[require("rollout").service("microservice-1"):set_weights { v1 = 70, v2 = 30, v3 = 0 }]])
  assert(r.status == 0, r.stderr)
end

-- Counts `n` default-route requests with an independent client and judges
-- them against `weights`: the gateway's real split, not rollout's state.
local function counted(env, weights, n)
  local res = assert(probe.run { url = env:endpoint(), n = n or 6000, concurrency = 16 })
  local v = verify.split(res, weights)
  return v, res
end

local function status(env)
  local r = env:ops("status", SVC, "--json")
  return json.decode(r.stdout), r.status
end

-- The shares of the canary in every set_weights of the journal.
local function canary_shares(env, version)
  local out = {}
  local r = env:ops("history", SVC, "--json")
  local started = false
  for _, e in ipairs(json.decode(r.stdout)) do
    if e.action == "start" then started = true end
    if started and (e.action == "set_weights" or e.action == "abort") and type(e.to) == "table" then
      local total = 0
      for _, w in pairs(e.to) do total = total + w end
      out[#out + 1] = total > 0 and (e.to[version] or 0) / total or 0
    end
  end
  return out
end

-- Starts a strategy in the background; returns its pid and its log path.
-- (tests of the control flow, not of the judge, give latency a wide margin:
-- a loaded test machine must not pause them)
local function start(env, script, ...)
  local log = fs.join(env.dir, "strategy-" .. tostring(math.floor(time.now() * 1000)) .. ".log")
  local argv = { local_env.bin, "scripts/strategies/" .. script, SVC, ... }
  argv[#argv + 1] = "--latency-tolerance=1"
  local pid = assert(proc.spawn { argv = argv, log = log, env = env.env, cwd = local_env.root })
  env:track(pid)
  return pid, log
end

local function log_has(log, text)
  return (fs.read(log) or ""):find(text, 1, true) ~= nil
end

describe("canary", function()
  local env
  before_each(function()
    env = local_env.new()
    baseline(env)
  end)
  after_each(function() env:cleanup() end)

  it("aborts a v3 failing 5% of its requests before any weight above 20%, back at exactly 70/30/0", function()
    faults(env, "v3", "error_rate=0.05")
    local r = env:rollout { "scripts/strategies/canary.lua", SVC, "v3", "--interval=0.5" }
    assert.equal(1, r.status, r.stdout .. r.stderr)
    assert.matches("aborting: v3: error rate %d+%.%d%% vs baseline 0%.0%% %(p=", r.stdout)
    assert.matches("%[metric error%-rate, step %d%]", r.stdout)
    for _, share in ipairs(canary_shares(env, "v3")) do
      assert.is_true(share <= 0.20 + 1e-9, "a weight above 20% was applied: " .. share)
    end
    local doc, code = status(env)
    assert.equal("aborted", doc.phase)
    assert.equal(1, code)
    assert.same({ v1 = 70, v2 = 30, v3 = 0 }, doc.weights)
    local v, res = counted(env, { v1 = 70, v2 = 30, v3 = 0 })
    assert.is_true(v.ok, v.reason)
    assert.is_nil(res.counts.v3)
    assert.same({ v1 = 70, v2 = 30, v3 = 0 }, env:gateway_weights())
    assert.matches("name: v1\n  weight: 70\n", fs.read(env.traffic_file))
  end)

  it("aborts a v3 answering 80 ms slower the same way", function()
    faults(env, "v3", "latency_ms=80")
    local r = env:rollout { "scripts/strategies/canary.lua", SVC, "v3", "--interval=0.5" }
    assert.equal(1, r.status, r.stdout .. r.stderr)
    assert.matches("aborting: v3: p%d+ latency [%d.]+ ms vs baseline [%d.]+ ms", r.stdout)
    for _, share in ipairs(canary_shares(env, "v3")) do assert.is_true(share <= 0.20 + 1e-9) end
    assert.equal("aborted", status(env).phase)
    local v, res = counted(env, { v1 = 70, v2 = 30, v3 = 0 })
    assert.is_true(v.ok, v.reason)
    assert.is_nil(res.counts.v3)
  end)

  it("promotes a good v3 (--steps=10,20,50,100 --interval=1): all traffic to v3, the others still running", function()
    local t0 = time.now()
    local r = env:rollout { "scripts/strategies/canary.lua", SVC, "v3", "--steps=10,20,50,100", "--interval=1",
                            "--json" }
    assert.equal(0, r.status, r.stdout .. r.stderr)
    local doc = json.decode(r.stdout)
    assert.equal("succeeded", doc.phase)
    assert.same({ v1 = 0, v2 = 0, v3 = 100 }, doc.weights)
    io.stderr:write(string.format("  [canary 10,20,50,100 at 1 s: %.1f s]\n", time.now() - t0))
    local shares = canary_shares(env, "v3")
    assert.same({ 0.1, 0.2, 0.5, 1.0 }, shares)
    local _, res = counted(env, { v3 = 100 }, 2000)
    assert.equal(2000, res.counts.v3)
    local st = env:state_json()
    assert.is_true(proc.alive(st.versions.v1.pid)) -- instant rollback: still running
    assert.is_true(proc.alive(st.versions.v2.pid))
    -- the report of the run is in the state directory
    assert.is_true(fs.exists(fs.join(env.state, "services", SVC, "report.html")))
  end)

  it("refuses bad parameters before any change, naming them", function()
    local before, gw = fs.read(env.traffic_file), env:gateway_weights()
    local cases = {
      { { "--stepz=10,100" }, "unknown option %-%-stepz %(did you mean steps%?%)" },
      { { "--steps=10,x" }, "%-%-steps: item 2 is not a number" },
      { { "--interval=0" }, "%-%-interval must be > 0" },
      { { "--on-inconclusive=maybe" }, "%-%-on%-inconclusive must be pause, abort or promote" },
    }
    for _, c in ipairs(cases) do
      local r = env:rollout { "scripts/strategies/canary.lua", SVC, "v3", table.unpack(c[1]) }
      assert.equal(2, r.status, table.concat(c[1], " ") .. ": " .. r.stdout .. r.stderr)
      assert.matches(c[2], r.stderr)
    end
    local r = env:rollout { "scripts/strategies/canary.lua", SVC, "v3;rm" }
    assert.equal(2, r.status)
    assert.matches("not a DNS%-1123 label", r.stderr)
    -- service.yaml's strategy block is checked too, with file:line:col
    local cfg = fs.join(env.deployments, SVC, "service.yaml")
    assert(fs.write_atomic(cfg, fs.read(cfg) .. "strategy:\n  canary:\n    stepz: [10, 100]\n"))
    r = env:rollout { "scripts/strategies/canary.lua", SVC, "v3" }
    assert.equal(2, r.status)
    assert.matches("service%.yaml:%d+:%d+: strategy%.canary%.stepz: unknown strategy parameter", r.stderr)
    -- nothing changed: not the file, not the gateway, no run recorded
    assert.equal(before, fs.read(env.traffic_file))
    assert.same(gw, env:gateway_weights())
    assert.is_false(fs.exists(fs.join(env.state, "services", SVC, "rollout.json")))
    local s = status(env)
    assert.equal("none", s.phase)
  end)
end)

describe("canary driven from another shell", function()
  local env
  before_each(function()
    env = local_env.new()
    baseline(env)
  end)
  after_each(function() env:cleanup() end)

  it("promote sent twice advances one step; --full goes to 100%; a second --full says so", function()
    local pid, log = start(env, "canary.lua", "v3", "--interval=30")
    assert(wait(function() return log_has(log, "analysis: error-rate") end, 30), fs.read(log))
    assert.equal(1, status(env).step)
    -- two promotes at once, both for the step they saw (step 1: said
    -- explicitly, or the second could read the step after the first was
    -- answered, and rightly promote step 2)
    local a = proc.spawn { argv = { local_env.bin, "scripts/ops.lua", "promote", SVC, "--expect-step", "1", "--json" },
                           log = fs.join(env.dir, "p1.log"), env = env.env, cwd = local_env.root }
    env:track(a)
    local b = env:ops("promote", SVC, "--expect-step", "1", "--json")
    assert(wait(function() return not proc.alive(a) end, 30))
    assert.equal(0, b.status, b.stderr)
    local answers = { json.decode(b.stdout).result, json.decode(fs.read(fs.join(env.dir, "p1.log"))).result }
    table.sort(answers)
    assert.same({ "noop", "ok" }, answers)
    assert(wait(function() return status(env).step == 2 end, 30))
    time.sleep(0.5)
    assert.equal(2, status(env).step) -- one step, not two
    -- --expect-step of a step that is past: nothing
    local late = env:ops("promote", SVC, "--expect-step", "1", "--json")
    assert.equal("noop", json.decode(late.stdout).result)
    -- --full: straight to 100%
    local full = env:ops("promote", SVC, "--full", "--json")
    assert.equal("ok", json.decode(full.stdout).result)
    assert(wait(function() return not proc.alive(pid) end, 60), fs.read(log))
    local s = status(env)
    assert.equal("succeeded", s.phase)
    assert.same({ v1 = 0, v2 = 0, v3 = 100 }, s.weights)
    local again = env:ops("promote", SVC, "--full")
    assert.equal(0, again.status)
    assert.matches("already promoted", again.stderr .. again.stdout)
  end)

  it("abort restores exactly 70/30/0 and removes nothing else; two aborts are one; none in progress changes nothing", function()
    local pid, log = start(env, "canary.lua", "v3", "--interval=30")
    assert(wait(function() return log_has(log, "analysis: error-rate") end, 30), fs.read(log))
    -- while it runs, other commands are kept out
    local ut = env:ops("update_traffic", SVC)
    assert.equal(2, ut.status)
    assert.matches("a canary of v3 %(progressing at step 1: 5%% of the traffic to v3%) is in progress", ut.stderr)
    -- a script that takes the lock is kept out by it
    local lk = env:lua([[require("rollout").service("microservice-1"):lock("my script")]])
    assert.equal(1, lk.status)
    assert.matches("another rollout is working on microservice%-1 %(pid " .. pid .. ": canary of v3%)", lk.stderr)
    local r = env:ops("abort", SVC)
    assert.equal(0, r.status, r.stderr)
    assert(wait(function() return not proc.alive(pid) end, 30))
    local s = status(env)
    assert.equal("aborted", s.phase)
    assert.matches("aborted by", s.abort_reason)
    local v = counted(env, { v1 = 70, v2 = 30, v3 = 0 })
    assert.is_true(v.ok, v.reason)
    local text, gw = fs.read(env.traffic_file), env:gateway_weights()
    local again = env:ops("abort", SVC)
    assert.equal(0, again.status)
    assert.matches("nothing to abort, nothing changed", again.stdout .. again.stderr)
    assert.equal(text, fs.read(env.traffic_file))
    assert.same(gw, env:gateway_weights())
    local aborts = 0
    for _, e in ipairs(json.decode(env:ops("history", SVC, "--json").stdout)) do
      if e.action == "abort" then aborts = aborts + 1 end
    end
    assert.equal(1, aborts)
  end)

  it("pause holds the step and resume goes on", function()
    local pid, log = start(env, "canary.lua", "v3", "--steps=10,100", "--interval=1")
    assert(wait(function() return log_has(log, "analysis: error-rate") end, 30), fs.read(log))
    local p = env:ops("pause", SVC, "--json")
    assert.equal(0, p.status, p.stderr)
    assert(wait(function() return status(env).phase == "paused" end, 10))
    time.sleep(2.5) -- more than the interval: a paused run does not move on
    local s = status(env)
    assert.equal("paused", s.phase)
    assert.equal(1, s.step)
    local r = env:ops("resume", SVC, "--json")
    assert.equal("ok", json.decode(r.stdout).result)
    assert(wait(function() return not proc.alive(pid) end, 60), fs.read(log))
    assert.equal("succeeded", status(env).phase)
  end)

  it("kill -9 mid-step, then the same command resumes at that step with the same weights", function()
    local pid, log = start(env, "canary.lua", "v3", "--steps=10,20,100", "--interval=30")
    assert(wait(function() return log_has(log, "analysis: error-rate") end, 30), fs.read(log))
    assert.equal(0, env:ops("promote", SVC).status)
    assert(wait(function() return status(env).step == 2 and log_has(log, "Step 2/3") end, 30))
    assert(wait(function() return status(env).weights.v3 == 200 end, 30))
    assert(proc.kill(pid, "KILL"))
    assert(wait(function() return not proc.alive(pid) end, 10))
    local s = status(env)
    assert.equal("progressing", s.phase)
    assert.equal(2, s.step)
    local weights = s.weights
    -- other commands are refused while the run waits to be resumed
    local ut = env:ops("update_traffic", SVC)
    assert.equal(2, ut.status)
    assert.matches("a canary of v3 %(progressing at step 2", ut.stderr)
    -- the same command again: resumes at step 2 (step 1 is not done again)
    local pid2, log2 = start(env, "canary.lua", "v3", "--steps=10,20,100", "--interval=30")
    assert(wait(function() return log_has(log2, "analysis: error-rate") end, 30), fs.read(log2))
    assert.matches("Resuming the canary of microservice%-1 v3 at step 2", fs.read(log2))
    assert.is_nil(fs.read(log2):find("Step 1/3", 1, true))
    assert.same(weights, status(env).weights)
    assert.equal(0, env:ops("promote", SVC, "--full").status)
    assert(wait(function() return not proc.alive(pid2) end, 60), fs.read(log2))
    assert.equal("succeeded", status(env).phase)
  end)

  it("^C is an orderly pause: file, state and gateway agree; resume finishes it", function()
    local pid, log = start(env, "canary.lua", "v3", "--steps=10,20,100", "--interval=30")
    assert(wait(function() return log_has(log, "analysis: error-rate") end, 30), fs.read(log))
    assert(proc.kill(pid, "INT"))
    assert(wait(function() return not proc.alive(pid) end, 20), fs.read(log))
    assert.matches("interrupted %(%^C%) at step 1: paused", fs.read(log))
    local s = status(env)
    assert.equal("paused", s.phase)
    local st = env:state_json()
    local applied = {}
    for v, info in pairs(st.versions) do applied[v] = info.weight end
    assert.same(s.weights, applied)
    assert.same({ v1 = 630, v2 = 270, v3 = 100 }, applied)
    assert.matches("name: v3\n  weight: 100\n", fs.read(env.traffic_file))
    local gw = env:gateway_weights()
    assert.same({ v1 = 256, v2 = 110, v3 = 41 }, gw)
    -- resume from another shell runs it here
    local r = env:ops("promote", SVC, "--full")
    assert.equal(0, r.status, r.stdout .. r.stderr)
    assert.equal("succeeded", status(env).phase)
  end)
end)

describe("after a run", function()
  local env
  before_each(function()
    env = local_env.new()
    baseline(env)
  end)
  after_each(function() env:cleanup() end)

  it("retry starts an aborted run over; undo goes back to the weights of before, checked by counting", function()
    faults(env, "v3", "error_rate=0.05")
    local r = env:rollout { "scripts/strategies/canary.lua", SVC, "v3", "--steps=10,100", "--interval=0.5",
                            "--latency-tolerance=1" }
    assert.equal(1, r.status, r.stdout)
    -- nothing to undo to yet: the weights are those of before the run
    local first_id = status(env).id
    faults(env, "v3", "error_rate=0")
    local rt = env:ops("retry", SVC)
    assert.equal(0, rt.status, rt.stdout .. rt.stderr)
    assert.matches("retrying the canary of v3 from the start", rt.stdout .. rt.stderr)
    local s = status(env)
    assert.equal("succeeded", s.phase)
    assert.is_not.equal(first_id, s.id) -- a new run
    local _, all = counted(env, { v3 = 100 }, 1000)
    assert.equal(1000, all.counts.v3)
    -- undo: back to 70/30/0, confirmed and checked at the gateway
    local u = env:ops("undo", SVC, "--json")
    assert.equal(0, u.status, u.stdout .. u.stderr)
    local doc = json.decode(u.stdout)
    assert.same({ v1 = 70, v2 = 30, v3 = 0 }, doc.to)
    assert.is_true(doc.ok)
    local v = counted(env, { v1 = 70, v2 = 30, v3 = 0 })
    assert.is_true(v.ok, v.reason)
    -- retry of a run that succeeded is refused, and so is undo while one runs
    local again = env:ops("retry", SVC)
    assert.equal(2, again.status)
    assert.matches("succeeded: nothing to retry", again.stderr)
    -- the journal tells the story: who, what, from, to, why
    local h = env:ops("history", SVC)
    assert.equal(0, h.status)
    for _, what in ipairs { "start", "set_weights v1=70 v2=30 v3=0 → v1=630 v2=270 v3=100", "abort",
                            "promote", "undo v1=0 v2=0 v3=100 → v1=70 v2=30 v3=0" } do
      assert.truthy(h.stdout:find(what, 1, true), what .. " missing from:\n" .. h.stdout)
    end
  end)
end)

describe("blue-green", function()
  local env
  before_each(function()
    env = local_env.new()
    baseline(env)
  end)
  after_each(function() env:cleanup() end)

  it("previews by header only, switches at once, removes the old versions after the delay", function()
    local pid, log = start(env, "blue_green.lua", "v3", "--interval=30", "--scale-down-delay=1")
    assert(wait(function() return log_has(log, "analysis: error-rate") end, 30), fs.read(log))
    -- the preview: the header reaches v3, default traffic never does
    local _, res = counted(env, { v1 = 70, v2 = 30, v3 = 0 }, 1000)
    assert.is_nil(res.counts.v3)
    local h = assert(probe.run { url = env:endpoint(), n = 1000, headers = { ["x-version"] = "v3" } })
    assert.equal(1000, h.counts.v3)
    assert.equal(0, env:ops("promote", SVC).status)
    assert(wait(function() return status(env).step == 2 end, 30))
    assert.equal(0, env:ops("promote", SVC).status)
    assert(wait(function() return not proc.alive(pid) end, 60), fs.read(log))
    assert.equal("succeeded", status(env).phase)
    local _, all = counted(env, { v3 = 100 }, 1000)
    assert.equal(1000, all.counts.v3)
    assert.same({ "v3" }, env:eval([[(function()
      local out = {}
      for _, v in ipairs(require("rollout").service("microservice-1"):versions()) do out[#out + 1] = v.name end
      return out end)()]]))
  end)

  it("a failing preview never gets default traffic", function()
    faults(env, "v3", "error_rate=0.05")
    local r = env:rollout { "scripts/strategies/blue_green.lua", SVC, "v3", "--interval=0.5" }
    assert.equal(1, r.status, r.stdout)
    assert.matches("aborting: v3: error rate", r.stdout)
    for _, share in ipairs(canary_shares(env, "v3")) do assert.equal(0, share) end
    local v = counted(env, { v1 = 70, v2 = 30, v3 = 0 })
    assert.is_true(v.ok, v.reason)
  end)

  it("a failure after the switch switches back to the old versions", function()
    -- the shipped strategy, with a hook that breaks v3 once it has all traffic
    local script = fs.join(env.dir, "bg_breaks.lua")
    local shipped = assert(fs.read(fs.join(local_env.root, "scripts", "strategies", "blue_green.lua")))
    local hooked = shipped:gsub("s:step%(\"switch all traffic to \" %.%. s%.version, function%(%)", ([[s:hook("before_step", function(run, n)
    if n == 2 then run.break_v3 = true end
  end)
  s:step("switch all traffic to " .. s.version, function()
    if s.break_v3 then
      local st = require("rollout.state").read(require("rollout.fs").join(require("rollout.config").state_dir(),
        "services", s.service.name, "state.json"))
      assert(require("rollout.http").request { method = "POST", timeout = 2, url = string.format(
        "http://127.0.0.1:%d/admin/faults?error_rate=0.05", st.versions.v3.port) })
    end]]):gsub("%%", "%%%%"), 1)
    assert.is_not.equal(shipped, hooked)
    assert(fs.write_atomic(script, hooked))
    local r = env:rollout { script, SVC, "v3", "--interval=0.5" }
    assert.equal(1, r.status, r.stdout .. r.stderr)
    assert.matches("Step 2: switch all traffic to v3", r.stdout)
    assert.matches("aborting: v3: error rate", r.stdout)
    local shares = canary_shares(env, "v3")
    assert.equal(1, shares[#shares - 1]) -- it had everything ...
    assert.equal(0, shares[#shares])     -- ... and went back
    local v = counted(env, { v1 = 70, v2 = 30, v3 = 0 })
    assert.is_true(v.ok, v.reason)
  end)
end)

describe("A/B test", function()
  local env
  before_each(function()
    env = local_env.new()
    baseline(env)
  end)
  after_each(function() env:cleanup() end)

  it("sends header and cookie requests to v3 (all of them), the others nowhere near it; abort removes the route", function()
    local pid, log = start(env, "ab_test.lua", "v3", "--header=x-user-group:beta", "--cookie=canary:always",
                           "--interval=30")
    assert(wait(function() return log_has(log, "analysis: error-rate") end, 30), fs.read(log))
    local url = env:endpoint()
    local h = assert(probe.run { url = url, n = 1000, headers = { ["x-user-group"] = "beta" } })
    local c = assert(probe.run { url = url, n = 1000, headers = { Cookie = "theme=dark; canary=always" } })
    local o = assert(probe.run { url = url, n = 1000, headers = { ["x-user-group"] = "alpha" } })
    assert.equal(1000, h.counts.v3)
    assert.equal(1000, c.counts.v3)
    assert.is_nil(o.counts.v3)
    assert.equal(1000, (o.counts.v1 or 0) + (o.counts.v2 or 0))
    assert.equal(0, env:ops("abort", SVC).status)
    assert(wait(function() return not proc.alive(pid) end, 30))
    assert.equal("aborted", status(env).phase)
    local after = assert(probe.run { url = url, n = 500, headers = { ["x-user-group"] = "beta" } })
    assert.is_nil(after.counts.v3)
    assert.same({}, env:eval([[require("rollout").service("microservice-1"):routes()]]))
  end)
end)
