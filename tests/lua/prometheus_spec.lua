-- rollout.metrics.prometheus: the answer -> measurement mapping, the
-- client's retries, auth and errors against canned answers from a scripted
-- loopback server (tests/helpers/fake_prometheus.py), and the provider
-- against a real Prometheus (Debian's package, started and stopped here by
-- pid).
local prom = require "rollout.metrics.prometheus"
local server = require "rollout.metrics.prometheus_server"
local analysis = require "rollout.strategy.analysis"
local proc = require "rollout.proc"
local fs = require "rollout.fs"
local http = require "rollout.http"
local json = require "rollout.json"
local time = require "rollout.time"
local fixture = require "tests.helpers.fixture"

local function isnan(x) return x ~= x end

local function vector(...)
  local result = {}
  for i, v in ipairs { ... } do
    result[i] = { metric = { server = "v" .. i }, value = { 1700000000.5, v } }
  end
  return { resultType = "vector", result = json.array(result) }
end

local function answer(data) return { status = "success", data = data } end

describe("prometheus.value: the answer mapped to a measurement", function()
  it("takes the value of a vector of one sample and of a scalar", function()
    local m = assert(prom.value(vector("0.25")))
    assert.equal(0.25, m.value)
    assert.equal(1, m.series)
    m = assert(prom.value { resultType = "scalar", result = { 1700000000, "1e-07" } })
    assert.equal(1e-07, m.value)
    assert.equal(0, m.series)
  end)

  it("refuses several series unless told how to reduce them", function()
    local m, err = prom.value(vector("1", "3", "2"))
    assert.is_nil(m)
    assert.matches("the query gives 3 series %({server=\"v1\"}, {server=\"v2\"}, {server=\"v3\"}%), not one", err)
    assert.matches("reduce = avg | max | min | sum", err, 1, true)
    assert.equal(3, prom.value(vector("1", "3", "2"), { reduce = "max" }).value)
    assert.equal(1, prom.value(vector("1", "3", "2"), { reduce = "min" }).value)
    assert.equal(6, prom.value(vector("1", "3", "2"), { reduce = "sum" }).value)
    assert.equal(2, prom.value(vector("1", "3", "2"), { reduce = "avg" }).value)
  end)

  it("gives no data for an empty vector or matrix, never 0", function()
    local m = assert(prom.value { resultType = "vector", result = json.array {} })
    assert.is_true(m.no_data)
    assert.is_nil(m.value)
    assert.matches("empty vector", m.reason)
    assert.is_true(prom.value({ resultType = "matrix", result = json.array {} }).no_data)
  end)

  it("passes NaN and ±Inf on as numbers", function()
    assert.is_true(isnan(prom.value(vector("NaN")).value))
    assert.equal(math.huge, prom.value(vector("+Inf")).value)
    assert.equal(-math.huge, prom.value(vector("-Inf")).value)
    -- a reduction with a NaN is NaN, whatever the order
    assert.is_true(isnan(prom.value(vector("1", "NaN"), { reduce = "max" }).value))
    assert.is_true(isnan(prom.value(vector("NaN", "1"), { reduce = "min" }).value))
  end)

  it("reduces the points of a matrix only when told how", function()
    local data = { resultType = "matrix", result = json.array {
      { metric = { server = "v3" }, values = { { 1, "1" }, { 2, "5" }, { 3, "2" } } } } }
    local m, err = prom.value(data)
    assert.is_nil(m)
    assert.matches("3 points per series", err)
    assert.equal(5, prom.value(data, { over_time = "max" }).value)
    assert.equal(2, prom.value(data, { over_time = "last" }).value)
    assert.equal(3, prom.value(data, { over_time = "max" }).n)
  end)

  it("errs on a string, an unknown type and a value that is not a number", function()
    local m, err = prom.value { resultType = "string", result = { 1, "hello" } }
    assert.is_nil(m)
    assert.matches('a string %("hello"%), not a number', err)
    assert.is_nil((prom.value { resultType = "histogram", result = {} }))
    m, err = prom.value(vector("abc"))
    assert.is_nil(m)
    assert.matches("no numeric value", err)
  end)

  it("reads Prometheus's numbers and Retry-After in both forms", function()
    assert.equal(0.5, prom.number("0.5"))
    assert.equal(math.huge, prom.number("+Inf"))
    assert.is_nil(prom.number("twelve"))
    assert.equal(7, prom.retry_after("7"))
    -- IMF-fixdate: 1994-11-06 08:49:37 UTC is 784111777
    assert.equal(3, prom.retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111774))
    assert.equal(0, prom.retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111800))
    assert.is_nil(prom.retry_after("soon"))
  end)

  it("expands templates, escaping what would end a PromQL string, and refuses unknown placeholders", function()
    assert.equal('x{a="v3",b=~"v1|v2"}[30s]',
      prom.expand('x{a="{{version}}",b=~"{{ baseline }}"}[{{window}}]', { version = "v3", baseline = "v1|v2", window = "30s" }))
    assert.equal('x{a="a\\"b\\\\c"}', prom.expand('x{a="{{v}}"}', { v = 'a"b\\c' }))
    assert.has_error(function() prom.expand("{{nope}}", {}) end)
    local ok, err = pcall(prom.provider, { query = "up{v=\"{{verison}}\"}" })
    assert.is_false(ok)
    assert.matches("unknown placeholder {{verison}}", tostring(err.message or err))
    assert.equal(90, prom.seconds("1m30s"))
    assert.equal(0.5, prom.seconds("500ms"))
    assert.is_nil(prom.seconds("soon"))
  end)

  it("shows URLs without credentials and refuses credentials in them", function()
    assert.equal("https://prom.example:9090/x", prom.safe_url("https://alice:s3cret@prom.example:9090/x?token=t#f"))
    local ok, err = pcall(prom.client, { url = "http://alice:s3cret@127.0.0.1:9090" })
    assert.is_false(ok)
    assert.not_matches("s3cret", tostring(err.message or err))
  end)
