--- rollout.display: how the REPL shows rollout's objects, by name.
-- A value opts in with the `__name` field of its metatable (the name Lua
-- itself prints for it, e.g. "rollout.verdict: 0x..."); a renderer
-- registered for that name turns it into text:
--
--   rollout.verdict       the verdict table of `ops.lua test_traffic`
--   rollout.versions      svc:versions() as rows
--   rollout.service       one line and a hint of the methods
--   rollout.probe.result  sent, served per version, errors, p50/p99
--
-- Register your own with display.register(name, render [, short]). The raw
-- table stays reachable: rawprint(x) in the REPL, repl.format(x, {raw = true}).
local ui = require "rollout.ui"

local display = {}

local renderers = {} -- name -> { render = fn(value) -> text, short = fn(value) -> one line | nil }

--- Registers how values whose metatable's __name is `name` are shown:
-- render(value) -> text (may span lines) for a value printed on its own,
-- short(value) -> one line for the value inside a table (optional: without
-- it the value prints as a plain table there). Returns nothing.
function display.register(name, render, short)
  if type(name) ~= "string" or name == "" then error("display.register: the name must be a non-empty string", 2) end
  if type(render) ~= "function" then error("display.register: render must be a function", 2) end
  if short ~= nil and type(short) ~= "function" then error("display.register: short must be a function", 2) end
  renderers[name] = { render = render, short = short }
end

--- Forgets the renderer of `name`.
function display.unregister(name)
  renderers[name] = nil
end

--- The `__name` of value's metatable (raw, no metamethod runs), or nil.
function display.name(value)
  local mt = debug.getmetatable(value)
  if type(mt) ~= "table" then return nil end
  local name = rawget(mt, "__name")
  return type(name) == "string" and name or nil
end

local function call(fn, value)
  local ok, text = pcall(fn, value)
  if ok then return type(text) == "string" and text or nil end
  if require("rollout.errors").is_interrupt(text) then error(text, 0) end -- ^C goes on up
  return nil
end

--- The text of value for its registered name, or nil (no name, no
-- renderer, or the renderer failed: the caller prints it raw then).
function display.render(value)
  local r = renderers[display.name(value) or ""]
  return r and call(r.render, value) or nil
end

--- The one-line form of value inside a table, or nil.
function display.short(value)
  local r = renderers[display.name(value) or ""]
  return r and r.short and call(r.short, value) or nil
end

-- ---------------------------------------------------------------------------
-- Helpers shared by the renderers

--- The names of the functions reachable through value's metatable __index
-- tables (not metamethods), sorted.
function display.methods(value)
  local names, seen = {}, {}
  local obj = value
  for _ = 1, 16 do
    local mt = debug.getmetatable(obj)
    local index = type(mt) == "table" and rawget(mt, "__index") or nil
    if type(index) ~= "table" then break end
    for k, v in next, index do
      if type(k) == "string" and type(v) == "function" and not k:find("^__") and not seen[k] then
        seen[k] = true
        names[#names + 1] = k
      end
    end
    obj = index
  end
  table.sort(names)
  return names
end

--- Words separated by spaces in lines of at most `width` columns, the
-- first line starting with `first`, the others with `indent`.
local function wrap(words, width, first, indent)
  local lines, line = {}, first
  local empty = true
  for _, w in ipairs(words) do
    if not empty and #line + 1 + #w > width then
      lines[#lines + 1] = line
      line, empty = indent .. w, false
    else
      line, empty = line .. (empty and "" or " ") .. w, false
    end
  end
  lines[#lines + 1] = line
  return table.concat(lines, "\n")
end

local function ms(x) return x and string.format("%.2f ms", x) or "-" end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(type(t) == "table" and t or {}) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

-- ---------------------------------------------------------------------------
-- rollout's objects

--- A verdict (rollout.verify, svc:check_split(), svc:check_header()): the
-- table ui.verdict prints.
display.register("rollout.verdict", function(v)
  return table.concat(ui.verdict_report(v), "\n")
end, function(v)
  if v.ok then return "<verdict " .. ui.ok_line(v.summary or "ok") .. ">" end
  return "<verdict " .. ui.fail_line(v.reason or "failed") .. ">"
end)

--- svc:versions(): one row per version.
display.register("rollout.versions", function(list)
  if #list == 0 then return "  no versions deployed" end
  return table.concat(ui.versions_lines(list), "\n")
end, function(list)
  local names = {}
  for i, v in ipairs(list) do names[i] = tostring(v.name) .. "=" .. tostring(v.weight) end
  return "<versions " .. (#names > 0 and table.concat(names, " ") or "none") .. ">"
end)

--- A service object: its line, then its methods.
display.register("rollout.service", function(svc)
  return tostring(svc) .. "\n" .. wrap(display.methods(svc), 78, "  methods: ", "    ") ..
    "\n  help(<this service>) says what each does"
end)

local function served_text(r)
  local parts, served = {}, r.served or 0
  for _, name in ipairs(sorted_keys(r.counts)) do
    local c = r.counts[name]
    parts[#parts + 1] = string.format("%s=%d (%s)", name, c, served > 0 and ui.percent(c / served) or "-")
  end
  return #parts > 0 and table.concat(parts, "  ") or "none"
end

local function errors_text(r)
  local parts = {}
  for _, kind in ipairs(sorted_keys(r.errors)) do
    if (r.errors[kind] or 0) > 0 then parts[#parts + 1] = kind .. "=" .. r.errors[kind] end
  end
  return #parts > 0 and table.concat(parts, " ") or "none"
end

--- A probe result (svc:probe()): what was sent and served, errors, latency.
display.register("rollout.probe.result", function(r)
  local lat = type(r.latency_ms) == "table" and r.latency_ms or {}
  local lines = {
    string.format("probe: %d sent, %d served, %d errors in %.2f s (%.0f req/s)%s", r.sent or 0, r.served or 0,
      r.error_total or 0, r.duration or 0, r.rate or 0, r.stopped and (", stopped by " .. r.stopped) or ""),
    "  served:  " .. served_text(r),
    "  errors:  " .. errors_text(r),
    string.format("  latency: p50 %s  p99 %s  max %s", ms(lat.p50), ms(lat.p99), ms(lat.max)),
  }
  return table.concat(lines, "\n")
end, function(r)
  return string.format("<probe %d sent: %s; errors %s>", r.sent or 0, served_text(r), errors_text(r))
end)

return display
