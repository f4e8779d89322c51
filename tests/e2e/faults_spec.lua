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

describe("a state directory that cannot be written (14.3)", function()
  local env
  setup(function() env = world() end)
  teardown(function()
    fs.mkdir_p(fs.join(env.state, "services", SVC))
    proc.run { argv = { "chmod", "700", fs.join(env.state, "services", SVC) } }
    env:cleanup()
  end)

  it("update_traffic and set_weights change nothing (not the gateway) and say why; repair applies the file after",
    function()
    local dir = fs.join(env.state, "services", SVC)
    assert(fs.write_atomic(env.traffic_file, traffic_yaml { v1 = 20, v2 = 80 }))
    local before = snapshot(env)
    assert.equal(0, proc.run { argv = { "chmod", "500", dir } }.status)
    finally(function() proc.run { argv = { "chmod", "700", dir } } end)
    local r = run_argv(env, unprivileged { local_env.bin, "scripts/ops.lua", "update_traffic", SVC })
    assert.equal(1, r.status, r.stdout .. r.stderr)
    assert.matches("cannot record the weight change in the state, so nothing was changed: cannot write state " ..
      ".*state%.json: Permission denied", r.stderr)
    -- the invariant check names the difference and the command that repairs it
    assert.matches("the gateway is not at TRAFFIC%.yaml's weights %(TRAFFIC%.yaml: v1=20 v2=80; applied: v1=50 v2=50%)",
      r.stderr)
    assert_unchanged(env, before)
    -- set_weights (which writes TRAFFIC.yaml) leaves the file as it was too
    local s = run_argv(env, unprivileged { local_env.bin, "-e", set_weights_code { v1 = 90, v2 = 10 } })
    assert.equal(1, s.status, s.stderr)
    assert.matches("nothing was changed", s.stderr)
    assert_unchanged(env, before)
    assert.equal(0, proc.run { argv = { "chmod", "700", dir } }.status)
    local p = env:ops("repair", SVC)
    assert.equal(0, p.status, p.stdout .. p.stderr)
    assert.matches("TRAFFIC%.yaml, the state and the gateway agree: v1=20 v2=80", p.stdout)
    env:assert_agree({ v1 = 20, v2 = 80 })
  end)
end)

