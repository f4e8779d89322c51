-- The seven-step workflow on the local target, as a user runs it.
local fs = require "rollout.fs"
local json = require "rollout.json"
local local_env = require "tests.helpers.local_env"

local SVC = local_env.service

local steps = {
  "scripts/steps/step0_baseline.lua",
  "scripts/steps/step1_verify_baseline.lua",
  "scripts/steps/step2_deploy_v3.lua",
  "scripts/steps/step3_add_v3.lua",
  "scripts/steps/step4_retire_v2.lua",
  "scripts/steps/step5_retire_v1.lua",
  "scripts/steps/step6_cleanup.lua",
}

describe("run_all", function()
  local env
  before_each(function() env = local_env.new() end)
  after_each(function() env:cleanup() end)

  it("passes all seven steps, twice in a row, with plain piped output", function()
    for round = 1, 2 do
      local r = env:rollout { "scripts/run_all.lua", SVC }
      assert.equal(0, r.status, r.stdout .. r.stderr)
      assert.matches("Total steps: 7 %(Step 0%-6%)", r.stdout)
      assert.matches("\nPassed: 7\n", r.stdout)
      assert.matches("\nFailed: 0\n", r.stdout)
      assert.matches("✓ All steps passed!", r.stdout)
      for n = 0, 6 do assert.matches("✓ Step " .. n .. " passed", r.stdout) end
      assert.matches("v1: 50 → 33.3%%", r.stdout)
      -- piped: no escape codes at all (no colour, no progress bar)
      assert.is_nil(r.stdout:find("\27", 1, true), "escape code in round " .. round)
      -- nothing left after step 6
      assert.is_false(fs.exists(fs.join(env.state, "services", SVC, "state.json")))
    end
  end)

  it("prints no escape codes with NO_COLOR even when colour could be used", function()
    local r = env:rollout({ "-e", [[
      local ui = require "rollout.ui"
      ui.force_tty = true
      ui.ok("x") ui.traffic({ { name = "v1", weight = 1, share = 1 } })
      io.write(ui.color_enabled() and "colour" or "plain", "\n")]] }, { env = { NO_COLOR = "1" } })
    assert.equal(0, r.status, r.stderr)
    assert.is_nil(r.stdout:find("\27", 1, true))
    assert.matches("plain\n$", r.stdout)
    -- and without NO_COLOR, on a terminal, there is colour (so the check above can fail)
    local c = env:rollout({ "-e", [[
      local ui = require "rollout.ui"
      ui.force_tty = true
      ui.ok("x")]] }, { env = { NO_COLOR = false, TERM = "xterm" } })
    assert.truthy(c.stdout:find("\27[32m", 1, true))
  end)

  it("writes a JSON report with weights, counts, verdicts and durations per step", function()
    local report = fs.join(env.dir, "report.json")
    local r = env:rollout { "scripts/run_all.lua", SVC, "--json" , "--json-file", report }
    assert.equal(0, r.status, r.stderr)
    local doc = json.decode(r.stdout)
    assert.same(doc, json.decode(fs.read(report)))
    assert.is_true(doc.ok)
    assert.equal(7, doc.passed)
    assert.equal(7, #doc.steps)
    local s3 = doc.steps[4]
    assert.equal(3, s3.step)
    assert.same({ v1 = 50, v2 = 50, v3 = 50 }, s3.weights)
    assert.is_true(s3.duration > 0)
    local split = s3.checks[1]
    assert.equal("split", split.check)
    assert.is_true(split.ok)
    assert.is_true(split.counts.v1 > 0 and split.counts.v3 > 0)
    assert.is_true(split.p_value > 0.001)
    assert.is_true(doc.requests > 0)
    -- human output went to stderr
    assert.matches("All steps passed", r.stderr)
  end)

  it("fails the step and run_all when a version outside the weights serves traffic", function()
    -- a broken deployment: every process claims to be v3
    local cfg = fs.join(env.deployments, SVC, "service.yaml")
    local text = fs.read(cfg):gsub('"%-%-version", "{version}"', '"--version", "v3"')
    assert(fs.write_atomic(cfg, text))
    local r = env:rollout { "scripts/run_all.lua", SVC }
    assert.equal(1, r.status)
    -- caught as soon as the first weights are confirmed
    assert.matches("✗ Step 0 failed: the new weights are not in effect at the gateway: v3 %(not in the weights%) received %d+", r.stdout)
    assert.matches("\nPassed: 0\n", r.stdout)
    assert.matches("\nFailed: 1\n", r.stdout)
    assert.matches("Not run: 6", r.stdout)
    assert.is_nil(r.stdout:find("All steps passed", 1, true))
  end)

  it("--keep-going runs every step and reports each failure", function()
    local cfg = fs.join(env.deployments, SVC, "service.yaml")
    local text = fs.read(cfg):gsub('"%-%-version", "{version}"', '"--version", "v3"')
    assert(fs.write_atomic(cfg, text))
    local r = env:rollout { "scripts/run_all.lua", SVC, "--keep-going" }
    assert.equal(1, r.status)
    assert.matches("Step 6 passed", r.stdout)
    assert.is_nil(r.stdout:find("Not run", 1, true))
  end)
end)

describe("step scripts", function()
  local env
  setup(function() env = local_env.new() end)
  teardown(function() env:cleanup() end)

  it("each runs alone, in sequence", function()
    for n, script in ipairs(steps) do
      local r = env:rollout { script, SVC }
      assert.equal(0, r.status, script .. "\n" .. r.stdout .. r.stderr)
      assert.matches("✓ Step " .. (n - 1) .. " passed\n$", r.stdout)
    end
  end)

  it("step 1 fails when a weight-0 version receives traffic behind rollout's back", function()
    assert.equal(0, env:rollout({ steps[1], SVC }).status)
    assert.equal(0, env:rollout({ steps[2], SVC }).status)
    assert.equal(0, env:rollout({ steps[3], SVC }).status) -- v3 deployed, weight 0
    assert.equal("", env:haproxy("set server be_" .. SVC .. "/v3 weight 1"):gsub("%s", ""))
    -- step 1 checks the split without setting weights, and sees the leak
    local r = env:rollout { steps[2], SVC }
    assert.equal(1, r.status)
    assert.matches("✗ Step 1 failed: v3 %(not in the weights%) served %d+\n", r.stdout)
    r = env:rollout { "-e", [[
      local ui = require "rollout.ui"
      local svc = require("rollout").service("microservice-1")
      local v = svc:check_split { v1 = 50, v2 = 50, v3 = 0 }
      print(v.ok, v.failure, v.reason)]] }
    assert.matches("^false\tleak\tv3 has weight 0 but served %d+ request", r.stdout)
    assert.equal(0, env:rollout({ steps[7], SVC }).status)
  end)

  it("step 1 fails when the gateway is set to 60/40 behind rollout's back", function()
    assert.equal(0, env:rollout({ steps[1], SVC }).status)
    local reply = env:haproxy("set server be_" .. SVC .. "/v1 weight 60;set server be_" .. SVC .. "/v2 weight 40")
    assert.equal("", reply:gsub("%s", ""))
    local traffic = fs.read(env.traffic_file)
    local r = env:rollout { steps[2], SVC }
    assert.equal(1, r.status)
    assert.matches("✗ Step 1 failed: split differs from the weights %(p=", r.stdout)
    assert.matches("v1%s+50%s+50%.0%%%s+6%d%.%d%%", r.stdout) -- observed ~60%
    assert.equal(traffic, fs.read(env.traffic_file))
    assert.equal(0, env:rollout({ steps[7], SVC }).status)
  end)

  it("takes the endpoint as an argument or GATEWAY_ENDPOINT", function()
    assert.equal(0, env:rollout({ steps[1], SVC }).status)
    local url = env:endpoint()
    local r = env:rollout { steps[2], SVC, url }
    assert.equal(0, r.status, r.stdout)
    assert.matches("Verifying the split at " .. url:gsub("%p", "%%%0"), r.stdout)
    -- a wrong endpoint is honoured (and fails): the argument is really used
    local bad = env:rollout({ steps[2], SVC }, { env = { GATEWAY_ENDPOINT = "http://127.0.0.1:1/api/version" } })
    assert.equal(1, bad.status)
    assert.matches("errors: %d+ of %d+ requests failed", bad.stdout)
    assert.equal(0, env:rollout({ steps[7], SVC }).status)
  end)

  it("refuses a missing SERVICE argument with usage (exit 2)", function()
    local r = env:rollout { steps[1] }
    assert.equal(2, r.status)
    assert.matches("usage: rollout STEP%.lua SERVICE", r.stderr)
  end)
end)
