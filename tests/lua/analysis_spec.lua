-- rollout.strategy.analysis: measurements, their outcomes (Argo Rollouts'
-- semantics, no-data and NaN policies), the analysis loop, and a seeded
-- Monte Carlo of whole canaries through the analysis code itself (the
-- judged providers, the sequential design, the loop's rules) on simulated
-- probe data (no network).
local analysis = require "rollout.strategy.analysis"
local judge = require "rollout.strategy.judge"
local stats = require "rollout.stats"

-- a provider that returns the given measurements in turn
local function scripted(list)
  local i = 0
  return {
    measure = function()
      i = i + 1
      local m = list[math.min(i, #list)]
      if type(m) == "function" then return m() end
      if m == "raise" then error("the provider broke") end
      if m == "nil" then return nil, "no answer from the backend" end
      local copy = {}
      for k, v in pairs(m) do copy[k] = v end
      return copy
    end,
    calls = function() return i end,
  }
end

local function metric(def)
  def.name = def.name or "m"
  def.interval = def.interval or 0
  return analysis.metric(def)
end

local function run(metrics)
  local recorded = {}
  local res = analysis.run(metrics, { record = function(m) recorded[#recorded + 1] = m end })
  return res, recorded
end

describe("analysis.evaluate (Argo Rollouts' conditions)", function()
  local function outcome(def, value)
    local m = metric { provider = scripted {}, success = def.success, failure = def.failure,
                       no_data = def.no_data, on_nan = def.on_nan }
    return analysis.evaluate(m, { value = value })
  end
  local lt = function(x) return function(v) return v < x end end
  local gt = function(x) return function(v) return v > x end end

  it("success only: true passes, false fails", function()
    assert.equal("pass", outcome({ success = lt(1) }, 0.5).outcome)
    assert.equal("fail", outcome({ success = lt(1) }, 2).outcome)
  end)
  it("failure only: true fails, false passes", function()
    assert.equal("fail", outcome({ failure = gt(1) }, 2).outcome)
    assert.equal("pass", outcome({ failure = gt(1) }, 0.5).outcome)
  end)
  it("both: failure wins, success passes, neither is inconclusive", function()
    local d = { success = lt(1), failure = gt(5) }
    assert.equal("pass", outcome(d, 0.5).outcome)
    assert.equal("fail", outcome(d, 6).outcome)
    assert.equal("inconclusive", outcome(d, 3).outcome)
  end)
  it("neither condition: pass", function()
    assert.equal("pass", outcome({}, 42).outcome)
  end)
  it("a condition that raises is an error, naming it", function()
    local r = outcome({ success = function() error("bad expression") end }, 1)
    assert.equal("error", r.outcome)
    assert.matches("the condition failed: .*bad expression", r.reason)
  end)
  it("NaN and infinities are never compared: on_nan decides", function()
    for _, v in ipairs { 0 / 0, math.huge, -math.huge } do
      local r = outcome({ success = lt(1) }, v)
      assert.equal("inconclusive", r.outcome)
      assert.matches("not a number to compare", r.reason)
      assert.equal("fail", outcome({ success = lt(1), on_nan = "fail" }, v).outcome)
    end
  end)
  it("no data is its own outcome; the policy says what it counts as", function()
    for _, policy in ipairs { "inconclusive", "fail", "pass" } do
      local m = metric { provider = scripted {}, no_data = policy }
      local r = analysis.evaluate(m, { no_data = true, reason = "empty vector" })
      assert.equal("no_data", r.outcome)
      assert.equal(policy, r.effect)
      assert.matches("empty vector %(no_data = " .. policy .. "%)", r.reason)
    end
  end)
  it("refuses bad metric declarations, naming the field", function()
    assert.has_error(function() metric { provider = scripted {}, no_data = "maybe" } end,
      "metric m: no_data must be inconclusive, fail or pass (got maybe)")
    assert.has_error(function() metric { provider = scripted {}, count = 0 } end)
    assert.has_error(function() metric { provider = {} } end)
    assert.has_error(function() analysis.metric { name = "bad name!", provider = scripted {} } end)
  end)
end)

describe("analysis.run", function()
  it("passes after `count` passing measurements", function()
    local p = scripted { { value = 0.1 } }
    local res, rec = run { metric { provider = p, count = 3, success = function(v) return v < 1 end } }
    assert.equal("pass", res.outcome)
    assert.equal(3, #rec)
  end)

  it("fails at the first failure (failure_limit 0), or after more than failure_limit", function()
    local res = run { metric { provider = scripted { { value = 0.1 }, { value = 5 } }, count = 5,
                               success = function(v) return v < 1 end } }
    assert.equal("fail", res.outcome)
    assert.equal("m", res.metric)
    local p = scripted { { value = 5 }, { value = 5 }, { value = 0.1 } }
    res = run { metric { provider = p, count = 5, failure_limit = 2, success = function(v) return v < 1 end } }
    assert.equal("pass", res.outcome) -- 2 failures are not more than 2
    p = scripted { { value = 5 } }
    res = run { metric { provider = p, count = 5, failure_limit = 2, success = function(v) return v < 1 end } }
    assert.equal("fail", res.outcome)
    assert.equal(3, p.calls())
  end)

  it("errors do not count towards count; the 5th in a row (consecutive_error_limit 4) ends it in error", function()
    local p = scripted { "raise", "nil", { value = 1 }, { value = 1 } }
    local res, rec = run { metric { provider = p, count = 2 } }
    assert.equal("pass", res.outcome)
    assert.equal(4, #rec)
    assert.equal("error", rec[1].outcome)
    assert.matches("the provider broke", rec[1].reason)
    assert.matches("no answer from the backend", rec[2].reason)
    p = scripted { "raise" }
    res = run { metric { provider = p, count = 2 } }
    assert.equal("error", res.outcome)
    assert.equal(5, p.calls())
    assert.matches("5 errors in a row %(consecutive_error_limit 4%)", res.reason)
  end)

  it("no data follows the policy: inconclusive ends it, fail fails, pass passes", function()
    local nd = { no_data = true, reason = "no series" }
    assert.equal("inconclusive", run { metric { provider = scripted { nd }, count = 2 } }.outcome)
    assert.equal("fail", run { metric { provider = scripted { nd }, count = 2, no_data = "fail" } }.outcome)
    assert.equal("pass", run { metric { provider = scripted { nd }, count = 2, no_data = "pass" } }.outcome)
    -- a limit lets a few through
    local p = scripted { nd, { value = 1 } }
    assert.equal("pass", run { metric { provider = p, count = 2, inconclusive_limit = 1 } }.outcome)
  end)

  it("dry-run metrics are measured and recorded but never decide", function()
    local res, rec = run {
      metric { name = "real", provider = scripted { { value = 1 } }, count = 2 },
      metric { name = "dry", provider = scripted { { value = 9 } }, count = 2, dry_run = true,
               success = function(v) return v < 1 end },
    }
    assert.equal("pass", res.outcome)
    local dry = 0
    for _, m in ipairs(rec) do if m.metric == "dry" then dry = dry + 1; assert.equal("fail", m.outcome) end end
    assert.is_true(dry >= 1)
  end)

  it("judged metrics: undecided looks wait for more data up to the last; a decided pass ends early", function()
    local undecided = { outcome = "inconclusive", undecided = true, reason = "undecided" }
    local p = scripted { undecided, undecided, { outcome = "pass", reason = "shown not worse" } }
    p.judged = true
    local res, rec = run { metric { provider = p, count = 5 } }
    assert.equal("pass", res.outcome)
    assert.equal(3, #rec)
    assert.matches("undecided: look 1 of at most 10", rec[1].reason)
    -- undecided to the last look (count, then extra_looks more): inconclusive
    local q = scripted { undecided }
    q.judged = true
    res = run { metric { provider = q, count = 3 } }
    assert.equal("inconclusive", res.outcome)
    assert.equal(6, q.calls())
    q = scripted { undecided }
    q.judged = true
    res = run { metric { provider = q, count = 3, extra_looks = 0 } }
    assert.equal("inconclusive", res.outcome)
    assert.equal(3, q.calls())
    -- consecutive_success_limit asks for more passes
    local r = scripted { { outcome = "pass" } }
    r.judged = true
    res, rec = run { metric { provider = r, count = 5, consecutive_success_limit = 3 } }
    assert.equal("pass", res.outcome)
    assert.equal(3, #rec)
  end)

  it("waits initial_delay, then interval between measurements, through ctx.wait; a stop ends it", function()
    local waits = {}
    local p = scripted { { value = 1 } }
    local res = analysis.run({ metric { provider = p, count = 3, interval = 0.05, initial_delay = 0.02 } }, {
      wait = function(s) waits[#waits + 1] = s; require("rollout.time").sleep(s) return true end,
    })
    assert.equal("pass", res.outcome)
    assert.is_true(#waits >= 3)
    assert.is_true(waits[1] <= 0.02 + 1e-6 and waits[1] > 0)
    local stopped = analysis.run({ metric { provider = scripted { { value = 1 } }, count = 3, interval = 0.05 } }, {
      wait = function() return false end,
    })
    assert.is_true(stopped.stopped)
  end)
end)

-- ----------------------------------------------------------------------
-- Monte Carlo: whole canaries through the analysis code on simulated data

-- A simulated active sampler: each look adds `n` requests per side with
-- Binomial(n, error) failures and latencies from rollout.stats' latency
-- model (what the real sampler gets from the probe).
local function sim_sampler(rng, n, base, canary)
  local smp = { tick = nil }
  local function side() return { n = 0, errors = 0, latencies = stats.sample() } end
  smp.data = { canary = side(), baseline = side(), look = 0, query = "simulated" }
  function smp.look(_, tick)
    if tick == smp.tick then return smp.data end
    smp.tick = tick
    smp.data.look = smp.data.look + 1
    for _, s in ipairs { { smp.data.baseline, base }, { smp.data.canary, canary } } do
      local acc, model = s[1], s[2]
      local f = rng:binomial(n, model.error or 0)
      acc.n, acc.errors = acc.n + n, acc.errors + f
      acc.latencies:simulate(rng, n - f, model.latency)
    end
    return smp.data
  end
  return smp
end

local LOOPBACK = { median_ms = 0.15, sigma = 0.5, spike_share = 0.015, spike_ms = 10, resolution_ms = 0.001 }

local function with(t, extra)
  local o = {}
  for k, v in pairs(t) do o[k] = v end
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

-- One canary (steps 5,10,25,50 analysed, count 3): the steps at which it
-- was aborted (nil when promoted) and the requests it spent.
local function simulate(runs, seed, base, canary)
  local steps = { 5, 10, 25, 50 }
  local count = 3
  local rng = stats.rng(seed)
  local out = { aborted = 0, by_step = {}, inconclusive = 0, requests = 0 }
  -- as rollout.strategy does: the design reserves as many looks again
  local design = judge.design { alpha = 0.01, looks = 2 * #steps * count, metrics = 2 }
  local plan = judge.plan { steps = steps, intervals = count, design = design }
  for _ = 1, runs do
    local sampler = sim_sampler(rng, plan.requests, base, canary)
    local metrics = {
      analysis.metric { name = "error-rate", provider = analysis.providers.errors(), interval = 0, count = count },
      analysis.metric { name = "latency", provider = analysis.providers.latency(), interval = 0, count = count },
    }
    local ctx = { canary = "v3", baseline = { v1 = 1 }, design = design, run = {}, active = sampler }
    for i = 1, #steps do
      local res = analysis.run(metrics, ctx)
      if res.outcome == "fail" or res.outcome == "error" then
        out.aborted = out.aborted + 1
        out.by_step[i] = (out.by_step[i] or 0) + 1
        break
      elseif res.outcome == "inconclusive" then
        out.inconclusive = out.inconclusive + 1 -- a pause: a person decides
        break
      end
    end
    out.requests = out.requests + 2 * plan.requests * sampler.data.look
  end
  return out
end

describe("analysis Monte Carlo (seeded, whole canaries, no network)", function()
  it("a good canary is aborted in at most 1% of 400 rollouts, and rarely paused", function()
    local good = { error = 0.005, latency = LOOPBACK }
    local r = simulate(400, 11, good, good)
    print(string.format("\n  good canary: %d of 400 aborted, %d paused inconclusive, %.0f requests per rollout",
      r.aborted, r.inconclusive, r.requests / 400))
    assert.is_true(r.aborted <= 4, r.aborted .. " false aborts")
    assert.is_true(r.inconclusive <= 8, r.inconclusive .. " pauses")
  end)

  it("a canary failing 5% of its requests is caught in >= 99% of 400, before any weight above 20%", function()
    local r = simulate(400, 12, { error = 0, latency = LOOPBACK }, { error = 0.05, latency = LOOPBACK })
    local early = (r.by_step[1] or 0) + (r.by_step[2] or 0)
    print(string.format("\n  5%% errors: %d of 400 caught, %d at 5%% or 10%%", r.aborted, early))
    assert.is_true(early >= 396, early .. " caught before 25%")
  end)

  it("a canary 80 ms slower is caught in >= 99% of 400, at the first step", function()
    local slow = with(LOOPBACK, { shift_ms = 80 })
    local r = simulate(400, 13, { error = 0, latency = LOOPBACK }, { error = 0, latency = slow })
    print(string.format("\n  +80 ms: %d of 400 caught at the first step", r.by_step[1] or 0))
    assert.is_true((r.by_step[1] or 0) >= 396)
  end)
end)