describe("haproxy.pid lost (14.4)", function()
  local env
  setup(function() env = world() end)
  teardown(function() env:cleanup() end)

  local pidfile, master_sock
  before_each(function()
    pidfile = fs.join(env.state, "gateway", "haproxy.pid")
    master_sock = fs.join(env.state, "gateway", "master.sock")
  end)

  it("deleted: the running master is found through its master socket, never a second one started", function()
    local masters = env:masters()
    assert.equal(1, #masters)
    fs.remove(pidfile)
    assert(fs.write_atomic(env.traffic_file, traffic_yaml { v1 = 30, v2 = 70 }))
    local r = env:ops("update_traffic", SVC)
    assert.equal(0, r.status, r.stdout .. r.stderr)
    assert.matches("the gateway's pid file was missing: found its master %(pid " .. masters[1] ..
      "%) through the master socket and wrote it back", r.stderr)
    assert.same(masters, env:masters())
    assert.equal(masters[1], env:gateway_pid())
    env:assert_agree({ v1 = 30, v2 = 70 })
  end)

  it("corrupt, or naming another process: the master is found, the file written back", function()
    local masters = env:masters()
    for _, text in ipairs { "garbage\n", "1\n", tostring(proc.pid()) .. "\n", "" } do
      assert(fs.write_atomic(pidfile, text))
      local r = env:ops("ping", SVC)
      assert.equal(0, r.status, r.stdout .. r.stderr)
      assert.matches("found its master %(pid " .. masters[1] .. "%)", r.stderr)
      assert.same(masters, env:masters())
      assert.equal(masters[1], env:gateway_pid())
    end
    assert.is_true(proc.alive(proc.pid()))
    env:assert_agree({ v1 = 30, v2 = 70 }, { count = false })
  end)

  it("deleted with the master socket: the master is found in /proc; start of a new version reloads it", function()
    local masters = env:masters()
    fs.remove(pidfile)
    fs.remove(master_sock)
    local r = env:ops("start", SVC, "v3")
    assert.equal(0, r.status, r.stdout .. r.stderr)
    assert.matches("found its master %(pid " .. masters[1] .. "%) through its command line in /proc", r.stderr)
    assert.same(masters, env:masters())
    assert.equal(0, env:ops("delete_version", SVC, "v3").status)
    env:assert_agree({ v1 = 30, v2 = 70 })
  end)

  it("a second master started beside the first (what a lost pid file used to cause) is reported and repaired",
    function()
    local first = env:masters()
    -- the old behaviour, by hand: a second master with the same config, its own pid file and master socket
    local other_pid = fs.join(env.dir, "other.pid")
    local r = proc.run { argv = { "haproxy", "-W", "-D", "-f", fs.join(env.state, "gateway", "haproxy.cfg"),
                                  "-S", fs.join(env.dir, "other.sock") .. ",mode,600", "-p", other_pid },
                         cwd = env.dir, timeout = 20 }
    assert.equal(0, r.status, r.stderr)
    local second = assert(math.tointeger(tonumber(fs.read(other_pid):match("%d+"))))
    env:track(second)
    assert(wait(function() return #env:masters() == 2 end, 10))
    local p = env:ops("ping", SVC, "--json")
    assert.equal(0, p.status, p.stderr)
    local doc = json.decode(p.stdout)
    assert.matches("^2 HAProxy masters serve this state directory %(pids %d+, %d+%): fresh connections are split",
      doc.drift.differences[1])
    assert.equal("repair with: rollout scripts/ops.lua repair microservice-1", doc.drift.repair)
    local l = env:ops("list", SVC)
    assert.matches("rollout: warning: TRAFFIC%.yaml, the state and the gateway disagree:\n  %- 2 HAProxy masters", l.stderr)
    local fix = env:ops("repair", SVC)
    assert.equal(0, fix.status, fix.stdout .. fix.stderr)
    assert.matches("stopped 1 other HAProxy master of this state directory", fix.stderr)
    local left = env:masters()
    assert.equal(1, #left)
    assert.is_true(left[1] == first[1] or left[1] == second)
    env:assert_agree({ v1 = 30, v2 = 70 })
    assert.equal(json.null, json.decode(env:ops("ping", SVC, "--json").stdout).drift)
  end)

  it("a gateway killed with its workers is started again by repair, alone", function()
    local m = env:masters()[1]
    assert(proc.kill(m, "KILL"))
    assert(wait(function() return #env:masters() == 0 end, 10))
    local p = env:ops("repair", SVC)
    assert.equal(0, p.status, p.stdout .. p.stderr)
    assert.matches("found: the gateway is not running", p.stdout)
    env:assert_agree({ v1 = 30, v2 = 70 })
  end)
end)

describe("a gateway port taken by another program (14.5)", function()
  local env, squatter, port
  setup(function()
    env = local_env.new()
    port = assert(require("rollout.http").free_port())
    -- another program on the port: a demo service that is not rollout's, run outside the world
    squatter = assert(proc.spawn { argv = { fs.join(local_env.root, "services", SVC, SVC), "--port", tostring(port),
                                            "--version", "squatter", "--service", "other" }, cwd = "/" })
    env:track(squatter)
    assert(wait(function() return local_env.port_open(port) end, 10))
  end)
  teardown(function() env:cleanup() end)

  local function nothing_left()
    assert.is_nil(fs.stat(env.state), "the state directory was left behind")
    assert.same({}, env:processes())
    assert.same({}, env:masters())
  end

  it("start fails naming the program, and a failed first deploy leaves nothing", function()
    local r = env:rollout({ "scripts/ops.lua", "start", SVC, "v1" }, { env = { ROLLOUT_GATEWAY_PORT = tostring(port) } })
    assert.equal(1, r.status, r.stdout .. r.stderr)
    assert.matches(string.format("the gateway port %d of microservice%%-1 %%(ROLLOUT_GATEWAY_PORT%%) is taken by pid %d " ..
      "%%(microservice%%-1%%)", port, squatter), r.stderr)
    nothing_left()
    assert.is_true(proc.alive(squatter))
  end)

  it("a bad ROLLOUT_GATEWAY_PORT is refused (exit 2) and leaves nothing", function()
    for _, bad in ipairs { "abc", "0", "70000", "1e3", "nan" } do
      local r = env:rollout({ "scripts/ops.lua", "start", SVC, "v1" }, { env = { ROLLOUT_GATEWAY_PORT = bad } })
      assert.equal(2, r.status, bad .. ": " .. r.stderr)
      assert.matches("ROLLOUT_GATEWAY_PORT must be a port number between 1 and 65535", r.stderr)
      nothing_left()
    end
  end)

  it("a first deploy that fails after its version started (no HAProxy on PATH) leaves nothing either", function()
    local r = env:rollout({ "scripts/ops.lua", "start", SVC, "v1" }, { env = { PATH = "/usr/bin:/bin" } })
    assert.equal(1, r.status, r.stdout .. r.stderr)
    assert.matches("HAProxy is not installed", r.stderr)
    nothing_left()
  end)

  it("then deploys on a free port into a private state directory (0700)", function()
    local r = env:ops("start", SVC, "v1")
    assert.equal(0, r.status, r.stdout .. r.stderr)
    assert.equal(0, env:lua("require('rollout').service('microservice-1'):set_weights { v1 = 100 }").status)
    for _, d in ipairs { env.state, fs.join(env.state, "services"), fs.join(env.state, "services", SVC),
                         fs.join(env.state, "services", SVC, "logs"), fs.join(env.state, "gateway") } do
      assert.equal(tonumber("700", 8), fs.stat(d).mode, d)
    end
    env:assert_agree({ v1 = 100 })
    assert.is_true(proc.alive(squatter))
  end)
end)

describe("a hostile state directory (14.6)", function()
  local env, victim
  setup(function()
    env = world()
    victim = fs.join(env.dir, "victim")
    assert(fs.write_atomic(victim, "precious\n"))
  end)
  teardown(function() env:cleanup() end)

  local function link(target, at) assert.equal(0, proc.run { argv = { "ln", "-s", target, at } }.status) end

  it("a symbolic link planted where a version's log is written: refused (exit 2), its target untouched", function()
    local before = snapshot(env)
    local at = fs.join(env.state, "services", SVC, "logs", "v3.log")
    link(victim, at)
    finally(function() fs.remove(at) end)
    local r = env:ops("start", SVC, "v3")
    assert.equal(2, r.status, r.stdout .. r.stderr)
    assert.matches("state directory .*: services/microservice%-1/logs/v3%.log is a symbolic link %(to " ..
      victim:gsub("%p", "%%%0") .. "%): rollout does not follow links there; remove it", r.stderr)
    assert.equal("precious\n", fs.read(victim))
    assert_unchanged(env, before)
  end)

  it("HAProxy's own files: a link at its pid file is refused before HAProxy runs; it is given no -p", function()
    local pidfile = fs.join(env.state, "gateway", "haproxy.pid")
    local before = snapshot(env)
    fs.remove(pidfile)
    link(victim, pidfile)
    local r = env:ops("update_traffic", SVC)
    assert.equal(2, r.status, r.stderr)
    assert.matches("gateway/haproxy%.pid is a symbolic link", r.stderr)
    assert.equal("precious\n", fs.read(victim))
    fs.remove(pidfile)
    assert_unchanged(env, before)
    -- HAProxy writes no pid file itself (rollout does, by rename); its sockets it replaces by rename too
    local argv = table.concat({ table.unpack((function()
      local t = {}
      for a in fs.read("/proc/" .. env:masters()[1] .. "/cmdline", { any = true }):gmatch("([^%z]*)%z") do t[#t + 1] = a end
      return t end)()) }, " ")
    assert.is_nil(argv:find(" -p ", 1, true), argv)
    env:assert_agree({ v1 = 50, v2 = 50 }, { count = false })
  end)

  it("owned by another user, or writable by group or others: refused (exit 2), nothing changed", function()
    local before = snapshot(env)
    local cases = {
      { { "chown", "65534", env.state }, { "chown", tostring(sys.euid()), env.state }, "is owned by uid 65534, not by you" },
      { { "chmod", "777", env.state }, { "chmod", "700", env.state }, "is writable by group and others %(mode 0777%)" },
      { { "chmod", "770", fs.join(env.state, "services") }, { "chmod", "700", fs.join(env.state, "services") },
        "services is writable by its group %(mode 0770%)" },
    }
    for _, c in ipairs(cases) do
      assert.equal(0, proc.run { argv = c[1] }.status)
      local ok, err = pcall(function()
        for _, argv in ipairs { { "list", SVC }, { "update_traffic", SVC }, { "start", SVC, "v3" }, { "repair", SVC } } do
          local r = env:ops(table.unpack(argv))
          assert.equal(2, r.status, argv[1] .. ": " .. r.stderr)
          assert.matches("state directory " .. env.state:gsub("%p", "%%%0") .. ": " .. c[3], r.stderr)
        end
      end)
      assert.equal(0, proc.run { argv = c[2] }.status)
      if not ok then error(err, 0) end
    end
    assert_unchanged(env, before)
  end)

  it("a FIFO planted in the gateway's directory is refused (exit 2)", function()
    local fifo = fs.join(env.state, "gateway", "haproxy.log.1")
    assert.equal(0, proc.run { argv = { "mkfifo", fifo } }.status)
    finally(function() fs.remove(fifo) end)
    local r = env:ops("ping", SVC)
    assert.equal(2, r.status, r.stderr)
    assert.matches("gateway/haproxy%.log%.1 is a FIFO", r.stderr)
  end)

  it("a state file naming pid 1, or a pid reused by another program, is never signalled", function()
    local path = fs.join(env.state, "services", SVC, "state.json")
    local good = fs.read(path)
    finally(function() assert(fs.write_atomic(path, good, { mode = tonumber("600", 8) })) end)
    local st = json.decode(good)
    st.versions.v2.pid = 1
    assert(fs.write_atomic(path, json.encode(st), { mode = tonumber("600", 8) }))
    local r = env:ops("delete_service", SVC)
    assert.equal(2, r.status, r.stderr)
    assert.matches("state file .*: versions%.v2%.pid must be a process id above 1 %(got 1%)", r.stderr)
    -- a live process that is not the version (same pid, another start time): not v2, never stopped
    local other = assert(proc.spawn { argv = { "sleep", "60" } })
    env:track(other)
    st.versions.v2.pid = other
    assert(fs.write_atomic(path, json.encode(st), { mode = tonumber("600", 8) }))
    local p = env:ops("ping", SVC, "v2")
    assert.equal(1, p.status, p.stdout)
    assert.matches("v2 down: process " .. other .. " is not running", p.stdout)
    assert.is_true(proc.alive(other))
    proc.stop(other)
  end)
end)

describe("restarts (14.7)", function()
  local env
  setup(function() env = world { v1 = 30, v2 = 70 } end)
  teardown(function() env:cleanup() end)

  it("kill -9 of a weighted version: start brings it back at its weight", function()
    local old = env:state_json().versions.v2
    assert(proc.kill(old.pid, "KILL"))
    assert(wait(function() return not proc.alive(old.pid) end, 5))
    local r = env:ops("start", SVC, "v2", "--json")
    assert.equal(0, r.status, r.stdout .. r.stderr)
    local doc = json.decode(r.stdout)
    assert.is_true(doc.started)
    assert.equal(70, doc.weight)
    assert.is_not.equal(old.pid, doc.pid)
    assert.equal(json.null, doc.drift)
    env:assert_agree({ v1 = 30, v2 = 70 })
  end)

  it("start --restart of a healthy version serves without a failed request", function()
    local old = env:state_json().versions.v1
    local out = fs.join(env.dir, "bg.json")
    local pid = assert(proc.spawn { argv = { local_env.bin, "-e", string.format([[
      local r = assert(require("rollout.probe").run { url = %q, duration = 3, concurrency = 4 })
      require("rollout.fs").write_atomic(%q, require("rollout.json").encode { errors = r.error_total, served = r.served })]],
      env:endpoint(), out) }, log = out .. ".log" })
    env:track(pid)
    local r = env:ops("start", SVC, "v1", "--restart")
    assert.equal(0, r.status, r.stdout .. r.stderr)
    assert(wait(function() return fs.exists(out) end, 60), fs.read(out .. ".log"))
    local res = json.decode(fs.read(out))
    assert.equal(0, res.errors)
    assert.is_true(res.served > 100)
    assert.is_false(proc.alive(old.pid))
    env:assert_agree({ v1 = 30, v2 = 70 })
  end)
end)

describe("the invariant check and repair", function()
  local env
  setup(function() env = world() end)
  teardown(function() env:cleanup() end)

  it("weights changed behind rollout's back: every command warns (and --json says), repair restores the file's", function()
    env:haproxy("set server be_microservice-1/v1 weight 5")
    local l = env:ops("list", SVC)
    assert.equal(0, l.status, l.stderr)
    assert.matches("rollout: warning: TRAFFIC%.yaml, the state and the gateway disagree:\n" ..
      "  %- the gateway holds v1=5 v2=50, not the applied v1=50 v2=50 %(changed behind rollout's back%?%)\n" ..
      "  repair with: rollout scripts/ops%.lua repair microservice%-1\n", l.stderr)
    local j = json.decode(env:ops("list", SVC, "--json").stdout)
    assert.equal("v1=5 v2=50", text_of(j.drift.gateway))
    local p = env:ops("ping", SVC)
    assert.equal(0, p.status)
    assert.matches("! TRAFFIC%.yaml, the state and the gateway disagree:", p.stdout)
    local r = env:ops("repair", SVC)
    assert.equal(0, r.status, r.stdout .. r.stderr)
    assert.matches("found: the gateway holds v1=5 v2=50", r.stdout)
    assert.matches("✓ TRAFFIC%.yaml, the state and the gateway agree: v1=50 v2=50", r.stdout)
    assert.equal("", r.stderr)
    env:assert_agree({ v1 = 50, v2 = 50 })
  end)

  it("a TRAFFIC.yaml edited and not applied: reported; repair applies it (the file wins)", function()
    assert(fs.write_atomic(env.traffic_file, traffic_yaml { v1 = 25, v2 = 75 }))
    local p = json.decode(env:ops("ping", SVC, "--json").stdout)
    assert.matches("not at TRAFFIC%.yaml's weights", p.drift.differences[1])
    local r = env:ops("repair", SVC, "--json")
    assert.equal(0, r.status, r.stderr)
    local doc = json.decode(r.stdout)
    assert.is_true(doc.ok)
    assert.equal("v1=25 v2=75", text_of(doc.weights))
    assert.equal(json.null, doc.drift)
    env:assert_agree({ v1 = 25, v2 = 75 })
  end)

  it("repair never applies a bad file: refused (exit 2) and nothing changes, not even the drift it found", function()
    local good = fs.read(env.traffic_file)
    env:haproxy("set server be_microservice-1/v2 weight 9")
    finally(function() assert(fs.write_atomic(env.traffic_file, good)) end)
    local cases = {
      { "versions:\n- name: v1\n  weight: -5\n- name: v2\n  weight: 50\n", "TRAFFIC%.yaml:3:11: versions%[1%]%.weight: must be >= 0" },
      { "versions:\n- name: v1\n  weight: [50\n", "TRAFFIC%.yaml:%d+:%d+: " },
      { "versions:\n- name: v1\n  weight: 0\n- name: v2\n  weight: 0\n", "all weights are 0" },
      { "versions:\n- name: v1\n  weight: 50\n- name: v9\n  weight: 50\n", "version v9 has weight 50 but is not deployed" },
    }
    for _, c in ipairs(cases) do
      assert(fs.write_atomic(env.traffic_file, c[1]))
      local before = snapshot(env)
      local r = env:ops("repair", SVC)
      assert.equal(2, r.status, r.stdout .. r.stderr)
      assert.matches(c[2], r.stderr)
      assert_unchanged(env, before)
      assert.equal("v1=25 v2=9", before.gateway)
    end
    fs.remove(env.traffic_file)
    local r = env:ops("repair", SVC)
    assert.equal(2, r.status)
    assert.matches("TRAFFIC%.yaml: no such file: repair makes the gateway match it", r.stderr)
    assert(fs.write_atomic(env.traffic_file, good))
    assert.equal(0, env:ops("repair", SVC).status)
    env:assert_agree({ v1 = 25, v2 = 75 })
  end)

  it("repair refuses weight for a version that is down, naming the command that starts it", function()
    local v2 = env:state_json().versions.v2
    assert(proc.kill(v2.pid, "KILL"))
    assert(wait(function() return not proc.alive(v2.pid) end, 5))
    local before = snapshot(env)
    local r = env:ops("repair", SVC)
    assert.equal(2, r.status, r.stdout .. r.stderr)
    assert.matches("version v2 has weight 75 but its process %(pid " .. v2.pid .. "%) is not running %(start it " ..
      "again: rollout scripts/ops%.lua start microservice%-1 v2%)", r.stderr)
    assert_unchanged(env, before)
    assert.equal(0, env:ops("start", SVC, "v2").status)
    env:assert_agree({ v1 = 25, v2 = 75 })
  end)

  it("repair when all agree changes nothing", function()
    local before = snapshot(env)
    local gw = env:masters()
    local r = env:ops("repair", SVC)
    assert.equal(0, r.status, r.stdout .. r.stderr)
    assert.matches("agree: v1=25 v2=75", r.stdout)
    assert.is_nil(r.stdout:find("found:", 1, true))
    assert_unchanged(env, before)
    assert.same(gw, env:masters())
  end)
end)
