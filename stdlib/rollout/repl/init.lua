--- rollout.repl: what the interactive REPL prints and completes.
-- runtime/host/repl.c owns the terminal, the history and the evaluation; it calls
--   repl.show(...)            -> the line printed for a chunk's results
--   repl.tab(line, width)     -> text to insert at the cursor, or a listing
-- Both are plain functions, usable (and tested) without a terminal:
--   repl.format(value [, opts])        -> string (pretty printer)
--   repl.complete(line [, env])        -> candidates, start
-- Values whose metatable has a `__name` with a renderer in rollout.display
-- (verdicts, svc:versions(), services, probe results) print through it;
-- rawprint(x) / repl.format(x, {raw = true}) print the table behind them.
-- Completion follows metatables: the fields of a value and of its __index
-- tables, or of the table its metatable's `__complete` names (a table, or a
-- function(obj) returning one) when __index is a function.
local M = {}

--- Limits of the pretty printer; change them from the REPL with
-- `require("rollout.repl").options.depth = 5`.
M.options = {
  depth = 3,    -- nesting levels of tables shown; deeper ones print as {...}
  items = 40,   -- entries shown per table; the rest is counted
  width = 2000, -- characters per value (tables), then "..."
}

local KEYWORDS = {
  "and", "break", "do", "else", "elseif", "end", "false", "for", "function",
  "goto", "if", "in", "local", "nil", "not", "or", "repeat", "return", "then",
  "true", "until", "while",
}
local is_keyword = {}
for _, k in ipairs(KEYWORDS) do is_keyword[k] = true end

local function is_identifier(s)
  return type(s) == "string" and s:find("^[A-Za-z_][A-Za-z0-9_]*$") ~= nil
    and not is_keyword[s]
end

local MAX_INDEX_CHAIN = 16 -- __index tables followed, at most

-- ---------------------------------------------------------------------------
-- Printing

--- True for json.null / yaml.null: the NULL light userdata.
local function is_null(v)
  if type(v) ~= "userdata" then return false end
  for _, name in ipairs { "rollout.json", "rollout.yaml" } do
    local mod = package.loaded[name]
    if type(mod) == "table" and rawequal(rawget(mod, "null"), v) then return true end
  end
  -- any NULL light userdata (no metatable: tostring is the raw address)
  if debug.getmetatable(v) == nil then
    local s = tostring(v)
    return s == "userdata: (nil)" or s == "userdata: 0x0" or s == "userdata: (null)"
      or s == "userdata: 0000000000000000"
  end
  return false
end

local function is_interrupt(err)
  return require("rollout.errors").is_interrupt(err)
end

-- rollout.display, loaded on first use (nil when it cannot load: values
-- then print raw)
local display_mod
local function display()
  if display_mod == nil then
    local ok, mod = pcall(require, "rollout.display")
    display_mod = ok and type(mod) == "table" and mod or false
  end
  return display_mod or nil
end

local function has_display(v)
  local t = type(v)
  return (t == "table" or t == "userdata") and display() ~= nil
end

--- The __tostring text of v, or nil when it has none.
local function via_tostring(v)
  local mt = debug.getmetatable(v)
  if type(mt) ~= "table" or rawget(mt, "__tostring") == nil then return nil end
  local ok, s = pcall(tostring, v)
  if ok and type(s) == "string" then return s end
  if not ok and is_interrupt(s) then error(s, 0) end -- ^C goes on up
  return "<__tostring failed: " .. tostring(s) .. ">"
end

local function describe_function(f)
  local info = debug.getinfo(f, "S")
  if info == nil or info.what == "C" then return "function: builtin" end
  return ("function: %s:%d"):format(info.short_src, info.linedefined)
end

--- Strings inside tables: %q style, with newlines written as \n.
local function quote(s)
  return (("%q"):format(s):gsub("\\\n", "\\n"))
end

--- Everything but tables without __tostring.
local function scalar(v, quoted)
  local t = type(v)
  if t == "string" then return quoted and quote(v) or v end
  if t == "nil" or t == "boolean" or t == "number" then return tostring(v) end
  if is_null(v) then return "null" end
  local s = via_tostring(v)
  if s then return s end
  if t == "function" then return describe_function(v) end
  return tostring(v)
end

-- Key order: numbers (ascending), strings (sorted), booleans, then the rest
-- by their printed form.
local RANK = { number = 1, string = 2, boolean = 3 }

