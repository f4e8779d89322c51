-- The same strategy scripts on --target kubernetes, against the fake
-- cluster (tests/fakes): one route write per weight change, the stub
-- gateway following the routes, faults of a version set through the fake's
-- /_fake/faults hook (the demo service's knobs, per version).
local fixture = require "tests.helpers.fixture"
local kube = require "tests.helpers.kube_env"
local json = require "rollout.json"

local SERVICE = kube.SERVICE
local VS = "PATCH virtualservices/" .. SERVICE .. " rollout"

describe("strategies on the kubernetes target", function()
  local tmp, srv, project, env

  before_each(function()
    tmp = fixture.tmpdir()
    srv = kube.start_server(tmp)
    project = kube.make_project(tmp .. "/p")
    env = kube.env_for(srv, project, { GATEWAY_ENDPOINT = srv.url })
    local ok, err = pcall(function()
      local r = kube.rollout(env, { kube.script("steps/step0_baseline.lua"), SERVICE })
      assert(r.status == 0, r.output)
      assert(require("rollout.fs").write_atomic(project.traffic,
        "versions:\n- name: v1\n  weight: 70\n- name: v2\n  weight: 30\n"))
      r = kube.rollout(env, { kube.script("ops.lua"), "update_traffic", SERVICE })
      assert(r.status == 0, r.output)
      r = kube.rollout(env, { kube.script("ops.lua"), "start", SERVICE, "v3" })
      assert(r.status == 0, r.output)
    end)
    if not ok then
      pcall(kube.stop_server, srv)
      fixture.remove(tmp)
      error(err, 0)
    end
  end)

  after_each(function()
    local ok, err = pcall(kube.stop_server, srv)
    fixture.remove(tmp)
    assert(ok, err)
  end)

  local function route_weights()
    local vs = kube.get(srv, "/apis/networking.istio.io/v1/namespaces/default/virtualservices/" .. SERVICE)
    local out = {}
    for _, rule in ipairs(vs.spec.http) do
      if not rule.match then
        for _, d in ipairs(rule.route or {}) do out[d.destination.subset] = d.weight or 0 end
      end
    end
    return out
  end

  it("promotes a good v3 with one VirtualService write per step, no helm upgrade", function()
    local mark = kube.log_mark(srv)
    local r = kube.rollout(env, { kube.script("strategies/canary.lua"), SERVICE, "v3", "--steps=10,50,100",
                                  "--interval=0.5", "--latency-tolerance=1", "--json" })
    assert.equal(0, r.status, r.output)
    local doc = json.decode(r.stdout)
    assert.equal("succeeded", doc.phase)
    assert.same({ VS, VS, VS }, kube.writes(srv, mark))
    local w = route_weights()
    assert.equal(100, w.v3)
    local versions = kube.probe(srv, 100)
    assert.same({ v3 = 100 }, versions)
  end)

  it("aborts a v3 failing 5% of its requests and puts the route back at exactly 70/30/0", function()
    local st = kube.api(srv, "POST", "/_fake/faults", { version = "v3", error_rate = 0.05 })
    assert.equal(200, st)
    local mark = kube.log_mark(srv)
    local r = kube.rollout(env, { kube.script("strategies/canary.lua"), SERVICE, "v3", "--interval=0.5" })
    assert.equal(1, r.status, r.output)
    assert.matches("aborting: v3: error rate", r.output)
    local writes = kube.writes(srv, mark)
    assert.same({ VS, VS }, writes) -- 5%, then back
    local w = route_weights()
    assert.equal(70, w.v1)
    assert.equal(30, w.v2)
    assert.equal(0, w.v3 or 0)
    local versions = kube.probe(srv, 200)
    assert.is_nil(versions.v3)
    local s = json.decode(kube.rollout(env, { kube.script("ops.lua"), "status", SERVICE, "--json" }).stdout)
    assert.equal("aborted", s.phase)
  end)

  it("routes the A/B group by header and cookie through the VirtualService, and removes the route on abort", function()
    local proc = require "rollout.proc"
    local fs = require "rollout.fs"
    local log = tmp .. "/ab.log"
    local argv = { kube.BIN, "--target", "kubernetes", kube.script("strategies/ab_test.lua"), SERVICE, "v3",
                   "--interval=30", "--latency-tolerance=1" }
    local pid = assert(proc.spawn { argv = argv, env = env, cwd = kube.ROOT, log = log })
    finally(function() if proc.alive(pid) then proc.stop(pid, { timeout = 5 }) end end)
    assert(fixture.wait(function() return (fs.read(log) or ""):find("analysis: error-rate", 1, true) end, 120),
      fs.read(log))
    assert.same({ v3 = 50 }, (kube.probe(srv, 50, { ["x-user-group"] = "beta" })))
    assert.same({ v3 = 50 }, (kube.probe(srv, 50, { cookie = "a=1; canary=always" })))
    local others = kube.probe(srv, 100, { ["x-user-group"] = "alpha" })
    assert.is_nil(others.v3)
    local r = kube.rollout(env, { kube.script("ops.lua"), "abort", SERVICE })
    assert.equal(0, r.status, r.output)
    assert(fixture.wait(function() return not proc.alive(pid) end, 60))
    local after = kube.probe(srv, 50, { ["x-user-group"] = "beta" })
    assert.is_nil(after.v3)
  end)
end)
