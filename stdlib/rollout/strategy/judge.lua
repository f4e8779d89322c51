--- rollout.strategy.judge: the default judge of a progressive-delivery analysis.
--
-- Compares a canary against a baseline probed at the same time (active
-- analysis: every look brings fresh requests to both versions; the data
-- accumulate over the whole rollout) and decides, at each look, from the
-- cumulative data:
--   fail       evidence at the look's level that the canary is worse:
--              errors: a higher failure rate (one-sided Fisher exact test);
--              latency: slower than (1 + tolerance) x baseline + slack_ms at
--              the median or in the tail (exact exceedance tests at several
--              quantiles; this catches shifts, spread and second modes, and
--              is valid with ties and zero-heavy data);
--   pass       the canary is shown not worse beyond the margin (error-rate
--              increase below max_increase; median and p90 latency within
--              the margin), so a good canary moves on early;
--   undecided  neither yet; also any sample below min_n;
--   no_data    a side has no sample (n = 0): the caller's no-data policy.
--
-- The error rates are made to hold over a whole rollout by judge.design: a
-- Bonferroni split of the false-abort rate over the metrics and the union
-- bound over the looks with a spending schedule, so
--   P(any fail of a good canary over all looks and metrics) <= alpha
-- holds for any dependence between looks and metrics, for discrete tests and
-- for a rollout that stops early. The numerics (exact tails, bounds, order
-- statistics) are C (rollout.stats, runtime/core/stats_twosample.c); this file
-- is the policy. README: "How a canary is judged".
local stats = require "rollout.stats"

local judge = {}

judge.defaults = {
  alpha = 0.01,          -- family-wise false-abort rate of a whole rollout
  beta = 0.05,           -- per metric: P(ever pass a canary worse than the margin)
  looks = 15,            -- e.g. steps 5,10,25,50,100 x 3 intervals
  metrics = 2,           -- errors and latency
  spending = "harmonic", -- alpha_k proportional to 1/k: early looks get more
  max_increase = 0.01,   -- errors: a pass shows the increase below this
  quantiles = { 0.5, 0.9, 0.99 },      -- latency fail tests
  -- latency pass: {q, share}: at most `share` of the canary's requests slower
  -- than the margin of the baseline's q-quantile (see judge.latency)
  pass = { { 0.5, 0.5 }, { 0.9, 0.1 } },
  pass_min_p = 0.05,     -- latency passes only if every fail test has p >= this
  tolerance = 0.25,      -- latency margin: canary <= (1 + tolerance) x baseline + slack_ms
  slack_ms = 0.1,
  min_n = 100,           -- no verdict on fewer samples per side
  single_alpha = 0.001,  -- levels of a call without a design
  single_beta = 0.01,
}

local function default(opts, key)
  local v = opts and opts[key]
  if v == nil then v = judge.defaults[key] end
  return v
end

local function check_prob(v, name)
  if type(v) ~= "number" or not (v > 0 and v < 1) then
    error(string.format("judge: %s must be a number in (0, 1) (got %s)", name, tostring(v)), 3)
  end
  return v
end

local function check_count(v, name)
  if type(v) ~= "number" or v ~= math.floor(v) or v < 0 or v >= 2 ^ 53 then
    error(string.format("judge: %s must be a whole number >= 0 (got %s)", name, tostring(v)), 3)
  end
  return math.tointeger(v)
end

------------------------------------------------------------------------------
-- The sequential design

local Design = {}
Design.__index = Design

