--- rollout.target.local.haproxy: the local target's gateway, a real HAProxy in
-- master-worker mode.
--
-- One HAProxy serves every service of a state directory: per service a
-- frontend on its gateway port, a weighted `balance roundrobin` backend for
-- default traffic and one backend per version for header routing (so a
-- request for a version that is down or absent gets 503, never another
-- version). Weights change live over the admin socket; adding or removing a
-- version regenerates the config, checks it with `haproxy -c`, dumps the
-- server state and reloads hitlessly (the master passes the listening
-- sockets to the new worker; weights and health survive through the
-- server-state file).
local fs = require "rollout.fs"
local proc = require "rollout.proc"
local sock = require "rollout.sock"
local time = require "rollout.time"
local errors = require "rollout.errors"

local haproxy = {}

haproxy.MAX_WEIGHT = 256 -- HAProxy's server weights are 0..256

local Gateway = {}
Gateway.__index = Gateway

--- A gateway living in `dir` (the state directory's gateway/); `d` holds
-- its timeouts (gateway_timeout, stop_timeout: rollout.defaults).
function haproxy.new(dir, d)
  local g = setmetatable({ dir = dir, defaults = d or require "rollout.defaults" }, Gateway)
  g.cfg = fs.join(dir, "haproxy.cfg")
  g.pidfile = fs.join(dir, "haproxy.pid")
  g.master_sock = fs.join(dir, "master.sock")
  g.admin_sock = fs.join(dir, "admin.sock")
  g.state_file = fs.join(dir, "server-state")
  g.log = fs.join(dir, "haproxy.log")
  g.routes_file = fs.join(dir, "routes.sig")
  g.exporter_file = fs.join(dir, "exporter.port")
  if #g.admin_sock > 100 then
    errors.fail("the state directory path is too long for a unix socket: " .. g.admin_sock ..
      " (set ROLLOUT_STATE_DIR to a shorter path)")
  end
  return g
end

--- The loopback port of HAProxy's Prometheus exporter (the frontend
-- fe_rollout_metrics, path /metrics): chosen once, when first needed
-- ($ROLLOUT_EXPORTER_PORT, else a free port), and kept in the gateway's
-- directory (exporter.port) while the gateway lives, like the services'
-- gateway ports, so a Prometheus pointed at it keeps finding it across
-- restarts and reloads.
function Gateway:exporter_port()
  local text = fs.read(self.exporter_file)
  local port = text and math.tointeger(tonumber(text:match("^%s*(%d+)")))
  if port and port > 0 and port < 65536 then return port end
  local ok, err = fs.mkdir_p(self.dir, tonumber("700", 8))
  if not ok then errors.fail("cannot create " .. self.dir .. ": " .. err) end
  port = math.tointeger(tonumber(os.getenv("ROLLOUT_EXPORTER_PORT") or ""))
  if port and (port < 1 or port > 65535) then errors.refuse("ROLLOUT_EXPORTER_PORT must be a port (1-65535)") end
  if not port then port, err = sock.free_port() end
  if not port then errors.fail("no free port for the gateway's metrics exporter: " .. tostring(err)) end
  fs.write_atomic(self.exporter_file, tostring(math.tointeger(port)) .. "\n", { mode = tonumber("644", 8) })
  return math.tointeger(port)
end

--- True when the installed HAProxy has the Prometheus exporter service
-- (`haproxy -vv`: "Available services : prometheus-exporter"; Debian's
-- 2.6 is built with USE_PROMEX=1). Asked once per process.
function haproxy.has_exporter()
  if haproxy.exporter_available == nil then
    local res = proc.run { argv = { "haproxy", "-vv" }, timeout = 10 }
    haproxy.exporter_available = res ~= nil and res.status == 0
      and (res.stdout .. res.stderr):find("prometheus-exporter", 1, true) ~= nil
  end
  return haproxy.exporter_available
end

function haproxy.backend(service) return "be_" .. service end
function haproxy.version_backend(service, version) return "be_" .. service .. "__" .. version end

