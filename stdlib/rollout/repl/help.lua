--- rollout.repl.help: help(x) in the REPL, for a module, an object or a function.
-- The text comes from the `---` comments above each definition in the
-- stdlib (the files are read when help is asked for: nothing to keep in
-- sync), and for the C bindings from the table at the end of this file.
--
--   help()                  the starting points
--   help(rollout.verify)    a module: what it is, its functions, its fields
--   help(svc)               an object: what it is, its methods, its fields
--   help(svc.check_split)   a function: its signature, where, its comment
--   help "verify"           a module by name
--
-- help.text(x) returns the text instead of printing it.
local help = {}

local MAX_CHAIN = 16
local ONE_LINE = 92 -- characters of a one-line doc, then "…"

-- ---------------------------------------------------------------------------
-- Reading the sources

local function file_lines(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local lines = {}
  for line in f:lines() do lines[#lines + 1] = line end
  f:close()
  return lines
end

--- The source file of a Lua function, or nil (C functions, chunks typed in).
local function source_of(f)
  local info = debug.getinfo(f, "S")
  if info == nil or info.what == "C" then return nil end
  local path = info.source:match("^@(.*)$")
  return path, info.linedefined
end

--- The text of a `--- ...` comment block ending just above line `at`
-- (comment markers stripped), or nil.
local function comment_above(lines, at)
  local first = nil
  local i = at - 1
  while i >= 1 and lines[i]:find("^%s*%-%-") do
    if lines[i]:find("^%s*%-%-%-") and not lines[i]:find("^%s*%-%-%-%-") then first = i end
    i = i - 1
  end
  if not first then return nil end
  local out = {}
  for j = first, at - 1 do
    out[#out + 1] = (lines[j]:gsub("^%s*%-%-%-?%s?", ""))
  end
  return table.concat(out, "\n")
end

--- The comment block at the top of a module's file: "--- rollout.x: what".
local function header_of(path)
  local lines = path and file_lines(path)
  if not lines or not (lines[1] or ""):find("^%-%-%-") then return nil end
  local out = {}
  for i = 1, #lines do
    if not lines[i]:find("^%-%-") then break end
    out[#out + 1] = (lines[i]:gsub("^%-%-%-?%s?", ""))
  end
  return table.concat(out, "\n")
end

--- The file of module `name`, following an alias (a module kept under its
-- old name after a move, whose code is `return require "rollout.x"`) to the
-- file of the module it returns; nil when the module is not on package.path.
local function module_file(name)
  local path = package.searchpath(name, package.path)
  for _ = 1, 4 do
    local lines = path and file_lines(path)
    local target
    for _, line in ipairs(lines or {}) do
      if not line:find("^%-%-") and line:find("%S") then
        target = line:match('^return require%s*%(?%s*"([%w_.]+)"%s*%)?%s*$')
        break
      end
    end
    local next_path = target and package.searchpath(target, package.path)
    if not next_path then break end
    path = next_path
  end
  return path
end

--- The first paragraph of a comment (up to an empty line), at most `max` lines.
local function paragraph(text, max)
  local out = {}
  for line in (text .. "\n"):gmatch("(.-)\n") do
    if line:find("^%s*$") then break end
    out[#out + 1] = line
    if #out >= (max or 8) then break end
  end
  return table.concat(out, "\n")
end

--- The first sentence of a comment, on one line.
local function first_sentence(text)
  if not text then return nil end
  local flat = paragraph(text, 20):gsub("%s*\n%s*", " ")
  local s = flat:match("^(.-[.!?])%s") or flat
  if #s > ONE_LINE then s = s:sub(1, ONE_LINE - 1):gsub("%s+%S*$", "") .. "…" end
  return s
end

--- Facts about a Lua function: {name =, params =, doc =, where =}.
local function lua_function_info(f)
  local path, line = source_of(f)
  if not path then return nil end
  local ok, sys = pcall(require, "rollout.sys")
  local root = ok and type(sys.root) == "string" and sys.root .. "/" or nil
  local shown = root and path:sub(1, #root) == root and path:sub(#root + 1) or path
  local out = { where = ("%s:%d"):format(shown, line) }
  local lines = file_lines(path)
  local def = lines and lines[line]
  if def then
    local name, params = def:match("function%s+([%w_.:]+)%s*(%b())")
    if not name then name, params = def:match("([%w_.]+)%s*=%s*function%s*(%b())") end
    if not params then params = def:match("function%s*(%b())") end
    out.name, out.params = name, params
    out.doc = comment_above(lines, line)
  end
  if not out.params then -- from the function itself
    local names = {}
    for i = 1, 50 do
      local p = debug.getlocal(f, i)
      if not p then break end
      names[#names + 1] = p
    end
    if debug.getinfo(f, "u").isvararg then names[#names + 1] = "..." end
    out.params = "(" .. table.concat(names, ", ") .. ")"
  end
  return out
end

-- ---------------------------------------------------------------------------
-- Where things come from

local C_DOCS -- at the end of the file

--- The C table's entry of module `name` when that module is a C binding
-- (in package.preload; a module rewritten in Lua documents itself).
local function c_module(name)
  local entry = C_DOCS[name]
  if entry and not entry.class and package.preload[name] ~= nil then return entry end
  return nil
end

local function loaded_name(value)
  if rawequal(value, package.loaded["rollout"]) then return "rollout" end
  for name, mod in pairs(package.loaded) do
    if rawequal(mod, value) and type(name) == "string" then return name end
  end
  return nil
end

--- The documented C function `f`: "module.name" or "Class:name" and its
-- {signature, doc}; nil when f is not in the C table.
local function c_function_info(f)
  for mod, entry in pairs(C_DOCS) do
    local tbl
    if entry.class then
      local mt = debug.getregistry()[mod]
      tbl = type(mt) == "table" and rawget(mt, "__index") or nil
    elseif c_module(mod) then
      tbl = package.loaded[mod]
    end
    if type(tbl) == "table" then
      for name, v in pairs(tbl) do
        if rawequal(v, f) and entry.fields[name] then
          local sep = entry.class and ":" or "."
          local short = entry.class or mod:match("[^.]+$")
          return short .. sep .. name, entry.fields[name]
        end
      end
    end
  end
  return nil
end

local function describe_value(v)
  local ok, repl = pcall(require, "rollout.repl")
  if ok then return (repl.format(v, { depth = 1, items = 6, width = 60 }):gsub("\n.*", " …")) end
  return tostring(v)
end

--- The one-line doc and the signature of a function (Lua or documented C).
local function function_line(f)
  local c_name, c = c_function_info(f)
  if c_name then return c[1], c[2] end
  local info = lua_function_info(f)
  if not info then return "(...)", nil end
  return info.params or "(...)", first_sentence(info.doc)
end

--- The tables whose fields an object offers after its own: __complete, else
-- __index tables (as the REPL's completion).
local function chain(obj)
  local list = {}
  for _ = 1, MAX_CHAIN do
    local mt = debug.getmetatable(obj)
    if type(mt) ~= "table" then break end
    local nxt = rawget(mt, "__complete")
    if type(nxt) == "function" then
      local ok, t = pcall(nxt, obj)
      nxt = ok and t or nil
    end
    if type(nxt) ~= "table" and type(nxt) ~= "userdata" then
      nxt = rawget(mt, "__index")
      if type(nxt) ~= "table" then break end
    end
    list[#list + 1] = nxt
    obj = nxt
  end
  return list
end

local function sorted(set)
  local out = {}
  for k in pairs(set) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- Aligned "  name  doc" lines.
local function columns(rows, indent)
  local w = 0
  for _, r in ipairs(rows) do
    if r[2] and r[2] ~= "" then w = math.max(w, math.min(#r[1], 44)) end
  end
  local out = {}
  for _, r in ipairs(rows) do
    local left = r[1]
    if r[2] and r[2] ~= "" then
      if #left > w then
        out[#out + 1] = indent .. left
        out[#out + 1] = indent .. (" "):rep(w + 2) .. r[2]
      else
        out[#out + 1] = indent .. left .. (" "):rep(w - #left + 2) .. r[2]
      end
    else
      out[#out + 1] = indent .. left
    end
  end
  return out
end

-- ---------------------------------------------------------------------------
-- The texts

local function module_summary(name)
  local entry = c_module(name)
  if entry then return entry.doc end
  local header = header_of(module_file(name))
  if not header then return nil end
  local text = first_sentence(header)
  return (text:gsub("^rollout[%w_.]*:%s*", ""))
end

local function function_text(f, label)
  local c_name, c = c_function_info(f)
  if c_name then
    return ("%s%s\n  %s\n  (C binding)"):format(c_name, c[1], c[2])
  end
  local info = lua_function_info(f)
  if not info then
    return (label or "function") .. ": a builtin function (see the Lua 5.4 manual)"
  end
  local lines = { ("%s%s    %s"):format(info.name or label or "function", info.params, info.where) }
  if info.doc then
    for l in (info.doc .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = "  " .. l end
  else
    lines[#lines + 1] = "  (no --- comment above its definition)"
  end
  return table.concat(lines, "\n")
end

local function fields_section(tbl, prefix, skip)
  local funcs, others = {}, {}
  for k, v in next, tbl do
    if type(k) == "string" and not k:find("^_") and not (skip and skip[k]) then
      if type(v) == "function" then funcs[k] = v else others[k] = v end
    end
  end
  local lines = {}
  local rows = {}
  for _, k in ipairs(sorted(funcs)) do
    local sig, doc = function_line(funcs[k])
    rows[#rows + 1] = { prefix .. k .. sig, doc }
  end
  if #rows > 0 then
    lines[#lines + 1] = "functions:"
    for _, l in ipairs(columns(rows, "  ")) do lines[#lines + 1] = l end
  end
  rows = {}
  for _, k in ipairs(sorted(others)) do rows[#rows + 1] = { k, describe_value(others[k]) } end
  if #rows > 0 then
    lines[#lines + 1] = "fields:"
    for _, l in ipairs(columns(rows, "  ")) do lines[#lines + 1] = l end
  end
  return lines
end

local function module_text(name, mod)
  local lines = {}
  local entry = c_module(name)
  if entry then
    lines[1] = ("%s — %s (C binding)"):format(name, entry.doc)
    local rows = {}
    for _, k in ipairs(sorted(entry.fields)) do
      rows[#rows + 1] = { name:match("[^.]+$") .. "." .. k .. entry.fields[k][1], entry.fields[k][2] }
    end
    lines[#lines + 1] = "functions and fields:"
    for _, l in ipairs(columns(rows, "  ")) do lines[#lines + 1] = l end
    return table.concat(lines, "\n")
  end
  local header = header_of(module_file(name))
  if header then
    local para = paragraph(header, 10)
    lines[#lines + 1] = para
  else
    lines[#lines + 1] = name
  end
  local short = name == "rollout" and "rollout." or (name:match("[^.]+$") .. ".")
  for _, l in ipairs(fields_section(mod, short)) do lines[#lines + 1] = l end
  if name == "rollout" and type(rawget(mod, "modules")) == "function" then
    local rows = {}
    for _, m in ipairs(mod.modules()) do
      rows[#rows + 1] = { "rollout." .. m, module_summary("rollout." .. m) }
    end
    lines[#lines + 1] = "modules (loaded on first use; help(rollout.NAME) for one):"
    for _, l in ipairs(columns(rows, "  ")) do lines[#lines + 1] = l end
  end
  return table.concat(lines, "\n")
end

--- The doc of method `name` of obj when its own definition has none: the
-- same method of an object obj holds (a service forwards to its target).
local function delegated(obj, name)
  if type(obj) ~= "table" then return nil end
  for _, v in next, obj do
    if (type(v) == "table" or type(v) == "userdata") and debug.getmetatable(v) then
      for _, t in ipairs(chain(v)) do
        local f = type(t) == "table" and rawget(t, name)
        if type(f) == "function" then
          local sig, doc = function_line(f)
          if doc then return sig, doc end
        end
      end
    end
  end
  return nil
end

local function object_text(obj)
  local mt = debug.getmetatable(obj)
  local name = type(mt) == "table" and rawget(mt, "__name") or nil
  local lines = {}
  local ok, title = pcall(tostring, obj)
  title = ok and title or type(obj)
  lines[1] = title .. ((type(name) == "string" and not title:find(name, 1, true)) and ("  (" .. name .. ")") or "")

  -- what it is: the C table, or the header of the file its methods are in
  local methods, seen, files = {}, {}, {}
  for _, t in ipairs(chain(obj)) do
    if type(t) == "table" then
      for k, v in next, t do
        if type(k) == "string" and type(v) == "function" and not k:find("^__") and not seen[k] then
          seen[k] = true
          methods[#methods + 1] = { name = k, f = v }
          local path = source_of(v)
          if path then files[path] = (files[path] or 0) + 1 end
        end
      end
    end
  end
  table.sort(methods, function(a, b) return a.name < b.name end)
  local entry = type(name) == "string" and C_DOCS[name] or nil
  if entry and entry.class then
    lines[#lines + 1] = "  " .. entry.doc
  else
    local best, n = nil, 0
    for path, c in pairs(files) do if c > n then best, n = path, c end end
    local header = header_of(best)
    if header then lines[#lines + 1] = "  " .. first_sentence(header) end
  end

  local rows = {}
  for _, m in ipairs(methods) do
    local sig, doc = function_line(m.f)
    if not doc then
      local dsig, ddoc = delegated(obj, m.name)
      if ddoc then sig, doc = dsig, ddoc end
    end
    rows[#rows + 1] = { ":" .. m.name .. sig:gsub("^%(self,?%s*", "("), doc }
  end
  if #rows > 0 then
    lines[#lines + 1] = "methods:"
    for _, l in ipairs(columns(rows, "  ")) do lines[#lines + 1] = l end
  end
  if type(obj) == "table" then
    rows = {}
    local own = {}
    for k, v in next, obj do
      if type(k) == "string" and type(v) ~= "function" then own[k] = v end
    end
    for _, k in ipairs(sorted(own)) do rows[#rows + 1] = { k, describe_value(own[k]) } end
    if #rows > 0 then
      lines[#lines + 1] = "fields:"
      for _, l in ipairs(columns(rows, "  ")) do lines[#lines + 1] = l end
    end
  end
  local ok_d, display = pcall(require, "rollout.display")
  if ok_d and type(name) == "string" and display.render(obj) then
    lines[#lines + 1] = "The REPL shows it through rollout.display (" .. name .. "); rawprint(x) shows the table."
  end
  return table.concat(lines, "\n")
end

local function start_text()
  local lines = {
    "rollout — where to start:",
  }
  local rows = {
    { 'svc = rollout.service "NAME"', "a service on its target (deployments/NAME/service.yaml)" },
    { "svc:versions()", "its versions as rows: weight, share, ready, ..." },
    { "svc:check_split()", "probe the gateway and judge the split (a verdict)" },
    { "help(svc)", "every method of the service, with one line each" },
    { "help(rollout)", "the facade and the modules (rollout.verify, rollout.weights, ...)" },
    { "help(x)", "a module, an object or a function; help \"verify\" by name" },
    { "rawprint(x)", "the raw table behind a displayed value (a verdict, versions, ...)" },
  }
  local env = debug.getregistry()[2]
  for _, g in ipairs { { "k8s", "k8s:get(kind, name), k8s:list(kind, opts), ... (help(k8s))" },
                       { "pods", "pods(selector), releases(), routes(service): cluster tables" } } do
    if type(env) == "table" and rawget(env, g[1]) ~= nil then rows[#rows + 1] = g end
  end
  for _, l in ipairs(columns(rows, "  ")) do lines[#lines + 1] = l end
  lines[#lines + 1] = "Tab completes names, fields and methods (svc:<Tab>)."
  return table.concat(lines, "\n")
end

--- The help text of x (see the top of this file).
function help.text(...)
  if select("#", ...) == 0 then return start_text() end
  local x = ...
  local t = type(x)
  if t == "string" then -- a module name: "verify", "rollout.verify", "mymodule"
    local names = x:find("^rollout") and { x } or { "rollout." .. x, x }
    for _, name in ipairs(names) do
      local ok, mod = pcall(require, name)
      if ok and (type(mod) == "table" or type(mod) == "function") then return help.text(mod) end
    end
    return ("no module %s (help() lists the starting points)"):format(names[1])
  end
  if t == "function" then return function_text(x) end
  if t == "table" or t == "userdata" then
    local name = loaded_name(x)
    if name and t == "table" then return module_text(name, x) end
    if debug.getmetatable(x) ~= nil then return object_text(x) end
    if t == "table" then
      local n = 0
      for _ in next, x do n = n + 1 end
      local lines = { ("a table with %d entr%s"):format(n, n == 1 and "y" or "ies") }
      local body = fields_section(x, "")
      for _, l in ipairs(body) do lines[#lines + 1] = l end
      return table.concat(lines, "\n")
    end
  end
  return ("%s: a %s (help() lists the starting points)"):format(describe_value(x), t)
end

--- Prints help.text(...) (what `help` in the REPL is).
function help.help(...)
  io.stdout:write(help.text(...), "\n")
  io.stdout:flush()
end

-- ---------------------------------------------------------------------------
-- The C bindings (runtime/*.c): a signature and one line per function.

C_DOCS = {
  ["rollout.weights"] = { doc = "relative weights → shares; integer percentages summing to exactly 100", fields = {
    shares = { "(set) -> {name = share}", "shares (floats summing to 1) of {v1 = 50, ...} or {{name=, weight=}}" },
    percentages = { "(set) -> {name = integer}", "percentages summing to exactly 100 (largest remainder, ties by name)" },
    validate = { "(set) -> true | nil, message, \"invalid\"", "checks weights, naming the version at fault" },
    is_name = { "(s) -> boolean", "a valid version name (DNS-1123 label)" },
    MAX_WEIGHT = { "", "the largest weight accepted" },
  } },
  ["rollout.yaml"] = { doc = "YAML on libyaml, with file:line:col errors and depth/size caps", fields = {
    load = { "(text [, opts]) -> value [, pos] | nil, msg, \"invalid\"", "parses one document" },
    load_all = { "(text [, opts]) -> {documents} [, pos] | nil, msg, \"invalid\"", "parses every document" },
    load_file = { "(path [, opts]) -> value [, pos] | nil, msg, code", "reads and parses a file" },
    dump = { "(value [, opts]) -> string", "writes YAML; raises on what YAML cannot hold" },
    null = { "", "the null sentinel (prints as null)" },
    array = { "([t]) -> t", "marks t as a sequence for dump" },
    object = { "([t]) -> t", "marks t as a mapping for dump" },
  } },
  ["rollout.json"] = { doc = "JSON: decode (cJSON), encode, the json.null sentinel, depth caps", fields = {
    decode = { "(text [, opts]) -> value | nil, msg, \"invalid\"", "parses JSON" },
    encode = { "(value [, opts]) -> string", "writes JSON ({pretty = true}); raises on what JSON cannot hold" },
    null = { "", "the null sentinel (prints as null)" },
    array = { "([t]) -> t", "marks t as an array (an empty one encodes as [])" },
    object = { "([t]) -> t", "marks t as an object (an empty one encodes as {})" },
  } },
  ["rollout.proc"] = { doc = "processes without a shell: run, spawn daemons, signals", fields = {
    run = { "{argv=, env=, cwd=, stdin=, timeout=} -> {status, signal, stdout, stderr, duration}",
            "runs an argv in its own process group; a timed-out child is killed" },
    spawn = { "{argv=, log=, pidfile=, cwd=, env=} -> pid | nil, msg, code",
              "starts a detached daemon (its log: a regular file, never through a symlink)" },
    alive = { "(pid) -> boolean", "the process exists and is not a zombie" },
    kill = { "(pid, sig) -> true | nil, msg, code", "sends a signal (\"TERM\", 9, ...)" },
    stop = { "(pid [, {timeout = 5, signal = \"TERM\"}]) -> true | nil, msg, code", "TERM, wait, then KILL" },
    which = { "(name) -> path | nil", "finds a program on PATH" },
    pid = { "() -> pid", "this process's pid" },
  } },
  ["rollout.fs"] = { doc = "files: atomic writes, advisory locks, read, list, mkdir -p, remove_tree", fields = {
    read = { "(path [, {nofollow =, max =, any =}]) -> string | nil, msg, code",
             "a whole regular file (a FIFO or device is refused unless any)" },
    append = { "(path, data [, {mode = 0600}]) -> true | nil, msg, code",
               "appends to a regular file, never through a symlink" },
    write_atomic = { "(path, data [, {mode =, fsync = true}]) -> true | nil, msg, code",
                     "temp file + fsync + rename" },
    exists = { "(path) -> boolean", "follows symlinks" },
    stat = { "(path) -> {type, kind, size, mtime, mode, uid, gid} | nil, msg, code", "lstat" },
    readlink = { "(path) -> target | nil, msg, code", "where a symbolic link points" },
    list = { "(dir) -> sorted names | nil, msg, code", "without . and .." },
    realpath = { "(path) -> path | nil, msg, code", "the absolute, resolved path" },
    mkdir_p = { "(path [, mode]) -> true | nil, msg, code", "creates the directory and its parents" },
    remove = { "(path) -> true | nil, msg, code", "a file, a symlink or an empty directory" },
    remove_tree = { "(path) -> true | nil, msg, code", "a whole tree, without following symlinks" },
    mkdtemp = { "([prefix]) -> path | nil, msg, code", "a new private directory" },
    join = { "(a, b, ...) -> path", "joins path parts" },
    dirname = { "(path) -> dir", "POSIX dirname" },
    basename = { "(path) -> name", "POSIX basename" },
    lock = { "(path [, {wait =, timeout =, what =}]) -> lock | nil, msg, code", "an advisory lock (lock:unlock())" },
  } },
  ["rollout.fs.lock"] = { class = "lock", doc = "an advisory lock held on a file (rollout.fs.lock)", fields = {
    unlock = { "() -> true", "releases the lock (idempotent)" },
    path = { "() -> path", "the lock file" },
  } },
  ["rollout.time"] = { doc = "a monotonic clock and a sleep that ^C interrupts", fields = {
    now = { "() -> seconds", "the monotonic clock (for durations)" },
    wall = { "() -> seconds", "since the epoch (for timestamps)" },
    sleep = { "(seconds)", "sleeps; ^C raises sys.INTERRUPTED" },
  } },
  ["rollout.sys"] = { doc = "the host process: version, target, paths, terminals, ^C", fields = {
    isatty = { "(fd | \"stdin\" | \"stdout\" | \"stderr\") -> boolean", "a terminal?" },
    target = { "() -> name | nil", "the --target / ROLLOUT_TARGET name" },
    check_interrupt = { "()", "raises sys.INTERRUPTED if a ^C is pending" },
    critical = { "(fn, ...) -> fn's results", "runs fn with ^C deferred until it returns" },
    getpid = { "() -> pid", "this process's pid" },
    euid = { "() -> uid", "the effective user id" },
    hostname = { "() -> name", "the host name" },
    error_codes = { "", "the codes of `nil, msg, code, raw` (the same as rollout.errors.codes)" },
    INTERRUPTED = { "", "the error ^C raises (prints as \"interrupted\"): errors.is_interrupt(e)" },
    version = { "", "rollout's version" },
    lua_version = { "", "the Lua version" },
    exe = { "", "the rollout binary" },
    root = { "", "the directory rollout runs from (source tree or prefix)" },
    stdlib = { "", "where the Lua stdlib is" },
  } },
  ["rollout.sock"] = { doc = "plain sockets, without libcurl: HAProxy's admin socket, free ports", fields = {
    exchange = { "(path, text [, timeout = 5]) -> reply | nil, msg, code, raw",
                 "text over a unix socket, the reply until the peer closes" },
    free_port = { "([addr]) -> port | nil, msg, code, raw", "a TCP port free right now" },
  } },
  ["rollout.http"] = { doc = "one HTTP request on libcurl", fields = {
    request = { "{url=, method=, headers=, body=, timeout=30, ...} -> {status, headers, body, duration}",
                "one request; nil, msg, code on transport failure" },
    get = { "(url [, opts]) -> response | nil, msg, code", "request{url = url, method = \"GET\"}" },
    unix_exchange = { "(path, text [, timeout = 5]) -> reply | nil, msg, code, raw", "rollout.sock.exchange" },
    free_port = { "([addr]) -> port | nil, msg, code, raw", "rollout.sock.free_port" },
  } },
  ["rollout.probe"] = { doc = "many requests against a gateway, counted per version, with latency", fields = {
    run = { "{url=, n=, duration=, concurrency=50, timeout=2, headers=, extract=} -> result",
            "sent, served, counts per version, errors by kind, latency_ms p50/p90/p99" },
  } },
  ["rollout.stats"] = { doc = "goodness of fit, confidence intervals, power and sample sizes", fields = {
    gof = { "(counts, shares) -> p, method, statistic, df", "goodness of fit (exact or chi-square)" },
    wilson = { "(successes, n [, confidence = 0.95]) -> lo, hi", "Wilson score interval" },
    plan = { "(shares [, {delta, alpha, power}]) -> n", "requests needed to catch a deviation of delta" },
    power = { "(shares, n [, {delta, alpha}]) -> power", "the power of n requests" },
    plan_leak = { "(rate, power) -> n", "requests to see a leak of `rate` with `power`" },
    chi2_sf = { "(x, df) -> p", "chi-square survival function" },
    norm_quantile = { "(p) -> z", "standard normal quantile" },
    rng = { "(seed) -> rng", "a seeded generator: rng:random(), rng:multinomial(n, shares)" },
    binom_cdf = { "(x, n, p) -> P(X <= x)", "binomial distribution function" },
    binom_sf = { "(x, n, p) -> P(X >= x)", "binomial upper tail" },
    binom_bounds = { "(x, n, gamma) -> lo, hi", "one-sided Clopper-Pearson bounds, each at level gamma" },
    fisher_greater = { "(xb, nb, xc, nc) -> p", "one-sided Fisher exact test: the canary fails more" },
    exceedance = { "(c, nc, r, nb) -> p", "P(at least c of nc canary values above the baseline's r-th)" },
    exceed_crit = { "(nc, r, nb, alpha) -> c", "the smallest exceedance count that rejects at alpha" },
    order_bounds = { "(n, q, gamma) -> l, u", "order statistics bounding the q-quantile" },
    fisher_power = { "(nb, pb, nc, pc, alpha) -> power", "exact power of the one-sided Fisher test" },
    diff_pass_prob = { "(nb, pb, nc, pc, gamma, margin) -> p", "probability the rate increase is shown below margin" },
    sample = { "([list]) -> sample", "a growing sample of numbers, sorted on demand" },
  } },
  ["rollout.stats.rng"] = { class = "rng", doc = "a deterministic generator (xoshiro256**)", fields = {
    random = { "() -> x", "uniform in [0, 1)" },
    multinomial = { "(n, shares) -> counts", "n independent draws" },
    binomial = { "(n, p) -> k", "an exact Binomial(n, p) draw" },
    normal = { "() -> z", "a standard normal draw" },
  } },
  ["rollout.stats.sample"] = { class = "sample", doc = "a growing sample, sorted on demand (rollout.stats.sample)",
    fields = {
    add = { "(x | {x, ...}) -> sample", "appends values (finite numbers)" },
    n = { "() -> n", "how many values" },
    order = { "(r) -> x", "the r-th smallest value" },
    quantile = { "(q) -> x", "the ceil(q n)-th smallest value" },
    above = { "(t) -> n", "how many values are > t" },
    at_least = { "(t) -> n", "how many values are >= t" },
    values = { "() -> {x, ...}", "the values, sorted" },
    simulate = { "(rng, n, {median_ms, sigma, ...}) -> sample", "adds n simulated latencies (tests)" },
  } },
  ["rollout.http_session"] = { doc = "the HTTP transport under rollout.k8s: keep-alive sessions, TLS, credentials " ..
    "held in C memory, line streams", fields = {
    new = { "{ca_data=, insecure=, cert_data=, key_data=, token=, tls_server_name=, proxy=, ...} -> session",
            "a session (connects on the first request)" },
  } },
  ["rollout.http_session.session"] = { class = "session",
    doc = "an HTTP session (rollout.http_session.new)", fields = {
    request = { "{method=, url=, headers=, body=, timeout=30, auth=true} -> {status, headers, body}",
                "one request (nil, msg, code, raw on transport failures)" },
    stream = { "{method=, url=, headers=, timeout=, auth=true} -> stream", "a response read line by line (watches)" },
    set_credentials = { "{token=, cert_data=, key_data=}", "replaces the credentials" },
    close = { "()", "closes the session (idempotent)" },
  } },
  ["rollout.http_session.stream"] = { class = "stream", doc = "a streamed response (session:stream)", fields = {
    status = { "() -> code", "the HTTP status" },
    headers = { "() -> {name = value}", "the response headers" },
    read = { "(wait) -> line | false | nil", "one line; false when none within wait seconds; nil at the end" },
    rest = { "([wait]) -> text", "what is left of the body" },
    close = { "()", "closes the stream (idempotent)" },
  } },
}
help.c_docs = C_DOCS

return help