--- A design for a whole rollout: the family-wise false-abort rate `alpha` is
-- split equally over `metrics` (Bonferroni) and spent over at most `looks`
-- looks: alpha_at(k) = alpha / metrics * w_k / sum(w), with w_k = 1 / k
-- ("harmonic", the default: the first looks, where a bad canary must be
-- stopped, get more), w_k = 1 ("uniform"), or a list of positive weights.
-- The pass level beta (per metric) is spent the same way.
function judge.design(opts)
  opts = opts or {}
  local looks = opts.looks or judge.defaults.looks
  if math.type(looks) ~= "integer" or looks < 1 then
    error("judge.design: looks must be an integer >= 1", 2)
  end
  local metrics = opts.metrics or judge.defaults.metrics
  if math.type(metrics) ~= "integer" or metrics < 1 then
    error("judge.design: metrics must be an integer >= 1", 2)
  end
  local alpha = check_prob(default(opts, "alpha"), "alpha")
  local beta = check_prob(default(opts, "beta"), "beta")
  local spending = default(opts, "spending")
  local w, name = {}, spending
  if spending == "harmonic" then
    for k = 1, looks do w[k] = 1 / k end
  elseif spending == "uniform" then
    for k = 1, looks do w[k] = 1 end
  elseif type(spending) == "table" then
    if #spending ~= looks then error("judge.design: spending has " .. #spending .. " weights for " .. looks .. " looks", 2) end
    for k = 1, looks do
      local x = spending[k]
      if type(x) ~= "number" or not (x > 0) or x == math.huge then
        error("judge.design: spending weights must be positive numbers", 2)
      end
      w[k] = x
    end
    name = "custom"
  else
    error("judge.design: spending must be \"harmonic\", \"uniform\" or a list of weights", 2)
  end
  local total = 0
  for k = 1, looks do total = total + w[k] end
  local share = {}
  for k = 1, looks do share[k] = w[k] / total end
  return setmetatable({ alpha = alpha, beta = beta, looks = looks, metrics = metrics,
                        spending = name, share = share }, Design)
end

local function check_look(d, k)
  if math.type(k) ~= "integer" or k < 1 then error("judge: look must be an integer >= 1", 3) end
  if k > d.looks then
    error(string.format("judge: look %d is beyond the design's %d looks (design for more looks)", k, d.looks), 3)
  end
end

--- The significance level of one metric's fail test at look k.
function Design:alpha_at(k)
  check_look(self, k)
  return self.alpha / self.metrics * self.share[k]
end

--- The error rate of one metric's pass decision at look k.
function Design:beta_at(k)
  check_look(self, k)
  return self.beta * self.share[k]
end

--- Options for judge.errors / judge.latency at look k, merged into `extra`.
function Design:options(k, extra)
  local o = {}
  for key, v in pairs(extra or {}) do o[key] = v end
  o.alpha, o.beta = self:alpha_at(k), self:beta_at(k)
  return o
end

local function pct(x, digits)
  return (string.format("%." .. (digits or 2) .. "f", 100 * x):gsub("%.?0+$", "")) .. "%"
end

function Design:describe()
  return string.format(
    "family-wise false-abort rate ≤ %s over %d looks × %d metrics (Bonferroni over metrics, union bound over looks, %s spending: α per metric %.1e at look 1 … %.1e at look %d); a canary worse than the margin passes a metric with probability ≤ %s",
    pct(self.alpha), self.looks, self.metrics, self.spending, self:alpha_at(1),
    self:alpha_at(self.looks), self.looks, pct(self.beta))
end

------------------------------------------------------------------------------
-- Memoized bounds: a rollout asks for the same (n, q, gamma) / (x, n, gamma)
-- again and again (and a simulation thousands of times); bounded in size.

local cache, cache_size = {}, 0

local function memo(key, f, a, b, c)
  local hit = cache[key]
  if hit then return hit[1], hit[2] end
  local x, y = f(a, b, c)
  if cache_size >= 8192 then cache, cache_size = {}, 0 end
  cache[key] = { x, y }
  cache_size = cache_size + 1
  return x, y
end

local function binom_bounds(x, n, gamma)
  return memo(string.format("b%d:%d:%.17g", x, n, gamma), stats.binom_bounds, x, n, gamma)
end

local function order_bounds(n, q, gamma)
  return memo(string.format("o%d:%.17g:%.17g", n, q, gamma), stats.order_bounds, n, q, gamma)
end

------------------------------------------------------------------------------
-- Formatting

local function rate_str(x)
  if x == 0 then return "0.0%" end
  if x < 0.01 then return string.format("%.2f%%", 100 * x) end
  return string.format("%.1f%%", 100 * x)
end

local function p_str(p)
  if p == nil then return "-" end
  if p < 1e-3 then return string.format("%.1e", p) end
  return string.format("%.3f", p)
end

