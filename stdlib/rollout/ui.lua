--- rollout.ui: what users see. Traffic bars, ✓/✗ marks, verdict tables and
-- progress bars. Colour only on a terminal and never with NO_COLOR; progress
-- bars only on a terminal; piped output is plain, line-oriented text.
local sys = require "rollout.sys"

local ui = {}

local colors = {
  reset = "\27[0m", bold = "\27[1m", dim = "\27[2m",
  red = "\27[31m", green = "\27[32m", yellow = "\27[33m", blue = "\27[34m", cyan = "\27[36m",
}

local out = io.stdout

--- Redirects output (tests use a buffer); `stream` needs :write.
function ui.set_output(stream) out = stream end

--- True when stdout is a terminal.
function ui.is_tty()
  if ui.force_tty ~= nil then return ui.force_tty end
  return out == io.stdout and sys.isatty("stdout")
end

--- True when colour may be used: a terminal, NO_COLOR unset, TERM not dumb.
function ui.color_enabled()
  local no_color = os.getenv("NO_COLOR")
  if no_color and no_color ~= "" then return false end
  if os.getenv("TERM") == "dumb" then return false end
  return ui.is_tty()
end

function ui.paint(text, color)
  if not ui.color_enabled() or not colors[color] then return text end
  return colors[color] .. text .. colors.reset
end

function ui.print(...)
  local parts = table.pack(...)
  for i = 1, parts.n do parts[i] = tostring(parts[i]) end
  out:write(table.concat(parts, " "), "\n")
  out:flush()
end

function ui.heading(text) ui.print(ui.paint(text, "bold")) end
function ui.info(text) ui.print("  " .. text) end
--- The ✓ / ✗ line of ui.ok / ui.fail, as a string.
function ui.ok_line(text) return ui.paint("✓", "green") .. " " .. text end
function ui.fail_line(text) return ui.paint("✗", "red") .. " " .. text end
function ui.ok(text) ui.print(ui.ok_line(text)) end
function ui.fail(text) ui.print(ui.fail_line(text)) end
function ui.warn(text) ui.print(ui.paint("!", "yellow") .. " " .. text) end

--- Display width of a UTF-8 string (each code point counts 1).
function ui.width(s)
  return utf8.len(s) or #s
end

local function pad(s, width, right)
  local gap = width - ui.width(s)
  if gap <= 0 then return s end
  return right and (string.rep(" ", gap) .. s) or (s .. string.rep(" ", gap))
end

--- A bar of `share` (0..1) of `width` cells, with eighth-block precision.
local eighths = { "▏", "▎", "▍", "▌", "▋", "▊", "▉" }
function ui.bar(share, width)
  width = width or 30
  share = math.max(0, math.min(1, share or 0))
  local units = math.floor(share * width * 8 + 0.5)
  local full, rest = units // 8, units % 8
  local s = string.rep("█", full)
  if rest > 0 then s = s .. eighths[rest] end
  return s
end

local function percent(x, digits)
  return string.format("%." .. (digits or 1) .. "f%%", 100 * x)
end
ui.percent = percent

