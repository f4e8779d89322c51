-- The fake cluster for end-to-end specs (tests/fakes): the fake API server
-- with its stub gateway, a project with a copy of deployments/, the fake
-- helm, and rollout run as a child process. Every server is stopped by PID
-- (stop_server), also when a spec fails (call it from teardown/finally).
--
--   local kube = require "tests.helpers.kube_env"
--   local srv = kube.start_server(dir, {"--istio-version", "1.21"})
--   local project = kube.make_project(dir .. "/p", {routing = "gateway-api"})
--   local r = kube.rollout(kube.env_for(srv, project), {"scripts/ops.lua", "list", "microservice-1"})
local fixture = require "tests.helpers.fixture"
local proc = require "rollout.proc"
local fs = require "rollout.fs"
local http = require "rollout.http"
local json = require "rollout.json"

local kube = {}

kube.ROOT = fixture.root
kube.BIN = fixture.bin
kube.FAKES = kube.ROOT .. "/tests/fakes"
kube.SERVICE = "microservice-1"

local function read(path) return fs.read(path) or "" end
kube.read = read

local function lines_of(path)
  local out = {}
  for line in read(path):gmatch("[^\n]+") do out[#out + 1] = line end
  return out
end

--- Starts the fake API server with the stub gateway in `dir`; returns
-- {pid, port, gateway, url, kubeconfig, kubeconfig_exec, log, ca, out, dir}.
function kube.start_server(dir, extra)
  local s = { dir = dir, log = dir .. "/requests.jsonl", kubeconfig = dir .. "/kubeconfig",
              kubeconfig_exec = dir .. "/kubeconfig-exec", ca = dir .. "/certs/ca.crt", out = dir .. "/server.log" }
  local argv = { "/usr/bin/python3", kube.FAKES .. "/kube_apiserver.py", "--port", "0", "--certs", dir .. "/certs",
                 "--token", "tok-1", "--gateway-port", "0", "--request-log", s.log, "--ready-delay", "0.2",
                 "--kubeconfig-out", s.kubeconfig, "--kubeconfig-exec-out", s.kubeconfig_exec }
  for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
  s.pid = fixture.start_server { argv = argv, log = s.out, what = "the fake API server", ready = function(text)
    local port, gw = text:match("listening on 127%.0%.0%.1:(%d+)"), text:match("gateway on 127%.0%.0%.1:(%d+)")
    if port and gw then
      s.port, s.gateway = tonumber(port), tonumber(gw)
      return true
    end
  end }
  s.url = string.format("http://127.0.0.1:%d/api/version", s.gateway)
  return s
end

function kube.stop_server(s)
  if s and s.pid then
    local pid = s.pid
    s.pid = nil
    assert(proc.stop(pid, { timeout = 10 }))
  end
end

--- A project directory with a copy of deployments/; `kubernetes` entries
-- replace or add keys of service.yaml's kubernetes: section.
function kube.make_project(dir, kubernetes)
  assert(fs.mkdir_p(dir))
  local r = assert(proc.run { argv = { "cp", "-r", kube.ROOT .. "/deployments", dir .. "/deployments" }, timeout = 30 })
  assert(r.status == 0, r.stderr)
  local p = { dir = dir, deployments = dir .. "/deployments",
              file = dir .. "/deployments/" .. kube.SERVICE .. "/service.yaml",
              traffic = dir .. "/deployments/" .. kube.SERVICE .. "/TRAFFIC.yaml",
              state = dir .. "/state", helm_state = dir .. "/helm", helm_log = dir .. "/helm.log" }
  kube.set_kubernetes(p, kubernetes)
  return p
end

--- Sets keys of the kubernetes: section (the file's last section).
function kube.set_kubernetes(p, kubernetes)
  local text = read(p.file)
  if kubernetes then
    local lines = {}
    for k, v in pairs(kubernetes) do lines[#lines + 1] = string.format("  %s: %s", k, v) end
    table.sort(lines)
    for k in pairs(kubernetes) do text = text:gsub("\n  " .. k:gsub("%-", "%%-") .. ":[^\n]*", "") end
    text = text:gsub("\n*$", "\n") .. table.concat(lines, "\n") .. "\n"
  end
  assert(fs.write_atomic(p.file, text))
end

function kube.env_for(srv, project, extra)
  local env = {
    PATH = kube.FAKES .. "/bin:" .. (os.getenv("PATH") or "/usr/bin:/bin"),
    KUBECONFIG = srv.kubeconfig, HELM_FAKE_STATE = project.helm_state, HELM_FAKE_LOG = project.helm_log,
    HELM_FAKE_WAIT_INTERVAL = "0.05", ROLLOUT_STATE_DIR = project.state, ROLLOUT_DEPLOYMENTS = project.deployments,
    NO_COLOR = "1", GATEWAY_ENDPOINT = false, ROLLOUT_TARGET = false, ROLLOUT_GATEWAY_PORT = false,
    FAKE_EXEC_FAIL = false, FAKE_EXEC_HANG = false, HELM_FAKE_FAIL = false, HELM_FAKE_HANG = false,
  }
  for k, v in pairs(extra or {}) do env[k] = v end
  return env
end

--- Runs `rollout --target kubernetes ARGS...` -> proc.run's result with
-- .output = stdout .. stderr.
function kube.rollout(env, args, timeout)
  local argv = { kube.BIN, "--target", "kubernetes" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local r, err = proc.run { argv = argv, env = env, cwd = kube.ROOT, timeout = timeout or 300 }
  assert(r, "cannot run rollout: " .. tostring(err))
  r.output = (r.stdout or "") .. (r.stderr or "")
  return r
end

function kube.script(name) return kube.ROOT .. "/scripts/" .. name end

--- The request log after line `from`, decoded.
function kube.requests(srv, from)
  local out = {}
  for i, line in ipairs(lines_of(srv.log)) do
    if i > (from or 0) then out[#out + 1] = assert(json.decode(line)) end
  end
  return out
end

function kube.log_mark(srv) return #lines_of(srv.log) end

local WRITES = { POST = true, PUT = true, PATCH = true, DELETE = true }

--- Write requests after `from`: "METHOD resource/name manager".
function kube.writes(srv, from)
  local out = {}
  for _, r in ipairs(kube.requests(srv, from)) do
    if WRITES[r.method] and not tostring(r.path):find("^/_fake/") then
      local fm = r.field_manager
      if fm == json.null or fm == nil then fm = "-" end
      out[#out + 1] = string.format("%s %s/%s %s", r.method, tostring(r.resource), tostring(r.name), fm)
    end
  end
  return out
end

--- An API request straight to the server (token + CA): status, decoded body.
function kube.api(srv, method, path, body, ctype)
  local r, err = http.request { url = string.format("https://127.0.0.1:%d%s", srv.port, path), ca_file = srv.ca,
    method = method, body = body and (type(body) == "string" and body or json.encode(body)) or nil, timeout = 10,
    headers = { Authorization = "Bearer tok-1", Accept = "application/json",
                ["Content-Type"] = body and (ctype or "application/json") or nil } }
  assert(r, method .. " " .. path .. ": " .. tostring(err))
  return r.status, (r.body ~= "" and json.decode(r.body)) or nil, r
end

function kube.get(srv, path)
  local st, obj = kube.api(srv, "GET", path)
  if st == 404 then return nil end
  assert(st == 200, "GET " .. path .. ": " .. st)
  return obj
end

--- `n` requests to the stub gateway with `headers`: {version = count},
-- {status = count}.
function kube.probe(srv, n, headers)
  local versions, statuses = {}, {}
  for _ = 1, n do
    local res = assert(http.request { url = srv.url, timeout = 5, headers = headers })
    statuses[res.status] = (statuses[res.status] or 0) + 1
    if res.status == 200 then
      local v = json.decode(res.body).version
      versions[v] = (versions[v] or 0) + 1
    end
  end
  return versions, statuses
end

--- The releases the fake helm keeps (name -> last status).
function kube.releases(project)
  local dir = project.helm_state .. "/default"
  local out = {}
  if fs.exists(dir) then
    for _, name in ipairs(fs.list(dir)) do
      local revs = {}
      for _, f in ipairs(fs.list(dir .. "/" .. name)) do
        local n = tonumber(f:match("^(%d+)%.json$"))
        if n then revs[#revs + 1] = n end
      end
      table.sort(revs)
      if #revs > 0 then
        local rel = json.decode(read(string.format("%s/%s/%d.json", dir, name, revs[#revs])))
        out[name] = rel.info.status
      end
    end
  end
  return out
end

return kube
