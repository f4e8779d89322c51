-- A private local-target world for end-to-end specs: its own state
-- directory and a copy of deployments/, and a way to run the rollout binary
-- in it. Everything it starts is stopped by PID in env:cleanup(), which the
-- specs call from teardown/finally.
--
--   local env = require("tests.helpers.local_env").new()
--   local r = env:rollout { "scripts/ops.lua", "start", "microservice-1", "v1" }
--   env:cleanup()
local proc = require "rollout.proc"
local fs = require "rollout.fs"
local json = require "rollout.json"
local http = require "rollout.http"
local time = require "rollout.time"
local fixture = require "tests.helpers.fixture"

local M = {}
local Env = {}
Env.__index = Env

M.root = os.getenv("ROLLOUT_ROOT") or "."
M.bin = fixture.bin
M.service = "microservice-1"

function M.new()
  local dir = assert(fs.mkdtemp("/tmp/rollout-e2e-"))
  local e = setmetatable({ dir = dir, pids = {} }, Env)
  e.state = fs.join(dir, "state")
  e.deployments = fs.join(dir, "deployments")
  assert(fs.mkdir_p(fs.join(e.deployments, M.service)))
  for _, f in ipairs { "service.yaml", "TRAFFIC.yaml" } do
    local text = assert(fs.read(fs.join(M.root, "deployments", M.service, f)))
    assert(fs.write_atomic(fs.join(e.deployments, M.service, f), text))
  end
  e.traffic_file = fs.join(e.deployments, M.service, "TRAFFIC.yaml")
  e.env = { ROLLOUT_STATE_DIR = e.state, ROLLOUT_DEPLOYMENTS = e.deployments, NO_COLOR = "1",
            ROLLOUT_TARGET = false, GATEWAY_ENDPOINT = false }
  return e
end

