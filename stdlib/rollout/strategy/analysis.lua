--- rollout.strategy.analysis: metrics, measurements and their verdicts.
--
-- A metric is declared in Lua:
--
--   analysis.metric {
--     name = "error-rate",
--     provider = analysis.providers.errors(),  -- what measures (see below)
--     interval = 10, count = 3, initial_delay = 0,
--     success = function(value) return value < 0.01 end,   -- optional
--     failure = function(value) return value > 0.05 end,   -- optional
--     failure_limit = 0, inconclusive_limit = 0, consecutive_error_limit = 4,
--     consecutive_success_limit = nil,         -- end early after N passes in a row
--     extra_looks = count,                     -- judged: more looks while undecided
--     no_data = "inconclusive",                -- or "fail" / "pass"
--     on_nan = "inconclusive",                 -- NaN / ±Inf values: or "fail" / "pass"
--     dry_run = false,                         -- measured and shown, never decides
--   }
--
-- The semantics are Argo Rollouts' AnalysisTemplate
-- (argoproj/argo-rollouts analysis/analysis.go, utils/evaluate/evaluate.go):
--   * a measurement with a value is judged by the conditions: success only
--     -> pass when true, else fail; failure only -> fail when true, else
--     pass; both -> fail when failure is true, pass when success is true,
--     else inconclusive; neither -> pass. A condition that raises is an
--     error.
--   * errors (the provider could not measure) do not count towards `count`;
--     the metric is in error after more than consecutive_error_limit in a
--     row (default 4: the 5th), failed after more than failure_limit
--     failures (default 0: the first), inconclusive after more than
--     inconclusive_limit (default 0).
--   * the analysis ends at once when a metric fails, errs or is
--     inconclusive; it passes when every metric has its `count` measurements
--     (or consecutive_success_limit passes in a row). dry_run metrics never
--     end it.
-- Where rollout differs (README, "Analysis"):
--   * no data is an outcome of its own, never a crash or a silent pass: an
--     empty answer is turned into pass / fail / inconclusive by the metric's
--     `no_data` policy (Argo errs on an empty Prometheus vector, Flagger
--     fails), and recorded as "no data";
--   * NaN and infinite values are never compared: `on_nan` decides;
--   * judged metrics (canary against baseline, rollout.strategy.judge) decide from
--     all the data of the rollout so far: an undecided look is
--     "inconclusive (undecided)" and does not count: the metric looks again,
--     `count` times and then up to `extra_looks` more (default: count; the
--     sequential design reserves them), and is inconclusive only when the
--     last is still undecided; a decided pass ends the metric early (a good
--     canary is not held back) unless `consecutive_success_limit` asks for
--     more.
--
-- Providers measure. Each is a table with :measure(ctx) returning a
-- measurement { value =, n =, query =, raw =, outcome = (judged), reason = }
-- or { no_data = true, reason = } — or raising / returning nil, message for
-- an error. Shipped: analysis.providers.errors / latency (active probes of
-- the canary and the baseline through the version header, judged by
-- rollout.strategy.judge), .gateway_errors (passive: the gateway's own counters),
-- .fn(function(ctx) ... end) (any Lua), and rollout.metrics.prometheus.
local errors = require "rollout.errors"
local time = require "rollout.time"

local analysis = {}

analysis.OUTCOMES = { pass = true, fail = true, inconclusive = true, no_data = true, error = true }

local defaults = {
  interval = 10, count = 3, initial_delay = 0, failure_limit = 0, inconclusive_limit = 0,
  consecutive_error_limit = 4, no_data = "inconclusive", on_nan = "inconclusive", dry_run = false,
}
analysis.defaults = defaults

local POLICIES = { inconclusive = true, fail = true, pass = true }

--- Declares a metric: checks its fields (a refusal, exit 2, names the bad
-- one) and fills the defaults. Returns the metric.
function analysis.metric(def)
  if type(def) ~= "table" then errors.refuse("analysis.metric needs a table") end
  local name = def.name
  if type(name) ~= "string" or not name:match("^[%w][%w%-_%.]*$") then
    errors.refuse("metric name must be a word like error-rate (got " .. tostring(name) .. ")")
  end
  local m = {}
  for k, v in pairs(def) do m[k] = v end
  for k, v in pairs(defaults) do if m[k] == nil then m[k] = v end end
  local function bad(field, what)
    errors.refuse(string.format("metric %s: %s %s (got %s)", name, field, what, tostring(m[field])))
  end
  if type(m.provider) ~= "table" or type(m.provider.measure) ~= "function" then
    bad("provider", "must be a provider (analysis.providers.*)")
  end
  for _, f in ipairs { "interval", "initial_delay" } do
    if type(m[f]) ~= "number" or m[f] ~= m[f] or m[f] < 0 or m[f] == math.huge then bad(f, "must be seconds >= 0") end
  end
  for _, f in ipairs { "count", "failure_limit", "inconclusive_limit", "consecutive_error_limit" } do
    if math.type(m[f]) ~= "integer" and not (type(m[f]) == "number" and m[f] == math.floor(m[f])) then
      bad(f, "must be an integer")
    end
    m[f] = math.tointeger(m[f])
  end
  if m.count < 1 then bad("count", "must be >= 1") end
  if m.extra_looks ~= nil and (math.type(m.extra_looks) ~= "integer" or m.extra_looks < 0) then
    bad("extra_looks", "must be an integer >= 0")
  end
  if m.failure_limit < -1 then bad("failure_limit", "must be >= -1 (-1: never fails)") end
  if m.consecutive_success_limit ~= nil and (math.type(m.consecutive_success_limit) ~= "integer"
      or m.consecutive_success_limit < 1) then
    bad("consecutive_success_limit", "must be an integer >= 1")
  end
  if not POLICIES[m.no_data] then bad("no_data", "must be inconclusive, fail or pass") end
  if not POLICIES[m.on_nan] then bad("on_nan", "must be inconclusive, fail or pass") end
  for _, f in ipairs { "success", "failure" } do
    if m[f] ~= nil and type(m[f]) ~= "function" then bad(f, "must be a function(value) -> boolean") end
  end
  m.judged = m.provider.judged == true
  return m
end

local function finite(x) return type(x) == "number" and x == x and x ~= math.huge and x ~= -math.huge end

--- Judges one measurement of metric `m`: sets .outcome ("pass", "fail",
-- "inconclusive", "no_data", "error"), .effect (what it counts as: pass /
-- fail / inconclusive / error) and .reason. Exposed for tests.
function analysis.evaluate(m, meas)
  if meas.error then
    meas.outcome, meas.effect = "error", "error"
    return meas
  end
  if meas.no_data then
    meas.outcome, meas.effect = "no_data", m.no_data
    meas.reason = (meas.reason or "no data") .. string.format(" (no_data = %s)", m.no_data)
    return meas
  end
  if meas.outcome then -- a judged measurement decided by its provider
    meas.effect = meas.outcome == "no_data" and m.no_data or meas.outcome
    if meas.outcome == "no_data" then
      meas.reason = (meas.reason or "no data") .. string.format(" (no_data = %s)", m.no_data)
    end
    return meas
  end
  local v = meas.value
  if type(v) == "number" and not finite(v) then
    meas.outcome = m.on_nan
    meas.effect = m.on_nan
    meas.reason = string.format("the value is %s, not a number to compare (on_nan = %s)", tostring(v), m.on_nan)
    return meas
  end
  local function cond(f)
    local ok, r = pcall(f, v, meas)
    if not ok then error({ condition = errors.message(r) }) end
    return r and true or false
  end
  local ok, res = pcall(function()
    local s = m.success and cond(m.success)
    local f = m.failure and cond(m.failure)
    if m.success == nil and m.failure == nil then return "pass" end
    if m.success ~= nil and m.failure == nil then f = not s end
    if m.success == nil and m.failure ~= nil then s = not f end
    if f then return "fail" end
    if not s then return "inconclusive" end
    return "pass"
  end)
  if not ok then
    meas.outcome, meas.effect = "error", "error"
    meas.reason = "the condition failed: " .. (type(res) == "table" and res.condition or errors.message(res))
    return meas
  end
  meas.outcome, meas.effect = res, res
  if not meas.reason then
    meas.reason = string.format("value %s: %s", analysis.format_value(v), res)
  end
  return meas
end

function analysis.format_value(v)
  if type(v) == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    return string.format("%.4g", v)
  end
  return tostring(v)
end

-- The running tally of one metric within one analysis.
local function new_tally(m)
  return { metric = m, measured = 0, failed = 0, inconclusive = 0, errors = 0, consecutive_errors = 0,
           consecutive_passes = 0, passed = 0, status = "running", next_at = nil, looks = 0 }
end

-- Updates a tally with a judged measurement; returns the metric's status:
-- "running", "pass", "fail", "inconclusive" or "error".
local function assess(t, meas, last_look)
  local m = t.metric
  local e = meas.effect
  if e == "error" then
    t.errors = t.errors + 1
    t.consecutive_errors = t.consecutive_errors + 1
    t.consecutive_passes = 0
    if t.consecutive_errors > m.consecutive_error_limit then
      t.reason = string.format("%d errors in a row (consecutive_error_limit %d): %s", t.consecutive_errors,
        m.consecutive_error_limit, meas.reason or "provider error")
      return "error"
    end
    return "running"
  end
  t.consecutive_errors = 0
  -- an undecided look of a judged metric waits for more data, up to its last look
  if m.judged and meas.undecided and not last_look then
    t.looks = t.looks + 1
    t.consecutive_passes = 0
    return "running"
  end
  t.measured = t.measured + 1
  if e == "fail" then
    t.failed = t.failed + 1
    t.consecutive_passes = 0
    if m.failure_limit >= 0 and t.failed > m.failure_limit then
      t.reason = meas.reason
      return "fail"
    end
  elseif e == "inconclusive" then
    t.inconclusive = t.inconclusive + 1
    t.consecutive_passes = 0
    if t.inconclusive > m.inconclusive_limit then
      t.reason = meas.reason
      return "inconclusive"
    end
  else
    t.passed = t.passed + 1
    t.consecutive_passes = t.consecutive_passes + 1
    local enough = m.consecutive_success_limit or (m.judged and 1) or nil
    if enough and t.consecutive_passes >= enough then
      t.reason = meas.reason
      return "pass"
    end
  end
  if t.measured >= m.count then
    t.reason = meas.reason
    return "pass"
  end
  return "running"
end

local WORSE = { pass = 0, inconclusive = 1, error = 2, fail = 3 }

--- Runs the metrics until they are decided. ctx is what providers read
-- (service, canary, baselines, step, ...) plus:
--   ctx.wait(seconds) -> false to stop (a control request or ^C handled by
--                        the caller); default: time.sleep
--   ctx.record(measurement) -> called with each judged measurement
-- Returns { outcome = "pass"|"fail"|"inconclusive"|"error", metric =,
--           reason =, measurements = {...}, stopped = true when ctx.wait said so }.
function analysis.run(metrics, ctx)
  ctx = ctx or {}
  local wait = ctx.wait or function(s) time.sleep(s) return true end
  local t0 = time.now()
  local tallies = {}
  for i, m in ipairs(metrics) do
    tallies[i] = new_tally(m)
    tallies[i].next_at = t0 + m.initial_delay
  end
  local all = {}
  local function decide()
    local worst, who = "pass", nil
    local running = false
    for _, t in ipairs(tallies) do
      if not t.metric.dry_run then
        if t.status == "running" then running = true
        elseif WORSE[t.status] > WORSE[worst] then worst, who = t.status, t end
      end
    end
    if worst ~= "pass" then
      return { outcome = worst, metric = who.metric.name, reason = who.reason, measurements = all }
    end
    if not running then return { outcome = "pass", measurements = all } end
    return nil
  end
  if #tallies == 0 then return { outcome = "pass", measurements = all, reason = "no metrics" } end
  while true do
    -- one tick per round of measurements, unique in the process: metrics
    -- measured in the same round share the active sampler's look
    analysis.ticks = (analysis.ticks or 0) + 1
    ctx.tick = analysis.ticks
    local now = time.now()
    local due = math.huge
    for _, t in ipairs(tallies) do
      if t.status == "running" then due = math.min(due, t.next_at) end
    end
    if due == math.huge then break end
    if due > now then
      if wait(due - now) == false then
        local r = decide() or { outcome = "inconclusive", measurements = all }
        r.stopped = true
        return r
      end
    end
    now = time.now()
    for _, t in ipairs(tallies) do
      if t.status == "running" and t.next_at <= now then
        local m = t.metric
        local started = time.now()
        local ok, meas, err = errors.pcall(m.provider.measure, m.provider, ctx, m)
        if not ok then
          meas = { error = true, reason = "the provider failed: " .. errors.message(meas) }
        elseif meas == nil then
          meas = { error = true, reason = "the provider failed: " .. tostring(err or "no answer") }
        end
        meas.metric, meas.t = m.name, time.wall()
        meas.duration = time.now() - started
        meas.dry_run = m.dry_run or nil
        analysis.evaluate(m, meas)
        -- a judged metric still undecided after `count` looks gets up to
        -- extra_looks more (default: count) before it is inconclusive
        local last_look = m.judged and (t.measured + t.looks + 1 >= m.count + (m.extra_looks or m.count))
        t.status = assess(t, meas, last_look)
        if meas.undecided and t.status == "running" then
          meas.reason = (meas.reason or "undecided") .. string.format(" (undecided: look %d of at most %d)",
            t.measured + t.looks, m.count + (m.extra_looks or m.count))
        end
        all[#all + 1] = meas
        if ctx.record then ctx.record(meas) end
        -- after an error, try again at the same pace (Argo waits 10 s)
        t.next_at = started + (meas.outcome == "error" and math.min(m.interval, 10) or m.interval)
        if t.status ~= "running" and m.dry_run then t.status = "pass" end
      end
    end
    local r = decide()
    if r then return r end
  end
  return decide() or { outcome = "pass", measurements = all }
end

-- ----------------------------------------------------------- providers --

analysis.providers = {}

--- A provider from a Lua function: fn(ctx, metric) returns a number (or
-- any value the conditions read), optionally n; nil, "why" for no data; it
-- raises for an error.
function analysis.providers.fn(fn, opts)
  if type(fn) ~= "function" then errors.refuse("analysis.providers.fn needs a function") end
  opts = opts or {}
  return {
    kind = "lua",
    measure = function(_, ctx, m)
      local v, n = fn(ctx, m)
      if v == nil then return { no_data = true, reason = n or "the function returned no value", query = opts.query } end
      return { value = v, n = type(n) == "number" and n or nil, query = opts.query or "a Lua function" }
    end,
  }
end

-- ------------------------------------------------------ active probes --

--- The active sampler of a run: at each look it probes the canary and the
-- baseline versions through the version header (so the sample does not
-- depend on the canary's weight) and keeps the data of every look, which
-- the judged metrics read. Baseline versions share `n` requests by weight.
--   analysis.sampler { service =, canary = "v3", baseline = { v1 = 70, v2 = 30 }, n = 400 }
-- sampler:look(tick) -> data { look =, canary = {n, errors, latencies, kinds},
--                              baseline = {...}, query = "..." } (cumulative)
function analysis.sampler(opts)
  local smp = { service = opts.service, canary = opts.canary, baseline = opts.baseline, n = opts.n or 400,
                concurrency = opts.concurrency or 16, looks = 0 }
  local function side()
    return { n = 0, errors = 0, latencies = {}, kinds = {}, served = 0 }
  end
  smp.data = { canary = side(), baseline = side(), per_version = {} }
  -- adds what one variant of a probe gave to a side
  local function add(acc, t)
    if not t then return end
    acc.n = acc.n + (t.completed or 0)
    acc.errors = acc.errors + (t.error_total or 0)
    acc.served = acc.served + (t.served or 0)
    for k, c in pairs(t.errors or {}) do acc.kinds[k] = (acc.kinds[k] or 0) + c end
    local l = acc.latencies
    for _, x in ipairs(t.latencies or {}) do l[#l + 1] = x end
  end
  -- A look is one probe run whose requests alternate between the canary
  -- and the baseline (request variants), so both sides see the same
  -- moments of the machine: back-to-back runs can differ by 1.5x at p90 on
  -- sub-millisecond latencies, and a burst of other load would fall on one
  -- side only. Every version gets the same number of requests (`n` each),
  -- so each process carries the same load: with the baseline's requests
  -- shared by two versions, a canary probed as much as the whole baseline
  -- would queue twice as much and look slower than it is. The baseline
  -- sample pools its versions equally.
  function smp.look(_, tick)
    if tick ~= nil and tick == smp.tick then return smp.data end
    smp.tick = tick
    smp.looks = smp.looks + 1
    local hname = smp.service.config.version_header
    local variants, q = {}, {}
    local canary_headers = opts.canary_headers or { [hname] = smp.canary }
    variants[1] = { name = "canary", headers = canary_headers, weight = 1 }
    local hs = {}
    for h, v in pairs(canary_headers) do hs[#hs + 1] = h .. ": " .. v end
    table.sort(hs)
    q[#q + 1] = string.format("%d requests with %s", smp.n, table.concat(hs, ", "))
    local names = {}
    for v, w in pairs(smp.baseline) do if w > 0 then names[#names + 1] = v end end
    table.sort(names)
    if #names == 0 then error("analysis: no baseline version to compare " .. smp.canary .. " with", 0) end
    if opts.baseline_default then
      -- the others, through the default route: as many requests as the
      -- versions it spreads them over can take at the canary's load
      variants[2] = { name = "baseline", headers = {}, weight = #names }
      q[#q + 1] = string.format("%d without (the default route, %d versions)", #names * smp.n, #names)
    else
      for _, v in ipairs(names) do
        variants[#variants + 1] = { name = "base:" .. v, headers = { [hname] = v }, weight = 1 }
        q[#q + 1] = string.format("%d with %s", smp.n, v)
      end
    end
    local total_w = 0
    for _, v in ipairs(variants) do total_w = total_w + v.weight end
    local res = smp.service:probe { n = smp.n * total_w, variants = variants, latencies = true,
                                    concurrency = smp.concurrency, quiet = true, label = "analysis" }
    local by = res.by_variant or {}
    add(smp.data.canary, by.canary)
    if opts.baseline_default then
      add(smp.data.baseline, by.baseline)
    else
      for _, v in ipairs(names) do
        add(smp.data.baseline, by["base:" .. v])
        smp.data.per_version[v] = smp.data.per_version[v] or side()
        add(smp.data.per_version[v], by["base:" .. v])
      end
    end
    q[#q] = q[#q] .. " (interleaved, request by request)"
    table.sort(smp.data.canary.latencies)
    table.sort(smp.data.baseline.latencies)
    smp.data.look = smp.looks
    smp.data.query = "active probe per look: " .. table.concat(q, ", ")
    return smp.data
  end
  return smp
end

-- A judged measurement from a rollout.strategy.judge verdict.
-- Each baseline version's own figures (n, errors, p50/p90/p99), so a
-- pooled baseline can still be read version by version.
local function per_version(data)
  local out
  for v, acc in pairs(data.per_version or {}) do
    out = out or {}
    local l = acc.latencies or {}
    local function q(p)
      if #l == 0 then return nil end
      if type(l) ~= "table" then return l:quantile(p) end
      local sorted = {}
      for i = 1, #l do sorted[i] = l[i] end
      table.sort(sorted)
      return sorted[math.max(1, math.min(#sorted, math.ceil(p * #sorted)))]
    end
    out[v] = { n = acc.n, errors = acc.errors, p50 = q(0.5), p90 = q(0.9), p99 = q(0.99) }
  end
  return out
end

local function judged(ctx, m, v, data, what)
  local out = {
    value = v.value, p = v.p, query = data.query, n = data.canary.n,
    reason = string.format("%s: %s", ctx.canary, v.reason or v.outcome),
    stats = { canary_n = data.canary.n, baseline_n = data.baseline.n, look = data.look,
              per_version = per_version(data) },
    version = ctx.canary,
  }
  if v.outcome == "undecided" then
    out.outcome, out.undecided = "inconclusive", true
  elseif v.outcome == "no_data" then
    out.outcome = "no_data"
  else
    out.outcome = v.outcome
  end
  out.what = what
  return out
end

-- The look index of a judged metric (for the design's error rates), kept
-- in the run so that a resumed run goes on counting.
local function next_look(ctx, name)
  local run = ctx.run or {}
  run.metric_looks = run.metric_looks or {}
  run.metric_looks[name] = (run.metric_looks[name] or 0) + 1
  return run.metric_looks[name]
end

-- The options of look k of a judged metric (alpha, beta from the run's
-- sequential design), or nil and a reason when the run has used every look
-- its false-abort rate was planned for (then the metric is inconclusive: a
-- person decides, rather than a test whose error rate is not the stated one).
local function look_options(ctx, name, extra)
  local k = next_look(ctx, name)
  local d = ctx.design
  if not d then
    local o = { alpha = 0.001, beta = 0.01 }
    for key, v in pairs(extra or {}) do o[key] = v end
    return o, k
  end
  if k > d.looks then
    return nil, k, string.format("look %d is beyond the %d looks the false-abort rate was planned for " ..
      "(a resumed or re-analysed run): decide with promote or abort", k, d.looks)
  end
  return d:options(k, extra), k
end

local function beyond(ctx, why, query)
  return { outcome = "inconclusive", reason = ctx.canary .. ": " .. why, query = query }
end

--- The canary's error rate against the baseline's, from the active
-- probes, judged by rollout.strategy.judge.errors (an exact test, sequential).
-- opts.max_increase: the increase shown "not worse" (default 0.01).
function analysis.providers.errors(opts)
  opts = opts or {}
  return {
    kind = "active", judged = true,
    measure = function(_, ctx, m)
      local judge = require "rollout.strategy.judge"
      local o, k, why = look_options(ctx, m.name, { max_increase = opts.max_increase, min_n = opts.min_n })
      local data = ctx.active:look(ctx.tick)
      if not o then return beyond(ctx, why, data.query) end
      local v = judge.errors({ n = data.baseline.n, errors = data.baseline.errors },
                             { n = data.canary.n, errors = data.canary.errors }, o)
      local r = judged(ctx, m, v, data, "error rate")
      r.value = { canary = data.canary.n > 0 and data.canary.errors / data.canary.n or 0,
                  baseline = data.baseline.n > 0 and data.baseline.errors / data.baseline.n or 0,
                  canary_errors = data.canary.errors, baseline_errors = data.baseline.errors }
      r.alpha, r.look = o.alpha, k
      return r
    end,
  }
end

--- The canary's latency against the baseline's (served requests), from the
-- active probes, judged by rollout.strategy.judge.latency (quantile exceedance
-- tests: shifts, spread and second modes). opts: tolerance, slack_ms,
-- min_n (default: the judge's).
function analysis.providers.latency(opts)
  opts = opts or {}
  return {
    kind = "active", judged = true,
    measure = function(_, ctx, m)
      local judge = require "rollout.strategy.judge"
      local o, k, why = look_options(ctx, m.name, { tolerance = opts.tolerance, slack_ms = opts.slack_ms,
                                                    min_n = opts.min_n })
      local data = ctx.active:look(ctx.tick)
      if not o then return beyond(ctx, why, data.query) end
      local v = judge.latency(data.baseline.latencies, data.canary.latencies, o)
      local r = judged(ctx, m, v, data, "latency")
      r.n = #data.canary.latencies
      r.alpha, r.look = o.alpha, k
      local function q(list, p) -- a sorted list, or a rollout.stats sample
        if #list == 0 then return nil end
        if type(list) ~= "table" then return list:quantile(p) end
        return list[math.max(1, math.min(#list, math.ceil(p * #list)))]
      end
      r.value = { canary = { p50 = q(data.canary.latencies, 0.5), p90 = q(data.canary.latencies, 0.9),
                             p99 = q(data.canary.latencies, 0.99) },
                  baseline = { p50 = q(data.baseline.latencies, 0.5), p90 = q(data.baseline.latencies, 0.9),
                               p99 = q(data.baseline.latencies, 0.99) } }
      return r
    end,
  }
end

--- Passive: what the gateway's users got. The local gateway's own
-- counters (HAProxy `show stat`, the weighted default backend) give each
-- version's responses and 5xx since the last look; the canary's error
-- rate is judged against the baseline's like the active one. Needs the
-- local target (on Kubernetes use rollout.metrics.prometheus).
function analysis.providers.gateway_errors(opts)
  opts = opts or {}
  local last
  return {
    kind = "passive", judged = true,
    measure = function(_, ctx, m)
      local now, err = ctx.service:gateway_counters()
      if not now then return nil, err end
      local prev = last or now
      last = now
      local data = { canary = { n = 0, errors = 0 }, baseline = { n = 0, errors = 0 } }
      for v, c in pairs(now) do
        local p = prev[v] or { n = 0, errors = 0 }
        local side = v == ctx.canary and data.canary or (ctx.baseline[v] and data.baseline) or nil
        if side then
          side.n = side.n + (c.n - p.n)
          side.errors = side.errors + (c.errors - p.errors)
        end
      end
      ctx.passive = ctx.passive or { canary = { n = 0, errors = 0 }, baseline = { n = 0, errors = 0 } }
      for _, k in ipairs { "canary", "baseline" } do
        ctx.passive[k].n = ctx.passive[k].n + data[k].n
        ctx.passive[k].errors = ctx.passive[k].errors + data[k].errors
      end
      local cum = ctx.passive
      if cum.canary.n == 0 then
        return { no_data = true, reason = ctx.canary .. ": the gateway routed no user request to it yet",
                 query = "HAProxy show stat: responses of the default route" }
      end
      local judge = require "rollout.strategy.judge"
      local query = "HAProxy show stat: responses and 5xx of the default route per version"
      local o, k, why = look_options(ctx, m.name, { max_increase = opts.max_increase })
      if not o then return beyond(ctx, why, query) end
      local v = judge.errors(cum.baseline, cum.canary, o)
      local r = judged(ctx, m, v, { query = query, canary = cum.canary, baseline = cum.baseline }, "user error rate")
      r.value = { canary = cum.canary.errors / cum.canary.n,
                  baseline = cum.baseline.n > 0 and cum.baseline.errors / cum.baseline.n or 0 }
      r.alpha, r.look = o.alpha, k
      return r
    end,
  }
end

return analysis