local function key_before(a, b)
  local ta, tb = type(a.key), type(b.key)
  local ra, rb = RANK[ta] or 4, RANK[tb] or 4
  if ra ~= rb then return ra < rb end
  if ra == 1 or ra == 2 then return a.key < b.key end
  if ra == 3 then return (not a.key) and b.key end
  return a.label < b.label
end

local function key_text(k, label)
  if is_identifier(k) then return k end
  if type(k) == "string" then return "[" .. quote(k) .. "]" end
  return "[" .. label .. "]"
end

--- The printed form of one value: a registered display (rollout.display)
-- for rollout's objects, else tables sorted by key, depth, entry and size
-- limits, cycles shown as <cycle>, strings quoted inside tables.
-- opts: { depth = 3, items = 40, width = 2000 } (missing fields from
-- M.options); raw = true: no display and no __tostring for tables.
function M.format(value, opts)
  opts = opts or {}
  local raw = opts.raw
  local max_depth = opts.depth or M.options.depth
  local max_items = opts.items or M.options.items
  local max_width = opts.width or M.options.width

  local out, size, full = {}, 0, false
  local function emit(s)
    if full then return end
    if size + #s > max_width then
      out[#out + 1] = s:sub(1, max_width - size)
      out[#out + 1] = "..."
      full = true
      return
    end
    out[#out + 1] = s
    size = size + #s
  end

  local path = {} -- tables being printed: a table met again is a cycle

  local function render(v, depth, quoted)
    if full then return end
    if not raw and has_display(v) then
      local short = display().short(v)
      if short then return emit(short) end
    end
    if type(v) ~= "table" then return emit(scalar(v, quoted)) end
    local s = not raw and via_tostring(v)
    if s then return emit(s) end
    if path[v] then return emit("<cycle>") end
    if next(v) == nil then return emit("{}") end
    if depth > max_depth then return emit("{...}") end
    path[v] = true
    emit("{")
    local shown, n = 0, 0
    -- the sequence 1..n first, without keys
    while rawget(v, n + 1) ~= nil do n = n + 1 end
    local total = n
    for i = 1, n do
      if shown >= max_items or full then break end
      if shown > 0 then emit(", ") end
      render(rawget(v, i), depth + 1, true)
      shown = shown + 1
    end
    -- then the other keys, sorted
    local keys = {}
    for k in next, v do
      if not (math.type(k) == "integer" and k >= 1 and k <= n) then
        local label = ""
        if (RANK[type(k)] or 4) == 4 then label = scalar(k, true) end
        keys[#keys + 1] = { key = k, label = label }
      end
    end
    total = total + #keys
    if shown < max_items and not full then
      table.sort(keys, key_before)
      for _, e in ipairs(keys) do
        if shown >= max_items or full then break end
        if shown > 0 then emit(", ") end
        local k = e.key
        if RANK[type(k)] == 1 or RANK[type(k)] == 3 then e.label = tostring(k) end
        emit(key_text(k, e.label))
        emit(" = ")
        render(rawget(v, k), depth + 1, true)
        shown = shown + 1
      end
    end
    if total > shown and not full then
      emit((shown > 0 and ", " or "") .. ("... (%d more)"):format(total - shown))
    end
    emit("}")
    path[v] = nil
  end

  if type(value) == "string" then return value end -- printed as is, like lua.c
  if not raw and has_display(value) then
    local text = display().render(value)
    if text then return text end
  end
  render(value, 1, false)
  return table.concat(out)
end

--- The line the REPL prints for a chunk's results: each value through
-- format, separated by tabs.
function M.show(...)
  local n = select("#", ...)
  local parts = {}
  for i = 1, n do parts[i] = M.format((select(i, ...))) end
  return table.concat(parts, "\t")
end

-- ---------------------------------------------------------------------------
-- Completion

local function globals()
  return debug.getregistry()[2] -- LUA_RIDX_GLOBALS: what chunks see as _ENV
end

local function is_facade(t)
  local facade = package.loaded["rollout"]
  return type(t) == "table" and rawequal(t, facade)
    and type(rawget(t, "modules")) == "function"
end

local function facade_modules(t)
  local ok, names = pcall(rawget(t, "modules"))
  if ok and type(names) == "table" then return names end
  return {}
end

--- What stands for obj's fields in completion, after its raw ones: the
-- metatable's __complete (a table or userdata, or a function(obj) that
-- returns one: objects whose __index is a function declare their fields
-- so), else a table __index; nil when there is none.
local function next_fields(obj)
  local mt = debug.getmetatable(obj)
  if type(mt) ~= "table" then return nil end
  local declared = rawget(mt, "__complete")
  if type(declared) == "function" then
    local ok, t = pcall(declared, obj)
    if not ok and is_interrupt(t) then error(t, 0) end
    declared = ok and t or nil
  end
  if type(declared) == "table" or type(declared) == "userdata" then return declared end
  local index = rawget(mt, "__index")
  return type(index) == "table" and index or nil
end

--- obj[key] without running code: raw fields, then __index tables; the
-- only code it may run is the rollout facade loading one of its modules
-- and a metatable's __complete function.
local function safe_get(obj, key)
  for _ = 1, MAX_INDEX_CHAIN do
    if type(obj) == "table" then
      local v = rawget(obj, key)
      if v ~= nil then return v end
      if is_facade(obj) then
        for _, name in ipairs(facade_modules(obj)) do
          if name == key then
            local ok, mod = pcall(function() return obj[key] end)
            if ok then return mod end
            return nil
          end
        end
        return nil
      end
    end
    obj = next_fields(obj)
    if obj == nil then return nil end
  end
  return nil
end

--- Adds the identifier-named fields of obj (and of the tables next_fields
-- leads to) to the set `names`; only functions when `methods` is set;
-- names starting with "__" (metamethods, private fields) only when
-- `private` is set.
local function collect_fields(obj, names, methods, private)
  for _ = 1, MAX_INDEX_CHAIN do
    if type(obj) == "table" then
      for k, v in next, obj do
        if is_identifier(k) and (not methods or type(v) == "function")
          and (private or not k:find("^__")) then
          names[k] = true
        end
      end
      if is_facade(obj) and not methods then
        for _, name in ipairs(facade_modules(obj)) do
          if is_identifier(name) then names[name] = true end
        end
      end
    end
    obj = next_fields(obj)
    if obj == nil then return end
  end
end

--- True when the end of `line` is inside a string or a comment.
local function in_string_or_comment(line)
  local i, n = 1, #line
  while i <= n do
    local c = line:sub(i, i)
    if c == "-" and line:sub(i + 1, i + 1) == "-" then
      local eq = line:match("^%[(=*)%[", i + 2)
      if not eq then return true end -- a comment to the end of the line
      local _, close = line:find("]" .. eq .. "]", i + 2, true)
      if not close then return true end
      i = close + 1
    elseif c == '"' or c == "'" then
      local j = i + 1
      while true do
        local d = line:sub(j, j)
        if d == "" then return true end
        if d == "\\" then
          j = j + 2
        elseif d == c then
          break
        else
          j = j + 1
        end
      end
      i = j + 1
    elseif c == "[" and line:find("^%[=*%[", i) then
      local eq = line:match("^%[(=*)%[", i)
      local _, close = line:find("]" .. eq .. "]", i + #eq + 2, true)
      if not close then return true end
      i = close + 1
    else
      i = i + 1
    end
  end
  return false
end

--- Splits the name chain at the end of `line` ("a.b.c", "obj:m", "x").
-- Returns names (the last one is the prefix being completed, maybe ""), the
-- separator before the last name ("." or ":" or nil) and the 1-based start of
-- the chain in line; nil when the end of line is not a completable chain.
local function parse_chain(line)
  local start = #line + 1
  while start > 1 and line:sub(start - 1, start - 1):find("[A-Za-z0-9_.:]") do
    start = start - 1
  end
  local token = line:sub(start)
  -- the chain starts after the last ".." (concatenation) or "..."
  local after = token:match("^.*%.%.+()")
  if after then
    token = token:sub(after)
    start = start + after - 1
  end
  if start > 1 and line:sub(start - 1, start - 1):find("[\128-\255]") then
    return nil -- part of a non-ASCII word
  end
  local first = token:match("^[A-Za-z_][A-Za-z0-9_]*")
  if first == nil then
    if token ~= "" then return nil end -- a number, ".5", ":name"...
    first = ""
  end
  local names, sep = { first }, nil
  local i = #first + 1
  while i <= #token do
    local s = token:sub(i, i)
    if sep == ":" or names[#names] == "" then return nil end -- "a:b.c", "a..b"
    local name = token:match("^[A-Za-z_][A-Za-z0-9_]*", i + 1) or ""
    if name == "" and i + 1 <= #token then return nil end -- "a.1"
    sep = s
    names[#names + 1] = name
    i = i + 1 + #name
  end
  return names, sep, start
end

--- The completions of the name chain that ends `line` (the text before the
-- cursor): global names and keywords; after "a.b." the fields of a.b
-- (raw, via __index tables or __complete, and the modules of the rollout
-- facade); after "obj:" the functions reachable from obj (tables and
-- userdata alike). Names starting with "__" only when the prefix does.
-- Returns a sorted list of candidates, each replacing line:sub(start), and
-- start. Never calls functions or metamethods (except the facade loading
-- one of its modules and a __complete function).
function M.complete(line, env)
  env = env or globals()
  if type(line) ~= "string" or in_string_or_comment(line) then return {}, #tostring(line) + 1 end
  local names, sep, start = parse_chain(line)
  if names == nil then return {}, #line + 1 end
  local prefix = names[#names]
  local found = {}
  local private = prefix:find("^__") ~= nil
  if #names == 1 then
    collect_fields(env, found, false, private)
    for _, k in ipairs(KEYWORDS) do found[k] = true end
  else
    local obj = safe_get(env, names[1])
    for i = 2, #names - 1 do
      if obj == nil then break end
      obj = safe_get(obj, names[i])
    end
    if obj == nil then return {}, start end
    collect_fields(obj, found, sep == ":", private)
  end
  local token = line:sub(start)
  local head = token:sub(1, #token - #prefix)
  local list = {}
  for name in pairs(found) do
    if name:sub(1, #prefix) == prefix then list[#list + 1] = head .. name end
  end
  table.sort(list)
  return list, start
end

local function common_prefix(list)
  local p = list[1]
  for i = 2, #list do
    local s = list[i]
    local n = 0
    while n < #p and n < #s and p:byte(n + 1) == s:byte(n + 1) do n = n + 1 end
    p = p:sub(1, n)
  end
  return p
end

local MAX_LISTED = 300

--- Candidates laid out in columns that fit `width`, shown by their last name.
local function columns(list, width)
  local names, widest = {}, 1
  for i = 1, math.min(#list, MAX_LISTED) do
    local name = list[i]:match("[^.:]*$")
    if name == "" then name = list[i] end
    names[i] = name
    if #name > widest then widest = #name end
  end
  local colw = widest + 2
  local ncols = math.max(1, (width - 1) // colw)
  local nrows = (#names + ncols - 1) // ncols
  local lines = {}
  for r = 1, nrows do
    local row = {}
    for c = 1, ncols do
      local name = names[(c - 1) * nrows + r]
      if name then row[#row + 1] = name .. (" "):rep(colw - #name) end
    end
    lines[r] = table.concat(row):gsub("%s+$", "")
  end
  if #list > #names then lines[#lines + 1] = ("... (%d more)"):format(#list - #names) end
  return table.concat(lines, "\n") .. "\n"
end

--- What TAB does for `line` (text before the cursor) on a terminal `width`
-- columns wide: returns the text to insert, or nil and a listing of the
-- candidates (when there are several and none extends the common part), or
-- nil, nil when there is nothing to complete.
function M.tab(line, width, env)
  local list, start = M.complete(line, env)
  if #list == 0 then return nil, nil end
  local token = line:sub(start)
  local common = common_prefix(list)
  if #common > #token then return common:sub(#token + 1), nil end
  if #list == 1 then return nil, nil end
  return nil, columns(list, tonumber(width) or 80)
end

--- Prints x as the REPL would without its display: the table behind a
-- verdict, a versions list or a service (repl.format(x, {raw = true})).
-- opts as repl.format's (depth =, items =, width =).
function M.rawprint(x, opts)
  local o = { raw = true }
  for k, v in pairs(opts or {}) do o[k] = v end
  io.stdout:write(M.format(x, o), "\n")
  io.stdout:flush()
end

--- The globals the REPL adds to `env`: `rollout` (the facade), `help(x)`
-- (rollout.repl.help), `rawprint(x)`, and with --target kubernetes (or
-- ROLLOUT_TARGET) the live-cluster helpers: `k8s`, `helm`, `svc(name)`,
-- `pods(selector)`, `releases()`, `routes(service)`.
function M.setup(env)
  env.rollout = require "rollout"
  env.help = function(...) return require("rollout.repl.help").help(...) end
  env.rawprint = M.rawprint
  if require("rollout.sys").target() == "kubernetes" then
    require("rollout.repl.k8s")(env)
  end
end

return M
