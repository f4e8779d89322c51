--- rollout.target.local: versions as real processes on loopback ports behind
-- a real HAProxy gateway. The embedded default target: no cluster needed.
--
-- State (shared by separate rollout invocations) lives in the state
-- directory: services/<service>/state.json (versions: pid, port, log, the
-- weight applied to the gateway), services/<service>/logs/, and gateway/
-- (HAProxy's config, sockets, pid). Every command that changes a service
-- holds services/<service>/lock; gateway changes also hold gateway/lock.
local fs = require "rollout.fs"
local proc = require "rollout.proc"
local http = require "rollout.http"
local time = require "rollout.time"
local sys = require "rollout.sys"
local weights_lib = require "rollout.weights"
local errors = require "rollout.errors"
local config = require "rollout.config"
local traffic = require "rollout.traffic"
local state = require "rollout.state"
local haproxy = require "rollout.gateway.haproxy"
local routes_lib = require "rollout.routes"

local M = {}
local Local = {}
Local.__index = Local

--- A local target for a loaded service config (rollout.config.load).
-- opts.wait: wait for another rollout working on the service (seconds or true).
function M.new(cfg, opts)
  local t = setmetatable({ cfg = cfg, name = cfg.name, opts = opts or {} }, Local)
  t.state_dir = config.state_dir()
  t.dir = fs.join(t.state_dir, "services", cfg.name)
  t.state_file = fs.join(t.dir, "state.json")
  t.lock_file = fs.join(t.dir, "lock")
  t.gateway = haproxy.new(fs.join(t.state_dir, "gateway"))
  t.target = "local"
  return t
end

-- ---------------------------------------------------------------- state --

function Local:load_state()
  local st = state.read(self.state_file, nil)
  if not st then
    st = { service = self.name, versions = {} }
  end
  st.versions = st.versions or {}
  return st
end

function Local:save_state(st)
  state.write(self.state_file, st)
end

--- Runs fn(state) holding the service lock (re-entrant within one call chain).
function Local:locked(fn)
  return state.with_lock(self.lock_file, self.name, self.opts.wait, function() return fn(self:load_state()) end)
end

-- The gateway's view of every service in the state directory.
local function gateway_services(state_dir)
  local dir = fs.join(state_dir, "services")
  local out = {}
  for _, name in ipairs(fs.exists(dir) and fs.list(dir) or {}) do
    local st = state.read(fs.join(dir, name, "state.json"), nil)
    if st and st.gateway_port and next(st.versions or {}) then
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
-- servers differ, stops it when no service uses it.
function Local:sync_gateway()
  local glock = state.lock(fs.join(self.gateway.dir, "lock"), "the gateway", 30)
  local ok, err = pcall(function()
    local services = gateway_services(self.state_dir)
    if #services == 0 then
      self.gateway:stop()
      return
    end
    if not self.gateway:running() then
      if self.gateway:pid() then self.gateway:stop() end
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
  self:sync_gateway()
  if not was_running then
    self.repaired = "the gateway was not running: restarted it with the last applied weights"
  end
end

--- Repairs what a crash left behind before a command looks at the
-- service: a gateway that should be running but is not is restarted with
-- the weights last applied (and the repair is reported on stderr).
function Local:repair()
  local st = self:load_state()
  if not st.gateway_port or not next(st.versions) or self.gateway:running() then return end
  self:locked(function(locked_st) self:ensure_gateway(locked_st) end)
  if self.repaired then
    local w = {}
    for _, v in ipairs(self:deployed_names(st)) do w[#w + 1] = v .. "=" .. (st.versions[v].weight or 0) end
    io.stderr:write(string.format("rollout: %s (%s)\n", self.repaired, table.concat(w, " ")))
    self.repaired = nil
  end
end

-- ------------------------------------------------------------ versions --

function Local:check_version(version)
  return config.check_name(version, "version")
end

local function healthz(port, path, timeout)
  local res = http.request { url = string.format("http://127.0.0.1:%d%s", port, path), timeout = timeout or 1,
                             connect_timeout = timeout or 1 }
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
  fs.mkdir_p(logs)
  local log = fs.join(logs, version .. ".log")
  local pid, err = proc.spawn { argv = argv, env = env, log = log, cwd = self.cfg.project_dir }
  if not pid then errors.fail(string.format("cannot start %s %s: %s", self.name, version, err)) end
  local deadline = time.now() + self.cfg["local"].start_timeout
  while true do
    if not proc.alive(pid) then
      errors.fail(string.format("%s %s exited during start; the end of its log (%s):\n%s", self.name,
        version, log, log_tail(log)))
    end
    if healthz(port, self.cfg.health_path, 0.5) then break end
    if time.now() > deadline then
      proc.stop(pid, { timeout = 2 })
      errors.fail(string.format("%s %s did not answer %s within %gs; the end of its log (%s):\n%s",
        self.name, version, self.cfg.health_path, self.cfg["local"].start_timeout, log, log_tail(log)))
    end
    time.sleep(0.02)
  end
  return { pid = pid, port = port, log = log, started = time.wall() }
end

--- Waits until the gateway routes to `version` (both backends UP).
function Local:wait_routable(version, timeout)
  local deadline = time.now() + (timeout or 10)
  repeat
    local h = self.gateway:health(self.name)
    local v = h and h[version]
    if v and (v.default or ""):match("^UP") and (v.header or ""):match("^UP") then return true end
    time.sleep(0.02)
  until time.now() > deadline
  return false
end

--- Deploys a version as a process on a free loopback port and registers it
-- in the gateway with weight 0. Idempotent for a running, healthy version
-- (opts.restart replaces it). Returns {name, pid, port, url, started=bool}.
function Local:deploy(version, opts)
  self:check_version(version)
  opts = opts or {}
  return self:locked(function(st)
    local info = st.versions[version]
    if info and not opts.restart and proc.alive(info.pid) and healthz(info.port, self.cfg.health_path) then
      self:ensure_gateway(st)
      return { name = version, pid = info.pid, port = info.port, started = false, weight = info.weight or 0 }
    end
    local weight = info and info.weight or 0
    -- the new process first: a restart that fails leaves the old one serving
    local fresh = self:start_process(version)
    fresh.weight = weight
    st.versions[version] = fresh
    st.service = self.name
    st.header = self.cfg.version_header
    st.health_path = self.cfg.health_path
    if not st.gateway_port then
      local env = tonumber(os.getenv("ROLLOUT_GATEWAY_PORT") or "")
      local port = env or self.cfg["local"].gateway_port
      if port == 0 then port = assert(http.free_port()) end
      st.gateway_port = math.tointeger(port)
    end
    local ok, err = pcall(function()
      self:save_state(st)
      self:sync_gateway()
    end)
    if not ok then
      -- leave nothing half-done: the new process goes, the state is as before
      proc.stop(fresh.pid, { timeout = 2 })
      st.versions[version] = info
      if not info and not next(st.versions) then
        fs.remove(self.state_file)
      else
        self:save_state(st)
      end
      pcall(function() self:sync_gateway() end)
      error(err, 0)
    end
    if not self:wait_routable(version, 10) then
      errors.fail(string.format("the gateway does not route to %s %s (health check on %s failing?)",
        self.name, version, self.cfg.health_path))
    end
    -- the gateway routes to the new process: the old one (restart) can go
    if info and info.pid ~= fresh.pid and proc.alive(info.pid) then proc.stop(info.pid, { timeout = 5 }) end
    return { name = version, pid = fresh.pid, port = fresh.port, started = true, weight = weight,
             restarted = info ~= nil }
  end)
end

-- ------------------------------------------------------------- weights --

--- The desired weights: TRAFFIC.yaml as a list (file order) and its bytes.
function Local:traffic()
  return traffic.load(self.cfg.traffic_file)
end

-- Checks a new weight list against what runs. Raises a refusal naming the
-- version; returns the map of weights for every deployed version.
function Local:check_weights(list, st, source)
  local map, any = {}, false
  for v in pairs(st.versions) do map[v] = 0 end
  for _, e in ipairs(list) do
    if e.weight > 0 then
      any = true
      local info = st.versions[e.name]
      if not info then
        errors.refuse(string.format("%s: version %s has weight %d but is not deployed (deployed: %s)",
          source, e.name, e.weight, next(st.versions) and table.concat(self:deployed_names(st), ", ") or "none"))
      end
      if not proc.alive(info.pid) then
        errors.refuse(string.format("%s: version %s has weight %d but its process (pid %d) is not running",
          source, e.name, e.weight, info.pid))
      end
      local ok, status = healthz(info.port, self.cfg.health_path)
      if not ok then
        errors.refuse(string.format("%s: version %s has weight %d but is not healthy (%s answered %s)",
          source, e.name, e.weight, self.cfg.health_path, tostring(status or "nothing")))
      end
    end
    if st.versions[e.name] then map[e.name] = e.weight end
  end
  if not any then
    errors.refuse(source .. ": all weights are 0: at least one version must receive traffic")
  end
  return map
end

function Local:deployed_names(st)
  local names = {}
  for v in pairs(st.versions) do names[#names + 1] = v end
  table.sort(names)
  return names
end

-- Applies a weight map to the gateway and the state, confirming the
-- gateway reports exactly those weights. Restores `previous` on failure.
function Local:apply(st, map, previous)
  self:ensure_gateway(st)
  local applied, err = self.gateway:set_weights(self.name, map)
  if not applied then
    local restored = self.gateway:set_weights(self.name, previous)
    errors.fail(err .. (restored and "; the previous weights were restored" or
      "; restoring the previous weights failed too"))
  end
  for v, w in pairs(map) do st.versions[v].weight = w end
  self:save_state(st)
  return applied
end

local function current_map(st)
  local m = {}
  for v, info in pairs(st.versions) do m[v] = info.weight or 0 end
  return m
end

--- Sets the weights: validate → write TRAFFIC.yaml atomically → apply to the
-- gateway → confirm. `w` is {v1 = 50, ...} or a TRAFFIC-style list; versions
-- not named get 0. On invalid input nothing changes (refusal, exit 2).
-- opts.write = false applies without writing TRAFFIC.yaml.
-- Returns { previous = {..}, weights = {..} (all deployed versions) }.
function Local:set_weights(w, opts)
  opts = opts or {}
  local list = traffic.normalize(w, opts.source or "weights")
  return self:locked(function(st)
    local source = opts.source or "weights"
    local map = self:check_weights(list, st, source)
    local previous = current_map(st)
    local old_list, old_text = self:traffic()
    local new_list = traffic.merge(old_list, list, function(v) return st.versions[v] ~= nil end,
      self:deployed_names(st))
    -- the change itself ends whole even on ^C: file, gateway and state
    traffic.transaction(self.cfg.traffic_file, new_list, old_text, opts.write,
      function() self:apply(st, map, previous) end)
    return { previous = previous, weights = map, traffic = new_list }
  end)
end

-- -------------------------------------------------------------- routes --

--- Replaces the strategy-owned routes (see rollout.routes): validated,
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
  self:repair()
  local st = self:load_state()
  local names = self:deployed_names(st)
  local gw = self.gateway:running() and self.gateway:health(self.name) or {}
  local total = 0
  for _, v in ipairs(names) do total = total + (st.versions[v].weight or 0) end
  local out = {}
  for _, v in ipairs(names) do
    local info = st.versions[v]
    local alive = proc.alive(info.pid)
    local ok = alive and healthz(info.port, self.cfg.health_path)
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
  self:repair()
  local st = self:load_state()
  local gw = self.gateway:running() and self.gateway:health(self.name) or nil
  local function one(v)
    local info = st.versions[v]
    if not info then
      return { version = v, ok = false, process = false, detail = "not deployed" }
    end
    local alive = proc.alive(info.pid)
    local hz, status = false, nil
    if alive then hz, status = healthz(info.port, self.cfg.health_path) end
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
-- state directory): { port =, url = "http://127.0.0.1:PORT/metrics" }, or
-- nil and why when the installed HAProxy has none.
function Local:exporter()
  if not haproxy.has_exporter() then
    return nil, "the installed HAProxy has no Prometheus exporter (haproxy -vv: no prometheus-exporter service)"
  end
  local port = self.gateway:exporter_port()
  return { port = port, url = string.format("http://127.0.0.1:%d/metrics", port) }
end

--- The URL verification probes: the service's frontend on the gateway.
function Local:endpoint()
  self:repair()
  local st = self:load_state()
  if not st.gateway_port then return nil end
  return string.format("http://127.0.0.1:%d%s", st.gateway_port, self.cfg.probe_path)
end

local function weights_text(names, map)
  local parts = {}
  for _, v in ipairs(names) do parts[#parts + 1] = v .. "=" .. tostring(map[v] or 0) end
  return table.concat(parts, " ")
end

--- Where the three views of the weights disagree: TRAFFIC.yaml (desired),
-- the state (what rollout last applied) and the gateway (what HAProxy
-- holds). nil when they agree; else { differences = {...}, repair = "..." }.
function Local:drift()
  local st = self:load_state()
  if not next(st.versions) then return nil end
  local names = self:deployed_names(st)
  local ok, list = pcall(self.traffic, self)
  if not ok then return nil end -- a broken TRAFFIC.yaml is reported where it is read
  local desired, recorded = {}, {}
  for _, v in ipairs(names) do recorded[v] = st.versions[v].weight or 0 end
  for _, e in ipairs(list) do desired[e.name] = e.weight end
  local diffs, repair = {}, nil
  local differs = false
  for _, v in ipairs(names) do
    if (desired[v] or 0) ~= recorded[v] then differs = true end
  end
  for _, e in ipairs(list) do
    if e.weight > 0 and not st.versions[e.name] then
      diffs[#diffs + 1] = string.format("TRAFFIC.yaml gives %s weight %d but %s is not deployed", e.name, e.weight,
        e.name)
      repair = repair or string.format("deploy it (rollout scripts/ops.lua start %s %s) or set its weight to 0",
        self.name, e.name)
    end
  end
  if differs then
    diffs[#diffs + 1] = string.format("the gateway is not at TRAFFIC.yaml's weights (TRAFFIC.yaml: %s; applied: %s)",
      weights_text(names, desired), weights_text(names, recorded))
    repair = string.format("apply the file with: rollout scripts/ops.lua update_traffic %s", self.name)
  end
  if self.gateway:running() then
    local gw = self.gateway:weights(self.name)
    local want = haproxy.scale(recorded)
    local bad = gw == nil
    for _, v in ipairs(names) do
      if gw and gw[v] ~= want[v] then bad = true end
    end
    if bad then
      diffs[#diffs + 1] = string.format("the gateway holds %s, not the applied %s (changed behind rollout's back?)",
        gw and weights_text(names, gw) or "no weights", weights_text(names, want))
      repair = repair or string.format("restore them with: rollout scripts/ops.lua update_traffic %s", self.name)
    end
  elseif st.gateway_port then
    diffs[#diffs + 1] = "the gateway is not running"
    repair = repair or string.format("any rollout command restarts it, e.g. rollout scripts/ops.lua ping %s",
      self.name)
  end
  if #diffs == 0 then return nil end
  return { differences = diffs, repair = repair, traffic = desired, applied = recorded }
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
function Local:remove_version(version, opts)
  self:check_version(version)
  opts = opts or {}
  return self:locked(function(st)
    local info = st.versions[version]
    if not info then
      errors.refuse(string.format("%s has no version %s (deployed: %s)", self.name, version,
        next(st.versions) and table.concat(self:deployed_names(st), ", ") or "none"))
    end
    for _, r in ipairs(st.routes or {}) do
      if r.version == version then
        errors.refuse(string.format("%s is the target of route %s (%s): clear the route first", version, r.name,
          routes_lib.describe({ r })[1]))
      end
    end
    if (info.weight or 0) > 0 then
      if not opts.force then
        errors.refuse(string.format("%s still has weight %d: set it to 0 first (or force)", version, info.weight))
      end
      local rest, others = {}, 0
      for v, i in pairs(st.versions) do
        if v ~= version then
          rest[v] = i.weight or 0
          others = others + rest[v]
        end
      end
      if others == 0 then
        errors.refuse(string.format("%s is the last version of %s serving traffic: give another version " ..
          "weight first (update_traffic or set_weights), then delete it", version, self.name))
      end
      rest[version] = 0
      self:set_weights(rest)
      st = self:load_state()
    end
    st.versions[version] = nil
    self:save_state(st)
    self:sync_gateway()
    if proc.alive(info.pid) then
      local ok, err = proc.stop(info.pid, { timeout = 5 })
      if not ok then errors.fail(string.format("cannot stop %s (pid %d): %s", version, info.pid, err)) end
    end
    if info.log and fs.exists(info.log) then fs.remove(info.log) end
    local list = self:traffic()
    local kept = {}
    for _, e in ipairs(list) do if e.name ~= version then kept[#kept + 1] = e end end
    if #kept ~= #list then traffic.save(self.cfg.traffic_file, kept) end
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
      if proc.alive(info.pid) then
        local ok, err = proc.stop(info.pid, { timeout = 5 })
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