-- "p=0.012" / "p<1e-300"
local function p_eq(p)
  if p ~= nil and p < 1e-300 then return "p<1e-300" end
  return "p=" .. p_str(p)
end

local function ms_str(x)
  if x == math.huge then return "∞ ms" end
  local a = math.abs(x)
  if a < 1 then return string.format("%.2f ms", x) end
  if a < 100 then return string.format("%.1f ms", x) end
  return string.format("%.0f ms", x)
end

local function q_name(q)
  return "p" .. (string.format("%.10g", 100 * q))
end

-- the levels of one call: a design + look, explicit alpha/beta, or defaults
local function levels(opts)
  if opts.design then
    if opts.look == nil then error("judge: opts.design needs opts.look", 3) end
    return opts.design:alpha_at(opts.look), opts.design:beta_at(opts.look)
  end
  return check_prob(opts.alpha or judge.defaults.single_alpha, "alpha"),
         check_prob(opts.beta or judge.defaults.single_beta, "beta")
end

------------------------------------------------------------------------------
-- Error rates

local function side_counts(t, name)
  if type(t) ~= "table" then error("judge.errors: " .. name .. " must be a table {n =, errors =}", 3) end
  local n = check_count(t.n or 0, name .. ".n")
  local e = check_count(t.errors or 0, name .. ".errors")
  if e > n then error(string.format("judge.errors: %s has %d errors of %d requests", name, e, n), 3) end
  return n, e
end

--- Compares the failure rates. base / canary = cumulative {n = attempted,
-- errors = failed}. opts: alpha, beta (or design + look), max_increase,
-- min_n. Returns {outcome, p, reason, value}.
function judge.errors(base, canary, opts)
  opts = opts or {}
  local nb, xb = side_counts(base, "baseline")
  local nc, xc = side_counts(canary, "canary")
  local alpha, beta = levels(opts)
  local margin = check_prob(default(opts, "max_increase"), "max_increase")
  local min_n = check_count(default(opts, "min_n"), "min_n")
  local value = {
    metric = "errors", test = "one-sided Fisher exact", alpha = alpha, beta = beta,
    max_increase = margin, min_n = min_n,
    baseline = { n = nb, errors = xb, rate = nb > 0 and xb / nb or nil },
    canary = { n = nc, errors = xc, rate = nc > 0 and xc / nc or nil },
  }
  local v = { metric = "errors", value = value, n = { baseline = nb, canary = nc } }
  if nb == 0 or nc == 0 then
    v.outcome = "no_data"
    v.reason = (nb == 0 and nc == 0) and "no requests for either version"
      or nb == 0 and "no requests for the baseline" or "no requests for the canary"
    return v
  end
  local rb, rc = xb / nb, xc / nc
  local p = stats.fisher_greater(xb, nb, xc, nc)
  -- one-sided exact bounds, each at beta/2: hi_c - lo_b bounds the increase
  local gamma = beta / 2
  local lo_b = binom_bounds(xb, nb, gamma)
  local _, hi_c = binom_bounds(xc, nc, gamma)
  local upper = hi_c - lo_b
  v.p = p
  value.increase = rc - rb
  value.increase_upper = upper
  value.confidence = 1 - beta
  value.interval = { baseline_low = lo_b, canary_high = hi_c }
  local rates = string.format("error rate %s vs baseline %s", rate_str(rc), rate_str(rb))
  local counts = string.format("%d/%d vs %d/%d failed", xc, nc, xb, nb)
  if nb < min_n or nc < min_n then
    v.outcome = "undecided"
    v.reason = string.format("%s: sample too small (%d vs %d requests, min %d)", rates, nc, nb, min_n)
  elseif p <= alpha then
    v.outcome = "fail"
    v.reason = string.format("%s (%s ≤ α=%.1e; %s)", rates, p_eq(p), alpha, counts)
  elseif upper < margin then
    v.outcome = "pass"
    v.reason = string.format("%s: increase ≤ %s (< %s allowed) at %s confidence (%s; %s)",
      rates, rate_str(math.max(upper, 0)), pct(margin), pct(1 - beta, 3), p_eq(p), counts)
  else
    v.outcome = "undecided"
    v.reason = string.format("%s (%s): not shown worse, nor within +%s yet (increase ≤ %s; %s)",
      rates, p_eq(p), pct(margin), rate_str(math.max(upper, 0)), counts)
  end
  return v
