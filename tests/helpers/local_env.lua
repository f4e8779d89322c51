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

local M = {}
local Env = {}
Env.__index = Env

M.root = os.getenv("ROLLOUT_ROOT") or "."
M.bin = os.getenv("ROLLOUT_BIN") or (M.root .. "/rollout")
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

--- The service's state file (nil when there is none).
function Env:state_json()
  local text = fs.read(fs.join(self.state, "services", M.service, "state.json"))
  return text and json.decode(text) or nil
end

function Env:gateway_pid()
  local text = fs.read(fs.join(self.state, "gateway", "haproxy.pid"))
  return text and tonumber(text:match("%d+"))
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

--- Every pid the world knows of: versions and the gateway.
function Env:known_pids()
  local pids = {}
  local st = self:state_json()
  for _, v in pairs(st and st.versions or {}) do pids[#pids + 1] = v.pid end
  local g = self:gateway_pid()
  if g then pids[#pids + 1] = g end
  for _, p in ipairs(self.pids) do pids[#pids + 1] = p end
  return pids
end

--- Remembers a pid to stop in cleanup.
function Env:track(pid) self.pids[#self.pids + 1] = pid end

--- Stops everything by PID and removes the world.
function Env:cleanup()
  for _, pid in ipairs(self:known_pids()) do
    if proc.alive(pid) then proc.stop(pid, { timeout = 3 }) end
  end
  -- HAProxy workers die with their master; make sure, by what the state said
  fs.remove_tree(self.dir)
end

--- Polls fn() until truthy or timeout; returns its value or nil.
M.wait = require("tests.helpers.check").wait

--- True when something accepts connections on the port.
function M.port_open(port)
  local r = http.request { url = string.format("http://127.0.0.1:%d/", port), timeout = 1, connect_timeout = 1 }
  return r ~= nil
end

return M
