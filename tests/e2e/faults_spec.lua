-- Issue 14 on the local target: never a lie between TRAFFIC.yaml, the
-- state and the gateway. Each fault is made for real (bad files, ^C at
-- many moments, kill -9 mid-change, an unwritable or hostile state
-- directory, a lost pid file, a second HAProxy master, a taken port, killed
-- versions), and afterwards the spec asserts more than an exit code: that
-- TRAFFIC.yaml, state.json and the gateway (read through its admin socket)
-- agree, that one HAProxy master serves, that an independent client
-- (rollout.probe in a process of its own) counts that split, and that
-- nothing is left behind. Everything started is stopped by PID.
local proc = require "rollout.proc"
local fs = require "rollout.fs"
local json = require "rollout.json"
local time = require "rollout.time"
local sys = require "rollout.sys"
local local_env = require "tests.helpers.local_env"

local SVC = local_env.service
local wait = local_env.wait
local text_of = local_env.text_of

local function traffic_yaml(w)
  local names = {}
  for v in pairs(w) do names[#names + 1] = v end
  table.sort(names)
  local out = { "versions:" }
  for _, v in ipairs(names) do out[#out + 1] = string.format("- name: %s\n  weight: %d", v, w[v]) end
  return table.concat(out, "\n") .. "\n"
end

local function set_weights_code(w)
  local parts = {}
  for v, x in pairs(w) do parts[#parts + 1] = string.format("%s = %d", v, x) end
  return "require('rollout').service('microservice-1'):set_weights { " .. table.concat(parts, ", ") .. " }"
end

-- A world with v1 and v2 deployed at `w` (default 50/50).
local function world(w)
  local env = local_env.new()
  for _, v in ipairs { "v1", "v2" } do
    local r = env:ops("start", SVC, v)
    assert(r.status == 0, r.stdout .. r.stderr)
  end
  local r = env:lua(set_weights_code(w or { v1 = 50, v2 = 50 }))
  assert(r.status == 0, r.stderr)
  return env
end

-- What must not change when input is refused: TRAFFIC.yaml's and state.json's
-- bytes, the gateway's weights, the processes of the world.
local function snapshot(env)
  return { traffic = fs.read(env.traffic_file), state = fs.read(fs.join(env.state, "services", SVC, "state.json")),
           gateway = text_of(env:gateway_weights()), processes = table.concat(env:processes(), " ") }
end

local function assert_unchanged(env, before)
  local after = snapshot(env)
  assert.equal(before.traffic, after.traffic)
  assert.equal(before.state, after.state)
  assert.equal(before.gateway, after.gateway)
  assert.equal(before.processes, after.processes)
end

-- The unprivileged argv prefix: as root, directory permissions do not
-- apply, so the command runs without CAP_DAC_OVERRIDE (and the read one).
local function unprivileged(argv)
  if sys.euid() ~= 0 then return argv end
  local out = { "setpriv", "--bounding-set=-dac_override,-dac_read_search", local_env.bin }
  for i = 2, #argv do out[#out + 1] = argv[i] end
  return out
end

local function run_argv(env, argv, opts)
  local e = {}
  for k, v in pairs(env.env) do e[k] = v end
  for k, v in pairs(opts and opts.env or {}) do e[k] = v end
  local res = assert(proc.run { argv = argv, env = e, cwd = local_env.root, timeout = 120 })
  return res
end

describe("bad input changes nothing (14.1)", function()
  local env, service_yaml
  setup(function()
    env = world()
    service_yaml = assert(fs.read(fs.join(env.deployments, SVC, "service.yaml")))
  end)
  teardown(function() env:cleanup() end)

  local function with_service_yaml(text, fn)
    local path = fs.join(env.deployments, SVC, "service.yaml")
    assert(fs.write_atomic(path, text))
    local ok, err = pcall(fn)
    assert(fs.write_atomic(path, service_yaml))
    if not ok then error(err, 0) end
  end

  -- service.yaml with the first `old` (plain text) replaced by `new`
  local function replaced(old, new)
    local a, b = service_yaml:find(old, 1, true)
    assert(a, old)
    return service_yaml:sub(1, a - 1) .. new .. service_yaml:sub(b + 1)
  end

  local numbers = {
    { "start_timeout: 10 ", "start_timeout: .nan", "local%.start_timeout: must be a finite number, not NaN" },
    { "start_timeout: 10 ", "start_timeout: .inf", "local%.start_timeout: must be a finite number, not infinity" },
    { "start_timeout: 10 ", "start_timeout: -.inf", "local%.start_timeout: must be a finite number, not %-infinity" },
    { "gateway_port: 0 ", "gateway_port: .nan", "local%.gateway_port: must be an integer, not NaN" },
    { "gateway_port: 0 ", "gateway_port: 1e400", "local%.gateway_port: must be an integer, not infinity" },
    { "port: 8080 ", "port: .inf", "port: must be an integer, not infinity" },
    { "wait_timeout: 300", "wait_timeout: .nan", "kubernetes%.wait_timeout: must be a finite number, not NaN" },
  }
  for _, case in ipairs(numbers) do
    it("refuses " .. case[2] .. " in service.yaml (exit 2) for every command", function()
      local before = snapshot(env)
      with_service_yaml(replaced(case[1], case[2]), function()
        for _, argv in ipairs { { "update_traffic", SVC }, { "start", SVC, "v3" }, { "list", SVC }, { "repair", SVC } } do
          local r = env:ops(table.unpack(argv))
          assert.equal(2, r.status, argv[1] .. ": " .. r.stdout .. r.stderr)
          assert.matches("service%.yaml:%d+:%d+: " .. case[3], r.stderr)
          assert.is_nil(r.stderr:find("traceback", 1, true))
        end
      end)
      assert_unchanged(env, before)
    end)
  end

  it("refuses an empty service.yaml, saying what it needs (exit 2, no traceback)", function()
    local before = snapshot(env)
    for _, text in ipairs { "", "# nothing here\n", "---\n" } do
      with_service_yaml(text, function()
        local r = env:ops("update_traffic", SVC)
        assert.equal(2, r.status, r.stderr)
        assert.matches("service%.yaml: is empty: a service needs at least \"name: microservice%-1\"", r.stderr)
        assert.is_nil(r.stderr:find("attempt to index", 1, true))
      end)
    end
    assert_unchanged(env, before)
  end)

  it("refuses NaN and infinite weights in TRAFFIC.yaml (exit 2)", function()
    local good = fs.read(env.traffic_file)
    local before = snapshot(env)
    for _, w in ipairs { ".nan", ".inf", "1e400" } do
      assert(fs.write_atomic(env.traffic_file, "versions:\n- name: v1\n  weight: " .. w .. "\n- name: v2\n  weight: 50\n"))
      local r = env:ops("update_traffic", SVC)
      assert.equal(2, r.status, r.stderr)
      assert.matches("TRAFFIC%.yaml:3:11: versions%[1%]%.weight: must be an integer, not", r.stderr)
    end
    assert(fs.write_atomic(env.traffic_file, good))
    local r = env:lua("require('rollout').service('microservice-1'):set_weights { v1 = 0/0, v2 = 50 }")
    assert.equal(2, r.status, r.stderr)
    assert.matches("weight of v1 must be an integer >= 0 %(got NaN%)", r.stderr)
    assert_unchanged(env, before)
  end)

  it("refuses a TRAFFIC.yaml that is a FIFO, a device or a directory at once (exit 2)", function()
    local good = fs.read(env.traffic_file)
    local before = snapshot(env)
    finally(function()
      if fs.stat(env.traffic_file) and fs.stat(env.traffic_file).type ~= "file" then
        if fs.stat(env.traffic_file).type == "directory" then fs.remove_tree(env.traffic_file)
        else fs.remove(env.traffic_file) end
      end
      assert(fs.write_atomic(env.traffic_file, good))
    end)
    local kinds = {
      { "a FIFO", function() assert.equal(0, proc.run { argv = { "mkfifo", env.traffic_file } }.status) end },
      { "a character device", function()
        assert.equal(0, proc.run { argv = { "ln", "-s", "/dev/zero", env.traffic_file } }.status) end },
      { "a directory", function() assert(fs.mkdir_p(env.traffic_file)) end, "Is a directory" },
    }
    for _, k in ipairs(kinds) do
      fs.remove(env.traffic_file)
      k[2]()
      for _, argv in ipairs { { "update_traffic", SVC }, { "repair", SVC }, { "test_traffic", SVC } } do
        -- the runner's timeout is far above what a refusal takes: a hang shows as a timeout, not exit 2
        local r = env:ops(table.unpack(argv))
        assert.equal(2, r.status, k[1] .. " " .. argv[1] .. ": " .. r.stdout .. r.stderr)
        assert.matches("TRAFFIC%.yaml: " .. (k[3] or ("not a regular file %(" .. k[1] .. "%)")), r.stderr)
      end
      local st = fs.stat(env.traffic_file)
      if st.type == "directory" then fs.remove_tree(env.traffic_file) else fs.remove(env.traffic_file) end
    end
    assert(fs.write_atomic(env.traffic_file, good))
    assert_unchanged(env, before)
    env:assert_agree({ v1 = 50, v2 = 50 })
  end)

  it("refuses a service.yaml that is a FIFO (exit 2, no hang)", function()
    local before = snapshot(env)
    local path = fs.join(env.deployments, SVC, "service.yaml")
    fs.remove(path)
    finally(function()
      if fs.stat(path) then fs.remove(path) end
      assert(fs.write_atomic(path, service_yaml))
    end)
    assert.equal(0, proc.run { argv = { "mkfifo", path } }.status)
    local r = env:ops("list", SVC)
    assert.equal(2, r.status, r.stderr)
    assert.matches("service%.yaml: not a regular file %(a FIFO%)", r.stderr)
    fs.remove(path)
    assert(fs.write_atomic(path, service_yaml))
    assert_unchanged(env, before)
  end)
end)

describe("^C in the middle of a weight change (14.2)", function()
  local env
  setup(function() env = world() end)
  teardown(function() env:cleanup() end)

  -- How long one whole set_weights takes here, start to exit (the moments
  -- probed cover it, whatever the machine's speed).
  local function duration(argv)
    local t0 = time.now()
    local r = run_argv(env, argv)
    assert(r.status == 0, r.stdout .. r.stderr)
    return time.now() - t0
  end

  -- Starts argv, interrupts it `at` seconds after the start, waits for its end.
  local function interrupt_at(argv, at, log)
    local t0 = time.now()
    local pid = assert(proc.spawn { argv = argv, log = log, env = env.env, cwd = local_env.root })
    env:track(pid)
    local left = at - (time.now() - t0)
    if left > 0 then time.sleep(left) end
    proc.kill(pid, "INT")
    assert(wait(function() return not proc.alive(pid) end, 60), "the interrupted rollout did not end")
  end

  local function moments(total)
    local out, last = {}, math.max(0.08, total * 1.25)
    for i = 1, 30 do out[i] = 0.001 + (i - 1) * (last - 0.001) / 29 end
    return out
  end

  it("set_weights: at 30 moments from 1 ms to past its end, TRAFFIC.yaml, state and gateway agree: old or new",
    function()
    local total = duration { local_env.bin, "-e", set_weights_code { v1 = 40, v2 = 60 } }
    local old = { v1 = 40, v2 = 60 }
    local outcomes = { old = 0, new = 0 }
    for i, at in ipairs(moments(total)) do
      local new = { v1 = 10 + i, v2 = 90 - i }
      local log = fs.join(env.dir, "sw" .. i .. ".log")
      interrupt_at({ local_env.bin, "-e", set_weights_code(new) }, at, log)
      local v = env:assert_agree(nil, { count = i % 10 == 0 })
      local now = text_of(v.applied)
      assert(now == text_of(old) or now == text_of(new),
        string.format("at %.1f ms: %s is neither the old %s nor the new %s", at * 1000, now, text_of(old), text_of(new)))
      if now == text_of(new) then outcomes.new = outcomes.new + 1; old = new else outcomes.old = outcomes.old + 1 end
    end
    -- the moments span the change: some came before it, some after
    assert.is_true(outcomes.old > 0 and outcomes.new > 0, json.encode(outcomes))
  end)

  it("update_traffic: the state and the gateway always agree; an edit not yet applied is reported and repaired",
    function()
    local total = duration { local_env.bin, "scripts/ops.lua", "update_traffic", SVC }
    local outcomes = { applied = 0, pending = 0 }
    for i, at in ipairs(moments(total)) do
      local new = { v1 = 60 + i, v2 = 40 - i }
      assert(fs.write_atomic(env.traffic_file, traffic_yaml(new)))
      interrupt_at({ local_env.bin, "scripts/ops.lua", "update_traffic", SVC }, at, fs.join(env.dir, "ut" .. i .. ".log"))
      local v = env:views()
      -- never split between what rollout applied and what HAProxy holds
      assert.equal(text_of(v.applied), text_of(v.gateway))
      assert.is_nil(v.state.change)
      assert.equal(1, #env:masters())
      if text_of(v.applied) == text_of(new) then
        outcomes.applied = outcomes.applied + 1
      else
        -- interrupted before it applied the file you edited: every command says so, repair applies it
        outcomes.pending = outcomes.pending + 1
        local p = env:ops("ping", SVC)
        assert.equal(0, p.status, p.stdout .. p.stderr)
        assert.matches("the gateway is not at TRAFFIC%.yaml's weights %(TRAFFIC%.yaml: " .. text_of(new), p.stdout)
        assert.matches("rollout scripts/ops%.lua update_traffic microservice%-1 %(or repair%)", p.stdout)
        local r = env:ops("repair", SVC)
        assert.equal(0, r.status, r.stdout .. r.stderr)
      end
      env:assert_agree(new, { count = i % 10 == 0 })
    end
    assert.is_true(outcomes.applied > 0, json.encode(outcomes))
  end)

  it("a second and third ^C during the change are deferred too: the change ends whole", function()
    local marker = fs.join(env.dir, "inside")
    local code = string.format([[
      local svc = require("rollout").service("microservice-1")
      local g, fs, time = svc.target.gateway, require "rollout.fs", require "rollout.time"
      local set = g.set_weights
      g.set_weights = function(self, ...)
        fs.write_atomic(%q, "x")
        time.sleep(0.6) -- inside the change: ^C is deferred
        return set(self, ...)
      end
      svc:set_weights { v1 = 77, v2 = 23 }]], marker)
    local log = fs.join(env.dir, "triple.log")
    local pid = assert(proc.spawn { argv = { local_env.bin, "-e", code }, log = log, env = env.env,
                                    cwd = local_env.root })
    env:track(pid)
    assert(wait(function() return fs.exists(marker) end, 30), fs.read(log))
    for _ = 1, 3 do proc.kill(pid, "INT"); time.sleep(0.05) end
    assert(wait(function() return not proc.alive(pid) end, 30))
    assert.matches("interrupted", fs.read(log))
    env:assert_agree({ v1 = 77, v2 = 23 })
  end)

  it("kill -9 after the gateway took the new weights, before the state did: the next command rolls back", function()
    local before = env:views()
    local code = [[
      local svc = require("rollout").service("microservice-1")
      local proc = require "rollout.proc"
      local g = svc.target.gateway
      local set = g.set_weights
      g.set_weights = function(self, ...)
        local r = set(self, ...)
        proc.kill(proc.pid(), "KILL") -- the gateway has them; the state does not yet
        return r
      end
      svc:set_weights { v1 = 5, v2 = 95 }]]
    local r = env:lua(code)
    assert.equal(9, r.signal, r.stderr) -- killed by SIGKILL
    local mid = env:views()
    assert.equal("v1=5 v2=95", text_of(mid.gateway))
    assert.equal("v1=5 v2=95", text_of(mid.file))
    assert.is_table(mid.state.change)
    local l = env:ops("list", SVC)
    assert.equal(0, l.status, l.stderr)
    assert.matches("a weight change %(" .. text_of(before.applied) .. " %-> v1=5 v2=95, by pid %d+%) was cut short " ..
      "before it ended: rolled back to " .. text_of(before.applied) .. " %(TRAFFIC%.yaml put back, the gateway put back%)",
      l.stderr)
    assert.equal(before.text, fs.read(env.traffic_file))
    env:assert_agree(before.applied)
  end)
end)
