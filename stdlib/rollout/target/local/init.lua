--- rollout.target.local: versions as real processes on loopback ports behind
-- a real HAProxy gateway. The embedded default target: no cluster needed.
--
-- State (shared by separate rollout invocations) lives in the state
-- directory: services/<service>/state.json (versions: pid, port, log, the
-- weight applied to the gateway), services/<service>/logs/, and gateway/
-- (HAProxy's config, sockets, pid). Every command that changes a service
-- holds services/<service>/lock; gateway changes also hold gateway/lock.
--
-- Three views of the weights must agree: TRAFFIC.yaml (desired), the state
-- (what rollout applied) and the gateway (what HAProxy holds). A weight
-- change records its intent in the state before it touches anything, so a
-- change cut short (killed, power lost) is rolled back by the next command;
-- drift() says where the views disagree and repair() brings them together.
local fs = require "rollout.fs"
local proc = require "rollout.proc"
local http = require "rollout.http"
local time = require "rollout.time"
local sys = require "rollout.sys"
local json = require "rollout.json"
local weights_lib = require "rollout.weights"
local errors = require "rollout.errors"
local config = require "rollout.config"
local traffic = require "rollout.traffic"
local state = require "rollout.state"
local haproxy = require "rollout.target.local.haproxy"
local routes_lib = require "rollout.strategy.routes"
local base = require "rollout.target.base"
local defaults = require "rollout.defaults"

local M = {}
local Local = base.class()

--- A local target for a loaded service config (rollout.config.load).
-- opts.wait: wait for another rollout working on the service (seconds or true).
-- Refuses (exit 2) a state directory that is not private (state.check_dir).
function M.new(cfg, opts)
  local t = base.new(Local, "local", cfg, opts)
  state.check_dir(t.state_dir)
  t.state_file = fs.join(t.dir, "state.json")
  t.defaults = defaults.of(cfg)
  t.gateway = haproxy.new(fs.join(t.state_dir, "gateway"), t.defaults)
  return t
end

--- Says on stderr what rollout repaired or found on its own.
function Local:note(message)
  io.stderr:write("rollout: ", message, "\n")
end

-- ---------------------------------------------------------------- state --

-- The start time of a process (clock ticks since boot, /proc/<pid>/stat
-- field 22): with the pid, who it is (a pid reused by another program has
-- another start time).
local function start_time(pid)
  local text = fs.read(string.format("/proc/%d/stat", pid), { any = true })
  local rest = text and text:match("^%d+ %(.*%) (.*)$")
  if not rest then return nil end
  local f = {}
  for w in rest:gmatch("%S+") do f[#f + 1] = w end
  return f[20] -- field 22 of the whole line: 3 + 19
end

--- True when the version's process runs: its pid is alive and is the
-- process rollout started (same start time), never a pid reused since.
function Local:alive(info)
  if not info or not info.pid or not proc.alive(info.pid) then return false end
  if info.start_time then return start_time(info.pid) == info.start_time end
  return true
end

local MAX_PID = 4194304 -- /proc/sys/kernel/pid_max at most

local function check_state(st, file)
  local function bad(field, what, v)
    errors.refuse(string.format("state file %s: %s must be %s (got %s): it was changed outside rollout; " ..
      "`rollout scripts/ops.lua delete_service` or removing the file starts afresh", file, field, what,
      type(v) == "string" and string.format("%q", v) or tostring(v)), { code = "invalid" })
  end
  local function int(v, lo, hi) return math.type(v) == "integer" and v >= lo and v <= hi end
  if type(st) ~= "table" then bad("the document", "an object", type(st)) end
  if st.gateway_port ~= nil and not int(st.gateway_port, 1, 65535) then
    bad("gateway_port", "a port number", st.gateway_port)
  end
  if st.versions ~= nil and type(st.versions) ~= "table" then bad("versions", "an object", st.versions) end
  for v, info in pairs(st.versions or {}) do
    if type(v) ~= "string" or not weights_lib.is_name(v) then bad("a version name", "a DNS-1123 label", v) end
    if type(info) ~= "table" then bad("versions." .. v, "an object", info) end
    if not int(info.pid, 2, MAX_PID) then bad("versions." .. v .. ".pid", "a process id above 1", info.pid) end
    if not int(info.port, 1, 65535) then bad("versions." .. v .. ".port", "a port number", info.port) end
    if info.weight ~= nil and not int(info.weight, 0, weights_lib.MAX_WEIGHT) then
      bad("versions." .. v .. ".weight", "an integer weight", info.weight)
    end
  end
  return st
end

function Local:load_state()
  local st = state.read(self.state_file, nil)
  if not st then
    st = { service = self.name, versions = {} }
  end
  check_state(st, self.state_file)
  st.versions = st.versions or {}
  return st
end

function Local:save_state(st)
  state.write(self.state_file, st)
end

--- Runs fn(state) holding the service lock (re-entrant within one call
-- chain). A weight change another rollout left half-done (killed) is
-- rolled back first.
function Local:locked(fn)
  return self:with_lock(function()
    local st = self:load_state()
    if st.change and not self.changing then
      self:recover(st)
      st = self:load_state()
    end
    return fn(st)
  end)
end

-- The gateway's view of every service in the state directory.
local function gateway_services(state_dir)
  local dir = fs.join(state_dir, "services")
  local out = {}
  for _, name in ipairs(fs.exists(dir) and fs.list(dir) or {}) do
    local st = state.read(fs.join(dir, name, "state.json"), nil)
    if st and st.gateway_port and next(st.versions or {}) then
      check_state(st, fs.join(dir, name, "state.json"))
      local versions = {}
      for v, info in pairs(st.versions) do
        versions[v] = { port = info.port, weight = info.weight or 0 }
      end
      out[#out + 1] = { name = name, port = st.gateway_port, header = st.header or "x-version",
                        health_path = st.health_path or "/healthz", versions = versions,
                        routes = st.routes or {} }
    end
  end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

--- Makes the gateway match the state files: starts it when it is down (a
-- crash is repaired with the weights last applied), reloads it when its
-- servers differ, stops it when no service uses it. Never starts a second
-- HAProxy: a master that runs (found by its pid file, its master socket or
-- /proc) is adopted, and masters beside it are stopped.
function Local:sync_gateway()
  local glock = state.lock(fs.join(self.gateway.dir, "lock"), "the gateway", self.defaults.gateway_lock_timeout)
  local ok, err = pcall(function()
    local services = gateway_services(self.state_dir)
    if #services == 0 then
      self.gateway:stop()
      return
    end
    if not self.gateway:running() then
      local master = self.gateway:pid()
      if self.gateway.found then self:note(self.gateway.found); self.gateway.found = nil end
      local others = self.gateway:stop_others(master)
      if #others > 0 then
        self:note(string.format("stopped %d other HAProxy master%s of this state directory (pid %s)", #others,
          #others == 1 and "" or "s", table.concat(others, ", ")))
      end
      if master then
        -- a master whose admin socket does not answer: replaced (the
        -- weights come from the state)
        self.gateway:stop()
        self:note(string.format("the gateway (master pid %d) did not answer on its admin socket: restarted it",
          master))
      end
      self.gateway:start(services)
    elseif not self.gateway:matches(services) then
      self.gateway:reload(services)
    end
  end)
  glock:unlock()
  if not ok then error(err, 0) end
end

--- Ensures the gateway is up, and that it has the weights in the state
-- (after a crash or a change behind rollout's back, says what it repaired).
function Local:ensure_gateway(st)
  if not st.gateway_port or not next(st.versions) then return end
  local was_running = self.gateway:running()
  if self.gateway.found then self:note(self.gateway.found); self.gateway.found = nil end
  self:sync_gateway()
  if not was_running then
    self.repaired = "the gateway was not running: restarted it with the last applied weights"
  end
end

--- Repairs what a crash left behind before a command looks at the
-- service: a weight change cut short is rolled back, a gateway that should
-- be running but is not is restarted with the weights last applied (and
-- the repair is reported on stderr). Nothing is done while another rollout
-- works on the service (it holds the lock).
function Local:heal()
  local st = self:load_state()
  local down = st.gateway_port and next(st.versions) and not self.gateway:running()
  if self.gateway.found then self:note(self.gateway.found); self.gateway.found = nil end
  if not st.change and not down then return end
  local ok, err = pcall(self.locked, self, function(locked_st) self:ensure_gateway(locked_st) end)
  if not ok then
    if type(err) == "table" and err.code == "locked" then return end
    error(err, 0)
  end
  if self.repaired then
    st = self:load_state()
    local w = {}
    for _, v in ipairs(self:deployed_names(st)) do w[#w + 1] = v .. "=" .. (st.versions[v].weight or 0) end
    self:note(string.format("%s (%s)", self.repaired, table.concat(w, " ")))
    self.repaired = nil
  end
end

-- ------------------------------------------------------------ versions --

-- Asks a version's process on `port` for the health path: true when it
-- answers 200, and the status it answered.
function Local:healthz(port)
  local timeout = self.defaults.health_timeout
  local res = http.request { url = string.format("http://127.0.0.1:%d%s", port, self.cfg.health_path),
                             timeout = timeout, connect_timeout = timeout }
  return res and res.status == 200, res and res.status
end

local function log_tail(path, n)
  local text = fs.read(path) or ""
  local lines = {}
  for line in text:gmatch("[^\n]*") do
    if line ~= "" then lines[#lines + 1] = line end
  end
  local from = math.max(1, #lines - (n or 10) + 1)
  return table.concat(lines, "\n", from)
end

function Local:command(version, port)
  local lc = self.cfg["local"]
  if not lc.command then
    errors.refuse(self.cfg.file .. ": local.command is required for the local target")
  end
  local vars = { port = port, version = version, service = self.name, host = "127.0.0.1",
                 root = sys.root or ".", project = self.cfg.project_dir }
  local argv = {}
  for i, a in ipairs(lc.command) do argv[i] = config.expand(a, vars, self.cfg.file .. ": local.command") end
  if not argv[1]:find("/", 1, true) then
    argv[1] = proc.which(argv[1]) or argv[1]
  elseif argv[1]:sub(1, 1) ~= "/" then
    argv[1] = fs.join(self.cfg.project_dir, argv[1])
  end
  local env = {}
  for k, v in pairs(lc.env or {}) do env[k] = config.expand(v, vars, self.cfg.file .. ": local.env") end
  return argv, env
end

function Local:start_process(version)
  local port, perr = http.free_port()
  if not port then errors.fail("no free port: " .. perr) end
  local argv, env = self:command(version, port)
  local logs = fs.join(self.dir, "logs")
  local ok, merr = fs.mkdir_p(logs, tonumber("700", 8))
  if not ok then errors.fail("cannot create " .. logs .. ": " .. merr) end
  local log = fs.join(logs, version .. ".log")
  local pid, err, _, raw = proc.spawn { argv = argv, env = env, log = log, cwd = self.cfg.project_dir }
  if not pid then
    local fail = (raw == "ELOOP" or raw == "EINVAL") and errors.refuse or errors.fail
    fail(string.format("cannot start %s %s: %s", self.name, version, err))
  end
  local started = start_time(pid)
  -- until it answers, the process is this call's: stopped on any error, ^C included
  local wok, werr = pcall(function()
    local deadline = time.now() + self.defaults.start_timeout
    while true do
      if not proc.alive(pid) then
        errors.fail(string.format("%s %s exited during start; the end of its log (%s):\n%s", self.name,
          version, log, log_tail(log)))
      end
      if self:healthz(port) then break end
      if time.now() > deadline then
        errors.fail(string.format("%s %s did not answer %s within %gs; the end of its log (%s):\n%s",
          self.name, version, self.cfg.health_path, self.defaults.start_timeout, log, log_tail(log)))
      end
      time.sleep(0.02)
    end
  end)
  if not wok then
    if proc.alive(pid) then proc.stop(pid, { timeout = self.defaults.stop_timeout }) end
    error(werr, 0)
  end
  return { pid = pid, port = port, log = log, started = time.wall(), start_time = started }
end

--- Waits until the gateway routes to `version` (both backends UP), at most
-- defaults.routable_timeout.
function Local:wait_routable(version)
  local deadline = time.now() + self.defaults.routable_timeout
  repeat
    local h = self.gateway:health(self.name)
    local v = h and h[version]
    if v and (v.default or ""):match("^UP") and (v.header or ""):match("^UP") then return true end
    time.sleep(0.02)
  until time.now() > deadline
  return false
end

-- The gateway port a first deploy gives the service: ROLLOUT_GATEWAY_PORT,
-- local.gateway_port, else a free one. One that another program listens on
-- is refused before anything starts.
function Local:pick_gateway_port()
  local port = config.gateway_port_env() or self.cfg["local"].gateway_port
  if port == 0 then
    local free, err = http.free_port()
    if not free then errors.fail("no free port for the gateway: " .. err) end
    return math.tointeger(free)
  end
  local owners = haproxy.listeners(port)
  if #owners > 0 then
    errors.fail(string.format("the gateway port %d of %s (%s) is taken by %s: stop it, or choose another " ..
      "port (local.gateway_port: 0 picks a free one)", port, self.name,
      config.gateway_port_env() and "ROLLOUT_GATEWAY_PORT" or "local.gateway_port", haproxy.describe_listeners(owners)),
      { code = "exists" })
  end
  return math.tointeger(port)
end

-- The directories a first deploy may create, those that do not exist yet
-- (removed again when it fails: a failed first deploy leaves nothing).
function Local:missing_dirs()
  local out = {}
  for _, d in ipairs { self.state_dir, fs.join(self.state_dir, "services"), self.dir, self.gateway.dir } do
    if not fs.stat(d) then out[#out + 1] = d end
  end
  return out
end

-- After a failed first deploy: removes what it created (logs, lock, the
-- gateway's files when no service uses it), innermost first.
function Local:remove_created(created)
  if fs.stat(self.state_file) or state.holds(self.lock_file) then return end
  local ok = pcall(function()
    local services = gateway_services(self.state_dir)
    for i = #created, 1, -1 do
      local d = created[i]
      if d == self.dir then
        fs.remove_tree(d)
      elseif d == self.gateway.dir then
        if #services == 0 and #self.gateway:masters() == 0 then fs.remove_tree(d) end
      elseif fs.stat(d) and #(fs.list(d) or { 1 }) == 0 then
        fs.remove(d)
      end
    end
  end)
  return ok
end

--- Deploys a version as a process on a free loopback port and registers it
-- in the gateway with weight 0. Idempotent for a running, healthy version
-- (opts.restart replaces it). Returns {name, pid, port, url, started=bool}.
-- A deploy that fails leaves what was there; a failed first deploy leaves
-- nothing (no state, log, lock or gateway file).
function Local:deploy(version, opts)
  config.check_name(version, "version")
  opts = opts or {}
  local created = self:missing_dirs()
  local first = not fs.stat(self.state_file)
  local ok, res = pcall(self.locked, self, function(st) return self:deploy_locked(version, opts, st) end)
  if not ok then
    if first then self:remove_created(created) end
    error(res, 0)
  end
  return res
end

function Local:deploy_locked(version, opts, st)
  local info = st.versions[version]
  if info and not opts.restart and self:alive(info) and self:healthz(info.port) then
    self:ensure_gateway(st)
    return { name = version, pid = info.pid, port = info.port, started = false, weight = info.weight or 0 }
  end
  local weight = info and info.weight or 0
  -- the gateway port before any process: a port that is taken refuses the deploy
  local gateway_port = st.gateway_port or self:pick_gateway_port()
  -- the new process first: a restart that fails leaves the old one serving
  local fresh = self:start_process(version)
  fresh.weight = weight
  local before = {}
  for k, v in pairs(st) do before[k] = v end
  before.versions = {}
  for v, i in pairs(st.versions) do before.versions[v] = i end
  st.versions[version] = fresh
  st.service = self.name
  st.header = self.cfg.version_header
  st.health_path = self.cfg.health_path
  st.gateway_port = gateway_port
  local ok, err = pcall(function()
    self:save_state(st)
    self:sync_gateway()
  end)
  if not ok then
    -- leave nothing half-done: the new process goes, the state is as before
    proc.stop(fresh.pid, { timeout = self.defaults.stop_timeout })
    pcall(function()
      if not info and not next(before.versions) then
        if fs.stat(self.state_file) then fs.remove(self.state_file) end
      else
        self:save_state(before)
      end
      self:sync_gateway()
    end)
    error(err, 0)
  end
  if not self:wait_routable(version) then
    errors.fail(string.format("the gateway does not route to %s %s (health check on %s failing?)",
      self.name, version, self.cfg.health_path))
  end
  -- the gateway routes to the new process: the old one (restart) can go
  if info and info.pid ~= fresh.pid and self:alive(info) then
    proc.stop(info.pid, { timeout = self.defaults.stop_timeout })
  end
  return { name = version, pid = fresh.pid, port = fresh.port, started = true, weight = weight,
           restarted = info ~= nil }
end

-- ------------------------------------------------------------- weights --

--- The deployed versions of state `st`, sorted.
function Local:deployed_names(st)
  return base.sorted_keys(st.versions)
end

-- The weights applied, {v = weight}, of state `st`.
local function current_map(st)
  local m = {}
  for v, info in pairs(st.versions) do m[v] = info.weight or 0 end
  return m
end

--- What the weight decisions need (rollout.target.base): the state `st`
-- (read when not given) and the deployed versions, their applied weights
-- and the strategy routes.
function Local:view(st)
  st = st or self:load_state()
  return { st = st, deployed = st.versions, names = self:deployed_names(st), weights = current_map(st),
           routes = st.routes or {} }
end

--- Why a deployed version cannot take weight (nil when it can): its
-- process is not running, or its health path does not answer 200.
function Local:unready(view, version)
  local info = view.deployed[version]
  if not self:alive(info) then
    return string.format("its process (pid %d) is not running (start it again: rollout scripts/ops.lua start %s %s)",
      info.pid, self.name, version)
  end
  local ok, status = self:healthz(info.port)
  if not ok then
    return string.format("is not healthy (%s answered %s)", self.cfg.health_path, tostring(status or "nothing"))
  end
  return nil
end

-- Puts the gateway back to `map`; returns true or false, why.
function Local:gateway_back(map)
  local ok, applied, err = pcall(function() return self.gateway:set_weights(self.name, map) end)
  if ok and applied then return true end
  return false, ok and err or errors.message(applied)
end

--- The change itself, with ^C deferred by the caller: its intent is
-- recorded in the state first (if the state cannot be written, nothing
-- changes), then TRAFFIC.yaml (unless `new_list` is nil), the gateway, and
-- the state with the new weights. Any failure puts the gateway and the
-- file back and says so; a process killed midway leaves the intent, and the
-- next command rolls the change back (Local:recover).
function Local:change_weights(st, map, previous, new_list, old_text)
  local path = self.cfg.traffic_file
  local new_text = new_list and traffic.render(new_list) or nil
  st.change = { from = previous, to = map, pid = proc.pid(), started = time.wall(),
                file = new_text and { path = path, before = old_text or json.null, after = new_text } or nil }
  local ok, err = pcall(self.save_state, self, st)
  if not ok then
    st.change = nil
    errors.fail(string.format("cannot record the weight change in the state, so nothing was changed: %s",
      errors.message(err)), { code = type(err) == "table" and err.code or "io" })
  end
  self.changing = true
  local function undo(why, gateway_touched)
    local notes = {}
    if gateway_touched then
      local back, berr = self:gateway_back(previous)
      notes[#notes + 1] = back and "the gateway was put back to " .. base.weights_text(previous)
        or "putting the gateway back failed too (" .. tostring(berr) .. ")"
    end
    if new_text then
      local wok, werr
      if old_text then wok, werr = fs.write_atomic(path, old_text) else wok, werr = fs.remove(path) end
      notes[#notes + 1] = wok and "TRAFFIC.yaml was put back" or "putting TRAFFIC.yaml back failed (" .. tostring(werr) .. ")"
    end
    st.change = nil
    for v, w in pairs(previous) do if st.versions[v] then st.versions[v].weight = w end end
    -- clearing the intent may fail like the write that failed; the next
    -- command then finds it and rolls back what is left (a no-op)
    pcall(self.save_state, self, st)
    self.changing = false
    errors.fail(why .. (#notes > 0 and ("; " .. table.concat(notes, "; ")) or ""))
  end
  if new_text then
    local wok, werr = fs.write_atomic(path, new_text)
    if not wok then undo("cannot write " .. werr) end
  end
  local gok, gerr = pcall(self.ensure_gateway, self, st)
  if not gok then undo(errors.message(gerr), false) end
  local aok, applied, aerr = pcall(self.gateway.set_weights, self.gateway, self.name, map)
  if not aok or not applied then
    undo(aok and aerr or errors.message(applied), true)
  end
  for v, w in pairs(map) do st.versions[v].weight = w end
  st.change = nil
  local sok, serr = pcall(self.save_state, self, st)
  if not sok then
    undo("cannot record the new weights in the state (" .. errors.message(serr) .. "), so the change was undone",
      true)
  end
  self.changing = false
  return applied
end

--- Rolls back a weight change another rollout left half-done (its intent
-- is still in the state: it was killed, or its machine stopped, midway):
-- the gateway and the state get the weights of before, and TRAFFIC.yaml
-- its bytes of before when it still holds what that change wrote (a file
-- changed since is left alone). Called with the lock held. Back, not
-- forward: the change never reported success, and the weights of before
-- were in effect and confirmed.
function Local:recover(st)
  local c = st.change
  if type(c) ~= "table" or type(c.from) ~= "table" then
    st.change = nil
    self:save_state(st)
    return
  end
  local done = {}
  local f = c.file
  if type(f) == "table" and f.path == self.cfg.traffic_file and type(f.after) == "string" then
    local now = fs.read(f.path, { max = config.MAX_FILE })
    if now == f.after then
      if type(f.before) == "string" then fs.write_atomic(f.path, f.before) else fs.remove(f.path) end
      done[#done + 1] = "TRAFFIC.yaml put back"
    elseif now ~= f.before then
      done[#done + 1] = "TRAFFIC.yaml left as it is (changed since)"
    end
  end
  for v, w in pairs(c.from) do
    if st.versions[v] and math.type(w) == "integer" then st.versions[v].weight = w end
  end
  st.change = nil
  self:save_state(st)
  if st.gateway_port and next(st.versions) then
    self:ensure_gateway(st)
    self.repaired = nil
    local back, err = self:gateway_back(current_map(st))
    done[#done + 1] = back and "the gateway put back" or ("the gateway could not be put back: " .. tostring(err))
  end
  self:note(string.format("a weight change (%s -> %s, by pid %s) was cut short before it ended: rolled back to " ..
    "%s (%s)", base.weights_text(c.from), type(c.to) == "table" and base.weights_text(c.to) or "?", tostring(c.pid),
    base.weights_text(current_map(st), self:deployed_names(st)), table.concat(done, ", ")))
end

--- Sets the weights: validate → write TRAFFIC.yaml atomically → apply to the
-- gateway → confirm. `w` is {v1 = 50, ...} or a TRAFFIC-style list; versions
-- not named get 0. On invalid input nothing changes (refusal, exit 2).
-- opts.write = false applies without writing TRAFFIC.yaml.
-- Returns { previous = {..}, weights = {..} (all deployed versions),
-- traffic = (TRAFFIC.yaml's new list) }: the flow of rollout.target.base.
-- The change ends whole even on ^C (deferred until it is done) and, when
-- the process is killed midway, is rolled back by the next command.
function Local:set_weights(w, opts)
  opts = opts or {}
  return base.set_weights(self, w, opts, function(view, map, previous, new_list, old_text)
    local st = view.st
    sys.critical(function()
      self:change_weights(st, map, previous, opts.write ~= false and new_list or nil, old_text)
    end)
  end)
end

-- -------------------------------------------------------------- routes --

--- Replaces the strategy-owned routes (see rollout.strategy.routes): validated,
-- recorded in the state, and the gateway reloaded with them (hitless).
-- Refused (exit 2, nothing changed) when a route names a version that is
-- not deployed. Returns the normalised routes now in effect.
function Local:set_routes(list)
  return self:locked(function(st)
    local norm = routes_lib.normalize(list, function(v) return st.versions[v] ~= nil end, "routes")
    local previous = st.routes
    st.routes = norm
    self:save_state(st)
    local ok, err = pcall(function() self:sync_gateway() end)
    if not ok then
      st.routes = previous
      self:save_state(st)
      pcall(function() self:sync_gateway() end)
      error(err, 0)
    end
    return norm
  end)
end

--- The strategy-owned routes in effect.
function Local:routes()
  return self:load_state().routes or {}
end

-- ------------------------------------------------------------ queries --

--- Every deployed version: {name, weight, share, ready, pid, port, gateway}.
function Local:versions()
  self:heal()
  local st = self:load_state()
  local names = self:deployed_names(st)
  local gw = self.gateway:running() and self.gateway:health(self.name) or {}
  local total = 0
  for _, v in ipairs(names) do total = total + (st.versions[v].weight or 0) end
  local out = {}
  for _, v in ipairs(names) do
    local info = st.versions[v]
    local alive = self:alive(info)
    local ok = alive and self:healthz(info.port)
    out[#out + 1] = {
      name = v, weight = info.weight or 0, share = total > 0 and (info.weight or 0) / total or 0,
      ready = ok and true or false, pid = info.pid, port = info.port,
      gateway = gw[v] and gw[v].header or "absent",
    }
  end
  return out
end

--- Health of one version (or all): the process, /healthz, and the gateway.
function Local:health(version)
  self:heal()
  local st = self:load_state()
  local gw = self.gateway:running() and self.gateway:health(self.name) or nil
  local function one(v)
    local info = st.versions[v]
    if not info then
      return { version = v, ok = false, process = false, detail = "not deployed" }
    end
    local alive = self:alive(info)
    local hz, status = false, nil
    if alive then hz, status = self:healthz(info.port) end
    local g = gw and gw[v]
    local gstate = gw == nil and "gateway down" or (g and g.header) or "absent"
    local detail
    if not alive then
      detail = string.format("process %d is not running", info.pid)
    elseif not hz then
      detail = string.format("%s answered %s", self.cfg.health_path, tostring(status or "nothing"))
    elseif not gstate:match("^UP") then
      detail = "the gateway sees it " .. gstate
    end
    return { version = v, ok = alive and hz and gstate:match("^UP") ~= nil, process = alive,
             healthz = hz, gateway = gstate, pid = info.pid, port = info.port, detail = detail }
  end
  if version then return one(version) end
  local all = {}
  for _, v in ipairs(self:deployed_names(st)) do all[#all + 1] = one(v) end
  return all
end

--- The gateway's Prometheus exporter (HAProxy's own, every service of the
-- state directory): { port =, url = "http://127.0.0.1:PORT/metrics", up =
-- (the gateway runs) }, or nil and why when the installed HAProxy has none.
function Local:exporter()
  if not haproxy.has_exporter() then
    return nil, "the installed HAProxy has no Prometheus exporter (haproxy -vv: no prometheus-exporter service)"
  end
  local port = self.gateway:exporter_port()
  return { port = port, url = string.format("http://127.0.0.1:%d/metrics", port), up = self.gateway:running() }
end

--- The responses and 5xx of each version on the service's weighted default
-- backend, as HAProxy counts them since it started (`show stat`):
-- { [version] = { n =, errors = } }, or nil and why.
function Local:gateway_counters()
  local st, err = self.gateway:stat()
  if not st then return nil, "cannot read the gateway's counters: " .. tostring(err) end
  local out = {}
  for v, row in pairs(st[haproxy.backend(self.name)] or {}) do
    out[v] = { n = tonumber(row.hrsp_1xx or 0) + tonumber(row.hrsp_2xx or 0) + tonumber(row.hrsp_3xx or 0)
                 + tonumber(row.hrsp_4xx or 0) + tonumber(row.hrsp_5xx or 0) + tonumber(row.hrsp_other or 0),
               errors = tonumber(row.hrsp_5xx or 0) }
  end
  return out
end

--- The URL verification probes: the service's frontend on the gateway.
function Local:endpoint()
  self:heal()
  local st = self:load_state()
  if not st.gateway_port then return nil end
  return string.format("http://127.0.0.1:%d%s", st.gateway_port, self.cfg.probe_path)
end

--- Where the three views of the weights disagree: TRAFFIC.yaml (desired),
-- the state (what rollout last applied) and the gateway (what HAProxy
-- holds), and what keeps them from agreeing (a change cut short, a gateway
-- that is down, a second HAProxy master, a TRAFFIC.yaml that cannot be
-- applied). nil when they agree; else { differences = {...}, repair = "the
-- command that repairs it", traffic =, applied =, gateway = }.
-- Read-only: it changes nothing (the pid file aside, when it is rewritten).
function Local:drift()
  local sok, st = pcall(self.load_state, self)
  if not sok then
    return { differences = { "the state cannot be read: " .. errors.message(st) },
             repair = "see the message; `rollout scripts/ops.lua delete_service " .. self.name .. "` starts afresh" }
  end
  if not next(st.versions) then return nil end
  if state.holds(self.lock_file) then return self:drift_of(st) end
  -- while another rollout works on the service (it holds the lock) the
  -- views may differ for a moment: nothing to report then
  local lock, _, code = fs.lock(self.lock_file, { what = self.name })
  if not lock and code == "locked" then return nil end
  local ok, res = pcall(function() return self:drift_of(self:load_state()) end)
  if lock then lock:unlock() end
  if not ok then error(res, 0) end
  return res
end

function Local:drift_of(st)
  if not next(st.versions) then return nil end
  local repair_cmd = "rollout scripts/ops.lua repair " .. self.name
  local names = self:deployed_names(st)
  local diffs, fixes = {}, {}
  local function differ(text, fix) diffs[#diffs + 1] = text; fixes[#fixes + 1] = fix end
  local c = st.change
  if type(c) == "table" then
    differ(string.format("a weight change (%s -> %s, by pid %s) was cut short before it ended",
      type(c.from) == "table" and base.weights_text(c.from) or "?",
      type(c.to) == "table" and base.weights_text(c.to) or "?",
      tostring(c.pid)), repair_cmd)
  end
  local recorded = {}
  for _, v in ipairs(names) do recorded[v] = st.versions[v].weight or 0 end
  local tok, list, text = pcall(self.traffic, self)
  local desired
  if not tok then
    differ("TRAFFIC.yaml cannot be applied: " .. errors.message(list),
      "fix " .. self.cfg.traffic_file .. ", then: " .. repair_cmd .. " (it never applies a bad file)")
  elseif text == nil then
    differ(string.format("there is no TRAFFIC.yaml to say what the weights should be (applied: %s)",
      base.weights_text(recorded, names)), "write it (set_weights does), then: " .. repair_cmd)
  else
    desired = {}
    for _, e in ipairs(list) do desired[e.name] = e.weight end
    -- what update_traffic or repair would refuse
    local cok, cerr = pcall(self.check_weights, self, list, self:view(st), self.cfg.traffic_file)
    if not cok then
      differ("TRAFFIC.yaml cannot be applied: " .. errors.message(cerr),
        "fix " .. self.cfg.traffic_file .. " (or start the version it names), then: " .. repair_cmd)
    end
    local differs = false
    for _, v in ipairs(names) do
      if (desired[v] or 0) ~= recorded[v] then differs = true end
    end
    if differs then
      differ(string.format("the gateway is not at TRAFFIC.yaml's weights (TRAFFIC.yaml: %s; applied: %s)",
        base.weights_text(desired, names), base.weights_text(recorded, names)),
        string.format("apply the file with: rollout scripts/ops.lua update_traffic %s (or repair)", self.name))
    end
  end
  local masters = self.gateway:masters()
  if #masters > 1 then
    differ(string.format("%d HAProxy masters serve this state directory (pids %s): fresh connections are split " ..
      "between them", #masters, table.concat(masters, ", ")), repair_cmd)
  end
  local gw
  if self.gateway:running() then
    if self.gateway.found then self:note(self.gateway.found); self.gateway.found = nil end
    gw = self.gateway:weights(self.name)
    local want = haproxy.scale(recorded)
    local bad = gw == nil
    for _, v in ipairs(names) do
      if gw and gw[v] ~= want[v] then bad = true end
    end
    if bad then
      differ(string.format("the gateway holds %s, not the applied %s (changed behind rollout's back?)",
        gw and base.weights_text(gw, names) or "no weights", base.weights_text(want, names)), repair_cmd)
    end
  elseif st.gateway_port then
    differ(#masters > 0 and string.format("the gateway (master pid %d) does not answer on its admin socket",
      masters[1]) or "the gateway is not running", repair_cmd)
  end
  if #diffs == 0 then return nil end
  -- one difference: its own fix; several: the command that repairs them all
  local fix = fixes[1]
  for _, f in ipairs(fixes) do
    if f ~= fixes[1] then fix = "repair with: " .. repair_cmd end
  end
  if fix == repair_cmd then fix = "repair with: " .. repair_cmd end
  return { differences = diffs, repair = fix, traffic = desired or json.null, applied = recorded,
           gateway = gw or json.null }
end

--- Brings the three views together, TRAFFIC.yaml winning (it is the
-- desired state: what the user edits, what checks judge against): a weight
-- change cut short is rolled back, HAProxy masters beside the one in charge
-- are stopped, a gateway that is down (or does not answer) is started with
-- its servers, and the file's weights are applied to the gateway and the
-- state (weights changed behind rollout's back are overwritten). A
-- TRAFFIC.yaml that is missing or bad, or gives weight to a version that is
-- not running and healthy, is refused (exit 2) before anything changes.
-- Returns { weights =, previous =, before = (the drift found, or nil) }.
function Local:repair()
  local before = self:drift()
  local function desired()
    local list, text = self:traffic()
    if text == nil then
      errors.refuse(string.format("%s: no such file: repair makes the gateway match it, so it must say what the " ..
        "weights are (set_weights writes it)", self.cfg.traffic_file))
    end
    return list, text
  end
  -- a bad file refuses the repair before anything is touched
  local list = desired()
  local st0 = self:load_state()
  if next(st0.versions) then self:check_weights(list, self:view(st0), self.cfg.traffic_file) end
  return self:locked(function(st)
    -- (locked rolled back a change cut short: the file may be the one of before)
    local text
    list, text = desired()
    if not next(st.versions) then
      self:sync_gateway() -- nothing deployed: no gateway either
      return { weights = {}, previous = {}, before = before }
    end
    local map = self:check_weights(list, self:view(st), self.cfg.traffic_file)
    local previous = current_map(st)
    local glock = state.lock(fs.join(self.gateway.dir, "lock"), "the gateway", self.defaults.gateway_lock_timeout)
    local ok, err = pcall(function()
      local keep = self.gateway:in_charge()
      if self.gateway.found then self:note(self.gateway.found); self.gateway.found = nil end
      local others = self.gateway:stop_others(keep)
      if #others > 0 then
        self:note(string.format("stopped %d other HAProxy master%s of this state directory (pid %s); pid %s " ..
          "serves", #others, #others == 1 and "" or "s", table.concat(others, ", "), tostring(keep or "-")))
      end
    end)
    glock:unlock()
    if not ok then error(err, 0) end
    sys.critical(function() self:change_weights(st, map, previous, nil, text) end)
    if self.repaired then self:note(self.repaired); self.repaired = nil end
    return { weights = map, previous = previous, before = before }
  end)
end

--- The weights the gateway reports (HAProxy scale), for checks.
function Local:gateway_weights()
  if not self.gateway:running() then return nil end
  return self.gateway:weights(self.name)
end

--- What is left of the service on this target (after remove()): state
-- files, a gateway frontend. An empty list when nothing is.
function Local:leftovers()
  local left = {}
  if fs.exists(self.state_file) then left[#left + 1] = "state file " .. self.state_file end
  if fs.exists(self.dir) then left[#left + 1] = "state directory " .. self.dir end
  if self.gateway:running() then
    local st = self.gateway:servers_state()
    if st and st[haproxy.backend(self.name)] then left[#left + 1] = "gateway backend " .. haproxy.backend(self.name) end
    local cfg = fs.read(self.gateway.cfg) or ""
    if cfg:find("frontend fe_" .. self.name .. "\n", 1, true) then left[#left + 1] = "gateway frontend fe_" .. self.name end
  end
  return left
end

-- ------------------------------------------------------------- removal --

--- Removes a version: drained from the gateway, process stopped, state and
-- TRAFFIC.yaml entry removed. A version that still has weight is refused
-- unless opts.force (then it is drained first, if others can take over).
-- Returns {name, pid}.
function Local:remove_version(version, opts)
  config.check_name(version, "version")
  return base.remove_version(self, version, opts, function(view)
    local st = view.st
    local info = st.versions[version]
    st.versions[version] = nil
    self:save_state(st)
    self:sync_gateway()
    if self:alive(info) then
      local ok, err = proc.stop(info.pid, { timeout = self.defaults.stop_timeout })
      if not ok then errors.fail(string.format("cannot stop %s (pid %d): %s", version, info.pid, err)) end
    end
    if info.log and fs.exists(info.log) then fs.remove(info.log) end
    return { name = version, pid = info.pid }
  end)
end

--- Removes the whole service: every process, its gateway frontend (the
-- gateway itself when no service uses it) and its state. TRAFFIC.yaml, the
-- desired state, is left as it is. Returns {versions = {{name, pid, port}},
-- gateway_port =}.
function Local:remove()
  local result = self:locked(function(st)
    local infos, names = st.versions, self:deployed_names(st)
    st.versions = {}
    self:save_state(st)
    self:sync_gateway()
    local removed = {}
    for _, v in ipairs(names) do
      local info = infos[v]
      if self:alive(info) then
        local ok, err = proc.stop(info.pid, { timeout = self.defaults.stop_timeout })
        if not ok then errors.fail(string.format("cannot stop %s (pid %d): %s", v, info.pid, err)) end
      end
      removed[#removed + 1] = { name = v, pid = info.pid, port = info.port }
    end
    fs.remove(self.state_file)
    local logs = fs.join(self.dir, "logs")
    if fs.exists(logs) then fs.remove_tree(logs) end
    return { versions = removed, gateway_port = st.gateway_port }
  end)
  -- the lock file last, once it is released
  if fs.exists(self.dir) then fs.remove_tree(self.dir) end
  return result
end

return M
