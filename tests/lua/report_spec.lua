-- rollout.report on fixture runs (canary succeeded / aborted, blue-green
-- paused, A/B finished, user metrics with odd values and hostile text, runs
-- recorded from real strategies, run_all documents): the structure of the
-- HTML — which charts, which series per version, which legend labels, what
-- is escaped, that it stands alone — and ops.status_lines' terminal view.
local report = require "rollout.report"
local data = require "rollout.report.data"
local html = require "rollout.report.html"
local svg = require "rollout.report.svg"
local fx = require "tests.helpers.report_fixtures"

-- ----------------------------------------------------------- helpers --

local function count(s, pattern)
  local n = 0
  for _ in s:gmatch(pattern) do n = n + 1 end
  return n
end

local function plain_count(s, needle)
  local n, i = 0, 1
  while true do
    local a, b = s:find(needle, i, true)
    if not a then return n end
    n, i = n + 1, b + 1
  end
end

-- The <figure> of chart `id` (nil when absent).
local function figure(page, id)
  local a = page:find('<figure class="chart[^"]*" id="chart%-' .. id:gsub("%-", "%%-") .. '"')
  if not a then return nil end
  local b = page:find("</figure>", a, true)
  return page:sub(a, b + 8)
end

local function unescape(s)
  return (s:gsub("&lt;", "<"):gsub("&gt;", ">"):gsub("&quot;", '"'):gsub("&#39;", "'"):gsub("&amp;", "&"))
end

