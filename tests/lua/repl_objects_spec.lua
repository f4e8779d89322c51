-- The REPL and rollout's objects: completion that follows metatables (a
-- service, a k8s-like client, the REPL's k8s proxy, userdata), the display
-- of verdicts, versions, services and probe results (rollout.display), and
-- help(x) (rollout.repl.help).
local repl = require "rollout.repl"
local rollout = require "rollout"
local display = require "rollout.display"
local help = require "rollout.repl.help"
local ui = require "rollout.ui"
local verify = require "rollout.verify"
local json = require "rollout.json"
local fs = require "rollout.fs"
local fixture = require "tests.helpers.fixture"

local complete, format = repl.complete, repl.format

local function joined(list) return table.concat(list, " ") end

local function has(list, item)
  for _, x in ipairs(list) do if x == item then return true end end
  return false
end

local function lines_of(text)
  local out = {}
  for line in (text .. "\n"):gmatch("(.-)\n") do out[#out + 1] = line end
  return out
end

-- Replaces the functions that start processes or make requests with ones
-- that count calls; returns a function giving the count and restoring them.
local function forbid_side_effects()
  local calls = {}
  local saved = {}
  for _, spec in ipairs { { "rollout.proc", "run" }, { "rollout.proc", "spawn" }, { "rollout.http", "request" },
                          { "rollout.http", "get" }, { "rollout.probe", "run" } } do
    local mod = require(spec[1])
    saved[#saved + 1] = { mod, spec[2], mod[spec[2]] }
    mod[spec[2]] = function() calls[#calls + 1] = spec[1] .. "." .. spec[2]; error("no side effects here") end
  end
  return function()
    for _, s in ipairs(saved) do s[1][s[2]] = s[3] end
    return calls
  end
end

describe("completion of objects", function()
  it("completes a service's methods after ':' and its fields after '.', running nothing", function()
    local svc = rollout.service "microservice-1"
    local state_dir = svc.target.state_dir
    local state_before = fs.exists(state_dir)
    local target_touched = 0
    svc.target = setmetatable({}, { __index = function() target_touched = target_touched + 1 end })
    local restore = forbid_side_effects()
    local ok, err = pcall(function()
      local methods = complete("svc:", { svc = svc })
      for _, m in ipairs { "check_split", "check_header", "health", "deploy", "set_weights", "versions",
                           "confirm", "probe" } do
        assert.truthy(has(methods, "svc:" .. m), m .. " missing from: " .. joined(methods))
      end
      for _, m in ipairs(methods) do
        assert.falsy(m:find("svc:__", 1, true), "a metamethod offered: " .. m)
        assert.falsy(m == "svc:name" or m == "svc:config", "a field offered after ':': " .. m)
      end
      assert.same({ "svc:check_header", "svc:check_split", "svc:check_unavailable" },
        (complete("svc:check", { svc = svc })))
      assert.equal("eck_", (repl.tab("svc:ch", 80, { svc = svc })))
      local _, listing = repl.tab("svc:check_", 80, { svc = svc })
      assert.matches("^check_header +check_split +check_unavailable\n$", listing)
      local fields = complete("svc.", { svc = svc })
      for _, f in ipairs { "svc.name", "svc.config", "svc.target_name", "svc.check_split" } do
        assert.truthy(has(fields, f), f .. " missing from: " .. joined(fields))
      end
      -- metamethods only when asked for by their prefix
      assert.same({ "svc.__index", "svc.__name", "svc.__tostring" }, (complete("svc.__", { svc = svc })))
    end)
    local calls = restore()
    assert(ok, err)
    assert.same({}, calls)
    assert.equal(0, target_touched)
    assert.equal(state_before, fs.exists(state_dir))
  end)

  it("completes an object whose metatable's __index is a method table (a k8s-like client)", function()
    local Client = {}
    Client.__index = Client
    function Client:get() end
    function Client:list() end
    function Client:watch() end
    Client.default_timeout = 30
    local c = setmetatable({ server = "https://127.0.0.1:1" }, Client)
    assert.same({ "c:get", "c:list", "c:watch" }, (complete("c:", { c = c })))
    assert.same({ "c.default_timeout", "c.get", "c.list", "c.server", "c.watch" }, (complete("c.", { c = c })))
    -- a chain of classes
    local Sub = setmetatable({}, { __index = Client })
    Sub.__index = Sub
    function Sub:logs() end
    local s = setmetatable({}, Sub)
    assert.same({ "s:get", "s:list", "s:logs", "s:watch" }, (complete("s:", { s = s })))
  end)

  it("uses __complete when __index is a function, never the function itself", function()
    local index_calls, declared_calls = 0, 0
    local methods = { get = function() end, list = function() end, namespace = "apps" }
    local lazy = setmetatable({}, {
      __index = function() index_calls = index_calls + 1 end,
      __complete = methods,
    })
    local computed = setmetatable({}, {
      __index = function() index_calls = index_calls + 1 end,
      __complete = function(obj)
        declared_calls = declared_calls + 1
        assert(obj ~= nil)
        return setmetatable({ apply = function() end }, { __index = methods })
      end,
    })
    local e = { lazy = lazy, computed = computed }
    assert.same({ "lazy:get", "lazy:list" }, (complete("lazy:", e)))
    assert.same({ "lazy.get", "lazy.list", "lazy.namespace" }, (complete("lazy.", e)))
    assert.same({ "computed:apply", "computed:get", "computed:list" }, (complete("computed:", e)))
    assert.equal(0, declared_calls - 1) -- called once, when completing
    assert.equal(0, index_calls)
    -- a broken __complete only means nothing to offer
    local broken = setmetatable({}, { __complete = function() error("boom") end })
    assert.same({}, (complete("b:", { b = broken })))
  end)

  it("completes userdata through their metatables", function()
    local rng = require("rollout.stats").rng(7)
    assert.same({ "r:binomial", "r:multinomial", "r:normal", "r:random" }, (complete("r:", { r = rng })))
    assert.same({ "r.binomial", "r.multinomial", "r.normal", "r.random" }, (complete("r.", { r = rng })))
    local dir = fixture.tmpdir()
    local lock = assert(fs.lock(dir .. "/lock"))
    local ok, err = pcall(function()
      assert.same({ "l:path", "l:unlock" }, (complete("l:", { l = lock })))
    end)
    lock:unlock()
    fixture.remove(dir)
    assert(ok, err)
  end)

  describe("with a kubeconfig (no server: nothing may connect)", function()
    local dir, kubeconfig
    setup(function()
      dir = fixture.tmpdir()
      kubeconfig = dir .. "/kubeconfig"
      assert(fs.write_atomic(kubeconfig, table.concat({
        "apiVersion: v1", "kind: Config", "current-context: test",
        "clusters:", "- name: c", "  cluster:", "    server: https://127.0.0.1:1",
        "contexts:", "- name: test", "  context: {cluster: c, user: u, namespace: apps}",
        "users:", "- name: u", "  user: {token: abc}", "" }, "\n")))
    end)
    teardown(function() fixture.remove(dir) end)

    it("completes a k8s client userdata's methods", function()
      local c = assert(require("rollout.k8s").client { kubeconfig = kubeconfig })
      local list = complete("c:", { c = c })
      for _, m in ipairs { "c:get", "c:list", "c:apply", "c:watch", "c:namespace" } do
        assert.truthy(has(list, m), m .. " missing from: " .. joined(list))
      end
      c:close()
    end)

    it("completes the REPL's k8s proxy before and after it connects", function()
      local out = assert(io.open(dir .. "/out", "w"))
      local env = require("rollout.repl.k8s")({}, { kubeconfig = kubeconfig, out = out })
      local before = complete("k8s:", env)
      for _, m in ipairs { "k8s:get", "k8s:list", "k8s:watch", "k8s:apply" } do
        assert.truthy(has(before, m), m .. " missing from: " .. joined(before))
      end
      assert.same({ "k8s.client" }, (complete("k8s.cli", env)))
      assert.equal("k8s client (connects on first use)", tostring(env.k8s)) -- completion made no client
      assert.equal("apps", env.k8s:namespace()) -- reads the kubeconfig only
      assert.same({ "k8s:wait_rollout", "k8s:watch" }, (complete("k8s:wa", env)))
      out:close()
    end)
  end)
end)

describe("rollout.display", function()
  local function split_verdict(counts, weights, errs)
    local total = 0
    for _, k in pairs(errs or {}) do total = total + k end
    return verify.split({ counts = counts, errors = errs or {}, error_total = total }, weights)
  end

  it("prints a verdict as the verdict table of ops.lua test_traffic", function()
    local v = split_verdict({ v1 = 2500, v2 = 2500 }, { v1 = 50, v2 = 50 })
    assert.equal("rollout.verdict", display.name(v))
    local text = format(v)
    assert.equal(table.concat(ui.verdict_report(v), "\n"), text)
    local lines = lines_of(text)
    assert.matches("^  version%s+weight%s+expected%s+observed%s+99%% CI%s+count$", lines[1])
    assert.matches("^  v1%s+50%s+50%.0%%%s+50%.0%%%s+%[[%d.]+%%, [%d.]+%%%]%s+2500$", lines[2])
    assert.matches("^  n=5000  p=1%.0000 %(chi%-square%)  errors=0", lines[4])
    assert.equal("✓ split matches the weights (n=5000, p=1.0000)", lines[5])
    assert.falsy(text:find("\27", 1, true)) -- NO_COLOR
    -- a failing one ends with the reason
    local bad = split_verdict({ v1 = 2500, v2 = 2500, v3 = 1 }, { v1 = 50, v2 = 50, v3 = 0 }, { connect = 2 })
    local blines = lines_of(format(bad))
    assert.equal("✗ v3 has weight 0 but served 1 request", blines[#blines])
    assert.equal("  error kinds: connect=2", blines[#blines - 1])
    -- inside a table: one line
    assert.equal("{<verdict ✓ split matches the weights (n=5000, p=1.0000)>, <verdict ✗ v3 has weight 0 but " ..
      "served 1 request>}", format({ v, bad }))
    -- header verdicts too
    local h = verify.header({ counts = { v3 = 300 }, errors = {}, error_total = 0 }, "v3", { planned = 300 })
    assert.equal("✓ all 300 requests with the header were served by v3", lines_of(format(h))[4])
  end)

  it("keeps the raw table reachable: rawprint and format{raw = true}", function()
    local v = split_verdict({ v1 = 2500, v2 = 2500 }, { v1 = 50, v2 = 50 })
    local raw = format(v, { raw = true })
    assert.matches("^{alpha = 0%.001, attempted = 5000, ", raw)
    assert.truthy(raw:find("ok = true", 1, true))
    assert.truthy(raw:find("rows = {{", 1, true))
    local path = os.tmpname()
    local saved = io.stdout
    local f = assert(io.open(path, "w"))
    io.stdout = f -- rawprint writes to io.stdout
    local ok, err = pcall(repl.rawprint, v, { depth = 1 })
    io.stdout = saved
    f:close()
    local printed = fs.read(path)
    os.remove(path)
    assert(ok, err)
    assert.equal(format(v, { raw = true, depth = 1 }) .. "\n", printed)
    assert.truthy(printed:find("rows = {...}", 1, true))
  end)

  it("keeps verdicts and versions JSON as before (objects and arrays)", function()
    local v = split_verdict({ v1 = 10 }, { v1 = 100 })
    local doc = json.decode(json.encode(v))
    assert.equal(false, doc.ok)
    assert.equal(10, doc.rows[1].count)
    local svc = rollout.service "microservice-1"
    svc.target = { versions = function() return {} end }
    assert.equal("[]", json.encode(svc:versions()))
    assert.equal("[]", json.encode(json.array(svc:versions()))) -- ops.lua list --json marks it again
  end)

  it("prints svc:versions() as rows, the target's extra fields as columns", function()
    local svc = rollout.service "microservice-1"
    local rows = {
      { name = "v1", weight = 50, share = 0.5, ready = true, pid = 4711, port = 40123, gateway = "UP" },
      { name = "v2", weight = 50, share = 0.5, ready = false, pid = 4712, port = 40124, gateway = "DOWN" },
      { name = "v3", weight = 0, share = 0, ready = true, pid = 4713, port = 40125, gateway = "UP" },
    }
    svc.target = { versions = function() return rows end }
    local list = svc:versions()
    assert.equal(rows, list) -- the target's own list, named
    assert.equal("rollout.versions", display.name(list))
    assert.same({
      "  version  weight  share  ready   pid   port  gateway",
      "  v1           50  50.0%  yes    4711  40123  UP",
      "  v2           50  50.0%  no     4712  40124  DOWN",
      "  v3            0   0.0%  yes    4713  40125  UP",
    }, lines_of(format(list)))
    assert.equal("{<versions v1=50 v2=50 v3=0>}", format({ list }))
    -- a kubernetes target reports other fields
    svc.target = { versions = function()
      return { { name = "v1", weight = 100, share = 1, ready = true, replicas = 2, ready_replicas = 2,
                 release = "microservice-1-v1", gateway = "routed" } }
    end }
    assert.same({
      "  version  weight   share  ready  replicas  ready_replicas  release            gateway",
      "  v1          100  100.0%  yes           2               2  microservice-1-v1  routed",
    }, lines_of(format(svc:versions())))
    svc.target = { versions = function() return {} end }
    assert.equal("  no versions deployed", format(svc:versions()))
  end)

  it("prints a service as one line and its methods", function()
    local svc = rollout.service "microservice-1"
    local lines = lines_of(format(svc))
    assert.equal("service microservice-1 (local target)", lines[1])
    assert.matches("^  methods: apply_traffic check_header check_split ", lines[2])
    local words = {}
    for i = 2, #lines - 1 do
      for w in lines[i]:gsub("^  methods:", ""):gmatch("%S+") do words[w] = true end
    end
    for _, m in ipairs { "deploy", "set_weights", "health", "versions", "confirm", "check_split" } do
      assert.truthy(words[m], m .. " missing from the hint")
    end
    assert.is_nil(words.__tostring)
    assert.equal("  help(<this service>) says what each does", lines[#lines])
    for _, l in ipairs(lines) do assert.truthy(#l <= 80, l) end
    assert.equal("{service microservice-1 (local target)}", format({ svc })) -- its __tostring inside tables
    assert.matches("^{config = {", format(svc, { raw = true }))
  end)

  describe("against a real demo version", function()
    local demo
    setup(function() demo = fixture.demo { version = "v1" } end)
    teardown(function() fixture.stop(demo) end)

    it("prints a probe result as a short summary", function()
      local svc = rollout.service("microservice-1", { endpoint = demo.url .. "/api/version" })
      local res = svc:probe { n = 200, quiet = true }
      assert.equal("rollout.probe.result", display.name(res))
      local lines = lines_of(format(res))
      assert.equal(4, #lines)
      assert.matches("^probe: 200 sent, 200 served, 0 errors in [%d.]+ s %(%d+ req/s%)$", lines[1])
      assert.equal("  served:  v1=200 (100.0%)", lines[2])
      assert.equal("  errors:  none", lines[3])
      assert.matches("^  latency: p50 [%d.]+ ms  p99 [%d.]+ ms  max [%d.]+ ms$", lines[4])
      assert.equal("{<probe 200 sent: v1=200 (100.0%); errors none>}", format({ res }))
    end)

    it("prints the verdicts of svc:check_header() and svc:check_split()", function()
      local svc = rollout.service("microservice-1", { endpoint = demo.url .. "/api/version" })
      local h = svc:check_header("v1", { n = 150 })
      local lines = lines_of(format(h))
      assert.equal("✓ all 150 requests with the header were served by v1", lines[#lines])
      local s = svc:check_split { v1 = 100 }
      lines = lines_of(format(s))
      assert.matches("^  v1%s+100%s+100%.0%%%s+100%.0%%", lines[2])
      assert.matches("^✓ split matches the weights", lines[#lines])
      assert.equal("rollout.probe.result", display.name(s.result))
    end)
  end)

  it("lets users register a display for their own objects; a failing one prints raw", function()
    local mt = { __name = "spec.thing" }
    local thing = setmetatable({ n = 3 }, mt)
    assert.equal("{n = 3}", format(thing)) -- a name without a renderer
    display.register("spec.thing", function(t) return "thing #" .. t.n end, function(t) return "<thing " .. t.n .. ">" end)
    local ok, err = pcall(function()
      assert.equal("thing #3", format(thing))
      assert.equal("{<thing 3>}", format({ thing }))
      display.register("spec.thing", function() error("broken renderer") end)
      assert.equal("{n = 3}", format(thing))
      assert.has_error(function() display.register("spec.thing", "nope") end)
      assert.has_error(function() display.register("", function() end) end)
    end)
    display.unregister("spec.thing")
    assert(ok, err)
    assert.equal("{n = 3}", format(thing))
  end)
end)

describe("help", function()
  local dir
  local FIXTURE = [[
--- helpdoc_fixture: a module for help's tests.
-- Second line of the description.
--
-- Not part of the first paragraph.
local M = {}

--- Adds two numbers. The rest of the sentence
-- goes on here.
function M.add(a, b) return a + b end

-- a plain comment: not documentation
function M.plain(x) return x end

M.limit = 3

local Obj = {}
Obj.__index = Obj
Obj.__name = "helpdoc.obj"

--- Makes an object.
function M.new(n) return setmetatable({ n = n }, Obj) end

--- Doubles n.
function Obj:double() return self.n * 2 end

Obj.forward = function(self, ...) return self.inner:forward(...) end

local Inner = { __index = {} }
--- What the inner object does.
function Inner.__index:forward(x) return x end

function M.wrapped() return setmetatable({ inner = setmetatable({}, Inner) }, Obj) end

return M
]]
  local saved_path

  setup(function()
    dir = fixture.tmpdir()
    assert(fs.write_atomic(dir .. "/helpdoc_fixture.lua", FIXTURE))
    saved_path = package.path
    package.path = dir .. "/?.lua;" .. package.path
  end)
  teardown(function()
    package.path = saved_path
    package.loaded.helpdoc_fixture = nil
    fixture.remove(dir)
  end)

  it("describes a module from its header and the --- comments of its functions", function()
    local m = require "helpdoc_fixture"
    assert.equal(table.concat({
      "helpdoc_fixture: a module for help's tests.",
      "Second line of the description.",
      "functions:",
      "  helpdoc_fixture.add(a, b)  Adds two numbers.",
      "  helpdoc_fixture.new(n)     Makes an object.",
      "  helpdoc_fixture.plain(x)",
      "  helpdoc_fixture.wrapped()",
      "fields:",
      "  limit  3",
    }, "\n"), help.text(m))
    assert.equal(help.text(m), help.text("helpdoc_fixture"))
  end)

  it("describes a function: signature, where, its whole comment", function()
    local m = require "helpdoc_fixture"
    assert.equal(("M.add(a, b)    %s/helpdoc_fixture.lua:9\n  Adds two numbers. The rest of the sentence\n" ..
      "  goes on here."):format(dir), help.text(m.add))
    assert.matches("^M%.plain%(x%)    .*:12\n  %(no %-%-%- comment above its definition%)$", help.text(m.plain))
    assert.equal("function: a builtin function (see the Lua 5.4 manual)", help.text(print))
    assert.equal("weights.shares(set) -> {name = share}\n  shares (floats summing to 1) of {v1 = 50, ...} or " ..
      "{{name=, weight=}}\n  (C binding)", help.text(rollout.weights.shares))
  end)

  it("describes an object: its methods (docs of the object it forwards to) and fields", function()
    local m = require "helpdoc_fixture"
    local lines = lines_of(help.text(m.new(2)))
    assert.matches("^helpdoc%.obj: 0x%x+$", lines[1])
    assert.same({
      "  helpdoc_fixture: a module for help's tests.",
      "methods:",
      "  :double()  Doubles n.",
      "  :forward(...)",
      "fields:",
      "  n  2",
    }, { table.unpack(lines, 2) })
    lines = lines_of(help.text(m.wrapped()))
    assert.equal("  :forward(x)  What the inner object does.", lines[5])
  end)

  it("describes a service: every method with one line, delegated ones from the target", function()
    local svc = rollout.service "microservice-1"
    local text = help.text(svc)
    local lines = lines_of(text)
    assert.equal("service microservice-1 (local target)  (rollout.service)", lines[1])
    assert.matches("^  rollout%.service: a service on its target", lines[2])
    local by = {}
    for _, l in ipairs(lines) do
      local name, rest = l:match("^  :([%w_]+)(.*)$")
      if name then by[name] = rest end
    end
    for _, m in ipairs { "check_split", "check_header", "health", "deploy", "set_weights", "versions",
                         "remove_version", "probe", "confirm", "lock" } do
      assert.truthy(by[m], m .. " missing:\n" .. text)
      assert.matches("^%(.-%)%s+%u", by[m]) -- a signature, then a sentence
    end
    assert.matches("^%(weights, opts%)%s+Probes and judges the split", by.check_split)
    assert.matches("^%(version, opts%)%s+Deploys a version", by.deploy) -- from target/local.lua
    assert.truthy(text:find("\nfields:\n", 1, true))
    assert.truthy(text:find("\n  target_name  local\n", 1, true))
  end)

  it("describes C bindings and their userdata from its table, which matches the bindings", function()
    local text = help.text(rollout.weights)
    assert.matches("^rollout%.weights — relative weights", text)
    assert.truthy(text:find("\n  weights.percentages(set) -> {name = integer}", 1, true))
    local rng = lines_of(help.text(require("rollout.stats").rng(1)))
    assert.same({ "  a deterministic generator (xoshiro256**)", "methods:",
                  "  :binomial(n, p) -> k               an exact Binomial(n, p) draw",
                  "  :multinomial(n, shares) -> counts  n independent draws",
                  "  :normal() -> z                     a standard normal draw",
                  "  :random() -> x                     uniform in [0, 1)" }, { table.unpack(rng, 2) })
    -- every documented binding's functions are in the table, and nothing else
    for name, entry in pairs(help.c_docs) do
      local tbl
      if entry.class then
        local mt = debug.getregistry()[name]
        tbl = type(mt) == "table" and rawget(mt, "__index") or nil
      elseif package.preload[name] then
        tbl = require(name)
      end
      if type(tbl) == "table" then
        for k, v in pairs(tbl) do
          if type(k) == "string" and (entry.class == nil or type(v) == "function") then
            assert.truthy(entry.fields[k], name .. "." .. k .. " has no entry in rollout.repl.help's table")
          end
        end
        for k in pairs(entry.fields) do
          assert.truthy(tbl[k] ~= nil, name .. "." .. k .. " is documented but does not exist")
        end
      end
    end
    for key in pairs(package.preload) do
      if type(key) == "string" and key:match("^rollout%.[%w_]+$") then
        assert.truthy(help.c_docs[key], key .. " is a binding without an entry in rollout.repl.help's table")
      end
    end
  end)

  it("lists the starting points, and the facade's modules", function()
    local text = help.text()
    for _, s in ipairs { 'svc = rollout.service "NAME"', "help(x)", "rawprint(x)", "svc:check_split()" } do
      assert.truthy(text:find(s, 1, true), s .. " missing:\n" .. text)
    end
    local facade = help.text(rollout)
    assert.truthy(facade:find("\n  rollout.service(name, opts)  Opens a service by name", 1, true), facade)
    assert.truthy(facade:find("\n  rollout.verify ", 1, true))
    assert.truthy(facade:find("\n  rollout.weights ", 1, true))
    assert.equal("no module rollout.nope (help() lists the starting points)", help.text("nope"))
    assert.equal(help.text(verify), help.text("verify"))
    assert.equal("42: a number (help() lists the starting points)", help.text(42))
  end)

  it("is the REPL's help global, printing", function()
    local env = {}
    repl.setup(env)
    assert.is_function(env.help)
    assert.is_function(env.rawprint)
    local path = os.tmpname()
    local saved = io.stdout
    local f = assert(io.open(path, "w"))
    io.stdout = f
    local ok, err = pcall(env.help, rollout.weights)
    io.stdout = saved
    f:close()
    local printed = fs.read(path)
    os.remove(path)
    assert(ok, err)
    assert.equal(help.text(rollout.weights) .. "\n", printed)
  end)
end)
