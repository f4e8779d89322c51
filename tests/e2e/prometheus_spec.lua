-- Progressive delivery judged by Prometheus only, end to end on the local
-- target: real demo processes behind a real HAProxy whose own Prometheus
-- exporter a real Prometheus (Debian's package, started here with its
-- config and data in the spec's directory, loopback, 1 s scrapes) scrapes;
-- users' traffic from a paced load generator; strategies run with
-- --metrics=prometheus, so no active probe judges anything. Every process
-- started here is stopped by pid in teardown (env:cleanup), also on failure.
local proc = require "rollout.proc"
local fs = require "rollout.fs"
local json = require "rollout.json"
local http = require "rollout.http"
local time = require "rollout.time"
local server = require "rollout.metrics.prometheus_server"
local local_env = require "tests.helpers.local_env"

local SVC = local_env.service
local wait = local_env.wait

local function faults(env, version, query)
  local port = env:state_json().versions[version].port
  local r = assert(http.request { url = string.format("http://127.0.0.1:%d/admin/faults?%s", port, query),
                                  method = "POST", timeout = 2 })
  assert.equal(200, r.status, r.body)
end

local function status(env)
  local r = env:ops("status", SVC, "--json")
  return json.decode(r.stdout)
end

local function set_weights(env, w)
  local r = env:lua(string.format([[require("rollout").service("microservice-1"):set_weights { v1 = %d, v3 = %d }]],
    w.v1, w.v3))
  assert(r.status == 0, r.stderr)
end

-- the denominator of the shipped success-rate query: v3's responses per second
local V3_TRAFFIC = 'sum(rate(haproxy_server_http_responses_total{proxy=~"be_microservice-1|be_microservice-1__v3",' ..
  'server="v3"}[4s]))'

describe("Prometheus metrics on the local target", function()
  local env, prom, load_pid

  -- steady default-route traffic (users), stopped by pid after each test
  local function start_load(seconds)
    load_pid = assert(proc.spawn { argv = { local_env.bin, "tests/helpers/load.lua", env:endpoint(),
      tostring(seconds or 60), "400" }, log = fs.join(env.dir, "load.log"), env = env.env, cwd = local_env.root })
    env:track(load_pid)
  end
  local function stop_load()
    if load_pid and proc.alive(load_pid) then proc.stop(load_pid, { timeout = 3 }) end
    load_pid = nil
  end

  local function canary(...)
    return env:rollout({ "scripts/strategies/canary.lua", SVC, "v3", "--metrics=prometheus", "--interval=1",
                         "--initial-delay=3", "--count=2", "--steps=10,50,100", ... }, { timeout = 120 })
  end

  setup(function()
    assert(server.binary(), "the prometheus package is not installed (make deps)")
    env = local_env.new()
    for _, v in ipairs { "v1", "v3" } do
      local r = env:ops("start", SVC, v)
      assert(r.status == 0, r.stdout .. r.stderr)
    end
    set_weights(env, { v1 = 100, v3 = 0 })
    -- the gateway's exporter port is kept in its state directory
    local port = assert(tonumber((fs.read(fs.join(env.state, "gateway", "exporter.port")) or ""):match("%d+")))
    prom = server.new { dir = fs.join(env.dir, "prometheus"), targets = { "127.0.0.1:" .. port }, scrape_interval = 1 }
    local ok, err = pcall(prom.start, prom, { timeout = 60 })
    if prom:pid() then env:track(prom:pid()) end
    assert(ok, err)
    -- service.yaml points at it; a quick retry, 1 s scrapes (windows of 4 s)
    local file = fs.join(env.deployments, SVC, "service.yaml")
    assert(fs.write_atomic(file, fs.read(file) .. string.format(
      "\nprometheus:\n  url: %s\n  scrape_interval: 1\n  retries: 1\n  timeout: 2\n", prom:url())))
  end)

  teardown(function()
    stop_load()
    if prom then pcall(prom.stop, prom) end
    if env then env:cleanup() end
  end)

  after_each(function() stop_load() end)

  it("the gateway's exporter has every deployed version's series", function()
    local d = assert(prom:wait_query('haproxy_server_http_responses_total{proxy="be_microservice-1",code="5xx"}',
      function(d) return #d.result == 2 end, 20))
    local servers = {}
    for _, s in ipairs(d.result) do servers[#servers + 1] = s.metric.server end
    table.sort(servers)
    assert.same({ "v1", "v3" }, servers)
    assert(prom:wait_query('haproxy_server_response_time_average_seconds{proxy="be_microservice-1__v3",server="v3"}',
      nil, 20))
  end)

  it("aborts a v3 failing 10% of its requests, judged only by the Prometheus metric", function()
    faults(env, "v3", "error_rate=0.1")
    start_load()
    local r = canary()
    assert.equal(1, r.status, r.stdout .. r.stderr)
    local rate = tonumber(r.stdout:match("aborting: v3: request success rate ([%d.]+)%% %(required: at least 99%.00%%%)"))
    assert.is_truthy(rate, r.stdout)
    assert.is_true(rate > 75 and rate < 97, "success rate " .. tostring(rate))
    assert.matches("%[metric request%-success%-rate, step 1%]", r.stdout)
    local doc = status(env)
    assert.equal("aborted", doc.phase)
    assert.same({ v1 = 100, v3 = 0 }, doc.weights)
    assert.same({ v1 = 100, v3 = 0 }, env:gateway_weights())
    local seen = {}
    for _, m in ipairs(doc.measurements) do
      seen[m.metric] = true
      if m.metric == "request-success-rate" and m.outcome == "fail" then
        assert.matches('proxy=~"be_microservice-1|be_microservice-1__v3",server="v3"', m.query, 1, true)
        assert.matches('"resultType":"vector"', m.raw, 1, true)
        assert.is_true(m.value < 0.99)
      end
    end
    assert.is_true(seen["request-success-rate"])
    assert.is_nil(seen["error-rate"])   -- no active probe judged it
    assert.is_nil(seen["latency"])
  end)

  it("promotes a good v3", function()
    faults(env, "v3", "error_rate=0")
    -- a good v3 is one whose window holds none of the errors the test
    -- before made it answer: wait until they have left the window
    local V3_5XX = 'sum(rate(haproxy_server_http_responses_total{proxy=~"be_microservice-1|be_microservice-1__v3",' ..
      'server="v3",code="5xx"}[4s]))'
    assert(prom:wait_query(V3_5XX, function(d)
      return #d.result == 0 or tonumber(d.result[1].value[2]) == 0
    end, 30))
    start_load()
    local r = canary()
    assert.equal(0, r.status, r.stdout .. r.stderr)
    assert.matches("v3 promoted: v1=0 v3=100", r.stdout)
    local doc = status(env)
    assert.equal("succeeded", doc.phase)
    local n = 0
    for _, m in ipairs(doc.measurements) do
      assert.equal("pass", m.outcome, m.reason)
      if m.metric == "request-success-rate" then
        n = n + 1
        assert.is_true(m.value >= 0.99)
      end
    end
    assert.equal(4, n) -- two looks at each of the 10% and 50% steps
    stop_load()
    set_weights(env, { v1 = 100, v3 = 0 })
  end)

  it("gives no data for a version without traffic and follows the no_data policy", function()
    -- v3 had traffic in the last test: wait until the window has none
    assert(prom:wait_query(V3_TRAFFIC .. " > 0", function(d) return #d.result == 0 end, 30))
    -- blue-green previews v3 at weight 0: users send it nothing
    local r = env:rollout({ "scripts/strategies/blue_green.lua", SVC, "v3", "--metrics=prometheus", "--interval=1",
                            "--count=2", "--no-data=fail" }, { timeout = 60 })
    assert.equal(1, r.status, r.stdout .. r.stderr)
    assert.matches("aborting: v3: the query gives an empty vector .* %(no_data = fail%) %[metric request%-success%-rate, step 1%]",
      r.stdout)
    local doc = status(env)
    assert.equal("aborted", doc.phase)
    local m = doc.measurements[#doc.measurements]
    assert.equal("no_data", m.outcome)
    assert.equal("fail", m.effect)
    assert.matches('"result":[]', m.raw, 1, true)
    -- the default policy: no data is inconclusive, which pauses; here it aborts
    r = env:rollout({ "scripts/strategies/blue_green.lua", SVC, "v3", "--metrics=prometheus", "--interval=1",
                      "--count=2", "--on-inconclusive=abort" }, { timeout = 60 })
    assert.equal(1, r.status, r.stdout .. r.stderr)
    assert.matches("aborting: inconclusive: v3: the query gives an empty vector .* %(no_data = inconclusive%)", r.stdout)
    assert.same({ v1 = 100, v3 = 0 }, env:gateway_weights())
  end)

  it("turns a Prometheus stopped mid-run into provider errors, then aborts after consecutive_error_limit", function()
    faults(env, "v3", "error_rate=0")
    start_load()
    local log = fs.join(env.dir, "stopped.log")
    local pid = assert(proc.spawn { argv = { local_env.bin, "scripts/strategies/canary.lua", SVC, "v3",
      "--metrics=prometheus", "--interval=1", "--initial-delay=3", "--count=100", "--steps=10,100" },
      log = log, env = env.env, cwd = local_env.root })
    env:track(pid)
    -- it measures and passes...
    assert(wait(function()
      for _, m in ipairs(status(env).measurements or {}) do
        if m.metric == "request-success-rate" and m.outcome == "pass" then return true end
      end
    end, 30), fs.read(log))
    -- ...until Prometheus goes away
    local prom_pid = prom:pid()
    prom:stop()
    assert.is_false(proc.alive(prom_pid))
    assert(wait(function() return not proc.alive(pid) end, 60), fs.read(log))
    local text = fs.read(log)
    assert.matches("5 errors in a row %(consecutive_error_limit 4%)", text)
    assert.matches("%[metric request%-success%-rate, step 1: provider errors%]", text)
    local doc = status(env)
    assert.equal("aborted", doc.phase)
    assert.same({ v1 = 100, v3 = 0 }, doc.weights)
    local errs, fails = 0, 0
    for _, m in ipairs(doc.measurements) do
      if m.outcome == "error" then
        errs = errs + 1
        assert.matches("Prometheus at http://127%.0%.0%.1:%d+/api/v1/query", m.reason)
      elseif m.outcome == "fail" then
        fails = fails + 1
      end
    end
    assert.is_true(errs >= 5, "errors: " .. errs)
    assert.equal(0, fails) -- errors are not failed measurements
  end)
end)
