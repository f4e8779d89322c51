-- The C runtime's dependency graph (README, "Layout of runtime/"): helpers
-- are leaves, entries depend on parts, never the reverse.
--
-- Nodes are the source files of runtime/; A -> B when A's object file uses
-- a symbol B's object defines (read with nm, so uses written through
-- macros, such as the modules.h table, count too). No cycle between files,
-- none between folders; runtime/lib uses nothing of the rest; a folder's
-- private header (internal.h) is included only in that folder.
local proc = require "rollout.proc"
local fs = require "rollout.fs"

local root = os.getenv("ROLLOUT_ROOT") or "."
local build = os.getenv("BUILD") or "build"
if build:sub(1, 1) ~= "/" then build = fs.join(root, build) end

-- runtime/**/*.c (relative to root)
local function sources(dir, out)
  out = out or {}
  for _, name in ipairs(assert(fs.list(fs.join(root, dir)))) do
    local rel = dir .. "/" .. name
    local st = assert(fs.stat(fs.join(root, rel)))
    if st.type == "directory" then
      sources(rel, out)
    elseif name:match("%.[ch]$") then
      out[#out + 1] = rel
    end
  end
  return out
end

-- The object of a source: net/ is built position-independent.
local function object(src)
  local o = src:gsub("%.c$", ".o")
  if src:match("^runtime/net/") then return fs.join(build, "pic", o) end
  return fs.join(build, o)
end

-- {file = {defines = {sym = true}, uses = {sym = true}}}
local function symbols(files)
  local t = {}
  for _, src in ipairs(files) do
    if src:match("%.c$") then
      local r = assert(proc.run { argv = { "nm", "-P", "-g", object(src) }, timeout = 30 })
      assert(r.status == 0, "nm " .. object(src) .. ": " .. r.stderr .. " (build first: make)")
      local s = { defines = {}, uses = {} }
      for name, kind in r.stdout:gmatch("(%S+) (%a)[^\n]*\n") do
        if kind == "U" or kind == "w" then s.uses[name] = true else s.defines[name] = true end
      end
      t[src] = s
    end
  end
  return t
end

local function graph(files)
  local syms = symbols(files)
  local owner = {}
  for src, s in pairs(syms) do
    for name in pairs(s.defines) do owner[name] = src end
  end
  local edges = {}
  for src, s in pairs(syms) do
    edges[src] = {}
    for name in pairs(s.uses) do
      local to = owner[name]
      if to and to ~= src then edges[src][to] = edges[src][to] or name end
    end
  end
  return edges
end

-- A cycle in edges as "a -> b -> a", or nil.
local function find_cycle(edges)
  local state, stack = {}, {}
  local nodes = {}
  for n in pairs(edges) do nodes[#nodes + 1] = n end
  table.sort(nodes)
  local function visit(n)
    state[n] = "open"
    stack[#stack + 1] = n
    local next_nodes = {}
    for m in pairs(edges[n] or {}) do next_nodes[#next_nodes + 1] = m end
    table.sort(next_nodes)
    for _, m in ipairs(next_nodes) do
      if state[m] == "open" then
        local path = {}
        for i = #stack, 1, -1 do
          table.insert(path, 1, stack[i])
          if stack[i] == m then break end
        end
        path[#path + 1] = m
        return table.concat(path, " -> ")
      elseif state[m] == nil then
        local c = visit(m)
        if c then return c end
      end
    end
    stack[#stack] = nil
    state[n] = "done"
  end
  for _, n in ipairs(nodes) do
    if state[n] == nil then
      local c = visit(n)
      if c then return c end
    end
  end
end

local function folder(src)
  return src:match("^(.*)/[^/]+$")
end

describe("the runtime's layout", function()
  local files = sources("runtime")
  local edges = graph(files)

  it("builds every source it lists (the graph is complete)", function()
    assert.is_true(#files > 20)
    for _, src in ipairs(files) do
      if src:match("%.c$") then assert.is_true(fs.exists(object(src)), object(src)) end
    end
  end)

  it("has no cycle between files", function()
    local c = find_cycle(edges)
    assert.is_nil(c, "a cycle of calls: " .. tostring(c))
  end)

  it("has no cycle between folders", function()
    local dirs = {}
    for from, tos in pairs(edges) do
      for to, sym in pairs(tos) do
        local a, b = folder(from), folder(to)
        if a ~= b then
          dirs[a] = dirs[a] or {}
          dirs[a][b] = from .. " uses " .. sym .. " of " .. to
        end
      end
    end
    local c = find_cycle(dirs)
    assert.is_nil(c, "a cycle of folders: " .. tostring(c))
  end)

  it("keeps runtime/lib a leaf: it uses nothing of the other folders", function()
    for from, tos in pairs(edges) do
      if folder(from) == "runtime/lib" then
        for to, sym in pairs(tos) do
          assert.equal("runtime/lib", folder(to), from .. " uses " .. sym .. " of " .. to)
        end
      end
    end
  end)

  it("includes a folder's private header only in that folder", function()
    for _, src in ipairs(files) do
      local text = assert(fs.read(fs.join(root, src)))
      for inc in text:gmatch('#include "([^"]+)"') do
        assert.is_nil(inc:find("..", 1, true), src .. " includes " .. inc .. " from another folder")
        if not inc:match("^rollout/") then
          assert.is_true(fs.exists(fs.join(root, folder(src), inc)), src .. " includes " .. inc)
        end
      end
    end
  end)
end)