-- The legend labels of a figure, in order, unescaped.
local function legend(fig)
  local out = {}
  for item in fig:gmatch('<g class="legend%-item[^"]*" data%-series="[^"]*">(.-)</g>') do
    out[#out + 1] = unescape(item:match("<text[^>]*>(.-)</text>"))
  end
  return out
end

local function series_keys(fig)
  local out = {}
  for k in fig:gmatch('<g class="series [^"]*" data%-series="([^"]*)">') do out[#out + 1] = unescape(k) end
  return out
end

local function set(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

-- Every polyline's number of points, in document order.
local function polyline_points(fig)
  local out = {}
  for pts in fig:gmatch('<polyline class="series%-line[^"]*" points="([^"]*)"') do
    out[#out + 1] = count(pts, "[^ ]+")
  end
  return out
end

local VOID = { meta = true, br = true, hr = true, img = true, input = true, link = true }

-- Checks that elements nest: every start tag closed in order (void and
-- self-closing ones aside). Returns true or false, message.
local function balanced(page)
  local body = page:gsub("<style>.-</style>", ""):gsub("<!DOCTYPE[^>]*>", "")
  local stack = {}
  for close, name, rest in body:gmatch("<(/?)([%a][%w%-]*)([^>]*)>") do
    name = name:lower()
    if close == "/" then
      local top = table.remove(stack)
      if top ~= name then return false, ("</%s> closes <%s>"):format(name, tostring(top)) end
    elseif not VOID[name] and not rest:match("/%s*$") then
      stack[#stack + 1] = name
    end
  end
  if #stack > 0 then return false, "unclosed: " .. table.concat(stack, " ") end
  return true
end

-- Numbers in geometry attributes: never nan, inf or empty.
local function bad_numbers(page)
  local bad = {}
  for attr, v in page:gmatch(' (%a+)="([^"]*)"') do
    if attr == "points" or attr == "d" or attr == "x" or attr == "y" or attr == "cx" or attr == "cy"
        or attr == "width" or attr == "height" or attr == "x1" or attr == "x2" or attr == "y1" or attr == "y2" then
      local l = v:lower()
      if l:find("nan", 1, true) or l:find("inf", 1, true) or v == "" then bad[#bad + 1] = attr .. "=" .. v end
    end
  end
  return bad
end

-- What a self-contained page must not have.
local function standalone(page)
  assert.is_nil(page:lower():find("<script", 1, true), "a <script> element")
  assert.is_nil(page:find(" src=", 1, true), "a src attribute")
  assert.is_nil(page:find(" href=", 1, true), "an href attribute")
  assert.is_nil(page:find("url(", 1, true), "a CSS url()")
  assert.is_nil(page:find("@import", 1, true), "a CSS @import")
  -- the only URL: the SVG namespace (a name, never fetched)
  local rest = page:gsub('xmlns="http://www%.w3%.org/2000/svg"', "")
  assert.is_nil(rest:find("https?://"), "a URL")
  assert.truthy(page:find("@media (prefers-color-scheme: dark)", 1, true))
  assert.truthy(page:find("@media print", 1, true))
  assert.truthy(page:find("Content-Security-Policy", 1, true))
  assert.are.same({}, bad_numbers(page))
  assert(balanced(page))
end

-- ------------------------------------------------------------- runs --

describe("report.render_run", function()
  it("a canary that succeeded: weights, split, error and latency charts with a series per version", function()
    local run, history = fx.canary_succeeded()
    local page = report.render_run(run, history)
    standalone(page)
    assert.truthy(page:find('<span class="badge succeeded">succeeded</span>', 1, true))

    local w = assert(figure(page, "weights"), "no weights chart")
    assert.are.equal(3, count(w, '<path class="series%-area"'))
    assert.are.same({ "v1", "v2", "v3" }, legend(w))
    assert.are.same(set { "v1", "v2", "v3" }, set(series_keys(w)))
    -- a marker per step, and the promotion
    for _, label in ipairs { "S1", "S2", "S3", "promote" } do
      assert.truthy(w:find(">" .. label .. "</text>", 1, true), label)
    end

    local split = assert(figure(page, "split"))
    assert.are.equal(3, count(split, '<text class="row%-label"')) -- 3 confirming samples (the last one once)
    assert.are.equal(7, count(split, '<rect class="bar observed"')) -- v1 v2 v3, v1 v2 v3, v3
    assert.truthy(split:find(">n=1058<", 1, true))

    local e = assert(figure(page, "errors"))
    assert.are.same({ "v3 (canary)", "baseline (v1+v2)" }, legend(e))
    assert.are.same({ 4, 4 }, polyline_points(e)) -- 2 looks × 2 analysed steps, per side
    local l = assert(figure(page, "latency"))
    assert.are.equal(6, #polyline_points(l))
    assert.are.same({ "v3 p50", "v3 p90", "v3 p99", "baseline (v1+v2) p50", "baseline (v1+v2) p90",
                      "baseline (v1+v2) p99" }, legend(l))

    -- every measurement, with its verdict and reason; the journal without the older run
    local tbl = page:match('<table class="measurements">(.-)</table>')
    assert.are.equal(8, count(tbl, "<tr class="))
    assert.truthy(tbl:find("v3: latency within 1.2 × baseline + 5.0 ms", 1, true))
    local journal = page:match('<table class="journal">(.-)</table>')
    assert.is_nil(journal:find("an older run", 1, true))
    assert.are.equal(1, count(journal, '<tr class="promote">'))
    assert.are.equal(3, count(journal, '<tr class="set_weights">'))
    -- the parameters, an empty one shown as such
    local params = page:match('<table class="params">(.-)</table>')
    assert.truthy(params:find("<tr><td><code>--steps</code></td><td>10,50,100</td></tr>", 1, true))
    assert.truthy(params:find("<tr><td><code>--baseline</code></td><td>&quot;&quot;</td></tr>", 1, true))
  end)

  it("an aborted canary: the failing look marked, the abort and its reason", function()
    local run, history = fx.canary_aborted()
    local page = report.render_run(run, history)
    standalone(page)
    assert.truthy(page:find('<section class="outcome bad" id="outcome">', 1, true))
    assert.truthy(page:find("error rate 5.5% vs baseline 0.0%", 1, true))
    local e = assert(figure(page, "errors"))
    assert.are.equal(1, count(e, '<circle class="point fail"'))
    assert.truthy(e:find('<g class="marker abort">', 1, true))
    -- the weights went back to those of before: the last change is the abort's
    local model = data.run_model(run, history)
    local last = model.weights[#model.weights]
    assert.are.equal("abort", last.action)
    assert.are.same({ v1 = 50, v2 = 50 }, last.w)
    assert.are.same({ "v1", "v2", "v3" }, model.versions)
    assert.are.equal(33, model.duration)
  end)

  it("a paused blue-green: the pause shaded, no-data latency said, the single baseline named", function()
    local run, history = fx.blue_green_paused()
    local page = report.render_run(run, history)
    standalone(page)
    assert.truthy(page:find('<span class="badge paused">paused</span>', 1, true))
    local w = assert(figure(page, "weights"))
    assert.are.equal(1, count(w, '<g class="band">'))
    assert.are.same({ "v2" }, legend(w)) -- v3 never had weight
    assert.truthy(w:find("Also deployed, weight 0 throughout: v3.", 1, true))
    local e = assert(figure(page, "errors"))
    assert.are.same({ "v3 (canary)", "v2 (baseline)" }, legend(e))
    assert.truthy(e:find('<circle class="point inconclusive"', 1, true))
    local l = assert(figure(page, "latency"))
    assert.truthy(l:find('<p class="nodata">', 1, true))
    assert.truthy(page:find("Paused — waiting for resume, promote or abort.", 1, true))
  end)

  it("an A/B test: the test group against the default route", function()
    local run, history = fx.ab_test_finished()
    local page = report.render_run(run, history)
    standalone(page)
    local e = assert(figure(page, "errors"))
    assert.are.same({ "v3 (test group)", "default route (everyone else)" }, legend(e))
    assert.are.same({ 2, 2 }, polyline_points(e))
    local journal = page:match('<table class="journal">(.-)</table>')
    assert.are.equal(2, count(journal, '<tr class="route">'))
    assert.truthy(journal:find("0 route(s) → 1 route(s)", 1, true))
    assert.truthy(figure(page, "split"):find('<p class="nodata">', 1, true)) -- no weights changed
  end)

  it("user metrics with NaN, ±Inf, strings and tables; hostile text everywhere is escaped", function()
    local run, history = fx.odd_metrics()
    local page = report.render_run(run, history)
    standalone(page)
    local H = fx.HOSTILE
    assert.is_nil(page:find(H, 1, true), "the hostile text is in the page as it is")
    assert.is_nil(page:find("<svg onload", 1, true))
    assert.is_nil(page:find("</text></svg>&", 1, true))
    local escaped = html.esc(H)
    assert.truthy(escaped:find("&lt;script&gt;", 1, true))
    -- the reason, the run id, who, the step title, a parameter, an attribute (data-series)
    assert.truthy(plain_count(page, escaped) >= 8, "escaped copies: " .. plain_count(page, escaped))
    assert.truthy(page:find("reason 5 " .. escaped, 1, true))

    -- the user metric: its finite values drawn, the others flagged or listed
    local q = assert(figure(page, "metric-1"))
    assert.truthy(q:find("Metric queue-depth", 1, true))
    assert.are.same({ 4 }, polyline_points(q)) -- 0.5, 1e308, -3.25, 42
    assert.are.equal(5, count(q, '<g class="flag">')) -- NaN, +Inf, -Inf, "NaN", "-Infinity"
    assert.truthy(q:find("5 value(s) that are not finite numbers", 1, true))
    assert.truthy(q:find("3 value(s) that are not numbers", 1, true))
    -- an odd metric name, escaped in its title and its series attribute
    local odd = assert(figure(page, "metric-2"))
    assert.truthy(odd:find("Metric odd&lt;metric&gt;&amp;&quot;name&quot;", 1, true))
    assert.truthy(odd:find('data-series="odd&lt;metric&gt;&amp;&quot;name&quot;"', 1, true))
    -- every measurement is in the table, the odd values by name
    local tbl = page:match('<table class="measurements">(.-)</table>')
    assert.are.equal(14, count(tbl, "<tr class="))
    for _, v in ipairs { ">NaN<", ">+Inf<", ">-Inf<", ">-Infinity<", ">true<", ">1e+308<" } do
      assert.truthy(tbl:find(v, 1, true), v)
    end
    -- torn and foreign journal entries are skipped, bad weights dropped
    local model = data.run_model(run, history)
    for _, c in ipairs(model.weights) do
      for _, x in pairs(c.w) do assert.is_true(data.finite(x) and x >= 0) end
    end
  end)

  it("runs recorded from the real strategies", function()
    local run, history = fx.real("canary_aborted")
    local page = report.render_run(run, history)
    standalone(page)
    assert.are.same({ "v3", "v4" }, legend(figure(page, "weights")))
    assert.truthy(figure(page, "weights"):find("Also deployed, weight 0 throughout: v1, v2.", 1, true))
    assert.are.same({ "v4 (canary)", "v3 (baseline)" }, legend(figure(page, "errors")))
    assert.are.equal(1, count(figure(page, "errors"), '<circle class="point fail"'))
    assert.are.equal(6, #polyline_points(figure(page, "latency")))
    assert.truthy(page:find("71/1288", 1, true))

    run, history = fx.real("blue_green")
    page = report.render_run(run, history)
    standalone(page)
    assert.are.same({ "v3", "v5" }, legend(figure(page, "weights")))
    for _, label in ipairs { "S1", "S2", "promote" } do
      assert.truthy(figure(page, "weights"):find(">" .. label .. "</text>", 1, true), label)
    end

    run, history = fx.real("ab_test")
    page = report.render_run(run, history)
    standalone(page)
    assert.are.same({ "v6 (test group)", "default route (everyone else)" }, legend(figure(page, "errors")))
  end)

  it("a run with nothing recorded yet, and no run at all", function()
    local page = report.render_run({ service = "s", strategy = "canary", version = "v2", phase = "progressing",
                                     started = 1000, weights_before = { v1 = 100 } }, {})
    standalone(page)
    assert.truthy(figure(page, "errors"):find('<p class="nodata">', 1, true))
    assert.truthy(figure(page, "latency"):find('<p class="nodata">', 1, true))
    assert.are.same({ "v1" }, legend(figure(page, "weights")))
    page = report.render_run(nil, nil)
    assert.truthy(page:find("No strategy run", 1, true))
    assert(balanced(page))
  end)
end)

describe("report.render_run_all", function()
  it("weights per step, observed against expected per split check, every step", function()
    local page = report.render_run_all(fx.run_all_doc(true))
    standalone(page)
    local w = assert(figure(page, "weights"))
    assert.are.same({ "v1", "v2", "v3" }, legend(w))
    assert.are.equal(6, count(w, '<text class="row%-label"')) -- steps 0-5; cleanup sets none
    local s = assert(figure(page, "split"))
    assert.are.equal(5, count(s, '<text class="row%-label"')) -- the split checks, not the header check
    assert.are.same(set { "v1", "v2", "v3" }, set(series_keys(s)))
    assert.are.equal(7, count(page:match('<table class="steps">(.-)</table>'), "<tr class=\"pass\">"))
    assert.truthy(page:find("All steps passed.", 1, true))
  end)

  it("a failed step: its reason escaped, the leak to v2 drawn", function()
    local page = report.render_run_all(fx.run_all_doc(false))
    standalone(page)
    assert.truthy(page:find("v2 has weight 0 but served 200 requests &lt;b&gt;", 1, true))
    assert.truthy(page:find("The workflow did not pass.", 1, true))
    local s = assert(figure(page, "split"))
    assert.truthy(s:find("step 4 split — v2 observed: 5.8%", 1, true))
  end)

  it("an empty document", function()
    local page = report.render_run_all({})
    standalone(page)
    assert.truthy(figure(page, "weights"):find("nodata", 1, true))
  end)
end)

describe("report helpers", function()
  it("escapes HTML and attribute text, and repairs what is not text", function()
    assert.are.equal("&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;amp;",
      html.esc([[<a href="x" onclick='y'>&amp;]]))
    assert.are.equal("a\u{FFFD}b\u{FFFD}c", html.esc("a\255b\0c"))
    assert.are.equal("x\u{FFFD}", html.esc("x\194\133")) -- a C1 control
    assert.are.equal("tab\tand\nnewline", html.esc("tab\tand\nnewline"))
    assert.are.equal("", html.esc(nil))
  end)

  it("formats values, NaN and ±Inf by name", function()
    assert.are.equal("NaN", html.value(0 / 0))
    assert.are.equal("+Inf", html.value(math.huge))
    assert.are.equal("-Inf", html.value(-math.huge))
    assert.are.equal("0.3333", html.value(1 / 3))
    assert.are.equal("0", html.n(0 / 0))
    assert.are.equal("12.3", html.n(12.34))
    assert.are.equal("0.078%", html.rate(0.00078))
  end)

  it("ticks", function()
    assert.are.same({ 0, 0.25, 0.5, 0.75, 1 }, (svg.nice_ticks(0, 1, 4)))
    local t, step = svg.time_ticks(200)
    assert.are.equal(30, step)
    assert.are.equal("1m30s", svg.time_label(90, step))
    assert.are.equal("2h", svg.time_label(7200, 3600))
    local ticks = svg.nice_ticks(0, 1e308, 4)
    for _, x in ipairs(ticks) do assert.is_true(data.finite(x)) end
  end)

  it("reads the measurement shapes", function()
    assert.are.equal("errors", data.kind { metric = "error-rate", value = { metric = "errors", canary = {}, baseline = {} } })
    assert.are.equal("errors", data.kind { metric = "error-rate", value = { canary = 0.1, baseline = 0.0 } })
    assert.are.equal("latency", data.kind { value = { metric = "latency", quantiles = {} } })
    assert.are.equal("number", data.kind { value = 3 })
    assert.are.equal("nonfinite", data.kind { value = 0 / 0 })
    assert.are.equal("nonfinite", data.kind { value = "Infinity" })
    assert.are.equal("other", data.kind { value = "3 apples" })
    assert.are.same({ canary = 0.5, baseline = 0.25 }, data.error_rates { value = { canary = 0.5, baseline = 0.25 } })
    assert.are.equal("p99.9", data.q_name(0.999))
  end)

  it("draws a series per version from stats.per_version when a measurement carries it", function()
    local run = { id = "r", version = "v3", weights_before = { v1 = 50, v2 = 50 }, started = 0, finished = 20,
                  phase = "succeeded" }
    local history = {
      { run = "r", t = 5, action = "measurement", metric = "error-rate", outcome = "pass",
        value = { metric = "errors", canary = { n = 100, errors = 1 }, baseline = { n = 100, errors = 0 } },
        stats = { per_version = { v1 = { n = 50, errors = 0, p50 = 1 }, v2 = { n = 50, errors = 0 },
                                  v3 = { n = 100, errors = 1 } } } },
      { run = "r", t = 6, action = "measurement", metric = "latency", outcome = "pass",
        value = { metric = "latency", quantiles = { { q = 0.5, canary = 1, baseline = 1 } } },
        stats = { per_version = { v1 = { p50 = 1, p90 = 2, p99 = 3 }, v3 = { p50 = 1.5, p90 = 2.5, p99 = 9 } } } },
    }
    local page = report.render_run(run, history)
    assert.are.same(set { "v1", "v2", "v3" }, set(legend(figure(page, "errors"))))
    assert.are.equal(6, #polyline_points(figure(page, "latency")))
    local latest = data.latest { version = "v3", weights_before = run.weights_before,
                                 measurements = { history[1], history[2] } }
    local by = {}
    for _, r in ipairs(latest.rows) do by[r.key] = r end
    assert.are.equal(0.01, by.v3.error_rate)
    assert.are.equal(9, by.v3.p99)
  end)
end)

-- ---------------------------------------------------- status --watch view --

describe("ops.status_lines", function()
  local ops = require "rollout.strategy.ops"

  local function text(run)
    return table.concat(ops.status_lines(run, "microservice-1"), "\n")
  end

  it("shows the step, the weights as bars, each side's errors and latency, the last verdicts", function()
    local run = fx.canary_succeeded()
    local t = text(run)
    assert.truthy(t:find("✓ canary of microservice-1 v3: succeeded", 1, true))
    assert.truthy(t:find("step 4/3: 100% of the traffic to v3", 1, true))
    assert.truthy(t:find("v3: 100 → 100.0%  " .. string.rep("█", 24), 1, true))
    assert.truthy(t:find("observed (last confirming sample, n=1058, for v1=0 v2=0 v3=100): v3 100.0%", 1, true))
    -- the last look: 4 errors of 5152 for v3, 3 for the baseline; p50 1.4 ms against 0.9 ms
    local canary = t:match("\n%s+v3 %(canary%)([^\n]*)")
    local base = t:match("\n%s+baseline %(v1%+v2%)([^\n]*)")
    assert.truthy(canary and base, t)
    assert.truthy(canary:find("0.078% (4/5152)", 1, true), canary)
    assert.truthy(canary:find("1.40 ms", 1, true), canary)
    assert.truthy(canary:find("12.0 ms", 1, true), canary)
    assert.truthy(base:find("0.058% (3/5152)", 1, true), base)
    assert.truthy(base:find("0.90 ms", 1, true), base)
    assert.truthy(t:find("✓ error-rate   step 2   v3: error rate", 1, true), t)
    assert.truthy(t:find("✓ latency      step 2   v3: latency within", 1, true), t)
    assert.truthy(t:find("measurements: 8 (8 pass)", 1, true))
    assert.is_nil(t:find("\27[", 1, true)) -- NO_COLOR is set for the tests
  end)

  it("an aborted run: the reason and the failing verdict", function()
    local t = text((fx.canary_aborted()))
    assert.truthy(t:find("✗ canary of microservice-1 v3: aborted", 1, true))
    assert.truthy(t:find("  aborted: v3: error-rate: v3: error rate 5.5%", 1, true))
    assert.truthy(t:find("✗ error-rate   step 2   v3: error rate 5.5%", 1, true))
    assert.truthy(t:find("5.51% (142/2576)", 1, true))
  end)

  it("a paused run, odd values and long reasons stay on their lines", function()
    local t = text((fx.blue_green_paused()))
    assert.truthy(t:find("paused: analysis inconclusive", 1, true))
    assert.truthy(t:find("? error-rate", 1, true))
    assert.truthy(t:find("∅ latency", 1, true))
    local run = fx.odd_metrics()
    run.measurements[#run.measurements + 1] = { metric = "x", outcome = "pass", reason = string.rep("long ", 100) .. "\nnext" }
    for _, line in ipairs(ops.status_lines(run, "microservice-1")) do
      assert.is_nil(line:find("\n", 1, true))
    end
    t = text(run)
    assert.truthy(t:find("· ", 1, true) or t:find("✓ x", 1, true))
    assert.truthy(t:find("long long", 1, true) and t:find("…", 1, true))
    assert.are.same({ "microservice-1: no strategy run" }, ops.status_lines(nil, "microservice-1"))
  end)
end)
