-- rollout.strategy.judge: the design, each outcome and message of the error and
-- latency judges, the plan, and seeded Monte Carlo over whole simulated
-- rollouts (steps 5,10,25,50,100 x 3 intervals, requests per look from
-- judge.plan): false aborts of good canaries against the stated rate,
-- detection of 5%-error, +80 ms, spread and bimodal canaries within the
-- first steps, and good canaries passing within the first step.
-- Longer runs (20,000 rollouts): tests/bench/judge.
local judge = require "rollout.strategy.judge"
local stats = require "rollout.stats"

local function with(t, extra)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

-- loopback latency shapes (ms): a lognormal body at 1 us resolution with 1.5%
-- scheduler stalls up to 10 ms (measured on these machines: p50 ~0.14,
-- p90 ~0.3, p99 1-2, p99.9 ~10 ms), a coarse 0.1 ms timer (ties), and a
-- 1 ms timer (zero-heavy: ~97% of the values are 0)
local LOOP = { median_ms = 0.15, sigma = 0.6, spike_share = 0.015, spike_ms = 10, resolution_ms = 0.001 }
local COARSE = { median_ms = 0.4, sigma = 0.5, resolution_ms = 0.1 }
local ZERO = { median_ms = 0.4, sigma = 0.5, resolution_ms = 1 }

local function draw(rng, n, model)
  return stats.sample():simulate(rng, n, model):values()
end

