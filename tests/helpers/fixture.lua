-- Test fixtures: the demo service and HAProxy as real processes on loopback.
--
--   local fixture = require "tests.helpers.fixture"   (from the repo root)
--
--   fixture.demo{version = "v1", args = {"--error-rate", "1"}, env = {}}
--     -> {pid =, port =, url = "http://127.0.0.1:PORT", version =, log =, dir =}
--     Spawns services/microservice-1 on port 0 (a detached daemon, log in a
--     temp dir), learns its port from the "listening on" line of the log,
--     and waits for /healthz to answer (any status: --fail-health is valid).
--   fixture.haproxy{backends = {{name = "v1", port = P, weight = 50}, ...},
--                   extra = "more config appended", frontend = "lines for fe"}
--     -> {pid =, port =, url =, admin = socket path, cfg = path, log =, dir =}
--     Foreground HAProxy (-db) spawned detached; frontend on 127.0.0.1:a free
--     port; backend be_default (balance roundrobin, weights, option httpchk GET
--     /healthz); per-version backends be_vN chosen by header x-version: vN;
--     admin socket `stats socket PATH mode 600 level admin`.
--   fixture.haproxy_cmd(h, "set server be_default/v1 weight 60") -> reply
--   fixture.raw_http() -> {pid =, url = "http://127.0.0.1:PORT", dir =}: the
--     exact-bytes server tests/helpers/raw_http.py (stop with fixture.stop)
--   fixture.free_port() -> a TCP port free on 127.0.0.1 right now
--   fixture.tmpdir() -> a new temp directory (removed by fixture.remove)
--   fixture.stop(x)  -> stops x (a pid, or a table with .pid) by PID and
--                       removes its temp dir; safe to call twice
--   fixture.stop_all(a, b, ...) -> stops each (nil skipped), even if one fails
--   fixture.remove(dir)
--   fixture.bin      -> the rollout binary under test: $ROLLOUT_BIN, else the
--                       binary running this spec (rollout.sys.exe)
--   fixture.timeout(secs) -> secs scaled by $TIMEOUT_FACTOR (default 1), for
--                       every wall-clock limit a spec waits for or asserts
--   fixture.poll(fn, timeout) -> polls fn() until it returns a truthy value
--                       (returned) or timeout (scaled) passes, then fn() once more
--   fixture.wait(fn, timeout, what) -> the same, raising "timed out waiting for
--                       what" instead of returning a false value
--   fixture.reaper() -> track, stop_all: track(pid) remembers a pid, stop_all()
--                       kills (SIGKILL) each remembered pid still alive; call
--                       stop_all from finally()/after_each()/teardown()
--   fixture.start_server{argv =, log =, ready = fn(log_text), what =, timeout =}
--                    -> pid, ready's value: spawns a (fake) server with its
--                       output in log, waits until ready(text of log) returns a
--                       truthy value (e.g. the port it printed); raises with the
--                       log if it exits first, stopping it if it does not start
--
-- Every spec that starts something stops it in finally()/teardown() by PID.
local proc = require "rollout.proc"
local http = require "rollout.http"
local fs = require "rollout.fs"
local time = require "rollout.time"
local sys = require "rollout.sys"

local fixture = {}

local function repo_root()
  local root = os.getenv("ROLLOUT_ROOT")
  if root and root ~= "" then return root end
  local src = debug.getinfo(1, "S").source
  local dir = src:match("^@(.*)/tests/helpers/[^/]*$")
  return dir or "."
end

fixture.root = repo_root()
fixture.demo_bin = fixture.root .. "/services/microservice-1/microservice-1"

local bin = os.getenv("ROLLOUT_BIN")
fixture.bin = (bin and bin ~= "") and bin or sys.exe

fixture.timeout_factor = math.max(1, tonumber(os.getenv("TIMEOUT_FACTOR") or "") or 1)

function fixture.timeout(secs)
  return secs * fixture.timeout_factor
end

function fixture.poll(fn, timeout)
  local deadline = time.now() + fixture.timeout(timeout or 5)
  local step = 0.01
  while true do
    local v = fn()
    if v then return v end
    if time.now() >= deadline then return fn() end
    time.sleep(step)
    if step < 0.1 then step = step * 2 end
  end
end

function fixture.wait(fn, timeout, what)
  local v = fixture.poll(fn, timeout)
  if not v then error("timed out waiting for " .. (what or "a condition"), 2) end
  return v
