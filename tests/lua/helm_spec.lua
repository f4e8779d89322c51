-- rollout.helm against the fake helm (tests/fakes/bin/helm) and the fake
-- Kubernetes API server (tests/fakes/kube_apiserver.py), both on this
-- machine: the server listens on a free port of 127.0.0.1 and is stopped by
-- PID in teardown; every helm process is a child of the call under test.
local helm = require "rollout.helm"
local json = require "rollout.json"
local proc = require "rollout.proc"
local http = require "rollout.http"
local fs = require "rollout.fs"
local time = require "rollout.time"
local fixture = require "tests.helpers.fixture"

local ROOT = os.getenv("ROLLOUT_ROOT") or "."
local BIN = fixture.bin
local FAKE = ROOT .. "/tests/fakes/bin/helm"
local CHART = ROOT .. "/deployments/chart"
local TOKEN = "tok-1"

local tmp, server, kubeconfig, api_base
local helm_log, state

local function read(path) return fs.read(path) or "" end

local wait_for = fixture.wait

-- The fake helm's invocations so far: {{ts, pid, argv}, ...}
local function invocations()
  local list = {}
  for line in read(helm_log):gmatch("[^\n]+") do list[#list + 1] = assert(json.decode(line)) end
  return list
end

local function last_argv()
  local list = invocations()
  return list[#list] and list[#list].argv
end

local function contains(list, value)
  for _, v in ipairs(list or {}) do if v == value then return true end end
  return false
end

-- The environment every call gives the fake: its own state and log, and
-- none of the caller's fault knobs.
local function fake_env(extra)
  local env = { HELM_FAKE_STATE = state, HELM_FAKE_LOG = helm_log, HELM_FAKE_WAIT_INTERVAL = "0.05",
    HELM_FAKE_FAIL = false, HELM_FAKE_HANG = false, HELM_FAKE_FAIL_MESSAGE = false, HELM_NAMESPACE = false }
  for k, v in pairs(extra or {}) do env[k] = v end
  return env
end

-- Options for a call: the fake binary, its environment, the kubeconfig.
local function opts(t, extra_env)
  t.helm = t.helm or FAKE
  t.env = fake_env(extra_env)
  if t.kubeconfig == nil then t.kubeconfig = kubeconfig end
  return t
end

local function api_get(path)
  local r = assert(http.request { url = api_base .. path, ca_file = tmp .. "/certs/ca.crt",
    headers = { Authorization = "Bearer " .. TOKEN }, timeout = 10 })
  return r.status, r.body ~= "" and json.decode(r.body) or nil
end

local function script(name, body)
  local path = tmp .. "/" .. name
  assert(fs.write_atomic(path, "#!/bin/sh\n" .. body .. "\n", { mode = tonumber("755", 8) }))
  return path
end

-- The values file a logged invocation was given (nil if none).
local function values_file(argv)
  for _, a in ipairs(argv or {}) do
    local f = a:match("^%-%-values=(.*)$")
    if f then return f end
  end
end

-- The values file and its private directory are gone.
local function assert_values_gone(argv)
  local f = values_file(argv)
  assert.truthy(f, "no --values in " .. json.encode(argv or {}))
  assert.matches("/rollout%-helm%-[^/]+/values%.json$", f)
  assert.is_false(fs.exists(f), f .. " is still there")
  assert.is_false(fs.exists((f:gsub("/values%.json$", ""))), "the values directory is still there")
end

-- A fresh directory to be the TMPDIR of a child rollout (the values file
-- goes under $TMPDIR): after the child, it must be empty again.
local function private_tmpdir(name)
  local d = tmp .. "/" .. name
  assert(fs.mkdir_p(d))
  return d
end

setup(function()
  tmp = assert(fs.mkdtemp("rollout-helm-spec-"))
  helm_log = tmp .. "/helm.log"
  state = tmp .. "/state"
  kubeconfig = tmp .. "/kubeconfig"
  local log = tmp .. "/server.log"
  local port
  server, port = fixture.start_server { argv = { "/usr/bin/python3", ROOT .. "/tests/fakes/kube_apiserver.py",
    "--port", "0", "--certs", tmp .. "/certs", "--token", TOKEN, "--ready-delay", "0.1",
    "--kubeconfig-out", kubeconfig }, log = log, what = "the fake API server",
    ready = function(text) return text:match("listening on 127%.0%.0%.1:(%d+)") end }
  api_base = "https://127.0.0.1:" .. port
end)

teardown(function()
  if server then proc.stop(server, { timeout = 5 }) end
  if tmp then fs.remove_tree(tmp) end
end)

before_each(function()
  fs.remove(helm_log)
end)

describe("helm.version", function()
  it("returns helm's version as vX.Y.Z", function()
    local v, err = helm.version(opts {})
    assert.is_nil(err)
    assert.equal("v3.21.4", v)
    assert.same({ "version", "--short" }, last_argv())
  end)

  it("reports a missing helm as not_installed with the install page", function()
    local empty = tmp .. "/empty-bin"
    assert(fs.mkdir_p(empty))
    local v, msg, code = helm.version { env = { PATH = empty } }
    assert.is_nil(v)
    assert.equal("not_found", code)
    assert.equal("helm is not installed (looked for it on PATH): see https://helm.sh/docs/intro/install/", msg)
    v, msg, code = helm.version { helm = tmp .. "/no-such-helm" }
    assert.is_nil(v)
    assert.equal("not_found", code)
    assert.matches("no%-such%-helm", msg)
    assert.matches("https://helm.sh/docs/intro/install/", msg, 1, true)
  end)

  it("finds helm on PATH, and ROLLOUT_HELM overrides it", function()
    local v = assert(helm.version { env = fake_env { PATH = ROOT .. "/tests/fakes/bin:/usr/bin:/bin" } })
    assert.equal("v3.21.4", v)
    -- ROLLOUT_HELM is read from rollout's own environment: a child rollout
    local empty = tmp .. "/empty-bin"
    assert(fs.mkdir_p(empty))
    local code = "local v, m, c = require('rollout.helm').version(); io.write(tostring(v), '|', tostring(c))"
    local r = assert(proc.run { argv = { BIN, "-e", code }, timeout = 30,
      env = fake_env { ROLLOUT_HELM = FAKE, PATH = empty .. ":/usr/bin:/bin" } })
    assert.equal("v3.21.4|nil", r.stdout)
    r = assert(proc.run { argv = { BIN, "-e", code }, timeout = 30,
      env = fake_env { ROLLOUT_HELM = false, PATH = empty } })
    assert.equal("nil|not_found", r.stdout)
  end)

  it("says so when helm's output is not a version", function()
    local v, msg, code = helm.version { helm = script("say-hello", "echo hello") }
    assert.is_nil(v)
    assert.equal("protocol", code)
    assert.matches("unexpected output 'hello", msg)
  end)
end)

describe("helm.install", function()
  local values = {
    service = "web", version = "v1", replicaCount = 1,
    image = { repository = "example/web" },
    env = { API_TOKEN = "s3cr3t-token-4711", MODE = "blue" },
  }

  it("installs with values passed through a private file, never the command line", function()
    -- a wrapper that keeps a copy of the values file and its modes, then runs the fake
    local wrapper = script("helm-capture", table.concat({
      'for a in "$@"; do case "$a" in --values=*) f="${a#--values=}";',
      '  cp "$f" "' .. tmp .. '/captured.json";',
      '  stat -c %a "$f" > "' .. tmp .. '/captured.mode";',
      '  stat -c %a "$(dirname "$f")" >> "' .. tmp .. '/captured.mode";;',
      'esac; done',
      'exec "' .. FAKE .. '" "$@"' }, "\n"))
    local rel, msg, code = helm.install(opts { helm = wrapper, release = "web-v1", chart = CHART,
      namespace = "apps", values = values, timeout = 60 })
    assert.is_nil(msg, msg)
    assert.is_nil(code)
    assert.equal("web-v1", rel.name)
    assert.equal("apps", rel.namespace)
    assert.equal(1, rel.version)
    assert.equal("deployed", rel.info.status)
    assert.equal("rollout-service", rel.chart.metadata.name)
    assert.same(values, rel.config)

    -- the file helm read held exactly the values, readable by us only
    assert.same(values, json.decode(read(tmp .. "/captured.json")))
    assert.equal("600\n700\n", read(tmp .. "/captured.mode"))

    -- the command line: argv only, the values file by path, no value on it
    local argv = last_argv()
    assert.same({ "upgrade", "--install", "web-v1" }, { argv[1], argv[2], argv[3] })
    assert.equal(fs.realpath(CHART), argv[4])
    for _, flag in ipairs { "--namespace=apps", "--create-namespace", "--reset-values", "--wait",
      "--timeout=60s", "--output=json", "--kubeconfig=" .. kubeconfig } do
      assert.is_true(contains(argv, flag), flag .. " missing from " .. json.encode(argv))
    end
    assert.is_false(contains(argv, "--atomic"))
    for _, a in ipairs(argv) do
      assert.is_nil(a:find("s3cr3t", 1, true), "a value reached the command line: " .. a)
      assert.is_nil(a:find("blue", 1, true), "a value reached the command line: " .. a)
    end
    -- and the file and its directory are gone
    assert_values_gone(argv)
  end)

  it("left the Deployment on the API server, applied by helm and ready", function()
    local st, dep = api_get("/apis/apps/v1/namespaces/apps/deployments/web-v1")
    assert.equal(200, st)
    assert.equal("web-v1", dep.metadata.name)
    assert.equal("web", dep.metadata.labels.app)
    assert.equal("v1", dep.metadata.labels.version)
    assert.equal("Helm", dep.metadata.labels["app.kubernetes.io/managed-by"])
    assert.equal("web-v1", dep.metadata.annotations["meta.helm.sh/release-name"])
    assert.equal("example/web:v1", dep.spec.template.spec.containers[1].image)
    assert.equal(1, dep.status.readyReplicas) -- --wait returned only once it was ready
    local managers = {}
    for _, m in ipairs(dep.metadata.managedFields) do managers[m.manager] = true end
    assert.is_true(managers.helm)
  end)

  it("lists, shows and reads back the release", function()
    local list = assert(helm.list(opts { namespace = "apps" }))
    assert.equal(1, #list)
    assert.equal("web-v1", list[1].name)
    assert.equal("apps", list[1].namespace)
    assert.equal("1", list[1].revision)
    assert.equal("deployed", list[1].status)
    assert.equal("rollout-service-0.1.0", list[1].chart)
    assert.equal("0.1.0", list[1].app_version)
    assert.same({ "list", "--output=json", "--namespace=apps", "--kubeconfig=" .. kubeconfig }, last_argv())

    assert.equal(0, #assert(helm.list(opts { namespace = "other" })))
    assert.equal(1, #assert(helm.list(opts { all_namespaces = true, filter = "^web-" })))
    assert.equal(0, #assert(helm.list(opts { all_namespaces = true, filter = "^nothing" })))
    assert.is_true(contains(last_argv(), "--all-namespaces"))
    assert.is_true(contains(last_argv(), "--filter=^nothing"))

    local st = assert(helm.status(opts { release = "web-v1", namespace = "apps" }))
    assert.equal("web-v1", st.name)
    assert.equal("deployed", st.info.status)
    assert.equal(1, st.version)
    assert.matches("kind: Deployment", st.manifest)

    assert.same(values, assert(helm.get_values(opts { release = "web-v1", namespace = "apps" })))
    local all = assert(helm.get_values(opts { release = "web-v1", namespace = "apps", all = true }))
    assert.equal(8080, all.port) -- a chart default
    assert.equal("/healthz", all.healthPath)
    assert.equal("example/web", all.image.repository) -- a value given
    assert.equal("IfNotPresent", all.image.pullPolicy)
    assert.is_true(contains(last_argv(), "--all"))
  end)

  it("selects the kubeconfig context, and reports a wrong one", function()
    assert.equal(1, #assert(helm.list(opts { namespace = "apps", kube_context = "fake" })))
    assert.is_true(contains(last_argv(), "--kube-context=fake"))
    local l, msg, code = helm.list(opts { namespace = "apps", kube_context = "nope" })
    assert.is_nil(l)
    assert.equal("failed", code)
    assert.matches('context "nope" does not exist', msg, 1, true)
  end)

  it("upgrades to exactly the values given (helm.upgrade is the same function)", function()
    assert.equal(helm.install, helm.upgrade)
    local v2 = { service = "web", version = "v1", replicaCount = 2, image = { repository = "example/web" } }
    local rel = assert(helm.upgrade(opts { release = "web-v1", chart = CHART, namespace = "apps", values = v2 }))
    assert.equal(2, rel.version)
    assert.equal("deployed", rel.info.status)
    -- env is gone: the previous values were not reused
    assert.same(v2, assert(helm.get_values(opts { release = "web-v1", namespace = "apps" })))
    local st, dep = api_get("/apis/apps/v1/namespaces/apps/deployments/web-v1")
    assert.equal(200, st)
    assert.equal(2, dep.spec.replicas)
    -- reuse_values merges instead
    rel = assert(helm.upgrade(opts { release = "web-v1", chart = CHART, namespace = "apps",
      values = { replicaCount = 1 }, reuse_values = true, atomic = true }))
    assert.equal(3, rel.version)
    assert.is_true(contains(last_argv(), "--reuse-values"))
    assert.is_true(contains(last_argv(), "--atomic"))
    assert.same({ service = "web", version = "v1", replicaCount = 1, image = { repository = "example/web" } },
      assert(helm.get_values(opts { release = "web-v1", namespace = "apps" })))
  end)

  it("returns helm's error (failed) when the chart refuses the values", function()
    local rel, msg, code = helm.install(opts { release = "noversion", chart = CHART, namespace = "apps",
      values = { service = "web" } })
    assert.is_nil(rel)
    assert.equal("failed", code)
    assert.matches("^helm upgrade noversion: ", msg)
    assert.matches("values.version is required", msg, 1, true)
    assert.is_nil(msg:find("Error:", 1, true))
  end)

  it("refuses a chart path that does not exist or is no chart, before running helm", function()
    local rel, msg, code = helm.install(opts { release = "web-v9", chart = tmp .. "/no-chart", values = values })
    assert.is_nil(rel)
    assert.equal("failed", code)
    assert.matches("no%-chart' not found", msg)
    rel, msg, code = helm.install(opts { release = "web-v9", chart = tmp, values = values })
    assert.is_nil(rel)
    assert.equal("failed", code)
    assert.matches("no Chart.yaml", msg, 1, true)
    assert.same({}, invocations())
  end)
end)

describe("helm failures", function()
  it("HELM_FAKE_FAIL: failed, with helm's Error: text", function()
    local rel, msg, code = helm.install(opts({ release = "web-v2", chart = CHART, namespace = "apps",
      values = { service = "web", version = "v2" } }, { HELM_FAKE_FAIL = "upgrade" }))
    assert.is_nil(rel)
    assert.equal("failed", code)
    assert.equal('helm upgrade web-v2: UPGRADE FAILED: Kubernetes cluster unreachable: Get ' ..
      '"https://127.0.0.1:6443/version": dial tcp 127.0.0.1:6443: connect: connection refused', msg)
    assert_values_gone(last_argv()) -- the values file went too

    local l
    l, msg, code = helm.list(opts({ namespace = "apps" }, { HELM_FAKE_FAIL = "list",
      HELM_FAKE_FAIL_MESSAGE = "first line\nsecond line" }))
    assert.is_nil(l)
    assert.equal("failed", code)
    assert.equal("helm list: list: first line\nsecond line", msg)
  end)

  it("keeps the Error: lines, not warnings or usage", function()
    local noisy = script("helm-noisy", table.concat({
      'echo "WARNING: Kubernetes configuration file is group-readable. This is insecure." >&2',
      'echo "Error: \\"helm status\\" requires 1 argument" >&2',
      'echo "" >&2',
      'echo "Usage:  helm status RELEASE_NAME [flags]" >&2',
      'exit 1' }, "\n"))
    local st, msg, code = helm.status { helm = noisy, release = "web-v1" }
    assert.is_nil(st)
    assert.equal("failed", code)
    assert.equal('helm status web-v1: "helm status" requires 1 argument', msg)
    -- no Error: line at all: the end of stderr, or the exit status
    st, msg, code = helm.status { helm = script("helm-bare", 'echo "panic: boom" >&2; exit 2'), release = "web-v1" }
    assert.equal("failed", code)
    assert.equal("helm status web-v1: panic: boom", msg)
    -- a very long error is cut short
    local long = script("helm-long", table.concat({
      '{ printf "Error: "; head -c 10000 /dev/zero | tr "\\0" x; echo; echo "second line";',
      '  head -c 10000 /dev/zero | tr "\\0" y; echo; } >&2', 'exit 1' }, "\n"))
    st, msg, code = helm.status { helm = long, release = "web-v1" }
    assert.equal("failed", code)
    assert.matches("^helm status web%-v1: xxxx", msg)
    assert.matches("%.%.%.$", msg)
    assert.is_true(#msg <= 4096 + #"helm status web-v1: ", "message of " .. #msg .. " bytes")
    st, msg, code = helm.status { helm = script("helm-long2", 'head -c 10000 /dev/zero | tr "\\0" z >&2; exit 1'),
      release = "web-v1" }
    assert.equal("failed", code)
    assert.matches("^helm status web%-v1: %.%.%.zzz", msg)
    assert.is_true(#msg <= 4096 + #"helm status web-v1: ", "message of " .. #msg .. " bytes")
    st, msg, code = helm.status { helm = script("helm-silent", "exit 3"), release = "web-v1" }
    assert.equal("failed", code)
    assert.equal("helm status web-v1: helm exited with status 3 and printed no error", msg)
  end)

  it("reports output that is not JSON as a protocol failure", function()
    local st, msg, code = helm.status { helm = script("helm-text", "echo 'NAME: web-v1'"), release = "web-v1" }
    assert.is_nil(st)
    assert.equal("protocol", code)
    assert.matches("^helm status web%-v1: its output is not the JSON expected", msg)
    assert.matches("NAME: web-v1", msg, 1, true)
  end)

  it("turns get values' null (no user values) into an empty table", function()
    local v = assert(helm.get_values { helm = script("helm-null", "echo null"), release = "web-v1" })
    assert.same({}, v)
    assert.equal("{}", json.encode(v))
  end)

  it("HELM_FAKE_HANG: timeout soon after timeout + margin, and the helm process is gone", function()
    local t0 = time.now()
    local rel, msg, code = helm.install(opts({ release = "web-v2", chart = CHART, namespace = "apps",
      values = { service = "web", version = "v2" }, timeout = 1, margin = 0.5 }, { HELM_FAKE_HANG = "upgrade" }))
    local took = time.now() - t0
    assert.is_nil(rel)
    assert.equal("timeout", code)
    assert.matches("did not finish within 1.5s", msg, 1, true)
    assert.is_true(took >= 1.5 and took < fixture.timeout(4), "took " .. took .. " s")
    local inv = invocations()
    assert.equal(1, #inv)
    assert.is_true(contains(inv[1].argv, "--timeout=1s"))
    assert.is_false(proc.alive(math.tointeger(inv[1].pid)), "the hung fake helm is still running")
    assert_values_gone(inv[1].argv)

    -- a hung read-only command: its timeout is the whole deadline
    fs.remove(helm_log)
    t0 = time.now()
    local l
    l, msg, code = helm.list(opts({ namespace = "apps", timeout = 0.5 }, { HELM_FAKE_HANG = "list" }))
    took = time.now() - t0
    assert.is_nil(l)
    assert.equal("timeout", code)
    assert.is_true(took >= 0.5 and took < fixture.timeout(3), "took " .. took .. " s")
    inv = invocations()
    assert.is_false(proc.alive(math.tointeger(inv[1].pid)))
  end)

  it("^C stops a hung helm, removes the values file and raises interrupted", function()
    local private = private_tmpdir("tmp-interrupt")
    local out = tmp .. "/interrupted.log"
    local code = ([[
      local helm = require "rollout.helm"
      local ok, err = pcall(helm.install, { helm = %q, release = "web-v3", chart = %q,
        values = { service = "web", version = "v3" }, timeout = 60 })
      print("ok=" .. tostring(ok) .. " err=" .. tostring(err))
    ]]):format(FAKE, CHART)
    local pid = assert(proc.spawn { argv = { BIN, "-e", code }, log = out,
      env = fake_env { HELM_FAKE_HANG = "upgrade", KUBECONFIG = kubeconfig, TMPDIR = private } })
    finally(function()
      proc.stop(pid, { timeout = 2 })
      for _, inv in ipairs(invocations()) do
        local p = math.tointeger(inv.pid)
        if proc.alive(p) then proc.kill(p, "KILL") end
      end
    end)
    local inv = wait_for(function() return invocations()[1] end, 20, "helm to start")
    local helm_pid = math.tointeger(inv.pid)
    assert.is_true(proc.alive(helm_pid))
    local f = values_file(inv.argv)
    assert.equal(private, f:sub(1, #private)) -- under the child's TMPDIR
    assert.is_true(fs.exists(f)) -- while helm runs
    assert(proc.kill(pid, "INT"))
    wait_for(function() return not proc.alive(pid) end, 10, "rollout to stop")
    assert.matches("ok=false err=[^\n]*interrupted", read(out))
    assert.is_false(proc.alive(helm_pid), "the hung fake helm is still running")
    assert.same({}, fs.list(private))
  end)

  it("reports helm missing from PATH as not_installed, leaving no values file", function()
    local empty = tmp .. "/empty-bin"
    assert(fs.mkdir_p(empty))
    local rel, msg, code = helm.install { release = "web-v2", chart = CHART, values = { version = "v2" },
      env = { PATH = empty } }
    assert.is_nil(rel)
    assert.equal("not_found", code)
    assert.equal("helm is not installed (looked for it on PATH): see https://helm.sh/docs/intro/install/", msg)
    local ok
    ok, msg, code = helm.uninstall { release = "web-v2", env = { PATH = empty } }
    assert.is_nil(ok)
    assert.equal("not_found", code)
    -- the same in a child whose TMPDIR we watch: no values file left
    local private = private_tmpdir("tmp-not-installed")
    local src = ("local r, m, c = require('rollout.helm').install { release = 'web-v2', chart = %q, " ..
      "values = { version = 'v2' } }; io.write(tostring(c))"):format(CHART)
    local r = assert(proc.run { argv = { BIN, "-e", src }, timeout = 30,
      env = { TMPDIR = private, PATH = empty, ROLLOUT_HELM = false } })
    assert.equal("not_found", r.stdout)
    assert.same({}, fs.list(private))
  end)
end)

describe("the values file", function()
  it("cannot be written: the errno code, and helm never runs", function()
    local src = ("local r, m, c = require('rollout.helm').install { helm = %q, release = 'web-v2', " ..
      "chart = %q, values = { version = 'v2' } }; io.write(tostring(c), '|', tostring(m))"):format(FAKE, CHART)
    local r = assert(proc.run { argv = { BIN, "-e", src }, timeout = 30,
      env = fake_env { TMPDIR = tmp .. "/no-such-dir" } })
    assert.matches("^not_found|helm.install: cannot write the values file in .*/no%-such%-dir", r.stdout)
    assert.is_false(fs.exists(helm_log), "helm ran")
  end)
end)

describe("helm.uninstall", function()
  it("uninstalls, and the Deployment goes", function()
    assert.is_true(helm.uninstall(opts { release = "web-v1", namespace = "apps", wait = true, timeout = 30 }))
    assert.same({ "uninstall", "web-v1", "--namespace=apps", "--wait", "--timeout=30s",
      "--kubeconfig=" .. kubeconfig }, last_argv())
    local st = api_get("/apis/apps/v1/namespaces/apps/deployments/web-v1")
    assert.equal(404, st)
    assert.equal(0, #assert(helm.list(opts { namespace = "apps" })))
  end)

  it("reports a missing release as notfound (uninstall, status, get_values)", function()
    local ok, msg, code = helm.uninstall(opts { release = "web-v1", namespace = "apps" })
    assert.is_nil(ok)
    assert.equal("not_found", code)
    assert.equal("helm uninstall web-v1: uninstall: Release not loaded: web-v1: release: not found", msg)
    local st
    st, msg, code = helm.status(opts { release = "web-v1", namespace = "apps" })
    assert.is_nil(st)
    assert.equal("not_found", code)
    assert.equal("helm status web-v1: release: not found", msg)
    st, msg, code = helm.get_values(opts { release = "web-v1", namespace = "apps" })
    assert.is_nil(st)
    assert.equal("not_found", code)
  end)

  it("accepts a release name of exactly 53 characters", function()
    local name = ("a"):rep(53)
    local st, _, code = helm.status(opts { release = name })
    assert.is_nil(st)
    assert.equal("not_found", code) -- it ran: the name passed validation
    assert.equal(name, last_argv()[2])
  end)
end)

describe("helm's pending states", function()
  it("lists a release a killed helm left pending only with all/pending, refuses upgrades, rolls back", function()
    local values = { service = "pend", version = "v1" }
    assert(helm.install(opts { release = "pend-v1", chart = CHART, namespace = "apps", values = values, timeout = 60 }))
    -- an upgrade that waits for a never-ready image, killed while it waits
    local argv = { FAKE, "upgrade", "pend-v1", CHART, "--namespace", "apps", "--set", "service=pend", "--set",
                   "version=v1", "--set", "image.tag=broken", "--wait", "--timeout", "120s",
                   "--kubeconfig", kubeconfig }
    local pid = assert(proc.spawn { argv = argv, env = fake_env(), log = tmp .. "/pend.log" })
    finally(function() if proc.alive(pid) then proc.kill(pid, "KILL") end end)
    wait_for(function()
      local f = read(state .. "/apps/pend-v1/2.json")
      return f:find('"pending-upgrade"', 1, true)
    end, 20, "the pending-upgrade record")
    assert(proc.kill(pid, "KILL"))
    wait_for(function() return not proc.alive(pid) end, 5, "helm to die")
    -- helm list's default states (deployed, failed) hide it
    assert.equal(0, #assert(helm.list(opts { namespace = "apps", filter = "^pend-" })))
    local all = assert(helm.list(opts { namespace = "apps", filter = "^pend-", all = true }))
    assert.equal("pending-upgrade", all[1].status)
    assert.is_true(contains(last_argv(), "--all"))
    assert.equal(1, #assert(helm.list(opts { namespace = "apps", filter = "^pend-", pending = true })))
    assert.is_true(contains(last_argv(), "--pending"))
    assert.is_true(helm.pending(all[1].status))
    assert.is_false(helm.pending("deployed"))
    -- helm refuses another upgrade: conflict, with helm's text as raw
    local rel, msg, code, raw = helm.install(opts { release = "pend-v1", chart = CHART, namespace = "apps",
      values = values, timeout = 30 })
    assert.is_nil(rel)
    assert.equal("conflict", code)
    assert.matches("another operation (install/upgrade/rollback) is in progress", msg, 1, true)
    assert.matches("another operation", raw, 1, true)
    -- the history says when; a rollback to revision 1 ends it
    local hist = assert(helm.history(opts { release = "pend-v1", namespace = "apps" }))
    assert.equal(2, #hist)
    assert.equal("pending-upgrade", hist[2].status)
    assert.is_not_nil(require("rollout.k8s.util").rfc3339(hist[2].updated), hist[2].updated)
    assert.is_true(helm.rollback(opts { release = "pend-v1", namespace = "apps", revision = 1, timeout = 30 }))
    assert.same({ "rollback", "pend-v1", "1", "--namespace=apps", "--timeout=30s", "--kubeconfig=" .. kubeconfig },
      last_argv())
    local st = assert(helm.status(opts { release = "pend-v1", namespace = "apps" }))
    assert.equal("deployed", st.info.status)
    assert.equal(3, st.version)
    assert(helm.install(opts { release = "pend-v1", chart = CHART, namespace = "apps", values = values, timeout = 60 }))
    assert(helm.uninstall(opts { release = "pend-v1", namespace = "apps" }))
    -- a missing release: not_found
    local ok
    ok, msg, code = helm.rollback(opts { release = "pend-v1", namespace = "apps" })
    assert.is_nil(ok)
    assert.equal("not_found", code)
    ok, msg, code = helm.history(opts { release = "pend-v1", namespace = "apps" })
    assert.is_nil(ok)
    assert.equal("not_found", code)
  end)
end)

describe("misuse", function()
  local bad_releases = { "Web", "-web", "web-", "web.", ".web", "a..b", "a.-b", "web_v1", "web v1",
    "web;rm -rf /", "", ("a"):rep(54), "web\0x", "wéb" }

  it("refuses invalid release names before anything runs", function()
    for _, name in ipairs(bad_releases) do
      for _, fn in ipairs { "install", "uninstall", "status", "get_values" } do
        local t = opts { release = name }
        if fn == "install" then t.chart, t.values = CHART, { version = "v1" } end
        local ok, err = pcall(helm[fn], t)
        assert.is_false(ok, fn .. " accepted " .. name)
        assert.matches("helm%." .. fn .. ": invalid release name", err)
      end
    end
    local ok, err = pcall(helm.status, opts { release = 42 })
    assert.is_false(ok)
    assert.matches("option 'release' must be a string", err, 1, true)
    assert.is_false(fs.exists(helm_log), "helm ran")
  end)

  it("refuses invalid namespaces before anything runs", function()
    for _, ns in ipairs { "Apps", "-apps", "apps-", "a.b", "a_b", "", ("a"):rep(64) } do
      local ok, err = pcall(helm.install, opts { release = "web-v1", chart = CHART, namespace = ns })
      assert.is_false(ok, "install accepted namespace " .. ns)
      assert.matches("helm.install: invalid namespace", err, 1, true)
      ok, err = pcall(helm.list, opts { namespace = ns })
      assert.is_false(ok)
      assert.matches("helm.list: invalid namespace", err, 1, true)
    end
    assert.is_false(fs.exists(helm_log), "helm ran")
  end)

  it("refuses unknown options, wrong types and bad timeouts", function()
    local cases = {
      { helm.install, { release = "web-v1", chart = CHART, namesapce = "x" }, "unknown option 'namesapce'" },
      { helm.install, { release = "web-v1" }, "option 'chart' is required" },
      { helm.install, { release = "web-v1", chart = CHART, values = "a=b" }, "option 'values' must be a table" },
      { helm.install, { release = "web-v1", chart = CHART, values = { f = print } }, "json.encode" },
      { helm.install, { release = "web-v1", chart = CHART, values = { "a", "b" } }, "not a list" },
      { helm.install, { release = "web-v1", chart = CHART, values = json.array {} }, "not a list" },
      { helm.install, { release = "web-v1", chart = CHART, wait = "yes" }, "option 'wait' must be a boolean" },
      { helm.install, { release = "web-v1", chart = CHART, timeout = 0 }, "option 'timeout' must be" },
      { helm.install, { release = "web-v1", chart = CHART, timeout = -1 }, "option 'timeout' must be" },
      { helm.install, { release = "web-v1", chart = CHART, margin = -1 }, "option 'margin' must be" },
      { helm.install, { release = "web-v1", chart = CHART, timeout = "300" }, "option 'timeout' must be" },
      { helm.install, { release = "web-v1", chart = CHART, env = "X=1" }, "option 'env' must be a table" },
      { helm.install, { release = "web-v1", chart = CHART, kube_context = "" }, "must not be empty" },
      { helm.list, { namespace = "apps", all_namespaces = true }, "exclude each other" },
      { helm.list, { filter = 1 }, "option 'filter' must be a string" },
      { helm.version, { release = "x" }, "unknown option 'release'" },
      { helm.status, { release = "web-v1", [1] = "x" }, "option keys must be strings" },
    }
    for _, c in ipairs(cases) do
      local t = c[2]
      if t.env == nil then t.env = fake_env() end
      local ok, err = pcall(c[1], t)
      assert.is_false(ok, c[3])
      assert.matches(c[3], err, 1, true)
    end
    assert.is_false(pcall(helm.install))
    assert.is_false(pcall(helm.status, "web-v1"))
    assert.is_false(fs.exists(helm_log), "helm ran")
  end)
end)
