-- rollout.weights through the Lua binding.
local weights = require "rollout.weights"

describe("rollout.weights", function()
  it("turns relative weights into shares", function()
    local s = weights.shares { v1 = 50, v2 = 50, v3 = 50 }
    assert.near(1 / 3, s.v1, 1e-12)
    assert.near(1 / 3, s.v3, 1e-12)
    s = weights.shares { v1 = 1, v2 = 0, v3 = 3 }
    assert.equal(0.25, s.v1)
    assert.equal(0, s.v2)
    assert.equal(0.75, s.v3)
  end)

  it("accepts the TRAFFIC.yaml list form", function()
    local s = weights.shares { { name = "v1", weight = 50 }, { name = "v2", weight = 150 } }
    assert.equal(0.25, s.v1)
    assert.equal(0.75, s.v2)
  end)

  it("gives integer percentages that sum to exactly 100", function()
    local p = weights.percentages { v1 = 50, v2 = 50, v3 = 50 }
    assert.same({ v1 = 34, v2 = 33, v3 = 33 }, setmetatable(p, nil))
    assert.equal("v1=34 v2=33 v3=33", tostring(weights.percentages { v3 = 50, v2 = 50, v1 = 50 }))
    for w = 1, 60 do
      local q = weights.percentages { a = w, b = 7, c = 13, d = 1 }
      assert.equal(100, q.a + q.b + q.c + q.d)
    end
  end)

  it("accepts integral floats (YAML may give 50.0)", function()
    assert.is_true(weights.validate { v1 = 50.0, v2 = 0 })
  end)

  local bad = {
    { { v1 = 50, v2 = -1 }, "weight of v2 must be >= 0" },
    { { v1 = 50, v2 = 1.5 }, "weight of v2 must be an integer %(got 1.5%)" },
    { { v1 = "50" }, "weight of v1 must be an integer %(got the string \"50\"%)" },
    { { v1 = 0, v2 = 0 }, "all weights are 0" },
    { { ["v1;rm -rf"] = 1 }, "\"v1;rm %-rf\" is not a DNS%-1123 label" },
    { { ["../v1"] = 1 }, "\"%.%./v1\" is not a DNS%-1123 label" },
    { { { name = "v1", weight = 1 }, { name = "v1", weight = 2 } }, "v1 is listed twice" },
    { { { name = "v1" } }, "version v1 has no weight" },
    { {}, "no versions given" },
    -- beyond long long, inf, NaN: refused without an undefined conversion
    -- (make asan runs with -fsanitize=float-cast-overflow)
    { { v1 = 1e300 }, "weight of v1 must be an integer %(got 1e%+300%)" },
    { { v1 = 2^63 }, "weight of v1 must be an integer %(got 9%.2233720368548e%+18%)" },
    { { v1 = math.huge }, "weight of v1 must be an integer %(got inf%)" },
    { { v1 = 0 / 0 }, "weight of v1 must be an integer %(got %-?nan%)" },
  }
  for _, case in ipairs(bad) do
    it("refuses " .. case[2]:gsub("%%", ""), function()
      local ok, msg, code = weights.validate(case[1])
      assert.is_nil(ok)
      assert.matches(case[2], msg)
      assert.equal("invalid", code)
      local ok2, err = pcall(weights.percentages, case[1])
      assert.is_false(ok2)
      assert.matches(case[2], err)
    end)
  end

  it("checks DNS-1123 names", function()
    assert.is_true(weights.is_name "v1")
    assert.is_true(weights.is_name "canary-2")
    assert.is_false(weights.is_name "V1")
    assert.is_false(weights.is_name "v1\0x")
    assert.is_false(weights.is_name(42))
  end)
end)
