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