--- Maps relative weights onto HAProxy's 0..256 keeping proportions (and any
-- positive weight positive). Returns a new {name = weight} map.
function haproxy.scale(weights)
  local max = 0
  for _, w in pairs(weights) do if w > max then max = w end end
  local out = {}
  for name, w in pairs(weights) do
    if max <= haproxy.MAX_WEIGHT then
      out[name] = w
    else
      local s = math.floor(w * haproxy.MAX_WEIGHT / max + 0.5)
      if w > 0 and s == 0 then s = 1 end
      out[name] = s
    end
  end
  return out
end

local sorted = require("rollout.target.base").sorted_keys

-- The strategy routes of a service as HAProxy rules: one use_backend per
-- match entry (entries are alternatives), the conditions of an entry on
-- one line (ANDed). Values were checked by rollout.strategy.routes (no quotes,
-- backslashes or '$'), so single quotes need no escaping; req.fhdr takes
-- the whole header value (req.hdr would split it at commas).
local function route_rules(svc)
  local out = {}
  for _, r in ipairs(svc.routes or {}) do
    for _, m in ipairs(r.match) do
      local conds = {}
      for _, h in ipairs(sorted(m.headers or {})) do
        conds[#conds + 1] = string.format("{ req.fhdr(%s) -m str '%s' }", h, m.headers[h])
      end
      for _, c in ipairs(sorted(m.cookies or {})) do
        conds[#conds + 1] = string.format("{ req.cook(%s) -m str '%s' }", c, m.cookies[c])
      end
      out[#out + 1] = string.format("  use_backend %s if %s # route %s", haproxy.version_backend(svc.name, r.version),
        table.concat(conds, " "), r.name)
    end
  end
  return out
end

--- A signature of every service's routes (what a running gateway was
-- configured with is kept next to its config).
function haproxy.routes_signature(services)
  local json = require "rollout.json"
  local parts = {}
  for _, svc in ipairs(services) do
    parts[#parts + 1] = svc.name .. "=" .. json.encode(svc.routes or {}, { sort_keys = true })
  end
  return table.concat(parts, "\n")
end

--- The configuration text for `services`: a list of
-- { name =, port = (gateway port), header =, health_path =,
--   versions = { [v] = { port =, weight = } }, routes = (rollout.strategy.routes) }.
function Gateway:render(services)
  local lines = {
    "# Generated by rollout: do not edit; it is rewritten on every change.",
    "global",
    "  stats socket " .. self.admin_sock .. " mode 600 level admin",
    "  server-state-file " .. self.state_file,
    "  maxconn 4096",
    "  nbthread 2",
    "",
    "defaults",
    "  mode http",
    "  timeout connect 2s",
    "  timeout client 30s",
    "  timeout server 30s",
    "  timeout http-keep-alive 30s",
    "  load-server-state-from-file global",
    "",
  }
  local function add(s) lines[#lines + 1] = s end
  -- HAProxy's built-in Prometheus exporter (addons/promex, built into
  -- Debian's 2.6 as the prometheus-exporter service): per server of every
  -- backend, haproxy_server_http_responses_total{proxy=,server=,code="5xx"}
  -- and haproxy_server_response_time_average_seconds, so each version has
  -- its series (rollout.metrics.prometheus reads them). Loopback only.
  if haproxy.has_exporter() then
    add("frontend fe_rollout_metrics")
    add("  bind 127.0.0.1:" .. self:exporter_port())
    add("  http-request use-service prometheus-exporter if { path /metrics }")
    add("  http-request return status 404")
    add("")
  end
  for _, svc in ipairs(services) do
    local names = sorted(svc.versions)
    local be = haproxy.backend(svc.name)
    local weights = {}
    for _, v in ipairs(names) do weights[v] = svc.versions[v].weight or 0 end
    weights = haproxy.scale(weights)
    add("frontend fe_" .. svc.name)
    add("  bind 127.0.0.1:" .. math.tointeger(svc.port))
    local hdr = svc.header
    if #names > 0 then
      add(string.format("  acl known_version req.hdr(%s) -m str %s", hdr, table.concat(names, " ")))
      add(string.format("  http-request return status 503 content-type application/json " ..
        "string \"{\\\"error\\\":\\\"no such version\\\"}\" if { req.hdr(%s) -m found } !known_version", hdr))
      for _, v in ipairs(names) do
        add(string.format("  use_backend %s if { req.hdr(%s) -m str %s }",
          haproxy.version_backend(svc.name, v), hdr, v))
      end
      for _, line in ipairs(route_rules(svc)) do add(line) end
    else
      add(string.format("  http-request return status 503 content-type application/json " ..
        "string \"{\\\"error\\\":\\\"no version deployed\\\"}\""))
    end
    add("  default_backend " .. be)
    add("")
    add("backend " .. be)
    add("  balance roundrobin")
    add("  option httpchk GET " .. svc.health_path)
    add("  http-check expect status 200")
    -- a refused connection goes to another version at once (default route only)
    add("  option redispatch 1")
    add("  retries 2")
    add("  default-server inter 500ms fastinter 250ms downinter 1s fall 2 rise 1")
    for _, v in ipairs(names) do
      add(string.format("  server %s 127.0.0.1:%d weight %d check", v,
        math.tointeger(svc.versions[v].port), weights[v]))
    end
    add("")
    for _, v in ipairs(names) do
      add("backend " .. haproxy.version_backend(svc.name, v))
      -- header traffic for a version that is down fails at once with 503
      add("  retries 0")
      add("  option httpchk GET " .. svc.health_path)
      add("  http-check expect status 200")
      add("  default-server inter 500ms fastinter 250ms downinter 1s fall 2 rise 1")
      add(string.format("  server %s 127.0.0.1:%d check", v, math.tointeger(svc.versions[v].port)))
      add("")
    end
  end
  return table.concat(lines, "\n") .. "\n"
end

-- ---------------------------------------------------- finding HAProxy --

local function proc_file(pid, name)
  return fs.read(string.format("/proc/%d/%s", pid, name), { any = true, max = 1024 * 1024 })
end

--- The argv of a running process (from /proc), or nil.
function haproxy.cmdline(pid)
  local text = proc_file(pid, "cmdline")
  if not text or text == "" then return nil end
  local argv = {}
  for a in text:gmatch("([^%z]*)%z") do argv[#argv + 1] = a end
  return argv
end

--- The parent pid of a running process, or nil.
function haproxy.ppid(pid)
  local text = proc_file(pid, "stat")
  local ppid = text and text:match("^%d+ %(.*%) %a (%d+)")
  return ppid and math.tointeger(tonumber(ppid)) or nil
end

--- The short name of a running process ("python3"), or nil.
function haproxy.comm(pid)
  local text = proc_file(pid, "comm")
  return text and text:gsub("%s+$", "") or nil
end

--- True when `pid` is an HAProxy running this gateway's config (master or
-- worker: workers are forked by the master and share its command line).
function Gateway:owns(pid)
  local argv = pid and haproxy.cmdline(pid)
  if not argv or not (argv[1] or ""):match("haproxy$") then return false end
  for i = 1, #argv - 1 do
    if argv[i] == "-f" and argv[i + 1] == self.cfg then return true end
  end
  return false
end

--- True when `pid` is this gateway's HAProxy master (ours, and its parent
-- is not: a worker's parent is the master).
function Gateway:is_master(pid)
  if not pid or pid <= 1 or not proc.alive(pid) or not self:owns(pid) then return false end
  local ppid = haproxy.ppid(pid)
  return not (ppid and ppid > 1 and self:owns(ppid))
end

--- Every HAProxy master running this gateway's config, found in /proc
-- whatever the pid file says (sorted pids).
function Gateway:masters()
  local out = {}
  for _, name in ipairs(fs.list("/proc") or {}) do
    local pid = name:match("^%d+$") and math.tointeger(tonumber(name))
    if pid and self:is_master(pid) then out[#out + 1] = pid end
  end
  table.sort(out)
  return out
end

--- Sends a command to the master socket (HAProxy's master CLI). Returns the
-- reply or nil, message.
function Gateway:master_cli(command, timeout)
  return sock.exchange(self.master_sock, command .. "\n", timeout or 5)
end

--- The master the master socket answers for, or nil.
function Gateway:socket_master()
  local reply = self:master_cli("show proc", 2)
  local pid = reply and reply:match("\n(%d+)%s+master")
  pid = pid and math.tointeger(tonumber(pid))
  if pid and self:is_master(pid) then return pid end
  return nil
end

--- The master's pid when it is running, else nil. The pid file is trusted
-- only when it names this gateway's master; when it is missing, corrupt or
-- names another process, the master is found through the master socket,
-- else in /proc (never guessed: a second master would be started beside a
-- running one), and the pid file is written back (self.found says so).
function Gateway:pid()
  local text, _, _, raw = fs.read(self.pidfile, { nofollow = true, max = 64 })
  local named = text and math.tointeger(tonumber(text:match("^%s*(%d+)%s*$") or ""))
  if named and self:is_master(named) then return named end
  local found, how = self:socket_master(), "the master socket"
  if not found then
    local masters = self:masters()
    -- several: the one whose worker answers on the admin socket, else the newest
    local worker = #masters > 1 and self:worker_pid()
    local parent = worker and haproxy.ppid(worker)
    for _, m in ipairs(masters) do if m == parent then found = m end end
    found, how = found or masters[#masters], "its command line in /proc"
  end
  if not found then return nil end
  local was = named and string.format("named pid %d, which is not its master", named)
    or (text and "was corrupt") or (raw == "ELOOP" and "was a symbolic link") or "was missing"
  fs.write_atomic(self.pidfile, found .. "\n", { mode = tonumber("600", 8) })
  self.found = string.format("the gateway's pid file %s: found its master (pid %d) through %s and wrote it back",
    was, found, how)
  return found
end

--- Of several masters, the one in charge: the parent of the worker that
-- answers on the admin socket (rollout talks to it), else the one the
-- master socket names, else pid(). The pid file is made to name it.
function Gateway:in_charge()
  local worker = self:worker_pid()
  local parent = worker and haproxy.ppid(worker)
  local master = (parent and self:is_master(parent) and parent) or self:socket_master()
  if not master then return self:pid() end
  local text = fs.read(self.pidfile, { nofollow = true, max = 64 })
  if not text or tonumber(text:match("%d+") or "") ~= master then
    fs.write_atomic(self.pidfile, master .. "\n", { mode = tonumber("600", 8) })
  end
  return master
end

--- The processes listening on TCP `port` (any local address), from
-- /proc/net/tcp{,6} and /proc/*/fd: a list of { pid =, name = } (an empty
-- table entry { } when the socket's owner is not visible to this user).
function haproxy.listeners(port)
  local inodes, count = {}, 0
  local hex = string.format("%04X", port)
  for _, file in ipairs { "/proc/net/tcp", "/proc/net/tcp6" } do
    local text = fs.read(file, { any = true }) or ""
    for line in text:gmatch("[^\n]+") do
      local lport = line:match("^%s*%d+: %x+:(%x+) %x+:%x+ 0A ")
      if lport == hex then
        local f = {}
        for w in line:gmatch("%S+") do f[#f + 1] = w end
        if f[10] and f[10] ~= "0" then inodes["socket:[" .. f[10] .. "]"] = true; count = count + 1 end
      end
    end
  end
  local out = {}
  if count == 0 then return out end
  local found = {}
  for _, name in ipairs(fs.list("/proc") or {}) do
    local pid = name:match("^%d+$") and math.tointeger(tonumber(name))
    local fds = pid and fs.list(string.format("/proc/%d/fd", pid))
    for _, fd in ipairs(fds or {}) do
      local target = fs.readlink(string.format("/proc/%d/fd/%s", pid, fd))
      if target and inodes[target] and not found[pid] then
        found[pid] = true
        out[#out + 1] = { pid = pid, name = haproxy.comm(pid) or "?" }
      end
    end
  end
  if #out == 0 then out[1] = {} end
  return out
end

--- "pid 123 (python3)" for a listeners() list.
function haproxy.describe_listeners(list)
  local parts = {}
  for _, l in ipairs(list) do
    parts[#parts + 1] = l.pid and string.format("pid %d (%s)", l.pid, l.name) or "a process this user cannot see"
  end
  return table.concat(parts, ", ")
end

--- Sends commands to the admin socket (one connection, ';'-separated).
-- Returns the reply or nil, message.
function Gateway:admin(command, timeout)
  local reply, err = sock.exchange(self.admin_sock, command .. "\n", timeout or 5)
  if not reply then return nil, err end
  return reply
end

--- The pid of the worker answering on the admin socket, or nil.
function Gateway:worker_pid()
  local reply = self:admin("show info", 2)
  local pid = reply and reply:match("\nPid: (%d+)")
  return pid and math.tointeger(tonumber(pid)) or nil
end

--- True when the gateway answers on its admin socket.
function Gateway:running()
  if not self:pid() then return false end
  local reply = self:admin("show info", 2)
  return reply ~= nil and reply:find("Pid:", 1, true) ~= nil
end

local function tail(path, lines)
  local text = fs.read(path, { nofollow = true }) or ""
  local out = {}
  for line in text:gmatch("[^\n]+") do
    out[#out + 1] = line
    if #out > lines then table.remove(out, 1) end
  end
  return table.concat(out, "\n")
end

--- Writes the config for `services` after checking it with `haproxy -c`.
function Gateway:write_config(services)
  local ok, err = fs.mkdir_p(self.dir, tonumber("700", 8))
  if not ok then errors.fail("cannot create " .. self.dir .. ": " .. err) end
  local text = self:render(services)
  local candidate = self.cfg .. ".new"
  ok, err = fs.write_atomic(candidate, text, { mode = tonumber("600", 8) })
  if not ok then errors.fail("cannot write " .. candidate .. ": " .. err) end
  if not fs.stat(self.state_file) then fs.write_atomic(self.state_file, "1\n", { mode = tonumber("600", 8) }) end
  local res, rerr = proc.run { argv = { "haproxy", "-c", "-q", "-f", candidate }, timeout = 20 }
  if not res then
    fs.remove(candidate)
    if rerr and rerr:find("cannot run", 1, true) then
      errors.fail("HAProxy is not installed (the local target needs it): run `make deps` " ..
        "or apt-get install haproxy")
    end
    errors.fail("cannot check the gateway config: " .. rerr)
  end
  if res.status ~= 0 then
    fs.remove(candidate)
    errors.fail("the generated gateway config is invalid (haproxy -c): " .. res.stdout .. res.stderr)
  end
  ok, err = os.rename(candidate, self.cfg)
  if not ok then errors.fail("cannot install " .. self.cfg .. ": " .. tostring(err)) end
  fs.write_atomic(self.routes_file, haproxy.routes_signature(services), { mode = tonumber("600", 8) })
  return text
end

--- Polls fn() until it returns a true value or `timeout` passes.
local function wait_for(fn, timeout, interval)
  local deadline = time.now() + timeout
  repeat
    local v = fn()
    if v then return v end
    time.sleep(interval or 0.02)
  until time.now() > deadline
  return nil
end

--- Parses `show servers state` into { [backend] = { [server] = {weight=, op=, admin=} } }.
function haproxy.parse_servers_state(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do
    local f = {}
    if not line:match("^#") then
      for word in line:gmatch("%S+") do f[#f + 1] = word end
    end
    if #f >= 19 then
      -- be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight ...
      local be, srv = f[2], f[4]
      out[be] = out[be] or {}
      out[be][srv] = { addr = f[5], op = tonumber(f[6]), admin = tonumber(f[7]),
                       weight = tonumber(f[8]), iweight = tonumber(f[9]), port = tonumber(f[19]) }
    end
  end
  return out
end

function Gateway:servers_state()
  local reply, err = self:admin("show servers state")
  if not reply then return nil, err end
  return haproxy.parse_servers_state(reply)
end

--- Parses `show stat` (CSV) into { [backend] = { [server] = {status=, check=, ...} } }.
function haproxy.parse_stat(text)
  local out, header = {}, nil
  for line in text:gmatch("[^\n]+") do
    if line:sub(1, 2) == "# " then
      header = {}
      for name in (line:sub(3) .. ","):gmatch("([^,]*),") do header[#header + 1] = name end
    elseif header and line ~= "" then
      local row, i = {}, 1
      for v in (line .. ","):gmatch("([^,]*),") do
        if header[i] then row[header[i]] = v end
        i = i + 1
      end
      if row.svname ~= "FRONTEND" and row.svname ~= "BACKEND" then
        out[row.pxname] = out[row.pxname] or {}
        out[row.pxname][row.svname] = row
      end
    end
  end
  return out
end

function Gateway:stat()
  local reply, err = self:admin("show stat")
  if not reply then return nil, err end
  return haproxy.parse_stat(reply)
end

--- True when the running worker has exactly the servers (and routes) of
-- `services`.
function Gateway:matches(services)
  if (fs.read(self.routes_file, { nofollow = true }) or "") ~= haproxy.routes_signature(services) then return false end
  local st = self:servers_state()
  if not st then return false end
  for _, svc in ipairs(services) do
    local be = st[haproxy.backend(svc.name)]
    if not be then return false end
    local n = 0
    for _ in pairs(be) do n = n + 1 end
    local want = 0
    for v, info in pairs(svc.versions) do
      want = want + 1
      if not be[v] or be[v].port ~= info.port then return false end
    end
    if n ~= want then return false end
  end
  return true
end

--- Starts HAProxy for `services`. Never beside a running master of this
-- gateway (fails naming it: adopt or stop it first), and never on a port
-- another program listens on (with SO_REUSEPORT both would get connections).
function Gateway:start(services)
  local running = self:masters()
  if #running > 0 then
    errors.fail(string.format("HAProxy is already running for %s (master pid %s): not starting a second one",
      self.dir, table.concat(running, ", ")))
  end
  for _, svc in ipairs(services) do
    local owners = haproxy.listeners(svc.port)
    if #owners > 0 then
      errors.fail(string.format("the gateway port %d of %s is taken by %s: stop it, or give %s another " ..
        "local.gateway_port", svc.port, svc.name, haproxy.describe_listeners(owners), svc.name), { code = "exists" })
    end
  end
  self:write_config(services)
  for _, f in ipairs { self.admin_sock, self.master_sock, self.pidfile } do
    if fs.stat(f) then fs.remove(f) end
  end
  -- rollout writes the pid file itself (atomically, never through a link);
  -- HAProxy is not given -p, so it writes nothing but its sockets there
  local pid, err = proc.spawn {
    argv = { "haproxy", "-W", "-f", self.cfg, "-S", self.master_sock .. ",mode,600" },
    log = self.log,
    pidfile = self.pidfile,
    cwd = self.dir,
  }
  if not pid then errors.fail("cannot start HAProxy: " .. err) end
  local up = wait_for(function()
    if not proc.alive(pid) then return "dead" end
    return self:matches(services) and "up"
  end, self.defaults.gateway_timeout)
  if up ~= "up" then
    if proc.alive(pid) then proc.stop(pid, { timeout = self.defaults.stop_timeout }) end
    for _, f in ipairs { self.admin_sock, self.master_sock, self.pidfile } do
      if fs.stat(f) then fs.remove(f) end
    end
    errors.fail("HAProxy did not start (" .. (up or "timed out") .. "); its log:\n" .. tail(self.log, 15))
  end
  return pid
end

--- The `show servers state` dump without the servers whose address
-- changes in `services`: HAProxy restores a server's address and port from
-- the state file on reload, so a version restarted on a new port would
-- keep pointing at its dead old one. Their weight comes from the config.
function haproxy.state_for(dump, services)
  local port = {}
  for _, svc in ipairs(services) do
    local be = haproxy.backend(svc.name)
    for v, info in pairs(svc.versions) do
      port[be .. "/" .. v] = info.port
      port[haproxy.version_backend(svc.name, v) .. "/" .. v] = info.port
    end
  end
  local out = {}
  for line in dump:gmatch("[^\n]*\n?") do
    local f = {}
    if not line:match("^#") then
      for word in line:gmatch("%S+") do f[#f + 1] = word end
    end
    local keep = true
    if #f >= 19 then
      local want = port[f[2] .. "/" .. f[4]]
      if want and tonumber(f[19]) ~= want then keep = false end
    end
    if keep then out[#out + 1] = line end
  end
  return table.concat(out)
end

--- Regenerates the config for `services` and reloads hitlessly: the server
-- state (weights, health) is dumped first so the new worker keeps it.
function Gateway:reload(services)
  local master = self:pid()
  if not master then return self:start(services) end
  local dump = self:admin("show servers state")
  if dump then fs.write_atomic(self.state_file, haproxy.state_for(dump, services), { mode = tonumber("600", 8) }) end
  self:write_config(services)
  local old_worker = self:worker_pid()
  local ok, err = proc.kill(master, "USR2")
  if not ok then errors.fail("cannot reload HAProxy: " .. err) end
  -- done when a new worker answers on the admin socket with the new servers
  -- (a change of routes alone leaves the servers as they were)
  local up = wait_for(function()
    if not proc.alive(master) then return "dead" end
    local w = self:worker_pid()
    return w and w ~= old_worker and self:matches(services) and "up"
  end, self.defaults.gateway_timeout)
  if up ~= "up" then
    errors.fail("HAProxy did not reload (" .. (up or "timed out") .. "); its log:\n" .. tail(self.log, 15))
  end
  return master
end

--- Sets the weights of a service's default backend in one admin exchange
-- and reads them back. Returns the scaled weights that are now in effect,
-- or nil, message.
function Gateway:set_weights(service, weights)
  local scaled = haproxy.scale(weights)
  local cmds = {}
  local be = haproxy.backend(service)
  for _, v in ipairs(sorted(scaled)) do
    cmds[#cmds + 1] = string.format("set server %s/%s weight %d", be, v, scaled[v])
  end
  local reply, err = self:admin(table.concat(cmds, ";"))
  if not reply then return nil, "the gateway did not answer: " .. err end
  local complaint = reply:gsub("%s+", " "):match("^%s*(.-)%s*$")
  if complaint ~= "" then return nil, "the gateway refused the weights: " .. complaint end
  local now = self:weights(service)
  if not now then return nil, "the gateway did not report its weights" end
  for v, w in pairs(scaled) do
    if now[v] ~= w then
      return nil, string.format("the gateway reports weight %s for %s, not %d", tostring(now[v]), v, w)
    end
  end
  return scaled
end

--- The weights the gateway has for a service: {version = weight}, or nil.
function Gateway:weights(service)
  local st = self:servers_state()
  if not st then return nil end
  local be = st[haproxy.backend(service)]
  if not be then return nil end
  local out = {}
  for v, info in pairs(be) do out[v] = math.tointeger(info.weight) end
  return out
end

--- The gateway's view of each version of a service:
-- { [version] = { default = "UP"/"DOWN"/..., header = "UP"/... } }.
function Gateway:health(service)
  local st = self:stat()
  if not st then return nil end
  local out = {}
  for v, row in pairs(st[haproxy.backend(service)] or {}) do
    out[v] = { default = row.status, check = row.check_status }
    local hb = st[haproxy.version_backend(service, v)]
    if hb and hb[v] then out[v].header = hb[v].status end
  end
  return out
end

--- Stops HAProxy (every master of this gateway, with their workers) and
-- removes its files.
function Gateway:stop()
  local pid = self:pid()
  local all = self:masters()
  if pid then table.insert(all, 1, pid) end
  local done = {}
  for _, m in ipairs(all) do
    if not done[m] and self:is_master(m) then
      done[m] = true
      local ok, err = proc.stop(m, { timeout = self.defaults.stop_timeout })
      if not ok then errors.fail("cannot stop HAProxy (pid " .. m .. "): " .. err) end
    end
  end
  for _, f in ipairs { self.admin_sock, self.master_sock, self.pidfile, self.state_file,
                       self.cfg, self.cfg .. ".new", self.routes_file, self.exporter_file } do
    if fs.stat(f) then fs.remove(f) end
  end
  return pid
end

--- Stops the masters of this gateway other than `keep` (a second master
-- started beside the first shares its port: connections split between
-- them). Returns the pids stopped.
function Gateway:stop_others(keep)
  local stopped = {}
  for _, m in ipairs(self:masters()) do
    if m ~= keep then
      local ok, err = proc.stop(m, { timeout = self.defaults.stop_timeout })
      if not ok then errors.fail("cannot stop HAProxy (pid " .. m .. "): " .. err) end
      stopped[#stopped + 1] = m
    end
  end
  return stopped
end

return haproxy