end

------------------------------------------------------------------------------
-- Latency

local function as_sample(x, name)
  if type(x) == "table" then
    local ok, s = pcall(stats.sample, x)
    if not ok then error("judge.latency: " .. name .. ": " .. tostring(s):gsub("^.-: ", ""), 3) end
    return s
  end
  local mt = getmetatable(x)
  if type(x) == "userdata" and type(mt) == "table" and mt.__name == "rollout.stats.sample" then return x end
  error("judge.latency: " .. name .. " must be a list of latencies (ms) or a rollout.stats sample", 3)
end

--- Compares the latency distributions. base_ms / canary_ms = latencies (ms)
-- of the served requests (lists, or rollout.stats samples), cumulative.
-- opts: alpha, beta (or design + look), quantiles, pass, tolerance,
-- slack_ms, min_n.
--
-- The margin: m(x) = (1 + tolerance) * x + slack_ms.
-- Fail: at some q in `quantiles`, more canary requests are slower than
-- m(X_(r)), X_(r) being the baseline's q-quantile (its r = ceil(q nb)-th
-- smallest value), than any canary within the margin would give: the exact
-- exceedance test (rollout.stats.exceedance) at alpha / #quantiles. Valid
-- for every canary whose latency is stochastically at most m(baseline),
-- with ties and zeros; a faster canary never fails.
-- Pass: for each {q, share} in `pass`, the canary's share of requests
-- slower than m(lower bound of the baseline's q-quantile) has an upper bound
-- <= share (exact bounds, each holding with probability 1 - beta/2). With
-- share = 1 - q this is "the canary's q-quantile is within the margin of
-- the baseline's". p99 is not in the default: on heavy-tailed (loopback)
-- data its bounds stay wide for a long time and a good canary would be held
-- back; the tail is watched by the fail test at every look, and a pass also
-- needs every fail test's p >= pass_min_p (0.05): a canary within the margin
-- gives p near 1, so a smaller p means some quantile (p99 included) looks
-- worse, and the canary stays in its step until the next looks decide.
function judge.latency(base_ms, canary_ms, opts)
  opts = opts or {}
  local alpha, beta = levels(opts)
  local function quantile_list(key)
    local list = opts[key] or judge.defaults[key]
    if type(list) ~= "table" then error("judge.latency: " .. key .. " must be a list", 3) end
    for _, q in ipairs(list) do check_prob(q, key) end
    return list
  end
  local quantiles = quantile_list("quantiles")
  local pass = opts.pass or judge.defaults.pass
  if type(pass) ~= "table" then error("judge.latency: pass must be a list of {q, share}", 2) end
  for _, pq in ipairs(pass) do
    if type(pq) ~= "table" then error("judge.latency: pass must be a list of {q, share}", 2) end
    check_prob(pq[1], "pass quantile")
    check_prob(pq[2], "pass share")
  end
  if #quantiles == 0 then error("judge.latency: quantiles must not be empty", 2) end
  local tol = default(opts, "tolerance")
  local slack = default(opts, "slack_ms")
  if type(tol) ~= "number" or not (tol >= 0 and tol < math.huge) then error("judge.latency: tolerance must be >= 0", 2) end
  if type(slack) ~= "number" or not (slack >= 0 and slack < math.huge) then error("judge.latency: slack_ms must be >= 0", 2) end
  local min_n = check_count(default(opts, "min_n"), "min_n")
  local pass_min_p = default(opts, "pass_min_p")
  if type(pass_min_p) ~= "number" or not (pass_min_p >= 0 and pass_min_p < 1) then
    error("judge.latency: pass_min_p must be in [0, 1)", 2)
  end
  local b = as_sample(base_ms, "baseline")
  local c = as_sample(canary_ms, "canary")
  local nb, nc = #b, #c
  local value = {
    metric = "latency", test = "exact exceedance at baseline quantiles", alpha = alpha, beta = beta,
    tolerance = tol, slack_ms = slack, min_n = min_n, quantiles = {}, pass = {},
    baseline = { n = nb }, canary = { n = nc },
  }
  local v = { metric = "latency", value = value, n = { baseline = nb, canary = nc } }
  if nb == 0 or nc == 0 then
    v.outcome = "no_data"
    v.reason = (nb == 0 and nc == 0) and "no latencies for either version"
      or nb == 0 and "no latencies for the baseline" or "no latencies for the canary"
    return v
  end
  if b:order(1) < 0 or c:order(1) < 0 then error("judge.latency: latencies must be >= 0", 2) end
  local function margin(x) return (1 + tol) * x + slack end
  local per_q = alpha / #quantiles
  local margin_str = string.format("%g × baseline + %s", 1 + tol, ms_str(slack))

  -- fail: the exceedance test at each quantile
  local worst
  for i, q in ipairs(quantiles) do
    local r = math.min(nb, math.max(1, math.ceil(q * nb - 1e-9 * nb)))
    local xr = b:order(r)
    local threshold = margin(xr)
    local above = c:above(threshold)
    local expected = (nb - r + 1) / (nb + 1) -- the mean share at the margin
    local row = {
      q = q, baseline = xr, canary = c:quantile(q), threshold = threshold, above = above,
      expected = expected, p = stats.exceedance(above, nc, r, nb),
    }
    -- standardized excess: ranks quantiles whose p underflowed to 0
    row.z = (above / nc - expected) / math.sqrt(expected * (1 - expected) / nc + 1e-300)
    value.quantiles[i] = row
    if not worst or row.p < worst.p or (row.p == worst.p and row.z > worst.z) then worst = row end
  end
  v.p = worst.p

  -- pass: at each {q, share} of `pass`, the canary's share slower than the
  -- margin of a lower bound of the baseline's q-quantile is shown <= share
  local gamma = beta / 2
  local all_pass, furthest = true, nil
  for i, pq in ipairs(pass) do
    local q, share = pq[1], pq[2]
    local l = order_bounds(nb, q, gamma)
    local lower_b = l >= 1 and b:order(l) or 0
    local limit = margin(lower_b)
    local slower = c:above(limit)
    -- the largest count whose one-sided upper bound is still <= share
    local _, u = order_bounds(nc, 1 - share, gamma)
    local allowed = nc - u
    local row = { q = q, share = share, baseline = b:quantile(q), canary = c:quantile(q),
                  baseline_low = lower_b, limit = limit, slower = slower, allowed = allowed,
                  pass = slower <= allowed }
    value.pass[i] = row
    if not row.pass then
      all_pass = false
      local gap = (slower + 1) / (math.max(allowed, 0) + 1)
      if not furthest or gap > furthest.gap then furthest = { row = row, gap = gap } end
    end
  end

  if nb < min_n or nc < min_n then
    v.outcome = "undecided"
    v.reason = string.format("latency: sample too small (%d vs %d, min %d)", nc, nb, min_n)
  elseif worst.p <= per_q then
    v.outcome = "fail"
    v.reason = string.format("%s latency %s vs baseline %s (%s ≤ α=%.1e; %d of %d canary requests slower than %s = %s, ≤ %s expected)",
      q_name(worst.q), ms_str(worst.canary), ms_str(worst.baseline), p_eq(worst.p), per_q, worst.above, nc,
      margin_str:gsub("baseline", ms_str(worst.baseline)), ms_str(worst.threshold), rate_str(worst.expected))
  elseif all_pass and worst.p >= pass_min_p then
    v.outcome = "pass"
    local parts = {}
    for _, row in ipairs(value.pass) do
      parts[#parts + 1] = string.format("%s %s vs %s", q_name(row.q), ms_str(row.canary), ms_str(row.baseline))
    end
    v.reason = string.format("latency within %s (%s; at %s confidence; smallest %s at %s)",
      margin_str, table.concat(parts, ", "), pct(1 - beta, 3), p_eq(worst.p), q_name(worst.q))
  elseif all_pass then
    v.outcome = "undecided"
    v.reason = string.format("%s latency %s vs baseline %s looks worse (%s < %g), not yet shown (α=%.1e)",
      q_name(worst.q), ms_str(worst.canary), ms_str(worst.baseline), p_eq(worst.p), pass_min_p, per_q)
  else
    local row = furthest.row
    v.outcome = "undecided"
    v.reason = string.format("latency not shown worse (smallest %s at %s), nor within %s yet: %d of %d canary requests slower than %s (the margin of the baseline's %s), %d allowed for ≤ %s",
      p_eq(worst.p), q_name(worst.q), margin_str, row.slower, nc, ms_str(row.limit), q_name(row.q),
      math.max(row.allowed, 0), rate_str(row.share))
  end
  return v
end

------------------------------------------------------------------------------
-- Planning

-- Smallest m >= lo with f(m) >= target, f roughly increasing (exponential
-- search, bisection, then a few steps up so that a slightly larger sample
-- keeps the target: exact power saw-tooths with n).
local function smallest(f, target, lo)
  lo = math.max(1, lo or 1)
  if f(lo) >= target then return lo end
  local hi = lo * 2
  while f(hi) < target do
    lo = hi
    hi = hi * 2
    if hi > 1e7 then error("judge.plan: no sample size up to 1e7 reaches the target", 3) end
  end
  while hi - lo > 1 do
    local mid = (lo + hi) // 2
    if f(mid) >= target then hi = mid else lo = mid end
  end
  local m, extra = hi, 1
  while extra <= 8 do
    if f(m + extra) < target then m, extra = m + extra + 1, 1 else extra = extra + 1 end
  end
  return m
end

judge.plan_defaults = {
  steps = { 5, 10, 25, 50, 100 },
  intervals = 3,          -- looks per step
  catch_weight = 20,      -- a bad canary is stopped before any weight above this
  baseline_error = 0.005, -- the baseline's failure rate planned for (0 is planned too)
  bad_error = 0.05,       -- the canary failure rate that must be caught ...
  power = 0.99,           -- ... with this probability (planned with half the miss rate)
  pass_power = 0.95,      -- a good canary passes within the first step (idem)
  tail_share = 0.10,      -- latency: a second mode this common beyond the margin of the
                          -- baseline's highest quantile is caught within the first step
}

local function plan_opt(opts, key)
  local v = opts[key]
  if v == nil then v = judge.plan_defaults[key] end
  if v == nil then v = judge.defaults[key] end
  return v
end

--- Requests per look per version for an active analysis over a whole
-- rollout, so that with the design's error rates:
--   * a canary failing bad_error of its requests is caught before a weight
--     above catch_weight is applied (within the looks of those steps) with
--     probability >= power, for a baseline failing 0 or baseline_error;
--   * a good canary (same failure rate as the baseline, 0 or baseline_error)
--     passes the error metric within the first step's looks with
--     probability >= pass_power;
--   * a latency second mode of tail_share beyond the margin of the highest
--     quantile is caught within the first step with probability >= power;
--   * the first look already has min_n per side.
-- Each probability is computed exactly for the single best look of the
-- window (a lower bound for "within the window") and planned with half the
-- allowed miss rate. opts: the keys of judge.plan_defaults, and alpha, beta,
-- metrics, spending, max_increase, quantiles, min_n (or design =).
-- Returns {requests =, looks =, design =, catch_looks =, pass_looks =,
-- by = {errors_catch =, errors_pass =, latency_catch =, min_n =}, ...}.
function judge.plan(opts)
  opts = opts or {}
  local steps = plan_opt(opts, "steps")
  local intervals = plan_opt(opts, "intervals")
  if type(steps) ~= "table" or #steps == 0 then error("judge.plan: steps must be a non-empty list of weights", 2) end
  if math.type(intervals) ~= "integer" or intervals < 1 then error("judge.plan: intervals must be an integer >= 1", 2) end
  local looks = #steps * intervals
  local d = opts.design or judge.design {
    alpha = opts.alpha, beta = opts.beta, looks = looks, metrics = opts.metrics, spending = opts.spending,
  }
  if d.looks < looks then error("judge.plan: the design covers fewer looks than the steps need", 2) end
  local catch_weight = plan_opt(opts, "catch_weight")
  local catch_steps = 0
  for _, w in ipairs(steps) do
    if w <= catch_weight then catch_steps = catch_steps + 1 else break end
  end
  catch_steps = math.max(catch_steps, 1)
  local catch_looks, pass_looks = catch_steps * intervals, intervals
  local base_err = plan_opt(opts, "baseline_error")
  local bad = check_prob(plan_opt(opts, "bad_error"), "bad_error")
  local power = check_prob(plan_opt(opts, "power"), "power")
  local pass_power = check_prob(plan_opt(opts, "pass_power"), "pass_power")
  local margin = check_prob(plan_opt(opts, "max_increase"), "max_increase")
  local tail = check_prob(plan_opt(opts, "tail_share"), "tail_share")
  local quantiles = plan_opt(opts, "quantiles")
  local min_n = plan_opt(opts, "min_n")
  local qmax = 0
  for _, q in ipairs(quantiles) do qmax = math.max(qmax, q) end
  local target = 1 - (1 - power) / 2
  local pass_target = 1 - (1 - pass_power) / 2
  local rates = { 0 }
  if base_err > 0 then rates[2] = base_err end

  local function errors_catch(m)
    local worst = 1
    for _, p0 in ipairs(rates) do
      local best = 0
      for k = 1, catch_looks do
        best = math.max(best, stats.fisher_power(k * m, p0, k * m, bad, d:alpha_at(k)))
      end
      worst = math.min(worst, best)
    end
    return worst
  end
  local function errors_pass(m)
    local worst = 1
    for _, p0 in ipairs(rates) do
      local best = 0
      for k = 1, pass_looks do
        best = math.max(best, stats.diff_pass_prob(k * m, p0, k * m, p0, d:beta_at(k) / 2, margin))
      end
      worst = math.min(worst, best)
    end
    return worst
  end
  local function latency_catch(m)
    local best = 0
    for k = 1, intervals do
      local n = k * m
      local r = math.min(n, math.ceil(qmax * n))
      local crit = stats.exceed_crit(n, r, n, d:alpha_at(k) / #quantiles)
      if crit <= n then best = math.max(best, stats.binom_sf(crit, n, tail)) end
    end
    return best
  end
  local by = {
    errors_catch = smallest(errors_catch, target),
    errors_pass = smallest(errors_pass, pass_target),
    latency_catch = smallest(latency_catch, target),
    min_n = min_n,
  }
  local m = math.max(by.errors_catch, by.errors_pass, by.latency_catch, by.min_n)
  local plan = {
    requests = m, looks = looks, design = d, steps = steps, intervals = intervals,
    catch_looks = catch_looks, pass_looks = pass_looks, by = by,
    power = { errors_catch = errors_catch(m), errors_pass = errors_pass(m), latency_catch = latency_catch(m) },
  }
  plan.summary = string.format(
    "%d requests per version per look, %d looks (%d steps × %d); a %s-error canary caught within %d looks (P ≥ %.4f), a good canary passes errors within %d looks (P ≥ %.4f) for baseline error rates 0–%s; %s",
    m, looks, #steps, intervals, rate_str(bad), catch_looks, plan.power.errors_catch, pass_looks,
    plan.power.errors_pass, rate_str(base_err), d:describe())
  return plan
end

------------------------------------------------------------------------------
-- Simulation: whole rollouts through this judge, with no network

local function model_of(t, name)
  t = t or {}
  local m = {}
  for _, k in ipairs { "median_ms", "sigma", "shift_ms", "tail_share", "tail_ms", "spike_share", "spike_ms",
                       "resolution_ms" } do
    m[k] = t[k]
  end
  if m.median_ms == nil then m.median_ms = 0.4 end
  if m.sigma == nil then m.sigma = 0.5 end
  if type(m.median_ms) ~= "number" then error("judge.simulate: " .. name .. ".latency.median_ms must be a number", 3) end
  return m
end

--- Simulates `runs` whole rollouts (seeded, deterministic) and returns how
-- they ended. Each look probes both versions with plan.requests requests:
-- failures are Binomial(requests, error) per version, latencies follow
-- rollout.stats' latency model (lognormal body median_ms/sigma, shift_ms, a
-- second mode tail_share/tail_ms, a coarse timer resolution_ms).
-- opts = {
--   runs =, seed =, plan = judge.plan{...} (or a table with requests, steps,
--   intervals, design),
--   baseline = {error =, latency = {...}}, canary = {error =, latency = {...}},
--   metrics = {"errors", "latency"},      -- which are judged
--   schedule = "advance" (a step ends at its first look where every metric
--              passes, as a strategy does) | "all" (every look of every
--              step: the most looks, the worst case for false aborts),
--   judge = {...}                         -- options for errors/latency
-- }
-- Returns {runs, aborted, abort_rate, aborted_by = {metric = n},
--   abort_steps = {step index = n}, first_pass = {look = n} (first look
--   where every metric passed), passed_first_step, requests_to_decision
--   (mean requests, both versions, until the first fail or all-pass),
--   looks (mean looks run), example (the reason of the first abort)}.
function judge.simulate(opts)
  local runs = opts.runs or 1000
  local plan = opts.plan or judge.plan(opts.plan_opts)
  local m, steps, intervals, d = plan.requests, plan.steps, plan.intervals, plan.design
  local metrics = opts.metrics or { "errors", "latency" }
  local schedule = opts.schedule or "advance"
  if schedule ~= "advance" and schedule ~= "all" then error("judge.simulate: schedule must be \"advance\" or \"all\"", 2) end
  local use = {}
  for _, name in ipairs(metrics) do use[name] = true end
  local base, can = opts.baseline or {}, opts.canary or {}
  local eb_rate, ec_rate = base.error or 0, can.error or 0
  local bm, cm = model_of(base.latency, "baseline"), model_of(can.latency, "canary")
  local rng = stats.rng(opts.seed or 1)
  local jopts = opts.judge or {}
  local res = { runs = runs, aborted = 0, aborted_by = {}, abort_steps = {}, first_pass = {},
                passed_first_step = 0, requests_to_decision = 0, looks = 0 }
  for _ = 1, runs do
    local nb, nc, xb, xc = 0, 0, 0, 0
    local lb, lc = stats.sample(), stats.sample()
    local k, decided_at, first_pass, aborted = 0, nil, nil, false
    for si = 1, #steps do
      for _ = 1, intervals do
        k = k + 1
        local fb, fc = rng:binomial(m, eb_rate), rng:binomial(m, ec_rate)
        nb, nc, xb, xc = nb + m, nc + m, xb + fb, xc + fc
        if use.latency then
          lb:simulate(rng, m - fb, bm)
          lc:simulate(rng, m - fc, cm)
        end
        local o = d:options(k, jopts)
        local all_pass, fail = true, nil
        if use.errors then
          local v = judge.errors({ n = nb, errors = xb }, { n = nc, errors = xc }, o)
          if v.outcome == "fail" then fail = v elseif v.outcome ~= "pass" then all_pass = false end
        end
        if use.latency and not fail then
          local v = judge.latency(lb, lc, o)
          if v.outcome == "fail" then fail = v elseif v.outcome ~= "pass" then all_pass = false end
        end
        if fail then
          aborted = true
          res.aborted = res.aborted + 1
          res.aborted_by[fail.metric] = (res.aborted_by[fail.metric] or 0) + 1
          res.abort_steps[si] = (res.abort_steps[si] or 0) + 1
          res.example = res.example or fail.reason
          decided_at = decided_at or k
          break
        end
        if all_pass then
          first_pass = first_pass or k
          decided_at = decided_at or k
          if schedule == "advance" then break end
        end
      end
      if aborted then break end
    end
    res.looks = res.looks + k
    if first_pass then
      res.first_pass[first_pass] = (res.first_pass[first_pass] or 0) + 1
      if first_pass <= intervals and not (aborted and decided_at < first_pass) then
        res.passed_first_step = res.passed_first_step + 1
      end
    end
    res.requests_to_decision = res.requests_to_decision + 2 * m * (decided_at or k)
  end
  res.abort_rate = res.aborted / runs
  res.looks = res.looks / runs
  res.requests_to_decision = res.requests_to_decision / runs
  res.requests = m
  return res
end

return judge
