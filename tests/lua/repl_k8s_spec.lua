-- rollout.repl.k8s: the REPL's Kubernetes globals (k8s, helm, svc) and the
-- table printers pods(), releases(), routes(), against the fake API server
-- and the fake helm (tests/fakes), with v1 and v2 deployed by the real
-- step 0 of the workflow.
local fixture = require "tests.helpers.fixture"
local proc = require "rollout.proc"
local fs = require "rollout.fs"
local repl_k8s = require "rollout.repl.k8s"
local time = require "rollout.time"

local ROOT = fixture.root
local BIN = fixture.bin
local FAKES = ROOT .. "/tests/fakes"

local function read(path) return fs.read(path) or "" end

describe("the REPL's Kubernetes helpers", function()
  local tmp, pid, kubeconfig, helm_state, gateway

  setup(function()
    tmp = fixture.tmpdir()
    kubeconfig = tmp .. "/kubeconfig"
    helm_state = tmp .. "/helm"
    local out = tmp .. "/server.log"
    pid, gateway = fixture.start_server { log = out, argv = { "/usr/bin/python3", FAKES .. "/kube_apiserver.py",
      "--port", "0", "--certs", tmp .. "/certs", "--token", "tok-1", "--gateway-port", "0", "--ready-delay", "0.2",
      "--kubeconfig-out", kubeconfig }, what = "the fake API server",
      ready = function(text) return text:match("gateway on 127%.0%.0%.1:(%d+)") end }
    assert(fs.mkdir_p(tmp .. "/project"))
    local r = assert(proc.run { argv = { "cp", "-r", ROOT .. "/deployments", tmp .. "/project/deployments" } })
    assert(r.status == 0, r.stderr)
    -- v1 and v2 at 50/50, deployed by the workflow's own step 0
    r = assert(proc.run {
      argv = { BIN, "--target", "kubernetes", ROOT .. "/scripts/steps/step0_baseline.lua", "microservice-1",
               "http://127.0.0.1:" .. gateway .. "/api/version" },
      env = { PATH = FAKES .. "/bin:" .. os.getenv("PATH"), KUBECONFIG = kubeconfig, HELM_FAKE_STATE = helm_state,
              ROLLOUT_STATE_DIR = tmp .. "/state", ROLLOUT_DEPLOYMENTS = tmp .. "/project/deployments",
              NO_COLOR = "1", GATEWAY_ENDPOINT = false, ROLLOUT_TARGET = false },
      cwd = ROOT, timeout = 120 })
    assert(r.status == 0, r.stdout .. r.stderr)
  end)

  teardown(function()
    local ok, err = true, nil
    if pid then ok, err = proc.stop(pid, { timeout = 10 }) end
    fixture.remove(tmp)
    assert(ok, err)
  end)

  -- The helpers with their output captured; returns env and a reader.
  local function helpers(extra)
    local file = tmp .. "/out-" .. tostring(math.random(1e9))
    local fh = assert(io.open(file, "w+"))
    local opts = { kubeconfig = kubeconfig, out = fh,
                   helm = { helm = FAKES .. "/bin/helm", env = { HELM_FAKE_STATE = helm_state } } }
    for k, v in pairs(extra or {}) do opts[k] = v end
    local env = repl_k8s({}, opts)
    local function output()
      fh:flush()
      local text = read(file)
      assert(io.open(file, "w")):close() -- next call starts empty
      fh:seek("set", 0)
      return text
    end
    return env, output, function() fh:close(); os.remove(file) end
  end

  local function rows(text)
    local out = {}
    for line in text:gmatch("[^\n]+") do
      local cells = {}
      for cell in line:gmatch("%S+") do cells[#cells + 1] = cell end
      out[#out + 1] = cells
    end
    return out
  end

  it("defines k8s, helm, svc, pods, releases and routes", function()
    local env, _, close = helpers()
    finally(close)
    for _, name in ipairs { "k8s", "helm", "svc", "pods", "releases", "routes" } do
      assert.is_not_nil(env[name], name)
    end
    assert.equal(require("rollout.helm"), env.helm)
    assert.equal(require("rollout.k8s").client, env.k8s.client)
  end)

  it("creates the k8s client lazily: a broken kubeconfig fails on use, not at start", function()
    local env, _, close = helpers { kubeconfig = tmp .. "/no-such-kubeconfig" }
    finally(close)
    assert.equal("k8s client (connects on first use)", tostring(env.k8s))
    local ok, err = pcall(function() return env.k8s:namespace() end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("no-such-kubeconfig", 1, true), tostring(err))
    ok, err = pcall(env.pods)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("no-such-kubeconfig", 1, true), tostring(err))
  end)

  it("k8s is an object whose metatable's __index is a plain table of the client's methods", function()
    local env, _, close = helpers()
    finally(close)
    local mt = getmetatable(env.k8s)
    assert.equal("table", type(mt.__index))
    assert.is_nil(getmetatable(mt.__index)) -- plain: completion can list it
    for _, m in ipairs { "get", "list", "apply", "patch", "delete", "watch", "pods", "logs", "wait_rollout",
                         "namespace", "context", "source", "client", "rollout_status" } do
      assert.equal("function", type(mt.__index[m]), m)
    end
    assert.equal("k8s client (connects on first use)", tostring(env.k8s)) -- looking did not connect
    -- the client of rollout.k8s itself is built the same way
    local c = assert(require("rollout.k8s").client { kubeconfig = kubeconfig })
    finally(function() c:close() end)
    assert.equal(require("rollout.k8s").Client, getmetatable(c).__index)
    assert.is_nil(getmetatable(getmetatable(c).__index))
  end)

  it("watch() prints the events as compact lines", function()
    local env, output, close = helpers()
    finally(close)
    local n = env.watch("Deployment", "app=microservice-1", { count = 2, timeout = 20 })
    assert.equal(2, n)
    local text = output()
    for _, v in ipairs { "v1", "v2" } do
      assert.truthy(text:find("%d%d:%d%d:%d%d ADDED    Deployment/microservice%-1%-" .. v .. " %(1/1 ready, 1 updated%)"),
        text)
    end
    -- nothing changes: it ends at the timeout, having printed nothing
    local t0 = time.now()
    assert.equal(0, env.watch("Pod", "app=nothing-here", { timeout = 1 }))
    assert.equal("", output())
    assert.is_true(time.now() - t0 >= 0.9)
    local ok, err = pcall(env.watch, "Widget")
    assert.is_false(ok)
    assert.truthy(tostring(err):find("watch: the server doesn't have a resource type \"Widget\"", 1, true), tostring(err))
  end)

  it("watch() runs until ^C", function()
    local out = tmp .. "/watch.log"
    local script = ([[
      local env = require("rollout.repl.k8s")({}, { kubeconfig = %q })
      env.watch("Pod", "app=microservice-1")
    ]]):format(kubeconfig)
    local pid = assert(proc.spawn { argv = { BIN, "-e", script }, log = out })
    finally(function() fixture.stop(pid) end)
    fixture.wait(function() return read(out):find("ADDED", 1, true) end, 20, "the first events")
    local t0 = time.now()
    assert(proc.kill(pid, "INT"))
    fixture.wait(function() return not proc.alive(pid) end, 5, "the watch to end on ^C")
    assert.is_true(time.now() - t0 < fixture.timeout(3))
    local text = read(out)
    assert.truthy(text:find("Pod/microservice%-1%-v1%-[%w-]+ %(Running, 1/1 ready%)"), text)
    assert.truthy(text:find("interrupted", 1, true), text)
  end)

  it("uses the client through k8s", function()
    local env, _, close = helpers()
    finally(close)
    local d = assert(env.k8s:get("Deployment", "microservice-1-v1"))
    assert.equal("microservice-1-v1", d.metadata.name)
    assert.equal("default", env.k8s:namespace())
    assert.truthy(tostring(env.k8s):find("namespace default", 1, true), tostring(env.k8s))
  end)

  it("pods() prints name, ready, status and age", function()
    local env, output, close = helpers()
    finally(close)
    env.pods("app=microservice-1")
    local t = rows(output())
    assert.same({ "NAME", "READY", "STATUS", "AGE" }, t[1])
    assert.equal(3, #t)
    for i = 2, 3 do
      assert.truthy(t[i][1]:find("^microservice%-1%-v[12]%-"), t[i][1])
      assert.equal("1/1", t[i][2])
      assert.equal("Running", t[i][3])
      assert.truthy(t[i][4]:find("^%d+[smhd]$"), t[i][4])
    end
    env.pods("app=nothing-here")
    assert.truthy(output():find("no pods matching app=nothing-here in default", 1, true))
  end)

  it("pods() shows why a pod is not ready", function()
    local env, output, close = helpers()
    local r = assert(proc.run { argv = { FAKES .. "/bin/helm", "upgrade", "--install", "microservice-1-v9",
      tmp .. "/project/deployments/chart", "--set", "service=microservice-1", "--set", "version=v9",
      "--set", "image.tag=broken" }, env = { KUBECONFIG = kubeconfig, HELM_FAKE_STATE = helm_state }, timeout = 60 })
    finally(function()
      close()
      proc.run { argv = { FAKES .. "/bin/helm", "uninstall", "microservice-1-v9" },
                 env = { KUBECONFIG = kubeconfig, HELM_FAKE_STATE = helm_state }, timeout = 60 }
    end)
    assert.equal(0, r.status, r.stderr)
    local t
    fixture.wait(function()
      env.pods("version=v9")
      t = rows(output())
      return t[2] and t[2][3] == "ImagePullBackOff"
    end, 15, "ImagePullBackOff")
    assert.equal("0/1", t[2][2])
  end)

  it("releases() prints release, revision, status and chart", function()
    local env, output, close = helpers()
    finally(close)
    env.releases()
    local t = rows(output())
    assert.same({ "RELEASE", "REVISION", "STATUS", "CHART" }, t[1])
    assert.same({ "microservice-1-v1", "1", "deployed", "rollout-service-0.1.0" }, t[2])
    assert.same({ "microservice-1-v2", "1", "deployed", "rollout-service-0.1.0" }, t[3])
    assert.equal(3, #t)
  end)

  it("routes() prints the header routes and the weighted route with shares", function()
    local env, output, close = helpers()
    finally(close)
    env.routes("microservice-1")
    local text = output()
    local t = rows(text)
    assert.same({ "ROUTE", "MATCH", "DESTINATION", "WEIGHT", "SHARE" }, t[1])
    assert.same({ "VirtualService/microservice-1", "x-version:", "v1", "microservice-1/v1", "-", "100.0%" }, t[2])
    assert.same({ "VirtualService/microservice-1", "x-version:", "v2", "microservice-1/v2", "-", "100.0%" }, t[3])
    assert.same({ "VirtualService/microservice-1", "default", "microservice-1/v1", "50", "50.0%" }, t[4])
    assert.same({ "VirtualService/microservice-1", "default", "microservice-1/v2", "50", "50.0%" }, t[5])
    assert.equal(5, #t)
    -- every route of the namespace when no service is named
    env.routes()
    assert.equal(text, output())
    env.routes("no-such-service")
    assert.truthy(output():find("no routes for no-such-service in default", 1, true))
  end)

  it("svc() opens a service on the kubernetes target", function()
    local env, _, close = helpers()
    finally(close)
    local s = env.svc("microservice-1")
    assert.equal("kubernetes", s.target_name)
    assert.equal("microservice-1", s.name)
  end)

  it("the REPL adds the helpers with --target kubernetes, and not without", function()
    local proc = require "rollout.proc"
    local bin = BIN
    local probe = "print(type(rollout), type(k8s), type(helm), type(svc), type(pods), type(releases), type(routes))\n"
    local k = assert(proc.run { argv = { bin, "--target", "kubernetes", "-i" }, stdin = probe, timeout = 20,
                                env = { ROLLOUT_HISTORY = "" } })
    assert.matches("table\ttable\ttable\tfunction\tfunction\tfunction\tfunction", k.stdout)
    local l = assert(proc.run { argv = { bin, "-i" }, stdin = probe, timeout = 20,
                                env = { ROLLOUT_HISTORY = "", ROLLOUT_TARGET = false } })
    assert.matches("table\tnil\tnil\tnil\tnil\tnil\tnil", l.stdout)
  end)
end)
