-- rollout.target.kubernetes: the failure paths of a weight change that the
-- fake cluster cannot produce on demand (an apply that times out, a route
-- that reads back different, a read-back that fails), with a scripted API
-- client and helm in place of the bindings. The target itself is real; the
-- end-to-end behaviour against the fake cluster is tests/e2e/kubernetes_spec.lua.
local fixture = require "tests.helpers.fixture"
local config = require "rollout.config"
local errors = require "rollout.errors"
local fs = require "rollout.fs"
local istio = require "rollout.target.kubernetes.routing"
local kubernetes = require "rollout.target.kubernetes"

local function deep(v)
  if type(v) ~= "table" then return v end
  local o = {}
  for k, x in pairs(v) do o[k] = deep(x) end
  return o
end

-- An in-memory API: objects by "Kind/name"; `hooks[op]` may answer instead.
local function scripted_client()
  local c = { store = {}, writes = {}, hooks = {} }
  function c:namespace() return "default" end
  function c:source() return { files = { "/kubeconfig" }, context = "test", in_cluster = false } end
  function c:preferred_version() return "v1" end
  function c:get(kind, name)
    if self.hooks.get then
      local r = table.pack(self.hooks.get(kind, name))
      if r.n > 0 then return table.unpack(r, 1, r.n) end
    end
    local o = self.store[kind .. "/" .. name]
    if not o then return nil, kind .. " " .. name .. " not found", "not_found", "NotFound" end
    return deep(o)
  end
  function c:list(kind)
    local items = {}
    for key, o in pairs(self.store) do
      if key:match("^([^/]+)/") == kind then items[#items + 1] = deep(o) end
    end
    return { items = items }
  end
  function c:apply(m)
    self.writes[#self.writes + 1] = m.kind .. "/" .. m.metadata.name
    if self.hooks.apply then
      local r = table.pack(self.hooks.apply(m))
      if r.n > 0 then return table.unpack(r, 1, r.n) end
    end
    self.store[m.kind .. "/" .. m.metadata.name] = deep(m)
    return deep(m)
  end
  function c:delete(kind, name)
    self.writes[#self.writes + 1] = "DELETE " .. kind .. "/" .. name
    local key = kind .. "/" .. name
    if not self.store[key] then return nil, "not found", "not_found", "NotFound" end
    self.store[key] = nil
    return {}
  end
  return c
end

local function ready_deployment(name, version)
  return { kind = "Deployment", metadata = { name = name, generation = 1, labels = { app = "microservice-1", version = version } },
           spec = { replicas = 1, template = { spec = { containers = { { image = "x:" .. version } } } } },
           status = { observedGeneration = 1, replicas = 1, readyReplicas = 1, updatedReplicas = 1, availableReplicas = 1 } }
end

local helm_calls, helm_releases, helm_history

describe("the kubernetes target's weight change when the API misbehaves", function()
  local tmp, cfg, target, client, saved_helm

  before_each(function()
    tmp = fixture.tmpdir()
    cfg = config.load("microservice-1")
    cfg.traffic_file = tmp .. "/TRAFFIC.yaml"
    assert(fs.write_atomic(cfg.traffic_file, "versions:\n- name: v1\n  weight: 50\n- name: v2\n  weight: 50\n"))
    target = kubernetes.new(cfg)
    target.dir, target.lock_file = tmp, tmp .. "/lock"
    client = scripted_client()
    target._client = client
    for _, m in ipairs(istio.manifests(cfg, { v1 = 50, v2 = 50 })) do client.store[m.kind .. "/" .. m.metadata.name] = m end
    client.store["Deployment/microservice-1-v1"] = ready_deployment("microservice-1-v1", "v1")
    client.store["Deployment/microservice-1-v2"] = ready_deployment("microservice-1-v2", "v2")
    saved_helm = package.loaded["rollout.helm"]
    helm_calls = {}
    helm_releases = { { name = "microservice-1-v1", revision = "1", status = "deployed", chart = "c-0.1.0" },
                      { name = "microservice-1-v2", revision = "1", status = "deployed", chart = "c-0.1.0" } }
    package.loaded["rollout.helm"] = {
      list = function(o)
        helm_calls[#helm_calls + 1] = "list all=" .. tostring(o.all) .. " context=" .. tostring(o.kube_context)
        return helm_releases
      end,
      pending = function(s) return s == "pending-install" or s == "pending-upgrade" or s == "pending-rollback" end,
      history = function(o)
        helm_calls[#helm_calls + 1] = "history " .. o.release
        return helm_history
      end,
      rollback = function(o)
        helm_calls[#helm_calls + 1] = "rollback " .. o.release .. " " .. tostring(o.revision)
        return true
      end,
      uninstall = function(o)
        helm_calls[#helm_calls + 1] = "uninstall " .. o.release
        return true
      end,
      install = function(o)
        helm_calls[#helm_calls + 1] = "install " .. o.release
        return nil, "stop here", "failed", "exit 1"
      end,
    }
  end)

  after_each(function()
    package.loaded["rollout.helm"] = saved_helm
    fixture.remove(tmp)
  end)

  local function failure(f, ...)
    local ok, err = pcall(f, ...)
    assert.is_false(ok, "expected a failure")
    assert.is_true(errors.is(err), tostring(err))
    return err
  end

  local function live_weights()
    return istio.route_weights(cfg, client.store["VirtualService/microservice-1"])
  end

  it("changes the weights with exactly one write and confirms them", function()
    local res = target:set_weights { v1 = 80, v2 = 20 }
    assert.same({ "VirtualService/microservice-1" }, client.writes)
    assert.same({ v1 = 80, v2 = 20 }, res.weights)
    assert.same({ v1 = 50, v2 = 50 }, res.previous)
    assert.same({ v1 = 80, v2 = 20 }, live_weights())
    assert.equal("versions:\n- name: v1\n  weight: 80\n- name: v2\n  weight: 20\n", fs.read(cfg.traffic_file))
  end)

  it("puts the previous route and TRAFFIC.yaml back when the route reads back different", function()
    local before = fs.read(cfg.traffic_file)
    local previous = deep(client.store["VirtualService/microservice-1"])
    local first = true
    client.hooks.get = function(kind)
      -- the read-back after the apply sees the old route (e.g. a webhook reverted it)
      if kind == "VirtualService" and #client.writes == 1 and first then
        first = false
        return deep(previous)
      end
    end
    local err = failure(target.set_weights, target, { v1 = 80, v2 = 20 })
    assert.equal(1, err.exit)
    assert.truthy(err.message:find("holds VirtualService weights v1=50 v2=50 instead of v1=80 v2=20", 1, true),
      err.message)
    assert.truthy(err.message:find("the previous weights were restored; TRAFFIC.yaml is unchanged", 1, true),
      err.message)
    assert.same({ "VirtualService/microservice-1", "VirtualService/microservice-1" }, client.writes)
    assert.same({ v1 = 50, v2 = 50 }, live_weights())
    assert.equal(before, fs.read(cfg.traffic_file))
  end)

  it("takes an apply that timed out but was carried out as done", function()
    client.hooks.apply = function(m)
      client.store[m.kind .. "/" .. m.metadata.name] = deep(m)
      return nil, "PATCH ...: Operation timed out after 30000 milliseconds", "timeout"
    end
    local res = target:set_weights { v1 = 80, v2 = 20 }
    assert.same({ v1 = 80, v2 = 20 }, res.weights)
    assert.same({ "VirtualService/microservice-1" }, client.writes)
    assert.same({ v1 = 80, v2 = 20 }, live_weights())
  end)

  it("says the route is unchanged when an apply timed out without effect", function()
    local before = fs.read(cfg.traffic_file)
    client.hooks.apply = function() return nil, "PATCH ...: Operation timed out", "timeout" end
    local err = failure(target.set_weights, target, { v1 = 80, v2 = 20 })
    assert.equal(1, err.exit)
    assert.truthy(err.message:find("the route is unchanged; TRAFFIC.yaml is unchanged", 1, true), err.message)
    assert.same({ "VirtualService/microservice-1" }, client.writes)
    assert.equal(before, fs.read(cfg.traffic_file))
  end)

  it("names the refusal of the API server and writes nothing else", function()
    local before = fs.read(cfg.traffic_file)
    client.hooks.apply = function()
      return nil, 'virtualservices.networking.istio.io "microservice-1" is forbidden: User "u" cannot patch', "forbidden",
        "Forbidden"
    end
    local err = failure(target.set_weights, target, { v1 = 80, v2 = 20 })
    assert.equal(1, err.exit)
    assert.truthy(err.message:find("cannot apply VirtualService microservice-1: virtualservices.networking.istio.io " ..
      '"microservice-1" is forbidden', 1, true), err.message)
    assert.same({ "VirtualService/microservice-1" }, client.writes)
    assert.same({ v1 = 50, v2 = 50 }, live_weights())
    assert.equal(before, fs.read(cfg.traffic_file))
  end)

  it("restores the route when the read-back fails", function()
    local before = fs.read(cfg.traffic_file)
    client.hooks.get = function(kind)
      if kind == "VirtualService" and #client.writes == 1 then
        return nil, "GET https://127.0.0.1:1/...: Couldn't connect to server", "connect"
      end
    end
    local err = failure(target.set_weights, target, { v1 = 80, v2 = 20 })
    assert.truthy(err.message:find("cannot read back VirtualService microservice-1", 1, true), err.message)
    assert.truthy(err.message:find("the previous weights were restored", 1, true), err.message)
    assert.same({ v1 = 50, v2 = 50 }, live_weights())
    assert.equal(before, fs.read(cfg.traffic_file))
  end)

  it("refuses weight for a version the DestinationRule does not know, writing nothing", function()
    client.store["DestinationRule/microservice-1"] = istio.destination_rule(cfg, { "v1" })
    local err = failure(target.set_weights, target, { v1 = 50, v2 = 50 })
    assert.equal(2, err.exit)
    assert.truthy(err.message:find("version v2 has weight 50 but is not routed (the DestinationRule has no subset v2)",
      1, true), err.message)
    assert.same({}, client.writes)
  end)

  it("refuses weight for a version whose Deployment is not ready, writing nothing", function()
    client.store["Deployment/microservice-1-v2"].status.readyReplicas = 0
    client.store["Deployment/microservice-1-v2"].status.availableReplicas = 0
    client.store["Pod/microservice-1-v2-abc"] = { kind = "Pod",
      metadata = { name = "microservice-1-v2-abc", labels = { app = "microservice-1", version = "v2" } },
      status = { phase = "Pending", conditions = { { type = "Ready", status = "False" } },
                 containerStatuses = { { ready = false, state = { waiting = { reason = "CrashLoopBackOff" } } } } } }
    local err = failure(target.set_weights, target, { v1 = 50, v2 = 50 })
    assert.equal(2, err.exit)
    assert.truthy(err.message:find("version v2 has weight 50 but is not ready (0/1 pods ready, pod " ..
      "microservice-1-v2-abc: CrashLoopBackOff)", 1, true), err.message)
    assert.same({}, client.writes)
    -- health says the same
    local h = target:health("v2")
    assert.is_false(h.ok)
    assert.truthy(h.detail:find("CrashLoopBackOff", 1, true))
  end)

  it("lists every helm state, in the API client's context", function()
    target:releases()
    assert.same({ "list all=true context=test" }, helm_calls)
  end)

  local ab = { { name = "ab", version = "v2", match = { { headers = { ["X-Group"] = "beta" }, cookies = { c = "1" } } } } }

  it("sets strategy routes with one write, keeps them across weight changes, clears them", function()
    local routes = target:set_routes(ab)
    assert.same({ "VirtualService/microservice-1" }, client.writes)
    assert.same({ { name = "ab", version = "v2", match = { { headers = { ["x-group"] = "beta" }, cookies = { c = "1" } } } } },
      routes)
    assert.same(routes, target:routes())
    assert.same({ v1 = 50, v2 = 50 }, live_weights()) -- weights kept
    local before = fs.read(cfg.traffic_file)
    assert.equal(before, fs.read(cfg.traffic_file))  -- routes are not TRAFFIC.yaml's
    -- a weight change keeps them (still one write)
    client.writes = {}
    target:set_weights { v1 = 80, v2 = 20 }
    assert.same({ "VirtualService/microservice-1" }, client.writes)
    assert.same(routes, target:routes())
    assert.same({ v1 = 80, v2 = 20 }, live_weights())
    -- removing the version a route names is refused, nothing written
    client.writes = {}
    local err = failure(target.remove_version, target, "v2", { force = true })
    assert.equal(2, err.exit)
    assert.truthy(err.message:find("v2 is the version of route ab", 1, true), err.message)
    assert.same({}, client.writes)
    -- cleared with one write
    assert.same({}, target:set_routes {})
    assert.same({ "VirtualService/microservice-1" }, client.writes)
    assert.same({}, target:routes())
  end)

  it("refuses bad strategy routes writing nothing", function()
    local before = deep(client.store["VirtualService/microservice-1"])
    for _, bad in ipairs {
      { { name = "ab", version = "v9", match = { { headers = { a = "b" } } } } },
      { { name = "a_b", version = "v1", match = { { headers = { a = "b" } } } } },
      { { name = "ab", version = "v1", match = { { headers = { ["a b"] = "b" } } } } },
      { { name = "ab", version = "v1", match = { { cookies = { c = "x;y" } } } } },
      "not a list",
    } do
      local err = failure(target.set_routes, target, bad)
      assert.equal(2, err.exit, err.message)
    end
    assert.same({}, client.writes)
    assert.same(before, client.store["VirtualService/microservice-1"])
  end)

  it("says so when the routes read back differ", function()
    local first = true
    client.hooks.get = function(kind)
      if kind == "VirtualService" and #client.writes == 1 and first then
        first = false
        local o = deep(client.store["VirtualService/microservice-1"])
        o.spec.http[4] = nil -- another controller dropped the strategy route
        for i = 4, #o.spec.http do o.spec.http[i] = o.spec.http[i + 1] end
        return o
      end
    end
    local err = failure(target.set_routes, target, ab)
    assert.equal(1, err.exit)
    assert.truthy(err.message:find("holds other routes", 1, true), err.message)
  end)

  it("refuses to deploy over a release another helm is working on, and recovers a stale one", function()
    helm_releases[2].status = "pending-upgrade"
    helm_history = { { revision = 1, status = "deployed", updated = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - 10) },
                     { revision = 2, status = "pending-upgrade", updated = os.date("!%Y-%m-%dT%H:%M:%SZ") } }
    local err = failure(target.deploy, target, "v2")
    assert.equal(1, err.exit)
    assert.equal("conflict", err.code)
    assert.truthy(err.message:find("microservice-1-v2 is pending-upgrade since", 1, true), err.message)
    assert.same({}, client.writes)
    -- versions() and health() say why
    local v2
    for _, v in ipairs(target:versions()) do if v.name == "v2" then v2 = v end end
    assert.truthy(v2.detail:find("pending-upgrade", 1, true))
    assert.truthy(target:health("v2").detail:find("a helm operation did not finish", 1, true))
    -- older than wait_timeout: rolled back to the last deployed revision, then upgraded
    helm_history[2].updated = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - 4000)
    helm_calls = {}
    err = failure(target.deploy, target, "v2")
    assert.truthy(err.message:find("stop here", 1, true), err.message)
    local seen = table.concat(helm_calls, ",")
    assert.truthy(seen:find("history microservice-1-v2,rollback microservice-1-v2 1", 1, true), seen)
    assert.truthy(seen:find("install microservice-1-v2", 1, true), seen)
    -- a pending-install that never deployed: uninstalled instead
    helm_releases[2].status = "pending-install"
    helm_history = { { revision = 1, status = "pending-install", updated = "2020-01-01T00:00:00Z" } }
    helm_calls = {}
    failure(target.deploy, target, "v2")
    seen = table.concat(helm_calls, ",")
    assert.truthy(seen:find("uninstall microservice-1-v2", 1, true), seen)
    assert.is_nil(seen:find("rollback", 1, true), seen)
  end)
end)
