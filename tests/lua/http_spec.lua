-- rollout.http against the demo service and HAProxy on 127.0.0.1.
local http = require "rollout.http"
local json = require "rollout.json"
local time = require "rollout.time"
local proc = require "rollout.proc"
local fs = require "rollout.fs"
local fixture = require "tests.helpers.fixture"

describe("rollout.http", function()
  local demo

  setup(function()
    demo = fixture.demo { version = "v1" }
  end)

  teardown(function()
    fixture.stop(demo)
  end)

  it("GETs a JSON answer with lower-cased headers", function()
    local r, err = http.get(demo.url .. "/api/version")
    assert.is_nil(err)
    assert.equal(200, r.status)
    assert.equal("application/json", r.headers["content-type"])
    assert.equal("v1", r.headers["x-served-by"])
    assert.is_nil(r.headers["X-Served-By"])
    assert.equal("v1", json.decode(r.body).version)
    assert.is_true(r.duration > 0 and r.duration < 5)
  end)

  it("POSTs a body and uses the method and query", function()
    local r = assert(http.request { url = demo.url .. "/admin/faults?latency_ms=7", method = "POST",
      body = "ignored by the service" })
    assert.equal(200, r.status)
    assert.equal(7, json.decode(r.body).latency_ms)
    -- a body without a method is a POST
    r = assert(http.request { url = demo.url .. "/admin/faults?latency_ms=0", body = "" })
    assert.equal(200, r.status)
    assert.equal(0, json.decode(r.body).latency_ms)
    r = assert(http.get(demo.url .. "/admin/faults"))
    assert.equal(0, json.decode(r.body).latency_ms)
    -- a method the path does not allow: a response, not an error
    r = assert(http.request { url = demo.url .. "/api/version", method = "DELETE" })
    assert.equal(405, r.status)
    assert.matches("GET", r.headers["allow"])
  end)

  it("returns 404 and 500 as responses", function()
    local r, err = http.get(demo.url .. "/no/such/path")
    assert.is_nil(err)
    assert.equal(404, r.status)
    assert.equal("not found", json.decode(r.body).error)
    local failing = fixture.demo { version = "v9", args = { "--error-rate", "1" } }
    finally(function() fixture.stop(failing) end)
    r, err = http.get(failing.url .. "/api/version")
    assert.is_nil(err)
    assert.equal(500, r.status)
    assert.equal("v9", r.headers["x-served-by"])
  end)

  it("fails with 'connect' on a closed port, naming the URL but no secrets", function()
    local port = fixture.free_port()
    local t0 = time.now()
    local r, msg, code = http.request {
      url = "http://alice:s3cr3t@127.0.0.1:" .. port .. "/api/version?token=t0ps3cret#frag",
      headers = { Authorization = "Bearer hunter2" },
    }
    assert.is_nil(r)
    assert.equal("connect", code)
    assert.matches("GET http://127.0.0.1:" .. port .. "/api/version", msg, 1, true)
    assert.not_matches("s3cr3t", msg)
    assert.not_matches("alice", msg)
    assert.not_matches("t0ps3cret", msg)
    assert.not_matches("hunter2", msg)
    assert.is_true(time.now() - t0 < fixture.timeout(2))
  end)

  it("times out on a server that accepts but does not answer", function()
    local slow = fixture.demo { version = "v2", args = { "--latency-ms", "5000" } }
    finally(function() fixture.stop(slow) end)
    local t0 = time.now()
    local r, msg, code = http.get(slow.url .. "/api/version", { timeout = 0.5 })
    local took = time.now() - t0
    assert.is_nil(r)
    assert.equal("timeout", code)
    assert.matches(slow.url, msg, 1, true)
    assert.is_true(took >= 0.45 and took < fixture.timeout(2), "took " .. took)
    -- connect_timeout alone does not cut a slow answer short
    r = assert(http.get(slow.url .. "/healthz", { timeout = 3, connect_timeout = 0.5 }))
    assert.equal(200, r.status)
  end)

  it("raises 'interrupted' on ^C during a slow request", function()
    local bin = fixture.bin
    local slow, dir, pid
    finally(function()
      fixture.stop_all(pid, slow)
      fixture.remove(dir)
    end)
    -- raw_http.py's /hang/K never answers; its /stats/K says when the
    -- request has arrived (the handshake: the request is in flight)
    slow = fixture.raw_http()
    dir = fixture.tmpdir()
    local script = ([[
      local r, msg = require("rollout.http").get(%q, { timeout = 60 })
      print("finished", r, msg)
    ]]):format(slow.url .. "/hang/int")
    pid = assert(proc.spawn { argv = { bin, "-e", script }, log = dir .. "/out.log" })
    fixture.wait(function()
      local r = http.get(slow.url .. "/stats/int", { timeout = 2 })
      return r and json.decode(r.body).requests == 1
    end, 10, "the request to arrive")
    local t0 = time.now()
    assert(proc.kill(pid, "INT"))
    fixture.wait(function() return not proc.alive(pid) end, 3, "the interrupted request to end")
    assert.is_true(time.now() - t0 < fixture.timeout(1))
    local out = fs.read(dir .. "/out.log") or ""
    assert.matches("interrupted", out)
    assert.not_matches("finished", out)
  end)

  it("verifies TLS by default: https to a plain HTTP port fails", function()
    local r, msg, code = http.get("https://127.0.0.1:" .. demo.port .. "/api/version", { timeout = 3 })
    assert.is_nil(r)
    assert.is_truthy(code == "tls" or code == "connect", "code " .. tostring(code))
    assert.is_string(msg)
  end)

  it("refuses a body over max_body", function()
    local r, msg, code = http.get(demo.url .. "/api/version", { max_body = 10 })
    assert.is_nil(r)
    assert.equal("too_large", code)
    assert.matches("10 bytes", msg)
    r = assert(http.get(demo.url .. "/api/version", { max_body = 4096 }))
    assert.equal(200, r.status)
    assert.is_true(#r.body <= 4096)
  end)

  it("refuses what curl cannot use as 'invalid'", function()
    local r, _, code = http.get("ftp://127.0.0.1/x")
    assert.is_nil(r)
    assert.equal("invalid", code)
    r, _, code = http.get("http://[not a url")
    assert.is_nil(r)
    assert.equal("invalid", code)
  end)

  it("raises on misuse, without echoing header values", function()
    assert.has_error(function() http.request() end)
    assert.has_error(function() http.request { } end, "field 'url' must be a string (got nil)")
    assert.has_error(function() http.request { url = demo.url, timeout = -1 } end)
    assert.has_error(function() http.request { url = demo.url, timeout = "soon" } end)
    assert.has_error(function() http.request { url = demo.url, method = "GET /x" } end)
    assert.has_error(function() http.request { url = demo.url, body = {} } end)
    assert.has_error(function() http.request { url = demo.url, headers = "x" } end)
    assert.has_error(function() http.request { url = demo.url, headers = { ["bad name"] = "v" } } end)
    local ok, err = pcall(http.request, { url = demo.url, headers = { Authorization = "secret\r\nX-Evil: 1" } })
    assert.is_false(ok)
    assert.matches("CR, LF or NUL", err)
    assert.not_matches("secret", err)
    assert.has_error(function() http.get({}) end)
    assert.has_error(function() http.get(demo.url, "opts") end)
  end)

  it("sends request headers (HAProxy routes on x-version)", function()
    local v2 = fixture.demo { version = "v2" }
    local h
    finally(function() fixture.stop_all(h, v2) end)
    h = fixture.haproxy { backends = { { name = "v1", port = demo.port, weight = 100 },
      { name = "v2", port = v2.port, weight = 0 } } }
    for _ = 1, 5 do
      local r = assert(http.get(h.url .. "/api/version", { headers = { ["X-Version"] = "v2" } }))
      assert.equal("v2", r.headers["x-served-by"])
      r = assert(http.get(h.url .. "/api/version"))
      assert.equal("v1", r.headers["x-served-by"])
    end
  end)

  it("talks HTTP over a unix socket, and raw text to HAProxy's admin socket", function()
    local dir = fixture.tmpdir()
    local h
    finally(function()
      fixture.stop(h)
      fixture.remove(dir)
    end)
    local sock = dir .. "/http.sock"
    h = fixture.haproxy { backends = { { name = "v1", port = demo.port, weight = 1 } },
      extra = "frontend fe_unix\n    bind unix@" .. sock .. "\n    default_backend be_default" }
    local r = assert(http.get("http://localhost/api/version", { unix_socket = sock }))
    assert.equal(200, r.status)
    assert.equal("v1", r.headers["x-served-by"])

    local info = assert(http.unix_exchange(h.admin, "show info\n"))
    assert.matches("Name: HAProxy", info)
    local reply = fixture.haproxy_cmd(h, "set server be_default/v1 weight 7")
    assert.equal("", reply:gsub("%s", ""))
    assert.matches("^7 ", fixture.haproxy_cmd(h, "get weight be_default/v1"))

    local none, msg, code = http.unix_exchange(dir .. "/nothing.sock", "show info\n")
    assert.is_nil(none)
    assert.equal("connect", code)
    assert.matches("nothing.sock", msg)
    none, msg, code = http.unix_exchange(dir .. "/" .. ("x"):rep(200), "show info\n")
    assert.is_nil(none)
    assert.equal("invalid", code)
    assert.has_error(function() http.unix_exchange(h.admin, "show info\n", 0) end)
  end)

  it("gives free loopback ports", function()
    local p = http.free_port()
    assert.equal("integer", math.type(p))
    assert.is_true(p > 0 and p < 65536)
    -- nothing listens there
    local r, _, code = http.get("http://127.0.0.1:" .. p .. "/", { timeout = 2 })
    assert.is_nil(r)
    assert.equal("connect", code)
    assert.has_error(function() http.free_port("not an address") end)
  end)
end)
