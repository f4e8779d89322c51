-- Fixture runs for the report tests: what rollout.json and journal.jsonl
-- hold after strategy runs, in the shapes the engine writes them
-- (rollout.strategy: Run:record, Run:log; rollout.strategy.judge's values).
--
--   local fx = dofile(root .. "/tests/helpers/report_fixtures.lua")
--   local run, history = fx.canary_succeeded()
--   local run, history = fx.real("canary_aborted")  -- recorded from real runs
--
-- Real runs (tests/helpers/report_fixtures/<name>/{rollout.json,journal.jsonl})
-- were recorded on the local target: a canary of v4 aborted for its error
-- rate (5% injected), a blue-green of v5 and an A/B test of v6 that passed.
local fx = {}

local T0 = 1796459000.0

local function root()
  local r = os.getenv("ROLLOUT_ROOT")
  if r and r ~= "" then return r end
  local src = debug.getinfo(1, "S").source
  return src:match("^@(.*)/tests/helpers/[^/]*$") or "."
end

--- A real run recorded by the engine: run, history.
function fx.real(name)
  local json = require "rollout.json"
  local fs = require "rollout.fs"
  local dir = root() .. "/tests/helpers/report_fixtures/" .. name
  local run = json.decode((assert(fs.read(dir .. "/rollout.json"), "no fixture " .. name)))
  local history = {}
  for line in (fs.read(dir .. "/journal.jsonl") or ""):gmatch("[^\n]+") do history[#history + 1] = json.decode(line) end
  return run, history
end

-- A judged error-rate value (rollout.strategy.judge.errors).
local function errors_value(cn, ce, bn, be)
  return {
    metric = "errors", test = "one-sided Fisher exact", alpha = 0.002, beta = 0.01, max_increase = 0.01, min_n = 100,
    baseline = { n = bn, errors = be, rate = bn > 0 and be / bn or nil },
    canary = { n = cn, errors = ce, rate = cn > 0 and ce / cn or nil },
    increase = (ce / cn) - (be / bn),
  }
end

-- A judged latency value (rollout.strategy.judge.latency): quantiles in ms.
local function latency_value(cn, bn, c, b)
  return {
    metric = "latency", test = "exact exceedance at baseline quantiles", alpha = 0.002, beta = 0.01,
    baseline = { n = bn }, canary = { n = cn },
    quantiles = {
      { q = 0.5, canary = c[1], baseline = b[1], p = 1.0 },
      { q = 0.9, canary = c[2], baseline = b[2], p = 0.9 },
      { q = 0.99, canary = c[3], baseline = b[3], p = 0.5 },
    },
    pass = { { q = 0.5, share = 0.5, canary = c[1], baseline = b[1], pass = true } },
  }
end

local function builder(run)
  local history = {}
  local b = {}
  function b.log(t, entry)
    entry.t = T0 + t
    entry.who = entry.who or "ops@host pid 4242"
    entry.run = entry.run == false and nil or (entry.run or run.id)
    history[#history + 1] = entry
    return entry
  end
  function b.measure(t, step, m)
    m.t, m.step = T0 + t, step
    run.measurements[#run.measurements + 1] = m
    local e = {}
    for k, v in pairs(m) do e[k] = v end
    e.action = "measurement"
    b.log(t, e)
  end
  b.history = history
  return b
end

local function new_run(o)
  return {
    id = o.id or "20261205T080000-canary-4242", service = o.service or "microservice-1", strategy = o.strategy or "canary",
    version = o.version or "v3", target = "local", phase = "progressing", step = 1,
    params = o.params or { steps = { 10, 50, 100 }, interval = 10, count = 2, alpha = 0.01, baseline = "" },
    weights_before = o.weights_before or { v1 = 50, v2 = 50 }, weights = o.weights_before or { v1 = 50, v2 = 50 },
    started = T0, updated = T0, measurements = {}, answers = {}, looks = 0,
  }
end

--- A canary of v3 from v1=50 v2=50: steps 10%, 50%, 100%, two looks of
-- error-rate and latency per step, promoted. Confirming samples are kept
-- on the set_weights entries (`observed`).
function fx.canary_succeeded()
  local run = new_run {}
  local b = builder(run)
  b.log(0, { action = "start", why = "canary of v3", weights = { v1 = 50, v2 = 50 }, good = true, params = run.params })
  local t = 2
  local look = 0
  for i, p in ipairs { 10, 50, 100 } do
    local w = p == 100 and { v1 = 0, v2 = 0, v3 = 100 } or { v1 = (1000 - p * 10) // 2, v2 = (1000 - p * 10) // 2, v3 = p * 10 }
    b.log(t, { action = "step", phase = "started", step = i, why = p .. "% of the traffic to v3" })
    local counts = p == 100 and { v3 = 1058 } or { v1 = math.floor(3446 * (100 - p) / 200),
      v2 = math.floor(3446 * (100 - p) / 200), v3 = math.floor(3446 * p / 100) }
    b.log(t + 1, { action = "set_weights", step = i, from = run.weights, to = w, why = p .. "% of the traffic to v3",
                   observed = { counts = counts, weights = w } })
    run.weights = w
    if p < 100 then
      for k = 1, 2 do
        look = look + 1
        local n = 1288 * look
        b.measure(t + 10 * k, i, { metric = "error-rate", outcome = "pass", effect = "pass", version = "v3",
          value = errors_value(n, look, n, look - 1), n = n, p = 0.4,
          reason = string.format("v3: error rate %.2f%% vs baseline %.2f%%", 100 * look / n, 100 * (look - 1) / n),
          stats = { canary_n = n, baseline_n = n, look = look } })
        b.measure(t + 10 * k + 0.5, i, { metric = "latency", outcome = "pass", effect = "pass", version = "v3",
          value = latency_value(n, n, { 1.0 + look * 0.1, 3.5, 8 + look }, { 0.9, 4.0, 10 }), n = n, p = 0.9,
          reason = "v3: latency within 1.2 × baseline + 5.0 ms", stats = { canary_n = n, baseline_n = n, look = look } })
      end
    end
    b.log(t + 25, { action = "step", phase = "done", step = i + 1, why = p .. "% of the traffic to v3", weights = w,
                    good = true })
    t = t + 30
  end
  b.log(t, { action = "promote", to = run.weights, weights = run.weights, good = true, why = "promoted v3" })
  run.phase, run.step, run.finished, run.updated = "succeeded", 4, T0 + t, T0 + t
  run.step_title = "100% of the traffic to v3"
  run.observed = { t = T0 + 63, counts = { v3 = 1058 }, weights = run.weights }
  -- another run of the service, earlier: must not show in this report
  table.insert(b.history, 1, { action = "set_weights", run = "20261204T000000-canary-1", t = T0 - 86400,
    who = "x", from = { v1 = 100 }, to = { v1 = 50, v2 = 50 }, why = "an older run" })
  return run, b.history
end

--- A canary of v3 that fails its error rate at step 2 and is aborted.
function fx.canary_aborted()
  local run = new_run { id = "20261205T090000-canary-77" }
  local b = builder(run)
  b.log(0, { action = "start", why = "canary of v3", weights = { v1 = 50, v2 = 50 }, good = true })
  b.log(1, { action = "step", phase = "started", step = 1, why = "10% of the traffic to v3" })
  b.log(2, { action = "set_weights", from = { v1 = 50, v2 = 50, v3 = 0 }, to = { v1 = 450, v2 = 450, v3 = 100 } })
  b.measure(12, 1, { metric = "error-rate", outcome = "pass", value = errors_value(1288, 1, 1288, 0), n = 1288,
                     reason = "v3: fine" })
  b.measure(12.2, 1, { metric = "latency", outcome = "pass", value = latency_value(1288, 1288, { 1, 3, 8 }, { 1, 3, 9 }),
                       reason = "v3: latency fine" })
  b.log(20, { action = "step", phase = "started", step = 2, why = "50% of the traffic to v3" })
  b.log(21, { action = "set_weights", from = { v1 = 450, v2 = 450, v3 = 100 }, to = { v1 = 250, v2 = 250, v3 = 500 } })
  b.measure(31, 2, { metric = "error-rate", outcome = "fail", effect = "fail",
                     value = errors_value(2576, 142, 2576, 1), n = 2576, p = 1.6e-22,
                     reason = "v3: error rate 5.5% vs baseline 0.0% (p=1.6e-22 ≤ α=2.0e-03; 142/2576 vs 1/2576 failed)" })
  local why = "v3: error-rate: v3: error rate 5.5% vs baseline 0.0%"
  b.log(32, { action = "abort", from = { v1 = 250, v2 = 250, v3 = 500 }, to = { v1 = 50, v2 = 50 },
              weights = { v1 = 50, v2 = 50 }, why = why, good = true })
  run.phase, run.abort_reason, run.step, run.finished = "aborted", why, 2, T0 + 33
  run.weights = { v1 = 50, v2 = 50, v3 = 0 }
  run.observed = { t = T0 + 21.5, counts = { v1 = 870, v2 = 860, v3 = 1716 }, weights = { v1 = 250, v2 = 250, v3 = 500 } }
  return run, b.history
end

--- A blue-green of v3 from v2=100, paused (inconclusive analysis), not finished.
function fx.blue_green_paused()
  local run = new_run { id = "20261205T100000-blue_green-9", strategy = "blue_green", weights_before = { v2 = 100 },
                        params = { analyses = 2, auto_promote = false, scale_down_delay = 30, interval = 5, count = 2,
                                   baseline = "" } }
  local b = builder(run)
  b.log(0, { action = "start", why = "blue_green of v3", weights = { v2 = 100 }, good = true })
  b.log(1, { action = "step", phase = "started", step = 1, why = "preview: v3 by header only" })
  b.log(2, { action = "set_weights", from = { v2 = 100, v3 = 0 }, to = { v2 = 100, v3 = 0 } })
  b.measure(8, 1, { metric = "error-rate", outcome = "inconclusive", effect = "inconclusive",
                    value = errors_value(150, 1, 150, 0), reason = "v3: not shown worse, nor within +1% yet" })
  b.measure(8.1, 1, { metric = "latency", outcome = "no_data", effect = "inconclusive",
                      value = { metric = "latency", quantiles = {}, canary = { n = 0 }, baseline = { n = 0 } },
                      reason = "no latencies for the canary (no_data = inconclusive)" })
  b.log(9, { action = "pause", why = "analysis inconclusive: error-rate: not shown worse" })
  run.phase, run.pause_reason, run.updated = "paused", "analysis inconclusive: error-rate: not shown worse", T0 + 40
  run.weights = { v2 = 100, v3 = 0 }
  return run, b.history
end

--- An A/B test of v3: a header route, two looks, finished (kept the weights).
function fx.ab_test_finished()
  local run = new_run { id = "20261205T110000-ab_test-5", strategy = "ab_test", weights_before = { v1 = 100 },
                        params = { header = "x-user-group:beta", cookie = "", count = 2, promote = false, baseline = "" } }
  local b = builder(run)
  b.log(0, { action = "start", why = "ab_test of v3", weights = { v1 = 100 }, good = true })
  b.log(1, { action = "step", phase = "started", step = 1, why = "route the test group to v3" })
  b.log(1.5, { action = "route", from = {}, to = { { name = "ab-test", version = "v3" } }, why = "route ab-test to v3" })
  b.log(2, { action = "step", phase = "started", step = 2, why = "compare v3 with the others" })
  for k = 1, 2 do
    b.measure(2 + 5 * k, 2, { metric = "error-rate", outcome = "pass", value = errors_value(400 * k, 0, 400 * k, 0),
      query = "active probe per look: 400 requests with x-user-group: beta, 400 without (the default route)",
      reason = "v3: error rate 0.0% vs baseline 0.0%" })
    b.measure(2.2 + 5 * k, 2, { metric = "latency", outcome = "pass",
      value = latency_value(400 * k, 400 * k, { 1, 2, 4 }, { 1.1, 2.2, 4.5 }), reason = "v3: latency within margin",
      query = "active probe per look: 400 requests with x-user-group: beta, 400 without (the default route)" })
  end
  b.log(14, { action = "route", from = { { name = "ab-test", version = "v3" } }, to = {},
              why = "restore the routes of before" })
  b.log(14.5, { action = "finish", why = "the test passed; the route is removed and the weights stay",
                weights = { v1 = 100, v3 = 0 }, good = true })
  run.phase, run.finished, run.step = "succeeded", T0 + 14.5, 3
  run.weights = { v1 = 100, v3 = 0 }
  return run, b.history
end

--- A canary with user metrics recording odd values: NaN, ±Inf (as Lua
-- numbers and as the strings other tools write), strings, tables, booleans,
-- nothing; hostile text in every user-controlled string.
fx.HOSTILE = [[<script>alert("x")</script>"><svg onload=alert(1)>&amp;'</text></svg>]]
function fx.odd_metrics()
  local H = fx.HOSTILE
  local run = new_run { id = "20261205T120000-canary-" .. H, version = "v3" }
  run.params = { steps = { 50, 100 }, interval = 1, count = 3, baseline = "", note = H }
  local b = builder(run)
  b.log(0, { action = "start", why = "canary of v3 " .. H, weights = { v1 = 50, v2 = 50 }, who = H })
  b.log(1, { action = "step", phase = "started", step = 1, why = "step " .. H })
  b.log(2, { action = "set_weights", from = { v1 = 50, v2 = 50 }, to = { v1 = 25, v2 = 25, v3 = 50 }, why = H })
  local values = { 0.5, 0 / 0, math.huge, -math.huge, "NaN", "-Infinity", "a string " .. H, { nested = { H } },
                   true, 1e308, -3.25, 42 }
  for i, v in ipairs(values) do
    b.measure(2 + i, 1, { metric = "queue-depth", outcome = (i % 3 == 0) and "fail" or "pass", value = v,
                          reason = "reason " .. i .. " " .. H, query = H })
  end
  b.measure(20, 1, { metric = "odd<metric>&\"name\"", outcome = "inconclusive", value = 7, reason = H })
  b.measure(21, 1, { metric = "empty", outcome = "no_data", reason = "no data (no_data = inconclusive)" })
  -- torn or foreign entries the journal may hold
  b.history[#b.history + 1] = "not a table"
  b.history[#b.history + 1] = { action = 42, t = "yesterday" }
  b.history[#b.history + 1] = { action = "set_weights", run = run.id, t = 0 / 0, to = { v1 = 0 / 0, v2 = -5, v3 = "x" } }
  b.log(25, { action = "abort", to = { v1 = 50, v2 = 50 }, weights = { v1 = 50, v2 = 50 }, why = H })
  run.phase, run.abort_reason, run.finished = "aborted", H, T0 + 25
  run.step_title = H
  run.weights = { v1 = 50, v2 = 50, v3 = 0 }
  return run, b.history
end

--- run_all's --json document (scripts/run_all.lua), all steps passed.
function fx.run_all_doc(ok)
  local steps = {
    { step = 0, title = "Baseline: deploy v1, v2; v1=50 v2=50", weights = { v1 = 50, v2 = 50 },
      checks = { { check = "split", ok = true, n = 3481, p_value = 0.98, counts = { v1 = 1741, v2 = 1740 },
                   weights = { v1 = 50, v2 = 50 }, requests = 3481 } } },
    { step = 1, title = "Verify baseline",
      checks = { { check = "split", ok = true, n = 3446, p_value = 0.7, counts = { v1 = 1720, v2 = 1726 },
                   weights = { v1 = 50, v2 = 50 } } } },
    { step = 2, title = "Deploy v3 with weight 0", weights = { v1 = 50, v2 = 50, v3 = 0 },
      checks = { { check = "header v3", ok = true, n = 500, counts = { v3 = 500 } } } },
    { step = 3, title = "Add v3: v1=50 v2=50 v3=50", weights = { v1 = 50, v2 = 50, v3 = 50 },
      checks = { { check = "split", ok = true, n = 3705, p_value = 1.0, counts = { v1 = 1235, v2 = 1235, v3 = 1235 },
                   weights = { v1 = 50, v2 = 50, v3 = 50 } } } },
    { step = 4, title = "Retire v2: v1=50 v2=0 v3=50", weights = { v1 = 50, v2 = 0, v3 = 50 },
      checks = { { check = "split", ok = ok ~= false, n = 3446, p_value = ok == false and 1e-9 or 0.5,
                   counts = ok == false and { v1 = 1500, v2 = 200, v3 = 1746 } or { v1 = 1723, v3 = 1723 },
                   weights = { v1 = 50, v2 = 0, v3 = 50 },
                   reason = ok == false and "v2 has weight 0 but served 200 requests <b>" or nil } },
      reason = ok == false and "v2 has weight 0 but served 200 requests <b>" or nil },
    { step = 5, title = "Retire v1: v3=100", weights = { v1 = 0, v2 = 0, v3 = 100 },
      checks = { { check = "split", ok = true, n = 1058, p_value = 1, counts = { v3 = 1058 }, weights = { v3 = 100 } } } },
    { step = 6, title = "Cleanup", checks = {} },
  }
  local passed, failed = 0, 0
  for _, s in ipairs(steps) do
    s.ok = s.reason == nil
    s.duration, s.requests = 0.3, 3500
    if s.ok then passed = passed + 1 else failed = failed + 1 end
  end
  return { service = "microservice-1", target = "local", ok = failed == 0, passed = passed, failed = failed,
           not_run = 0, total = 7, duration = 2.1, requests = 17275, steps = steps }
end

return fx
