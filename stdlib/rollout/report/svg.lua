--- rollout.report.svg: charts as inline SVG, written by Lua — no
-- JavaScript, no fonts or files from elsewhere. Colours come from CSS
-- classes (c0..c7, see rollout.report's stylesheet), so the charts follow
-- the page into dark mode and print.
--
-- Every chart is a <figure class="chart" data-chart=NAME> holding one
-- <svg> with a <title>, the axes, and per series a
-- <g class="series" data-series=KEY> with one drawn element (a
-- <polyline class="series-line"> for lines, a <path class="series-area">
-- for stacked areas, <rect class="bar"> for bars); the legend is a
-- <g class="legend"> of <g class="legend-item" data-series=KEY> with a
-- <text>. Tests and readers can rely on that structure.
local html = require "rollout.report.html"

local svg = {}

local esc, n = html.esc, html.n

local function finite(x) return type(x) == "number" and x == x and x ~= math.huge and x ~= -math.huge end

local CHAR_W = 6.6 -- average advance of a 11px sans-serif character

local function text_width(s)
  return (utf8.len(html.clean(s)) or #s) * CHAR_W
end

--- Nice ticks covering [lo, hi]: about `count` steps of 1, 2 or 5 × 10^k.
function svg.nice_ticks(lo, hi, count)
  count = count or 5
  if not (finite(lo) and finite(hi)) then lo, hi = 0, 1 end
  if hi <= lo then hi = lo + 1 end
  local raw = (hi - lo) / count
  local mag = 10 ^ math.floor(math.log(raw, 10))
  local step = mag
  for _, f in ipairs { 1, 2, 2.5, 5, 10 } do
    if raw <= f * mag * (1 + 1e-9) then step = f * mag break end
  end
  local first = math.floor(lo / step + 1e-9) * step
  local last = math.ceil(hi / step - 1e-9) * step
  local ticks = {}
  local v = first
  while v <= last + step * 1e-6 and #ticks < 50 do
    ticks[#ticks + 1] = math.abs(v) < step * 1e-9 and 0 or v
    v = v + step
  end
  return ticks, first, last, step
end

-- Time ticks in seconds: a step people read (1s … 1h), at most ~8.
local TIME_STEPS = { 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400 }
function svg.time_ticks(duration)
  if not finite(duration) or duration <= 0 then duration = 1 end
  local step = TIME_STEPS[#TIME_STEPS]
  for _, s in ipairs(TIME_STEPS) do
    if duration / s <= 8 then step = s break end
  end
  local ticks = {}
  local t = 0
  while t <= duration + step * 1e-6 and #ticks < 40 do
    ticks[#ticks + 1] = t
    t = t + step
  end
  return ticks, step
end

--- "0s", "30s", "1m", "1m30s", "2h" — a time tick's label.
function svg.time_label(t, step)
  if step and step < 1 then return string.format("%.1fs", t) end
  t = math.floor(t + 0.5)
  if t < 60 then return t .. "s" end
  if t < 3600 then
    if t % 60 == 0 then return (t // 60) .. "m" end
    return string.format("%dm%02ds", t // 60, t % 60)
  end
  if t % 3600 == 0 then return (t // 3600) .. "h" end
  return string.format("%dh%02dm", t // 3600, (t % 3600) // 60)
end

-- Lays legend items out in rows within `width`; returns the items with
-- x, y and the height used.
local function legend_layout(items, width, x0)
  local x, y, rows = x0, 0, 1
  local out = {}
  for _, it in ipairs(items) do
    local w = 22 + text_width(it.label) + 16
    if x > x0 and x + w > width then
      x, y, rows = x0, y + 18, rows + 1
    end
    out[#out + 1] = { item = it, x = x, y = y }
    x = x + w
  end
  return out, rows * 18
end

local function legend_svg(buf, laid, top, kind)
  buf[#buf + 1] = '<g class="legend">'
  for _, l in ipairs(laid) do
    local it = l.item
    local y = top + l.y
    buf[#buf + 1] = string.format('<g class="legend-item %s" data-series="%s">', it.class, esc(it.key))
    if kind == "line" then
      buf[#buf + 1] = string.format('<line class="swatch-line%s" x1="%s" y1="%s" x2="%s" y2="%s"/>',
        it.dash and (" " .. it.dash) or "", n(l.x), n(y + 6), n(l.x + 18), n(y + 6))
    else
      buf[#buf + 1] = string.format('<rect class="swatch%s" x="%s" y="%s" width="14" height="10"/>',
        it.dash and (" " .. it.dash) or "", n(l.x + 2), n(y + 1))
    end
    buf[#buf + 1] = string.format('<text x="%s" y="%s">%s</text></g>', n(l.x + 22), n(y + 10), esc(it.label))
  end
  buf[#buf + 1] = "</g>"
end

local function open_figure(buf, o, width, height)
  buf[#buf + 1] = string.format('<figure class="chart" id="chart-%s" data-chart="%s">', esc(o.id), esc(o.id))
  buf[#buf + 1] = string.format('<figcaption>%s</figcaption>', esc(o.title))
  buf[#buf + 1] = string.format('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %s %s" width="%s" height="%s" ' ..
    'role="img" aria-labelledby="t-%s d-%s" preserveAspectRatio="xMinYMin meet">', n(width), n(height), n(width), n(height),
    esc(o.id), esc(o.id))
  buf[#buf + 1] = string.format('<title id="t-%s">%s</title>', esc(o.id), esc(o.title))
  buf[#buf + 1] = string.format('<desc id="d-%s">%s</desc>', esc(o.id), esc(o.desc or o.title))
end

local function close_figure(buf, o)
  buf[#buf + 1] = "</svg>"
  if o.note then buf[#buf + 1] = string.format('<p class="note">%s</p>', esc(o.note)) end
  buf[#buf + 1] = "</figure>"
end

--- A figure saying there is nothing to draw (keeps data-chart for readers).
function svg.empty(o)
  return string.format('<figure class="chart empty" id="chart-%s" data-chart="%s"><figcaption>%s</figcaption>' ..
    '<p class="nodata">%s</p></figure>', esc(o.id), esc(o.id), esc(o.title), esc(o.empty or "no data recorded"))
end

--- A chart over time.
-- o = { id =, title =, desc =, note =, duration = seconds,
--       y = { min =, max =, format = fn(v) -> text, label = },
--       kind = "line" | "area" (stacked shares, y 0..1),
--       series = { { key =, label =, class = "c0", dash = "d1"|nil,
--                    points = { {x =, y =, title =, mark = "fail"|...} } } },
--       markers = { { x =, label =, kind = "step"|"abort"|"promote"|... , title = } },
--       bands = { { x0 =, x1 =, label = } },
--       flags = { { x =, label =, title = } }  -- values that cannot be drawn (NaN)
--     }
function svg.time_chart(o)
  local series = {}
  for _, s in ipairs(o.series or {}) do
    local pts = {}
    for _, p in ipairs(s.points or {}) do
      if finite(p.x) and finite(p.y) then pts[#pts + 1] = p end
    end
    if #pts > 0 then
      local c = {}
      for k, v in pairs(s) do c[k] = v end
      c.points = pts
      series[#series + 1] = c
    end
  end
  if #series == 0 and #(o.flags or {}) == 0 then return svg.empty(o) end

  local W = o.width or 760
  local left, right = 64, 20
  local legend, legend_h = legend_layout(series, W - right, left)
  local top = 10 + legend_h + 14
  local plot_h = o.plot_height or 170
  local H = top + plot_h + 34
  local pw = W - left - right
  local duration = (finite(o.duration) and o.duration > 0) and o.duration or 1
  local function X(x) return left + pw * math.max(0, math.min(1, x / duration)) end

  -- the y range
  local ymin, ymax = o.y and o.y.min, o.y and o.y.max
  if ymin == nil or ymax == nil then
    local lo, hi = math.huge, -math.huge
    for _, s in ipairs(series) do
      for _, p in ipairs(s.points) do lo = math.min(lo, p.y); hi = math.max(hi, p.y) end
    end
    if lo == math.huge then lo, hi = 0, 1 end
    if ymin == nil then ymin = math.min(0, lo) end
    if ymax == nil then ymax = hi end
  end
  if ymax <= ymin then ymax = ymin + (ymin == 0 and 1 or math.abs(ymin)) end
  local yticks
  yticks, ymin, ymax = svg.nice_ticks(ymin, ymax, 4)
  local function Y(y) return top + plot_h - plot_h * (math.max(ymin, math.min(ymax, y)) - ymin) / (ymax - ymin) end
  local fmt = o.y and o.y.format or function(v) return string.format("%g", v) end

  local buf = {}
  open_figure(buf, o, W, H)
  legend_svg(buf, legend, 10, o.kind == "area" and "area" or "line")
  -- grid and axes
  buf[#buf + 1] = '<g class="axis y">'
  for _, t in ipairs(yticks) do
    local y = Y(t)
    buf[#buf + 1] = string.format('<line class="grid" x1="%s" y1="%s" x2="%s" y2="%s"/>', n(left), n(y), n(left + pw), n(y))
    buf[#buf + 1] = string.format('<text class="tick" x="%s" y="%s" text-anchor="end">%s</text>', n(left - 6), n(y + 4),
      esc(fmt(t)))
  end
  if o.y and o.y.label then
    buf[#buf + 1] = string.format('<text class="axis-label" x="12" y="%s" transform="rotate(-90 12 %s)" ' ..
      'text-anchor="middle">%s</text>', n(top + plot_h / 2), n(top + plot_h / 2), esc(o.y.label))
  end
  buf[#buf + 1] = "</g>"
  local xticks, xstep = svg.time_ticks(duration)
  buf[#buf + 1] = '<g class="axis x">'
  buf[#buf + 1] = string.format('<line class="axis-line" x1="%s" y1="%s" x2="%s" y2="%s"/>', n(left), n(top + plot_h),
    n(left + pw), n(top + plot_h))
  for _, t in ipairs(xticks) do
    local x = X(t)
    buf[#buf + 1] = string.format('<line class="tickmark" x1="%s" y1="%s" x2="%s" y2="%s"/>', n(x), n(top + plot_h),
      n(x), n(top + plot_h + 4))
    buf[#buf + 1] = string.format('<text class="tick" x="%s" y="%s" text-anchor="middle">%s</text>', n(x),
      n(top + plot_h + 16), esc(svg.time_label(t, xstep)))
  end
  buf[#buf + 1] = string.format('<text class="axis-label" x="%s" y="%s" text-anchor="end">time since the start</text>',
    n(left + pw), n(top + plot_h + 30))
  buf[#buf + 1] = "</g>"
  -- pauses
  for _, b in ipairs(o.bands or {}) do
    if finite(b.x0) and finite(b.x1) then
      local x0, x1 = X(b.x0), X(b.x1)
      buf[#buf + 1] = string.format('<g class="band"><rect x="%s" y="%s" width="%s" height="%s"><title>%s</title></rect>' ..
        '<text x="%s" y="%s">%s</text></g>', n(x0), n(top), n(math.max(1, x1 - x0)), n(plot_h), esc(b.title or b.label),
        n(x0 + 3), n(top + plot_h - 4), esc(b.label))
    end
  end
  -- the series
  if o.kind == "area" then
    -- stacked shares: each series' band between the cumulative sums (step function)
    local xs, seen = {}, {}
    for _, s in ipairs(series) do
      for _, p in ipairs(s.points) do
        if not seen[p.x] then seen[p.x] = true; xs[#xs + 1] = p.x end
      end
    end
    table.sort(xs)
    local function value_at(s, x)
      local v = 0
      for _, p in ipairs(s.points) do
        if p.x <= x then v = p.y else break end
      end
      return v
    end
    local below = {}
    for i = 1, #xs do below[i] = 0 end
    for _, s in ipairs(series) do
      local upper = {}
      for i, x in ipairs(xs) do upper[i] = below[i] + value_at(s, x) end
      local d = {}
      -- the top edge, left to right, as steps
      for i, x in ipairs(xs) do
        local xe = xs[i + 1] or duration
        d[#d + 1] = string.format("%s%s %s", i == 1 and "M" or "L", n(X(x)), n(Y(upper[i])))
        d[#d + 1] = string.format("L%s %s", n(X(xe)), n(Y(upper[i])))
      end
      -- the bottom edge, right to left
      for i = #xs, 1, -1 do
        local xe = xs[i + 1] or duration
        d[#d + 1] = string.format("L%s %s", n(X(xe)), n(Y(below[i])))
        d[#d + 1] = string.format("L%s %s", n(X(xs[i])), n(Y(below[i])))
      end
      d[#d + 1] = "Z"
      buf[#buf + 1] = string.format('<g class="series %s" data-series="%s"><path class="series-area" d="%s">' ..
        '<title>%s</title></path>', s.class, esc(s.key), table.concat(d, " "), esc(s.label))
      -- the share of each change, as a hover title on the band's middle
      for i, x in ipairs(xs) do
        local v = upper[i] - below[i]
        if v > 0 then
          local xe = xs[i + 1] or duration
          buf[#buf + 1] = string.format('<rect class="hit" x="%s" y="%s" width="%s" height="%s"><title>%s</title></rect>',
            n(X(x)), n(Y(upper[i])), n(math.max(0.5, X(xe) - X(x))), n(math.max(0.5, Y(below[i]) - Y(upper[i]))),
            esc(string.format("%s: %s from %s", s.label, fmt(v), svg.time_label(x))))
        end
      end
      buf[#buf + 1] = "</g>"
      below = upper
    end
  else
    -- the first series (the canary) is drawn last: on top
    for i = #series, 1, -1 do
      local s = series[i]
      local pts = {}
      for _, p in ipairs(s.points) do pts[#pts + 1] = n(X(p.x)) .. "," .. n(Y(p.y)) end
      buf[#buf + 1] = string.format('<g class="series %s" data-series="%s">', s.class, esc(s.key))
      buf[#buf + 1] = string.format('<polyline class="series-line%s" points="%s"/>', s.dash and (" " .. s.dash) or "",
        table.concat(pts, " "))
      for _, p in ipairs(s.points) do
        buf[#buf + 1] = string.format('<circle class="point%s" cx="%s" cy="%s" r="%s"><title>%s</title></circle>',
          p.mark and (" " .. p.mark) or "", n(X(p.x)), n(Y(p.y)), p.mark and "4" or "2.5",
          esc(p.title or (s.label .. ": " .. fmt(p.y))))
      end
      buf[#buf + 1] = "</g>"
    end
  end
  -- values that cannot be drawn (NaN, ±Inf): a flag on the top edge
  if o.flags and #o.flags > 0 then
    buf[#buf + 1] = '<g class="flags">'
    for _, f in ipairs(o.flags) do
      if finite(f.x) then
        local x = X(f.x)
        buf[#buf + 1] = string.format('<g class="flag"><path d="M%s %s l-4 -7 h8 z"/><text x="%s" y="%s" ' ..
          'text-anchor="middle">%s</text><title>%s</title></g>', n(x), n(top + 8), n(x), n(top + 18), esc(f.label),
          esc(f.title or f.label))
      end
    end
    buf[#buf + 1] = "</g>"
  end
  -- steps and ends
  buf[#buf + 1] = '<g class="markers">'
  for _, mk in ipairs(o.markers or {}) do
    if finite(mk.x) then
      local x = X(mk.x)
      -- a label near the right edge goes to the left of its line
      local near_end = x + 3 + text_width(mk.label) > left + pw
      buf[#buf + 1] = string.format('<g class="marker %s"><line x1="%s" y1="%s" x2="%s" y2="%s"/>' ..
        '<text x="%s" y="%s"%s>%s</text><title>%s</title></g>', esc(mk.kind or "step"), n(x), n(top - 2), n(x),
        n(top + plot_h), n(near_end and x - 3 or x + 3), n(top + 9), near_end and ' text-anchor="end"' or "",
        esc(mk.label), esc(mk.title or mk.label))
    end
  end
  buf[#buf + 1] = "</g>"
  close_figure(buf, o)
  return table.concat(buf, "\n")
end

--- Horizontal stacked bars: per row, a thin bar of the expected shares
-- and a thick one of the observed shares (when the row has any), each
-- version a colour.
-- o = { id =, title =, desc =, note =, versions = { {key =, label =, class =} },
--       rows = { { label =, expected = {v = share}, observed = {v = share} | nil,
--                  right = "n=…", ci = {v = {lo, hi}} } } }
function svg.share_bars(o)
  local rows = o.rows or {}
  if #rows == 0 or #(o.versions or {}) == 0 then return svg.empty(o) end
  local W = o.width or 760
  local label_w = 0
  for _, r in ipairs(rows) do label_w = math.max(label_w, text_width(r.label)) end
  local left = math.min(280, math.max(90, label_w + 14))
  local right_w = 0
  for _, r in ipairs(rows) do right_w = math.max(right_w, r.right and text_width(r.right) or 0) end
  local right = math.min(200, right_w + 16)
  local legend_items = {}
  for _, v in ipairs(o.versions) do legend_items[#legend_items + 1] = v end
  local legend, legend_h = legend_layout(legend_items, W - 20, left)
  local top = 10 + legend_h + 10
  local with_observed = false
  for _, r in ipairs(rows) do if r.observed then with_observed = true end end
  local row_h = with_observed and 34 or 22
  local H = top + #rows * row_h + 26
  local pw = W - left - right
  local buf = {}
  open_figure(buf, o, W, H)
  legend_svg(buf, legend, 10, "area")
  -- the 0..100% axis
  buf[#buf + 1] = '<g class="axis x">'
  for _, t in ipairs { 0, 0.25, 0.5, 0.75, 1 } do
    local x = left + pw * t
    buf[#buf + 1] = string.format('<line class="grid" x1="%s" y1="%s" x2="%s" y2="%s"/>', n(x), n(top - 2), n(x),
      n(top + #rows * row_h))
    buf[#buf + 1] = string.format('<text class="tick" x="%s" y="%s" text-anchor="middle">%d%%</text>', n(x),
      n(top + #rows * row_h + 14), math.floor(t * 100 + 0.5))
  end
  buf[#buf + 1] = "</g>"
  buf[#buf + 1] = '<g class="row-labels">'
  for i, r in ipairs(rows) do
    local y = top + (i - 1) * row_h
    buf[#buf + 1] = string.format('<text class="row-label" x="%s" y="%s" text-anchor="end">%s</text>', n(left - 8),
      n(y + (with_observed and 20 or 14)), esc(html.trim(r.label, 44)))
    if r.right then
      buf[#buf + 1] = string.format('<text class="row-note" x="%s" y="%s">%s</text>', n(left + pw + 8),
        n(y + (with_observed and 20 or 14)), esc(r.right))
    end
  end
  buf[#buf + 1] = "</g>"
  for _, v in ipairs(o.versions) do
    buf[#buf + 1] = string.format('<g class="series %s" data-series="%s">', v.class, esc(v.key))
    for i, r in ipairs(rows) do
      local y = top + (i - 1) * row_h
      -- where this version's segment starts: the sum of those before it
      local function segment(shares, y0, h, cls, what)
        if not shares then return end
        local x0 = 0
        for _, u in ipairs(o.versions) do
          if u.key == v.key then break end
          x0 = x0 + (shares[u.key] or 0)
        end
        local w = shares[v.key] or 0
        if w > 0 and finite(w) and finite(x0) then
          buf[#buf + 1] = string.format('<rect class="bar %s" x="%s" y="%s" width="%s" height="%s"><title>%s</title></rect>',
            cls, n(left + pw * x0), n(y0), n(math.max(0.5, pw * w)), n(h),
            esc(string.format("%s — %s %s: %s", r.label, v.label, what, html.pct(w))))
        end
      end
      if with_observed then
        segment(r.expected, y + 2, 7, "expected", "expected")
        segment(r.observed, y + 11, 16, "observed", "observed")
        local ci = r.ci and r.ci[v.key]
        -- the last version's boundary is always 100%: no whisker there
        local last_key
        for _, u in ipairs(o.versions) do
          if (r.observed and r.observed[u.key] or 0) > 0 then last_key = u.key end
        end
        if ci and r.observed and v.key ~= last_key then
          local x0 = 0
          for _, u in ipairs(o.versions) do
            if u.key == v.key then break end
            x0 = x0 + (r.observed[u.key] or 0)
          end
          -- the interval of this version's share, drawn at its segment's right end
          local own = r.observed[v.key] or 0
          local lo, hi = math.max(0, x0 + (ci[1] or own)), math.min(1, x0 + (ci[2] or own))
          if finite(lo) and finite(hi) and hi > lo then
            local yc = y + 19
            buf[#buf + 1] = string.format('<path class="ci" d="M%s %s H%s M%s %s V%s M%s %s V%s"/>',
              n(left + pw * lo), n(yc), n(left + pw * hi), n(left + pw * lo), n(yc - 4), n(yc + 4),
              n(left + pw * hi), n(yc - 4), n(yc + 4))
          end
        end
      else
        segment(r.expected, y + 3, 14, "expected solid", "weight share")
      end
    end
    buf[#buf + 1] = "</g>"
  end
  close_figure(buf, o)
  return table.concat(buf, "\n")
end

return svg
