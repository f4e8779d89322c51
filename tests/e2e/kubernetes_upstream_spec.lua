-- The Kubernetes target against fakes that follow the real systems
-- (tests/fakes/README.md, "Conformance"): Istio's validating webhook and its
-- served versions, Envoy's lone-destination and mesh semantics in the stub
-- gateway, helm's pending states, client-go's kubeconfig merging; the
-- strategy routes end to end; the messages of the Kubernetes target.
local fixture = require "tests.helpers.fixture"
local kube = require "tests.helpers.kube_env"
local fs = require "rollout.fs"
local json = require "rollout.json"
local proc = require "rollout.proc"
local yaml = require "rollout.yaml"
local time = require "rollout.time"
local routing = require "rollout.target.kubernetes.routing"

local SERVICE = kube.SERVICE
local script, rollout, writes, log_mark = kube.script, kube.rollout, kube.writes, kube.log_mark
local VS = "/apis/networking.istio.io/v1/namespaces/default/virtualservices/" .. SERVICE
local cfg = { name = SERVICE, version_header = "x-version", kubernetes = {} }

-- A script: set strategy routes from a JSON argument, print the routes in effect.
local ROUTES_SCRIPT = [[
local rollout = require "rollout"
local json = require "rollout.json"
local svc = rollout.service((...))
local got = svc:set_routes(json.decode(select(2, ...)))
print(json.encode(json.array(got)))
]]

