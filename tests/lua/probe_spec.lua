-- rollout.probe through a real HAProxy in front of demo services, and against
-- tests/helpers/raw_http.py for the HTTP/1.x cases HAProxy never sends
-- (127.0.0.1 only).
local probe = require "rollout.probe"
local proc = require "rollout.proc"
local fs = require "rollout.fs"
local time = require "rollout.time"
local http = require "rollout.http"
local json = require "rollout.json"
local fixture = require "tests.helpers.fixture"

local KINDS = { "connect", "timeout", "http_4xx", "http_5xx", "parse", "other" }

-- The invariants every result keeps: one bucket per completed request.
local function check_buckets(r)
  local served = 0
  for _, c in pairs(r.counts) do served = served + c end
  assert.equal(r.served, served)
  local errs = 0
  for _, k in ipairs(KINDS) do
    assert.equal("integer", math.type(r.errors[k]), k)
    errs = errs + r.errors[k]
  end
  assert.equal(r.error_total, errs)
  assert.equal(r.completed, r.served + r.error_total)
  assert.is_true(r.sent >= r.completed)
end

local function open_fds()
  return #assert(fs.list("/proc/self/fd"))
end

-- Sessions (connections) a HAProxy frontend has accepted so far.
local function sessions(gw, frontend)
  for line in fixture.haproxy_cmd(gw, "show stat"):gmatch("[^\n]+") do
    local f = {}
    for field in (line .. ","):gmatch("([^,]*),") do f[#f + 1] = field end
    if f[1] == frontend and f[2] == "FRONTEND" then return tonumber(f[8]) end
  end
  error("no frontend " .. frontend .. " in show stat")
end

-- tests/helpers/raw_http.py: a server answering with exact bytes.
local raw_server = fixture.raw_http

describe("rollout.probe", function()
  local v1, v2, gw, text_port
  local fe = {} -- name -> port of the extra frontends

  setup(function()
    local ok, err = pcall(function()
      v1 = fixture.demo { version = "v1" }
      v2 = fixture.demo { version = "v2" }
      text_port = fixture.free_port()
      local extra = {
        "frontend fe_text",
        "    bind 127.0.0.1:" .. text_port,
        '    http-request return status 200 content-type text/plain string "hello"',
      }
      -- frontends that change how responses are framed or connections end
      local function frontend(name, ...)
        fe[name] = fixture.free_port()
        extra[#extra + 1] = "frontend " .. name
        extra[#extra + 1] = "    bind 127.0.0.1:" .. fe[name]
        for _, l in ipairs { ... } do extra[#extra + 1] = "    " .. l end
        extra[#extra + 1] = "    default_backend be_default"
      end
      frontend("fe_chunked", "http-response del-header content-length") -- HAProxy then chunks
      frontend("fe_close", "http-response set-header Connection close")
      frontend("fe_someclose", "http-response set-header Connection close if { rand(4) -m int 0 }")
      frontend("fe_httpclose", "option httpclose")
      frontend("fe_idle", "timeout http-keep-alive 40ms")
      gw = fixture.haproxy {
        backends = { { name = "v1", port = v1.port, weight = 50 }, { name = "v2", port = v2.port, weight = 50 } },
        extra = table.concat(extra, "\n"),
      }
    end)
    if not ok then
      fixture.stop_all(gw, v1, v2)
      error(err, 0)
    end
  end)

  teardown(function()
    fixture.stop_all(gw, v1, v2)
  end)

  it("counts 10,000 requests per version at 50/50", function()
    local r = assert(probe.run { url = gw.url .. "/api/version", n = 10000, concurrency = 50 })
    check_buckets(r)
    assert.equal(10000, r.sent)
    assert.equal(10000, r.completed)
    assert.equal(10000, r.served)
    assert.equal(0, r.error_total)
    assert.equal(10000, r.status[200])
    -- binomial(10000, 0.5): sd = 50; 350 is 7 sd
    assert.is_true(math.abs(r.counts.v1 - 5000) < 350, "v1 " .. tostring(r.counts.v1))
    assert.is_true(math.abs(r.counts.v2 - 5000) < 350, "v2 " .. tostring(r.counts.v2))
    local l = r.latency_ms
    assert.is_true(l.p50 > 0 and l.p50 <= l.p90 and l.p90 <= l.p99 and l.p99 <= l.max)
    assert.is_true(l.mean > 0 and l.mean <= l.max)
    assert.is_true(r.duration > 0)
    assert.near(r.completed / r.duration, r.rate, 1e-6 * r.rate)
    assert.is_nil(r.stopped)
    assert.is_nil(r.samples)
  end)

  it("routes x-version: v2 to v2 only", function()
    local r = assert(probe.run { url = gw.url .. "/api/version", n = 500, concurrency = 20,
      headers = { ["x-version"] = "v2" } })
    check_buckets(r)
    assert.equal(500, r.counts.v2)
    assert.is_nil(r.counts.v1)
  end)

  it("extracts a header instead of the JSON body", function()
    local r = assert(probe.run { url = gw.url .. "/api/version", n = 400, extract = "header:X-Served-By" })
    check_buckets(r)
    assert.equal(400, (r.counts.v1 or 0) + (r.counts.v2 or 0))
  end)

  it("counts a closed port as connect errors, quickly", function()
    local t0 = time.now()
    local r = assert(probe.run { url = "http://127.0.0.1:" .. fixture.free_port() .. "/api/version",
      n = 30, concurrency = 5, timeout = 2 })
    check_buckets(r)
    assert.equal(30, r.errors.connect)
    assert.equal(0, r.served)
    assert.same({}, r.counts)
    assert.same({}, r.status)
    assert.is_true(time.now() - t0 < fixture.timeout(2))
  end)

  it("counts 500s as http_5xx, never as versions", function()
    local bad = fixture.demo { version = "v3", args = { "--error-rate", "1" } }
    finally(function() fixture.stop(bad) end)
    local r = assert(probe.run { url = bad.url .. "/api/version", n = 200, concurrency = 10 })
    check_buckets(r)
    assert.equal(200, r.errors.http_5xx)
    assert.equal(200, r.status[500])
    assert.same({}, r.counts)
    -- the JSON body of a 500 names v3: still not a served request
    r = assert(probe.run { url = bad.url .. "/api/version", n = 20, extract = "header:x-served-by" })
    assert.equal(20, r.errors.http_5xx)
    assert.equal(0, r.served)
  end)

  it("attributes each error to the version that answered (body, or the served_by header)", function()
    local bad = fixture.demo { version = "v3", args = { "--error-rate", "0.3" } }
    finally(function() fixture.stop(bad) end)
    -- the JSON field of the error body names v3
    local r = assert(probe.run { url = bad.url .. "/api/version", n = 1000, concurrency = 8, latencies = true })
    check_buckets(r)
    assert.is_true(r.errors.http_5xx > 200 and r.errors.http_5xx < 400, tostring(r.errors.http_5xx))
    assert.same({ http_5xx = r.errors.http_5xx }, r.errors_by_version.v3)
    assert.equal(0, r.errors_unattributed)
    assert.equal(r.served, r.by_version.v3.served)
    assert.equal(r.errors.http_5xx, r.by_version.v3.error_total)
    assert.equal(r.served, #r.latencies.v3)
    for i = 2, #r.latencies.v3 do assert.is_true(r.latencies.v3[i - 1] <= r.latencies.v3[i]) end
    assert.is_number(r.by_version.v3.latency_ms.p99)
    -- read for another field, the 404 body names no version: only the
    -- served_by header can name v3
    r = assert(probe.run { url = bad.url .. "/nope", n = 30, concurrency = 4, extract = "json:nofield" })
    assert.equal(30, r.errors_unattributed)
    assert.is_nil(next(r.errors_by_version))
    r = assert(probe.run { url = bad.url .. "/nope", n = 30, concurrency = 4, extract = "json:nofield",
                           served_by = "X-Served-By" })
    assert.equal(0, r.errors_unattributed)
    assert.same({ http_4xx = 30 }, r.errors_by_version.v3)
    assert.is_nil(r.counts.v3) -- answered only errors: served nothing
    -- transport errors name no version
    r = assert(probe.run { url = "http://127.0.0.1:" .. fixture.free_port() .. "/", n = 5, served_by = "X-Served-By" })
    assert.equal(5, r.errors.connect)
    assert.equal(5, r.errors_unattributed)
    assert.has_error(function() probe.run { url = bad.url, n = 1, served_by = "bad header" } end)
  end)

  it("counts 404s as http_4xx", function()
    local r = assert(probe.run { url = gw.url .. "/no/such/path", n = 100 })
    check_buckets(r)
    assert.equal(100, r.errors.http_4xx)
    assert.equal(100, r.status[404])
  end)

  it("counts a 200 without a version as parse", function()
    local r = assert(probe.run { url = "http://127.0.0.1:" .. text_port .. "/api/version", n = 100 })
    check_buckets(r)
    assert.equal(100, r.errors.parse)
    assert.equal(100, r.status[200])
    assert.equal(0, r.served)
    -- a JSON field that is not there is a parse error too
    r = assert(probe.run { url = gw.url .. "/api/version", n = 50, extract = "json:nope.deeper" })
    assert.equal(50, r.errors.parse)
  end)

  it("times out a hanging backend per request, without hanging", function()
    local slow = fixture.demo { version = "v4", args = { "--latency-ms", "5000" } }
    finally(function() fixture.stop(slow) end)
    local t0 = time.now()
    local r = assert(probe.run { url = slow.url .. "/api/version", n = 20, concurrency = 10, timeout = 0.3 })
    local took = time.now() - t0
    check_buckets(r)
    assert.equal(20, r.errors.timeout)
    assert.is_true(took < fixture.timeout(2), "took " .. took)
    assert.is_true(r.latency_ms.p50 >= 250)
  end)

  it("stops sending when the duration ends", function()
    local t0 = time.now()
    local r = assert(probe.run { url = gw.url .. "/api/version", duration = 0.5, concurrency = 10 })
    local took = time.now() - t0
    check_buckets(r)
    assert.equal("duration", r.stopped)
    assert.equal(r.sent, r.completed) -- in-flight requests finish
    assert.is_true(r.served > 50)
    assert.is_true(took >= 0.5 and took < fixture.timeout(2), "took " .. took)
    -- n reached first: not stopped by the duration
    r = assert(probe.run { url = gw.url .. "/api/version", duration = 30, n = 100 })
    assert.equal(100, r.completed)
    assert.is_nil(r.stopped)
  end)

  it("aborts in-flight requests at the deadline and returns promptly", function()
    local slow = fixture.demo { version = "v5", args = { "--latency-ms", "5000" } }
    finally(function() fixture.stop(slow) end)
    local t0 = time.now()
    local r = assert(probe.run { url = slow.url .. "/api/version", n = 100, concurrency = 10,
      timeout = 10, deadline = 0.5 })
    local took = time.now() - t0
    check_buckets(r)
    assert.equal("deadline", r.stopped)
    assert.equal(0, r.completed)
    assert.equal(10, r.sent)
    assert.is_true(took >= 0.45 and took < fixture.timeout(1.5), "took " .. took)
  end)

  it("calls a Lua extract function with status, body and headers", function()
    local seen = 0
    local r = assert(probe.run { url = gw.url .. "/api/version", n = 300, concurrency = 10,
      extract = function(status, body, headers)
        assert(status == 200, "status")
        assert(type(body) == "string" and body:find('"version"'), "body")
        seen = seen + 1
        return headers["x-served-by"]
      end })
    check_buckets(r)
    assert.equal(300, seen)
    assert.equal(300, r.served)
    -- nil means "no version"
    r = assert(probe.run { url = gw.url .. "/api/version", n = 30, extract = function() return nil end })
    assert.equal(30, r.errors.parse)
  end)

  it("re-raises an error of the extract function after cleaning up", function()
    local before = open_fds()
    for _ = 1, 3 do
      local ok, err = pcall(probe.run, { url = gw.url .. "/api/version", n = 1000, concurrency = 20,
        extract = function() error("boom in extract") end })
      assert.is_false(ok)
      assert.matches("boom in extract", err)
      ok, err = pcall(probe.run, { url = gw.url .. "/api/version", n = 10, extract = function() return {} end })
      assert.is_false(ok)
      assert.matches("must return a string or nil %(got table%)", err)
    end
    collectgarbage()
    -- no descriptor left behind (other specs' handles may be collected too)
    assert.is_true(open_fds() <= before, string.format("%d fds open, %d before", open_fds(), before))
    -- and the next run works
    local r = assert(probe.run { url = gw.url .. "/api/version", n = 100 })
    assert.equal(100, r.served)
  end)

  it("reports progress, monotonic, at most ~10 times a second, and once at the end", function()
    local calls = {}
    local t0 = time.now()
    local r = assert(probe.run { url = gw.url .. "/api/version", duration = 0.6, concurrency = 10,
      on_progress = function(done, total) calls[#calls + 1] = { done, total } end })
    local took = time.now() - t0
    assert.is_true(#calls >= 3, "calls " .. #calls)
    assert.is_true(#calls <= took * 10 + 2, "calls " .. #calls)
    for i = 2, #calls do assert.is_true(calls[i][1] >= calls[i - 1][1]) end
    assert.equal(r.completed, calls[#calls][1])
    assert.is_nil(calls[1][2]) -- no count: no total
    local last
    r = assert(probe.run { url = gw.url .. "/api/version", n = 200,
      on_progress = function(done, total) last = { done, total } end })
    assert.same({ 200, 200 }, last)
    -- a progress function that raises stops the run with its error
    local ok, err = pcall(probe.run, { url = gw.url .. "/api/version", duration = 5,
      on_progress = function() error("stop now") end })
    assert.is_false(ok)
    assert.matches("stop now", err)
  end)

  it("records samples in completion order when asked", function()
    local r = assert(probe.run { url = gw.url .. "/api/version", n = 200, record = true })
    assert.equal(200, #r.samples)
    local per, slowest = {}, 0
    for _, s in ipairs(r.samples) do
      assert.is_true(s[1] == "v1" or s[1] == "v2")
      -- a latency in ms: a request over loopback takes some time, and the
      -- samples are what the summary was made of
      assert.equal("float", math.type(s[2]))
      assert.is_true(s[2] > 0 and s[2] <= r.latency_ms.max, "latency " .. s[2])
      slowest = math.max(slowest, s[2])
      per[s[1]] = (per[s[1]] or 0) + 1
    end
    assert.same(r.counts, per)
    assert.equal(r.latency_ms.max, slowest)
    r = assert(probe.run { url = gw.url .. "/no/such", n = 5, record = true })
    assert.same({ "http_4xx", "http_4xx", "http_4xx", "http_4xx", "http_4xx" },
      { r.samples[1][1], r.samples[2][1], r.samples[3][1], r.samples[4][1], r.samples[5][1] })
  end)

  it("reuses connections (keep-alive) unless told not to", function()
    local s0 = sessions(gw, "fe")
    local r = assert(probe.run { url = gw.url .. "/api/version", n = 1000, concurrency = 10, threads = 1 })
    assert.equal(1000, r.served)
    local s1 = sessions(gw, "fe")
    assert.is_true(s1 - s0 <= 10 + 2, "sessions " .. (s1 - s0))
    r = assert(probe.run { url = gw.url .. "/api/version", n = 200, concurrency = 10, keepalive = false })
    assert.equal(200, r.served)
    assert.is_true(sessions(gw, "fe") - s1 >= 190, "sessions " .. (sessions(gw, "fe") - s1))
  end)

  it("gives the same counts with one or two threads", function()
    for _, t in ipairs { 1, 2 } do
      local r = assert(probe.run { url = gw.url .. "/api/version", n = 2000, threads = t })
      check_buckets(r)
      assert.equal(2000, r.served)
      assert.equal(2000, r.sent)
    end
  end)

  describe("HTTP/1.1 framing and connections through HAProxy", function()
    local function url(name) return "http://127.0.0.1:" .. fe[name] .. "/api/version" end

    it("reads chunked bodies", function()
      for _, extract in ipairs { "json:version", "header:x-served-by" } do
        local s0 = sessions(gw, "fe_chunked")
        local r = assert(probe.run { url = url("fe_chunked"), n = 2000, concurrency = 10, threads = 1,
          extract = extract })
        check_buckets(r)
        assert.equal(2000, r.served)
        assert.is_true(math.abs(r.counts.v1 - 1000) <= 100, "v1 " .. tostring(r.counts.v1))
        assert.is_true(sessions(gw, "fe_chunked") - s0 <= 12) -- kept alive
      end
      -- the body the Lua function sees is de-chunked
      local r = assert(probe.run { url = url("fe_chunked"), n = 20, extract = function(status, body, headers)
        assert(headers["transfer-encoding"] == "chunked", "not chunked")
        return body:match('^{"service":"microservice%-1","version":"(v%d)"')
      end })
      assert.equal(20, r.served)
    end)

    it("opens a new connection when every response says Connection: close", function()
      for _, name in ipairs { "fe_close", "fe_httpclose" } do
        local s0 = sessions(gw, name)
        local r = assert(probe.run { url = url(name), n = 300, concurrency = 10 })
        check_buckets(r)
        assert.equal(300, r.served, name)
        assert.equal(0, r.error_total, name)
        assert.equal(300, sessions(gw, name) - s0, name)
      end
    end)

    it("reconnects mid-stream when some responses say Connection: close", function()
      local s0 = sessions(gw, "fe_someclose")
      local r = assert(probe.run { url = url("fe_someclose"), n = 4000, concurrency = 20 })
      check_buckets(r)
      assert.equal(4000, r.served)
      assert.equal(0, r.error_total)
      -- about one response in four closes its connection: binomial(4000, 1/4), sd ~ 27
      local opened = sessions(gw, "fe_someclose") - s0
      assert.is_true(opened > 800 and opened < 1200 + 20, "sessions " .. opened)
    end)

    it("resends, once and silently, on a kept-alive connection the server closed when idle", function()
      local s0 = sessions(gw, "fe_idle")
      -- the Lua function holds the loop longer than HAProxy keeps an idle connection
      local r = assert(probe.run { url = url("fe_idle"), n = 12, concurrency = 3, timeout = 5,
        extract = function(_, _, headers)
          time.sleep(0.1)
          return headers["x-served-by"]
        end })
      check_buckets(r)
      assert.equal(12, r.served)
      assert.equal(0, r.error_total)
      -- 3 connections would serve 12 requests if none had been closed
      assert.is_true(sessions(gw, "fe_idle") - s0 >= 6, "sessions " .. (sessions(gw, "fe_idle") - s0))
    end)

    it("sends HEAD and other methods", function()
      local r = assert(probe.run { url = gw.url .. "/api/version", n = 200, method = "HEAD",
        extract = "header:x-served-by" })
      check_buckets(r)
      assert.equal(200, r.served)
      r = assert(probe.run { url = gw.url .. "/api/version", n = 50, method = "HEAD",
        extract = function(status, body) return status == 200 and body == "" and "empty" or nil end })
      assert.equal(50, r.counts.empty)
      -- the demo service answers only GET and HEAD on /api/version
      r = assert(probe.run { url = gw.url .. "/api/version", n = 50, method = "DELETE" })
      check_buckets(r)
      assert.equal(50, r.errors.http_4xx)
      assert.equal(50, r.status[405])
    end)
  end)

  describe("HTTP/1.x edge cases (a server answering exact bytes)", function()
    local raw

    setup(function() raw = raw_server() end)
    teardown(function() fixture.stop(raw) end)

    local function stats(key)
      local resp = assert(http.get(raw.url .. "/stats/" .. key, { timeout = 5 }))
      return assert(json.decode(resp.body))
    end

    it("serves chunked, HTTP/1.0, close-delimited, interim, folded and over-long responses", function()
      local cases = {
        { "chunked", "ck" }, { "chunked-lf", "ck-lf" }, { "http10", "h10" },
        { "http10-keepalive", "h10ka" }, { "until-close", "uc" }, { "interim", "int" }, { "excess", "exc" },
        { "fold", "fo" }, -- an obs-folded header line: a user agent accepts it
      }
      for _, c in ipairs(cases) do
        local mode, key = c[1], c[2]
        for _, extract in ipairs { "json:version", "header:x-version" } do
          local r = assert(probe.run { url = raw.url .. "/" .. mode .. "/" .. key, n = 40, concurrency = 4,
            threads = 1, extract = extract })
          check_buckets(r)
          assert.equal(40, r.counts[key], mode .. " " .. extract)
          assert.equal(0, r.error_total, mode .. " " .. extract)
          assert.equal(40, r.status[200])
        end
      end
      -- kept alive where the server allows it, a new connection where it does not
      assert.equal(2 * 4, stats("ck").connections)
      assert.equal(2 * 4, stats("h10ka").connections)
      assert.equal(2 * 40, stats("h10").connections)
      assert.equal(2 * 40, stats("uc").connections)
      assert.equal(2 * 40, stats("exc").connections) -- extra bytes: not reused
      -- HEAD: the head of a response that has a length or is chunked, no body
      for _, mode in ipairs { "json", "chunked" } do
        local r = assert(probe.run { url = raw.url .. "/" .. mode .. "/head-" .. mode, n = 20, concurrency = 2,
          method = "HEAD", extract = "header:x-version" })
        assert.equal(20, r.served)
        -- kept alive: at most one connection per slot (the second slot may
        -- find every request taken before its connection sends one)
        local conns = stats("head-" .. mode).connections
        assert.is_true(conns >= 1 and conns <= 2, "connections: " .. conns)
      end
    end)

    it("counts a body over the 1 MiB cap as parse, with its status", function()
      for _, mode in ipairs { "big", "big-chunked" } do
        local r = assert(probe.run { url = raw.url .. "/" .. mode .. "/b", n = 6, concurrency = 2 })
        check_buckets(r)
        assert.equal(6, r.errors.parse, mode)
        assert.equal(6, r.status[200], mode)
        -- a header extract does not keep the body: no cap
        r = assert(probe.run { url = raw.url .. "/" .. mode .. "/b", n = 6, concurrency = 2,
          extract = "header:x-version" })
        assert.equal(6, r.counts.b, mode)
      end
    end)

    it("resends on a new connection when a kept-alive one was closed, not counting it", function()
      local r = assert(probe.run { url = raw.url .. "/one-shot/os", n = 30, concurrency = 3 })
      check_buckets(r)
      assert.equal(30, r.counts.os)
      assert.equal(0, r.error_total)
      assert.equal(30, r.sent)
      assert.equal(30, stats("os").connections) -- every reuse found its connection closed
    end)

    it("resends only once, and never on a fresh connection", function()
      -- the first request is answered; every later connection is closed unanswered
      local r = assert(probe.run { url = raw.url .. "/then-die/td", n = 3, concurrency = 1, record = true })
      check_buckets(r)
      assert.same({ "td", "other", "other" }, { r.samples[1][1], r.samples[2][1], r.samples[3][1] })
      -- request 2: its kept-alive connection closed, resent once on a new one;
      -- request 3: a new connection, closed: not resent
      assert.equal(3, stats("td").connections)
      assert.equal(3, stats("td").requests)
    end)

    it("counts a reset, a short body and malformed responses as other", function()
      for _, mode in ipairs { "reset", "partial", "garbage" } do
        local r = assert(probe.run { url = raw.url .. "/" .. mode .. "/x", n = 10, concurrency = 2 })
        check_buckets(r)
        assert.equal(10, r.errors.other, mode)
        assert.same({}, r.status, mode) -- no complete response: no status
      end
    end)
  end)

  it("raises on misuse and refuses non-HTTP URLs", function()
    local u = gw.url .. "/api/version"
    assert.has_error(function() probe.run() end)
    assert.has_error(function() probe.run { url = u } end, "probe.run needs n or duration")
    assert.has_error(function() probe.run { n = 1 } end)
    assert.has_error(function() probe.run { url = u, n = 0 } end)
    assert.has_error(function() probe.run { url = u, n = 1.5 } end)
    assert.has_error(function() probe.run { url = u, n = 1, concurrency = 0 } end)
    assert.has_error(function() probe.run { url = u, n = 1, timeout = 0 } end)
    assert.has_error(function() probe.run { url = u, duration = 0 } end)
    assert.has_error(function() probe.run { url = u, n = 1, deadline = -1 } end)
    assert.has_error(function() probe.run { url = u, n = 1, threads = 99 } end)
    assert.has_error(function() probe.run { url = u, n = 1, extract = "xml:version" } end)
    assert.has_error(function() probe.run { url = u, n = 1, extract = "json:" } end)
    assert.has_error(function() probe.run { url = u, n = 1, extract = 42 } end)
    assert.has_error(function() probe.run { url = u, n = 1, on_progress = "x" } end)
    assert.has_error(function() probe.run { url = u, n = 1, headers = { ["x-version"] = "v1\r\nX: y" } } end)
    local r, msg, code = probe.run { url = "ftp://127.0.0.1/x", n = 1 }
    assert.is_nil(r)
    assert.equal("invalid", code)
    assert.matches("ftp://127.0.0.1/x", msg, 1, true)
  end)

  it("stops on ^C: cleans up and raises 'interrupted'", function()
    local bin = fixture.bin
    local dir = fixture.tmpdir()
    local pid
    finally(function()
      fixture.stop_all(pid)
      fixture.remove(dir)
    end)
    local ready = dir .. "/ready"
    local script = ([[
      local probe = require "rollout.probe"
      local started = false
      probe.run { url = %q, duration = 60, concurrency = 20, on_progress = function()
        if not started then
          started = true
          local f = assert(io.open(%q, "w")); f:write("1"); f:close()
        end
      end }
      print("finished without interruption")
    ]]):format(gw.url .. "/api/version", ready)
    pid = assert(proc.spawn { argv = { bin, "-e", script }, log = dir .. "/out.log" })
    fixture.wait(function() return fs.exists(ready) end, 10, "the probe to start")
    local t0 = time.now()
    assert(proc.kill(pid, "INT"))
    fixture.wait(function() return not proc.alive(pid) end, 3, "the interrupted probe to exit")
    assert.is_true(time.now() - t0 < fixture.timeout(2))
    local out = fs.read(dir .. "/out.log") or ""
    assert.matches("interrupted", out)
    assert.not_matches("finished without interruption", out)
  end)
end)