end)

describe("the provider against canned answers", function()
  local srv, dir

  setup(function()
    dir = fixture.tmpdir()
    local log = dir .. "/fake.log"
    local pid, port = fixture.start_server { argv = { "/usr/bin/python3",
      fixture.root .. "/tests/helpers/fake_prometheus.py", "--port", "0" }, log = log, timeout = 10,
      what = "fake_prometheus.py", ready = function(text) return text:match("listening on 127%.0%.0%.1:(%d+)") end }
    srv = { pid = pid, url = "http://127.0.0.1:" .. port }
  end)

  teardown(function()
    fixture.stop(srv)
    fixture.remove(dir)
  end)

  local function post(path, doc)
    local r = assert(http.request { url = srv.url .. path, method = "POST", body = json.encode(doc) })
    assert.equal(200, r.status, r.body)
  end
  local function script(path, responses) post("/_fake/script", { path = path, responses = responses }) end
  local function requests()
    return json.decode(assert(http.get(srv.url .. "/_fake/requests")).body)
  end

  before_each(function() post("/_fake/reset", {}) end)

  local SERVICE = { name = "shop", target_name = "local", config = { prometheus = {}, kubernetes = { namespace = "prod" } } }
  local function ctx() return { service = SERVICE, canary = "v3", baseline = { v1 = 70, v2 = 30 }, params = { interval = 10 } } end
  local function client(o)
    local opts = { url = srv.url, timeout = 2, retries = 3, scrape_interval = 1 }
    for k, v in pairs(o or {}) do opts[k] = v end
    return prom.client(opts)
  end
  local function measure(p, m)
    return p:measure(ctx(), m or { name = "x" })
  end

  it("records the resolved query and the raw answer, and POSTs the query as a form", function()
    script("/api/v1/query", { { json = answer(vector("0.995")) } })
    local p = prom.provider { client = client(), label = "success rate",
      query = 'sum(rate(x{service="{{service}}",version="{{version}}",b=~"{{baseline}}",ns="{{namespace}}"}[{{window}}]))' }
    local m = measure(p)
    assert.equal(0.995, m.value)
    assert.equal('sum(rate(x{service="shop",version="v3",b=~"v1|v2",ns="prod"}[10s]))', m.query)
    assert.matches('"0.995"', m.raw, 1, true)
    assert.matches("^v3: success rate 0.995", m.reason)
    local reqs = requests()
    assert.equal(1, #reqs)
    assert.equal("POST", reqs[1].method)
    assert.equal("/api/v1/query", reqs[1].path)
    assert.equal(m.query, reqs[1].form.query)
    assert.equal("application/x-www-form-urlencoded", reqs[1].headers["content-type"])
  end)

  it("puts at least four scrape intervals in the window", function()
    script("/api/v1/query", { { json = answer(vector("1")) } })
    local m = measure(prom.provider { client = client { scrape_interval = 15 }, query = "x[{{window}}] {{interval}}" })
    assert.equal("x[60s] 10s", m.query)
  end)

  it("sends a bearer token or basic auth and never shows them", function()
    local tokfile = dir .. "/token"
    fs.write_atomic(tokfile, "t0ps3cret-token\n")
    script("/api/v1/query", { { status = 400, json = { status = "error", errorType = "bad_data", error = "parse error" } } })
    local m = measure(prom.provider { client = client { bearer_token_file = tokfile }, query = "up" })
    assert.equal("Bearer t0ps3cret-token", requests()[1].headers.authorization)
    local c = client { username = "alice", password = "hunter2" }
    measure(prom.provider { client = c, query = "up" })
    local basic = requests()[2].headers.authorization
    assert.equal("Basic " .. require("rollout.k8s.util").base64_encode("alice:hunter2"), basic)
    for _, text in ipairs { m.reason, json.encode(m), tostring(c), json.encode(c) } do
      assert.not_matches("t0ps3cret", text)
      assert.not_matches("hunter2", text)
      assert.not_matches(basic:sub(7), text, 1, true)
    end
  end)

  it("turns an error answer into a provider error naming errorType, without retrying a 4xx", function()
    script("/api/v1/query", { { status = 422, json = { status = "error", errorType = "execution",
      error = "expanding series: too many samples" } } })
    local m = measure(prom.provider { client = client(), query = "up" })
    assert.is_true(m.error)
    assert.matches("HTTP 422, execution: expanding series: too many samples", m.reason)
    assert.equal("up", m.query)
    assert.equal(1, #requests())
    analysis.evaluate({ no_data = "inconclusive", on_nan = "inconclusive" }, m)
    assert.equal("error", m.outcome)
  end)

  it("waits the Retry-After of a 429, then takes the answer", function()
    script("/api/v1/query", { { status = 429, headers = { ["Retry-After"] = "1" }, body = "slow down" },
                              { json = answer(vector("0.5")) } })
    local m = measure(prom.provider { client = client(), query = "up" })
    assert.equal(0.5, m.value)
    local reqs = requests()
    assert.equal(2, #reqs)
    assert.is_true(reqs[2].t - reqs[1].t >= 0.95, "waited " .. (reqs[2].t - reqs[1].t))
  end)

  it("retries a 503 and gives up after `retries` with the last answer", function()
    script("/api/v1/query", { { status = 503, json = { status = "error", errorType = "timeout", error = "query timed out" } },
                              { json = answer(vector("0.75")) } })
    assert.equal(0.75, measure(prom.provider { client = client(), query = "up" }).value)
    post("/_fake/reset", {})
    script("/api/v1/query", { { status = 503, body = "unavailable" } })
    local m = measure(prom.provider { client = client { retries = 2 }, query = "up" })
    assert.is_true(m.error)
    assert.matches("HTTP 503: unavailable %(after 3 attempts%)", m.reason)
    assert.equal(3, #requests())
  end)

  it("does not wait a Retry-After beyond max_retry_wait", function()
    script("/api/v1/query", { { status = 429, headers = { ["Retry-After"] = "120" }, body = "" } })
    local t0 = time.now()
    local m = measure(prom.provider { client = client { max_retry_wait = 5 }, query = "up" })
    assert.is_true(m.error)
    assert.matches("Retry%-After 120s is beyond max_retry_wait 5s", m.reason)
    assert.is_true(time.now() - t0 < fixture.timeout(2))
  end)

  it("times out on a server that does not answer", function()
    script("/api/v1/query", { { delay = 3, json = answer(vector("1")) } })
    local t0 = time.now()
    local m = measure(prom.provider { client = client { timeout = 0.5, retries = 0 }, query = "up" })
    assert.is_true(m.error)
    assert.matches("timed? ?out", m.reason:lower())
    assert.is_true(time.now() - t0 < fixture.timeout(2.5))
  end)

  it("errs on bad JSON and on an answer that is not Prometheus's", function()
    script("/api/v1/query", { { body = "<html>proxy login</html>", headers = { ["Content-Type"] = "text/html" } } })
    local m = measure(prom.provider { client = client(), query = "up" })
    assert.is_true(m.error)
    assert.matches("HTTP 200, not a Prometheus answer", m.reason)
    assert.matches("proxy login", m.raw)
  end)

  it("maps no data, NaN and +Inf to their own outcomes through the metric's policies", function()
    local p = prom.provider { client = client(), query = "up" }
    local metric = analysis.metric { name = "m", provider = p, success = function(v) return v > 0.5 end,
                                     no_data = "fail", on_nan = "pass" }
    script("/api/v1/query", { { json = answer { resultType = "vector", result = json.array {} } } })
    local m = analysis.evaluate(metric, measure(p, metric))
    assert.equal("no_data", m.outcome)
    assert.equal("fail", m.effect)
    assert.matches("empty vector.*%(no_data = fail%)", m.reason)
    assert.equal("up", m.query)
    for _, v in ipairs { "NaN", "+Inf" } do
      post("/_fake/reset", {})
      script("/api/v1/query", { { json = answer(vector(v)) } })
      m = analysis.evaluate(metric, measure(p, metric))
      assert.equal("pass", m.outcome, v)
      assert.matches("not a number to compare %(on_nan = pass%)", m.reason)
    end
  end)

  it("reduces several series only as told", function()
    script("/api/v1/query", { { json = answer(vector("0.9", "0.99")) } })
    local m = measure(prom.provider { client = client(), query = "up" })
    assert.is_true(m.error)
    assert.matches("gives 2 series", m.reason)
    m = measure(prom.provider { client = client(), query = "up", reduce = "min" })
    assert.equal(0.9, m.value)
    assert.matches("min of 2 series", m.reason)
  end)

  it("asks /api/v1/query_range with start, end and step", function()
    script("/api/v1/query_range", { { json = answer { resultType = "matrix", result = json.array {
      { metric = {}, values = { { 1, "0.2" }, { 2, "0.4" } } } } } } })
    local m = measure(prom.provider { client = client(), query = "up", range = { duration = "1m", step = "15s" },
                                      over_time = "max" })
    assert.equal(0.4, m.value)
    local f = requests()[1].form
    assert.equal("15", f.step)
    assert.near(60, tonumber(f["end"]) - tonumber(f.start), 0.01)
    assert.has_error(function() prom.provider { query = "up", range = { duration = "1m", step = "15s" } } end)
  end)

  it("ships success rate and duration queries for HAProxy's exporter (local) and Istio (kubernetes)", function()
    script("/api/v1/query", { { json = answer(vector("0.98")) } })
    local c = client()
    local sr = prom.success_rate { client = c }
    local du = prom.duration_p99 { client = c, max_ms = 250 }
    assert.equal("request-success-rate", sr.name)
    assert.equal("request-duration", du.name)
    local m = analysis.evaluate(sr, sr.provider:measure(ctx(), sr))
    assert.equal("fail", m.outcome) -- 98% < 99%
    assert.equal("v3: request success rate 98.00% (required: at least 99.00%)", m.reason)
    -- local: both backends of the version, its server, 5xx excluded; no traffic -> empty (> 0)
    assert.matches('haproxy_server_http_responses_total{proxy=~"be_shop|be_shop__v3",server="v3",code!="5xx"}[10s]',
      m.query, 1, true)
    assert.matches('/\n(sum(rate(haproxy_server_http_responses_total{proxy=~"be_shop|be_shop__v3",server="v3"}[10s])) > 0)',
      m.query, 1, true)
    m = analysis.evaluate(du, du.provider:measure(ctx(), du))
    assert.equal("pass", m.outcome) -- 0.98 ms <= 250 ms
    assert.matches('max(max_over_time(haproxy_server_response_time_average_seconds{proxy=~"be_shop|be_shop__v3",server="v3"}[10s])) * 1000',
      m.query, 1, true)
    -- kubernetes: Istio's standard metrics as the destination reports them
    local k = ctx()
    k.service = { name = "shop", target_name = "kubernetes", config = { prometheus = {}, kubernetes = { namespace = "prod" } } }
    m = sr.provider:measure(k, sr)
    local sel = 'reporter="destination",destination_service_namespace="prod",destination_service_name="shop",' ..
      'destination_version="v3"'
    assert.matches('sum(rate(istio_requests_total{' .. sel .. ',response_code!~"5.."}[10s]))', m.query, 1, true)
    assert.matches('(sum(rate(istio_requests_total{' .. sel .. '}[10s])) > 0)', m.query, 1, true)
    m = du.provider:measure(k, du)
    assert.matches('histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket{' .. sel ..
      '}[10s])))', m.query, 1, true)
    assert.matches('and on() (sum(rate(istio_request_duration_milliseconds_count{' .. sel .. '}[10s])) > 0)', m.query, 1, true)
    assert.equal(4, #requests())
    local ok, err = pcall(prom.success_rate, { threshold = 99 })
    assert.is_false(ok)
    assert.matches("threshold must be a fraction", tostring(err.message or err))
  end)

  it("ends an analysis as an error after consecutive_error_limit errors when Prometheus is gone", function()
    local port = fixture.free_port()
    local p = prom.provider { client = prom.client { url = "http://127.0.0.1:" .. port, retries = 0, timeout = 1 },
                              query = "up" }
    local metric = analysis.metric { name = "rate", provider = p, interval = 0.05, count = 3,
                                     consecutive_error_limit = 2, success = function(v) return v > 0 end }
    local res = analysis.run({ metric }, { service = SERVICE, canary = "v3", baseline = {} })
    assert.equal("error", res.outcome)
    assert.equal(3, #res.measurements)
    assert.matches("3 errors in a row %(consecutive_error_limit 2%)", res.reason)
    assert.matches("127.0.0.1:" .. port .. "/api/v1/query", res.reason, 1, true)
  end)

  it("finds the address in PROMETHEUS_URL before service.yaml, and says where to set one", function()
    local o, why = prom.settings { name = "shop", config = { prometheus = {} } }
    if os.getenv("PROMETHEUS_URL") then return end
    assert.is_nil(o)
    assert.matches("set PROMETHEUS_URL or prometheus.url in service.yaml", why)
    o = assert(prom.settings { name = "shop", config = { file = "shop/service.yaml",
      prometheus = { url = "http://127.0.0.1:1/", username = "alice" } } })
    assert.equal("http://127.0.0.1:1/", o.url)
    assert.equal("shop/service.yaml: prometheus.url", o.source)
    local r = proc.run { argv = { fixture.bin, "-e", [[
      local prom = require "rollout.metrics.prometheus"
      local o = prom.settings { name = "shop", config = { prometheus = { url = "http://127.0.0.1:1", username = "alice" } } }
      local c = prom.client(o)
      io.write(o.url, " ", o.source, " ", tostring(c))]] },
      env = { PROMETHEUS_URL = srv.url, PROMETHEUS_PASSWORD = "pw-secret" }, timeout = 20 }
    assert.equal(0, r.status, r.stderr)
    assert.equal(srv.url .. " PROMETHEUS_URL Prometheus at " .. srv.url .. " (basic auth as alice)", r.stdout)
  end)
end)

describe("the provider against a real Prometheus", function()
  local p, dir, c
  setup(function()
    assert(server.binary(), "the prometheus package is not installed (make deps)")
    dir = fixture.tmpdir()
    -- it scrapes itself: its own port, chosen before it starts
    local port = fixture.free_port()
    p = server.new { dir = dir .. "/prom", port = port, targets = { "127.0.0.1:" .. port }, scrape_interval = 1,
                     job = "self" }
    local ok, err = pcall(p.start, p, { timeout = 60 })
    if not ok then
      p:stop()
      fixture.remove(dir)
      error(err)
    end
    c = p:client { timeout = 5 }
  end)
  teardown(function()
    local pid = p and p:pid()
    if p then p:stop() end
    if pid then assert.is_false(proc.alive(pid)) end
    fixture.remove(dir)
  end)

  local CTX = { service = { name = "self", target_name = "local", config = { prometheus = {} } }, canary = "v3",
                baseline = {}, params = { interval = 1 } }

  it("is ready and scrapes its target", function()
    assert.is_true(c:ready())
    local t = assert(c:targets())
    assert.equal(1, #t)
    assert.equal("up", t[1].health)
    assert.matches("127.0.0.1:%d+/metrics", t[1].url)
  end)

  it("maps its real answers: one sample, scalar, several series, empty, NaN, +Inf, errors", function()
    local function m(q, o)
      local opts = { client = c, query = q }
      for k, v in pairs(o or {}) do opts[k] = v end
      return prom.provider(opts):measure(CTX, { name = "x" })
    end
    assert.equal(1, m('up{job="self"}').value)
    assert.equal(42, m("scalar(vector(42))").value)
    assert.equal(2, m('count(up) * 2').value)
    local several = m('label_replace(vector(1), "a", "x", "", "") or label_replace(vector(2), "a", "y", "", "")')
    assert.is_true(several.error)
    assert.matches("gives 2 series", several.reason)
    assert.equal(3, m('label_replace(vector(1), "a", "x", "", "") or label_replace(vector(2), "a", "y", "", "")',
                      { reduce = "sum" }).value)
    local empty = m('up{job="nobody"}')
    assert.is_true(empty.no_data)
    assert.matches('"result":%[%]', empty.raw)
    assert.is_true(isnan(m("vector(0) / 0").value))
    assert.equal(math.huge, m("vector(1) / 0").value)
    assert.equal(-math.huge, m("vector(-1) / 0").value)
    local bad = m("sum(rate(up[1m])")
    assert.is_true(bad.error)
    assert.matches("HTTP 400, bad_data: .*parse error", bad.reason)
    -- a range of 5 s at 1 s steps: a point per step once the first scrapes are in
    local range = fixture.poll(function()
      local r = m('up{job="self"}', { range = { duration = "5s", step = "1s" }, over_time = "min" })
      return r.n and r.n >= 3 and r
    end, 15)
    assert.is_truthy(range, "fewer than 3 points in a 5 s range after 15 s")
    assert.equal(1, range.value)
    assert.equal(1, range.series)
  end)

  it("parses the shipped queries of both targets, which give no data for series that do not exist", function()
    for _, target in ipairs { "local", "kubernetes" } do
      for _, metric in ipairs { prom.success_rate { client = c, target = target },
                                prom.duration_p99 { client = c, target = target } } do
        local m = analysis.evaluate(metric, metric.provider:measure(CTX, metric))
        assert.equal("no_data", m.outcome, target .. " " .. metric.name .. ": " .. tostring(m.reason))
        assert.equal("inconclusive", m.effect)
      end
    end
  end)

  it("counts what it scraped: rate() over the window of the run", function()
    local d = assert(p:wait_query("sum(rate(prometheus_http_requests_total[4s])) > 0", nil, 20))
    assert.equal("vector", d.resultType)
    local meas = prom.provider { client = c, query = "sum(rate(prometheus_http_requests_total[{{window}}])) > 0" }
      :measure(CTX, { name = "x" })
    assert.equal("sum(rate(prometheus_http_requests_total[4s])) > 0", meas.query)
    assert.is_true(meas.value > 0)
  end)
end)
