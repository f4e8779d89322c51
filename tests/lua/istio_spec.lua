-- rollout.istio: the routing objects rendered for Kubernetes (Istio
-- VirtualService/DestinationRule, Gateway API HTTPRoute, Services), and
-- their validation against the real CRD schemas in ../shared/schemas/
-- (through tests/helpers/crd_validate.py and Debian's python3-jsonschema).
local istio = require "rollout.target.kubernetes.routing"
local yaml = require "rollout.yaml"
local json = require "rollout.json"
local proc = require "rollout.proc"
local fs = require "rollout.fs"
local fixture = require "tests.helpers.fixture"

local function cfg(over)
  local c = {
    name = "microservice-1", port = 8080, version_header = "x-version", health_path = "/healthz",
    kubernetes = { namespace = "default", host = "microservice-1", routing = "istio",
                   normalize_weights = false },
  }
  for k, v in pairs(over or {}) do
    if k == "kubernetes" then
      for kk, vv in pairs(v) do c.kubernetes[kk] = vv end
    else
      c[k] = v
    end
  end
  return c
end

local refusal = require("tests.helpers.check").refusal

local function sum(t)
  local s = 0
  for _, v in ipairs(t) do s = s + v end
  return s
end

local function default_weights(vs)
  local last = vs.spec.http[#vs.spec.http]
  local out = {}
  for i, d in ipairs(last.route) do out[i] = d.weight end
  return out
end

describe("rollout.istio rendering", function()
  it("renders a Service selecting app=<service> with port http", function()
    local s = istio.service(cfg())
    assert.equal("v1", s.apiVersion)
    assert.equal("Service", s.kind)
    assert.equal("microservice-1", s.metadata.name)
    assert.equal("default", s.metadata.namespace)
    assert.same({ app = "microservice-1" }, s.spec.selector)
    assert.same({ { name = "http", port = 8080, targetPort = 8080, protocol = "TCP" } }, s.spec.ports)
  end)

  it("renders one DestinationRule subset per deployed version", function()
    local dr = istio.destination_rule(cfg(), { "v1", "v2", "v3" })
    assert.equal("networking.istio.io/v1", dr.apiVersion)
    assert.equal("DestinationRule", dr.kind)
    assert.equal("microservice-1", dr.spec.host)
    assert.same({ { name = "v1", labels = { version = "v1" } }, { name = "v2", labels = { version = "v2" } },
                  { name = "v3", labels = { version = "v3" } } }, dr.spec.subsets)
    -- a weight map works too (its names, sorted)
    local dr2 = istio.destination_rule(cfg(), { v2 = 0, v1 = 5 })
    assert.same({ "v1", "v2" }, { dr2.spec.subsets[1].name, dr2.spec.subsets[2].name })
  end)

  it("puts the header routes first and the weighted route last, keeping weight 0", function()
    local vs = istio.virtual_service(cfg(), { v1 = 50, v2 = 50, v3 = 0 })
    assert.equal("VirtualService", vs.kind)
    assert.same({ "microservice-1" }, vs.spec.hosts)
    assert.is_nil(vs.spec.gateways)
    local http = vs.spec.http
    assert.equal(5, #http)
    for i, v in ipairs { "v1", "v2", "v3" } do
      assert.equal("version-" .. v, http[i].name)
      assert.same({ { headers = { ["x-version"] = { exact = v } } } }, http[i].match)
      assert.same({ { destination = { host = "microservice-1", subset = v, port = { number = 8080 } } } },
        http[i].route)
      assert.is_nil(http[i].route[1].weight)
    end
    -- a header naming no deployed version gets 503, never the weighted route
    assert.equal("unknown-version", http[4].name)
    assert.same({ { headers = { ["x-version"] = { regex = ".+" } } } }, http[4].match)
    assert.equal(503, http[4].directResponse.status)
    assert.is_nil(http[4].route)
    local last = http[5]
    assert.equal("default", last.name)
    assert.is_nil(last.match)
    assert.equal(3, #last.route)
    for i, v in ipairs { "v1", "v2", "v3" } do
      assert.equal(v, last.route[i].destination.subset)
    end
    assert.same({ 50, 50, 0 }, default_weights(vs))
  end)

  it("keeps relative weights as given, and a list's order", function()
    local vs = istio.virtual_service(cfg(), { { name = "v3", weight = 50 }, { name = "v1", weight = 50 },
                                              { name = "v2", weight = 50 } })
    assert.same({ 50, 50, 50 }, default_weights(vs))
    assert.equal("v3", vs.spec.http[1].match[1].headers["x-version"].exact)
    assert.equal("v3", vs.spec.http[#vs.spec.http].route[1].destination.subset)
  end)

  it("normalizes to integers summing to exactly 100 when asked", function()
    local vs = istio.virtual_service(cfg(), { v1 = 50, v2 = 50, v3 = 50 }, { normalize = true })
    assert.same({ 34, 33, 33 }, default_weights(vs))
    local c = cfg { kubernetes = { normalize_weights = true } }
    assert.same({ 50, 0, 50 }, default_weights(istio.virtual_service(c, { v1 = 1, v2 = 0, v3 = 1 })))
    assert.same({ 0, 0, 100 }, default_weights(istio.virtual_service(c, { v1 = 0, v2 = 0, v3 = 7 })))
    -- opts win over the config
    assert.same({ 1, 0, 1 }, default_weights(istio.virtual_service(c, { v1 = 1, v2 = 0, v3 = 1 },
      { normalize = false })))
    -- many awkward sets: always exactly 100, zeros stay zero
    local seed = 12345
    local function rnd(n)
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed % n
    end
    for _ = 1, 200 do
      local w, any = {}, false
      for i = 1, 1 + rnd(7) do
        local x = rnd(4) == 0 and 0 or rnd(1000)
        w["v" .. i] = x
        if x > 0 then any = true end
      end
      if not any then w.v1 = 1 end
      local got = default_weights(istio.virtual_service(c, w))
      assert.equal(100, sum(got))
      local list = istio.weight_list(w)
      for i, e in ipairs(list) do
        if e.weight == 0 then assert.equal(0, got[i]) end
        assert.equal("integer", math.type(got[i]))
      end
    end
    -- a first version deployed at weight 0: nothing to share, and a lone
    -- destination would take everything: the default rule answers 503
    local lone = istio.virtual_service(c, { v1 = 0 })
    assert.is_nil(lone.spec.http[#lone.spec.http].route)
    assert.equal(503, lone.spec.http[#lone.spec.http].directResponse.status)
  end)

  it("routes header matches by the configured header, in lower case", function()
    local vs = istio.virtual_service(cfg { version_header = "X-Canary" }, { v1 = 1 })
    assert.same({ exact = "v1" }, vs.spec.http[1].match[1].headers["x-canary"])
  end)

  it("sets hosts from kubernetes.host and gateways from kubernetes.gateway", function()
    local vs = istio.virtual_service(cfg { kubernetes = { host = "shop.example.com", gateway = "istio-system/main" } },
      { v1 = 1 })
    assert.same({ "shop.example.com" }, vs.spec.hosts)
    -- with the gateway, the mesh too: in-mesh callers follow the same weights
    assert.same({ "istio-system/main", "mesh" }, vs.spec.gateways)
    local only = istio.virtual_service(cfg { kubernetes = { gateway = "istio-system/main", gateway_only = true } },
      { v1 = 1 })
    assert.same({ "istio-system/main" }, only.spec.gateways)
    -- the destination stays the Service
    assert.equal("microservice-1", vs.spec.http[#vs.spec.http].route[1].destination.host)
  end)

  it("renders an HTTPRoute: header rules first to per-version Services, weighted rule last", function()
    local c = cfg { kubernetes = { routing = "gateway-api" } }
    local r = istio.http_route(c, { v1 = 50, v2 = 0 })
    assert.equal("gateway.networking.k8s.io/v1", r.apiVersion)
    assert.equal("HTTPRoute", r.kind)
    assert.same({ "microservice-1" }, r.spec.hostnames)
    -- no gateway configured: the mesh (GAMMA) parent, the Service itself
    assert.same({ { group = "", kind = "Service", name = "microservice-1", port = 8080 } }, r.spec.parentRefs)
    local rules = r.spec.rules
    assert.equal(4, #rules)
    for i, v in ipairs { "v1", "v2" } do
      assert.equal("version-" .. v, rules[i].name)
      assert.same({ { headers = { { type = "Exact", name = "x-version", value = v } } } }, rules[i].matches)
      assert.same({ { name = "microservice-1-" .. v, port = 8080 } }, rules[i].backendRefs)
    end
    -- a header naming no deployed version: a rule without backends (500), never the weighted rule
    assert.equal("unknown-version", rules[3].name)
    assert.same({ { headers = { { type = "RegularExpression", name = "x-version", value = ".+" } } } }, rules[3].matches)
    assert.is_nil(rules[3].backendRefs)
    assert.is_nil(rules[4].matches)
    assert.same({ { name = "microservice-1-v1", port = 8080, weight = 50 },
                  { name = "microservice-1-v2", port = 8080, weight = 0 } }, rules[4].backendRefs)
    local n = istio.http_route(c, { v1 = 1, v2 = 1, v3 = 1 }, { normalize = true })
    local w = {}
    for i, b in ipairs(n.spec.rules[5].backendRefs) do w[i] = b.weight end
    assert.same({ 34, 33, 33 }, w)
  end)

  it("takes HTTPRoute parents from parent_ref, then gateway", function()
    local r = istio.http_route(cfg { kubernetes = { routing = "gateway-api", parent_ref = "infra/public-gw",
                                                    gateway = "ignored" } }, { v1 = 1 })
    assert.same({ { group = "gateway.networking.k8s.io", kind = "Gateway", name = "public-gw", namespace = "infra" } },
      r.spec.parentRefs)
    r = istio.http_route(cfg { kubernetes = { routing = "gateway-api", gateway = "edge" } }, { v1 = 1 })
    assert.same({ { group = "gateway.networking.k8s.io", kind = "Gateway", name = "edge" } }, r.spec.parentRefs)
  end)

  it("renders per-version Services for the Gateway API", function()
    local s = istio.version_service(cfg(), "v2")
    assert.equal("microservice-1-v2", s.metadata.name)
    assert.same({ app = "microservice-1", version = "v2" }, s.spec.selector)
    assert.equal("v2", s.metadata.labels.version)
  end)

  it("lists the objects of each routing mode in apply order", function()
    local kinds = {}
    for i, m in ipairs(istio.manifests(cfg(), { v1 = 1, v2 = 0 })) do kinds[i] = m.kind .. "/" .. m.metadata.name end
    assert.same({ "Service/microservice-1", "DestinationRule/microservice-1", "VirtualService/microservice-1" }, kinds)
    kinds = {}
    for i, m in ipairs(istio.manifests(cfg { kubernetes = { routing = "gateway-api" } }, { v1 = 1, v2 = 0 })) do
      kinds[i] = m.kind .. "/" .. m.metadata.name
    end
    assert.same({ "Service/microservice-1", "Service/microservice-1-v1", "Service/microservice-1-v2",
                  "HTTPRoute/microservice-1" }, kinds)
  end)

  it("puts the owner labels on everything it renders", function()
    local all = istio.manifests(cfg(), { v1 = 1 })
    for _, m in ipairs(istio.manifests(cfg { kubernetes = { routing = "gateway-api" } }, { v1 = 1 })) do
      all[#all + 1] = m
    end
    assert.equal(6, #all)
    for _, m in ipairs(all) do
      assert.equal("rollout", m.metadata.labels["app.kubernetes.io/managed-by"], m.kind)
      assert.equal("microservice-1", m.metadata.labels.app, m.kind)
    end
    assert.equal("app=microservice-1,app.kubernetes.io/managed-by=rollout", istio.selector(cfg()))
  end)

  it("reads the weights back from a VirtualService and an HTTPRoute", function()
    local w = { v1 = 50, v2 = 0, v3 = 25 }
    assert.same(w, istio.route_weights(cfg(), istio.virtual_service(cfg(), w)))
    local c = cfg { kubernetes = { routing = "gateway-api" } }
    assert.same(w, istio.route_weights(c, istio.http_route(c, w)))
    -- a route with no match-less last rule has no weights
    assert.is_nil(istio.route_weights(cfg(), { kind = "VirtualService", spec = { http = {
      { match = { { headers = { ["x-version"] = { exact = "v1" } } } }, route = {} } } } }))
    assert.is_nil(istio.route_weights(cfg(), nil))
  end)

  it("refuses names that are not DNS-1123 labels before rendering anything", function()
    assert.truthy(refusal(istio.virtual_service, cfg(), { V1 = 1 }):find('"V1" is not a DNS-1123 label', 1, true))
    assert.truthy(refusal(istio.virtual_service, cfg(), { ["v_1"] = 1 }):find("v_1", 1, true))
    assert.truthy(refusal(istio.destination_rule, cfg(), { "v1", "-v2" }):find('"-v2"', 1, true))
    assert.truthy(refusal(istio.http_route, cfg(), { [string.rep("a", 64)] = 1 }):find("DNS-1123", 1, true))
    -- Service names are DNS-1035: a leading digit is refused
    assert.truthy(refusal(istio.service, cfg { name = "1svc" }):find("must start with a letter", 1, true))
    -- service-version longer than 63
    local long = cfg { name = "s" .. string.rep("x", 55) }
    assert.truthy(refusal(istio.version_service, long, "v123456789"):find("longer than 63", 1, true))
    assert.truthy(refusal(istio.service, cfg { kubernetes = { namespace = "Bad_NS" } }):find("namespace", 1, true))
    assert.truthy(refusal(istio.virtual_service, cfg { kubernetes = { host = "bad host" } }, { v1 = 1 })
      :find("kubernetes.host", 1, true))
    assert.truthy(refusal(istio.virtual_service, cfg { kubernetes = { gateway = "a/b/c" } }, { v1 = 1 })
      :find("kubernetes.gateway", 1, true))
  end)

  it("refuses weights that are not integers 0..MAX", function()
    assert.truthy(refusal(istio.virtual_service, cfg(), { v1 = -1 }):find("weight of v1", 1, true))
    assert.truthy(refusal(istio.virtual_service, cfg(), { v1 = 1.5 }):find("weight of v1", 1, true))
    assert.truthy(refusal(istio.virtual_service, cfg(), { v1 = "50" }):find('"50"', 1, true))
    assert.truthy(refusal(istio.http_route, cfg(), { { name = "v1", weight = 1 }, { name = "v1", weight = 2 } })
      :find("listed twice", 1, true))
  end)

  it("refuses more versions than an HTTPRoute can hold", function()
    local w = {}
    for i = 1, 15 do w["v" .. i] = 1 end
    assert.truthy(refusal(istio.http_route, cfg(), w):find("at most 14 versions", 1, true))
  end)

  it("writes the API version the cluster serves", function()
    local vs = istio.virtual_service(cfg(), { v1 = 1 }, { api_version = "networking.istio.io/v1beta1" })
    assert.equal("networking.istio.io/v1beta1", vs.apiVersion)
    local dr = istio.destination_rule(cfg(), { "v1" }, { api_version = "networking.istio.io/v1beta1" })
    assert.equal("networking.istio.io/v1beta1", dr.apiVersion)
    for _, m in ipairs(istio.manifests(cfg(), { v1 = 1 }, { api_version = "networking.istio.io/v1beta1" })) do
      if m.kind ~= "Service" then assert.equal("networking.istio.io/v1beta1", m.apiVersion, m.kind) end
    end
    assert.equal("networking.istio.io/v1", istio.virtual_service(cfg(), { v1 = 1 }).apiVersion)
  end)

  it("never renders weights Istio would misread: no weight at all is a 503, one version takes all", function()
    -- two or more destinations summing to 0 are refused by Istio >= 1.15
    local vs = istio.virtual_service(cfg(), { v1 = 0, v2 = 0 })
    local last = vs.spec.http[#vs.spec.http]
    assert.equal("default", last.name)
    assert.is_nil(last.route)
    assert.equal(503, last.directResponse.status)
    -- the versions stay known: header routes, and weight 0 when read back
    assert.same({ v1 = 0, v2 = 0 }, istio.route_weights(cfg(), vs))
    -- weight-0 destinations among others stay (a rollback is one change)
    assert.same({ 50, 0 }, default_weights(istio.virtual_service(cfg(), { v1 = 50, v2 = 0 })))
    -- Gateway API: weight 0 forwards nothing there, all zero answers 500 (by the spec)
    local r = istio.http_route(cfg { kubernetes = { routing = "gateway-api" } }, { v1 = 0 })
    assert.equal(0, r.spec.rules[#r.spec.rules].backendRefs[1].weight)
  end)

  local routes = {
    { name = "ab", version = "v3", match = { { headers = { ["X-Group"] = "beta" }, cookies = { canary = "always" } },
                                             { headers = { ["x-tester"] = "yes" } } } },
    { name = "mobile", version = "v2", match = { { headers = { ["user-agent"] = "Mobile App/1.2 (x)" } } } },
  }

  it("renders strategy routes after the version routes and before the weighted route (Istio)", function()
    local vs = istio.virtual_service(cfg(), { v1 = 50, v2 = 50, v3 = 0 }, { routes = routes })
    local names = {}
    for i, h in ipairs(vs.spec.http) do names[i] = h.name end
    assert.same({ "version-v1", "version-v2", "version-v3", "unknown-version", "route-ab", "route-mobile", "default" },
      names)
    local ab = vs.spec.http[5]
    assert.same({ { destination = { host = "microservice-1", subset = "v3", port = { number = 8080 } } } }, ab.route)
    -- header names in lower case, exact values; a cookie as a regex on the Cookie header
    assert.same({ ["x-group"] = { exact = "beta" }, cookie = { regex = "^(.*?;\\s*)?canary=always(;.*)?$" } },
      ab.match[1].headers)
    assert.same({ ["x-tester"] = { exact = "yes" } }, ab.match[2].headers)
    assert.same({ ["user-agent"] = { exact = "Mobile App/1.2 (x)" } }, vs.spec.http[6].match[1].headers)
    -- read back
    local back = istio.routes(cfg(), vs)
    assert.equal(2, #back)
    assert.same({ name = "ab", version = "v3", match = {
      { headers = { ["x-group"] = "beta" }, cookies = { canary = "always" } },
      { headers = { ["x-tester"] = "yes" }, cookies = {} } } }, back[1])
    assert.equal("mobile", back[2].name)
    assert.is_true(istio.same_routes(back, istio.check_routes(cfg(), routes)))
    -- weights read back as before
    assert.same({ v1 = 50, v2 = 50, v3 = 0 }, istio.route_weights(cfg(), vs))
  end)

  it("renders strategy routes for the Gateway API, where the version header still wins", function()
    local c = cfg { kubernetes = { routing = "gateway-api" } }
    local r = istio.http_route(c, { v1 = 50, v2 = 50, v3 = 0 }, { routes = routes })
    local names = {}
    for i, rule in ipairs(r.spec.rules) do names[i] = rule.name end
    assert.same({ "version-v1", "version-v2", "version-v3", "unknown-version", "route-ab", "route-mobile", "default" },
      names)
    local ab = r.spec.rules[5]
    assert.same({ { name = "microservice-1-v3", port = 8080 } }, ab.backendRefs)
    assert.same({ { type = "Exact", name = "x-group", value = "beta" },
                  { type = "RegularExpression", name = "cookie", value = "^(.*?;\\s*)?canary=always(;.*)?$" } },
      ab.matches[1].headers)
    -- precedence is by the number of header matches: each version rule also
    -- matches every strategy entry plus the version header (one more)
    local v1 = r.spec.rules[1]
    assert.equal(1 + 3, #v1.matches)
    assert.same({ { type = "Exact", name = "x-version", value = "v1" }, { type = "Exact", name = "x-group", value = "beta" },
                  { type = "RegularExpression", name = "cookie", value = "^(.*?;\\s*)?canary=always(;.*)?$" } },
      v1.matches[2].headers)
    assert.equal(4, #r.spec.rules[4].matches)
    local back = istio.routes(c, r)
    assert.is_true(istio.same_routes(back, istio.check_routes(c, routes)))
    assert.same({ v1 = 50, v2 = 50, v3 = 0 }, istio.route_weights(c, r))
  end)

  it("escapes cookie names and values and combines several cookies of one entry", function()
    assert.equal("^(.*?;\\s*)?a\\.b=x\\+y\\/\\(1\\)(;.*)?$", istio.cookie_regex { ["a.b"] = "x+y/(1)" })
    local two = istio.cookie_regex { a = "1", b = "2" }
    assert.equal("^(?:(.*?;\\s*)?a=1;\\s*(.*?;\\s*)?b=2(;.*)?|(.*?;\\s*)?b=2;\\s*(.*?;\\s*)?a=1(;.*)?)$", two)
    for _, cookies in ipairs { { canary = "always" }, { ["a.b"] = "x+y/(1)|[z]*" }, { a = "1", b = "2", c = "3" },
                               { ["__Host-id"] = '"quoted"' } } do
      assert.same(cookies, istio.parse_cookie_regex(istio.cookie_regex(cookies)))
    end
  end)

  it("refuses bad strategy routes before rendering anything", function()
    local deployed = { v1 = true, v3 = true }
    local function bad(r, pattern)
      local msg = refusal(istio.check_routes, cfg(), r, deployed)
      assert.truthy(msg:find(pattern, 1, true), msg)
    end
    bad({ { name = "AB", version = "v3", match = { { headers = { a = "b" } } } } }, '"AB" is not a DNS-1123 label')
    bad({ { name = "ab", version = "v2", match = { { headers = { a = "b" } } } } }, "version v2 is not deployed (deployed: v1, v3)")
    bad({ { name = "ab", version = "v3", match = { { headers = { ["x y"] = "b" } } } } }, 'header name "x y" is not an HTTP token')
    bad({ { name = "ab", version = "v3", match = { { headers = { a = "b\nc" } } } } }, "value of header a must be visible ASCII")
    bad({ { name = "ab", version = "v3", match = { { headers = { a = "\1" } } } } }, "value of header a must be visible ASCII")
    bad({ { name = "ab", version = "v3", match = { { cookies = { ["c;d"] = "x" } } } } }, 'cookie name "c;d" is not a token')
    bad({ { name = "ab", version = "v3", match = { { cookies = { c = "a b" } } } } }, "value of cookie c is not cookie-octets")
    bad({ { name = "ab", version = "v3", match = { { cookies = { c = "a;b" } } } } }, "value of cookie c is not cookie-octets")
    bad({ { name = "ab", version = "v3", match = { { headers = { ["X-Version"] = "v1" } } } } }, "is the version header")
    bad({ { name = "ab", version = "v3", match = { {} } } }, "has no header and no cookie")
    bad({ { name = "ab", version = "v3", match = {} } }, "match must be a non-empty list")
    bad({ { name = "ab", version = "v3", match = { { headers = { a = "1" } } } },
          { name = "ab", version = "v1", match = { { headers = { a = "2" } } } } }, "route ab is listed twice")
    bad({ { name = "ab", version = "v3", match = { { headers = { a = "1", A = "2" } } } } }, "given twice")
    bad({ { name = "ab", version = "v3", match = { { headers = { cookie = "x=1" } } } } }, "match cookies with cookies")
    bad({ { name = "ab", version = "v3", match = { { cookies = { a = "1", b = "1", c = "1", d = "1" } } } } },
      "at most 3 cookies")
    bad({ { name = "ab", version = "v3", match = { { headers = { a = "1" } } }, weight = 5 } }, "unknown field")
    -- and through the renderers
    assert.truthy(refusal(istio.virtual_service, cfg(), { v1 = 1 }, { routes = { { name = "x", version = "v9",
      match = { { headers = { a = "b" } } } } } }):find("not deployed", 1, true))
  end)

  it("refuses strategy routes an HTTPRoute cannot hold", function()
    local c = cfg { kubernetes = { routing = "gateway-api" } }
    local many = {}
    for i = 1, 13 do many[i] = { name = "r" .. i, version = "v1", match = { { headers = { a = tostring(i) } } } } end
    assert.truthy(refusal(istio.http_route, c, { v1 = 1, v2 = 1 }, { routes = many }):find("at most 16 rules", 1, true))
    local wide = { { name = "w", version = "v1", match = {} } }
    for i = 1, 40 do wide[1].match[i] = { headers = { a = tostring(i) } } end
    assert.truthy(refusal(istio.http_route, c, { v1 = 1, v2 = 1 }, { routes = wide }):find("matches in an HTTPRoute", 1, true))
  end)

  it("renders the shipped microservice-1 configuration", function()
    local config = require "rollout.config"
    local c = config.load("microservice-1")
    local vs = istio.virtual_service(c, { v1 = 50, v2 = 50 })
    assert.equal(c.kubernetes.namespace, vs.metadata.namespace)
    assert.equal(c.port, vs.spec.http[#vs.spec.http].route[1].destination.port.number)
  end)
end)

-- ------------------------------------------------------------------ schemas

-- The schemas are read from shared/schemas beside the repository (the
-- layout of the development machines): ROLLOUT_SCHEMAS_DIR, else
-- ../shared/schemas from the repository root (or from a parent, for a clone
-- made inside the workspace). A clone elsewhere has none: then the
-- validation is reported as not run (pending), loudly, rather than passed.
local function find_schema_dir()
  local env = os.getenv("ROLLOUT_SCHEMAS_DIR")
  local looked = {}
  local candidates = {}
  if env and env ~= "" then candidates[#candidates + 1] = env end
  local dir = fs.realpath(fixture.root) or fixture.root
  for _ = 1, 4 do
    candidates[#candidates + 1] = fs.join(dir, "../shared/schemas")
    dir = fs.dirname(dir)
  end
  for _, c in ipairs(candidates) do
    if fs.exists(fs.join(c, "virtualservices.networking.istio.io.yaml")) then return c end
    looked[#looked + 1] = c
  end
  return nil, table.concat(looked, ", ")
end
local schema_dir, looked = find_schema_dir()
local helper = fs.join(fixture.root, "tests/helpers/crd_validate.py")
local crds = {
  VirtualService = "virtualservices.networking.istio.io.yaml",
  DestinationRule = "destinationrules.networking.istio.io.yaml",
  HTTPRoute = "gateway.networking.k8s.io_httproutes.yaml",
}
local schema_cache = {}

-- The openAPIV3Schema of the served CRD version matching apiVersion.
local function crd_schema(kind, api_version)
  local file = fs.join(schema_dir, crds[kind])
  if not fs.exists(schema_dir) then
    error(string.format("the CRD schemas are missing: %s does not exist (the shared/ directory must sit " ..
      "beside the repository, as in CI)", schema_dir), 0)
  end
  local key = kind .. " " .. api_version
  if schema_cache[key] then return schema_cache[key] end
  local doc, err = yaml.load_file(file)
  assert(doc, "cannot read " .. file .. ": " .. tostring(err))
  local version = api_version:match("/([^/]+)$")
  for _, v in ipairs(doc.spec.versions) do
    if v.name == version then
      assert(v.served, string.format("%s %s is not served by %s", kind, version, file))
      schema_cache[key] = v.schema.openAPIV3Schema
      return schema_cache[key]
    end
  end
  error(string.format("%s has no version %s", file, version), 0)
end

-- Validates manifests {{name =, value =}, ...} of one kind; returns the
-- results {name =, valid =, errors = {{path =, message =}}}.
local function validate(kind, api_version, docs, strict)
  local schema = crd_schema(kind, api_version)
  local req = json.encode({ schema = schema, documents = json.array(docs), strict = strict ~= false })
  local r = assert(proc.run { argv = { "/usr/bin/python3", helper }, stdin = req, timeout = 60 })
  assert.equal(0, r.status, "crd_validate.py failed: " .. r.stderr)
  return assert(json.decode(r.stdout)).results
end

local function assert_valid(results)
  for _, res in ipairs(results) do
    local lines = {}
    for _, e in ipairs(res.errors) do lines[#lines + 1] = e.path .. ": " .. e.message end
    assert.is_true(res.valid, res.name .. " is invalid:\n" .. table.concat(lines, "\n"))
  end
end

local function has_error(res, path, pattern)
  for _, e in ipairs(res.errors) do
    if e.path == path and (not pattern or e.message:find(pattern)) then return true end
  end
  return false
end

local weight_sets = {
  { v1 = 50, v2 = 50 },
  { v1 = 50, v2 = 50, v3 = 0 },
  { v1 = 50, v2 = 50, v3 = 50 },
  { v1 = 50, v2 = 0, v3 = 50 },
  { v1 = 0, v2 = 0, v3 = 100 },
  { v1 = 0 },
}

describe("rendered routing objects against the CRD schemas", function()
  if not schema_dir then
    pending("NOT RUN: the CRD schemas were not found (looked in " .. looked ..
      "); set ROLLOUT_SCHEMAS_DIR to shared/schemas")
    return
  end

  it("finds the schemas beside the repository (or fails saying where they should be)", function()
    assert.is_true(fs.exists(schema_dir), "the CRD schemas are missing: " .. schema_dir ..
      " does not exist (the shared/ directory must sit beside the repository, as in CI)")
    for _, f in pairs(crds) do
      assert.is_true(fs.exists(fs.join(schema_dir, f)), "missing " .. fs.join(schema_dir, f))
    end
  end)

  it("validates the VirtualService as networking.istio.io v1 and v1beta1", function()
    local docs = {}
    for i, w in ipairs(weight_sets) do
      for _, over in ipairs { {}, { kubernetes = { normalize_weights = true } },
                              { kubernetes = { gateway = "istio-system/ingress", host = "shop.example.com" } } } do
        docs[#docs + 1] = { name = "vs " .. i .. " " .. json.encode(over), value = istio.virtual_service(cfg(over), w) }
      end
    end
    assert_valid(validate("VirtualService", "networking.istio.io/v1", docs))
    -- the same spec is valid in v1beta1 (older Istio serves only that one)
    assert_valid(validate("VirtualService", "networking.istio.io/v1beta1", docs))
  end)

  it("validates the routes with strategy routes, the mesh and no weight (VirtualService, HTTPRoute)", function()
    local rs = {
      { name = "ab", version = "v2", match = { { headers = { ["x-group"] = "beta" }, cookies = { canary = "always", b = "[x]" } },
                                               { headers = { ["x-tester"] = "yes" } } } },
      { name = "c", version = "v1", match = { { cookies = { ["id"] = "a+b/c" } } } },
    }
    local docs = {}
    for i, w in ipairs { { v1 = 50, v2 = 50 }, { v1 = 0, v2 = 0 }, { v1 = 0 } } do
      if w.v2 then
        docs[#docs + 1] = { name = "vs routes " .. i, value = istio.virtual_service(cfg { kubernetes = {
          gateway = "istio-system/ingress" } }, w, { routes = rs }) }
      end
      docs[#docs + 1] = { name = "vs " .. i, value = istio.virtual_service(cfg(), w) }
    end
    assert_valid(validate("VirtualService", "networking.istio.io/v1", docs))
    assert_valid(validate("VirtualService", "networking.istio.io/v1beta1", docs))
    local c = cfg { kubernetes = { routing = "gateway-api" } }
    assert_valid(validate("HTTPRoute", "gateway.networking.k8s.io/v1", {
      { name = "route routes", value = istio.http_route(c, { v1 = 50, v2 = 50 }, { routes = rs }) },
      { name = "route no weight", value = istio.http_route(c, { v1 = 0, v2 = 0 }) } }))
  end)

  it("validates the DestinationRule as networking.istio.io v1", function()
    local docs = {}
    for i, w in ipairs(weight_sets) do
      docs[i] = { name = "dr " .. i, value = istio.destination_rule(cfg(), w) }
    end
    assert_valid(validate("DestinationRule", "networking.istio.io/v1", docs))
  end)

  it("validates the HTTPRoute as gateway.networking.k8s.io v1", function()
    local docs = {}
    for i, w in ipairs(weight_sets) do
      for _, over in ipairs { { kubernetes = { routing = "gateway-api" } },
                              { kubernetes = { routing = "gateway-api", normalize_weights = true,
                                               parent_ref = "infra/public-gw", host = "shop.example.com" } },
                              { kubernetes = { routing = "gateway-api", gateway = "edge" } } } do
        docs[#docs + 1] = { name = "route " .. i .. " " .. json.encode(over), value = istio.http_route(cfg(over), w) }
      end
    end
    local w14 = {}
    for i = 1, 14 do w14["v" .. i] = i end
    docs[#docs + 1] = { name = "14 versions", value = istio.http_route(cfg(), w14) }
    assert_valid(validate("HTTPRoute", "gateway.networking.k8s.io/v1", docs))
  end)

  it("catches a weight that is a string", function()
    local vs = istio.virtual_service(cfg(), { v1 = 50, v2 = 50 })
    vs.spec.http[4].route[1].weight = "50"
    local r = istio.http_route(cfg(), { v1 = 50, v2 = 50 })
    r.spec.rules[4].backendRefs[2].weight = "50"
    local res = validate("VirtualService", "networking.istio.io/v1", { { name = "vs", value = vs } })
    assert.is_false(res[1].valid)
    assert.is_true(has_error(res[1], ".spec.http[3].route[0].weight", "is not of type 'integer'"))
    res = validate("HTTPRoute", "gateway.networking.k8s.io/v1", { { name = "route", value = r } })
    assert.is_false(res[1].valid)
    assert.is_true(has_error(res[1], ".spec.rules[3].backendRefs[1].weight", "is not of type 'integer'"))
  end)

  it("catches an unknown field under a strict object, and allows it when not strict", function()
    local vs = istio.virtual_service(cfg(), { v1 = 1 })
    vs.spec.http[3].route[1].destination.subsett = "v1"
    local res = validate("VirtualService", "networking.istio.io/v1", { { name = "vs", value = vs } })
    assert.is_false(res[1].valid)
    assert.is_true(has_error(res[1], ".spec.http[2].route[0].destination", "subsett"))
    -- pruning semantics (fieldValidation other than Strict): accepted
    res = validate("VirtualService", "networking.istio.io/v1", { { name = "vs", value = vs } }, false)
    assert.is_true(res[1].valid)
  end)

  it("catches out-of-range and malformed values", function()
    local r = istio.http_route(cfg(), { v1 = 1 })
    r.spec.rules[3].backendRefs[1].weight = -1          -- minimum 0
    r.spec.rules[1].matches[1].headers[1].name = "x version" -- header name pattern
    local dr = istio.destination_rule(cfg(), { "v1" })
    dr.spec.subsets[1].labels = "version=v1"            -- a map, not a string
    local vs = istio.virtual_service(cfg(), { v1 = 1 })
    vs.spec.http[3].route[1].weight = 2 ^ 31            -- int32 (a float here: not an integer either)
    vs.spec.http[1].route[1].destination.port.number = 4294967296
    local rr = validate("HTTPRoute", "gateway.networking.k8s.io/v1", { { name = "route", value = r } })
    assert.is_true(has_error(rr[1], ".spec.rules[2].backendRefs[0].weight", "less than the minimum"))
    assert.is_true(has_error(rr[1], ".spec.rules[0].matches[0].headers[0].name", "does not match"))
    local rd = validate("DestinationRule", "networking.istio.io/v1", { { name = "dr", value = dr } })
    assert.is_true(has_error(rd[1], ".spec.subsets[0].labels", "is not of type 'object'"))
    local rv = validate("VirtualService", "networking.istio.io/v1", { { name = "vs", value = vs } })
    assert.is_false(rv[1].valid)
    assert.is_true(has_error(rv[1], ".spec.http[2].route[0].weight"))
  end)

  it("catches an HTTPRoute with more than 16 rules", function()
    local r = istio.http_route(cfg(), { v1 = 1 })
    local rules = {}
    for i = 1, 17 do rules[i] = r.spec.rules[2] end
    r.spec.rules = rules
    local res = validate("HTTPRoute", "gateway.networking.k8s.io/v1", { { name = "route", value = r } })
    assert.is_true(has_error(res[1], ".spec.rules", "is too long"))
  end)
end)
