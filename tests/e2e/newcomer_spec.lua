-- What a new user hits first (issue 10), on the local target: honest
-- causes for errors, restarts, the script-wide lock, messages that name
-- the true cause and refuse before changing anything, ^C in run_all, --json.
local proc = require "rollout.proc"
local fs = require "rollout.fs"
local json = require "rollout.json"
local http = require "rollout.http"
local local_env = require "tests.helpers.local_env"
package.path = local_env.root .. "/tests/e2e/?.lua;" .. package.path
local tmux = require "helpers.tmux"

local SVC = local_env.service
local wait = local_env.wait

-- Sets a version's fault knobs through its /admin/faults endpoint.
local function faults(env, version, query)
  local st = env:state_json()
  local port = st.versions[version].port
  local r = assert(http.request { url = string.format("http://127.0.0.1:%d/admin/faults?%s", port, query),
                                  method = "POST", timeout = 2 })
  assert.equal(200, r.status, r.body)
end

local function write_traffic(env, text)
  assert(fs.write_atomic(env.traffic_file, text))
end

-- The number of sessions the gateway's frontend for the service accepted.
local function frontend_sessions(env)
  local reply = env:haproxy("show stat")
  for line in reply:gmatch("[^\n]+") do
    local f = {}
    for x in (line .. ","):gmatch("([^,]*),") do f[#f + 1] = x end
    if f[1] == "fe_" .. SVC and f[2] == "FRONTEND" then return tonumber(f[8]) end -- stot
  end
end

describe("a version's own errors", function()
  local env
  before_each(function() env = local_env.new() end)
  after_each(function() env:cleanup() end)

  it("are reported as that version's errors, at once, not as weights not in effect", function()
    for _, v in ipairs { "v1", "v2" } do assert.equal(0, env:ops("start", SVC, v).status) end
    faults(env, "v2", "error_rate=0.03")
    local r = env:rollout { "scripts/run_all.lua", SVC }
    assert.equal(1, r.status, r.stdout .. r.stderr)
    -- weights are confirmed (routing is right); step 1's split check names v2's errors
    assert.matches("✓ Step 0 passed", r.stdout)
    assert.matches("✗ Step 1 failed: errors: v2: %d+ of %d+ requests failed %(%d+%.%d%%, budget 1%.0%%; http_5xx=%d+%)",
      r.stdout)
    assert.is_nil(r.stdout:find("not in effect", 1, true))
    -- test_traffic --json gives the errors per version
    local t = env:ops("test_traffic", SVC, "--json")
    assert.equal(1, t.status)
    local doc = json.decode(t.stdout)
    assert.is_false(doc.ok)
    assert.equal("errors", doc.failure)
    assert.is_true(doc.errors_by_version.v2.http_5xx > 0)
    assert.is_nil(doc.errors_by_version.v1)
  end)

  it("name the version that fails its own requests in the split's verdict", function()
    -- (that the rule holds inside the global budget is verify_spec's,
    -- deterministic: here a sample of a real gateway could go either way)
    for _, v in ipairs { "v1", "v3" } do assert.equal(0, env:ops("start", SVC, v).status) end
    faults(env, "v3", "error_rate=0.2")
    write_traffic(env, "versions:\n- name: v1\n  weight: 90\n- name: v3\n  weight: 10\n")
    assert.equal(0, env:ops("update_traffic", SVC).status)
    local r = env:ops("test_traffic", SVC, "--json")
    assert.equal(1, r.status, r.stdout .. r.stderr)
    local doc = json.decode(r.stdout)
    assert.matches("^errors: v3: %d+ of %d+ requests failed", doc.reason)
    assert.equal("v3", doc.failing_versions[1].version)
    assert.equal(1, #doc.failing_versions)
    assert.is_nil(doc.errors_by_version.v1)
  end)

  it("a check whose weights changed during its probe says so instead of failing the split", function()
    for _, v in ipairs { "v1", "v2" } do assert.equal(0, env:ops("start", SVC, v).status) end
    assert.equal(0, env:lua([[require("rollout").service("microservice-1"):set_weights { v1 = 50, v2 = 50 }]]).status)
    local r = env:lua(string.format([[
      local svc = require("rollout").service("microservice-1")
      local http = require "rollout.http"
      local probe = svc.probe
      -- the weights change behind the check's back while it probes
      svc.probe = function(self, o)
        local res = probe(self, o)
        assert(http.unix_exchange(%q, "set server be_microservice-1/v1 weight 90\n"))
        return res
      end
      local v = svc:check_split()
      print(v.ok, v.failure, v.reason)]], fs.join(env.state, "gateway", "admin.sock")))
    assert.equal(0, r.status, r.stderr)
    assert.matches("^false\tchanged\tthe gateway's weights changed while the probe ran %(v1=50 v2=50, then v1=90 v2=50%)",
      r.stdout)
  end)
end)

describe("restarts", function()
  local env
  setup(function()
    env = local_env.new()
    for _, v in ipairs { "v1", "v4" } do assert.equal(0, env:ops("start", SVC, v).status) end
    assert.equal(0, env:lua([[require("rollout").service("microservice-1"):set_weights { v1 = 30, v4 = 70 }]]).status)
  end)
  teardown(function() env:cleanup() end)

  it("start brings a killed version back at its weight", function()
    local old = env:state_json().versions.v4
    assert(proc.kill(old.pid, "KILL"))
    assert(wait(function() return not proc.alive(old.pid) end, 5))
    local r = env:ops("start", SVC, "v4", "--json")
    assert.equal(0, r.status, r.stdout .. r.stderr)
    local doc = json.decode(r.stdout)
    assert.is_true(doc.started)
    assert.equal(70, doc.weight)
    assert.is_not.equal(old.pid, doc.pid)
    assert.matches("back at weight 70", r.stderr)
    assert.same({ v1 = 30, v4 = 70 }, env:gateway_weights())
    local t = env:ops("test_traffic", SVC)
    assert.equal(0, t.status, t.stdout)
  end)

  it("start --restart replaces a healthy version without a failed request", function()
    local old = env:state_json().versions.v1
    local out = fs.join(env.dir, "bg.json")
    local pid = assert(proc.spawn { argv = { local_env.bin, "-e", string.format([[
      local r = assert(require("rollout.probe").run { url = %q, duration = 3, concurrency = 4 })
      require("rollout.fs").write_atomic(%q, require("rollout.json").encode { errors = r.error_total, served = r.served })]],
      env:endpoint(), out) }, log = out .. ".log" })
    env:track(pid)
    local r = env:ops("start", SVC, "v1", "--restart")
    assert.equal(0, r.status, r.stdout .. r.stderr)
    local new = env:state_json().versions.v1
    assert.is_not.equal(old.pid, new.pid)
    assert.is_false(proc.alive(old.pid))
    assert.equal(30, new.weight)
    assert(wait(function() return fs.exists(out) end, 30), fs.read(out .. ".log"))
    local res = json.decode(fs.read(out))
    assert.equal(0, res.errors)
    assert.is_true(res.served > 100)
  end)
end)

describe("the script-wide lock", function()
  local env
  setup(function()
    env = local_env.new()
    for _, v in ipairs { "v1", "v2" } do assert.equal(0, env:ops("start", SVC, v).status) end
    assert.equal(0, env:lua([[require("rollout").service("microservice-1"):set_weights { v1 = 50, v2 = 50 }]]).status)
  end)
  teardown(function() env:cleanup() end)

  it("keeps every other command out while a script holds the service, and lets --wait wait", function()
    local go = fs.join(env.dir, "release")
    local log = fs.join(env.dir, "holder.log")
    local pid = assert(proc.spawn { argv = { local_env.bin, "-e", string.format([[
      local svc = require("rollout").service("microservice-1")
      svc:lock("my canary")
      io.stderr:write("holding\n")
      local fs, time = require "rollout.fs", require "rollout.time"
      while not fs.exists(%q) do time.sleep(0.02) end]], go) }, log = log, env = env.env, cwd = local_env.root })
    env:track(pid)
    assert(wait(function() return (fs.read(log) or ""):find("holding") end, 10), fs.read(log))
    local before_traffic, before_gw = fs.read(env.traffic_file), env:gateway_weights()
    write_traffic(env, "versions:\n- name: v1\n  weight: 10\n- name: v2\n  weight: 90\n")
    local r = env:ops("update_traffic", SVC)
    assert.equal(1, r.status)
    assert.matches("another rollout is working on microservice%-1 %(pid " .. pid .. ": my canary%)",
      r.stderr)
    assert.same(before_gw, env:gateway_weights())
    -- run_all and a step script take the same lock before doing anything
    local ra = env:rollout { "scripts/run_all.lua", SVC }
    assert.equal(1, ra.status)
    assert.matches("another rollout is working on microservice%-1", ra.stderr)
    assert.is_nil(ra.stdout:find("Step 0", 1, true))
    local st = env:rollout { "scripts/steps/step1_verify_baseline.lua", SVC }
    assert.is_not.equal(0, st.status)
    assert.matches("another rollout is working on microservice%-1", st.stdout .. st.stderr)
    -- --wait waits for the holder, then applies
    local waiter_log = fs.join(env.dir, "waiter.log")
    local waiter = assert(proc.spawn { argv = { local_env.bin, "scripts/ops.lua", "update_traffic", SVC, "--wait" },
                                       log = waiter_log, env = env.env, cwd = local_env.root })
    env:track(waiter)
    assert.same(before_gw, env:gateway_weights())
    assert(fs.write_atomic(go, "go"))
    assert(wait(function() return not proc.alive(waiter) end, 30), fs.read(waiter_log))
    assert.same({ v1 = 10, v2 = 90 }, env:gateway_weights())
    write_traffic(env, before_traffic)
    assert.equal(0, env:ops("update_traffic", SVC).status)
  end)
end)

describe("messages that name the true cause", function()
  local env
  before_each(function() env = local_env.new() end)
  after_each(function() env:cleanup() end)

  it("a missing TRAFFIC.yaml is missing (exit 2), and nothing changes", function()
    for _, v in ipairs { "v1", "v2" } do assert.equal(0, env:ops("start", SVC, v).status) end
    local gw = env:gateway_weights()
    fs.remove(env.traffic_file)
    local r = env:ops("update_traffic", SVC)
    assert.equal(2, r.status)
    assert.matches("TRAFFIC%.yaml: no such file: nothing to apply", r.stderr)
    assert.is_nil(r.stderr:find("all weights are 0", 1, true))
    assert.same(gw, env:gateway_weights())
    assert.is_false(fs.exists(env.traffic_file))
  end)

  it("test_version of a version that is not deployed is refused at once, naming the deployed ones", function()
    for _, v in ipairs { "v1", "v2" } do assert.equal(0, env:ops("start", SVC, v).status) end
    local sessions = frontend_sessions(env)
    local r = env:ops("test_version", SVC, "v3")
    assert.equal(2, r.status)
    assert.matches("microservice%-1 has no version v3 %(deployed: v1, v2%)", r.stderr)
    assert.equal(sessions, frontend_sessions(env)) -- not one request sent
  end)

  it("deleting the last version that serves traffic says so, and nothing changes", function()
    for _, v in ipairs { "v1", "v2" } do assert.equal(0, env:ops("start", SVC, v).status) end
    assert.equal(0, env:lua([[require("rollout").service("microservice-1"):set_weights { v1 = 100, v2 = 0 }]]).status)
    local text, gw = fs.read(env.traffic_file), env:gateway_weights()
    local r = env:ops("delete_version", SVC, "v1", "--force")
    assert.equal(2, r.status)
    assert.matches("v1 is the last version of microservice%-1 serving traffic", r.stderr)
    assert.is_nil(r.stderr:find("all weights are 0", 1, true))
    assert.equal(text, fs.read(env.traffic_file))
    assert.same(gw, env:gateway_weights())
    assert.is_true(proc.alive(env:state_json().versions.v1.pid))
  end)

  it("a gateway that is not at TRAFFIC.yaml's weights is named, with the command that applies the file", function()
    for _, v in ipairs { "v1", "v2" } do assert.equal(0, env:ops("start", SVC, v).status) end
    -- TRAFFIC.yaml says 50/50 (the shipped file); start gave both weight 0
    local sessions = frontend_sessions(env)
    local r = env:ops("test_traffic", SVC)
    assert.equal(1, r.status)
    assert.matches("the gateway is not at TRAFFIC%.yaml's weights %(TRAFFIC%.yaml: v1=50 v2=50; applied: v1=0 v2=0%)",
      r.stdout)
    assert.matches("rollout scripts/ops%.lua update_traffic microservice%-1", r.stdout)
    assert.equal(sessions, frontend_sessions(env))
    local p = env:ops("ping", SVC, "--json")
    assert.equal(0, p.status, p.stdout .. p.stderr)
  end)

  it("a misspelled service is refused once (exit 2) with a suggestion; so is a misspelled command", function()
    local r = env:rollout { "scripts/run_all.lua", "microservice-l" }
    assert.equal(2, r.status)
    local _, count = (r.stdout .. r.stderr):gsub("no such file", "")
    assert.equal(1, count)
    assert.matches("did you mean microservice%-1%?", r.stderr)
    assert.matches("services: microservice%-1", r.stderr)
    local c = env:ops("updte_traffic", SVC)
    assert.equal(2, c.status)
    assert.matches('unknown command "updte_traffic" %(did you mean update_traffic%?%)', c.stderr)
  end)

  it("every ops command speaks --json (one JSON document on stdout)", function()
    local function doc(...)
      local r = env:ops(...)
      assert.equal(0, r.status, r.stdout .. r.stderr)
      return assert(json.decode(r.stdout), r.stdout)
    end
    assert.equal("v1", doc("start", SVC, "v1", "--json").version)
    doc("start", SVC, "v2", "--json")
    assert.same({ v1 = 50, v2 = 50 }, doc("update_traffic", SVC, "--json").weights)
    assert.equal(2, #doc("list", SVC, "--json").versions)
    assert.equal(2, #doc("ping", SVC, "--json").versions)
    assert.is_true(doc("test_traffic", SVC, "--json").ok)
    assert.is_true(doc("test_version", SVC, "v1", "--json").ok)
    write_traffic(env, "versions:\n- name: v2\n  weight: 50\n- name: v1\n  weight: 50\n")
    assert.equal(0, env:lua([[require("rollout").service("microservice-1"):set_weights { v1 = 100, v2 = 0 }]]).status)
    -- set_weights kept the file's order
    assert.matches("^versions:\n%- name: v2\n  weight: 0\n%- name: v1\n  weight: 100\n$", fs.read(env.traffic_file))
    assert.is_true(doc("delete_version", SVC, "v2", "--json").removed)
    assert.equal(1, #doc("delete_service", SVC, "--json").removed)
  end)
end)

describe("^C during run_all", function()
  local env
  before_each(function() env = local_env.new() end)
  after_each(function() env:cleanup() end)

  it("prints where it stopped and the summary so far, and exits 130 without a traceback", function()
    local env_vars = {}
    for k, v in pairs(env.env) do env_vars[k] = v end
    local s = tmux.start { argv = { "/bin/sh", "-c", "trap : INT; " .. local_env.bin .. " " .. local_env.root .. "/scripts/run_all.lua " .. SVC ..
      "; echo exit=$?; sleep 30" }, env = env_vars, width = 160, height = 60, cwd = local_env.root }
    finally(function() s:close() end)
    s:wait_text("Step 2:", nil, 60)
    s:key("C-c")
    s:wait_text("exit=", nil, 30)
    local screen = s:screen()
    assert.matches("interrupted %(%^C%) during step 2 %(scripts/steps/step2_deploy_v3%.lua%)", screen)
    assert.matches("Passed: 2", screen)
    assert.matches("exit=130", screen)
    assert.is_nil(screen:find("traceback", 1, true))
  end)
end)
