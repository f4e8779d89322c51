-- rollout.repl: the REPL's pretty printer and completion (the Lua side; the
-- terminal side is tests/e2e/repl_spec.lua).
local repl = require "rollout.repl"
local rollout = require "rollout"

local format, complete = repl.format, repl.complete

local function keys_of(t)
  local ks = {}
  for k in next, t do ks[#ks + 1] = tostring(k) end
  table.sort(ks)
  return table.concat(ks, ",")
end

describe("rollout.repl.format", function()
  it("prints scalars like lua.c, strings unquoted at the top", function()
    assert.equal("42", format(42))
    assert.equal("1.5", format(1.5))
    assert.equal("2.0", format(2.0))
    assert.equal("nil", format(nil))
    assert.equal("true", format(true))
    assert.equal("a \"b\"\nc", format("a \"b\"\nc"))
    assert.equal("{}", format({}))
  end)

  it("quotes strings inside tables in %q style, newlines as \\n", function()
    assert.equal([[{"a\nb", s = "say \"hi\"\\"}]], format({ "a\nb", s = 'say "hi"\\' }))
    assert.equal([[{"\0\1"}]], format({ "\0\1" }))
  end)

  it("sorts keys: the sequence, other numbers in order, then strings", function()
    local t = { 10, 20, zeta = 1, alpha = 2, [7] = "x", [1.5] = "y", [-3] = "z", Beta = 3 }
    assert.equal([[{10, 20, [-3] = "z", [1.5] = "y", [7] = "x", Beta = 3, alpha = 2, zeta = 1}]],
      format(t))
  end)

  it("brackets keys that are not identifiers, booleans after strings", function()
    assert.equal([[{["a b"] = 1, ["end"] = 2, x1 = 3, [false] = 4, [true] = 5}]],
      format({ ["a b"] = 1, ["end"] = 2, x1 = 3, [true] = 5, [false] = 4 }))
  end)

  it("limits the depth (default 3)", function()
    local deep = { a = { b = { c = { d = { e = 1 } } } } }
    assert.equal("{a = {b = {c = {...}}}}", format(deep))
    assert.equal("{a = {...}}", format(deep, { depth = 1 }))
    assert.equal("{a = {b = {c = {d = {e = 1}}}}}", format(deep, { depth = 10 }))
    assert.equal("{a = {b = {}}}", format({ a = { b = {} } }, { depth = 2 }))
  end)

  it("limits the entries per table (default 40) and counts the rest", function()
    local big = {}
    for i = 1, 100 do big[i] = i end
    big.name = "x"
    local s = format(big)
    assert.truthy(s:find("^{1, 2, 3, "))
    assert.truthy(s:find(", 40, %.%.%. %(61 more%)}$"), s)
    assert.falsy(s:find("41", 1, true))
    assert.equal("{1, 2, ... (99 more)}", format(big, { items = 2 }))
    local named = {}
    for i = 1, 50 do named[("k%02d"):format(i)] = i end
    assert.truthy(format(named):find("k40 = 40, %.%.%. %(10 more%)}$"))
  end)

  it("limits the total size (default 2000 characters)", function()
    local t = {}
    for i = 1, 40 do t[i] = ("x"):rep(100) end
    local s = format(t)
    assert.equal(2003, #s)
    assert.equal("...", s:sub(-3))
    assert.equal(53, #format(t, { width = 50 }))
    -- a plain string is printed whole
    assert.equal(5000, #format(("y"):rep(5000)))
  end)

  it("shows cycles as <cycle>, shared tables in full", function()
    local t = { name = "root" }
    t.self = t
    t.child = { parent = t }
    assert.equal([[{child = {parent = <cycle>}, name = "root", self = <cycle>}]], format(t))
    local shared = { 1 }
    assert.equal("{a = {1}, b = {1}}", format({ a = shared, b = shared }))
  end)

  it("shows json.null / yaml.null as null", function()
    for _, name in ipairs { "rollout.json", "rollout.yaml" } do
      if package.preload[name] then
        local mod = require(name)
        assert.equal("userdata", type(mod.null))
        assert.equal("null", format(mod.null))
        assert.equal("{null, a = null}", format({ mod.null, a = mod.null }))
      end
    end
    -- the sentinel is recognised by identity, whichever module made it
    local saved = package.loaded["rollout.json"]
    local sentinel = io.stdout
    package.loaded["rollout.json"] = { null = sentinel }
    local ok, s = pcall(format, { x = sentinel })
    package.loaded["rollout.json"] = saved
    assert.is_true(ok)
    assert.equal("{x = null}", s)
    assert.matches("^file %(", format(io.stdout)) -- not null once json is back
  end)

  it("prints values through __tostring, at the top and inside tables", function()
    local obj = setmetatable({ hidden = 1 }, { __tostring = function() return "<svc v1>" end })
    assert.equal("<svc v1>", format(obj))
    assert.equal("{<svc v1>, k = <svc v1>}", format({ obj, k = obj }))
    local bad = setmetatable({}, { __tostring = function() error("boom") end })
    assert.matches("^<__tostring failed: .*boom>$", format(bad))
  end)

  it("names builtin functions and Lua functions by file:line", function()
    assert.equal("function: builtin", format(print))
    local function here() end
    local info = debug.getinfo(here, "S")
    assert.equal(("function: %s:%d"):format(info.short_src, info.linedefined), format(here))
    local f = load("return function() end", "=stdin")()
    assert.equal("function: stdin:1", format(f))
    assert.equal("{f = function: builtin}", format({ f = print }))
  end)

  it("reads tables raw: no __index, __pairs or __len runs", function()
    local called = false
    local mt = {
      __index = function() called = true end,
      __pairs = function() called = true; error("no") end,
      __len = function() called = true; return 99 end,
    }
    local t = setmetatable({ 1, 2, x = 3 }, mt)
    assert.equal("{1, 2, x = 3}", format(t))
    assert.is_false(called)
  end)

  it("show joins all results with tabs, nil included", function()
    assert.equal("1\tnil\thello\t{1}", repl.show(1, nil, "hello", { 1 }))
    assert.equal("nil", repl.show(nil))
    assert.equal("", repl.show())
  end)
end)

describe("rollout.repl.complete", function()
  local function env()
    local class = {}
    class.__index = class
    function class.greet() end
    function class.grow() end
    class.label = "not a method"
    local base = { inherited = 1 }
    return {
      alpha = 1, alpine = 2, beta = 3,
      a = { b = { cat = 1, car = 2, dog = 3, [1] = "x", ["not id"] = 4 } },
      obj = setmetatable({ own = 1 }, { __index = base }),
      inst = setmetatable({ field = 1 }, class),
      s = "text",
      print = print,
    }
  end

  it("completes global names and returns where the name starts", function()
    local list, start = complete("al", env())
    assert.same({ "alpha", "alpine" }, list)
    assert.equal(1, start)
    list, start = complete("x = be", env())
    assert.same({ "beta" }, list)
    assert.equal(5, start)
    assert.same({}, (complete("zzz", env())))
  end)

  it("completes globals of the running state by default", function()
    local list = complete("pri")
    assert.same({ "print" }, list)
    assert.same({ "string.format" }, (complete("string.form")))
  end)

  it("completes keywords", function()
    assert.same({ "while" }, (complete("whi", {})))
    assert.same({ "local" }, (complete("x = 1; lo", {})))
    local list = complete("f", { foo = 1 })
    assert.same({ "false", "foo", "for", "function" }, list)
  end)

  it("completes fields of nested tables, identifiers only", function()
    local list, start = complete("print(a.b.ca", env())
    assert.same({ "a.b.car", "a.b.cat" }, list)
    assert.equal(7, start)
    assert.same({ "a.b.car", "a.b.cat", "a.b.dog" }, (complete("a.b.", env())))
    assert.same({}, (complete("a.nope.", env())))
    assert.same({}, (complete("alpha.", env()))) -- a number has no fields
  end)

  it("follows __index tables for fields", function()
    assert.same({ "obj.inherited", "obj.own" }, (complete("obj.", env())))
  end)

  it("lists methods after ':' (functions only)", function()
    assert.same({ "inst:greet", "inst:grow" }, (complete("inst:", env())))
    assert.same({ "inst:greet" }, (complete("inst:gre", env())))
    assert.same({ "s:upper" }, (complete("s:up", env())))
    local files = complete("f:", { f = io.stdout })
    assert.truthy(#files > 3)
    assert.truthy(table.concat(files, " "):find("f:write", 1, true))
  end)

  it("completes the rollout facade's modules before they load", function()
    local e = { rollout = rollout }
    assert.same({ "rollout.weights" }, (complete("rollout.we", e)))
    local all = table.concat((complete("rollout.", e)), " ")
    for _, name in ipairs { "rollout.modules", "rollout.refuse", "rollout.repl", "rollout.weights",
                            "rollout.sys" } do
      assert.truthy(all:find(name, 1, true), name .. " missing from: " .. all)
    end
  end)

  it("loads a facade module only when completing inside it", function()
    local e = { rollout = rollout }
    rawset(rollout, "time", nil)
    package.loaded["rollout.time"] = nil
    assert.same({ "rollout.time" }, (complete("rollout.tim", e)))
    assert.is_nil(package.loaded["rollout.time"])
    assert.is_nil(rawget(rollout, "time"))
    local list = complete("rollout.time.", e)
    assert.truthy(table.concat(list, " "):find("rollout.time.sleep", 1, true))
    assert.is_not_nil(package.loaded["rollout.time"])
  end)

  it("runs no code: no __index function, no getter, nothing changed", function()
    local calls = 0
    local lazy = setmetatable({ present = 1 }, {
      __index = function() calls = calls + 1; return { hidden = 1 } end,
      __pairs = function() calls = calls + 1; error("no") end,
    })
    local e = { lazy = lazy }
    local before = keys_of(e) .. "|" .. keys_of(lazy)
    assert.same({ "lazy.present" }, (complete("lazy.", e)))
    assert.same({}, (complete("lazy.missing.", e)))
    assert.same({}, (complete("lazy:", e)))
    assert.equal(0, calls)
    assert.equal(before, keys_of(e) .. "|" .. keys_of(lazy))
  end)

  it("does not complete inside strings or comments", function()
    local e = env()
    assert.same({}, (complete('print("al', e)))
    assert.same({}, (complete("x = 'a.b.", e)))
    assert.same({}, (complete("-- al", e)))
    assert.same({}, (complete("s = [[al", e)))
    assert.same({ "alpha", "alpine" }, (complete('print("x", al', e)))
    assert.same({ "alpha", "alpine" }, (complete("x = [[s]] .. al", e)))
  end)

  it("refuses what is not a plain name chain", function()
    local e = env()
    assert.same({}, (complete("a.b:c:", e)))
    assert.same({}, (complete("a:", e))) -- a table without functions
    assert.same({}, (complete("1.5", e)))
    assert.same({}, (complete("inst:greet.x", e)))
    assert.same({}, (complete("a.1", e)))
    assert.same({}, (complete("f():", e)))
    local list, start = complete("x..al", e) -- concatenation, then a name
    assert.same({ "alpha", "alpine" }, list)
    assert.equal(4, start)
  end)

  it("tab inserts the common part or lists the candidates by last name", function()
    local e = env()
    assert.equal("ights", (repl.tab("rollout.we", 80, { rollout = rollout })))
    assert.equal("p", (repl.tab("al", 80, e)))
    local insert, listing = repl.tab("a.b.ca", 80, e)
    assert.is_nil(insert)
    assert.equal("car  cat\n", listing)
    insert, listing = repl.tab("a.b.cat", 80, e)
    assert.is_nil(insert)
    assert.is_nil(listing)
    insert, listing = repl.tab("zzz", 80, e)
    assert.is_nil(insert)
    assert.is_nil(listing)
    -- a narrow terminal: one name per row, column-major
    _, listing = repl.tab("a.b.", 6, e)
    assert.equal("car\ncat\ndog\n", listing)
  end)
end)

describe("rollout.modules", function()
  it("lists the C bindings and the stdlib modules, sorted, without loading them", function()
    local was = package.loaded["rollout.verify"]
    package.loaded["rollout.verify"] = nil
    local names = rollout.modules()
    local set = {}
    for i, n in ipairs(names) do
      set[n] = true
      if i > 1 then assert.truthy(names[i - 1] < n) end
    end
    assert.is_true(set.weights) -- C binding
    assert.is_true(set.sys)
    assert.is_true(set.repl)    -- stdlib/rollout/repl.lua
    assert.is_true(set.verify)
    assert.is_nil(set.init)
    assert.is_nil(package.loaded["rollout.verify"])
    package.loaded["rollout.verify"] = was
  end)
end)
