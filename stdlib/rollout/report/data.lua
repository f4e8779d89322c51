--- rollout.report.data: what a report shows, taken from a run
-- (rollout.json) and its journal (journal.jsonl) — no rendering here.
--
--   local model = data.run_model(run, history)
--
-- The journal is the source of "over time": the weights from the start,
-- set_weights, abort, promote, finish and undo entries; steps from the
-- step entries; pauses from pause/resume; error rates and latency
-- quantiles from the measurement entries (what analysis.providers.errors /
-- latency record, as rollout.strategy.judge's `value`). Everything is read
-- defensively: user metrics record any value (numbers, strings, tables,
-- NaN, ±Inf), old runs may lack fields, and a journal may hold other runs.
local data = {}

local function finite(x)
  return type(x) == "number" and x == x and x ~= math.huge and x ~= -math.huge
end
data.finite = finite

-- A number from a JSON-ish value; nil unless finite.
local function num(x)
  if type(x) == "string" then x = tonumber(x) end
  if finite(x) then return x end
  return nil
end
data.num = num

--- Names of a weights table, sorted (numbers ignored, strings only).
local function keys(t)
  local out = {}
  if type(t) ~= "table" then return out end
  for k in pairs(t) do if type(k) == "string" then out[#out + 1] = k end end
  table.sort(out)
  return out
end
data.keys = keys

--- A weights table with only finite, non-negative numbers (others dropped).
local function clean_weights(w)
  if type(w) ~= "table" then return nil end
  local out, any = {}, false
  for k, v in pairs(w) do
    local n = num(v)
    if type(k) == "string" and n and n >= 0 then out[k] = n; any = true end
  end
  -- a route list (an array) is no weights table
  if not any and #w > 0 then return nil end
  return out
end
data.clean_weights = clean_weights

--- Shares (0..1) of a weights table; all 0 when the total is 0.
function data.shares(w)
  local total, out = 0, {}
  for _, v in pairs(w or {}) do total = total + v end
  for k, v in pairs(w or {}) do out[k] = total > 0 and v / total or 0 end
  return out, total
end

--- The weights of an entry that changed or stated them, or nil.
local function entry_weights(e)
  local a = e.action
  if a == "set_weights" or a == "undo" then return clean_weights(e.to) end
  if a == "abort" then return clean_weights(e.weights) or clean_weights(e.to) end
  if a == "start" or a == "promote" or a == "finish" then
    return clean_weights(e.weights) or clean_weights(e.to)
  end
  return nil
end
data.entry_weights = entry_weights

--- The journal entries of `run` (by run id; entries without one, such as
-- an undo, when they fall within the run's time), in time order.
function data.run_entries(run, history)
  local out = {}
  local id = type(run) == "table" and run.id or nil
  local t0 = type(run) == "table" and num(run.started) or nil
  local t1 = type(run) == "table" and (num(run.finished) or num(run.updated)) or nil
  for i, e in ipairs(type(history) == "table" and history or {}) do
    if type(e) == "table" and type(e.action) == "string" then
      local keep
      if id == nil then
        keep = true
      elseif e.run ~= nil then
        keep = e.run == id
      else
        local t = num(e.t)
        keep = t ~= nil and t0 ~= nil and t >= t0 and (t1 == nil or t <= t1)
      end
      if keep then out[#out + 1] = { i = i, e = e } end
    end
  end
  -- stable by time (entries without one keep their place at the end)
  table.sort(out, function(a, b)
    local ta, tb = num(a.e.t) or math.huge, num(b.e.t) or math.huge
    if ta ~= tb then return ta < tb end
    return a.i < b.i
  end)
  for k, x in ipairs(out) do out[k] = x.e end
  return out
end

-- ---------------------------------------------------------- measurements --

--- What kind of measurement `m` is, from the shape of its value:
-- "errors" (rollout.strategy.judge errors, or {canary = rate, baseline = rate}),
-- "latency" (rollout.strategy.judge latency: quantile rows), "number" (a finite
-- number), "nonfinite" (NaN / ±Inf, as a number or the strings JSON
-- cannot carry), or "other".
function data.kind(m)
  local v = m.value
  if type(v) == "table" then
    if v.metric == "latency" and type(v.quantiles) == "table" then return "latency" end
    if v.metric == "errors" and (type(v.canary) == "table" or type(v.baseline) == "table") then return "errors" end
    if type(v.canary) == "number" and type(v.baseline) == "number" and tostring(m.metric):find("error", 1, true) then
      return "errors"
    end
    return "other"
  end
  if finite(v) then return "number" end
  if type(v) == "number" then return "nonfinite" end
  if type(v) == "string" then
    local l = v:lower()
    if l == "nan" or l == "-nan" or l == "inf" or l == "+inf" or l == "-inf" or l == "infinity"
      or l == "+infinity" or l == "-infinity" then return "nonfinite" end
  end
  return "other"
end

-- A rate from a side of a judged errors value: {rate =} or {errors =, n =}.
local function side_rate(s)
  if type(s) == "number" then return finite(s) and s or nil end
  if type(s) ~= "table" then return nil end
  local r = num(s.rate)
  if r then return r end
  local n, e = num(s.n), num(s.errors)
  if n and e and n > 0 then return e / n end
  return nil
end

--- The error rates of an errors measurement: { canary =, baseline =,
-- canary_n =, baseline_n =, canary_errors =, baseline_errors = } (rates
-- 0..1, nil when unknown).
function data.error_rates(m)
  local v = type(m.value) == "table" and m.value or {}
  local out = { canary = side_rate(v.canary), baseline = side_rate(v.baseline) }
  if type(v.canary) == "table" then out.canary_n, out.canary_errors = num(v.canary.n), num(v.canary.errors) end
  if type(v.baseline) == "table" then out.baseline_n, out.baseline_errors = num(v.baseline.n), num(v.baseline.errors) end
  return out
end

--- The quantile rows of a latency measurement: { {q =, canary =, baseline =} } (ms).
function data.latency_rows(m)
  local out = {}
  local v = type(m.value) == "table" and m.value or {}
  for _, row in ipairs(type(v.quantiles) == "table" and v.quantiles or {}) do
    if type(row) == "table" and num(row.q) then
      out[#out + 1] = { q = num(row.q), canary = num(row.canary), baseline = num(row.baseline) }
    end
  end
  table.sort(out, function(a, b) return a.q < b.q end)
  return out
end

--- "p50", "p90", "p99", "p99.9" for a quantile.
function data.q_name(q)
  local p = q * 100
  if math.abs(p - math.floor(p + 0.5)) < 1e-9 then return string.format("p%d", math.floor(p + 0.5)) end
  return (string.format("p%.3f", p):gsub("0+$", ""))
end

--- Per-version figures a measurement may carry in stats.per_version:
-- { [version] = { n =, errors =, p50 =, p90 =, p99 = (ms) } }.
local function per_version(m)
  local pv = type(m.stats) == "table" and m.stats.per_version
  if type(pv) ~= "table" then return nil end
  local out, any = {}, false
  for v, row in pairs(pv) do
    if type(v) == "string" and type(row) == "table" then out[v] = row; any = true end
  end
  return any and out or nil
end
data.per_version = per_version

--- The versions the canary is compared with: params.baseline, else those
-- with weight before the run (other than the canary).
function data.baseline_versions(run)
  local out = {}
  local p = type(run.params) == "table" and run.params.baseline
  if type(p) == "string" and p ~= "" then
    for v in p:gmatch("[^,%s]+") do out[#out + 1] = v end
  else
    for _, v in ipairs(keys(run.weights_before)) do
      if v ~= run.version and (num(run.weights_before[v]) or 0) > 0 then out[#out + 1] = v end
    end
  end
  table.sort(out)
  return out
end

--- The two sides of a comparison as series keys and labels:
-- canary = { key = "v3", label = "v3" }, baseline = { key =, label = }.
function data.sides(run, measurements)
  local canary = type(run.version) == "string" and run.version or "canary"
  local groups = run.strategy == "ab_test"
  for _, m in ipairs(measurements or {}) do
    if type(m.query) == "string" and m.query:find("default route", 1, true) then groups = true end
  end
  local base = data.baseline_versions(run)
  local baseline
  if groups then
    baseline = { key = "baseline", label = "default route (everyone else)" }
    canary = { key = canary, label = canary .. " (test group)" }
  else
    if #base == 1 then
      baseline = { key = base[1], label = base[1] .. " (baseline)" }
    else
      baseline = { key = "baseline", label = "baseline (" .. (#base > 0 and table.concat(base, "+") or "?") .. ")" }
    end
    canary = { key = canary, label = canary .. " (canary)" }
  end
  return canary, baseline
end

--- The measurements of a run: the journal's (all of them) when it has
-- any, else rollout.json's (the last ones).
function data.measurements(run, entries)
  local out = {}
  for _, e in ipairs(entries) do
    if e.action == "measurement" then out[#out + 1] = e end
  end
  if #out == 0 and type(run.measurements) == "table" then
    for _, m in ipairs(run.measurements) do
      if type(m) == "table" then out[#out + 1] = m end
    end
  end
  return out
end

-- ------------------------------------------------------------ the model --

--- Everything a run's report shows, in plain tables (times are seconds
-- since the run started). See the fields below.
function data.run_model(run, history)
  run = type(run) == "table" and run or {}
  local entries = data.run_entries(run, history)
  local m = { run = run, entries = entries }
  local t0 = num(run.started)
  for _, e in ipairs(entries) do
    local t = num(e.t)
    if t and (t0 == nil or t < t0) then t0 = t end
  end
  t0 = t0 or 0
  local t1 = num(run.finished)
  if not t1 then
    t1 = num(run.updated) or t0
    for _, e in ipairs(entries) do
      local t = num(e.t)
      if t and t > t1 then t1 = t end
    end
  end
  if t1 < t0 then t1 = t0 end
  m.t0, m.t1 = t0, t1
  m.duration = t1 - t0
  local function rel(t)
    t = num(t)
    if not t then return nil end
    return math.max(0, math.min(m.duration, t - t0))
  end
  m.rel = rel

  -- weights over time: a step function, one point per change
  local changes = {}
  local before = clean_weights(run.weights_before)
  if before then changes[#changes + 1] = { t = 0, w = before, why = "before the run" } end
  for _, e in ipairs(entries) do
    local w = entry_weights(e)
    local t = rel(e.t)
    if w and t then
      changes[#changes + 1] = { t = t, w = w, action = e.action, why = e.why, observed = e.observed }
    elseif e.action == "observed" and #changes > 0 and changes[#changes].observed == nil then
      -- the confirming sample of the change just before (rollout.strategy)
      changes[#changes].observed = e.observed
    end
  end
  local final = clean_weights(run.weights)
  if final then
    local last = changes[#changes]
    local same = last ~= nil
    if last then
      for _, v in ipairs(keys(final)) do if (last.w[v] or 0) ~= final[v] then same = false end end
      for _, v in ipairs(keys(last.w)) do if (final[v] or 0) ~= last.w[v] then same = false end end
    end
    if not same then changes[#changes + 1] = { t = m.duration, w = final, why = "now" } end
  end
  m.weights = changes
  -- versions: those with weight at some point (the others are listed apart)
  local seen, weighted = {}, {}
  for _, c in ipairs(changes) do
    for v, w in pairs(c.w) do
      seen[v] = true
      if w > 0 then weighted[v] = true end
    end
  end
  m.versions, m.idle_versions = {}, {}
  for _, v in ipairs(keys(seen)) do
    if weighted[v] then m.versions[#m.versions + 1] = v else m.idle_versions[#m.idle_versions + 1] = v end
  end

  -- steps, pauses, ends
  m.steps, m.pauses, m.events = {}, {}, {}
  local open_pause
  for _, e in ipairs(entries) do
    local t = rel(e.t)
    if t then
      if e.action == "step" and e.phase == "started" then
        m.steps[#m.steps + 1] = { t = t, n = math.tointeger(num(e.step)) or #m.steps + 1, title = e.why }
      elseif e.action == "pause" then
        if not open_pause then open_pause = { t0 = t, why = e.why } end
      elseif e.action == "resume" then
        if open_pause then
          open_pause.t1 = t
          m.pauses[#m.pauses + 1] = open_pause
          open_pause = nil
        end
      elseif e.action == "abort" or e.action == "promote" or e.action == "failed" or e.action == "finish"
          or e.action == "undo" then
        m.events[#m.events + 1] = { t = t, kind = e.action, why = e.why }
      end
    end
  end
  if open_pause then
    open_pause.t1 = m.duration
    m.pauses[#m.pauses + 1] = open_pause
  end

  -- measurements and their series
  local ms = data.measurements(run, entries)
  m.measurements = ms
  local canary, baseline = data.sides(run, ms)
  m.canary, m.baseline = canary, baseline
  m.errors = { series = {} }      -- key -> { key, label, points = { {x, y, m} } }
  m.latency = { series = {} }     -- "key|q" -> { key, label, q, points }
  m.user = {}                     -- metric name -> { name, points, nonfinite = { {x, m} }, other = n }
  m.user_order = {}
  local function add(tbl, key, label, x, y, meas, extra)
    local s = tbl[key]
    if not s then
      s = { key = key, label = label, points = {} }
      for k, v in pairs(extra or {}) do s[k] = v end
      tbl[key] = s
    end
    s.points[#s.points + 1] = { x = x, y = y, m = meas }
  end
  for _, meas in ipairs(ms) do
    local x = rel(meas.t)
    local kind = data.kind(meas)
    local pv = per_version(meas)
    if x and kind == "errors" then
      local r = data.error_rates(meas)
      if pv then
        for v, row in pairs(pv) do
          local n, e = num(row.n), num(row.errors)
          if n and e and n > 0 then add(m.errors.series, v, v, x, e / n, meas, { version = v }) end
        end
      else
        if r.canary then add(m.errors.series, canary.key, canary.label, x, r.canary, meas, { version = canary.key }) end
        if r.baseline then
          add(m.errors.series, baseline.key, baseline.label, x, r.baseline, meas, { version = baseline.key })
        end
      end
    elseif x and kind == "latency" then
      if pv then
        for v, row in pairs(pv) do
          for _, q in ipairs { 0.5, 0.9, 0.99 } do
            local y = num(row[data.q_name(q)])
            if y then add(m.latency.series, v .. "|" .. q, v .. " " .. data.q_name(q), x, y, meas,
                { version = v, q = q }) end
          end
        end
      else
        for _, row in ipairs(data.latency_rows(meas)) do
          local qn = data.q_name(row.q)
          if row.canary then
            add(m.latency.series, canary.key .. "|" .. row.q, canary.key .. " " .. qn, x, row.canary, meas,
              { version = canary.key, q = row.q })
          end
          if row.baseline then
            add(m.latency.series, baseline.key .. "|" .. row.q,
              (baseline.key == "baseline" and baseline.label or baseline.key) .. " " .. qn, x, row.baseline, meas,
              { version = baseline.key, q = row.q })
          end
        end
      end
    elseif x and (kind == "number" or kind == "nonfinite" or kind == "other") then
      local name = type(meas.metric) == "string" and meas.metric or "metric"
      local u = m.user[name]
      if not u then
        u = { name = name, points = {}, nonfinite = {}, other = 0 }
        m.user[name] = u
        m.user_order[#m.user_order + 1] = name
      end
      if kind == "number" then
        u.points[#u.points + 1] = { x = x, y = meas.value, m = meas }
      elseif kind == "nonfinite" then
        u.nonfinite[#u.nonfinite + 1] = { x = x, m = meas }
      else
        u.other = u.other + 1
      end
    end
  end

  -- observed against expected: the confirming samples the journal kept
  -- (set_weights entries with `observed`), then rollout.json's last one
  m.observed = {}
  local function add_observed(label, t, counts, weights)
    if type(counts) ~= "table" then return end
    local c, total = {}, 0
    for v, n in pairs(counts) do
      local k = num(n)
      if type(v) == "string" and k and k >= 0 then c[v] = k; total = total + k end
    end
    if total <= 0 then return end
    m.observed[#m.observed + 1] = { label = label, t = t, counts = c, n = total,
                                    weights = clean_weights(weights) or {} }
  end
  for _, c in ipairs(changes) do
    if type(c.observed) == "table" then
      add_observed(c.why or c.action or "weights", c.t, c.observed.counts or c.observed,
        c.observed.weights or c.w)
    end
  end
  if type(run.observed) == "table" then
    local dup = false
    local last = m.observed[#m.observed]
    local t = rel(run.observed.t)
    if last and t and last.t and math.abs(last.t - t) < 1e-6 then dup = true end
    if not dup then
      add_observed("last confirming sample", t, run.observed.counts, run.observed.weights or run.weights)
    end
  end
  return m
end

--- The latest figures per side of a run (for `ops.lua status --watch`):
-- { rows = { {label =, error_rate =, errors =, n =, p50 =, p90 =, p99 = } },
--   last = the last measurement, verdicts = the last of each metric }.
function data.latest(run)
  run = type(run) == "table" and run or {}
  local ms = {}
  for _, m in ipairs(type(run.measurements) == "table" and run.measurements or {}) do
    if type(m) == "table" then ms[#ms + 1] = m end
  end
  local canary, baseline = data.sides(run, ms)
  local rows = { [canary.key] = { label = canary.label, order = 1 }, [baseline.key] = { label = baseline.label, order = 2 } }
  local last_errors, last_latency
  local by_metric, order = {}, {}
  for _, m in ipairs(ms) do
    local k = data.kind(m)
    if k == "errors" then last_errors = m elseif k == "latency" then last_latency = m end
    local name = tostring(m.metric or "?")
    if not by_metric[name] then order[#order + 1] = name end
    by_metric[name] = m
  end
  local function row(key, label)
    if not rows[key] then rows[key] = { label = label or key, order = 3 } end
    return rows[key]
  end
  if last_errors then
    local pv = per_version(last_errors)
    if pv then
      for v, r in pairs(pv) do
        local n, e = num(r.n), num(r.errors)
        local x = row(v, v)
        x.n, x.errors, x.error_rate = n, e, (n and e and n > 0) and e / n or nil
      end
    else
      local r = data.error_rates(last_errors)
      rows[canary.key].error_rate, rows[canary.key].n, rows[canary.key].errors = r.canary, r.canary_n, r.canary_errors
      rows[baseline.key].error_rate, rows[baseline.key].n, rows[baseline.key].errors =
        r.baseline, r.baseline_n, r.baseline_errors
    end
  end
  if last_latency then
    local pv = per_version(last_latency)
    if pv then
      for v, r in pairs(pv) do
        local x = row(v, v)
        x.p50, x.p90, x.p99 = num(r.p50), num(r.p90), num(r.p99)
      end
    else
      for _, q in ipairs(data.latency_rows(last_latency)) do
        local name = data.q_name(q.q)
        rows[canary.key][name] = q.canary
        rows[baseline.key][name] = q.baseline
      end
    end
  end
  local list = {}
  for key, r in pairs(rows) do r.key = key; list[#list + 1] = r end
  table.sort(list, function(a, b) if a.order ~= b.order then return a.order < b.order end return a.key < b.key end)
  local verdicts = {}
  for _, name in ipairs(order) do verdicts[#verdicts + 1] = by_metric[name] end
  return { rows = list, last = ms[#ms], verdicts = verdicts, measured = last_errors ~= nil or last_latency ~= nil }
end

return data
