-- The local target end to end: real demo processes behind a real HAProxy,
-- driven through the rollout binary as a user would (ops.lua and Lua).
local proc = require "rollout.proc"
local fs = require "rollout.fs"
local json = require "rollout.json"
local time = require "rollout.time"
local local_env = require "tests.helpers.local_env"
local fixture = require "tests.helpers.fixture"

local SVC = local_env.service
local wait = local_env.wait

-- Starts a probe of the endpoint in the background for `duration` seconds;
-- returns a function that waits for it and gives its result.
-- Returns once the probe has results coming in (the handshake: it writes
-- OUT.started at its first progress report); its duration is scaled by
-- TIMEOUT_FACTOR, so that a slow build still sends as many requests.
local function background_probe(env, duration, header)
  duration = fixture.timeout(duration)
  local out = fs.join(env.dir, "probe-" .. tostring(math.floor(time.now() * 1000)) .. ".json")
  local code = string.format([[
    local probe, json, fs = require "rollout.probe", require "rollout.json", require "rollout.fs"
    local started = false
    local r = assert(probe.run { url = %q, duration = %g, concurrency = 8, timeout = 2,
                                 headers = %s, on_progress = function()
                                   if not started then started = fs.write_atomic(%q, "1") end
                                 end })
    fs.write_atomic(%q, json.encode { counts = r.counts, errors = r.errors, error_total = r.error_total,
                                      completed = r.completed })]],
    env:endpoint(), duration, header and string.format("{ ['x-version'] = %q }", header) or "{}",
    out .. ".started", out)
  local full = { local_env.bin, "-e", code }
  local pid = assert(proc.spawn { argv = full, log = out .. ".log" })
  env:track(pid)
  assert(wait(function() return fs.exists(out .. ".started") or not proc.alive(pid) end, 30)
         and fs.exists(out .. ".started"), "the background probe did not start: " .. tostring(fs.read(out .. ".log")))
  return function()
    assert(wait(function() return not proc.alive(pid) end, duration + 30), "the background probe did not end")
    local text = fs.read(out)
    assert(text, "the background probe wrote nothing: " .. tostring(fs.read(out .. ".log")))
    return json.decode(text)
  end
end

