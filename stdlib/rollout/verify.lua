--- rollout.verify: verdicts you can trust.
--
-- A probe result (rollout.probe.run) is judged against the weights with
-- statistics instead of wide ranges:
--   * a version whose weight is 0 that serves any default-route request fails
--     the check at once (so does a version that is not in the weights);
--   * transport and HTTP errors are judged against an error budget and never
--     folded into the split;
--   * a sample smaller than the plan is reported as such, not passed;
--   * the per-version counts are tested against the expected shares
--     (goodness of fit) at a stated false-alarm rate alpha.
-- The plan (how many requests) is chosen so that a deviation of `delta`
-- (default 5 points) in any version's share is caught with probability
-- `power` (default 99%) at alpha (default 0.001), and a leak of `leak`
-- (default 0.5%) of the traffic to a weight-0 version is seen with the same
-- power.
local stats = require "rollout.stats"
local weights_lib = require "rollout.weights"

local verify = {}

-- Verdicts carry a name the REPL displays them by (rollout.display); JSON
-- still encodes them as objects.
local VERDICT = { __name = "rollout.verdict", __jsontype = "object" }

verify.defaults = {
  alpha = 0.001,        -- false-alarm rate of the goodness-of-fit test
  delta = 0.05,         -- the smallest deviation of a share that must be caught
  power = 0.99,         -- probability of catching it
  leak = 0.005,         -- the smallest leak to a weight-0 version that must be seen
  error_budget = 0.01,  -- share of requests allowed to fail (reported separately)
  confidence = 0.99,    -- confidence of the per-version intervals shown
  min_requests = 100,   -- never judge on fewer
}

verify.Verdict = VERDICT

--- Marks a table as a verdict (for verdicts made elsewhere) and returns it.
function verify.verdict(v) return setmetatable(v, VERDICT) end

local function option(opts, key)
  local v = opts and opts[key]
  if v == nil then v = verify.defaults[key] end
  return v
end