describe("the fakes follow Istio", function()
  local tmp, srv, project, env

  setup(function()
    tmp = fixture.tmpdir()
    srv = kube.start_server(tmp)
    project = kube.make_project(tmp .. "/p")
    env = kube.env_for(srv, project)
  end)

  teardown(function()
    local ok, err = pcall(kube.stop_server, srv)
    fixture.remove(tmp)
    assert(ok, err)
  end)

  local function vs(http)
    return { apiVersion = "networking.istio.io/v1", kind = "VirtualService",
             metadata = { name = "probe", namespace = "default" }, spec = { hosts = { "probe" }, http = http } }
  end

  it("refuses what istiod's webhook refuses (403, its message), dry runs too", function()
    local d = function(s, w) return { destination = { host = "x", subset = s }, weight = w } end
    local st, obj = kube.api(srv, "PATCH", "/apis/networking.istio.io/v1/namespaces/default/virtualservices/probe" ..
      "?fieldManager=t&dryRun=All", vs { { route = { d("a", 0), d("b", 0) } } }, "application/apply-patch+yaml")
    assert.equal(403, st)
    assert.equal("Forbidden", obj.reason)
    assert.equal('virtualservices.networking.istio.io "probe" is forbidden: admission webhook ' ..
      '"validation.istio.io" denied the request: configuration is invalid: total destination weight = 0', obj.message)
    st, obj = kube.api(srv, "POST", "/apis/networking.istio.io/v1/namespaces/default/virtualservices",
      vs { { route = { d("a", -1), d("b", 2) } }, { match = { { headers = { ["a b"] = { regex = "(?=x)" } } } },
                                                    directResponse = { status = 100 } } })
    assert.equal(403, st)
    assert.truthy(obj.message:find("4 errors occurred", 1, true), obj.message)
    assert.truthy(obj.message:find("Istio uses RE2 style regex-based match", 1, true), obj.message)
    assert.truthy(obj.message:find("weight -1 < 0", 1, true), obj.message)
    assert.truthy(obj.message:find("header name a b is not a valid header name", 1, true), obj.message)
    assert.truthy(obj.message:find("HTTP status 100 is not in range 200-599", 1, true), obj.message)
    -- a lone destination at weight 0 is valid (it takes all traffic)
    st = kube.api(srv, "PATCH", "/apis/networking.istio.io/v1/namespaces/default/virtualservices/probe" ..
      "?fieldManager=t&dryRun=All", vs { { route = { d("a", 0) } } }, "application/apply-patch+yaml")
    assert.equal(201, st)
    assert.is_nil(kube.get(srv, "/apis/networking.istio.io/v1/namespaces/default/virtualservices/probe"))
  end)

  it("never renders what Istio refuses or misreads: a first version at weight 0 serves no default traffic", function()
    finally(function() rollout(env, { script("ops.lua"), "delete_service", SERVICE }) end)
    local r = rollout(env, { script("ops.lua"), "start", SERVICE, "v1" })
    assert.equal(0, r.status, r.output)
    local v, s = kube.probe(srv, 20)
    assert.same({ [503] = 20 }, s) -- on Istio a lone destination would have taken it all
    assert.same({ v1 = 10 }, (kube.probe(srv, 10, { ["x-version"] = "v1" })))
    -- a second version: two destinations at 0 would be refused by Istio (>= 1.15)
    r = rollout(env, { script("ops.lua"), "start", SERVICE, "v2" })
    assert.equal(0, r.status, r.output)
    local live = kube.get(srv, VS)
    assert.equal(503, live.spec.http[#live.spec.http].directResponse.status)
    assert.same({ v1 = 0, v2 = 0 }, routing.route_weights(cfg, live))
    -- and the weights given: one write, then served
    local mark = log_mark(srv)
    assert(fs.write_atomic(project.traffic, "versions:\n- name: v1\n  weight: 0\n- name: v2\n  weight: 100\n"))
    r = rollout(env, { script("ops.lua"), "update_traffic", SERVICE, "--endpoint", srv.url })
    assert.equal(0, r.status, r.output)
    assert.same({ "PATCH virtualservices/" .. SERVICE .. " rollout" }, writes(srv, mark))
    v = kube.probe(srv, 20)
    assert.same({ v2 = 20 }, v)
  end)

  it("routes a lone destination whatever its weight, as Envoy does", function()
    finally(function()
      kube.api(srv, "DELETE", "/apis/networking.istio.io/v1/namespaces/default/virtualservices/" .. SERVICE)
      rollout(env, { script("ops.lua"), "delete_service", SERVICE })
    end)
    local r = rollout(env, { script("steps/step0_baseline.lua"), SERVICE, srv.url })
    assert.equal(0, r.status, r.output)
    -- a hand-written route: v2 alone, at weight 0
    local m = routing.virtual_service({ name = SERVICE, port = 8080, kubernetes = {} }, { v1 = 50, v2 = 50 })
    m.spec.http = { { name = "only", route = { { destination = { host = SERVICE, subset = "v2" }, weight = 0 } } } }
    local st = kube.api(srv, "PATCH", VS .. "?fieldManager=t&force=true", m, "application/apply-patch+yaml")
    assert.equal(200, st)
    assert.same({ v2 = 20 }, (kube.probe(srv, 20)))
  end)
end)

describe("the Kubernetes target on the Istio versions it supports", function()
  it("uses networking.istio.io/v1beta1 on Istio 1.21 (no v1), for reads and writes", function()
    local tmp = fixture.tmpdir()
    local srv = kube.start_server(tmp, { "--istio-version", "1.21" })
    finally(function()
      pcall(kube.stop_server, srv)
      fixture.remove(tmp)
    end)
    local project = kube.make_project(tmp .. "/p")
    local env = kube.env_for(srv, project)
    local mark = log_mark(srv)
    local r = rollout(env, { script("steps/step0_baseline.lua"), SERVICE, srv.url })
    assert.equal(0, r.status, r.output)
    local paths = {}
    for _, q in ipairs(kube.requests(srv, mark)) do
      if q.group == "networking.istio.io" then
        assert.equal("v1beta1", q.path:match("^/apis/networking%.istio%.io/([^/]+)/"), q.method .. " " .. q.path)
        if q.method ~= "GET" then assert.is_true(q.code < 400, q.method .. " " .. q.path .. " " .. q.code) end
        paths[q.method] = paths[q.method] or (q.code == 200)
      end
    end
    assert.is_true(paths.GET and paths.PATCH)
    assert.is_nil(kube.get(srv, VS)) -- v1 is not served there
    local live = kube.get(srv, "/apis/networking.istio.io/v1beta1/namespaces/default/virtualservices/" .. SERVICE)
    assert.equal("networking.istio.io/v1beta1", live.apiVersion)
    r = rollout(env, { script("ops.lua"), "delete_service", SERVICE })
    assert.equal(0, r.status, r.output)
  end)

  it("says so when the cluster serves no Istio, before any routing write", function()
    local tmp = fixture.tmpdir()
    local srv = kube.start_server(tmp, { "--istio-version", "none" })
    finally(function()
      pcall(kube.stop_server, srv)
      fixture.remove(tmp)
    end)
    local project = kube.make_project(tmp .. "/p")
    local env = kube.env_for(srv, project)
    local r = rollout(env, { script("ops.lua"), "start", SERVICE, "v1" })
    assert.equal(1, r.status, r.output)
    assert.truthy(r.stderr:find("the cluster does not serve networking.istio.io (is Istio installed?)", 1, true), r.stderr)
    for _, w in ipairs(writes(srv, 0)) do assert.is_nil(w:find("virtualservices", 1, true), w) end
  end)
end)

describe("mesh and gateways", function()
  it("includes mesh with a gateway, so in-mesh callers follow the weights; gateway_only leaves it out", function()
    local tmp = fixture.tmpdir()
    local srv = kube.start_server(tmp) -- the stub gateway acts as a sidecar (mesh)
    finally(function()
      pcall(kube.stop_server, srv)
      fixture.remove(tmp)
    end)
    local project = kube.make_project(tmp .. "/p", { gateway = "istio-system/ingress" })
    local env = kube.env_for(srv, project)
    local r = rollout(env, { script("steps/step0_baseline.lua"), SERVICE, srv.url })
    assert.equal(0, r.status, r.output)
    assert(fs.write_atomic(project.traffic, "versions:\n- name: v1\n  weight: 100\n- name: v2\n  weight: 0\n"))
    r = rollout(env, { script("ops.lua"), "update_traffic", SERVICE, "--endpoint", srv.url })
    assert.equal(0, r.status, r.output)
    assert.same({ "istio-system/ingress", "mesh" }, kube.get(srv, VS).spec.gateways)
    assert.same({ v1 = 40 }, (kube.probe(srv, 40)))
    -- gateway only: the sidecars route by the Service, over every version (the bypass)
    kube.set_kubernetes(project, { gateway_only = "true" })
    r = rollout(env, { script("ops.lua"), "update_traffic", SERVICE, "--endpoint", srv.url })
    assert.equal(1, r.status, r.output) -- the mesh caller sees v2, which has weight 0
    assert.same({ "istio-system/ingress" }, kube.get(srv, VS).spec.gateways)
    local v = kube.probe(srv, 60)
    assert.is_true((v.v2 or 0) > 0 and (v.v1 or 0) > 0, json.encode(v))
  end)
end)

describe("Gateway API routing", function()
  local tmp, srv, project, env

  setup(function()
    tmp = fixture.tmpdir()
    srv = kube.start_server(tmp)
    project = kube.make_project(tmp .. "/p", { routing = "gateway-api" })
    env = kube.env_for(srv, project)
    local r = rollout(env, { script("steps/step0_baseline.lua"), SERVICE, srv.url })
    if r.status ~= 0 then
      pcall(kube.stop_server, srv)
      error(r.output, 0)
    end
  end)

  teardown(function()
    local ok, err = pcall(kube.stop_server, srv)
    fixture.remove(tmp)
    assert(ok, err)
  end)

  it("refuses a header naming no deployed version (500), never serving it by weight", function()
    local v, s = kube.probe(srv, 20, { ["x-version"] = "v9" })
    assert.same({}, v)
    assert.same({ [500] = 20 }, s)
    assert.same({ v2 = 10 }, (kube.probe(srv, 10, { ["x-version"] = "v2" })))
    local r = rollout(env, { script("ops.lua"), "list", SERVICE })
    assert.equal(0, r.status, r.output)
    assert.truthy(r.stdout:find("a x-version naming no deployed version gets 500", 1, true), r.stdout)
  end)

  it("follows strategy routes: headers and cookies, the version header first, one write each", function()
    local routes = { { name = "beta", version = "v2", match = { { headers = { ["X-Group"] = "beta" },
                                                                  cookies = { canary = "always" } },
                                                                { headers = { ["x-tester"] = "yes" } } } } }
    local file = tmp .. "/routes.lua"
    assert(fs.write_atomic(file, ROUTES_SCRIPT))
    assert(fs.write_atomic(project.traffic, "versions:\n- name: v1\n  weight: 100\n- name: v2\n  weight: 0\n"))
    local r = rollout(env, { script("ops.lua"), "update_traffic", SERVICE, "--endpoint", srv.url })
    assert.equal(0, r.status, r.output)
    local mark = log_mark(srv)
    r = rollout(env, { file, SERVICE, json.encode(routes) })
    assert.equal(0, r.status, r.output)
    assert.same({ "PATCH httproutes/" .. SERVICE .. " rollout" }, writes(srv, mark))
    assert.equal("beta", json.decode(r.stdout)[1].name)
    -- all of an entry must match; any entry will do
    assert.same({ v2 = 10 }, (kube.probe(srv, 10, { ["x-group"] = "beta", cookie = "a=1; canary=always; b=2" })))
    assert.same({ v2 = 10 }, (kube.probe(srv, 10, { ["X-Tester"] = "yes" })))
    assert.same({ v1 = 10 }, (kube.probe(srv, 10, { ["x-group"] = "beta", cookie = "canary=alwaysnot" })))
    assert.same({ v1 = 10 }, (kube.probe(srv, 10, { cookie = "canary=always" })))
    -- the version header wins over a route that tests more headers
    assert.same({ v1 = 10 }, (kube.probe(srv, 10, { ["x-version"] = "v1", ["x-group"] = "beta",
                                                     cookie = "canary=always" })))
    -- cleared
    r = rollout(env, { file, SERVICE, "[]" })
    assert.equal(0, r.status, r.output)
    assert.same({ v1 = 10 }, (kube.probe(srv, 10, { ["x-tester"] = "yes" })))
  end)
end)

describe("strategy routes on Istio", function()
  local tmp, srv, project, env, file

  setup(function()
    tmp = fixture.tmpdir()
    srv = kube.start_server(tmp)
    project = kube.make_project(tmp .. "/p")
    env = kube.env_for(srv, project)
    file = tmp .. "/routes.lua"
    assert(fs.write_atomic(file, ROUTES_SCRIPT))
    local r = rollout(env, { script("steps/step0_baseline.lua"), SERVICE, srv.url })
    if r.status == 0 then r = rollout(env, { script("steps/step2_deploy_v3.lua"), SERVICE, srv.url }) end
    if r.status ~= 0 then
      pcall(kube.stop_server, srv)
      error(r.output, 0)
    end
  end)

  teardown(function()
    local ok, err = pcall(kube.stop_server, srv)
    fixture.remove(tmp)
    assert(ok, err)
  end)

  it("routes by header and cookie in list order, keeps the routes across weight changes", function()
    local routes = {
      { name = "ab", version = "v3", match = { { cookies = { canary = "always", ["ab-group"] = "b" } } } },
      { name = "mobile", version = "v2", match = { { headers = { ["user-agent"] = "MobileApp/2.0" } } } },
      { name = "catchall", version = "v1", match = { { cookies = { canary = "always" } } } },
    }
    local before = kube.read(project.traffic)
    local mark = log_mark(srv)
    local r = rollout(env, { file, SERVICE, json.encode(routes) })
    assert.equal(0, r.status, r.output)
    assert.same({ "PATCH virtualservices/" .. SERVICE .. " rollout" }, writes(srv, mark))
    -- v3 has weight 0 but the route reaches it; first matching route wins
    assert.same({ v3 = 10 }, (kube.probe(srv, 10, { cookie = "ab-group=b; x=1; canary=always" })))
    assert.same({ v1 = 10 }, (kube.probe(srv, 10, { cookie = "canary=always; ab-group=a" })))
    assert.same({ v2 = 10 }, (kube.probe(srv, 10, { ["User-Agent"] = "MobileApp/2.0" })))
    assert.same({ v1 = 10 }, (kube.probe(srv, 10, { ["x-version"] = "v1", cookie = "ab-group=b; canary=always" })))
    local v = kube.probe(srv, 40)
    assert.is_nil(v.v3) -- default traffic still by weight: v3 at 0
    -- the routes in effect, read back; a weight change keeps them (one write)
    local live = routing.routes(cfg, kube.get(srv, VS))
    assert.same({ "ab", "mobile", "catchall" }, { live[1].name, live[2].name, live[3].name })
    mark = log_mark(srv)
    r = rollout(env, { script("steps/step3_add_v3.lua"), SERVICE, srv.url })
    assert.equal(0, r.status, r.output)
    assert.same({ "PATCH virtualservices/" .. SERVICE .. " rollout" }, writes(srv, mark))
    assert.equal(3, #routing.routes(cfg, kube.get(srv, VS)))
    assert.same({ v2 = 5 }, (kube.probe(srv, 5, { ["user-agent"] = "MobileApp/2.0" })))
    assert.equal(kube.read(project.traffic), kube.read(project.traffic))
    assert.truthy(before ~= "")
  end)

  it("refuses bad routes with exit 2, changing nothing", function()
    local live = kube.get(srv, VS)
    local mark = log_mark(srv)
    for _, bad in ipairs {
      { { name = "x", version = "v9", match = { { headers = { a = "b" } } } } },
      { { name = "Bad", version = "v1", match = { { headers = { a = "b" } } } } },
      { { name = "x", version = "v1", match = { { headers = { ["a:b"] = "c" } } } } },
      { { name = "x", version = "v1", match = { { cookies = { c = "a b" } } } } },
    } do
      local r = rollout(env, { file, SERVICE, json.encode(bad) })
      assert.equal(2, r.status, r.output)
      assert.is_nil(r.stderr:gsub("\n$", ""):find("\n"), r.stderr)
    end
    assert.same({}, writes(srv, mark))
    assert.equal(live.metadata.resourceVersion, kube.get(srv, VS).metadata.resourceVersion)
  end)
end)

describe("helm's pending states", function()
  it("reports a release a killed helm left pending, refuses it while fresh, recovers it once stale", function()
    local tmp = fixture.tmpdir()
    local srv = kube.start_server(tmp)
    local helm_pid
    finally(function()
      if helm_pid then pcall(fixture.stop, helm_pid) end
      pcall(kube.stop_server, srv)
      fixture.remove(tmp)
    end)
    local project = kube.make_project(tmp .. "/p", { pending_grace = 600 })
    local env = kube.env_for(srv, project)
    local r = rollout(env, { script("steps/step0_baseline.lua"), SERVICE, srv.url })
    assert.equal(0, r.status, r.output)
    -- a helm upgrade to an image that never starts, killed while it waits
    helm_pid = assert(proc.spawn { argv = { kube.FAKES .. "/bin/helm", "upgrade", SERVICE .. "-v2",
      project.deployments .. "/chart", "--set", "service=" .. SERVICE, "--set", "version=v2", "--set",
      "image.tag=broken", "--wait", "--timeout", "120s" }, env = env, log = tmp .. "/helm.out" })
    fixture.wait(function() return kube.releases(project)[SERVICE .. "-v2"] == "pending-upgrade" end, 20,
      "helm to store pending-upgrade")
    assert(proc.kill(helm_pid, "KILL"))
    fixture.wait(function() return not proc.alive(helm_pid) end, 5, "helm to die")
    helm_pid = nil
    -- helm list alone hides it; rollout shows it
    r = rollout(env, { script("ops.lua"), "list", SERVICE })
    assert.equal(0, r.status, r.output)
    assert.truthy(r.stdout:find("pending-upgrade", 1, true), r.stdout)
    assert.truthy(r.stdout:find("a helm operation did not finish", 1, true), r.stdout)
    -- fresh: refused, nothing changed
    local mark = log_mark(srv)
    r = rollout(env, { script("ops.lua"), "start", SERVICE, "v2" })
    assert.equal(1, r.status, r.output)
    assert.truthy(r.stderr:find("is pending-upgrade since", 1, true), r.stderr)
    assert.same({}, writes(srv, mark))
    -- stale (older than pending_grace): rolled back, then upgraded
    kube.set_kubernetes(project, { pending_grace = 0 })
    r = rollout(env, { script("ops.lua"), "start", SERVICE, "v2", "--restart" })
    assert.equal(0, r.status, r.output)
    assert.equal("deployed", kube.releases(project)[SERVICE .. "-v2"])
    local hist = {}
    for _, line in ipairs((function()
      local out = {}
      for l in kube.read(project.helm_log):gmatch("[^\n]+") do out[#out + 1] = l end
      return out
    end)()) do
      local argv = json.decode(line).argv
      if argv[1] == "rollback" then hist[#hist + 1] = table.concat(argv, " ") end
    end
    assert.equal(1, #hist)
    assert.truthy(hist[1]:find("rollback " .. SERVICE .. "-v2 1", 1, true), hist[1])
    r = rollout(env, { script("ops.lua"), "delete_service", SERVICE })
    assert.equal(0, r.status, r.output)
    assert.same({}, kube.releases(project))
  end)
end)

describe("one configuration for rollout and helm", function()
  it("merges a $KUBECONFIG list for both, and gives helm the resolved context", function()
    local tmp = fixture.tmpdir()
    local srv = kube.start_server(tmp)
    finally(function()
      pcall(kube.stop_server, srv)
      fixture.remove(tmp)
    end)
    local kc = assert(yaml.load_file(srv.kubeconfig))
    local cluster, user = kc.clusters[1], kc.users[1]
    -- file a: the context and the user; file b: the cluster (and a decoy context)
    assert(fs.write_atomic(tmp .. "/a", yaml.dump { apiVersion = "v1", kind = "Config", ["current-context"] = "team",
      contexts = { { name = "team", context = { cluster = cluster.name, user = user.name } } }, users = { user } }))
    assert(fs.write_atomic(tmp .. "/b", yaml.dump { apiVersion = "v1", kind = "Config", ["current-context"] = "decoy",
      clusters = { cluster }, contexts = { { name = "decoy", context = { cluster = "nowhere", user = "nobody" } } } }))
    local project = kube.make_project(tmp .. "/p")
    local env = kube.env_for(srv, project, { KUBECONFIG = tmp .. "/missing:" .. tmp .. "/a:" .. tmp .. "/b" })
    local r = rollout(env, { script("ops.lua"), "start", SERVICE, "v1" })
    assert.equal(0, r.status, r.output)
    local saw
    for l in kube.read(project.helm_log):gmatch("[^\n]+") do
      local argv = json.decode(l).argv
      if argv[1] == "upgrade" then
        for _, a in ipairs(argv) do if a == "--kube-context=team" then saw = true end end
      end
    end
    assert.is_true(saw, "helm was not given the context rollout resolved")
    assert.equal("deployed", kube.releases(project)[SERVICE .. "-v1"])
    r = rollout(env, { script("ops.lua"), "delete_service", SERVICE })
    assert.equal(0, r.status, r.output)
  end)
end)

describe("messages on the Kubernetes target", function()
  local tmp, srv, project, env

  setup(function()
    tmp = fixture.tmpdir()
    srv = kube.start_server(tmp)
    project = kube.make_project(tmp .. "/p")
    env = kube.env_for(srv, project)
  end)

  teardown(function()
    local ok, err = pcall(kube.stop_server, srv)
    fixture.remove(tmp)
    assert(ok, err)
  end)

  it("speaks of releases, pods and replicas, never of processes and ports", function()
    local r = rollout(env, { script("steps/step0_baseline.lua"), SERVICE, srv.url })
    assert.equal(0, r.status, r.output)
    assert.truthy(r.stdout:find("v1 running (release microservice-1-v1, 1/1 ready)", 1, true), r.stdout)
    assert.truthy(r.stdout:find("v2 healthy (release microservice-1-v2, 1/1 pods ready, routed, weight 50)", 1, true),
      r.stdout)
    assert.is_nil(r.output:find("pid ", 1, true), r.output)
    assert.is_nil(r.output:find("process", 1, true), r.output)
    r = rollout(env, { script("ops.lua"), "start", SERVICE, "v3" })
    assert.equal(0, r.status, r.output)
    assert.truthy(r.stdout:find("v3 running (release microservice-1-v3, 1/1 replicas ready), weight 0", 1, true),
      r.stdout)
    r = rollout(env, { script("ops.lua"), "list", SERVICE })
    assert.equal(0, r.status, r.output)
    local header = r.stdout:match("\n%s*(version[^\n]*)")
    assert.truthy(header, r.stdout)
    assert.is_truthy(header:find("replicas", 1, true) and header:find("release", 1, true), header)
    assert.is_nil(header:find("pid", 1, true), header)
    assert.is_nil(header:find("port", 1, true), header)
    assert.truthy(r.stdout:find("v1%s+50%s+50%.0%%%s+yes%s+1/1%s+microservice%-1%-v1%s+deployed%s+routed"), r.stdout)
    assert.truthy(r.stdout:find("set kubernetes.endpoint in service.yaml or GATEWAY_ENDPOINT", 1, true), r.stdout)
    r = rollout(env, { script("ops.lua"), "ping", SERVICE, "v1" })
    assert.equal(0, r.status, r.output)
    assert.truthy(r.stdout:find("v1 healthy (release microservice-1-v1, 1/1 pods ready, routed, weight 50)", 1, true),
      r.stdout)
    assert.is_nil(r.output:find("pid", 1, true), r.output)
    r = rollout(env, { script("steps/step1_verify_baseline.lua"), SERVICE, srv.url })
    assert.equal(0, r.status, r.output)
    r = rollout(env, { script("ops.lua"), "delete_version", SERVICE, "v3" })
    assert.equal(0, r.status, r.output)
    assert.truthy(r.stdout:find("v3 removed (release microservice-1-v3 uninstalled, its pods are going)", 1, true),
      r.stdout)
    assert.is_nil(r.output:find("process", 1, true), r.output)
  end)

  it("refuses update_traffic without an endpoint before changing anything (exit 2)", function()
    local before_vs = kube.get(srv, VS)
    assert(before_vs, "the baseline is deployed")
    assert(fs.write_atomic(project.traffic, "versions:\n- name: v1\n  weight: 80\n- name: v2\n  weight: 20\n"))
    local text = kube.read(project.traffic)
    local mark = log_mark(srv)
    local r = rollout(env, { script("ops.lua"), "update_traffic", SERVICE })
    assert.equal(2, r.status, r.output)
    assert.truthy(r.stderr:find("set kubernetes.endpoint in service.yaml or GATEWAY_ENDPOINT", 1, true), r.stderr)
    assert.truthy(r.stderr:find("nothing was changed", 1, true), r.stderr)
    assert.is_nil(r.stderr:gsub("\n$", ""):find("\n"), r.stderr)
    assert.same({}, writes(srv, mark))
    assert.equal(text, kube.read(project.traffic))
    assert.equal(before_vs.metadata.resourceVersion, kube.get(srv, VS).metadata.resourceVersion)
    -- with the endpoint it goes through
    r = rollout(env, { script("ops.lua"), "update_traffic", SERVICE, "--endpoint", srv.url })
    assert.equal(0, r.status, r.output)
  end)

  it("says what is left or gone in the cleanup step", function()
    local r = rollout(env, { script("steps/step6_cleanup.lua"), SERVICE, srv.url })
    assert.equal(0, r.status, r.output)
    assert.truthy(r.stdout:find("nothing left: no Helm release, Deployment, pod, route or state", 1, true), r.stdout)
    assert.is_nil(r.output:find("process", 1, true), r.output)
  end)
end)