local function report(name, r)
  local steps = {}
  for s = 1, 5 do steps[#steps + 1] = tostring(r.abort_steps[s] or 0) end
  print(string.format("#   %-44s runs=%d aborted=%.2f%% (by step %s) passed in step 1=%.1f%% looks=%.1f",
    name, r.runs, 100 * r.abort_rate, table.concat(steps, "/"), 100 * r.passed_first_step / r.runs, r.looks))
end

describe("judge.design", function()
  it("spends alpha / metrics over the looks, harmonically by default", function()
    local d = judge.design { alpha = 0.01, looks = 15, metrics = 2 }
    local total, prev = 0, math.huge
    for k = 1, 15 do
      local a = d:alpha_at(k)
      assert.is_true(a < prev)
      prev = a
      total = total + a
    end
    assert.near(0.005, total, 1e-15)
    assert.near(0.005 / (1 + 1 / 2 + 1 / 3 + 1 / 4 + 1 / 5 + 1 / 6 + 1 / 7 + 1 / 8 + 1 / 9 + 1 / 10 + 1 / 11
      + 1 / 12 + 1 / 13 + 1 / 14 + 1 / 15), d:alpha_at(1), 1e-15)
    local b = 0
    for k = 1, 15 do b = b + d:beta_at(k) end
    assert.near(0.05, b, 1e-15)
    local u = judge.design { alpha = 0.01, looks = 15, metrics = 2, spending = "uniform" }
    assert.near(0.01 / 30, u:alpha_at(1), 1e-15)
    assert.near(0.01 / 30, u:alpha_at(15), 1e-15)
    local c = judge.design { alpha = 0.02, looks = 3, metrics = 1, spending = { 2, 1, 1 } }
    assert.near(0.01, c:alpha_at(1), 1e-15)
    assert.near(0.005, c:alpha_at(3), 1e-15)
  end)

  it("describes itself in one line and refuses looks it was not designed for", function()
    local d = judge.design { alpha = 0.01, looks = 15, metrics = 2 }
    assert.matches("family%-wise false%-abort rate ≤ 1%% over 15 looks × 2 metrics %(", d:describe())
    assert.is_nil(d:describe():find("\n"))
    assert.has_error(function() d:alpha_at(16) end, "judge: look 16 is beyond the design's 15 looks (design for more looks)")
    assert.has_error(function() d:alpha_at(0) end)
    assert.has_error(function() judge.design { alpha = 1.5 } end)
    assert.has_error(function() judge.design { looks = 0 } end)
    assert.has_error(function() judge.design { spending = "pocock" } end)
    assert.has_error(function() judge.design { looks = 2, spending = { 1 } } end)
    local o = d:options(3, { max_increase = 0.02 })
    assert.equal(d:alpha_at(3), o.alpha)
    assert.equal(d:beta_at(3), o.beta)
    assert.equal(0.02, o.max_increase)
  end)
end)

describe("judge.errors", function()
  local d = judge.design {}

  it("fails a canary with more errors, naming both rates and p", function()
    local v = judge.errors({ n = 1000, errors = 0 }, { n = 1000, errors = 51 }, d:options(4))
    assert.equal("fail", v.outcome)
    assert.equal(stats.fisher_greater(0, 1000, 51, 1000), v.p)
    assert.matches("^error rate 5%.1%% vs baseline 0%.0%% %(p=[%d.e+-]+ ≤ α=[%d.e+-]+; 51/1000 vs 0/1000 failed%)$", v.reason)
    assert.equal("errors", v.metric)
    assert.same({ n = 1000, errors = 51, rate = 0.051 }, v.value.canary)
    assert.same({ baseline = 1000, canary = 1000 }, v.n)
    assert.equal("one-sided Fisher exact", v.value.test)
  end)

  it("is exact with zero-heavy data: 0 baseline errors is the normal case", function()
    -- p = C(1000, x) / C(2000, x), about 2^-x
    local alpha = 3.3e-4
    local v12 = judge.errors({ n = 1000, errors = 0 }, { n = 1000, errors = 12 }, { alpha = alpha })
    local v11 = judge.errors({ n = 1000, errors = 0 }, { n = 1000, errors = 11 }, { alpha = alpha })
    assert.equal("fail", v12.outcome)
    assert.not_equal("fail", v11.outcome)
    assert.near(2.3617034873179733e-4, v12.p, 1e-15) -- C(1000, 12) / C(2000, 12)
    assert.near(4.749674657508037e-4, v11.p, 1e-15)
    -- no error anywhere: no evidence of anything, p = 1
    local v0 = judge.errors({ n = 1000, errors = 0 }, { n = 1000, errors = 0 }, { alpha = alpha })
    assert.equal(1, v0.p)
  end)

  it("passes when the increase is bounded below max_increase", function()
    local v = judge.errors({ n = 3000, errors = 15 }, { n = 3000, errors = 14 }, d:options(3))
    assert.equal("pass", v.outcome)
    assert.is_true(v.value.increase_upper < 0.01)
    assert.matches("^error rate 0%.47%% vs baseline 0%.50%%: increase ≤ 0%.%d+%% %(< 1%% allowed%) at 99%.%d+%% confidence", v.reason)
    -- the bound is the canary's upper bound minus the baseline's lower one
    local lo = stats.binom_bounds(15, 3000, d:beta_at(3) / 2)
    local _, hi = stats.binom_bounds(14, 3000, d:beta_at(3) / 2)
    assert.near(hi - lo, v.value.increase_upper, 1e-15)
  end)

  it("a canary with fewer errors never fails", function()
    local v = judge.errors({ n = 1000, errors = 30 }, { n = 1000, errors = 0 }, { alpha = 0.2 })
    assert.equal("pass", v.outcome)
    assert.equal(1, v.p)
  end)

  it("is undecided when neither is shown, and below min_n whatever the data", function()
    local v = judge.errors({ n = 1000, errors = 5 }, { n = 1000, errors = 9 }, d:options(1))
    assert.equal("undecided", v.outcome)
    assert.matches("^error rate 0%.90%% vs baseline 0%.50%% %(p=0%.%d+%): not shown worse, nor within %+1%% yet", v.reason)
    local small = judge.errors({ n = 50, errors = 0 }, { n = 50, errors = 40 }, d:options(1))
    assert.equal("undecided", small.outcome)
    assert.is_true(small.p < 1e-10)
    assert.matches("sample too small %(50 vs 50 requests, min 100%)", small.reason)
    assert.equal("fail", judge.errors({ n = 50, errors = 0 }, { n = 50, errors = 40 }, d:options(1, { min_n = 20 })).outcome)
  end)

  it("reports no_data when a side has no request", function()
    local v = judge.errors({ n = 100, errors = 0 }, { n = 0, errors = 0 }, d:options(1))
    assert.equal("no_data", v.outcome)
    assert.equal("no requests for the canary", v.reason)
    assert.equal("no requests for the baseline", judge.errors({ n = 0 }, { n = 5 }).reason)
    assert.equal("no requests for either version", judge.errors({}, {}).reason)
  end)

  it("refuses impossible counts", function()
    assert.has_error(function() judge.errors({ n = 10, errors = 11 }, { n = 10, errors = 0 }) end,
      "judge.errors: baseline has 11 errors of 10 requests")
    assert.has_error(function() judge.errors({ n = -1 }, { n = 10 }) end)
    assert.has_error(function() judge.errors({ n = 1.5 }, { n = 10 }) end)
    assert.has_error(function() judge.errors({ n = "10" }, { n = 10 }) end)
    assert.has_error(function() judge.errors(nil, { n = 10 }) end)
    assert.has_error(function() judge.errors({ n = 10 }, { n = 10 }, { alpha = 0 }) end)
    assert.has_error(function() judge.errors({ n = 10 }, { n = 10 }, { design = d }) end, "judge: opts.design needs opts.look")
  end)
end)

describe("judge.latency", function()
  local d = judge.design {}
  local rng = stats.rng(20261201)

  it("fails +80 ms at the first look, naming the quantile, both values and p", function()
    local b = draw(rng, 1288, LOOP)
    local c = draw(rng, 1288, with(LOOP, { shift_ms = 80 }))
    local v = judge.latency(b, c, d:options(1))
    assert.equal("fail", v.outcome)
    assert.matches("^p%d+ latency 8%d%.%d ms vs baseline [%d.]+ ms %(p[<=][%d.e+-]+ ≤ α=[%d.e+-]+; 1288 of 1288 canary requests slower than ", v.reason)
    assert.equal("latency", v.metric)
    assert.same({ baseline = 1288, canary = 1288 }, v.n)
    assert.equal(3, #v.value.quantiles)
  end)

  it("fails a variance increase with the same median, which Mann-Whitney U misses", function()
    local b = draw(rng, 2000, { median_ms = 0.4, sigma = 0.5 })
    local c = draw(rng, 2000, { median_ms = 0.4, sigma = 1.0 })
    -- Kayenta's test: the rank-sum is blind to a symmetric spread (log scale)
    local all = {}
    for _, x in ipairs(b) do all[#all + 1] = { x, 0 } end
    for _, x in ipairs(c) do all[#all + 1] = { x, 1 } end
    table.sort(all, function(x, y) return x[1] < y[1] end)
    local rank_c = 0
    for i, e in ipairs(all) do if e[2] == 1 then rank_c = rank_c + i end end
    local u = rank_c - 2000 * 2001 / 2
    local z = (u - 2000 * 2000 / 2) / math.sqrt(2000 * 2000 * 4001 / 12)
    assert.is_true(math.abs(z) < 2.5, "Mann-Whitney z = " .. z)
    local v = judge.latency(b, c, d:options(1))
    assert.equal("fail", v.outcome)
    assert.matches("^p9", v.reason) -- p90 or p99
    assert.is_true(v.value.quantiles[1].p > 0.01) -- the median is not worse
  end)

  it("fails a bimodal canary: 10% of the requests 50 ms slower", function()
    local b = draw(rng, 1288, LOOP)
    local c = draw(rng, 1288, with(LOOP, { tail_share = 0.1, tail_ms = 50 }))
    local v = judge.latency(b, c, d:options(1))
    assert.equal("fail", v.outcome)
    assert.matches("^p99 latency 5%d%.%d ms vs baseline", v.reason)
  end)

  it("never fails a faster canary, and passes it", function()
    local b = draw(rng, 3000, with(LOOP, { shift_ms = 5 }))
    local c = draw(rng, 3000, LOOP)
    local v = judge.latency(b, c, { alpha = 0.2, beta = 0.01 })
    assert.equal("pass", v.outcome)
    for _, row in ipairs(v.value.quantiles) do assert.is_true(row.p > 0.99) end
    assert.matches("^latency within 1%.25 × baseline %+ 0%.10 ms %(p50 0%.%d+ ms vs 5%.%d ms, p90", v.reason)
  end)

  it("passes the same distribution, with ties from a coarse timer and zero-heavy data", function()
    for _, model in ipairs { LOOP, COARSE, ZERO } do
      local v = judge.latency(draw(rng, 3864, model), draw(rng, 3864, model), d:options(3))
      assert.equal("pass", v.outcome, v.reason)
    end
    -- zero-heavy: most values are 0 ms, the shift of a single tick fails
    local b = draw(rng, 1288, ZERO)
    assert.is_true(b[math.floor(0.9 * #b)] == 0)
    local v = judge.latency(b, draw(rng, 1288, with(ZERO, { shift_ms = 1 })), d:options(1))
    assert.equal("fail", v.outcome)
  end)

  it("stays within the margin: 20% slower is not a failure, 60% slower is", function()
    local b = draw(rng, 5000, { median_ms = 20, sigma = 0.3 })
    local slower = judge.latency(b, draw(rng, 5000, { median_ms = 24, sigma = 0.3 }), { alpha = 0.01, beta = 0.01 })
    assert.not_equal("fail", slower.outcome)
    local much = judge.latency(b, draw(rng, 5000, { median_ms = 32, sigma = 0.3 }), { alpha = 0.01, beta = 0.01 })
    assert.equal("fail", much.outcome)
    assert.matches("^p%d+ latency 3%d%.%d ms vs baseline [12]%d%.%d ms %(p=", much.reason)
  end)

  it("is undecided while the bounds are wide, below min_n, and no_data when empty", function()
    local b = draw(rng, 150, LOOP)
    local v = judge.latency(b, draw(rng, 150, LOOP), d:options(1))
    assert.equal("undecided", v.outcome)
    assert.matches("^latency not shown worse %(smallest p=[%d.]+ at p%d+%), nor within 1%.25 × baseline %+ 0%.10 ms yet: %d+ of 150 canary requests slower than", v.reason)
    local small = judge.latency({ 1, 1, 1 }, { 90, 90, 90 }, d:options(1))
    assert.equal("undecided", small.outcome)
    assert.equal("latency: sample too small (3 vs 3, min 100)", small.reason)
    assert.equal("no_data", judge.latency({}, { 1 }).outcome)
    assert.equal("no latencies for the canary", judge.latency({ 1 }, {}).reason)
  end)

  it("gives the same verdict for lists and for rollout.stats samples", function()
    local b, c = draw(rng, 900, LOOP), draw(rng, 900, with(LOOP, { sigma = 0.9 }))
    local v1 = judge.latency(b, c, d:options(2))
    local v2 = judge.latency(stats.sample(b), stats.sample(c), d:options(2))
    assert.equal(v1.reason, v2.reason)
    assert.same(v1.value, v2.value)
  end)

  it("refuses bad input", function()
    assert.has_error(function() judge.latency({ 1, -1 }, { 1 }) end, "judge.latency: latencies must be >= 0")
    assert.has_error(function() judge.latency({ 1, 0 / 0 }, { 1 }) end)
    assert.has_error(function() judge.latency({ 1, "x" }, { 1 }) end)
    assert.has_error(function() judge.latency("1", { 1 }) end)
    assert.has_error(function() judge.latency({ 1 }, { 1 }, { tolerance = -1 }) end)
    assert.has_error(function() judge.latency({ 1 }, { 1 }, { quantiles = { 1.5 } }) end)
    assert.has_error(function() judge.latency({ 1 }, { 1 }, { pass = { { 0.5 } } }) end)
  end)
end)

describe("judge.plan", function()
  it("plans requests per look for the acceptance numbers, with margin", function()
    local p = judge.plan {}
    assert.equal(15, p.looks)
    assert.equal(6, p.catch_looks) -- steps 5 and 10: before any weight above 20%
    assert.equal(3, p.pass_looks)
    assert.is_true(p.requests >= 100 and p.requests < 3000)
    assert.equal(p.requests, math.max(p.by.errors_catch, p.by.errors_pass, p.by.latency_catch, p.by.min_n))
    assert.is_true(p.power.errors_catch >= 0.995)
    assert.is_true(p.power.errors_pass >= 0.975)
    assert.is_true(p.power.latency_catch >= 0.995)
    -- one request fewer would miss the pass target
    local smaller = judge.plan { baseline_error = 0 }
    assert.is_true(smaller.requests < p.requests)
    assert.matches("^%d+ requests per version per look, 15 looks %(5 steps × 3%)", p.summary)
    assert.has_error(function() judge.plan { steps = {} } end)
    assert.has_error(function() judge.plan { intervals = 0 } end)
    assert.has_error(function() judge.plan { bad_error = 2 } end)
  end)
end)

describe("judge: Monte Carlo over whole rollouts (seeded)", function()
  local plan = judge.plan {}
  local stated = plan.design.alpha

  it("good canary (baseline 0.5% errors, loopback latency): false aborts <= the stated 1%, passed within step 1 >= 95%", function()
    local r = judge.simulate { runs = 2000, seed = 1, plan = plan,
      baseline = { error = 0.005, latency = LOOP }, canary = { error = 0.005, latency = LOOP } }
    report("good canary, advance on pass", r)
    assert.is_true(r.abort_rate <= stated, r.example)
    assert.is_true(r.passed_first_step >= 0.95 * r.runs)
  end)

  it("good canary, every look of every step (the worst case): error false aborts <= their share alpha/2", function()
    for i, p0 in ipairs { 0.005, 0.02 } do
      local r = judge.simulate { runs = 3000, seed = 10 + i, plan = plan, metrics = { "errors" }, schedule = "all",
        baseline = { error = p0 }, canary = { error = p0 } }
      report(string.format("good canary, errors %.1f%%, all 15 looks", 100 * p0), r)
      assert.is_true(r.abort_rate <= stated / 2, r.example)
    end
  end)

  it("latency at the edge of the margin (canary = 1.25 x baseline + 0.1 ms): false aborts <= alpha/2", function()
    local small = { requests = 200, steps = plan.steps, intervals = plan.intervals, design = plan.design }
    local base = { median_ms = 0.4, sigma = 0.5 }
    local edge = { median_ms = 0.5, sigma = 0.5, shift_ms = 0.1 } -- exactly m(X)
    local r = judge.simulate { runs = 2000, seed = 21, plan = small, metrics = { "latency" }, schedule = "all",
      baseline = { latency = base }, canary = { latency = edge } }
    report("canary at the latency margin, all 15 looks", r)
    assert.is_true(r.abort_rate <= stated / 2, r.example)
  end)

  it("the simulation can fail: a naive design (alpha/2 at every look) exceeds the stated rate", function()
    local naive = { alpha = stated }
    function naive:options(_, extra) return with(extra, { alpha = stated / 2, beta = 0.01 }) end
    local r = judge.simulate { runs = 2000, seed = 31, metrics = { "errors" }, schedule = "all",
      plan = { requests = plan.requests, steps = plan.steps, intervals = plan.intervals, design = naive },
      baseline = { error = 0.02 }, canary = { error = 0.02 } }
    report("naive design (no correction for looks)", r)
    assert.is_true(r.abort_rate > stated, "naive false aborts " .. r.abort_rate)
  end)

  it("a 5%-error canary is aborted before any weight above 20% (baseline 0% and 0.5%): >= 99%", function()
    for i, p0 in ipairs { 0, 0.005 } do
      local r = judge.simulate { runs = 1000, seed = 40 + i, plan = plan,
        baseline = { error = p0, latency = LOOP }, canary = { error = 0.05, latency = LOOP } }
      report(string.format("5%% errors vs baseline %.1f%%", 100 * p0), r)
      local early = (r.abort_steps[1] or 0) + (r.abort_steps[2] or 0)
      assert.is_true(early >= 0.99 * r.runs)
      assert.equal(r.aborted, r.aborted_by.errors)
      assert.matches("^error rate [%d.]+%% vs baseline [%d.]+%% %(p=", r.example)
    end
  end)

  it("+80 ms is aborted at the first step (5%), on loopback and zero-heavy shapes: >= 99%", function()
    for i, model in ipairs { LOOP, ZERO } do
      local r = judge.simulate { runs = i == 1 and 1000 or 300, seed = 50 + i, plan = plan,
        baseline = { latency = model }, canary = { latency = with(model, { shift_ms = 80 }) } }
      report(i == 1 and "+80 ms (loopback)" or "+80 ms (zero-heavy)", r)
      assert.is_true((r.abort_steps[1] or 0) >= 0.99 * r.runs)
      assert.equal(r.aborted, r.aborted_by.latency)
    end
  end)

  it("a spread increase (same median, sigma x2) and a bimodal canary (10% +50 ms) are aborted at the first step: >= 99%", function()
    local spread = judge.simulate { runs = 400, seed = 61, plan = plan,
      baseline = { latency = LOOP }, canary = { latency = with(LOOP, { sigma = 1.2 }) } }
    report("spread x2, same median", spread)
    assert.is_true((spread.abort_steps[1] or 0) >= 0.99 * spread.runs)
    local bimodal = judge.simulate { runs = 400, seed = 62, plan = plan,
      baseline = { latency = LOOP }, canary = { latency = with(LOOP, { tail_share = 0.1, tail_ms = 50 }) } }
    report("bimodal, 10% +50 ms", bimodal)
    assert.is_true((bimodal.abort_steps[1] or 0) >= 0.99 * bimodal.runs)
    -- rarer second modes take a few looks: 2% +50 ms
    local rare = judge.simulate { runs = 300, seed = 63, plan = plan,
      baseline = { latency = COARSE }, canary = { latency = with(COARSE, { tail_share = 0.02, tail_ms = 50 }) } }
    report("bimodal, 2% +50 ms (coarse timer)", rare)
    assert.is_true(rare.abort_rate >= 0.95)
  end)
end)