--- Normalises weights ({v1=50} or {{name=,weight=}}) into a sorted list of
-- {name=, weight=}; validates them (raises on invalid weights).
function verify.weight_list(weights)
  local ok, err = weights_lib.validate(weights)
  if not ok then error("invalid weights: " .. err, 2) end
  local list = {}
  if #weights > 0 then
    for _, e in ipairs(weights) do list[#list + 1] = { name = e.name, weight = math.tointeger(e.weight) } end
  else
    for name, w in pairs(weights) do list[#list + 1] = { name = name, weight = math.tointeger(w) } end
  end
  table.sort(list, function(a, b) return a.name < b.name end)
  return list
end

local plan_cache = {}

--- How many served requests a verification of these weights needs.
-- Returns n and a table explaining it {split =, leak =, alpha =, delta =, power =}.
function verify.plan(weights, opts)
  local list = verify.weight_list(weights)
  local shares, positive, zero = {}, 0, 0
  for i, e in ipairs(list) do
    shares[i] = e.weight
    if e.weight > 0 then positive = positive + 1 else zero = zero + 1 end
  end
  local alpha, delta, power = option(opts, "alpha"), option(opts, "delta"), option(opts, "power")
  -- Plan for half the allowed miss rate: the stated power then holds with a
  -- margin (the exact power saw-tooths with n, and served counts vary a
  -- little with errors).
  local target = 1 - (1 - power) / 2
  local split_n = 0
  if positive >= 2 then
    local key = table.concat(shares, ",") .. "|" .. alpha .. "|" .. delta .. "|" .. target
    split_n = plan_cache[key]
    if not split_n then
      split_n = stats.plan(shares, { alpha = alpha, delta = delta, power = target })
      plan_cache[key] = split_n
    end
  end
  local leak_n = 0
  if zero > 0 or positive == 1 then
    -- with one positive version, a leak to anything else is the only failure
    leak_n = stats.plan_leak(option(opts, "leak"), target)
  end
  local n = math.max(split_n, leak_n, option(opts, "min_requests"))
  return n, { split = split_n, leak = leak_n, alpha = alpha, delta = delta, power = power,
              leak_rate = option(opts, "leak") }
end

--- Requests to send so that, with errors within the budget, at least the
-- planned number are served.
function verify.requests(weights, opts)
  local n = verify.plan(weights, opts)
  return math.ceil(n / (1 - option(opts, "error_budget")))
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

local function error_kinds(result)
  local kinds, total = {}, 0
  for kind, c in pairs(result.errors or {}) do
    kinds[kind] = c
    total = total + c
  end
  return kinds, result.error_total or total
end

local function served_total(result)
  local n = 0
  for _, c in pairs(result.counts or {}) do n = n + c end
  return n
end

--- Per version, the requests the gateway routed to it: those it served and
-- those it answered with an error (attributed by the probe). Returns
-- { [version] = { routed =, served =, errors =, kinds = {kind = n} } }.
function verify.per_version(result)
  local out = {}
  for v, c in pairs(result.counts or {}) do out[v] = { routed = c, served = c, errors = 0, kinds = {} } end
  for v, kinds in pairs(result.errors_by_version or {}) do
    local e = out[v] or { routed = 0, served = 0, errors = 0, kinds = {} }
    for k, c in pairs(kinds) do
      e.kinds[k] = c
      e.errors = e.errors + c
    end
    e.routed = e.served + e.errors
    out[v] = e
  end
  return out
end

local function kinds_text(kinds)
  local list = {}
  for _, k in ipairs(sorted_keys(kinds)) do
    if kinds[k] > 0 then list[#list + 1] = k .. "=" .. kinds[k] end
  end
  return table.concat(list, " ")
end
verify.kinds_text = kinds_text

--- The versions whose own error rate is over `budget`: a list of
-- { version =, errors =, routed =, rate =, kinds = } (sorted by version) and
-- a message naming each, e.g. "v2: 60 of 1723 requests failed (3.5%,
-- budget 1.0%; http_5xx=60)".
function verify.version_errors(result, budget)
  local bad, parts = {}, {}
  local per = verify.per_version(result)
  for _, v in ipairs(sorted_keys(per)) do
    local e = per[v]
    if e.errors > 0 and e.errors > budget * e.routed then
      bad[#bad + 1] = { version = v, errors = e.errors, routed = e.routed, rate = e.errors / e.routed,
                        kinds = e.kinds }
      parts[#parts + 1] = string.format("%s: %d of %d requests failed (%s, budget %s; %s)", v, e.errors,
        e.routed, string.format("%.1f%%", 100 * e.errors / e.routed), string.format("%.1f%%", 100 * budget),
        kinds_text(e.kinds))
    end
  end
  return bad, table.concat(parts, "; ")
end

local function pct(x) return string.format("%.1f%%", 100 * x) end

--- Judges a probe result against weights. Returns a verdict:
-- {ok, reason, n, p_value, method, errors, error_kinds, rows = {{version,
-- weight, expected, observed, count, ci_low, ci_high}}, planned, alpha, ...}
function verify.split(result, weights, opts)
  local list = verify.weight_list(weights)
  local alpha, confidence = option(opts, "alpha"), option(opts, "confidence")
  local budget = option(opts, "error_budget")
  local planned = (opts and opts.planned) or verify.plan(weights, opts)
  -- the split is the gateway's routing: a request a version answered with
  -- an error was routed to it all the same
  local per = verify.per_version(result)
  local counts = {}
  for name, e in pairs(per) do counts[name] = e.routed end
  local kinds, errors = error_kinds(result)
  local n = 0
  for _, c in pairs(counts) do n = n + c end
  local unattributed = errors - (n - served_total(result))
  local attempted = n + unattributed

  local v = setmetatable({
    ok = false, n = n, errors = errors, error_kinds = kinds, error_budget = budget,
    alpha = alpha, confidence = confidence, planned = planned, rows = {},
    attempted = attempted, errors_by_version = result.errors_by_version or {},
    errors_unattributed = unattributed,
  }, VERDICT)

  -- rows: every weighted version, then anything unexpected that served
  local total_weight, known = 0, {}
  for _, e in ipairs(list) do total_weight = total_weight + e.weight; known[e.name] = e end
  local observed_list, shares = {}, {}
  for i, e in ipairs(list) do
    local c = counts[e.name] or 0
    local lo, hi = stats.wilson(c, n, confidence)
    v.rows[#v.rows + 1] = {
      version = e.name, weight = e.weight, expected = e.weight / total_weight,
      observed = n > 0 and c / n or 0, count = c, ci_low = lo, ci_high = hi,
      errors = per[e.name] and per[e.name].errors or 0,
    }
    observed_list[i], shares[i] = c, e.weight
  end
  local unexpected = {}
  for _, name in ipairs(sorted_keys(counts)) do
    if not known[name] and counts[name] > 0 then
      local c = counts[name]
      local lo, hi = stats.wilson(c, n, confidence)
      v.rows[#v.rows + 1] = { version = name, expected = 0, observed = c / n, count = c,
                              ci_low = lo, ci_high = hi, errors = per[name].errors }
      unexpected[#unexpected + 1] = string.format("%s (not in the weights) served %d", name, c)
    end
  end

  -- 1. a weight-0 version (or an unknown one) that served anything: fail
  local leaks = {}
  for _, e in ipairs(list) do
    local c = counts[e.name] or 0
    if e.weight == 0 and c > 0 then
      local errs = per[e.name] and per[e.name].errors or 0
      leaks[#leaks + 1] = string.format("%s has weight 0 but served %d request%s%s", e.name, c,
        c == 1 and "" or "s", errs > 0 and string.format(" (%d answered with errors)", errs) or "")
    end
  end
  for _, u in ipairs(unexpected) do leaks[#leaks + 1] = u end
  if #leaks > 0 then
    v.reason = table.concat(leaks, "; ")
    v.failure = "leak"
    return v
  end

  -- 2. errors against the budget, reported separately from the split: each
  --    version's own errors (a version failing 20% of its requests must not
  --    hide in a small share), then all of them
  local bad, why = verify.version_errors(result, budget)
  if #bad > 0 then
    v.reason = "errors: " .. why
    v.failure = "errors"
    v.failing_versions = bad
    return v
  end
  if attempted > 0 and errors > budget * attempted then
    v.reason = string.format("errors: %d of %d requests failed (%s, budget %s; %s)", errors, attempted,
      pct(errors / attempted), pct(budget), kinds_text(kinds))
    if unattributed > 0 then
      v.reason = v.reason .. string.format("; %d not attributable to a version", unattributed)
    end
    v.failure = "errors"
    return v
  end

  -- 3. the goodness of fit (computed before the sample-size check so that a
  --    small sample still shows its p-value)
  if n > 0 then
    local p, method = stats.gof(observed_list, shares)
    v.p_value, v.method = p, method
  end

  -- 4. too small a sample proves nothing
  if n < planned then
    v.reason = string.format("sample too small: %d served, the plan needs %d for %s power", n,
      planned, pct(option(opts, "power")))
    v.failure = "sample"
    return v
  end

  if v.p_value and v.p_value < alpha then
    v.reason = string.format("split differs from the weights (p=%s < α=%g)",
      require("rollout.ui").format_p(v.p_value), alpha)
    v.failure = "split"
    return v
  end

  v.ok = true
  v.summary = string.format("split matches the weights (n=%d, p=%s)", n,
    require("rollout.ui").format_p(v.p_value or 1))
  return v
end

--- Header routing: every request must be served by `version`.
-- opts.error_budget defaults to 0 here: a header request that fails is a
-- failure of the route.
function verify.header(result, version, opts)
  local budget = opts and opts.error_budget or 0
  local counts = result.counts or {}
  local n = served_total(result)
  local kinds, errors = error_kinds(result)
  local planned = (opts and opts.planned) or 0
  local v = setmetatable({ ok = false, n = n, errors = errors, error_kinds = kinds, error_budget = budget,
                           planned = planned, rows = {}, confidence = option(opts, "confidence") }, VERDICT)
  local others = {}
  for _, name in ipairs(sorted_keys(counts)) do
    local c = counts[name]
    local lo, hi = stats.wilson(c, math.max(n, c), v.confidence)
    v.rows[#v.rows + 1] = { version = name, expected = name == version and 1 or 0,
                            observed = n > 0 and c / n or 0, count = c, ci_low = lo, ci_high = hi }
    if name ~= version and c > 0 then
      others[#others + 1] = string.format("%s served %d", name, c)
    end
  end
  if not counts[version] then
    table.insert(v.rows, 1, { version = version, expected = 1, observed = 0, count = 0 })
  end
  if #others > 0 then
    v.reason = string.format("requests for %s were served by another version: %s", version,
      table.concat(others, ", "))
    v.failure = "misrouted"
    return v
  end
  if errors > budget * (n + errors) then
    local list = {}
    for _, k in ipairs(sorted_keys(kinds)) do
      if kinds[k] > 0 then list[#list + 1] = k .. "=" .. kinds[k] end
    end
    v.reason = string.format("errors: %d of %d requests for %s failed (%s)", errors, n + errors,
      version, table.concat(list, " "))
    v.failure = "errors"
    return v
  end
  if n < planned or n == 0 then
    v.reason = string.format("sample too small: %d served, need %d", n, math.max(planned, 1))
    v.failure = "sample"
    return v
  end
  v.ok = true
  v.summary = string.format("all %d requests with the header were served by %s", n, version)
  return v
end

--- A version that must be unreachable (deleted or down): every request with
-- its header must fail (HTTP 5xx or refused), none served by anything.
function verify.unavailable(result, version)
  local counts = result.counts or {}
  local n = served_total(result)
  local kinds, errors = error_kinds(result)
  local v = setmetatable({ ok = false, n = n, errors = errors, error_kinds = kinds, rows = {} }, VERDICT)
  if n > 0 then
    local served = {}
    for _, name in ipairs(sorted_keys(counts)) do served[#served + 1] = name .. "=" .. counts[name] end
    v.reason = string.format("requests for %s were served (%s); expected every one to fail",
      version, table.concat(served, " "))
    v.failure = "served"
    return v
  end
  if errors == 0 then
    v.reason = "no requests were made"
    v.failure = "sample"
    return v
  end
  v.ok = true
  v.summary = string.format("all %d requests for %s failed as expected (%s)", errors, version,
    (function()
      local l = {}
      for _, k in ipairs(sorted_keys(kinds)) do if kinds[k] > 0 then l[#l + 1] = k .. "=" .. kinds[k] end end
      return table.concat(l, " ")
    end)())
  return v
end

return verify
