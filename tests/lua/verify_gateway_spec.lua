-- verify.split on a real probe of real demo services behind a real HAProxy:
-- 10,000 requests at 50/50 pass; the same gateway set to 60/40 while the
-- check expects 50/50 fails.
local probe = require "rollout.probe"
local verify = require "rollout.verify"
local fixture = require "tests.helpers.fixture"

describe("verify.split against a real gateway", function()
  local v1, v2, gw

  setup(function()
    local ok, err = pcall(function()
      v1 = fixture.demo { version = "v1" }
      v2 = fixture.demo { version = "v2" }
      gw = fixture.haproxy {
        backends = { { name = "v1", port = v1.port, weight = 50 }, { name = "v2", port = v2.port, weight = 50 } },
      }
    end)
    if not ok then
      fixture.stop_all(gw, v1, v2)
      error(err, 0)
    end
  end)

  teardown(function() fixture.stop_all(gw, v1, v2) end)

  local function check(weights)
    local r = assert(probe.run { url = gw.url .. "/api/version", n = 10000, concurrency = 32 })
    return verify.split(r, weights), r
  end

  it("passes 10,000 requests at 50/50", function()
    local v, r = check { v1 = 50, v2 = 50 }
    assert.is_true(v.ok, v.reason)
    assert.equal(10000, v.n)
    assert.equal(0, r.error_total)
  end)

  it("fails when the gateway is at 60/40 but the check expects 50/50", function()
    assert.equal("", fixture.haproxy_cmd(gw, "set server be_default/v1 weight 60;set server be_default/v2 weight 40"):gsub("%s", ""))
    local v, r = check { v1 = 50, v2 = 50 }
    assert.is_false(v.ok)
    assert.equal("split", v.failure)
    assert.is_true(v.p_value < 1e-10, tostring(v.p_value))
    assert.near(0.6, r.counts.v1 / r.served, 0.03)
    -- and the same traffic passes when judged against 60/40
    assert.is_true(verify.split(r, { v1 = 60, v2 = 40 }).ok)
  end)
end)
