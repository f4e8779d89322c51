-- The HTML report in a real browser: Debian's Chromium, headless, on this
-- machine only (file:// pages, DevTools on 127.0.0.1, no network).
--   * `chromium --screenshot` renders reports to PNG (REPORT_SCREENSHOTS=DIR
--     keeps the pictures there, to look at them);
--   * over the DevTools protocol (tests/helpers/cdp.py) the page is loaded
--     with every console message, exception and log entry collected, and
--     the DOM is queried: each chart's SVG, its series elements and its
--     legend labels; the page is shot again with prefers-color-scheme: dark
--     emulated and with print media emulated, and their colours checked.
-- Chromium is required: without it these tests fail (make deps installs it).
-- Every browser started here is stopped by its PID (and its children by
-- theirs), pass or fail, and its profile directory removed.
local proc = require "rollout.proc"
local fs = require "rollout.fs"
local time = require "rollout.time"
local json = require "rollout.json"
local report = require "rollout.report"
local fx = require "tests.helpers.report_fixtures"

local ROOT = os.getenv("ROLLOUT_ROOT") or "."
local CDP = ROOT .. "/tests/helpers/cdp.py"
local TIMEOUT = tonumber(os.getenv("ROLLOUT_E2E_TIMEOUT")) or 60

local function chromium()
  -- the browser itself (the /usr/bin/chromium wrapper execs it, after
  -- sourcing /etc/chromium.d)
  if fs.exists("/usr/lib/chromium/chromium") then return "/usr/lib/chromium/chromium" end
  return proc.which("chromium")
end

local CHROMIUM = chromium()
local NEED = "chromium is not installed: these tests need Debian's chromium package (make deps installs it)"

-- Flags for a sandboxed machine without network or display.
local function flags(profile)
  return { "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-default-apps", "--disable-extensions", "--no-default-browser-check", "--mute-audio",
           "--hide-scrollbars", "--user-data-dir=" .. profile }
end

-- /proc/PID/stat: ppid and process group.
local function stat(pid)
  local s = fs.read("/proc/" .. pid .. "/stat")
  if not s then return nil end
  local rest = s:match("%) (.*)$")
  if not rest then return nil end
  local _, ppid, pgrp = rest:match("^(%S+) (%d+) (%d+)")
  return tonumber(ppid), tonumber(pgrp)
end

-- The processes under `pid` (children, theirs, …) and those of its group.
local function family(pid)
  local parent, group = {}, {}
  for _, name in ipairs(fs.list("/proc") or {}) do
    local p = tonumber(name)
    if p then
      local pp, pg = stat(p)
      if pp then parent[p], group[p] = pp, pg end
    end
  end
  local out, seen = {}, { [pid] = true }
  local changed = true
  while changed do
    changed = false
    for p, pp in pairs(parent) do
      if not seen[p] and (seen[pp] or group[p] == pid) then
        seen[p] = true
        out[#out + 1] = p
        changed = true
      end
    end
  end
  return out
end

-- A browser with the DevTools protocol on 127.0.0.1 (a port it picks).
local function start_browser(dir)
  assert(CHROMIUM, NEED)
  local b = { profile = dir .. "/profile", log = dir .. "/chromium.log" }
  assert(fs.mkdir_p(b.profile))
  local argv = { CHROMIUM }
  for _, f in ipairs(flags(b.profile)) do argv[#argv + 1] = f end
  argv[#argv + 1] = "--remote-debugging-address=127.0.0.1"
  argv[#argv + 1] = "--remote-debugging-port=0"
  argv[#argv + 1] = "about:blank"
  b.pid = assert(proc.spawn { argv = argv, log = b.log })
  local deadline = time.now() + TIMEOUT
  while true do
    local text = fs.read(b.profile .. "/DevToolsActivePort")
    local port, path = (text or ""):match("^(%d+)\n(/devtools/browser/[%w%-]+)")
    if port then
      b.port, b.path = tonumber(port), path
      return b
    end
    if not proc.alive(b.pid) or time.now() > deadline then
      local log = fs.read(b.log) or ""
      b.error = "chromium did not open its DevTools port:\n" .. log:sub(-2000)
      return b
    end
    time.sleep(0.05)
  end
end

-- Stops the browser and every process it started, each by PID; removes
-- its profile. Safe to call twice.
local function stop_browser(b)
  if not b or not b.pid then return end
  local kids = family(b.pid)
  local ok, err = proc.stop(b.pid, { timeout = 5 })
  for _, k in ipairs(kids) do
    if proc.alive(k) then proc.stop(k, { timeout = 2 }) end
  end
  b.pid = nil
  if b.profile and fs.exists(b.profile) then fs.remove_tree(b.profile) end
  assert(ok, err)
  for _, k in ipairs(kids) do assert.is_false(proc.alive(k), "chromium child " .. k .. " still runs") end
end

-- What the test asks the page (evaluated through DevTools: the report
-- itself has no script).
local QUERY = [[(() => {
  const charts = [...document.querySelectorAll('figure.chart')].map(f => {
    const svg = f.querySelector('svg');
    const box = svg ? svg.getBoundingClientRect() : null;
    return {
      id: f.dataset.chart,
      svg: !!svg,
      width: box ? box.width : 0, height: box ? box.height : 0,
      lines: f.querySelectorAll('polyline.series-line').length,
      areas: f.querySelectorAll('path.series-area').length,
      bars: f.querySelectorAll('rect.bar').length,
      series: [...f.querySelectorAll('g.series')].map(g => g.dataset.series),
      legend: [...f.querySelectorAll('g.legend-item text')].map(t => t.textContent),
      nodata: !!f.querySelector('p.nodata'),
      flags: f.querySelectorAll('g.flag').length,
    };
  });
  const reasons = [...document.querySelectorAll('td.reason')].map(td => td.textContent);
  return {
    title: document.title,
    charts,
    scripts: document.querySelectorAll('script').length,
    handlers: [...document.querySelectorAll('*')].filter(e => [...e.attributes].some(a => /^on/i.test(a.name))).length,
    fetches: document.querySelectorAll('[src], [href], link, iframe, object, embed, img').length,
    reasons,
    outcome: (document.querySelector('#outcome') || {}).textContent,
    overflowX: document.documentElement.scrollWidth > window.innerWidth + 1,
  };
})()]]

local function inspect(b, dir, html_file, opts)
  opts = opts or {}
  local out = dir .. "/" .. (opts.name or "inspect")
  assert(fs.mkdir_p(out))
  local query = dir .. "/query.js"
  assert(fs.write_atomic(query, QUERY))
  local argv = { "python3", CDP, "inspect", "--port", tostring(b.port), "--path", b.path, "--url",
                 "file://" .. html_file, "--query", query, "--out", out, "--timeout", tostring(TIMEOUT) }
  if opts.shots == false then argv[#argv + 1] = "--no-shots" end
  local r = assert(proc.run { argv = argv, timeout = TIMEOUT * 3 })
  assert(r.status == 0, "cdp.py failed (" .. tostring(r.status) .. "):\n" .. r.stderr .. r.stdout)
  return json.decode(r.stdout)
end

-- The width and height of a PNG, from its IHDR.
local function png_size(path)
  local s = assert(fs.read(path))
  assert.are.equal("\137PNG\r\n\26\n", s:sub(1, 8))
  local w, h = string.unpack(">I4I4", s, 17)
  return w, h, #s
end

local function rgb(css)
  local r, g, b = tostring(css):match("rgba?%((%d+),%s*(%d+),%s*(%d+)")
  assert(r, "not a colour: " .. tostring(css))
  return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255
end

local function by_id(dom)
  local out = {}
  for _, c in ipairs(dom.charts) do out[c.id] = c end
  return out
end

local function keep(dir, name)
  local into = os.getenv("REPORT_SCREENSHOTS")
  if not into or into == "" then return end
  assert(fs.mkdir_p(into))
  for _, f in ipairs(fs.list(dir) or {}) do
    if f:match("%.png$") or f:match("%.pdf$") or f:match("%.html$") then
      assert(fs.write_atomic(into .. "/" .. name .. "-" .. f, assert(fs.read(dir .. "/" .. f))))
    end
  end
end

local function console_text(list)
  local out = {}
  for _, m in ipairs(list or {}) do out[#out + 1] = string.format("[%s %s] %s", m.source, m.level, m.text) end
  return table.concat(out, "\n")
end

describe("the report in headless Chromium", function()
  local dir, browser

  setup(function()
    assert(CHROMIUM, NEED)
    assert(proc.which("python3"), "python3 is needed for the DevTools client")
    dir = assert(fs.mkdtemp("rollout-report-browser-"))
    local ok, err = pcall(function()
      browser = start_browser(dir)
      assert(not browser.error, browser.error)
    end)
    if not ok then
      pcall(stop_browser, browser)
      fs.remove_tree(dir)
      error(err, 0)
    end
  end)

  teardown(function()
    local ok, err = pcall(stop_browser, browser)
    if dir then fs.remove_tree(dir) end
    assert(ok, err)
  end)

  it("renders to PNG with --screenshot (light and forced dark)", function()
    assert(CHROMIUM, NEED)
    local run, history = fx.canary_succeeded()
    local file = dir .. "/canary.html"
    assert(fs.write_atomic(file, report.render_run(run, history)))
    for _, mode in ipairs { "light", "dark" } do
      local png = dir .. "/screenshot-" .. mode .. ".png"
      local profile = dir .. "/profile-" .. mode
      local argv = { CHROMIUM }
      for _, f in ipairs(flags(profile)) do argv[#argv + 1] = f end
      argv[#argv + 1] = "--window-size=1000,3000"
      argv[#argv + 1] = "--screenshot=" .. png
      if mode == "dark" then
        argv[#argv + 1] = "--force-dark-mode"
        argv[#argv + 1] = "--blink-settings=preferredColorScheme=0"
      end
      argv[#argv + 1] = "file://" .. file
      local r = assert(proc.run { argv = argv, timeout = TIMEOUT * 2 })
      fs.remove_tree(profile)
      assert.are.equal(0, r.status, r.stderr:sub(-2000))
      local w, h, size = png_size(png)
      assert.are.equal(1000, w)
      assert.are.equal(3000, h)
      assert.is_true(size > 30000, "a nearly empty picture: " .. size .. " bytes")
      -- the top of the picture (header, outcome, the first chart): dark or light
      local st = assert(proc.run { argv = { "python3", CDP, "pngstat", png, "--rows", "500" }, timeout = 120 })
      if st.status == 0 then
        local s = json.decode(st.stdout)
        if mode == "dark" then
          assert.is_true(s.luminance < 0.35, "the forced-dark screenshot is light: " .. s.luminance)
        else
          assert.is_true(s.luminance > 0.7, "the light screenshot is dark: " .. s.luminance)
        end
        assert.is_true(s.colours > 50, "too few colours for charts: " .. s.colours)
      else
        error("pngstat: " .. st.stderr)
      end
    end
    keep(dir, "screenshot")
  end)

  it("has no console errors; its charts have a series per version and their legends", function()
    assert(CHROMIUM, NEED)
    local run, history = fx.canary_succeeded()
    local file = dir .. "/canary-cdp.html"
    assert(fs.write_atomic(file, report.render_run(run, history)))
    local res = inspect(browser, dir, file, { name = "canary" })
    assert.are.same({}, res.console, console_text(res.console))
    local dom = res.dom
    assert.are.equal(0, dom.scripts)
    assert.are.equal(0, dom.handlers)
    assert.are.equal(0, dom.fetches)
    assert.is_false(dom.overflowX, "the page is wider than the window")
    assert.truthy(dom.title:find("canary of microservice-1 v3: succeeded", 1, true))
    local c = by_id(dom)
    for _, id in ipairs { "weights", "split", "errors", "latency" } do
      assert.truthy(c[id], "no chart " .. id)
      assert.is_true(c[id].svg, id .. " has no svg")
      assert.is_true(c[id].width > 500 and c[id].height > 80, id .. " is not drawn: " .. c[id].width .. "x" .. c[id].height)
    end
    assert.are.equal(3, c.weights.areas)
    assert.are.same({ "v1", "v2", "v3" }, c.weights.legend)
    assert.are.same({ "v1", "v2", "v3" }, c.split.legend)
    assert.are.equal(7 + 7, c.split.bars) -- expected and observed segments of 3 samples
    assert.are.equal(2, c.errors.lines)
    assert.are.same({ "v3 (canary)", "baseline (v1+v2)" }, c.errors.legend)
    assert.are.equal(6, c.latency.lines)
    assert.are.same({ "v3 p50", "v3 p90", "v3 p99", "baseline (v1+v2) p50", "baseline (v1+v2) p90",
                      "baseline (v1+v2) p99" }, c.latency.legend)

    -- light, then dark (prefers-color-scheme emulated), then print
    assert.is_true(rgb(res.light.background) > 0.9)
    assert.is_true(res.dark.dark)
    assert.is_true(rgb(res.dark.background) < 0.15, "dark background: " .. res.dark.background)
    assert.is_true(rgb(res.dark.color) > 0.8, "dark text: " .. res.dark.color)
    assert.are_not.equal(res.light.series_fill, res.dark.series_fill)
    assert.is_true(res.print.print)
    assert.is_true(rgb(res.print.background) > 0.95, "print background: " .. res.print.background)
    assert.is_true(rgb(res.print.color) < 0.1, "print text: " .. res.print.color)
    assert.is_true(res.screenshots.light.luminance > 0.7)
    assert.is_true(res.screenshots.dark.luminance < 0.35)
    assert.is_true(res.screenshots.print.luminance > 0.7)
    keep(dir .. "/canary", "canary")
  end)

  it("hostile text and odd values: shown as text, no console error, nothing run", function()
    assert(CHROMIUM, NEED)
    local run, history = fx.odd_metrics()
    local file = dir .. "/odd.html"
    assert(fs.write_atomic(file, report.render_run(run, history)))
    local res = inspect(browser, dir, file, { name = "odd" })
    assert.are.same({}, res.console, console_text(res.console))
    local dom = res.dom
    assert.are.equal(0, dom.scripts)
    assert.are.equal(0, dom.handlers)
    local found = false
    for _, r in ipairs(dom.reasons) do
      if r == "reason 5 " .. fx.HOSTILE then found = true end
    end
    assert.is_true(found, "the hostile reason is not shown as it was written")
    local c = by_id(dom)
    assert.are.equal(1, c["metric-1"].lines)
    assert.are.same({ "queue-depth" }, c["metric-1"].legend)
    assert.are.equal(5, c["metric-1"].flags)
    assert.are.same({ 'odd<metric>&"name"' }, c["metric-2"].legend)
    keep(dir .. "/odd", "odd")
  end)

  it("run_all's report", function()
    assert(CHROMIUM, NEED)
    local file = dir .. "/run_all.html"
    assert(fs.write_atomic(file, report.render_run_all(fx.run_all_doc(false))))
    local res = inspect(browser, dir, file, { name = "run_all", shots = false })
    assert.are.same({}, res.console, console_text(res.console))
    local c = by_id(res.dom)
    assert.are.same({ "v1", "v2", "v3" }, c.weights.legend)
    assert.are.same({ "v1", "v2", "v3" }, c.split.legend)
    assert.is_true(c.split.bars > 10)
    assert.truthy(res.dom.outcome:find("The workflow did not pass.", 1, true))
  end)

  it("run_all --report on the local target: a real run's report in the browser", function()
    assert(CHROMIUM, NEED)
    local world = require("tests.helpers.local_env").new()
    local ok, err = pcall(function()
      local file = dir .. "/run_all-real.html"
      local r = world:rollout { "scripts/run_all.lua", "microservice-1", "--report", file }
      assert.are.equal(0, r.status, r.stdout .. r.stderr)
      assert.truthy(r.stdout:find("report: " .. file, 1, true))
      local res = inspect(browser, dir, file, { name = "run_all-real", shots = false })
      assert.are.same({}, res.console, console_text(res.console))
      local c = by_id(res.dom)
      assert.are.same({ "v1", "v2", "v3" }, c.weights.legend)
      assert.are.same({ "v1", "v2", "v3" }, c.split.legend)
      assert.are.same({ "v1", "v2", "v3" }, c.split.series)
      -- 5 split checks (steps 1-5): expected and observed segments, v2 gone at step 4, v1 at step 5
      assert.are.equal(2 * (2 + 2 + 3 + 2 + 1), c.split.bars)
      assert.truthy(res.dom.outcome:find("All steps passed.", 1, true))
    end)
    world:cleanup()
    assert(ok, err)
  end)

  it("the checks catch what they look for: a page with a script and a broken chart", function()
    -- a negative control, written by hand as a careless report would be
    assert(CHROMIUM, NEED)
    local page = report.render_run(fx.canary_succeeded()):gsub("</body>",
      '<svg><polyline class="series-line" points="0,0 nan,1"/></svg><script>console.error("ran")</script></body>')
    local file = dir .. "/broken.html"
    assert(fs.write_atomic(file, page))
    local res = inspect(browser, dir, file, { name = "broken", shots = false })
    local text = console_text(res.console)
    assert.truthy(text:find("Content Security Policy", 1, true) or text:find("Content-Security-Policy", 1, true), text)
    assert.truthy(text:find("polyline", 1, true), text)
    assert.is_nil(text:find("] ran", 1, true), "the script ran")
    assert.are.equal(1, res.dom.scripts)
  end)
end)
