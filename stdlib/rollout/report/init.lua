--- rollout.report: the HTML report of a strategy run or of run_all —
-- one self-contained file: inline CSS (light, dark and print), inline SVG
-- charts written here, no JavaScript, no fonts, images or links to fetch
-- (a Content-Security-Policy says so to the browser too).
--
--   report.render_run(run, history) -> html   (rollout.json + journal.jsonl)
--   report.render_run_all(doc) -> html        (run_all's --json document)
--
-- A run's report: the outcome; the weights over time (each version's share,
-- with the steps, pauses, abort or promotion marked); the observed split
-- against the weights (the confirming samples); each version's error rate
-- and latency quantiles over time (from the analysis measurements); any
-- other metric the strategy measured; every measurement with its verdict
-- and reason; the journal of changes; the parameters. Strategies write it
-- after every run (`--report FILE`, and always
-- <state>/services/<service>/report.html); run_all with --report FILE.
local html = require "rollout.report.html"
local svg = require "rollout.report.svg"
local data = require "rollout.report.data"

local report = {}

report.data = data

local esc = html.esc
local finite = data.finite
local num = data.num

report.CSS = [[
:root { color-scheme: light dark;
  --bg: #ffffff; --fg: #1d2125; --muted: #5b636b; --rule: #d5d9de; --panel: #f5f7f9; --grid: #e3e6ea;
  --ok: #1a7f37; --bad: #c62828; --warn: #9a6700; --band: rgba(154, 103, 0, 0.12);
  --c0: #0072b2; --c1: #e69f00; --c2: #009e73; --c3: #cc79a7; --c4: #56b4e9; --c5: #d55e00; --c6: #6a3d9a;
  --c7: #7f7f7f; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #15181c; --fg: #e6e8eb; --muted: #a2aab3; --rule: #3a4048; --panel: #1e2328; --grid: #2c3239;
    --ok: #57d163; --bad: #ff7b72; --warn: #e3b341; --band: rgba(227, 179, 65, 0.14);
    --c0: #4fa3e0; --c1: #f0b030; --c2: #2fc79a; --c3: #e49ac8; --c4: #8fd0f5; --c5: #ff8a50; --c6: #b392f0;
    --c7: #a8a8a8; }
}
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 62rem; padding: 1.5rem; background: var(--bg); color: var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; }
h1 { font-size: 1.45rem; margin: 0 0 .3rem; }
h2 { font-size: 1.15rem; margin: 2rem 0 .6rem; padding-bottom: .2rem; border-bottom: 1px solid var(--rule); }
p { margin: .4rem 0; }
.muted, .note { color: var(--muted); }
.note { font-size: 12px; margin: .2rem 0 0; }
code { font-family: "DejaVu Sans Mono", ui-monospace, monospace; font-size: 12.5px; }
.outcome { border-left: 6px solid var(--warn); background: var(--panel); padding: .7rem 1rem; margin: 1rem 0; }
.outcome.ok { border-color: var(--ok); } .outcome.bad { border-color: var(--bad); }
.outcome strong { font-size: 1.1rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; margin: .6rem 0; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0; font-size: 12.5px; }
th, td { text-align: left; vertical-align: top; padding: .25rem .5rem; border-bottom: 1px solid var(--rule); }
th { color: var(--muted); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.reason { overflow-wrap: anywhere; }
tr.fail td, tr.error td { background: color-mix(in srgb, var(--bad) 8%, transparent); }
.badge { display: inline-block; padding: 0 .4rem; border-radius: .6rem; font-size: 12px; font-weight: 600;
  border: 1px solid currentColor; white-space: nowrap; }
.badge.pass, .badge.succeeded, .badge.ok { color: var(--ok); }
.badge.fail, .badge.error, .badge.aborted, .badge.failed, .badge.bad { color: var(--bad); }
.badge.inconclusive, .badge.no_data, .badge.paused, .badge.progressing, .badge.promoting { color: var(--warn); }
figure.chart { margin: .8rem 0 1.2rem; break-inside: avoid; page-break-inside: avoid; }
figure.chart figcaption { font-weight: 600; margin-bottom: .2rem; }
figure.chart svg { display: block; width: 100%; height: auto; max-width: 100%; overflow: visible; }
p.nodata { color: var(--muted); font-style: italic; }
svg text { fill: var(--fg); font: 11px system-ui, "DejaVu Sans", sans-serif; }
svg .tick, svg .axis-label, svg .row-note { fill: var(--muted); }
svg .grid { stroke: var(--grid); stroke-width: 1; }
svg .axis-line, svg .tickmark { stroke: var(--muted); stroke-width: 1; }
svg .c0 { --c: var(--c0); } svg .c1 { --c: var(--c1); } svg .c2 { --c: var(--c2); } svg .c3 { --c: var(--c3); }
svg .c4 { --c: var(--c4); } svg .c5 { --c: var(--c5); } svg .c6 { --c: var(--c6); } svg .c7 { --c: var(--c7); }
svg .series-line { fill: none; stroke: var(--c); stroke-width: 2; stroke-linejoin: round; }
svg .swatch-line { stroke: var(--c); stroke-width: 2.5; }
svg .d1 { stroke-dasharray: 7 4; } svg .d2 { stroke-dasharray: 2 3; } svg .d3 { stroke-dasharray: 10 3 2 3; }
svg .series-area { fill: var(--c); fill-opacity: .78; stroke: var(--bg); stroke-width: .8; }
svg .swatch { fill: var(--c); }
svg .hit { fill: transparent; }
svg .point { fill: var(--bg); stroke: var(--c); stroke-width: 1.6; }
svg .point.fail, svg .point.error { fill: var(--bad); stroke: var(--bad); }
svg .point.inconclusive, svg .point.no_data { fill: var(--warn); stroke: var(--warn); }
svg .bar { fill: var(--c); }
svg .bar.expected { fill-opacity: .45; } svg .bar.expected.solid { fill-opacity: .85; }
svg .ci { stroke: var(--fg); stroke-width: 1.3; fill: none; }
svg .marker line { stroke: var(--muted); stroke-width: 1; stroke-dasharray: 3 3; }
svg .marker text { fill: var(--muted); font-size: 10px; }
svg .marker.abort line, svg .marker.failed line { stroke: var(--bad); stroke-dasharray: none; stroke-width: 1.6; }
svg .marker.abort text, svg .marker.failed text { fill: var(--bad); }
svg .marker.promote line, svg .marker.finish line { stroke: var(--ok); stroke-dasharray: none; stroke-width: 1.6; }
svg .marker.promote text, svg .marker.finish text { fill: var(--ok); }
svg .band rect { fill: var(--band); } svg .band text { fill: var(--warn); font-size: 10px; }
svg .flag path { fill: var(--bad); } svg .flag text { fill: var(--bad); font-size: 9px; }
footer { margin-top: 2.5rem; color: var(--muted); font-size: 12px; border-top: 1px solid var(--rule); padding-top: .5rem; }
@media print {
  :root { --bg: #ffffff; --fg: #000000; --muted: #444444; --rule: #999999; --panel: #ffffff; --grid: #dddddd;
    --ok: #1a7f37; --bad: #b71c1c; --warn: #8a5a00; --band: rgba(138, 90, 0, 0.12);
    --c0: #0072b2; --c1: #e69f00; --c2: #009e73; --c3: #cc79a7; --c4: #56b4e9; --c5: #d55e00; --c6: #6a3d9a;
    --c7: #7f7f7f; }
  body { max-width: none; padding: 0; font-size: 11px; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  h2 { break-after: avoid; page-break-after: avoid; }
  tr { break-inside: avoid; page-break-inside: avoid; }
  .outcome { border: 1px solid #999; border-left-width: 6px; }
}
]]

local CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

local function page(title, body)
  return table.concat({
    "<!DOCTYPE html>",
    '<html lang="en">',
    "<head>",
    '<meta charset="utf-8">',
    string.format('<meta http-equiv="Content-Security-Policy" content="%s">', CSP),
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<meta name="color-scheme" content="light dark">',
    '<meta name="generator" content="rollout">',
    "<title>" .. esc(title) .. "</title>",
    "<style>" .. report.CSS .. "</style>",
    "</head>",
    "<body>",
    body,
    "</body>",
    "</html>",
    "",
  }, "\n")
end

local function version_string()
  local ok, sys = pcall(require, "rollout.sys")
  if ok and type(sys.version) == "function" then
    local vok, v = pcall(sys.version)
    if vok and v then return tostring(v) end
  elseif ok and sys.version then
    return tostring(sys.version)
  end
  return "rollout"
end

local function footer(what)
  return string.format('<footer>%s — written by rollout %s on %s. One self-contained file: no scripts, ' ..
    'nothing fetched from elsewhere; prints as it shows.</footer>', esc(what), esc(version_string()),
    esc(html.utc(os.time())))
end

-- Colour classes: one per version, stable across a report's charts
-- (sorted names; the canary keeps its colour, "baseline" groups get grey).
local function palette(names)
  local map, i = {}, 0
  for _, v in ipairs(names) do
    if map[v] == nil and v ~= "baseline" then
      map[v] = "c" .. (i % 7)
      i = i + 1
    end
  end
  map.baseline = "c7"
  return function(v)
    if not map[v] then
      map[v] = "c" .. (i % 7)
      i = i + 1
    end
    return map[v]
  end
end

local PHASE_CLASS = { succeeded = "ok", aborted = "bad", failed = "bad" }

local function badge(text, class)
  return string.format('<span class="badge %s">%s</span>', esc(class or text), esc(text))
end

local OUTCOME_MARK = { pass = "✓", fail = "✗", error = "✗", inconclusive = "?", no_data = "∅" }

local function outcome_badge(o)
  o = type(o) == "string" and o or "?"
  return badge((OUTCOME_MARK[o] and (OUTCOME_MARK[o] .. " ") or "") .. o:gsub("_", " "), o)
end

local function facts(list)
  local out = { '<dl class="facts">' }
  for _, f in ipairs(list) do
    if f[2] ~= nil and f[2] ~= "" then
      out[#out + 1] = string.format("<dt>%s</dt><dd>%s</dd>", esc(f[1]), f.raw and f[2] or esc(f[2]))
    end
  end
  out[#out + 1] = "</dl>"
  return table.concat(out, "\n")
end

-- ------------------------------------------------------- measurement text --

--- A measurement's value as one short line (judged values summarised).
function report.value_text(m)
  local k = data.kind(m)
  if k == "errors" then
    local r = data.error_rates(m)
    local s = string.format("%s vs %s", html.rate(r.canary), html.rate(r.baseline))
    if r.canary_n and r.canary_errors then
      s = s .. string.format(" (%s/%s vs %s/%s)", html.value(r.canary_errors), html.value(r.canary_n),
        html.value(r.baseline_errors or 0), html.value(r.baseline_n or 0))
    end
    return s
  elseif k == "latency" then
    local parts = {}
    for _, row in ipairs(data.latency_rows(m)) do
      parts[#parts + 1] = string.format("%s %s vs %s", data.q_name(row.q), html.ms(row.canary), html.ms(row.baseline))
    end
    return #parts > 0 and table.concat(parts, "; ") or "–"
  end
  if m.value == nil then return "–" end
  return html.trim(html.value(m.value), 160)
end

local function measurements_table(model)
  local ms = model.measurements
  if #ms == 0 then return '<p class="nodata">No analysis measurement was recorded.</p>' end
  local out = { '<table class="measurements"><thead><tr><th class="num">time</th><th class="num">step</th>' ..
    '<th>metric</th><th>verdict</th><th>value (canary vs baseline)</th><th class="num">n</th><th class="num">p</th>' ..
    "<th>reason</th></tr></thead><tbody>" }
  for _, m in ipairs(ms) do
    local t = model.rel(m.t)
    local p = num(m.p)
    out[#out + 1] = string.format('<tr class="%s"><td class="num">%s</td><td class="num">%s</td><td>%s%s</td>' ..
      '<td>%s</td><td>%s</td><td class="num">%s</td><td class="num">%s</td><td class="reason">%s</td></tr>',
      esc(type(m.outcome) == "string" and m.outcome or ""), t and esc("+" .. html.duration(t)) or "–",
      esc(m.step ~= nil and html.value(m.step) or "–"), esc(m.metric or "?"),
      m.dry_run and ' <span class="muted">(dry run)</span>' or "", outcome_badge(m.outcome),
      esc(report.value_text(m)), esc(m.n ~= nil and html.value(m.n) or "–"),
      p and esc(p < 1e-4 and string.format("%.1e", p) or string.format("%.4f", p)) or "–",
      esc(html.trim(m.reason ~= nil and html.value(m.reason) or "", 600)))
  end
  out[#out + 1] = "</tbody></table>"
  return table.concat(out, "\n")
end

local function change_text(e)
  local function txt(x)
    if type(x) ~= "table" then return x == nil and "" or html.value(x) end
    if #x > 0 or next(x) == nil then return #x .. " route(s)" end
    return html.weights(x)
  end
  if e.from ~= nil or e.to ~= nil then
    return txt(e.from) .. " → " .. txt(e.to)
  end
  if type(e.weights) == "table" then return html.weights(e.weights) end
  if e.request then return tostring(e.request) .. (e.result and (": " .. tostring(e.result)) or "") end
  return ""
end

local function journal_table(model)
  local rows = {}
  for _, e in ipairs(model.entries) do
    if e.action ~= "measurement" then rows[#rows + 1] = e end
  end
  if #rows == 0 then return '<p class="nodata">The journal has no entry for this run.</p>' end
  local out = { '<table class="journal"><thead><tr><th class="num">time</th><th>when (UTC)</th><th>action</th>' ..
    "<th>change</th><th>why</th><th>who</th></tr></thead><tbody>" }
  for _, e in ipairs(rows) do
    local t = model.rel(e.t)
    local action = tostring(e.action)
    if action == "step" and e.phase then action = "step " .. tostring(e.phase) end
    out[#out + 1] = string.format('<tr class="%s"><td class="num">%s</td><td class="num">%s</td><td>%s</td>' ..
      '<td>%s</td><td class="reason">%s</td><td>%s</td></tr>', esc(e.action),
      t and esc("+" .. html.duration(t)) or "–", esc(num(e.t) and os.date("!%H:%M:%S", math.floor(e.t)) or "–"),
      esc(action), esc(html.trim(change_text(e), 300)), esc(html.trim(e.why ~= nil and html.value(e.why) or "", 600)),
      esc(html.trim(e.by or e.who or "", 80)))
  end
  out[#out + 1] = "</tbody></table>"
  out[#out + 1] = '<p class="note">Measurements are listed under "Analysis"; the journal file is ' ..
    '<code>journal.jsonl</code> in the service\'s state directory (<code>rollout scripts/ops.lua history</code>).</p>'
  return table.concat(out, "\n")
end

-- ------------------------------------------------------------ the charts --

local function markers(model)
  local out = {}
  for _, s in ipairs(model.steps) do
    out[#out + 1] = { x = s.t, label = "S" .. tostring(s.n), kind = "step",
                      title = string.format("step %s: %s", tostring(s.n), html.value(s.title or "")) }
  end
  for _, e in ipairs(model.events) do
    out[#out + 1] = { x = e.t, label = e.kind, kind = e.kind, title = e.kind .. ": " .. html.value(e.why or "") }
  end
  return out
end

local function bands(model)
  local out = {}
  for _, p in ipairs(model.pauses) do
    out[#out + 1] = { x0 = p.t0, x1 = p.t1, label = "paused", title = "paused: " .. html.value(p.why or "") }
  end
  return out
end

local function weights_chart(model, color)
  local series = {}
  -- the canary on top of the stack: the others first
  local order = {}
  for _, v in ipairs(model.versions) do if v ~= model.run.version then order[#order + 1] = v end end
  for _, v in ipairs(model.versions) do if v == model.run.version then order[#order + 1] = v end end
  for _, v in ipairs(order) do
    local pts = {}
    for _, c in ipairs(model.weights) do
      local shares = data.shares(c.w)
      pts[#pts + 1] = { x = c.t, y = shares[v] or 0 }
    end
    series[#series + 1] = { key = v, label = v, class = color(v), points = pts }
  end
  local note
  if #model.idle_versions > 0 then
    note = "Also deployed, weight 0 throughout: " .. table.concat(model.idle_versions, ", ") .. "."
  end
  return svg.time_chart {
    id = "weights", title = "Traffic share per version (from the weights)", kind = "area",
    desc = "Each version's share of the default traffic over time, stacked; steps (S1, S2, …), pauses and the end " ..
      "of the run are marked.",
    duration = model.duration, y = { min = 0, max = 1, format = function(v) return html.pct(v, 0) end, label = "share" },
    series = series, markers = markers(model), bands = bands(model), note = note,
    empty = "No weights were recorded for this run.",
  }
end

local function ci_for(counts, total)
  local ok, stats = pcall(require, "rollout.stats")
  local out = {}
  for v, c in pairs(counts) do
    if ok and stats.wilson and total > 0 then
      local wok, lo, hi = pcall(stats.wilson, c, total, 0.99)
      if wok and finite(lo) and finite(hi) then out[v] = { lo, hi } end
    end
  end
  return out
end

local function split_chart(model, color)
  local rows, names, seen = {}, {}, {}
  for _, o in ipairs(model.observed) do
    local expected = data.shares(o.weights)
    local observed = {}
    for v, c in pairs(o.counts) do observed[v] = c / o.n end
    for v in pairs(expected) do if not seen[v] and (expected[v] or 0) > 0 then seen[v] = true end end
    for v in pairs(observed) do seen[v] = true end
    local label = o.label
    if o.t then label = string.format("+%s %s", html.duration(o.t), html.trim(html.value(o.label), 36)) end
    rows[#rows + 1] = { label = label, expected = expected, observed = observed, ci = ci_for(o.counts, o.n),
                        right = string.format("n=%d", math.floor(o.n)) }
  end
  for v in pairs(seen) do names[#names + 1] = v end
  table.sort(names)
  local versions = {}
  for _, v in ipairs(names) do versions[#versions + 1] = { key = v, label = v, class = color(v) } end
  return svg.share_bars {
    id = "split", title = "Observed split against the weights", versions = versions, rows = rows,
    desc = "Per confirming sample: the thin bar is the split the weights ask for, the thick bar what the gateway " ..
      "served, the whisker each version's 99% interval.",
    note = "Thin bar: expected from the weights; thick bar: observed in the confirming sample after the change; " ..
      "whisker: 99% Wilson interval.",
    empty = "No confirming sample was recorded.",
  }
end

-- Tick labels: as short as the tick values allow.
local function tick_num(v) return (string.format("%.6g", v)) end
local function tick_pct(v) return tick_num(v * 100) .. "%" end
local function tick_ms(v) return tick_num(v) .. " ms" end

local function point_mark(m)
  local o = m and m.outcome
  if o == "fail" or o == "error" or o == "inconclusive" or o == "no_data" then return o end
  return nil
end

local function errors_chart(model, color)
  local series = {}
  local keys = {}
  for k in pairs(model.errors.series) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if a == model.canary.key then return true elseif b == model.canary.key then return false end
    return a < b
  end)
  for _, k in ipairs(keys) do
    local s = model.errors.series[k]
    local pts = {}
    for _, p in ipairs(s.points) do
      pts[#pts + 1] = { x = p.x, y = p.y, mark = k == model.canary.key and point_mark(p.m) or nil,
                        title = string.format("%s: %s at +%s (%s)", s.label, html.rate(p.y), html.duration(p.x),
                          html.value(p.m.outcome or "?")) }
    end
    series[#series + 1] = { key = k, label = s.label, class = color(s.version or k), points = pts }
  end
  local ymax = 0
  for _, s in ipairs(series) do for _, p in ipairs(s.points) do ymax = math.max(ymax, p.y) end end
  return svg.time_chart {
    id = "errors", title = "Error rate per version (analysis measurements)", kind = "line",
    desc = "The failed share of the analysis probes per version at each look; cumulative over the run's looks.",
    duration = model.duration, y = { min = 0, max = math.max(ymax * 1.1, 0.01), format = tick_pct,
                                     label = "error rate" },
    series = series, markers = markers(model), bands = bands(model),
    note = "Each point is one look of the error-rate analysis (cumulative over the run, as judged); a filled point " ..
      "is a look that failed or was not decided.",
    empty = "No error-rate measurement was recorded.",
  }
end

local DASH = { [0.5] = nil, [0.9] = "d1", [0.99] = "d2" }

local function latency_chart(model, color)
  local series = {}
  local keys = {}
  for k in pairs(model.latency.series) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    local sa, sb = model.latency.series[a], model.latency.series[b]
    local ca, cb = sa.version == model.canary.key, sb.version == model.canary.key
    if ca ~= cb then return ca end
    if sa.version ~= sb.version then return tostring(sa.version) < tostring(sb.version) end
    return (sa.q or 0) < (sb.q or 0)
  end)
  for _, k in ipairs(keys) do
    local s = model.latency.series[k]
    local pts = {}
    for _, p in ipairs(s.points) do
      pts[#pts + 1] = { x = p.x, y = p.y, mark = s.version == model.canary.key and point_mark(p.m) or nil,
                        title = string.format("%s: %s at +%s", s.label, html.ms(p.y), html.duration(p.x)) }
    end
    local dash = DASH[s.q]
    if s.q and DASH[s.q] == nil and s.q > 0.5 then dash = "d3" end
    series[#series + 1] = { key = k, label = s.label, class = color(s.version or k), points = pts, dash = dash }
  end
  return svg.time_chart {
    id = "latency", title = "Latency quantiles per version (analysis measurements)", kind = "line",
    desc = "Latency quantiles of the served analysis probes per version at each look (solid p50, dashed p90, " ..
      "dotted p99).",
    duration = model.duration, y = { min = 0, format = tick_ms, label = "latency" },
    series = series, markers = markers(model), bands = bands(model),
    note = "Solid: p50, dashed: p90, dotted: p99 — cumulative over the run's looks, as judged.",
    empty = "No latency measurement was recorded.",
  }
end

local function user_charts(model, color)
  local out = {}
  for i, name in ipairs(model.user_order) do
    local u = model.user[name]
    local pts = {}
    for _, p in ipairs(u.points) do
      pts[#pts + 1] = { x = p.x, y = p.y, mark = point_mark(p.m),
                        title = string.format("%s = %s at +%s (%s)", name, html.value(p.y), html.duration(p.x),
                          html.value(p.m.outcome or "?")) }
    end
    local flags = {}
    for _, f in ipairs(u.nonfinite) do
      flags[#flags + 1] = { x = f.x, label = html.value(f.m.value),
                            title = string.format("%s = %s at +%s (%s)", name, html.value(f.m.value), html.duration(f.x),
                              html.value(f.m.outcome or "?")) }
    end
    local notes = {}
    if #u.nonfinite > 0 then
      notes[#notes + 1] = string.format("%d value(s) that are not finite numbers (NaN, ±Inf) are flagged on the top edge.",
        #u.nonfinite)
    end
    if u.other > 0 then
      notes[#notes + 1] = string.format("%d value(s) that are not numbers are in the table below.", u.other)
    end
    if #pts > 0 or #flags > 0 then
      out[#out + 1] = svg.time_chart {
        id = "metric-" .. i, title = "Metric " .. name, kind = "line", duration = model.duration,
        desc = "The values of the metric " .. name .. " over time.",
        series = { { key = name, label = name, class = "c" .. ((i + 1) % 7), points = pts } }, flags = flags,
        markers = markers(model), bands = bands(model), note = #notes > 0 and table.concat(notes, " ") or nil,
      }
    end
  end
  return table.concat(out, "\n")
end

local function params_table(run)
  local p = type(run.params) == "table" and run.params or nil
  if not p then return "" end
  local names = {}
  for k in pairs(p) do if type(k) == "string" then names[#names + 1] = k end end
  table.sort(names)
  local out = { '<table class="params"><thead><tr><th>parameter</th><th>value</th></tr></thead><tbody>' }
  for _, k in ipairs(names) do
    local v = p[k]
    if type(v) == "table" then
      local parts = {}
      for _, x in ipairs(v) do parts[#parts + 1] = html.value(x) end
      v = table.concat(parts, ",")
    else
      v = html.value(v)
    end
    if v == "" then v = '""' end
    out[#out + 1] = string.format("<tr><td><code>--%s</code></td><td>%s</td></tr>", esc((k:gsub("_", "-"))),
      esc(html.trim(v, 200)))
  end
  out[#out + 1] = "</tbody></table>"
  return table.concat(out, "\n")
end

local function outcome_block(run, model)
  local phase = type(run.phase) == "string" and run.phase or "unknown"
  local cls = PHASE_CLASS[phase] or "warn"
  local line
  if phase == "succeeded" then
    line = string.format("%s of %s succeeded.", (tostring(run.strategy or "the run"):gsub("_", "-"):gsub("^%l",
      string.upper)), tostring(run.version or "?"))
  elseif phase == "aborted" then
    line = "Aborted — the weights of before were restored."
  elseif phase == "failed" then
    line = "Failed — the rollback did not complete."
  elseif phase == "paused" then
    line = "Paused — waiting for resume, promote or abort."
  else
    line = "In progress (" .. phase .. ")."
  end
  local out = { string.format('<section class="outcome %s" id="outcome">', cls) }
  out[#out + 1] = string.format("<p>%s <strong>%s</strong></p>", badge(phase, phase), esc(line))
  if run.abort_reason ~= nil then
    out[#out + 1] = string.format('<p class="reason"><b>Why:</b> %s</p>', esc(html.value(run.abort_reason)))
  end
  if run.pause_reason ~= nil then
    out[#out + 1] = string.format('<p class="reason"><b>Paused:</b> %s</p>', esc(html.value(run.pause_reason)))
  end
  out[#out + 1] = string.format("<p>Weights before: <code>%s</code> → at the end: <code>%s</code></p>",
    esc(html.weights(run.weights_before)), esc(html.weights(run.weights)))
  local last = model.measurements[#model.measurements]
  if last then
    out[#out + 1] = string.format("<p>Last verdict: %s <b>%s</b> — %s</p>", outcome_badge(last.outcome),
      esc(last.metric or "?"), esc(html.trim(last.reason ~= nil and html.value(last.reason) or "", 400)))
  end
  out[#out + 1] = "</section>"
  return table.concat(out, "\n")
end

--- The report of a strategy run: `run` as in rollout.json, `history` the
-- journal entries (journal.history(service); other runs' are left out).
-- Returns the HTML text.
function report.render_run(run, history)
  if type(run) ~= "table" then
    return page("rollout report: no run", "<h1>No strategy run</h1><p>There is no run to report.</p>" ..
      footer("rollout report"))
  end
  local model = data.run_model(run, history)
  local names = {}
  for _, v in ipairs(model.versions) do names[#names + 1] = v end
  for _, v in ipairs(data.baseline_versions(run)) do names[#names + 1] = v end
  local color = palette(names)
  local strategy_name = tostring(run.strategy or "strategy"):gsub("_", "-")
  local title = string.format("%s of %s %s: %s", strategy_name, tostring(run.service or "?"),
    tostring(run.version or "?"), tostring(run.phase or "?"))
  local steps = type(run.params) == "table" and type(run.params.steps) == "table" and #run.params.steps or nil
  local body = {}
  body[#body + 1] = string.format("<header><h1>%s</h1>", esc(
    strategy_name:gsub("^%l", string.upper) .. " of " .. tostring(run.service or "?") .. " → " .. tostring(run.version or "?")))
  body[#body + 1] = facts {
    { "strategy", run.strategy and tostring(run.strategy) },
    { "service", run.service and tostring(run.service) },
    { "new version", run.version and tostring(run.version) },
    { "target", run.target and tostring(run.target) },
    { "run", run.id and tostring(run.id) },
    { "started", num(run.started) and html.utc(run.started) },
    { "finished", num(run.finished) and html.utc(run.finished) or "not finished" },
    { "duration", html.duration(model.duration) },
    { "step", run.step ~= nil and (html.value(run.step) .. (steps and (" of " .. steps) or "") ..
      (run.step_title and (": " .. html.value(run.step_title)) or "")) },
  }
  body[#body + 1] = "</header>"
  body[#body + 1] = outcome_block(run, model)
  body[#body + 1] = '<section id="traffic"><h2>Traffic</h2>'
  body[#body + 1] = weights_chart(model, color)
  body[#body + 1] = split_chart(model, color)
  body[#body + 1] = "</section>"
  body[#body + 1] = '<section id="analysis"><h2>Analysis</h2>'
  body[#body + 1] = string.format('<p class="muted">%s against %s.</p>', esc(model.canary.label),
    esc(model.baseline.label))
  body[#body + 1] = errors_chart(model, color)
  body[#body + 1] = latency_chart(model, color)
  body[#body + 1] = user_charts(model, color)
  body[#body + 1] = "<h3>Measurements</h3>"
  body[#body + 1] = measurements_table(model)
  body[#body + 1] = "</section>"
  body[#body + 1] = '<section id="journal"><h2>Journal</h2>'
  body[#body + 1] = journal_table(model)
  body[#body + 1] = "</section>"
  body[#body + 1] = '<section id="parameters"><h2>Parameters</h2>'
  body[#body + 1] = params_table(run)
  body[#body + 1] = "</section>"
  body[#body + 1] = footer("rollout report of " .. title)
  return page("rollout report: " .. title, table.concat(body, "\n"))
end

-- ------------------------------------------------------------- run_all --

--- The report of run_all's document (its --json output). Returns HTML.
function report.render_run_all(doc)
  doc = type(doc) == "table" and doc or {}
  local steps = {}
  for _, s in ipairs(type(doc.steps) == "table" and doc.steps or {}) do
    if type(s) == "table" then steps[#steps + 1] = s end
  end
  -- the versions and weights per step (a step without its own keeps the last)
  local names, seen = {}, {}
  local rows, split_rows = {}, {}
  local last
  for _, s in ipairs(steps) do
    -- a step's weights: its own, else its checks', else (when it checked
    -- something) those of the step before; a step that checked nothing
    -- (cleanup) has none
    local w = data.clean_weights(s.weights)
    local checks = type(s.checks) == "table" and s.checks or {}
    for _, c in ipairs(checks) do
      if type(c) == "table" and not w then w = data.clean_weights(c.weights) end
    end
    if not w and #checks > 0 then w = last end
    last = w or last
    local label = string.format("step %s: %s", html.value(s.step), html.value(s.title or ""))
    if w then
      for v, x in pairs(w) do if not seen[v] and x > 0 then seen[v] = true; names[#names + 1] = v end end
      local any = false
      for _, x in pairs(w) do if x > 0 then any = true end end
      rows[#rows + 1] = { label = label, expected = any and data.shares(w) or {},
                          right = any and html.weights(w) or "no weight" }
    end
    for _, c in ipairs(type(s.checks) == "table" and s.checks or {}) do
      if type(c) == "table" and type(c.counts) == "table" and tostring(c.check or ""):match("^split") then
        local counts, total = {}, 0
        for v, k in pairs(c.counts) do
          local x = num(k)
          if type(v) == "string" and x and x >= 0 then counts[v] = x; total = total + x end
        end
        local cw = data.clean_weights(c.weights) or w or {}
        if total > 0 then
          local observed = {}
          for v, x in pairs(counts) do
            observed[v] = x / total
            if not seen[v] then seen[v] = true; names[#names + 1] = v end
          end
          local p = num(c.p_value)
          split_rows[#split_rows + 1] = { label = string.format("step %s %s", html.value(s.step), html.value(c.check)),
            expected = data.shares(cw), observed = observed, ci = ci_for(counts, total),
            right = string.format("n=%d%s %s", math.floor(total), p and string.format(" p=%.3g", p) or "",
              c.ok and "✓" or "✗") }
        end
      end
    end
  end
  table.sort(names)
  local color = palette(names)
  local versions = {}
  for _, v in ipairs(names) do versions[#versions + 1] = { key = v, label = v, class = color(v) } end
  local ok = doc.ok == true
  local body = {}
  body[#body + 1] = string.format("<header><h1>%s</h1>", esc("Release workflow of " .. tostring(doc.service or "?")))
  body[#body + 1] = facts {
    { "service", doc.service and tostring(doc.service) },
    { "target", doc.target and tostring(doc.target) },
    { "steps", string.format("%s passed, %s failed%s of %s", html.value(doc.passed or 0), html.value(doc.failed or 0),
      (num(doc.not_run) or 0) > 0 and (", " .. html.value(doc.not_run) .. " not run") or "", html.value(doc.total or #steps)) },
    { "duration", html.duration(num(doc.duration)) },
    { "requests", doc.requests ~= nil and html.value(doc.requests) },
  }
  body[#body + 1] = "</header>"
  local outcome = ok and "All steps passed." or "The workflow did not pass."
  if doc.interrupted ~= nil then outcome = "Interrupted (^C) during step " .. html.value(doc.interrupted) .. "." end
  body[#body + 1] = string.format('<section class="outcome %s" id="outcome"><p>%s <strong>%s</strong></p>',
    ok and "ok" or "bad", badge(ok and "passed" or "failed", ok and "ok" or "bad"), esc(outcome))
  for _, s in ipairs(steps) do
    if not s.ok and s.reason ~= nil then
      body[#body + 1] = string.format('<p class="reason"><b>Step %s failed:</b> %s</p>', esc(html.value(s.step)),
        esc(html.value(s.reason)))
    end
  end
  body[#body + 1] = "</section>"
  body[#body + 1] = '<section id="traffic"><h2>Traffic</h2>'
  body[#body + 1] = svg.share_bars { id = "weights", title = "Weights per step (share of the default traffic)",
    versions = versions, rows = rows, desc = "Each step's weights as shares of the default traffic.",
    empty = "No step set weights." }
  body[#body + 1] = svg.share_bars { id = "split", title = "Observed split against the weights", versions = versions,
    rows = split_rows,
    desc = "Per split check: the thin bar is the split the weights ask for, the thick bar what the probe saw.",
    note = "Thin bar: expected from the weights; thick bar: observed; whisker: 99% Wilson interval.",
    empty = "No split check ran." }
  body[#body + 1] = "</section>"
  body[#body + 1] = '<section id="steps"><h2>Steps</h2>'
  body[#body + 1] = '<table class="steps"><thead><tr><th class="num">step</th><th>what</th><th>result</th>' ..
    '<th>checks</th><th class="num">requests</th><th class="num">duration</th></tr></thead><tbody>'
  for _, s in ipairs(steps) do
    local checks = {}
    for _, c in ipairs(type(s.checks) == "table" and s.checks or {}) do
      if type(c) == "table" then
        local p = num(c.p_value)
        checks[#checks + 1] = string.format("%s %s%s%s", c.ok and "✓" or "✗", esc(html.value(c.check or "check")),
          c.n ~= nil and esc(" n=" .. html.value(c.n)) or "", p and esc(string.format(" p=%.4f", p)) or "")
        if not c.ok and c.reason ~= nil then checks[#checks] = checks[#checks] .. ": " .. esc(html.value(c.reason)) end
      end
    end
    body[#body + 1] = string.format('<tr class="%s"><td class="num">%s</td><td>%s</td><td>%s</td><td>%s</td>' ..
      '<td class="num">%s</td><td class="num">%s</td></tr>', s.ok and "pass" or "fail", esc(html.value(s.step)),
      esc(html.value(s.title or "")) .. (s.reason ~= nil and ('<br><span class="muted">' .. esc(html.value(s.reason)) ..
      "</span>") or ""), badge(s.ok and "✓ passed" or "✗ failed", s.ok and "ok" or "bad"),
      #checks > 0 and table.concat(checks, "<br>") or '<span class="muted">–</span>', esc(html.value(s.requests or 0)),
      esc(html.duration(num(s.duration))))
  end
  body[#body + 1] = "</tbody></table></section>"
  body[#body + 1] = footer("rollout report of run_all for " .. tostring(doc.service or "?"))
  return page("rollout report: run_all of " .. tostring(doc.service or "?") .. (ok and ": passed" or ": failed"),
    table.concat(body, "\n"))
end

--- The latest per-version figures of a run (see rollout.report.data.latest).
report.latest = data.latest

return report
