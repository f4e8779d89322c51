-- rollout.traffic: TRAFFIC.yaml parsing and validation (the end-to-end
-- refusals are in tests/e2e/local_target_spec.lua; these are the cases
-- found by the fuzzer, tests/fuzz/traffic.lua).
local traffic = require "rollout.traffic"

local refusal = require("tests.helpers.check").refusal

describe("rollout.traffic.parse", function()
  it("accepts the file in the original format, and an empty one", function()
    assert.same({ { name = "v1", weight = 50 }, { name = "v2", weight = 50 } },
      traffic.parse("versions:\n- name: v1\n  weight: 50\n- name: v2\n  weight: 50\n", "TRAFFIC.yaml"))
    assert.same({}, traffic.parse("", "TRAFFIC.yaml"))
    assert.same({}, traffic.parse("# nothing yet\n", "TRAFFIC.yaml"))
  end)

  it("locates a document that is not a mapping (fuzz finding)", function()
    assert.equal("TRAFFIC.yaml:1:1: must be a mapping, not the integer 50", refusal(traffic.parse, "50\n", "TRAFFIC.yaml"))
    assert.equal("TRAFFIC.yaml:2:1: must be a mapping, not a list",
      refusal(traffic.parse, "# weights\n- name: v1\n  weight: 50\n", "TRAFFIC.yaml"))
    assert.equal("TRAFFIC.yaml:1:5: must be a mapping, not the string \"v1\"",
      refusal(traffic.parse, "--- v1\n", "TRAFFIC.yaml"))
  end)

  it("refuses an empty item instead of dropping the versions after it (fuzz finding)", function()
    -- was accepted as { [1] = v1, [3] = v2 }: ipairs stopped at the hole, v2 silently lost its weight
    assert.equal("TRAFFIC.yaml:4:2: versions[2]: must be a mapping, not null (an empty item)",
      refusal(traffic.parse, "versions:\n- name: v1\n  weight: 50\n-\n- name: v2\n  weight: 50\n", "TRAFFIC.yaml"))
    assert.equal("TRAFFIC.yaml:1:12: versions[1]: must be a mapping, not null (an empty item)",
      refusal(traffic.parse, "versions: [~, {name: v1, weight: 1}]\n", "TRAFFIC.yaml"))
  end)

  it("names a weight too large for an integer instead of calling it nil", function()
    assert.equal("TRAFFIC.yaml:3:11: versions[1].weight: must be an integer, not the number 1e+300",
      refusal(traffic.parse, "versions:\n- name: v1\n  weight: 1e300\n", "TRAFFIC.yaml"))
    assert.equal("TRAFFIC.yaml:3:11: versions[1].weight: must be an integer, not infinity",
      refusal(traffic.parse, "versions:\n- name: v1\n  weight: .inf\n", "TRAFFIC.yaml"))
    assert.equal("weights: weight of v1 must be an integer >= 0 (got 1e+300)", refusal(traffic.normalize, { v1 = 1e300 }))
  end)

  it("still locates fields in the file", function()
    assert.equal("TRAFFIC.yaml:3:11: versions[1].weight: must be >= 0 (got -5)",
      refusal(traffic.parse, "versions:\n- name: v1\n  weight: -5\n", "TRAFFIC.yaml"))
  end)
end)