--- Runs the rollout binary with argv (relative script paths from the repo
-- root) in this world. Returns the proc.run result.
function Env:rollout(argv, opts)
  opts = opts or {}
  local full = { M.bin }
  for _, a in ipairs(argv) do full[#full + 1] = a end
  local env = {}
  for k, v in pairs(self.env) do env[k] = v end
  for k, v in pairs(opts.env or {}) do env[k] = v end
  local res, err = proc.run { argv = full, env = env, cwd = M.root, timeout = opts.timeout or 120,
                              stdin = opts.stdin }
  assert(res, err)
  return res
end

--- Runs Lua code in this world (with the stdlib), returns the result.
function Env:lua(code, opts)
  return self:rollout({ "-e", code }, opts)
end

--- Evaluates a Lua expression in this world and decodes its JSON value.
function Env:eval(expr)
  local r = self:lua("io.write(require('rollout.json').encode(" .. expr .. "))")
  assert(r.status == 0, r.stderr)
  return json.decode(r.stdout)
end

function Env:ops(...)
  return self:rollout { "scripts/ops.lua", ... }
end

--- The service's state file (nil when there is none or it is not JSON).
function Env:state_json()
  local text = fs.read(fs.join(self.state, "services", M.service, "state.json"))
  local ok, v = pcall(json.decode, text or "")
  return text and ok and type(v) == "table" and v or nil
end

function Env:gateway_pid()
  local text = fs.read(fs.join(self.state, "gateway", "haproxy.pid"))
  local pid = text and math.tointeger(tonumber(text:match("%d+") or ""))
  return pid and pid > 1 and pid or nil
end

--- The weights HAProxy reports for the service's default backend.
function Env:gateway_weights()
  local reply = http.unix_exchange(fs.join(self.state, "gateway", "admin.sock"), "show servers state\n")
  if not reply then return nil end
  local out = {}
  for line in reply:gmatch("[^\n]+") do
    local f = {}
    for w in line:gmatch("%S+") do f[#f + 1] = w end
    if #f >= 19 and f[2] == "be_" .. M.service then out[f[4]] = tonumber(f[8]) end
  end
  return out
end

--- Sends a raw command to HAProxy's admin socket (to change things behind
-- rollout's back).
function Env:haproxy(cmd)
  return http.unix_exchange(fs.join(self.state, "gateway", "admin.sock"), cmd .. "\n")
end

function Env:endpoint()
  local st = self:state_json()
  return st and st.gateway_port and string.format("http://127.0.0.1:%d/api/version", st.gateway_port)
end

--- The processes running in this world, whatever the state says: those
-- whose working directory is inside it (versions run in the project
-- directory, HAProxy in the state's gateway/). Sorted pids.
function Env:processes()
  local out = {}
  local me = proc.pid()
  for _, name in ipairs(fs.list("/proc") or {}) do
    local pid = name:match("^%d+$") and math.tointeger(tonumber(name))
    local cwd = pid and pid ~= me and fs.readlink("/proc/" .. pid .. "/cwd")
    if cwd and (cwd == self.dir or cwd:sub(1, #self.dir + 1) == self.dir .. "/") then out[#out + 1] = pid end
  end
  table.sort(out)
  return out
end

--- The HAProxy masters running this world's gateway config (by /proc).
function Env:masters()
  local cfg = fs.join(self.state, "gateway", "haproxy.cfg")
  local function ours(pid)
    local text = fs.read("/proc/" .. pid .. "/cmdline", { any = true })
    if not text then return false end
    local argv = {}
    for a in text:gmatch("([^%z]*)%z") do argv[#argv + 1] = a end
    if not (argv[1] or ""):match("haproxy$") then return false end
    for i = 1, #argv - 1 do if argv[i] == "-f" and argv[i + 1] == cfg then return true end end
    return false
  end
  local out = {}
  for _, name in ipairs(fs.list("/proc") or {}) do
    local pid = name:match("^%d+$") and math.tointeger(tonumber(name))
    if pid and ours(pid) then
      local stat = fs.read("/proc/" .. pid .. "/stat", { any = true }) or ""
      local ppid = tonumber(stat:match("^%d+ %(.*%) %a (%d+)") or "")
      if not (ppid and ppid > 1 and ours(ppid)) then out[#out + 1] = pid end
    end
  end
  table.sort(out)
  return out
end

--- Every pid the world knows of: versions, the gateway, what runs in it.
function Env:known_pids()
  local pids = {}
  local st = self:state_json()
  for _, v in pairs(st and st.versions or {}) do pids[#pids + 1] = v.pid end
  local g = self:gateway_pid()
  if g then pids[#pids + 1] = g end
  for _, p in ipairs(self.pids) do pids[#pids + 1] = p end
  for _, p in ipairs(self:masters()) do pids[#pids + 1] = p end
  for _, p in ipairs(self:processes()) do pids[#pids + 1] = p end
  return pids
end

--- Remembers a pid to stop in cleanup.
function Env:track(pid) self.pids[#self.pids + 1] = pid end

--- Stops everything by PID and removes the world.
function Env:cleanup()
  for _, pid in ipairs(self:known_pids()) do
    if pid > 1 and pid ~= proc.pid() and proc.alive(pid) then proc.stop(pid, { timeout = 3 }) end
  end
  -- HAProxy workers die with their master; make sure, by what the state said
  fs.remove_tree(self.dir)
end

-- ------------------------------------------------ the three views agree --

--- The three views of the weights: TRAFFIC.yaml (`file`, nil when absent
-- or invalid; `text` its bytes), the state (`applied`) and the gateway
-- (`gateway`, read through its admin socket).
function Env:views()
  local traffic = require "rollout.traffic"
  local text = fs.read(self.traffic_file)
  local file
  if text then
    local ok, list = pcall(traffic.parse, text, "TRAFFIC.yaml")
    file = ok and traffic.to_map(list) or nil
  end
  local st = self:state_json()
  local applied = {}
  for v, i in pairs(st and st.versions or {}) do applied[v] = i.weight or 0 end
  return { file = file, text = text, applied = applied, gateway = self:gateway_weights(), state = st }
end

--- Counts a sample of requests with an independent client (rollout.probe in
-- a process of its own, as many requests as test_traffic plans) and judges
-- it against `weights` with the same statistics. Returns
-- { ok =, counts =, errors =, reason = }.
function Env:count(weights)
  local code = string.format([[
    local probe, verify, json = require "rollout.probe", require "rollout.verify", require "rollout.json"
    local w = json.decode(%q)
    local res = assert(probe.run { url = %q, n = verify.requests(w), concurrency = 8, timeout = 2 })
    local v = verify.split(res, w)
    io.write(json.encode { ok = v.ok, counts = res.counts, errors = res.error_total, reason = v.reason or "" })]],
    json.encode(weights), self:endpoint())
  local r = self:lua(code)
  assert(r.status == 0, r.stderr)
  return json.decode(r.stdout)
end

local function text_of(map)
  local keys = {}
  for k in pairs(map or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. tostring(map[k]) end
  return table.concat(parts, " ")
end
M.text_of = text_of

--- Asserts that TRAFFIC.yaml, the state and the gateway agree (and equal
-- `expected` when given), that one HAProxy master serves the world, and
-- (unless opts.count == false) that an independent client sees that split.
-- Returns the views.
function Env:assert_agree(expected, opts)
  opts = opts or {}
  local v = self:views()
  local where = string.format("TRAFFIC.yaml: %s; state: %s; gateway: %s", v.file and text_of(v.file) or tostring(v.text),
    text_of(v.applied), text_of(v.gateway))
  assert(v.file, "TRAFFIC.yaml is missing or invalid: " .. where)
  assert(next(v.applied), "nothing is deployed: " .. where)
  for name, w in pairs(v.applied) do
    assert((v.file[name] or 0) == w, "TRAFFIC.yaml and the state differ: " .. where)
  end
  for name, w in pairs(v.file) do
    assert(w == 0 or v.applied[name], "TRAFFIC.yaml gives weight to a version not deployed: " .. where)
  end
  assert(text_of(v.applied) == text_of(v.gateway), "the state and the gateway differ: " .. where)
  if expected then assert(text_of(expected) == text_of(v.applied), "not at " .. text_of(expected) .. ": " .. where) end
  local masters = self:masters()
  assert(#masters == 1, "HAProxy masters of this world: " .. #masters .. " (" .. table.concat(masters, ", ") .. ")")
  assert(v.state and v.state.change == nil, "the state still records a change in progress")
  if opts.count ~= false then
    local c = self:count(v.applied)
    assert(c.ok, "an independent client does not see " .. text_of(v.applied) .. ": " .. c.reason .. " (counts: " ..
      text_of(c.counts) .. ")")
    v.counted = c
  end
  return v
end

--- Polls fn() until truthy or timeout; returns its value or nil.
M.wait = fixture.poll

--- True when something accepts connections on the port.
function M.port_open(port)
  local r = http.request { url = string.format("http://127.0.0.1:%d/", port), timeout = 1, connect_timeout = 1 }
  return r ~= nil
end

return M