end

function fixture.reaper()
  local pids = {}
  return function(pid)
    if pid then pids[#pids + 1] = math.tointeger(pid) end
    return pid
  end, function()
    for _, pid in ipairs(pids) do
      if proc.alive(pid) then proc.kill(pid, "KILL") end
    end
  end
end

function fixture.free_port()
  return assert(http.free_port("127.0.0.1"))
end

function fixture.tmpdir()
  return assert(fs.mkdtemp("rollout-test-"))
end

function fixture.remove(dir)
  if dir and fs.exists(dir) then assert(fs.remove_tree(dir)) end
end

function fixture.stop(x)
  if x == nil then return true end
  local pid = type(x) == "table" and x.pid or x
  local ok, err = true, nil
  if type(pid) == "number" and pid > 0 then
    ok, err = proc.stop(pid, { timeout = 5 })
  end
  if type(x) == "table" and x.dir then
    fixture.remove(x.dir)
    x.dir = nil
  end
  if not ok then error("cannot stop pid " .. tostring(pid) .. ": " .. tostring(err), 2) end
  return true
end

-- Stops every argument (nil ones are skipped) even when one fails; raises
-- afterwards if any did.
function fixture.stop_all(...)
  local errs = {}
  for i = 1, select("#", ...) do
    local ok, err = pcall(fixture.stop, (select(i, ...)))
    if not ok then errs[#errs + 1] = tostring(err) end
  end
  if #errs > 0 then error(table.concat(errs, "; "), 2) end
  return true
end

local function read(path)
  local s = fs.read(path)
  return s or ""
end

function fixture.start_server(o)
  local what = o.what or o.argv[#o.argv]
  local pid, err = proc.spawn { argv = o.argv, log = o.log, env = o.env }
  if not pid then error("cannot start " .. what .. ": " .. tostring(err), 2) end
  local ok, v = pcall(fixture.wait, function()
    local v = o.ready(read(o.log))
    if v then return v end
    if not proc.alive(pid) then error(what .. " exited:\n" .. read(o.log), 0) end
  end, o.timeout or 30, what)
  if not ok then
    pcall(proc.stop, pid, { timeout = 5 })
    v = tostring(v)
    error(v:find(" exited:\n", 1, true) and v or v .. "\n" .. read(o.log), 0)
  end
  return pid, v
end

function fixture.raw_http()
  local dir = fixture.tmpdir()
  local ok, pid, port = pcall(fixture.start_server, { argv = { "/usr/bin/python3",
    fixture.root .. "/tests/helpers/raw_http.py", "--port", "0" }, log = dir .. "/raw.log", timeout = 10,
    what = "raw_http.py", ready = function(text) return text:match("listening on 127%.0%.0%.1:(%d+)") end })
  if not ok then
    fixture.remove(dir)
    error(pid, 0)
  end
  return { pid = pid, dir = dir, url = "http://127.0.0.1:" .. port }
end

local function ensure_demo()
  if not fs.exists(fixture.demo_bin) then
    local r = assert(proc.run { argv = { "make", "-s", "-C", fixture.root .. "/services/microservice-1" },
      timeout = 120 })
    assert(r.status == 0, "building the demo service failed:\n" .. r.stderr)
  end
end

-- Stops pid and removes dir, then raises msg (a fixture that fails to start
-- leaves nothing behind).
local function give_up(pid, dir, msg)
  if pid then pcall(proc.stop, pid, { timeout = 2 }) end
  if dir then pcall(fixture.remove, dir) end
  error(msg, 3)
end

function fixture.demo(opts)
  opts = opts or {}
  local version = opts.version or "v1"
  ensure_demo()
  local dir = fixture.tmpdir()
  local log = dir .. "/demo-" .. version .. ".log"
  local argv = { fixture.demo_bin, "--port", "0", "--bind", "127.0.0.1", "--version", version }
  for _, a in ipairs(opts.args or {}) do argv[#argv + 1] = a end
  -- the fault knobs of the caller's environment must not leak in
  local env = { ERROR_RATE = false, LATENCY_MS = false, FAIL_HEALTH = false, PORT = false,
    SERVICE_VERSION = false, BIND_ADDRESS = false }
  for k, v in pairs(opts.env or {}) do env[k] = v end
  local pid, err = proc.spawn { argv = argv, log = log, env = env }
  if not pid then give_up(nil, dir, "demo " .. version .. ": " .. tostring(err)) end

  local port
  local deadline = time.now() + 5
  while not port do
    port = read(log):match("listening on 127%.0%.0%.1:(%d+)")
    if not port then
      if not proc.alive(pid) then
        give_up(nil, dir, "demo " .. version .. " exited:\n" .. read(log))
      end
      if time.now() > deadline then
        give_up(pid, dir, "demo " .. version .. " printed no 'listening on' line:\n" .. read(log))
      end
      time.sleep(0.01)
    end
  end
  port = tonumber(port)
  local url = "http://127.0.0.1:" .. port
  local ok = pcall(fixture.wait, function()
    return http.get(url .. "/healthz", { timeout = 1 }) ~= nil
  end, 5, "healthz")
  if not ok then give_up(pid, dir, "demo " .. version .. " does not answer /healthz:\n" .. read(log)) end
  return { pid = pid, port = port, url = url, version = version, log = log, dir = dir }
end

local function haproxy_config(h, opts)
  local out = {}
  local function add(s) out[#out + 1] = s end
  add("global")
  add("    maxconn 4096")
  add("    stats socket " .. h.admin .. " mode 600 level admin")
  add("defaults")
  add("    mode http")
  add("    timeout connect 2s")
  add("    timeout client 30s")
  add("    timeout server 30s")
  add("frontend fe")
  add("    bind 127.0.0.1:" .. h.port)
  if opts.frontend then add(opts.frontend) end
  for _, b in ipairs(opts.backends) do
    add(("    use_backend be_%s if { req.hdr(x-version) -m str %s }"):format(b.name, b.name))
  end
  add("    default_backend be_default")
  add("backend be_default")
  add("    balance roundrobin")
  add("    option httpchk GET /healthz")
  for _, b in ipairs(opts.backends) do
    add(("    server %s 127.0.0.1:%d weight %d check inter 1s fall 2 rise 1"):format(
      b.name, b.port, b.weight or 1))
  end
  for _, b in ipairs(opts.backends) do
    add("backend be_" .. b.name)
    add("    option httpchk GET /healthz")
    add(("    server %s 127.0.0.1:%d check inter 1s fall 2 rise 1"):format(b.name, b.port))
  end
  if opts.extra then add(opts.extra) end
  return table.concat(out, "\n") .. "\n"
end

function fixture.haproxy(opts)
  opts = opts or {}
  assert(type(opts.backends) == "table", "fixture.haproxy needs backends")
  for _, b in ipairs(opts.backends) do
    assert(type(b.name) == "string" and b.name:match("^[a-z0-9][a-z0-9-]*$"), "bad backend name")
    assert(math.type(b.port) == "integer", "backend " .. b.name .. " needs a port")
  end
  local dir = fixture.tmpdir()
  local h = { dir = dir, cfg = dir .. "/haproxy.cfg", admin = dir .. "/admin.sock",
    log = dir .. "/haproxy.log", port = fixture.free_port() }
  h.url = "http://127.0.0.1:" .. h.port
  assert(fs.write_atomic(h.cfg, haproxy_config(h, opts)))
  local check = assert(proc.run { argv = { "haproxy", "-c", "-q", "-f", h.cfg }, timeout = 10 })
  if check.status ~= 0 then
    give_up(nil, dir, "invalid HAProxy config:\n" .. check.stdout .. check.stderr .. "\n" .. read(h.cfg))
  end
  local pid, err = proc.spawn { argv = { "haproxy", "-db", "-f", h.cfg }, log = h.log }
  if not pid then give_up(nil, dir, "haproxy: " .. tostring(err)) end
  h.pid = pid
  local ok = pcall(fixture.wait, function()
    if not proc.alive(pid) then return false end
    return http.unix_exchange(h.admin, "show info\n", 1) ~= nil
      and http.get(h.url .. "/", { timeout = 1 }) ~= nil
  end, 5, "haproxy")
  if not ok then give_up(pid, dir, "haproxy did not start:\n" .. read(h.log)) end
  return h
end

function fixture.haproxy_cmd(h, cmd)
  local reply, err = http.unix_exchange(h.admin, cmd .. "\n", 5)
  if not reply then error("haproxy admin socket: " .. tostring(err), 2) end
  return reply
end

return fixture
