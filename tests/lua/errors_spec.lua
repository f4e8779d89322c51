-- The error vocabulary (include/rollout/host.h, stdlib/rollout/errors.lua):
-- the C bindings and the stdlib share one list of codes, and a binding's
-- failure is nil, message, code, raw with code from that list.
local errors = require "rollout.errors"
local sys = require "rollout.sys"
local fs = require "rollout.fs"
local proc = require "rollout.proc"

describe("error codes", function()
  it("are the same list in C (sys.error_codes) and in rollout.errors.codes", function()
    local c = {}
    for _, name in ipairs(sys.error_codes) do
      assert.is_nil(c[name], name .. " twice")
      c[name] = true
      assert.is_string(errors.codes[name], name .. " is a C code missing from rollout.errors.codes")
    end
    for name in pairs(errors.codes) do
      assert.is_true(c[name], name .. " is in rollout.errors.codes but not in C")
    end
  end)

  it("come with the upstream reason as raw", function()
    local r, msg, code, raw = fs.read("/nonexistent/rollout-file")
    assert.is_nil(r)
    assert.equal("/nonexistent/rollout-file: No such file or directory", msg)
    assert.equal("not_found", code)
    assert.equal("ENOENT", raw)
    r, msg, code, raw = proc.run { argv = { "sleep", "5" }, timeout = 0.1 }
    assert.is_nil(r)
    assert.equal("timeout", code)
    assert.equal("timeout", raw) -- rollout's own deadline: raw repeats the code
  end)
end)

describe("the interrupt sentinel (^C)", function()
  local fixture = require "tests.helpers.fixture"
  local BIN = fixture.bin

  it("is one value, recognised by identity, never by the word in a message", function()
    assert.is_true(errors.is_interrupt(sys.INTERRUPTED))
    assert.equal(sys.INTERRUPTED, errors.INTERRUPTED)
    for _, e in ipairs { "interrupted", "x.lua:3: interrupted", "the connection was interrupted by the peer",
                         { message = "interrupted" }, errors.failed("interrupted"), false } do
      assert.is_false(errors.is_interrupt(e), tostring(e))
    end
    -- errors.pcall lets only the sentinel through
    local ok, e = errors.pcall(error, "the download was interrupted", 0)
    assert.is_false(ok)
    assert.equal("the download was interrupted", e)
    local ok2, e2 = pcall(errors.pcall, error, sys.INTERRUPTED)
    assert.is_false(ok2)
    assert.equal(sys.INTERRUPTED, e2)
    assert.equal(sys.INTERRUPTED, errors.traceback(sys.INTERRUPTED))
  end)

  it("prints, concatenates and reads as \"interrupted\", and is read-only", function()
    local e = sys.INTERRUPTED
    assert.equal("interrupted", tostring(e))
    assert.equal("^C: interrupted", "^C: " .. e)
    assert.equal("interrupted (^C)", e .. " (^C)")
    assert.equal("interrupted", string.format("%s", e))
    assert.equal("interrupted", errors.message(e))
    assert.equal("interrupted", e.code)
    assert.has_error(function() e.message = "changed" end)
    assert.equal("interrupted", e.message)
  end)

  it("is what a ^C raises in a blocking call, and what the host reports", function()
    local log = fs.join(os.getenv("TMPDIR") or "/tmp", "rollout-sentinel-" .. proc.pid() .. ".log")
    finally(function() fs.remove(log) end)
    local pid = assert(proc.spawn { argv = { BIN, "-e", [[
      local errors, time = require "rollout.errors", require "rollout.time"
      local ok, e = pcall(function() io.stderr:write("ready\n") time.sleep(30) end)
      io.stderr:write("caught ", tostring(e), " ", tostring(errors.is_interrupt(e)), "\n")
      error(e, 0)]] }, log = log })
    finally(function() if proc.alive(pid) then proc.kill(pid, "KILL") end end)
    fixture.wait(function() return (fs.read(log) or ""):find("ready", 1, true) end, 10, "ready")
    assert(proc.kill(pid, "INT"))
    assert.is_true(fixture.poll(function() return not proc.alive(pid) end, 10))
    assert.equal("ready\ncaught interrupted true\nrollout: interrupted\n", fs.read(log))
  end)
end)
