-- rollout.sock: plain sockets without libcurl (HAProxy's admin socket, free
-- ports); rollout.http keeps unix_exchange and free_port as aliases.
local sock = require "rollout.sock"
local proc = require "rollout.proc"
local fs = require "rollout.fs"
local fixture = require "tests.helpers.fixture"

local BIN = fixture.bin

local tmp
setup(function() tmp = assert(fs.mkdtemp("/tmp/rollout-sock-")) end)
teardown(function() if tmp then fs.remove_tree(tmp) end end)

-- A one-shot unix stream server: reads until the client half-closes, then
-- answers "got: <what it read>" and closes.
local function server(path)
  return (fixture.start_server { log = path .. ".log", what = "a unix socket server",
    ready = function() return fs.exists(path) end, argv = { "python3", "-c", [[
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(1)
c, _ = s.accept()
data = b""
while True:
    b = c.recv(4096)
    if not b: break
    data += b
c.sendall(b"got: " + data)
c.close()
]], path } })
end

describe("rollout.sock", function()
  it("exchanges text over a unix socket until the peer closes", function()
    local path = fs.join(tmp, "s1.sock")
    local pid = server(path)
    finally(function() if proc.alive(pid) then proc.kill(pid, "KILL") end end)
    assert.equal("got: show info\n", assert(sock.exchange(path, "show info\n", 5)))
  end)

  it("fails with nil, message, code, raw", function()
    local r, msg, code, raw = sock.exchange(fs.join(tmp, "nothing.sock"), "x")
    assert.is_nil(r)
    assert.equal("connect", code)
    assert.equal("ENOENT", raw)
    assert.matches("nothing.sock: connect: No such file or directory", msg)
    r, msg, code, raw = sock.exchange(fs.join(tmp, ("x"):rep(200)), "x")
    assert.is_nil(r)
    assert.equal("invalid", code)
    assert.equal("invalid", raw)
    assert.has_error(function() sock.exchange(fs.join(tmp, "s.sock"), "x", 0) end)
  end)

  it("gives free ports, and is what rollout.http's aliases call", function()
    local p = assert(sock.free_port())
    assert.is_true(p > 0 and p < 65536)
    assert.has_error(function() sock.free_port("not an address") end)
    local http = require "rollout.http"
    assert.equal(sock.exchange, http.unix_exchange)
    assert.equal(sock.free_port, http.free_port)
  end)

  it("loads no libcurl, nor does the HAProxy gateway that uses it", function()
    local r = assert(proc.run { argv = { BIN, "-e", [[
      require "rollout.sock"
      require "rollout.target.local.haproxy"
      local maps = io.open("/proc/self/maps"):read("a")
      print(maps:find("rollout-net.so", 1, true) and "net" or "-", maps:find("libcurl", 1, true) and "curl" or "-")
    ]] }, timeout = 30 })
    assert.equal(0, r.status, r.stderr)
    assert.equal("-\t-\n", r.stdout)
  end)
end)
