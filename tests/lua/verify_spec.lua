-- rollout.verify: the rules, and Monte Carlo validation of its error rates
-- (seeded, deterministic): false alarms on correct splits, detection of
-- 5-point mis-splits and of 0.5% leaks at the planned sample size.
local verify = require "rollout.verify"
local stats = require "rollout.stats"

local function result(counts, errors)
  local total = 0
  for _, c in pairs(errors or {}) do total = total + c end
  return { counts = counts, errors = errors or {}, error_total = total }
end

-- a simulated probe: n requests drawn with the true shares
local function simulate(rng, n, names, true_shares)
  local draws = rng:multinomial(n, true_shares)
  local counts = {}
  for i, name in ipairs(names) do
    if draws[i] > 0 then counts[name] = draws[i] end
  end
  return result(counts)
end

local function names_and_weights(w)
  local names, list = {}, {}
  for name in pairs(w) do names[#names + 1] = name end
  table.sort(names)
  for i, name in ipairs(names) do list[i] = w[name] end
  return names, list
end

describe("verify.split rules", function()
  local w = { v1 = 50, v2 = 50, v3 = 0 }
  local planned = verify.plan(w)

  it("passes a sample that matches", function()
    local h = math.floor(planned / 2)
    local v = verify.split(result { v1 = h, v2 = planned - h }, w)
    assert.is_true(v.ok, v.reason)
    assert.equal(planned, v.n)
    assert.is_true(v.p_value > 0.9)
    assert.equal(3, #v.rows)
    assert.equal("v1", v.rows[1].version)
    assert.near(0.5, v.rows[1].expected, 1e-12)
    assert.is_true(v.rows[1].ci_low < 0.5 and v.rows[1].ci_high > 0.5)
  end)

  it("fails at once when a weight-0 version serves a single request", function()
    local h = math.floor(planned / 2)
    local v = verify.split(result { v1 = h, v2 = planned - h, v3 = 1 }, w)
    assert.is_false(v.ok)
    assert.equal("leak", v.failure)
    assert.matches("v3 has weight 0 but served 1 request", v.reason)
  end)

  it("fails when a version outside the weights serves", function()
    local v = verify.split(result { v1 = 2000, v2 = 2000, v9 = 3 }, w)
    assert.is_false(v.ok)
    assert.matches("v9 %(not in the weights%) served 3", v.reason)
  end)

  it("judges errors against the budget, separately from the split", function()
    local h = math.floor(planned / 2)
    local ok = verify.split(result({ v1 = h, v2 = planned - h }, { http_5xx = 10 }), w)
    assert.is_true(ok.ok, ok.reason)
    assert.equal(10, ok.errors)
    local bad = verify.split(result({ v1 = h, v2 = planned - h }, { http_5xx = 30, connect = 20 }), w)
    assert.is_false(bad.ok)
    assert.equal("errors", bad.failure)
    assert.matches("^errors: 50 of " .. (planned + 50) .. " requests failed", bad.reason)
    -- the split itself is still computed from the served requests only
    assert.equal(planned, bad.n)
  end)

  it("judges each version's own errors: one failing 20% fails the split inside the global budget", function()
    local ws = { v1 = 97, v3 = 3 }
    -- 9700 served by v1; v3 routed 300, answered 60 of them with errors:
    -- 60 of 10000 (0.6%) is inside the 1% budget, 20% of v3's is not
    local res = result({ v1 = 9700, v3 = 240 }, { http_5xx = 60 })
    res.errors_by_version = { v3 = { http_5xx = 60 } }
    local v = verify.split(res, ws)
    assert.is_false(v.ok)
    assert.equal("errors", v.failure)
    assert.equal("errors: v3: 60 of 300 requests failed (20.0%, budget 1.0%; http_5xx=60)", v.reason)
    assert.equal("v3", v.failing_versions[1].version)
    -- the split is judged on routed requests (v3's errors were routed to v3)
    assert.equal(10000, v.n)
    -- the same errors without attribution: only the global rule, which they pass
    local anon = verify.split(result({ v1 = 9700, v3 = 240 }, { http_5xx = 60 }), ws)
    assert.is_not.equal("errors", anon.failure)
    -- and a version within the budget passes
    local fine = result({ v1 = 9700, v3 = 298 }, { http_5xx = 2 })
    fine.errors_by_version = { v3 = { http_5xx = 2 } }
    assert.is_nil(verify.split(fine, ws).failing_versions)
  end)

  it("reports a sample smaller than the plan instead of passing it", function()
    local v = verify.split(result { v1 = 50, v2 = 50 }, w)
    assert.is_false(v.ok)
    assert.equal("sample", v.failure)
    assert.matches("sample too small: 100 served, the plan needs " .. planned, v.reason)
  end)

  it("fails a 60/40 split checked against 50/50", function()
    local v = verify.split(result { v1 = math.floor(planned * 0.6), v2 = planned - math.floor(planned * 0.6) }, w)
    assert.is_false(v.ok)
    assert.equal("split", v.failure)
    assert.is_true(v.p_value < 1e-10)
  end)

  it("plans enough requests for the default power, far more than the original's 30", function()
    local n, info = verify.plan { v1 = 50, v2 = 50 }
    assert.is_true(n > 30 * 50)
    assert.equal(0.001, info.alpha)
    assert.equal(0.05, info.delta)
    assert.is_true(stats.power({ 1, 1 }, n, { delta = 0.05, alpha = 0.001 }) >= 0.99)
    -- one positive version: only leaks can be seen, planned for 0.5%
    local m, i2 = verify.plan { v1 = 0, v2 = 100 }
    assert.equal(0, i2.split)
    assert.is_true(1 - (1 - 0.005) ^ m >= 0.99)
    assert.is_true(verify.requests { v1 = 50, v2 = 50 } > n)
  end)
end)

describe("verify.header", function()
  it("passes when every request reached the version", function()
    local v = verify.header(result { v3 = 500 }, "v3")
    assert.is_true(v.ok, v.reason)
  end)
  it("fails when any request reached another version", function()
    local v = verify.header(result { v3 = 499, v1 = 1 }, "v3")
    assert.is_false(v.ok)
    assert.equal("misrouted", v.failure)
    assert.matches("v1 served 1", v.reason)
  end)
  it("fails on errors (a down version is not served by another)", function()
    local v = verify.header(result({ v3 = 490 }, { http_5xx = 10 }), "v3")
    assert.is_false(v.ok)
    assert.equal("errors", v.failure)
  end)
  it("verify.unavailable wants every request to fail", function()
    assert.is_true(verify.unavailable(result({}, { http_5xx = 100 }), "v3").ok)
    local v = verify.unavailable(result({ v1 = 1 }, { http_5xx = 99 }), "v3")
    assert.is_false(v.ok)
    assert.matches("v1=1", v.reason)
  end)
end)

describe("verify Monte Carlo (seeded)", function()
  local splits = {
    { v1 = 50, v2 = 50 },
    { v1 = 50, v2 = 50, v3 = 50 },
    { v1 = 25, v2 = 75 },
    { v1 = 1, v2 = 99 },
  }

  it("false-fails at most 0.2% of 10,000 correct splits each", function()
    local rng = stats.rng(20261126)
    for _, w in ipairs(splits) do
      local names, shares = names_and_weights(w)
      local n = verify.plan(w)
      local fails = 0
      for _ = 1, 10000 do
        local v = verify.split(simulate(rng, n, names, shares), w, { planned = n })
        if not v.ok then fails = fails + 1 end
      end
      assert.is_true(fails <= 20, string.format("%s: %d false failures in 10000",
        table.concat(shares, "/"), fails))
    end
  end)

  -- every 5-point deviation of one version's share: the others absorb it in
  -- proportion (the least detectable way), and, for 3 versions, the pair move
  local function deviations(shares)
    local total = 0
    for _, s in ipairs(shares) do total = total + s end
    local p = {}
    for i, s in ipairs(shares) do p[i] = s / total end
    local out = {}
    for a = 1, #p do
      for _, d in ipairs { 0.05, -0.05 } do
        local q, ok = {}, p[a] + d >= 0 and p[a] + d <= 1
        for i = 1, #p do
          q[i] = i == a and p[a] + d or p[i] - d * p[i] / (1 - p[a])
          if q[i] < 0 then ok = false end
        end
        if ok then out[#out + 1] = q end
        if #p >= 3 then
          local b = a % #p + 1
          local r = {}
          for i = 1, #p do r[i] = p[i] end
          r[a], r[b] = p[a] + d, p[b] - d
          if r[a] >= 0 and r[b] >= 0 and r[a] <= 1 and r[b] <= 1 then out[#out + 1] = r end
        end
      end
    end
    return out
  end

  it("catches >= 99% of 5-point mis-splits at the planned size", function()
    local rng = stats.rng(7)
    for _, w in ipairs(splits) do
      local names, shares = names_and_weights(w)
      local n = verify.plan(w)
      for _, wrong in ipairs(deviations(shares)) do
        local caught = 0
        local sims = 2000
        for _ = 1, sims do
          local v = verify.split(simulate(rng, n, names, wrong), w, { planned = n })
          if not v.ok then caught = caught + 1 end
        end
        local labels = {}
        for i, q in ipairs(wrong) do labels[i] = string.format("%.3f", q) end
        assert.is_true(caught / sims >= 0.99, string.format("%s vs %s at n=%d: caught %d of %d",
          table.concat(labels, "/"), table.concat(shares, "/"), n, caught, sims))
      end
    end
  end)

  it("catches >= 95% of 0.5% leaks to a weight-0 version at the planned size", function()
    local rng = stats.rng(99)
    for _, w in ipairs { { v1 = 50, v2 = 50, v3 = 0 }, { v1 = 0, v2 = 0, v3 = 100 }, { v1 = 50, v2 = 0, v3 = 50 } } do
      local names, shares = names_and_weights(w)
      local n = verify.plan(w)
      local total = 0
      for _, s in ipairs(shares) do total = total + s end
      for z, s in ipairs(shares) do
        if s == 0 then
          local leaky = {}
          for i, x in ipairs(shares) do leaky[i] = i == z and 0.005 or 0.995 * x / total end
          local caught = 0
          for _ = 1, 2000 do
            if not verify.split(simulate(rng, n, names, leaky), w, { planned = n }).ok then
              caught = caught + 1
            end
          end
          assert.is_true(caught / 2000 >= 0.95, string.format("leak to %s at n=%d: caught %d of 2000",
            names[z], n, caught))
        end
      end
    end
  end)
end)