describe("local target", function()
  local env

  setup(function()
    env = local_env.new()
    for _, v in ipairs { "v1", "v2", "v3" } do
      local r = env:ops("start", SVC, v)
      assert(r.status == 0, r.stdout .. r.stderr)
    end
    local r = env:lua([[require("rollout").service("microservice-1"):set_weights { v1 = 50, v2 = 50, v3 = 0 }]])
    assert(r.status == 0, r.stderr)
  end)

  teardown(function() env:cleanup() end)

  it("lists versions, weights, shares, readiness and the endpoint (--json)", function()
    local r = env:ops("list", SVC, "--json")
    assert.equal(0, r.status, r.stderr)
    local doc = json.decode(r.stdout)
    assert.equal(SVC, doc.service)
    assert.equal(env:endpoint(), doc.endpoint)
    assert.equal(3, #doc.versions)
    local by = {}
    for _, v in ipairs(doc.versions) do by[v.name] = v end
    assert.equal(50, by.v1.weight)
    assert.equal(0.5, by.v2.share)
    assert.equal(0, by.v3.weight)
    assert.is_true(by.v3.ready)
    assert.is_true(proc.alive(by.v3.pid))
  end)

  it("splits 20,000 requests at 50/50/0: the split passes and v3 gets none", function()
    local r = env:lua(string.format([[
      local probe, verify = require "rollout.probe", require "rollout.verify"
      local res = assert(probe.run { url = %q, n = 20000, concurrency = 32 })
      local v = verify.split(res, { v1 = 50, v2 = 50, v3 = 0 })
      print(v.ok, res.counts.v3 or 0, res.served, v.reason)]], env:endpoint()))
    assert.equal(0, r.status, r.stderr)
    assert.matches("^true\t0\t20000\t", r.stdout)
  end)

  it("routes every x-version: v3 request to v3 (test_version)", function()
    local r = env:ops("test_version", SVC, "v3", "--json")
    assert.equal(0, r.status, r.stdout .. r.stderr)
    local doc = json.decode(r.stdout)
    assert.is_true(doc.ok)
    assert.is_true(doc.counts.v3 > 0)
    assert.is_nil(doc.counts.v1)
  end)

  it("answers 503 for a version that is not deployed, never another version", function()
    local r = env:lua(string.format([[
      local probe = require "rollout.probe"
      local res = assert(probe.run { url = %q, n = 200, headers = { ["x-version"] = "v9" } })
      print(res.served, res.status[503])]], env:endpoint()))
    assert.equal("0\t200\n", r.stdout)
  end)

  it("takes a weight change live: a probe across set_weights sees zero errors", function()
    local finish = background_probe(env, 1.5)
    local r = env:lua([[require("rollout").service("microservice-1"):set_weights { v1 = 80, v2 = 20, v3 = 0 }]])
    assert.equal(0, r.status, r.stderr)
    local res = finish()
    assert.equal(0, res.error_total, json.encode(res.errors))
    assert.is_true(res.completed > 1000)
    assert.same({ v1 = 80, v2 = 20, v3 = 0 }, env:gateway_weights())
    -- back to 50/50 for what follows
    r = env:lua([[require("rollout").service("microservice-1"):set_weights { v1 = 50, v2 = 50, v3 = 0 }]])
    assert.equal(0, r.status, r.stderr)
  end)

  it("adds a version (hitless reload) during a probe: zero errors, other weights kept", function()
    local finish = background_probe(env, 2)
    local r = env:ops("start", SVC, "v4")
    assert.equal(0, r.status, r.stderr)
    local res = finish()
    assert.equal(0, res.error_total, json.encode(res.errors))
    assert.is_nil(res.counts.v4)
    assert.same({ v1 = 50, v2 = 50, v3 = 0, v4 = 0 }, env:gateway_weights())
    r = env:ops("delete_version", SVC, "v4")
    assert.equal(0, r.status, r.stderr)
    assert.same({ v1 = 50, v2 = 50, v3 = 0 }, env:gateway_weights())
  end)

  it("update_traffic applies TRAFFIC.yaml and prints the distribution", function()
    assert(fs.write_atomic(env.traffic_file, "versions:\n  - name: v1\n    weight: 50\n  - name: v2\n    weight: 50\n  - name: v3\n    weight: 50\n"))
    local r = env:ops("update_traffic", SVC)
    assert.equal(0, r.status, r.stderr)
    assert.matches("New Traffic Distribution:", r.stdout)
    assert.matches("v1: 50 → 33%.3%%", r.stdout)
    assert.matches("v3: 50 → 33%.3%%", r.stdout)
    assert.same({ v1 = 50, v2 = 50, v3 = 50 }, env:gateway_weights())
    local t = env:ops("test_traffic", SVC)
    assert.equal(0, t.status, t.stdout)
    assert.matches("split matches the weights", t.stdout)
    r = env:lua([[require("rollout").service("microservice-1"):set_weights { v1 = 50, v2 = 50, v3 = 0 }]])
    assert.equal(0, r.status, r.stderr)
  end)

  describe("bad input changes nothing", function()
    -- the observable state: TRAFFIC.yaml bytes, gateway weights, processes
    local function snapshot()
      local st = env:state_json()
      local pids = {}
      for v, info in pairs(st.versions) do pids[v] = info.pid end
      return { traffic = fs.read(env.traffic_file), weights = env:gateway_weights(), pids = pids }
    end

    local function assert_unchanged(before)
      local after = snapshot()
      assert.equal(before.traffic, after.traffic)
      assert.same(before.weights, after.weights)
      assert.same(before.pids, after.pids)
      for _, pid in pairs(after.pids) do assert.is_true(proc.alive(pid)) end
    end

    local traffic_cases = {
      { "malformed YAML", "versions:\n  - name: v1\n    weight: [50\n", "TRAFFIC%.yaml:%d+:%d+: " },
      { "a negative weight", "versions:\n  - name: v1\n    weight: -5\n  - name: v2\n    weight: 50\n",
        "TRAFFIC%.yaml:3:13: versions%[1%]%.weight: must be >= 0 %(got %-5%)" },
      { "a float weight", "versions:\n  - name: v1\n    weight: 12.5\n", "TRAFFIC%.yaml:3:13: versions%[1%]%.weight: must be an integer, not the number 12%.5" },
      { "a string weight", "versions:\n  - name: v1\n    weight: \"50\"\n", "versions%[1%]%.weight: must be an integer, not the string \"50\"" },
      { "all weights zero", "versions:\n  - name: v1\n    weight: 0\n  - name: v2\n    weight: 0\n", "all weights are 0" },
      { "an unknown version with weight", "versions:\n  - name: v1\n    weight: 50\n  - name: v7\n    weight: 10\n",
        "version v7 has weight 10 but is not deployed" },
      { "a name with ;", "versions:\n  - name: \"v1;rm -rf /\"\n    weight: 50\n", "versions%[1%]%.name: \"v1;rm %-rf /\" is not a DNS%-1123 label" },
      { "a name with ../", "versions:\n  - name: ../v1\n    weight: 50\n", "versions%[1%]%.name: \"%.%./v1\" is not a DNS%-1123 label" },
      { "a duplicate version", "versions:\n  - name: v1\n    weight: 50\n  - name: v1\n    weight: 10\n",
        "TRAFFIC%.yaml:4:%d+: versions%[2%]%.name: version v1 is listed twice" },
      { "an unknown field", "versions:\n  - name: v1\n    wieght: 50\n", "versions%[1%]%.wieght: unknown field" },
    }
    for _, case in ipairs(traffic_cases) do
      it("refuses TRAFFIC.yaml with " .. case[1] .. " (exit 2)", function()
        local good = fs.read(env.traffic_file)
        local before = snapshot()
        assert(fs.write_atomic(env.traffic_file, case[2]))
        before.traffic = case[2]
        local r = env:ops("update_traffic", SVC)
        local after_text = fs.read(env.traffic_file)
        assert(fs.write_atomic(env.traffic_file, good))
        assert.equal(2, r.status, r.stdout .. r.stderr)
        assert.matches(case[3], r.stderr)
        assert.equal(case[2], after_text)
        before.traffic = good
        assert_unchanged(before)
      end)
    end

    local lua_cases = {
      { "negative", "{ v1 = -1, v2 = 50 }", "weight of v1 must be between 0 and" },
      { "float", "{ v1 = 0.5, v2 = 50 }", "weight of v1 must be an integer >= 0 %(got 0%.5%)" },
      { "string", "{ v1 = '50', v2 = 50 }", "weight of v1 must be an integer >= 0 %(got \"50\"%)" },
      { "all zero", "{ v1 = 0, v2 = 0, v3 = 0 }", "all weights are 0" },
      { "unknown version", "{ v1 = 50, v8 = 50 }", "version v8 has weight 50 but is not deployed" },
      { "bad name", "{ ['v1;x'] = 50 }", "version name \"v1;x\" is not a DNS%-1123 label" },
    }
    for _, case in ipairs(lua_cases) do
      it("refuses set_weights with a " .. case[1] .. " weight (exit 2)", function()
        local before = snapshot()
        local r = env:lua("require('rollout').service('microservice-1'):set_weights " .. case[2])
        assert.equal(2, r.status, r.stderr)
        assert.matches(case[3], r.stderr)
        assert_unchanged(before)
      end)
    end

    it("refuses weight for a version that is not healthy", function()
      -- v3 answers 503 on /healthz (its fault knob), so it may not get traffic
      local port = env:state_json().versions.v3.port
      local http = require "rollout.http"
      assert.equal(200, http.request { url = string.format("http://127.0.0.1:%d/admin/faults?fail_health=1", port), method = "POST" }.status)
      finally(function()
        http.request { url = string.format("http://127.0.0.1:%d/admin/faults?fail_health=0", port), method = "POST" }
      end)
      local before = snapshot()
      local r = env:lua("require('rollout').service('microservice-1'):set_weights { v1 = 50, v2 = 50, v3 = 10 }")
      assert.equal(2, r.status, r.stderr)
      assert.matches("version v3 has weight 10 but is not healthy %(/healthz answered 503%)", r.stderr)
      assert_unchanged(before)
    end)

    it("refuses a service name that could escape its directory", function()
      local r = env:ops("list", "../etc")
      assert.equal(2, r.status)
      assert.matches("service name \"%.%./etc\" is not a DNS%-1123 label", r.stderr)
    end)

    it("refuses an unknown command and a missing argument with usage (exit 2)", function()
      local r = env:ops("frobnicate", SVC)
      assert.equal(2, r.status)
      assert.matches("unknown command \"frobnicate\"", r.stderr)
      r = env:ops("start", SVC)
      assert.equal(2, r.status)
      assert.matches("start needs a VERSION", r.stderr)
    end)
  end)

  describe("faults", function()
    it("restores a gateway killed with SIGKILL, with the right weights, on the next command", function()
      local before = env:gateway_weights()
      local old = env:gateway_pid()
      assert(proc.kill(old, "KILL"))
      assert(wait(function() return not proc.alive(old) end, 5))
      local r = env:ops("list", SVC)
      assert.equal(0, r.status, r.stderr)
      assert.matches("restarted it with the last applied weights", r.stderr)
      local new = env:gateway_pid()
      assert.is_true(new ~= old and proc.alive(new))
      assert.same(before, env:gateway_weights())
      local t = env:ops("test_traffic", SVC)
      assert.equal(0, t.status, t.stdout)
    end)

    it("reports a killed version; its header traffic gets 503, default traffic is unaffected", function()
      -- a v5 to kill, so that the others stay for later specs
      assert.equal(0, env:ops("start", SVC, "v5").status)
      local pid = env:state_json().versions.v5.pid
      assert(proc.kill(pid, "KILL"))
      local t0 = time.now()
      local seen_down = wait(function()
        local p = env:ops("ping", SVC, "v5")
        return p.status == 1 and p.stdout:find("v5 down: process " .. pid .. " is not running", 1, true)
      end, 3)
      assert.truthy(seen_down, "ping did not report v5 down within 3 s")
      assert.is_true(time.now() - t0 < fixture.timeout(3))
      local r = env:lua(string.format([[
        local probe = require "rollout.probe"
        local h = assert(probe.run { url = %q, n = 300, headers = { ["x-version"] = "v5" } })
        local d = assert(probe.run { url = %q, n = 3000 })
        print(h.served, h.errors.http_5xx, d.error_total, d.counts.v5 or 0)]], env:endpoint(), env:endpoint()))
      assert.equal("0\t300\t0\t0\n", r.stdout)
      -- the dead version cannot be given traffic
      local w = env:lua("require('rollout').service('microservice-1'):set_weights { v1 = 50, v2 = 50, v5 = 5 }")
      assert.equal(2, w.status)
      assert.matches("v5 has weight 5 but its process %(pid " .. pid .. "%) is not running", w.stderr)
      assert.equal(0, env:ops("delete_version", SVC, "v5").status)
    end)

    it("serializes two concurrent set_weights: never interleaved", function()
      -- each holds the service lock; the second either waits (--wait) or is refused
      local slow = fs.join(env.dir, "slow.lua")
      assert(fs.write_atomic(slow, [[
        local rollout, time = require "rollout", require "rollout.time"
        local svc = rollout.service("microservice-1")
        local t = svc.target
        t:locked(function()
          io.stderr:write("holding\n")
          time.sleep(1.0)
        end)
      ]]))
      local log = fs.join(env.dir, "slow.log")
      local pid = assert(proc.spawn { argv = { local_env.bin, slow }, log = log, env = env.env, cwd = local_env.root })
      env:track(pid)
      assert(wait(function() return (fs.read(log) or ""):find("holding") end, 5))
      local before = env:gateway_weights()
      local r = env:lua("require('rollout').service('microservice-1'):set_weights { v1 = 30, v2 = 70, v3 = 0 }")
      assert.equal(1, r.status)
      assert.matches("another rollout is working on microservice%-1 %(pid " .. pid .. "%)", r.stderr)
      assert.same(before, env:gateway_weights())
      -- with --wait semantics the second one goes after the first
      local w = env:lua("require('rollout').service('microservice-1', { wait = 10 }):set_weights { v1 = 30, v2 = 70, v3 = 0 }")
      assert.equal(0, w.status, w.stderr)
      assert.is_false(proc.alive(pid))
      assert.same({ v1 = 30, v2 = 70, v3 = 0 }, env:gateway_weights())
      assert.equal(0, env:lua("require('rollout').service('microservice-1'):set_weights { v1 = 50, v2 = 50, v3 = 0 }").status)
    end)

    it("^C during set_weights leaves the previous or the new weights, never a mix", function()
      local old_traffic = fs.read(env.traffic_file)
      local old = env:gateway_weights()
      local outcomes = {}
      for i = 1, 6 do
        local new = { v1 = 10 * i, v2 = 100 - 10 * i, v3 = 0 }
        local log = fs.join(env.dir, "int" .. i .. ".log")
        local pid = assert(proc.spawn {
          argv = { local_env.bin, "-e", string.format(
            "io.stderr:write('go\\n') require('rollout').service('microservice-1'):set_weights { v1 = %d, v2 = %d, v3 = 0 }",
            new.v1, new.v2) },
          log = log, env = env.env, cwd = local_env.root })
        env:track(pid)
        assert(wait(function() return (fs.read(log) or ""):find("go") end, 5))
        time.sleep(0.002 * i * i) -- interrupt at different moments
        proc.kill(pid, "INT")
        assert(wait(function() return not proc.alive(pid) end, 10))
        local now = env:gateway_weights()
        local text = fs.read(env.traffic_file)
        local st = env:state_json()
        local applied = { v1 = st.versions.v1.weight, v2 = st.versions.v2.weight, v3 = st.versions.v3.weight }
        if now.v1 == new.v1 then
          outcomes[#outcomes + 1] = "new"
          assert.same(new, now)
          assert.same(new, applied)
          assert.matches("name: v1\n  weight: " .. new.v1 .. "\n", text)
        else
          outcomes[#outcomes + 1] = "old"
          assert.same(old, now)
          assert.same(old, applied)
          assert.equal(old_traffic, text)
        end
        old, old_traffic = now, text
      end
      -- both outcomes are allowed; a mix fails above
      assert.equal(6, #outcomes)
      assert.equal(0, env:lua("require('rollout').service('microservice-1'):set_weights { v1 = 50, v2 = 50, v3 = 0 }").status)
    end)
  end)

  describe("delete_service", function()
    it("leaves no process, port or state file behind", function()
      local st = env:state_json()
      local pids, ports = {}, {}
      for _, info in pairs(st.versions) do
        pids[#pids + 1] = info.pid
        ports[#ports + 1] = info.port
      end
      local gw = env:gateway_pid()
      pids[#pids + 1] = gw
      ports[#ports + 1] = st.gateway_port
      local r = env:ops("delete_service", SVC)
      assert.equal(0, r.status, r.stderr)
      for _, pid in ipairs(pids) do assert.is_false(proc.alive(pid), "pid " .. pid) end
      for _, port in ipairs(ports) do assert.is_false(local_env.port_open(port), "port " .. port) end
      assert.is_false(fs.exists(fs.join(env.state, "services", SVC)))
      assert.same({}, fs.list(fs.join(env.state, "gateway")) and
        (function()
          local left = {}
          for _, f in ipairs(fs.list(fs.join(env.state, "gateway"))) do
            if f ~= "lock" and f ~= "haproxy.log" then left[#left + 1] = f end
          end
          return left
        end)())
      local l = env:ops("list", SVC, "--json")
      assert.equal(0, #json.decode(l.stdout).versions)
    end)
  end)
end)
