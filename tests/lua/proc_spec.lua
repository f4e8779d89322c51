-- rollout.proc through the Lua binding: run (statuses, I/O, env, cwd,
-- timeouts, exec errors), spawn (detached daemons), alive/kill/stop/which,
-- and ^C. Every process a test starts is stopped by pid in finally().
local proc = require "rollout.proc"
local fs = require "rollout.fs"
local time = require "rollout.time"

local fixture = require "tests.helpers.fixture"

local BIN = fixture.bin

local wait_for = fixture.poll

-- Direct children of this process (zombies included).
local function children()
  local pid = proc.pid()
  local f = assert(io.open(("/proc/%d/task/%d/children"):format(pid, pid)))
  local set = {}
  for p in f:read("a"):gmatch("%d+") do set[tonumber(p)] = true end
  f:close()
  return set
end

local function new_children(before)
  local list = {}
  for p in pairs(children()) do
    if not before[p] then list[#list + 1] = p end
  end
  return list
end

-- Pids a test started; all stopped (by pid) in finally().
local reaper = fixture.reaper

local function read_pids(path)
  local pids = {}
  for p in (fs.read(path) or ""):gmatch("%d+") do pids[#pids + 1] = math.tointeger(p) end
  return pids
end

local tmp
setup(function() tmp = assert(fs.mkdtemp("rollout-proc-spec-")) end)
teardown(function() if tmp then fs.remove_tree(tmp) end end)

describe("proc.run", function()
  it("returns exit statuses; a non-zero exit is not an error", function()
    local before = children()
    local r = assert(proc.run { argv = { "true" } })
    assert.equal(0, r.status)
    assert.is_nil(r.signal)
    r = assert(proc.run { argv = { "false" } })
    assert.equal(1, r.status)
    r = assert(proc.run { argv = { "sh", "-c", "exit 3" } })
    assert.equal(3, r.status)
    assert.is_number(r.duration)
    assert.is_true(r.duration > 0 and r.duration < fixture.timeout(5), "duration " .. r.duration)
    assert.same({}, new_children(before))
  end)

  it("captures stdout and stderr separately, merged, or not at all", function()
    local r = assert(proc.run { argv = { "sh", "-c", "echo out; echo err >&2" } })
    assert.equal("out\n", r.stdout)
    assert.equal("err\n", r.stderr)
    r = assert(proc.run { argv = { "sh", "-c", "echo out; echo err >&2" }, stderr = "stdout" })
    assert.equal("out\nerr\n", r.stdout)
    assert.equal("", r.stderr)
    r = assert(proc.run { argv = { "sh", "-c", "echo out; echo err >&2" }, stdout = "null", stderr = "null" })
    assert.equal("", r.stdout)
    assert.equal("", r.stderr)
    assert.is_nil(r.truncated)
  end)

  it("reports the signal that ended the child", function()
    local r = assert(proc.run { argv = { "sh", "-c", "kill -9 $$" } })
    assert.is_nil(r.status)
    assert.equal(9, r.signal)
  end)

  it("feeds 10 MB of stdin while reading 10 MB of stdout (no deadlock)", function()
    local data = string.rep("0123456789", 1000000)
    local r = assert(proc.run { argv = { "cat" }, stdin = data, timeout = 30 })
    assert.equal(0, r.status)
    assert.equal(#data, #r.stdout)
    assert.is_true(r.stdout == data)
    -- writes 10 MB before it reads anything
    r = assert(proc.run { argv = { "sh", "-c", "head -c 10000000 /dev/zero; wc -c" },
                          stdin = string.rep("x", 1000000), timeout = 30 })
    assert.equal(10000000 + #"1000000\n", #r.stdout)
    assert.equal("1000000", r.stdout:sub(10000001):match("%d+"))
  end)

  it("survives a child that does not read its stdin", function()
    local r = assert(proc.run { argv = { "true" }, stdin = string.rep("x", 5000000) })
    assert.equal(0, r.status)
  end)

  it("gives the child an empty stdin when none is given", function()
    local r = assert(proc.run { argv = { "wc", "-c" }, timeout = 5 })
    assert.equal("0", r.stdout:match("%d+"))
  end)

  it("caps captured output and marks it truncated", function()
    local r = assert(proc.run { argv = { "head", "-c", "100000", "/dev/zero" }, max_output = 1000 })
    assert.equal(0, r.status)
    assert.equal(1000, #r.stdout)
    assert.is_true(r.truncated)
  end)

  it("adds to, overrides and clears the environment", function()
    local home = os.getenv("HOME") or ""
    local r = assert(proc.run { argv = { "sh", "-c", 'echo "$FOO:$HOME"' }, env = { FOO = "bar" } })
    assert.equal("bar:" .. home .. "\n", r.stdout)
    r = assert(proc.run { argv = { "sh", "-c", 'echo "${HOME-unset}"' }, env = { HOME = false } })
    assert.equal("unset\n", r.stdout)
    r = assert(proc.run { argv = { "env" }, clear_env = true, env = { A = "1", B = 2 } })
    local lines = {}
    for l in r.stdout:gmatch("[^\n]+") do lines[#lines + 1] = l end
    table.sort(lines)
    assert.same({ "A=1", "B=2" }, lines)
  end)

  it("runs in cwd", function()
    local r = assert(proc.run { argv = { "pwd" }, cwd = tmp })
    assert.equal(fs.realpath(tmp) .. "\n", r.stdout)
  end)

  it("looks argv[1] up on PATH, the child's PATH when env sets it", function()
    local dir = fs.join(tmp, "bin")
    assert(fs.mkdir_p(dir))
    assert(fs.write_atomic(fs.join(dir, "hello-rollout"), "#!/bin/sh\necho hello from $0\n", { mode = 493 }))
    local r, msg, code, raw = proc.run { argv = { "hello-rollout" } }
    assert.is_nil(r)
    assert.equal("not_found", code)
    assert.equal("ENOENT", raw)
    r = assert(proc.run { argv = { "hello-rollout" }, env = { PATH = dir .. ":/usr/bin:/bin" } })
    assert.equal("hello from " .. dir .. "/hello-rollout\n", r.stdout)
  end)

  it("reports exec failures accurately and leaves no child behind", function()
    local before = children()
    local r, msg, code, raw = proc.run { argv = { "no-such-program-rollout" } }
    assert.is_nil(r)
    assert.equal("cannot run 'no-such-program-rollout': No such file or directory", msg)
    assert.equal("not_found", code)
    assert.equal("ENOENT", raw)
    r, msg, code, raw = proc.run { argv = { "/nonexistent/program" } }
    assert.is_nil(r)
    assert.equal("cannot run '/nonexistent/program': No such file or directory", msg)
    assert.equal("not_found", code)
    assert.equal("ENOENT", raw)
    local plain = fs.join(tmp, "not-executable")
    assert(fs.write_atomic(plain, "echo hi\n", { mode = 420 }))
    r, msg, code, raw = proc.run { argv = { plain } }
    assert.is_nil(r)
    assert.equal("cannot run '" .. plain .. "': Permission denied", msg)
    assert.equal("forbidden", code)
    assert.equal("EACCES", raw)
    r, msg, code, raw = proc.run { argv = { "true" }, cwd = fs.join(tmp, "missing") }
    assert.is_nil(r)
    assert.matches("cannot change directory to '.*missing': No such file or directory", msg)
    assert.equal("not_found", code)
    assert.equal("ENOENT", raw)
    assert.same({}, new_children(before))
  end)

  it("kills the whole process group on timeout and reaps it", function()
    local before = children()
    local t0 = time.now()
    local r, msg, code, raw, partial = proc.run {
      argv = { "sh", "-c", "sleep 100 & echo $$ $!; wait" }, timeout = 0.5 }
    local elapsed = time.now() - t0
    assert.is_nil(r)
    assert.equal("timeout", code)
    assert.equal("timed out after 0.5s: sh -c sleep 100 & echo $$ $!; wait", msg)
    assert.is_table(partial)
    assert.equal(15, partial.signal)
    local sh, sleeper = partial.stdout:match("^(%d+) (%d+)\n$")
    assert.is_not_nil(sh)
    sh, sleeper = math.tointeger(sh), math.tointeger(sleeper)
    assert.is_true(elapsed >= 0.5 and elapsed < fixture.timeout(3), "elapsed " .. elapsed)
    assert.is_false(proc.alive(sh))
    assert.is_true(wait_for(function() return not proc.alive(sleeper) end, 2))
    assert.same({}, new_children(before))
  end)

  it("ends a group that ignores SIGTERM with SIGKILL after the grace", function()
    local t0 = time.now()
    local r, _, code, raw, partial = proc.run {
      argv = { "sh", "-c", "trap '' TERM; sleep 100 & echo $!; wait" }, timeout = 0.3 }
    local elapsed = time.now() - t0
    assert.is_nil(r)
    assert.equal("timeout", code)
    assert.equal(9, partial.signal)
    local sleeper = math.tointeger(partial.stdout:match("%d+"))
    assert.is_true(elapsed >= 0.8 and elapsed < fixture.timeout(3), "elapsed " .. elapsed)
    assert.is_true(wait_for(function() return not proc.alive(sleeper) end, 2))
  end)

  it("raises on misuse, naming the argv index", function()
    assert.has_error(function() proc.run { argv = { "echo", {} } } end, "argv[2] must be a string (got table)")
    assert.has_error(function() proc.run { argv = { "echo", 1 } } end, "argv[2] must be a string (got number)")
    assert.has_error(function() proc.run { argv = {} } end, "field 'argv' must not be empty")
    assert.has_error(function() proc.run { argv = "echo" } end)
    assert.has_error(function() proc.run { argv = { "true" }, stdout = "file" } end)
    assert.has_error(function() proc.run { argv = { "true" }, timeout = -1 } end)
    assert.has_error(function() proc.run { argv = { "true" }, env = { ["A=B"] = "x" } } end)
    assert.has_error(function() proc.run { argv = { "true" }, stdin = 42 } end)
  end)
end)

describe("proc.spawn", function()
  it("starts a detached daemon, writes its pidfile, logs its output", function()
    local track, stop_all = reaper()
    finally(stop_all)
    local log, pidfile = fs.join(tmp, "d1.log"), fs.join(tmp, "d1.pid")
    assert(fs.write_atomic(log, "earlier\n"))
    local before = children()
    local pid = assert(proc.spawn { argv = { "sh", "-c", "echo out; echo err >&2; exec sleep 30" },
                                    log = log, pidfile = pidfile })
    track(pid)
    assert.is_true(math.type(pid) == "integer" and pid > 0)
    assert.is_true(proc.alive(pid))
    assert.equal(pid .. "\n", fs.read(pidfile))
    -- not our child: reparented, in its own session and process group
    local stat = fs.read("/proc/" .. pid .. "/stat"):match("%) (.*)")
    local ppid, pgrp, session = stat:match("^%S+ (%d+) (%d+) (%d+)")
    assert.are_not.equal(proc.pid(), math.tointeger(ppid))
    assert.equal(pid, math.tointeger(pgrp))
    assert.are_not.equal(proc.pid(), math.tointeger(session))
    assert.same({}, new_children(before)) -- the intermediate child was reaped
    assert.is_truthy(wait_for(function() return (fs.read(log) or ""):find("err\n", 1, true) end))
    assert.equal("earlier\nout\nerr\n", fs.read(log))
    assert.is_true(proc.stop(pid))
    assert.is_false(proc.alive(pid))
  end)

  it("returns a pid that outlives the rollout that spawned it", function()
    local track, stop_all = reaper()
    finally(stop_all)
    local r = assert(proc.run { argv = { BIN, "-e",
      'io.write(assert(require"rollout.proc".spawn{argv={"sleep","30"}}))' }, timeout = 10 })
    local pid = math.tointeger(r.stdout)
    track(pid)
    assert.equal(0, r.status)
    assert.is_not_nil(pid)
    assert.is_true(proc.alive(pid))
    assert.is_true(proc.stop(pid))
  end)

  it("reports exec failures like run", function()
    local r, msg, code, raw = proc.spawn { argv = { "no-such-program-rollout" } }
    assert.is_nil(r)
    assert.equal("cannot run 'no-such-program-rollout': No such file or directory", msg)
    assert.equal("not_found", code)
    assert.equal("ENOENT", raw)
    local plain = fs.join(tmp, "plain-file")
    assert(fs.write_atomic(plain, "x", { mode = 420 }))
    local pidfile = fs.join(tmp, "never.pid")
    r, msg, code, raw = proc.spawn { argv = { plain }, pidfile = pidfile }
    assert.is_nil(r)
    assert.equal("forbidden", code)
    assert.equal("EACCES", raw)
    assert.matches("Permission denied", msg)
    assert.is_false(fs.exists(pidfile))
    r, msg, code, raw = proc.spawn { argv = { "true" }, cwd = fs.join(tmp, "missing") }
    assert.is_nil(r)
    assert.equal("not_found", code)
    assert.equal("ENOENT", raw)
    r, msg, code, raw = proc.spawn { argv = { "true" }, log = fs.join(tmp, "missing", "x.log") }
    assert.is_nil(r)
    assert.equal("not_found", code)
    assert.equal("ENOENT", raw)
    assert.matches("log", msg)
  end)

  it("never writes its log through a symbolic link, nor into a FIFO", function()
    local victim = fs.join(tmp, "victim")
    assert(fs.write_atomic(victim, "precious\n"))
    local link = fs.join(tmp, "planted.log")
    assert.equal(0, proc.run { argv = { "ln", "-s", victim, link } }.status)
    local r, msg, code, raw = proc.spawn { argv = { "sh", "-c", "echo overwritten" }, log = link }
    assert.is_nil(r)
    assert.equal("invalid", code)
    assert.equal("ELOOP", raw)
    assert.equal("cannot open the log '" .. link .. "': it is a symbolic link (rollout does not follow links there)", msg)
    assert.equal("precious\n", fs.read(victim))
    local fifo = fs.join(tmp, "fifo.log")
    assert.equal(0, proc.run { argv = { "mkfifo", fifo } }.status)
    r, msg, code, raw = proc.spawn { argv = { "true" }, log = fifo }
    assert.is_nil(r)
    assert.equal("invalid", code)
    assert.equal("EINVAL", raw)
    assert.matches("not a regular file", msg)
  end)

  it("passes env and cwd", function()
    local track, stop_all = reaper()
    finally(stop_all)
    local log = fs.join(tmp, "env.log")
    local pid = assert(proc.spawn { argv = { "sh", "-c", 'echo "$X $(pwd)"' }, env = { X = "hello" },
                                    cwd = tmp, log = log })
    track(pid)
    local want = "hello " .. fs.realpath(tmp) .. "\n"
    assert.equal(want, wait_for(function() return fs.read(log) == want and want end))
  end)
end)

describe("proc.alive, kill, stop", function()
  it("sees a zombie as not alive", function()
    local track, stop_all = reaper()
    finally(stop_all)
    local f = fs.join(tmp, "zombie")
    -- sleep 0 exits; its parent (now `sleep 30`) never reaps it
    local holder = assert(proc.spawn { argv = { "sh", "-c", "sleep 0 & echo $! > " .. f .. "; exec sleep 30" } })
    track(holder)
    local zpid = wait_for(function() return read_pids(f)[1] end)
    assert.is_not_nil(zpid)
    local state = wait_for(function()
      local s = fs.read("/proc/" .. zpid .. "/stat")
      return s and s:match("%) (%a)") == "Z" and "Z"
    end)
    assert.equal("Z", state)
    assert.is_false(proc.alive(zpid))
    assert.is_true(proc.alive(holder))
    local ok, _, code, raw = proc.kill(zpid, 0)
    assert.is_nil(ok)
    assert.equal("not_found", code)
    assert.equal("ESRCH", raw)
  end)

  it("kill: signals by name or number; ESRCH when gone; refuses pid <= 0", function()
    local track, stop_all = reaper()
    finally(stop_all)
    local r = assert(proc.run { argv = { "sh", "-c", "echo $$" } })
    local dead = math.tointeger(r.stdout:match("%d+"))
    local ok, msg, code, raw = proc.kill(dead, "TERM")
    assert.is_nil(ok)
    assert.equal("not_found", code)
    assert.equal("ESRCH", raw)
    assert.matches("No such process", msg)
    local pid = assert(proc.spawn { argv = { "sleep", "30" } })
    track(pid)
    assert.is_true(proc.kill(pid, 0))
    assert.is_true(proc.kill(pid, "0"))
    assert.is_true(proc.kill(pid, "STOP"))
    assert.equal("T", wait_for(function() return fs.read("/proc/" .. pid .. "/stat"):match("%) (%a)") == "T" and "T" end))
    assert.is_true(proc.kill(pid, "CONT"))
    assert.is_true(proc.kill(pid, 15))
    assert.is_true(wait_for(function() return not proc.alive(pid) end))
    assert.has_error(function() proc.kill(0, "TERM") end)
    assert.has_error(function() proc.kill(-1, "TERM") end)
    assert.has_error(function() proc.kill(-pid, "KILL") end)
    assert.has_error(function() proc.kill(pid, "BOGUS") end)
    assert.has_error(function() proc.kill(pid, 1000) end)
  end)

  it("stop: TERM, then KILL at the timeout for a process that ignores TERM", function()
    local track, stop_all = reaper()
    finally(stop_all)
    local ready = fs.join(tmp, "stubborn.ready")
    local pid = assert(proc.spawn { argv = { "sh", "-c", "trap '' TERM; echo ok > " .. ready .. "; exec sleep 30" } })
    track(pid)
    assert.is_truthy(wait_for(function() return fs.read(ready) end))
    local t0 = time.now()
    assert.is_true(proc.stop(pid, { timeout = 0.5 }))
    local elapsed = time.now() - t0
    assert.is_false(proc.alive(pid))
    assert.is_true(elapsed >= 0.5 and elapsed < fixture.timeout(3), "elapsed " .. elapsed)
  end)

  it("stop: a quick exit on TERM; true for a process already gone", function()
    local track, stop_all = reaper()
    finally(stop_all)
    local pid = assert(proc.spawn { argv = { "sleep", "30" } })
    track(pid)
    local t0 = time.now()
    assert.is_true(proc.stop(pid, { timeout = 5, signal = "INT" }))
    assert.is_true(time.now() - t0 < fixture.timeout(1))
    assert.is_false(proc.alive(pid))
    assert.is_true(proc.stop(pid))
    assert.has_error(function() proc.stop(0) end)
  end)

  it("which: absolute paths of executables on PATH only", function()
    local sh = proc.which("sh")
    assert.matches("^/.*/sh$", sh)
    assert.is_nil(proc.which("no-such-program-rollout"))
    assert.is_nil(proc.which(""))
    local plain = fs.join(tmp, "which-plain")
    assert(fs.write_atomic(plain, "x", { mode = 420 }))
    assert.is_nil(proc.which(plain))
    assert.is_nil(proc.which(tmp)) -- a directory
  end)

  it("pid is ours", function()
    assert.equal(require("rollout.sys").getpid(), proc.pid())
    assert.equal(fs.realpath("/proc/self"):match("%d+$"), tostring(proc.pid()))
  end)
end)

describe("^C during proc.run", function()
  local function interrupted_run(script_argv, expect_max)
    local track, stop_all = reaper()
    finally(stop_all)
    local pidf = fs.join(tmp, "child-" .. tostring(time.now()) .. ".pid")
    local log = pidf .. ".log"
    local script = script_argv:gsub("@F", function() return pidf end)
    local code = ('require"rollout.proc".run{argv={"sh","-c",%q}}'):format(script)
    local rpid = assert(proc.spawn { argv = { BIN, "-e", code }, log = log })
    track(rpid)
    local child = wait_for(function() return read_pids(pidf)[1] end)
    assert.is_not_nil(child, "the child never started")
    for _, p in ipairs(read_pids(pidf)) do track(p) end
    -- the handshake: the child wrote its pid, so proc.run is waiting for it
    assert.is_true(proc.alive(child))
    local t0 = time.now()
    assert.is_true(proc.kill(rpid, "INT"))
    assert.is_true(wait_for(function() return not proc.alive(rpid) end, 5))
    local elapsed = time.now() - t0
    assert.is_true(elapsed < fixture.timeout(expect_max), "took " .. elapsed)
    assert.matches("interrupted", fs.read(log))
    for _, p in ipairs(read_pids(pidf)) do
      assert.is_false(proc.alive(p), "pid " .. p .. " survived")
    end
  end

  it("stops the child and raises 'interrupted' promptly", function()
    interrupted_run("echo $$ > @F; exec sleep 30", 1.5)
  end)

  it("stops a group that ignores SIGTERM with SIGKILL", function()
    interrupted_run("trap '' TERM; sleep 30 & echo $$ $! > @F; wait", 2.5)
  end)
end)
