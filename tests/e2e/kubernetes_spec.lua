-- The Kubernetes target end to end, against the fakes (tests/fakes): the
-- fake API server (HTTPS, server-side apply, simulated controllers, request
-- log) with its stub gateway routing by the applied VirtualService/HTTPRoute,
-- and the fake helm CLI. rollout runs as a child process, exactly as a user
-- runs it: `rollout --target kubernetes scripts/run_all.lua SERVICE ENDPOINT`.
-- SHOW_MESSAGES=1 prints the one-line errors of the bad-input runs.
local fixture = require "tests.helpers.fixture"
local kube_env = require "tests.helpers.kube_env"
local proc = require "rollout.proc"
local fs = require "rollout.fs"
local http = require "rollout.http"
local json = require "rollout.json"
local time = require "rollout.time"
local istio = require "rollout.istio"

local ROOT = fixture.root
local BIN = fixture.bin
local FAKES = ROOT .. "/tests/fakes"
local SERVICE = "microservice-1"

-- ----------------------------------------------------------------- helpers

local function read(path) return fs.read(path) or "" end

local function lines_of(path)
  local out = {}
  for line in read(path):gmatch("[^\n]+") do out[#out + 1] = line end
  return out
end

-- The fake API server with the stub gateway (tests/helpers/kube_env.lua).
local start_server, stop_server = kube_env.start_server, kube_env.stop_server

-- A project directory with a copy of deployments/ (service.yaml, TRAFFIC.yaml,
-- the chart); `kube` is appended to the kubernetes: section of service.yaml.
local function make_project(dir, kube)
  assert(fs.mkdir_p(dir))
  local r = assert(proc.run { argv = { "cp", "-r", ROOT .. "/deployments", dir .. "/deployments" }, timeout = 30 })
  assert(r.status == 0, r.stderr)
  local file = dir .. "/deployments/" .. SERVICE .. "/service.yaml"
  local text = read(file)
  if kube then
    local lines = {}
    for k, v in pairs(kube) do lines[#lines + 1] = string.format("  %s: %s", k, v) end
    table.sort(lines)
    -- the kubernetes: section is the file's last; drop a key it already has
    for k in pairs(kube) do text = text:gsub("\n  " .. k:gsub("%-", "%%-") .. ":[^\n]*", "") end
    text = text:gsub("\n*$", "\n") .. table.concat(lines, "\n") .. "\n"
  end
  assert(fs.write_atomic(file, text))
  return { dir = dir, deployments = dir .. "/deployments", traffic = dir .. "/deployments/" .. SERVICE .. "/TRAFFIC.yaml",
           state = dir .. "/state", helm_state = dir .. "/helm", helm_log = dir .. "/helm.log" }
end

local function env_for(srv, project, extra)
  local env = {
    PATH = FAKES .. "/bin:" .. (os.getenv("PATH") or "/usr/bin:/bin"),
    KUBECONFIG = srv.kubeconfig,
    HELM_FAKE_STATE = project.helm_state,
    HELM_FAKE_LOG = project.helm_log,
    HELM_FAKE_WAIT_INTERVAL = "0.05",
    ROLLOUT_STATE_DIR = project.state,
    ROLLOUT_DEPLOYMENTS = project.deployments,
    NO_COLOR = "1",
    GATEWAY_ENDPOINT = false, ROLLOUT_TARGET = false, ROLLOUT_GATEWAY_PORT = false,
    FAKE_EXEC_FAIL = false, FAKE_EXEC_HANG = false, HELM_FAKE_FAIL = false, HELM_FAKE_HANG = false,
  }
  for k, v in pairs(extra or {}) do env[k] = v end
  return env
end

-- Runs `rollout --target kubernetes ARGS...`; returns the proc.run result
-- with .output = stdout .. stderr.
local function rollout(env, args, timeout)
  local argv = { BIN, "--target", "kubernetes" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local r, err = proc.run { argv = argv, env = env, cwd = ROOT, timeout = timeout or 300 }
  assert(r, "cannot run rollout: " .. tostring(err))
  r.output = (r.stdout or "") .. (r.stderr or "")
  return r
end

local function script(name) return ROOT .. "/scripts/" .. name end

-- The request log from line `from` + 1 on, decoded.
local function requests(srv, from)
  local out = {}
  for i, line in ipairs(lines_of(srv.log)) do
    if i > (from or 0) then out[#out + 1] = assert(json.decode(line)) end
  end
  return out
end

local function log_mark(srv) return #lines_of(srv.log) end

local writes_methods = { POST = true, PUT = true, PATCH = true, DELETE = true }

-- The write requests (POST/PUT/PATCH/DELETE) after `from`, as strings
-- "METHOD resource/name manager".
local function writes(srv, from)
  local out = {}
  for _, r in ipairs(requests(srv, from)) do
    if writes_methods[r.method] then
      local fm = r.field_manager
      if fm == json.null or fm == nil then fm = "-" end
      out[#out + 1] = string.format("%s %s/%s %s", r.method, tostring(r.resource), tostring(r.name), fm)
    end
  end
  return out
end

-- GET a routing object straight from the API server (token + CA, no rollout).
local function api_get(srv, path)
  local r, err = http.request { url = string.format("https://127.0.0.1:%d%s", srv.port, path), ca_file = srv.ca,
                                headers = { Authorization = "Bearer tok-1", Accept = "application/json" }, timeout = 10 }
  assert(r, "GET " .. path .. ": " .. tostring(err))
  if r.status == 404 then return nil end
  assert(r.status == 200, "GET " .. path .. ": " .. r.status .. " " .. r.body)
  return assert(json.decode(r.body))
end

local VS_PATH = "/apis/networking.istio.io/v1/namespaces/default/virtualservices/" .. SERVICE
local DR_PATH = "/apis/networking.istio.io/v1/namespaces/default/destinationrules/" .. SERVICE
local ROUTE_PATH = "/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes/" .. SERVICE
local SVC_PATH = "/api/v1/namespaces/default/services/" .. SERVICE

local cfg = { name = SERVICE, kubernetes = {} }

local function vs_weights(srv)
  local vs = api_get(srv, VS_PATH)
  return vs and istio.route_weights(cfg, vs), vs
end

-- The releases the fake helm keeps (HELM_FAKE_STATE/<namespace>/<release>).
local function releases(project)
  local dir = project.helm_state .. "/default"
  local out = {}
  if fs.exists(dir) then
    for _, name in ipairs(fs.list(dir)) do
      if #fs.list(dir .. "/" .. name) > 0 then out[#out + 1] = name end
    end
  end
  table.sort(out)
  return out
end

local function helm_upgrades(project)
  local n = 0
  for _, line in ipairs(lines_of(project.helm_log)) do
    local argv = assert(json.decode(line)).argv
    if argv[1] == "upgrade" or argv[1] == "install" then n = n + 1 end
  end
  return n
end

local function count(list, item)
  local n = 0
  for _, x in ipairs(list) do if x == item then n = n + 1 end end
  return n
end

local routing_versions = { v1 = { "v1" }, v2 = { "v1", "v2" }, v3 = { "v1", "v2", "v3" } }

-- What a deploy writes: helm's Deployment, then rollout's routing objects.
local function deploy_writes(v, routing)
  local out = { "PATCH deployments/" .. SERVICE .. "-" .. v .. " helm", "PATCH services/" .. SERVICE .. " rollout" }
  if routing == "gateway-api" then
    -- every deployed version's Service is applied (idempotent) before the route
    for _, x in ipairs(routing_versions[v]) do out[#out + 1] = "PATCH services/" .. SERVICE .. "-" .. x .. " rollout" end
    out[#out + 1] = "PATCH httproutes/" .. SERVICE .. " rollout"
  else
    out[#out + 1] = "PATCH destinationrules/" .. SERVICE .. " rollout"
    out[#out + 1] = "PATCH virtualservices/" .. SERVICE .. " rollout"
  end
  return out
end

local function append(list, items)
  for _, x in ipairs(items) do list[#list + 1] = x end
  return list
end

-- ------------------------------------------------------------------ tests

describe("the kubernetes target against the fake cluster", function()
  local tmp, srv

  setup(function()
    tmp = fixture.tmpdir()
    srv = start_server(tmp)
  end)

  teardown(function()
    local ok, err = pcall(stop_server, srv)
    fixture.remove(tmp)
    assert(ok, err)
  end)

  it("runs the seven-step workflow with one API write per traffic change", function()
    local project = make_project(fixture.tmpdir())
    finally(function() fixture.remove(project.dir) end)
    local mark = log_mark(srv)
    local t0 = time.now()
    local r = rollout(env_for(srv, project), { script("run_all.lua"), SERVICE, srv.url })
    local took = time.now() - t0
    assert.equal(0, r.status, r.output)
    assert.truthy(r.output:find("Passed: 7", 1, true), r.output)
    assert.truthy(r.output:find("Failed: 0", 1, true), r.output)
    print(string.format("  run_all on the kubernetes target: %.1f s", took))
    -- every write the whole workflow made, in order
    local VS = "PATCH virtualservices/" .. SERVICE .. " rollout"
    local expected = {}
    append(expected, deploy_writes("v1"))
    append(expected, deploy_writes("v2"))
    append(expected, { VS })       -- step 0: set_weights v1=50 v2=50
    append(expected, deploy_writes("v3"))
    append(expected, { VS })       -- step 2: set_weights v1=50 v2=50 v3=0
    append(expected, { VS })       -- step 3: v1=50 v2=50 v3=50
    append(expected, { VS })       -- step 4: v2=0
    append(expected, { VS })       -- step 5: v3=100
    append(expected, {             -- step 6: routes first, releases, the Service
      "DELETE virtualservices/" .. SERVICE .. " -", "DELETE destinationrules/" .. SERVICE .. " -",
      "DELETE deployments/" .. SERVICE .. "-v1 -", "DELETE deployments/" .. SERVICE .. "-v2 -",
      "DELETE deployments/" .. SERVICE .. "-v3 -", "DELETE services/" .. SERVICE .. " -",
    })
    assert.same(expected, writes(srv, mark))
    -- no traffic change was a helm upgrade: helm ran once per deploy
    assert.equal(3, helm_upgrades(project))
    -- nothing left on the cluster; TRAFFIC.yaml (desired state) is kept
    assert.is_nil(api_get(srv, VS_PATH))
    assert.is_nil(api_get(srv, DR_PATH))
    assert.is_nil(api_get(srv, SVC_PATH))
    assert.same({}, releases(project))
    assert.is_false(fs.exists(project.state .. "/services/" .. SERVICE))
    assert.equal("versions:\n- name: v1\n  weight: 0\n- name: v2\n  weight: 0\n- name: v3\n  weight: 100\n",
      read(project.traffic))
  end)

  it("runs each step script alone, in sequence", function()
    local project = make_project(fixture.tmpdir())
    finally(function() fixture.remove(project.dir) end)
    local env = env_for(srv, project)
    local VS = "PATCH virtualservices/" .. SERVICE .. " rollout"
    local steps = {
      { "step0_baseline.lua", append(append(append({}, deploy_writes("v1")), deploy_writes("v2")), { VS }),
        { v1 = 50, v2 = 50 } },
      { "step1_verify_baseline.lua", {}, { v1 = 50, v2 = 50 } },
      { "step2_deploy_v3.lua", append(append({}, deploy_writes("v3")), { VS }), { v1 = 50, v2 = 50, v3 = 0 } },
      { "step3_add_v3.lua", { VS }, { v1 = 50, v2 = 50, v3 = 50 } },
      { "step4_retire_v2.lua", { VS }, { v1 = 50, v2 = 0, v3 = 50 } },
      { "step5_retire_v1.lua", { VS }, { v1 = 0, v2 = 0, v3 = 100 } },
    }
    for i, s in ipairs(steps) do
      local mark = log_mark(srv)
      local r = rollout(env, { script("steps/" .. s[1]), SERVICE, srv.url })
      assert.equal(0, r.status, s[1] .. ":\n" .. r.output)
      assert.truthy(r.output:find("✓ Step " .. (i - 1) .. " passed", 1, true), r.output)
      assert.same(s[2], writes(srv, mark), s[1])
      assert.same(s[3], (vs_weights(srv)), s[1])
    end
    -- the ops commands see the same state
    local r = rollout(env, { script("ops.lua"), "list", SERVICE, "--json" })
    assert.equal(0, r.status, r.output)
    local doc = assert(json.decode(r.stdout))
    local seen = {}
    for _, v in ipairs(doc.versions) do seen[v.name] = { v.weight, v.ready, v.release } end
    assert.same({ v1 = { 0, true, SERVICE .. "-v1" }, v2 = { 0, true, SERVICE .. "-v2" },
                  v3 = { 100, true, SERVICE .. "-v3" } }, seen)
    local mark = log_mark(srv)
    r = rollout(env, { script("steps/step6_cleanup.lua"), SERVICE, srv.url })
    assert.equal(0, r.status, r.output)
    for _, w in ipairs(writes(srv, mark)) do assert.truthy(w:find("^DELETE "), w) end
    assert.is_nil(api_get(srv, VS_PATH))
    assert.same({}, releases(project))
  end)

  it("applies an edited TRAFFIC.yaml with one write, and refuses a malformed one", function()
    -- kubernetes.values reach the chart; service.yaml's own fields win
    local project = make_project(fixture.tmpdir(), { replicas = 2,
      values = '{env: {GREETING: "hello"}, replicaCount: 5, image: {tag: ignored}}' })
    local env = env_for(srv, project)
    finally(function()
      rollout(env, { script("ops.lua"), "delete_service", SERVICE })
      fixture.remove(project.dir)
    end)
    local r = rollout(env, { script("steps/step0_baseline.lua"), SERVICE, srv.url })
    assert.equal(0, r.status, r.output)
    local d = api_get(srv, "/apis/apps/v1/namespaces/default/deployments/" .. SERVICE .. "-v2")
    assert.equal(2, d.spec.replicas)
    assert.equal(2, d.status.readyReplicas)
    local c = d.spec.template.spec.containers[1]
    assert.equal("ghcr.io/rollout-dev/microservice-1:v2", c.image)
    local env_vars = {}
    for _, e in ipairs(c.env) do env_vars[e.name] = e.value end
    assert.equal("hello", env_vars.GREETING)
    assert.equal("v2", env_vars.SERVICE_VERSION)
    assert(fs.write_atomic(project.traffic, "versions:\n- name: v1\n  weight: 80\n- name: v2\n  weight: 20\n"))
    local mark = log_mark(srv)
    r = rollout(env, { script("ops.lua"), "update_traffic", SERVICE, "--endpoint", srv.url })
    assert.equal(0, r.status, r.output)
    assert.same({ "PATCH virtualservices/" .. SERVICE .. " rollout" }, writes(srv, mark))
    assert.same({ v1 = 80, v2 = 20 }, (vs_weights(srv)))
    -- a weight that is not an integer: refused naming file, line and field
    local bad = "versions:\n- name: v1\n  weight: 80\n- name: v2\n  weight: twenty\n"
    assert(fs.write_atomic(project.traffic, bad))
    local _, vs = vs_weights(srv)
    mark = log_mark(srv)
    r = rollout(env, { script("ops.lua"), "update_traffic", SERVICE, "--endpoint", srv.url })
    assert.equal(2, r.status, r.output)
    assert.truthy(r.stderr:find("TRAFFIC.yaml:5:", 1, true), r.stderr)
    assert.truthy(r.stderr:find("versions[2].weight", 1, true), r.stderr)
    assert.same({}, writes(srv, mark))
    assert.equal(bad, read(project.traffic))
    local w2, vs2 = vs_weights(srv)
    assert.same({ v1 = 80, v2 = 20 }, w2)
    assert.equal(vs.metadata.resourceVersion, vs2.metadata.resourceVersion)
  end)

  it("removes a version: refused while it has weight, drained first with --force", function()
    local project = make_project(fixture.tmpdir())
    local env = env_for(srv, project)
    finally(function()
      rollout(env, { script("ops.lua"), "delete_service", SERVICE })
      fixture.remove(project.dir)
    end)
    local r = rollout(env, { script("steps/step0_baseline.lua"), SERVICE, srv.url })
    assert.equal(0, r.status, r.output)
    -- deploying a ready, routed version again changes nothing
    local mark = log_mark(srv)
    local upgrades = helm_upgrades(project)
    r = rollout(env, { script("ops.lua"), "start", SERVICE, "v1" })
    assert.equal(0, r.status, r.output)
    assert.truthy(r.output:find("v1 was already running", 1, true), r.output)
    assert.same({}, writes(srv, mark))
    assert.equal(upgrades, helm_upgrades(project))
    local before = read(project.traffic)
    mark = log_mark(srv)
    r = rollout(env, { script("ops.lua"), "delete_version", SERVICE, "v1" })
    assert.equal(2, r.status, r.output)
    assert.truthy(r.stderr:find("v1 still has weight 50: set it to 0 first (or force)", 1, true), r.stderr)
    assert.same({}, writes(srv, mark))
    assert.equal(before, read(project.traffic))
    assert.same({ SERVICE .. "-v1", SERVICE .. "-v2" }, releases(project))
    -- forced: drained (one write), the route and the subset without it, uninstalled
    mark = log_mark(srv)
    r = rollout(env, { script("ops.lua"), "delete_version", SERVICE, "v1", "--force" })
    assert.equal(0, r.status, r.output)
    assert.same({ "PATCH virtualservices/" .. SERVICE .. " rollout", "PATCH virtualservices/" .. SERVICE .. " rollout",
                  "PATCH destinationrules/" .. SERVICE .. " rollout", "DELETE deployments/" .. SERVICE .. "-v1 -" },
      writes(srv, mark))
    assert.same({ v2 = 50 }, (vs_weights(srv)))
    local dr = api_get(srv, DR_PATH)
    assert.equal(1, #dr.spec.subsets)
    assert.equal("v2", dr.spec.subsets[1].name)
    assert.same({ SERVICE .. "-v2" }, releases(project))
    assert.equal("versions:\n- name: v2\n  weight: 50\n", read(project.traffic))
    -- the route has no header route for v1 left; the gateway serves v2
    local _, vs = vs_weights(srv)
    assert.equal(3, #vs.spec.http) -- v2's header route, unknown versions, the weighted route
    assert.equal("v2", vs.spec.http[1].match[1].headers["x-version"].exact)
    local res = assert(http.request { url = srv.url, timeout = 5 })
    assert.equal("v2", json.decode(res.body).version)
    -- a request for the removed version is refused, not served by v2
    res = assert(http.request { url = srv.url, timeout = 5, headers = { ["x-version"] = "v1" } })
    assert.equal(503, res.status)
    -- unknown version: refused
    r = rollout(env, { script("ops.lua"), "delete_version", SERVICE, "v7" })
    assert.equal(2, r.status, r.output)
    assert.truthy(r.stderr:find("microservice-1 has no version v7 (deployed: v2)", 1, true), r.stderr)
  end)

  it("runs the workflow with Gateway API routing (one HTTPRoute write per traffic change)", function()
    local project = make_project(fixture.tmpdir(), { routing = "gateway-api" })
    finally(function() fixture.remove(project.dir) end)
    local mark = log_mark(srv)
    local r = rollout(env_for(srv, project), { script("run_all.lua"), SERVICE, srv.url })
    assert.equal(0, r.status, r.output)
    assert.truthy(r.output:find("Passed: 7", 1, true), r.output)
    local ROUTE = "PATCH httproutes/" .. SERVICE .. " rollout"
    local w = writes(srv, mark)
    local expected = {}
    append(expected, deploy_writes("v1", "gateway-api"))
    append(expected, deploy_writes("v2", "gateway-api"))
    append(expected, { ROUTE })
    append(expected, deploy_writes("v3", "gateway-api"))
    append(expected, { ROUTE, ROUTE, ROUTE, ROUTE })
    local n = #expected
    local head = {}
    for i = 1, n do head[i] = w[i] end
    assert.same(expected, head)
    -- then only deletions, the HTTPRoute first
    assert.equal("DELETE httproutes/" .. SERVICE .. " -", w[n + 1])
    for i = n + 1, #w do assert.truthy(w[i]:find("^DELETE "), w[i]) end
    assert.is_nil(api_get(srv, ROUTE_PATH))
    assert.is_nil(api_get(srv, SVC_PATH .. "-v3"))
  end)
end)

describe("the kubernetes target on bad input changes nothing", function()
  local tmp, srv, project

  -- a script that sets weights given as NAME=WEIGHT arguments
  local set_script

  setup(function()
    tmp = fixture.tmpdir()
    srv = start_server(tmp)
    project = make_project(tmp .. "/project", { api_timeout = 4, wait_timeout = 4 })
    set_script = tmp .. "/set.lua"
    assert(fs.write_atomic(set_script, [[
local rollout = require "rollout"
local w = {}
for i = 2, select("#", ...) do
  local name, weight = select(i, ...):match("^([^=]+)=(%d+)$")
  w[name] = tonumber(weight)
end
local res = rollout.service((...)):set_weights(w)
print("applied")
]]))
    local r = rollout(env_for(srv, project), { script("steps/step0_baseline.lua"), SERVICE, srv.url })
    if r.status ~= 0 then
      pcall(stop_server, srv)
      error("step 0 failed:\n" .. r.output, 0)
    end
  end)

  teardown(function()
    local ok, err = pcall(stop_server, srv)
    fixture.remove(tmp)
    assert(ok, err)
  end)

  -- Runs the set script with `env`; checks the exit code, that the message
  -- is one line matching every pattern, and that nothing changed: no write
  -- request, TRAFFIC.yaml bytes, the VirtualService (weights and
  -- resourceVersion).
  local function expect_unchanged(env, args, code, patterns, timeout)
    local before_text = read(project.traffic)
    local before_w, before_vs = vs_weights(srv)
    local mark = log_mark(srv)
    local t0 = time.now()
    local r = rollout(env, append({ set_script, SERVICE }, args), timeout or 60)
    local took = time.now() - t0
    assert.equal(code, r.status, r.output)
    local msg = r.stderr:gsub("\n$", "")
    if os.getenv("SHOW_MESSAGES") then print("    exit " .. r.status .. ": " .. msg) end
    assert.is_nil(msg:find("\n"), "not one line: " .. msg)
    assert.is_nil(msg:find("traceback", 1, true), msg)
    for _, p in ipairs(patterns) do assert.truthy(msg:lower():find(p:lower()), "'" .. p .. "' not in: " .. msg) end
    assert.same({}, writes(srv, mark))
    assert.equal(before_text, read(project.traffic))
    local after_w, after_vs = vs_weights(srv)
    assert.same(before_w, after_w)
    assert.equal(before_vs.metadata.resourceVersion, after_vs.metadata.resourceVersion)
    return msg, took
  end

  local function kubeconfig_variant(name, from, to)
    local text = read(srv.kubeconfig)
    local new, n = text:gsub(from, to)
    assert(n > 0, "kubeconfig has no " .. from)
    local path = tmp .. "/" .. name
    assert(fs.write_atomic(path, new))
    return path
  end

  it("starts from the baseline v1=50 v2=50", function()
    assert.same({ v1 = 50, v2 = 50 }, (vs_weights(srv)))
    assert.same({ SERVICE .. "-v1", SERVICE .. "-v2" }, releases(project))
  end)

  it("refuses a kubeconfig whose context is missing (exit 2)", function()
    local kc = kubeconfig_variant("kc-context", "current%-context: fake", "current-context: no-such-ctx")
    expect_unchanged(env_for(srv, project, { KUBECONFIG = kc }), { "v1=80", "v2=20" }, 2, { "no%-such%-ctx" })
  end)

  it("refuses a kubeconfig whose CA file cannot be read (exit 2)", function()
    local kc = kubeconfig_variant("kc-ca", "certificate%-authority%-data: [^\n]+",
      "certificate-authority: " .. tmp .. "/missing-ca.crt")
    expect_unchanged(env_for(srv, project, { KUBECONFIG = kc }), { "v1=80", "v2=20" }, 2, { "missing%-ca%.crt" })
  end)

  it("fails when the exec credential plugin fails (exit 1)", function()
    expect_unchanged(env_for(srv, project, { KUBECONFIG = srv.kubeconfig_exec, FAKE_EXEC_FAIL = "1",
                                             FAKE_EXEC_FAIL_MESSAGE = "the token service said no" }),
      { "v1=80", "v2=20" }, 1, { "the token service said no" })
  end)

  it("fails when the exec credential plugin hangs, within the API timeout (exit 1)", function()
    local _, took = expect_unchanged(env_for(srv, project, { KUBECONFIG = srv.kubeconfig_exec, FAKE_EXEC_HANG = "1" }),
      { "v1=80", "v2=20" }, 1, { "fake%-exec%-plugin" }, 60)
    assert.is_true(took < fixture.timeout(30), "took " .. took .. " s")
  end)

  it("fails when the API server is down (exit 1)", function()
    local port = fixture.free_port()
    local kc = kubeconfig_variant("kc-down", "server: https://127%.0%.0%.1:%d+",
      "server: https://127.0.0.1:" .. port)
    local msg = expect_unchanged(env_for(srv, project, { KUBECONFIG = kc }), { "v1=80", "v2=20" }, 1,
      { tostring(port) })
    assert.truthy(msg:lower():find("connect") or msg:lower():find("refused"), msg)
  end)

  it("refuses weights the cluster cannot take (exit 2)", function()
    local env = env_for(srv, project)
    expect_unchanged(env, { "v1=0", "v2=0" }, 2, { "all weights are 0" })
    expect_unchanged(env, { "v1=50", "v9=10" }, 2, { "version v9 has weight 10 but is not deployed %(deployed: v1, v2%)" })
    expect_unchanged(env, { "v1=50", "V2=10" }, 2, { "DNS%-1123" })
  end)

  it("refuses weight for a version whose pods are not ready, naming why (exit 2)", function()
    -- a release of a broken image, installed behind rollout's back
    local env = env_for(srv, project)
    local r = assert(proc.run { argv = { FAKES .. "/bin/helm", "upgrade", "--install", SERVICE .. "-v4",
      project.deployments .. "/chart", "--set", "service=" .. SERVICE, "--set", "version=v4",
      "--set", "image.tag=broken" }, env = env, timeout = 60 })
    finally(function()
      proc.run { argv = { FAKES .. "/bin/helm", "uninstall", SERVICE .. "-v4" }, env = env, timeout = 60 }
    end)
    assert.equal(0, r.status, r.stderr)
    fixture.wait(function()
      local pods = api_get(srv, "/api/v1/namespaces/default/pods?labelSelector=version%3Dv4")
      for _, p in ipairs(pods.items) do
        for _, cs in ipairs(p.status.containerStatuses or {}) do
          if cs.state and cs.state.waiting and cs.state.waiting.reason == "ImagePullBackOff" then return true end
        end
      end
    end, 15, "the v4 pod to be in ImagePullBackOff")
    expect_unchanged(env, { "v1=50", "v2=50", "v4=10" }, 2,
      { "version v4 has weight 10 but is not ready %(0/1 pods ready", "ImagePullBackOff" })
  end)

  it("fails a deploy whose pods never get ready, and uninstalls it again (exit 1)", function()
    local env = env_for(srv, project)
    local before_w, before_vs = vs_weights(srv)
    local before_dr = api_get(srv, DR_PATH)
    local r = rollout(env, { script("ops.lua"), "start", SERVICE, "broken" }, 120)
    assert.equal(1, r.status, r.output)
    assert.truthy(r.stderr:find("ImagePullBackOff", 1, true), r.stderr)
    assert.truthy(r.stderr:find("the new release was uninstalled", 1, true), r.stderr)
    assert.same({ SERVICE .. "-v1", SERVICE .. "-v2" }, releases(project))
    local after_w, after_vs = vs_weights(srv)
    assert.same(before_w, after_w)
    assert.equal(before_vs.metadata.resourceVersion, after_vs.metadata.resourceVersion)
    assert.equal(before_dr.metadata.resourceVersion, api_get(srv, DR_PATH).metadata.resourceVersion)
  end)
end)

describe("the kubernetes target when the API server forbids the change", function()
  local tmp, srv, project

  setup(function()
    tmp = fixture.tmpdir()
    srv = start_server(tmp, { "--forbid", "patch:virtualservices" })
    local ok, err = pcall(function()
      project = make_project(tmp .. "/project")
      local env = env_for(srv, project)
      -- the versions, with helm (allowed) ...
      for _, v in ipairs { "v1", "v2" } do
        local r = assert(proc.run { argv = { FAKES .. "/bin/helm", "upgrade", "--install", SERVICE .. "-" .. v,
          project.deployments .. "/chart", "--set", "service=" .. SERVICE, "--set", "version=" .. v, "--wait" },
          env = env, timeout = 60 })
        assert(r.status == 0, r.stderr)
      end
      -- ... and the routing created (POST is "create", which is allowed)
      local c = { name = SERVICE, port = 8080, version_header = "x-version", kubernetes = { namespace = "default" } }
      for _, m in ipairs(istio.manifests(c, { v1 = 50, v2 = 50 })) do
        local plural = ({ Service = "services", DestinationRule = "destinationrules",
                          VirtualService = "virtualservices" })[m.kind]
        local base = m.kind == "Service" and "/api/v1" or "/apis/networking.istio.io/v1"
        local res = assert(http.request { method = "POST", body = json.encode(m), ca_file = srv.ca, timeout = 10,
          url = string.format("https://127.0.0.1:%d%s/namespaces/default/%s", srv.port, base, plural),
          headers = { Authorization = "Bearer tok-1", ["Content-Type"] = "application/json" } })
        assert(res.status == 201, res.status .. " " .. res.body)
      end
    end)
    if not ok then
      pcall(stop_server, srv)
      error(err, 0)
    end
  end)

  teardown(function()
    local ok, err = pcall(stop_server, srv)
    fixture.remove(tmp)
    assert(ok, err)
  end)

  it("fails with the 403 named (exit 1); TRAFFIC.yaml and the route are unchanged", function()
    local set_script = tmp .. "/set.lua"
    assert(fs.write_atomic(set_script,
      'require("rollout").service("' .. SERVICE .. '"):set_weights { v1 = 80, v2 = 20 }\nprint("applied")\n'))
    local before_text = read(project.traffic)
    local before_w, before_vs = vs_weights(srv)
    assert.same({ v1 = 50, v2 = 50 }, before_w)
    local mark = log_mark(srv)
    local r = rollout(env_for(srv, project), { set_script })
    assert.equal(1, r.status, r.output)
    local msg = r.stderr:gsub("\n$", "")
    assert.is_nil(msg:find("\n"), msg)
    assert.truthy(msg:find("forbidden", 1, true), msg)
    assert.truthy(msg:find("TRAFFIC.yaml is unchanged", 1, true), msg)
    -- the one write attempted was the refused apply
    local attempted = {}
    for _, q in ipairs(requests(srv, mark)) do
      if writes_methods[q.method] then attempted[#attempted + 1] = q.method .. " " .. q.resource .. " " .. q.code end
    end
    assert.same({ "PATCH virtualservices 403" }, attempted)
    assert.equal(before_text, read(project.traffic))
    local after_w, after_vs = vs_weights(srv)
    assert.same(before_w, after_w)
    assert.equal(before_vs.metadata.resourceVersion, after_vs.metadata.resourceVersion)
    -- the gateway still splits by the old weights: v2 still serves
    local seen = {}
    for _ = 1, 40 do
      local res = http.request { url = srv.url, timeout = 5 }
      if res and res.status == 200 then seen[json.decode(res.body).version] = true end
    end
    assert.is_true(seen.v1 and seen.v2)
  end)
end)