--- Traffic lines in the original's format: "v1: 50 → 33.3%  ████████".
-- rows: list of {name=, weight=, share=} (share from the weights).
function ui.traffic_lines(rows, bar_width)
  local lines, name_w, weight_w, share_w = {}, 0, 0, 0
  for _, r in ipairs(rows) do
    name_w = math.max(name_w, ui.width(r.name))
    weight_w = math.max(weight_w, #tostring(r.weight))
    share_w = math.max(share_w, #percent(r.share))
  end
  for _, r in ipairs(rows) do
    local label = pad(r.name .. ":", name_w + 1)
    local line = string.format("%s %s → %s  %s", label, pad(tostring(r.weight), weight_w, true),
      pad(percent(r.share), share_w, true), ui.bar(r.share, bar_width or 30))
    lines[#lines + 1] = line
  end
  return lines
end

function ui.traffic(rows, title)
  if title then ui.print(title) end
  for _, line in ipairs(ui.traffic_lines(rows)) do
    ui.print("  " .. ui.paint(line, "cyan"))
  end
end

--- Left/right aligned columns. headers: list of {title=, right=bool}.
function ui.table(headers, rows)
  local widths = {}
  for i, h in ipairs(headers) do widths[i] = ui.width(h.title) end
  for _, row in ipairs(rows) do
    for i, cell in ipairs(row) do
      widths[i] = math.max(widths[i] or 0, ui.width(tostring(cell)))
    end
  end
  local lines = {}
  local function line(cells, paint)
    local parts = {}
    for i, h in ipairs(headers) do
      parts[i] = pad(tostring(cells[i] or ""), widths[i], h.right)
    end
    local text = "  " .. table.concat(parts, "  "):gsub("%s+$", "")
    lines[#lines + 1] = paint and ui.paint(text, paint) or text
  end
  local titles = {}
  for i, h in ipairs(headers) do titles[i] = h.title end
  line(titles, "dim")
  for _, row in ipairs(rows) do line(row) end
  return lines
end

local function fmt_p(p)
  if p == nil then return "-" end
  if p < 1e-4 then return string.format("%.1e", p) end
  return string.format("%.4f", p)
end
ui.format_p = fmt_p

--- Lines of a verdict from rollout.verify: expected vs observed share with
-- confidence intervals, n and p.
function ui.verdict_lines(v)
  local headers = {
    { title = "version" }, { title = "weight", right = true }, { title = "expected", right = true },
    { title = "observed", right = true }, { title = string.format("%g%% CI", 100 * (v.confidence or 0.99)) },
    { title = "count", right = true },
  }
  local with_errors = false
  for _, r in ipairs(v.rows or {}) do
    if (r.errors or 0) > 0 then with_errors = true end
  end
  if with_errors then headers[#headers + 1] = { title = "errors", right = true } end
  local rows = {}
  for _, r in ipairs(v.rows or {}) do
    local ci = r.ci_low and string.format("[%s, %s]", percent(r.ci_low), percent(r.ci_high)) or ""
    rows[#rows + 1] = {
      r.version, r.weight ~= nil and tostring(r.weight) or "-",
      r.expected and percent(r.expected) or "-", percent(r.observed or 0), ci, tostring(r.count or 0),
    }
    if with_errors then
      local e = r.errors or 0
      rows[#rows][7] = e > 0 and string.format("%d (%s)", e, percent(e / math.max(1, r.count or 0))) or "0"
    end
  end
  local lines = ui.table(headers, rows)
  local summary = string.format("  n=%d  p=%s%s  errors=%d", v.n or 0, fmt_p(v.p_value),
    v.method and (" (" .. v.method .. ")") or "", v.errors or 0)
  if v.error_budget then
    summary = summary .. string.format(" (budget %s)", percent(v.error_budget, 1))
  end
  if v.alpha then summary = summary .. string.format("  α=%g", v.alpha) end
  if v.planned then summary = summary .. string.format("  planned n=%d", v.planned) end
  lines[#lines + 1] = summary
  if v.error_kinds and next(v.error_kinds) then
    local kinds = {}
    for k, c in pairs(v.error_kinds) do if c > 0 then kinds[#kinds + 1] = k .. "=" .. c end end
    table.sort(kinds)
    if #kinds > 0 then lines[#lines + 1] = "  error kinds: " .. table.concat(kinds, " ") end
  end
  return lines
end

--- Every line ui.verdict prints: the table, then ✓ summary or ✗ reason.
function ui.verdict_report(v)
  local lines = ui.verdict_lines(v)
  if v.ok then
    lines[#lines + 1] = ui.ok_line(v.summary or "split as expected")
  else
    lines[#lines + 1] = ui.fail_line(v.reason or "failed")
  end
  return lines
end

function ui.verdict(v)
  for _, line in ipairs(ui.verdict_report(v)) do ui.print(line) end
end

-- The columns of ui.versions_lines after version, weight, share, ready:
-- these first when present, then any other (scalar) field by name.
local VERSION_COLUMNS = { "pid", "port", "replicas", "ready_replicas", "release", "revision", "status",
                          "chart", "gateway", "detail" }
local RIGHT = { pid = true, port = true, replicas = true, ready_replicas = true, revision = true }

--- Rows of svc:versions() (or ops.lua list): version, weight, share, ready,
-- then the fields the target reports (pid, port, gateway; replicas,
-- release, ...); "-" where a version has none.
function ui.versions_lines(versions)
  local seen, extra = {}, {}
  for _, v in ipairs(versions) do
    for k, x in pairs(v) do
      local t = type(x)
      if type(k) == "string" and (t == "string" or t == "number" or t == "boolean") then seen[k] = true end
    end
  end
  for _, k in ipairs { "name", "weight", "share", "ready" } do seen[k] = nil end
  for _, k in ipairs(VERSION_COLUMNS) do
    if seen[k] then extra[#extra + 1] = k; seen[k] = nil end
  end
  local rest = {}
  for k in pairs(seen) do rest[#rest + 1] = k end
  table.sort(rest)
  table.move(rest, 1, #rest, #extra + 1, extra)
  local headers = { { title = "version" }, { title = "weight", right = true }, { title = "share", right = true },
                    { title = "ready" } }
  for _, k in ipairs(extra) do headers[#headers + 1] = { title = k, right = RIGHT[k] } end
  local rows = {}
  for _, v in ipairs(versions) do
    local row = { tostring(v.name), tostring(v.weight or "-"), type(v.share) == "number" and percent(v.share) or "-",
                  v.ready == nil and "-" or (v.ready and "yes" or "no") }
    for _, k in ipairs(extra) do
      local x = v[k]
      row[#row + 1] = x == nil and "-" or tostring(x)
    end
    rows[#rows + 1] = row
  end
  return ui.table(headers, rows)
end

--- A progress bar for `total` units of work. On a terminal it redraws one
-- line (at most 10 times a second); elsewhere it draws nothing.
function ui.progress(label, total)
  local p = { label = label, total = total, last = -1 }
  local tty = ui.is_tty()
  local clock = require("rollout.time").now
  function p.update(done, total_now)
    if not tty then return end
    local now = clock()
    if now - p.last < 0.1 and done < (total_now or p.total) then return end
    p.last = now
    local t = total_now or p.total or 0
    local share = t > 0 and math.min(1, done / t) or 0
    out:write(string.format("\r  %s %s %3d%% (%d/%d)\27[K", p.label,
      pad(ui.bar(share, 24), 24), math.floor(share * 100), done, t))
    out:flush()
  end
  function p.finish()
    if tty then
      out:write("\r\27[K")
      out:flush()
    end
  end
  return p
end

return ui
