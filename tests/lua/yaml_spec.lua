-- rollout.yaml: load / load_all / load_file / dump on libyaml.
local yaml = require "rollout.yaml"
local fixture = require "tests.helpers.fixture"
local json = require "rollout.json"

local check = require "tests.helpers.check"
local same, assert_same, kind = check.same, check.assert_same, check.kind
local null = yaml.null

local function refused(text, opts)
  local v, msg, code, raw = yaml.load(text, opts)
  assert.is_nil(v)
  assert.equal("invalid", code)
  assert.is_string(msg)
  return msg
end

describe("rollout.yaml", function()
  describe("load", function()
    it("reads TRAFFIC.yaml", function()
      local t = assert(yaml.load "versions:\n  - name: v1\n    weight: 50\n  - name: v2\n    weight: 50\n")
      assert.equal("v1", t.versions[1].name)
      assert.equal(50, t.versions[2].weight)
      assert.equal("integer", math.type(t.versions[1].weight))
      assert.equal(2, #t.versions)
    end)

    it("marks sequences as arrays and mappings as objects, even empty ones", function()
      local t = yaml.load "a: []\nb: {}\nc: [1]\nd: {x: 1}\n"
      assert.equal("array", kind(t.a))
      assert.equal("object", kind(t.b))
      assert.equal("array", kind(t.c))
      assert.equal("object", kind(t.d))
      assert.equal("object", kind(t))
      assert.equal("a: []\nb: {}\nc:\n- 1\nd:\n  x: 1\n", yaml.dump(t))
    end)

    it("gives null for an empty stream, a comment, an empty document", function()
      assert.equal(null, yaml.load "")
      assert.equal(null, yaml.load "# nothing\n")
      assert.equal(null, yaml.load "---\n")
      assert.equal(null, yaml.load "--- ~\n")
    end)

    it("returns the first document and still checks the others", function()
      assert.equal(1, yaml.load "1\n---\n2\n")
      local msg = refused("a: 1\n---\nb: [\n")
      assert.equal("<string>:4:1: did not find expected node content (while parsing a flow node at line 4, column 1)",
        msg)
    end)
  end)

  describe("the core schema", function()
    local cases = {
      -- text, value, math.type (for numbers)
      { "null", null }, { "Null", null }, { "NULL", null }, { "~", null }, { "", null },
      { "true", true }, { "True", true }, { "TRUE", true },
      { "false", false }, { "False", false }, { "FALSE", false },
      -- YAML 1.1 booleans are strings in YAML 1.2
      { "yes", "yes" }, { "no", "no" }, { "on", "on" }, { "off", "off" }, { "y", "y" }, { "N", "N" },
      { "Yes", "Yes" }, { "OFF", "OFF" }, { "tRUE", "tRUE" }, { "nULL", "nULL" },
      { "50", 50, "integer" }, { "0", 0, "integer" }, { "-7", -7, "integer" }, { "+12", 12, "integer" },
      { "012", 12, "integer" }, { "0x1F", 31, "integer" }, { "0xff", 255, "integer" }, { "0o17", 15, "integer" },
      { "9223372036854775807", math.maxinteger, "integer" },
      { "-9223372036854775808", math.mininteger, "integer" },
      { "9223372036854775808", 2.0 ^ 63, "float" },
      { "0x8000000000000000", 2.0 ^ 63, "float" },
      { "50.5", 50.5, "float" }, { "1.5", 1.5, "float" }, { "-1e3", -1000.0, "float" }, { "1e3", 1000.0, "float" },
      { ".5", 0.5, "float" }, { "1.", 1.0, "float" }, { "+2.5E-1", 0.25, "float" }, { "50.0", 50.0, "float" },
      { ".inf", math.huge, "float" }, { "-.inf", -math.huge, "float" }, { "+.Inf", math.huge, "float" },
      { ".INF", math.huge, "float" },
      -- what looks like a number but is not one in the core schema
      { "1.2.3", "1.2.3" }, { "0x", "0x" }, { "0o8", "0o8" }, { "1_000", "1_000" }, { "1e", "1e" },
      { "0b101", "0b101" }, { "12:30", "12:30" }, { ".", "." }, { "-x", "-x" }, { "-.", "-." }, { "inf", "inf" }, { "nan", "nan" },
      { "0x-1", "0x-1" }, { "+-1", "+-1" }, { "e3", "e3" }, { ".e3", ".e3" }, { "v1", "v1" },
      { "2024-01-01", "2024-01-01" },
    }
    for _, case in ipairs(cases) do
      it(("reads plain '%s'"):format(case[1]), function()
        local t = assert(yaml.load("k: " .. case[1] .. "\n"))
        assert.equal(case[2], t.k)
        if case[3] then assert.equal(case[3], math.type(t.k)) end
        -- and in a sequence
        local s = assert(yaml.load("[" .. case[1] .. "]"))
        if case[1] ~= "" then assert.equal(case[2], s[1]) end
      end)
    end

    it("reads .nan", function()
      for _, s in ipairs { ".nan", ".NaN", ".NAN" } do
        local v = yaml.load(s)
        assert.equal("float", math.type(v))
        assert.is_true(v ~= v)
      end
      assert.equal(".Nan", yaml.load ".Nan")
    end)

    it("keeps quoted scalars as strings", function()
      local t = yaml.load [[
a: "50"
b: 'true'
c: "null"
d: ''
e: "~"
f: '0x10'
g: |
  50
h: >-
  true
]]
      assert_same({ a = "50", b = "true", c = "null", d = "", e = "~", f = "0x10", g = "50\n", h = "true" },
        setmetatable(t, nil))
    end)

    it("puts null in sequences without holes", function()
      local t = yaml.load "[1, null, ~, 4]"
      assert.equal(4, #t)
      assert.equal(null, t[2])
      assert.equal(null, t[3])
      assert.equal(4, t[4])
    end)

    it("converts mapping keys with the schema", function()
      local t = yaml.load "1: a\n'2': b\ntrue: c\n~: d\n1.5: e\n0x10: f\n"
      assert.equal("a", t[1])
      assert.equal("b", t["2"])
      assert.is_nil(t[2])
      assert.equal("c", t[true])
      assert.equal("d", t[null])
      assert.equal("e", t[1.5])
      assert.equal("f", t[16])
    end)
  end)

  describe("tags", function()
    it("honours !!str, !!int, !!float, !!bool, !!null", function()
      local t = yaml.load [[
s: !!str 50
s2: !!str true
i: !!int "12"
f: !!float 1
f2: !!float "2.5"
b: !!bool "true"
n: !!null ""
n2: !!null ~
]]
      assert.equal("50", t.s)
      assert.equal("true", t.s2)
      assert.equal(12, t.i)
      assert.equal("integer", math.type(t.i))
      assert.equal("-0x10", yaml.load "!!str -0x10")
      assert.equal(1.0, t.f)
      assert.equal("float", math.type(t.f))
      assert.equal(2.5, t.f2)
      assert.equal(true, t.b)
      assert.equal(null, t.n)
      assert.equal(null, t.n2)
    end)

    it("refuses a value that does not match its tag, with its position", function()
      assert.equal("<string>:2:6: invalid !!int value 'abc'", refused "a: 1\nbad: !!int abc\n")
      assert.equal("<string>:1:4: invalid !!float value 'x'", refused "a: !!float x\n")
      assert.equal("<string>:1:4: invalid !!bool value 'yes'", refused "a: !!bool yes\n")
      assert.equal("<string>:1:4: invalid !!null value '0'", refused "a: !!null 0\n")
      assert.equal("<string>:1:4: !!str tag on a sequence", refused "x: !!str [1]\n")
      assert.equal("<string>:1:4: !!seq tag on a scalar", refused "x: !!seq 1\n")
      assert.equal("<string>:1:4: !!map tag on a sequence", refused "x: !!map [1]\n")
      assert.equal("<string>:1:4: invalid !!int value '-0x10'", refused "a: !!int -0x10\n")
    end)

    it("keeps values with unknown tags as if untagged", function()
      local t = yaml.load "a: !Ref foo\nb: !custom 12\nc: !!binary aGk=\nd: ! 12\ne: !x [1]\nf: !!seq [1]\n"
      assert.equal("foo", t.a)
      assert.equal(12, t.b)
      assert.equal("aGk=", t.c)
      assert.equal("12", t.d) -- the non-specific tag '!' means a string
      assert_same({ 1 }, t.e)
      assert_same({ 1 }, t.f)
    end)
  end)

  describe("mappings", function()
    it("refuses duplicate keys at the second one", function()
      assert.equal("<string>:3:1: duplicate key 'name'", refused "name: a\nweight: 1\nname: b\n")
      assert.equal("<string>:1:8: duplicate key 1", refused "{1: a, 1: b}")
      assert.equal("<string>:2:3: duplicate key 'x'", refused "- x: 1\n  x: 2\n")
    end)

    it("refuses keys that are collections", function()
      assert.equal("<string>:1:3: mapping keys must be scalars", refused "? [a]\n: 1\n")
      assert.equal("<string>:1:2: mapping keys must be scalars", refused "{{a: 1}: 2}")
      assert.matches("mapping keys must be scalars %(alias '%*a' is a collection%)",
        refused "a: &a [1]\n*a : 2\n")
    end)

    it("accepts a scalar alias as a key", function()
      local t = yaml.load "a: &k name\n*k : 2\n"
      assert.equal(2, t.name)
    end)

    it("supports merge keys", function()
      local t = assert(yaml.load [[
base: &base {a: 1, b: 2}
other: &other {b: 20, c: 30}
x:
  <<: *base
  b: 3
y:
  <<: [*other, *base]
  d: 4
z:
  b: 5
  <<: *base
"<<": literal
]])
      assert_same({ a = 1, b = 3 }, t.x)
      assert_same({ a = 1, b = 20, c = 30, d = 4 }, t.y)
      assert_same({ a = 1, b = 5 }, t.z)
      assert.equal("literal", t["<<"])
      assert.equal("object", kind(t.x))
      t.x.a = 100
      assert.equal(1, t.base.a) -- copies, not references
    end)

    it("refuses a merge key whose value is not mappings", function()
      assert.equal("<string>:1:5: the value of the merge key '<<' must be a mapping or a list of mappings",
        refused "<<: 1\n")
      assert.equal("<string>:2:9: the value of the merge key '<<' must be a mapping or a list of mappings",
        refused "a: &a {x: 1}\nb: {<<: [*a, 2]}\n")
    end)
  end)

  describe("anchors and aliases", function()
    it("resolves aliases by copying", function()
      local t = yaml.load "a: &x {k: [1, 2]}\nb: *x\nc: &s str\nd: *s\n"
      assert_same(t.a, t.b)
      assert.are_not.equal(t.a, t.b)
      t.b.k[1] = 99
      assert.equal(1, t.a.k[1])
      assert.equal("str", t.d)
      assert.equal("array", kind(t.b.k))
    end)

    it("uses the latest definition of an anchor", function()
      local t = yaml.load "- &a 1\n- *a\n- &a 2\n- *a\n"
      assert_same({ 1, 1, 2, 2 }, t)
    end)

    it("refuses an undefined alias, with its position", function()
      assert.equal("<string>:2:6: undefined alias '*nope'", refused "a: 1\nb: [ *nope ]\n")
      -- anchors do not cross documents
      local docs, msg = yaml.load_all "a: &x 1\n---\nb: *x\n"
      assert.is_nil(docs)
      assert.equal("<string>:3:4: undefined alias '*x'", msg)
    end)

    it("refuses an anchor used inside itself", function()
      assert.equal("<string>:1:11: recursive alias '*x' (an anchor used inside itself) is not supported",
        refused "a: &x [1, *x]\n")
    end)

    it("refuses an alias bomb (billion laughs) fast", function()
      local lines = { 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]' }
      local prev = "a"
      for _, n in ipairs { "b", "c", "d", "e", "f", "g", "h", "i" } do
        lines[#lines + 1] = ("%s: &%s [%s]"):format(n, n, ("*" .. prev .. ","):rep(8) .. "*" .. prev)
        prev = n
      end
      local doc = table.concat(lines, "\n") .. "\n"
      local t0 = os.clock()
      local v, msg, code, raw = yaml.load(doc)
      local took = os.clock() - t0
      assert.is_nil(v)
      assert.equal("invalid", code)
      assert.equal("<string>:7:8: alias '*f' would make the document larger than 1000000 nodes (max_nodes)", msg)
      assert.is_true(took < fixture.timeout(0.5), ("took %.3f s"):format(took))
      collectgarbage()
      assert.is_true(collectgarbage "count" < 64 * 1024, "memory is back")
    end)

    it("counts nodes against max_nodes", function()
      assert.equal(6, #yaml.load("[1, 2, 3, 4, 5, 6]", { max_nodes = 7 }))
      -- the sequence is a node too: the 6th item is the 7th node
      assert.equal("<string>:1:17: more than 6 nodes (max_nodes)", refused("[1, 2, 3, 4, 5, 6, 7]", { max_nodes = 6 }))
      assert.matches("alias '%*a' would make the document larger than 10 nodes",
        refused("a: &a [1, 2, 3]\nb: *a\nc: *a\n", { max_nodes = 10 }))
    end)
  end)

  describe("depth", function()
    it("refuses a 10,000-deep flow sequence without crashing", function()
      local msg = refused(("["):rep(10000) .. ("]"):rep(10000))
      assert.equal("<string>:1:129: nesting deeper than 128", msg)
      assert.equal("<string>:1:129: nesting deeper than 128", refused(("["):rep(10000)))
      assert.equal("<string>:1:513: nesting deeper than 128",
        refused(("{a: "):rep(10000) .. "1" .. ("}"):rep(10000)))
    end)

    it("refuses deep block nesting", function()
      local lines = {}
      for i = 0, 200 do lines[#lines + 1] = (" "):rep(i) .. "k:" end
      local msg = refused(table.concat(lines, "\n") .. " 1\n")
      assert.equal("<string>:129:129: nesting deeper than 128", msg)
    end)

    it("accepts exactly max_depth levels", function()
      local ok = assert(yaml.load(("["):rep(128) .. ("]"):rep(128)))
      assert.equal("table", type(ok))
      assert_same({ { { 1 } } }, yaml.load("[[[1]]]", { max_depth = 3 }))
      assert.equal("<string>:1:4: nesting deeper than 3", refused("[[[[1]]]]", { max_depth = 3 }))
    end)

    it("refuses an alias that would nest too deep", function()
      assert.equal("<string>:2:5: nesting deeper than 3 (through alias '*a')",
        refused("a: &a [[1]]\nb: [*a]\n", { max_depth = 3 }))
    end)
  end)

  describe("errors", function()
    it("gives name:line:col of syntax errors", function()
      assert.equal("TRAFFIC.yaml:2:1: did not find expected ',' or ']' (while parsing a flow sequence at line 1, column 11)",
        refused("versions: [v1, v2\n", { name = "TRAFFIC.yaml" }))
      assert.equal("TRAFFIC.yaml:5:4: did not find expected '-' indicator (while parsing a block collection at line 2, column 3)",
        refused("versions:\n  - name: v1\n    weight: 50\n  - name: v2\n   weight: 50\n", { name = "TRAFFIC.yaml" }))
      assert.equal("<string>:3:2: did not find expected key (while parsing a block mapping at line 1, column 1)",
        refused "a:\n  b: 1\n c: 2\n")
      assert.equal("<string>:1:5: mapping values are not allowed in this context", refused "a: b: c\n")
      assert.equal("<string>:2:1: found a tab character that violates indentation (while scanning a plain scalar at line 1, column 4)",
        refused "a: 1\n\tb: 2\n")
      assert.equal("<string>:2:1: found unexpected end of stream (while scanning a quoted scalar at line 1, column 4)",
        refused "a: 'x\n")
      assert.equal("<string>:1:5: found unknown escape character (while parsing a quoted scalar at line 1, column 4)",
        refused 'a: "\\q"\n')
    end)

    it("puts an error at the end of a text without a final line break on its last line (fuzz finding)", function()
      -- libyaml's mark is on the next line, which the text does not have
      assert.equal("TRAFFIC.yaml:1:18: did not find expected ',' or ']' (while parsing a flow sequence at line 1, column 11)",
        refused("versions: [v1, v2", { name = "TRAFFIC.yaml" }))
      assert.equal("<string>:1:6: found unexpected end of stream (while scanning a quoted scalar at line 1, column 4)",
        refused "a: 'x")
      assert.equal("<string>:2:5: did not find expected node content (while parsing a flow node at line 2, column 5)",
        refused "a: 1\rb: [")
      -- with the line break, the end is the start of the next line, as before
      assert.equal("<string>:2:1: found unexpected end of stream (while scanning a quoted scalar at line 1, column 4)",
        refused "a: 'x\n")
    end)

    it("gives the position of invalid UTF-8 and control characters", function()
      assert.equal("<string>:2:4: invalid leading UTF-8 octet (#FF)", refused "a: 1\nb: \255\n")
      assert.equal("<string>:1:5: control characters are not allowed (#1)", refused "a: x\1\n")
      assert.equal("<string>:1:5: control characters are not allowed (#0)", refused "a: é\0\n")
    end)

    it("counts lines and columns of invalid bytes the way libyaml counts its marks (fuzz finding)", function()
      -- CR, CRLF, NEL, LS and PS end lines for libyaml; a BOM is no column
      assert.equal("<string>:2:4: invalid leading UTF-8 octet (#FF)", refused "a: 1\rb: \255\n")
      assert.equal("<string>:2:4: invalid leading UTF-8 octet (#FF)", refused "a: 1\r\nb: \255\n")
      assert.equal("<string>:2:4: invalid leading UTF-8 octet (#FF)", refused "a: 1\u{85}b: \255\n")
      assert.equal("<string>:3:4: invalid leading UTF-8 octet (#FF)", refused "a: 1\u{2028}b: 2\u{2029}c: \255\n")
      assert.equal("<string>:1:4: invalid leading UTF-8 octet (#FF)", refused "\u{FEFF}a: \255\n")
      -- the same positions as the parser's own errors
      assert.equal("<string>:2:4: invalid !!int value 'x'", refused "a: 1\rb: !!int x\n")
      assert.equal("<string>:1:4: invalid !!int value 'x'", refused "\u{FEFF}a: !!int x\n")
    end)

    it("refuses input larger than max_size up front", function()
      assert.equal("<string>: input is larger than 10 bytes (max_size)", refused("a: 12345678\n", { max_size = 10 }))
      assert.equal(1, yaml.load("a: 1", { max_size = 4 }).a)
      assert.equal("<string>: input is larger than 16777216 bytes (max_size)",
        refused(("#"):rep(16 * 1024 * 1024 + 1)))
    end)

    it("raises on misuse", function()
      assert.has_error(function() yaml.load(nil) end)
      assert.has_error(function() yaml.load({}) end)
      assert.has_error(function() yaml.load("a", 5) end)
      assert.has_error(function() yaml.load("a", { max_depth = 0 }) end, "option 'max_depth' must be between 1 and 1000 (got 0)")
      assert.has_error(function() yaml.load("a", { max_depth = "x" }) end)
      assert.has_error(function() yaml.load("a", { max_nodes = 1.5 }) end)
      assert.has_error(function() yaml.load("a", { name = 1 }) end)
    end)
  end)

  describe("positions", function()
    local text = table.concat({
      "versions:",        -- 1
      "  - name: v1",     -- 2
      "    weight: 50",   -- 3
      "  - name: v2",     -- 4
      "    weight: x",    -- 5
      "tags: [a, b]",     -- 6
      "",
    }, "\n")

    it("maps each table to its position and its values' positions", function()
      local t, pos = yaml.load(text, { positions = true })
      assert.equal(1, pos[t].line)
      assert.equal(1, pos[t].col)
      assert.same({ line = 2, col = 3 }, pos[t].at.versions)
      assert.same({ line = 1, col = 1 }, pos[t].keys.versions)
      local v = t.versions
      assert.same({ line = 2, col = 3 }, { line = pos[v].line, col = pos[v].col })
      assert.same({ line = 2, col = 5 }, pos[v].at[1])
      assert.same({ line = 4, col = 5 }, pos[v].at[2])
      local v2 = v[2]
      assert.same({ line = 5, col = 13 }, pos[v2].at.weight)
      assert.same({ line = 5, col = 5 }, pos[v2].keys.weight)
      assert.same({ line = 6, col = 7 }, pos[t].at.tags)
      assert.same({ line = 6, col = 11 }, pos[t.tags].at[2])
      -- what a caller does with it
      local p = pos[v2].at.weight
      assert.equal("TRAFFIC.yaml:5:13: versions[2].weight: must be an integer",
        ("%s:%d:%d: versions[2].weight: must be an integer"):format("TRAFFIC.yaml", p.line, p.col))
    end)

    it("is weak-keyed and only there when asked", function()
      local t, pos = yaml.load(text, { positions = true })
      assert.equal("k", getmetatable(pos).__mode)
      local a, b = yaml.load(text)
      assert.equal("table", type(a))
      assert.is_nil(b)
      assert.is_not_nil(t)
    end)

    it("gives copies of aliases the positions of the anchor", function()
      local t, pos = yaml.load("a: &x\n  k: 1\nb: *x\nc:\n  <<: *x\n  d: 2\n", { positions = true })
      assert.same({ line = 2, col = 6 }, pos[t.b].at.k)
      assert.same({ line = 3, col = 4 }, pos[t].at.b)
      assert.same({ line = 2, col = 6 }, pos[t.c].at.k)
      assert.same({ line = 6, col = 6 }, pos[t.c].at.d)
    end)

    it("gives where the document's root begins, for scalar documents too (fuzz finding)", function()
      local _, pos = yaml.load("# a comment\n\n  50\n", { positions = true })
      assert.same({ line = 3, col = 3 }, pos.root)
      local t, pos2 = yaml.load("---\nversions: []\n", { positions = true })
      assert.same({ line = 2, col = 1 }, pos2.root)
      assert.same({ line = 2, col = 1 }, { line = pos2[t].line, col = pos2[t].col })
      _, pos = yaml.load("# nothing\n", { positions = true })
      assert.same({ line = 1, col = 1 }, pos.root)
      local _, pos3 = yaml.load_all("a\n--- [1]\n---\n", { positions = true })
      assert.same({ { line = 1, col = 1 }, { line = 2, col = 5 }, { line = 4, col = 1 } }, pos3.roots)
    end)

    it("keeps positions at the end of a text without a final line break in the text (fuzz finding)", function()
      -- libyaml marks an empty value there on a line the text does not have (2:1)
      local t, pos = yaml.load("? key", { positions = true })
      assert.same({ line = 1, col = 6 }, pos[t].at.key)
      t, pos = yaml.load("a: [x,\n  ", { positions = true })
      assert.is_nil(t)
      t, pos = yaml.load("- x\n-", { positions = true })
      assert.same({ line = 2, col = 2 }, pos[t].at[2])
    end)

    it("uses 1-based columns in characters", function()
      local t, pos = yaml.load("é: [ü, x]\n", { positions = true })
      assert.same({ line = 1, col = 8 }, pos[t["é"]].at[2])
    end)
  end)

  describe("load_all", function()
    it("reads every document of a manifest stream", function()
      local docs = assert(yaml.load_all "kind: Service\n---\nkind: Deployment\n---\n- 1\n")
      assert.equal(3, #docs)
      assert.equal("Service", docs[1].kind)
      assert.equal("Deployment", docs[2].kind)
      assert_same({ 1 }, docs[3])
      assert.equal("array", kind(docs))
    end)

    it("gives an empty list for an empty stream, and positions when asked", function()
      local docs = yaml.load_all ""
      assert.equal(0, #docs)
      assert.equal("array", kind(docs))
      local d, pos = yaml.load_all("a: 1\n---\nb: [1]\n", { positions = true })
      assert.same({ line = 3, col = 4 }, pos[d[2]].at.b)
    end)
  end)

  describe("load_file", function()
    it("reads a file and names it in errors", function()
      local path = os.tmpname()
      finally(function() os.remove(path) end)
      local f = assert(io.open(path, "w"))
      f:write "versions:\n  - name: v1\n    weight: 50\n"
      f:close()
      local t = assert(yaml.load_file(path))
      assert.equal(50, t.versions[1].weight)
      f = assert(io.open(path, "w"))
      f:write "a: [1\n"
      f:close()
      local v, msg, code, raw = yaml.load_file(path)
      assert.is_nil(v)
      assert.equal(path .. ":2:1: did not find expected ',' or ']' (while parsing a flow sequence at line 1, column 4)", msg)
      assert.equal("invalid", code)
      v, msg = yaml.load_file(path, { name = "TRAFFIC.yaml" })
      assert.matches("^TRAFFIC%.yaml:2:1: ", msg)
      local _, pos
      f = assert(io.open(path, "w"))
      f:write "a: [1]\n"
      f:close()
      v, pos = yaml.load_file(path, { positions = true })
      assert.same({ line = 1, col = 5 }, pos[v.a].at[1])
      v, msg, code, raw = yaml.load_file(path, { max_size = 3 })
      assert.is_nil(v)
      assert.equal(path .. ": input is larger than 3 bytes (max_size)", msg)
      assert.equal("invalid", code)
    end)

    it("returns ENOENT for a missing file", function()
      local v, msg, code, raw = yaml.load_file "/nonexistent/TRAFFIC.yaml"
      assert.is_nil(v)
      assert.equal("/nonexistent/TRAFFIC.yaml: No such file or directory", msg)
      assert.equal("not_found", code)
      assert.equal("ENOENT", raw)
    end)

    it("returns EISDIR for a directory", function()
      local v, msg, code, raw = yaml.load_file "/"
      assert.is_nil(v)
      assert.equal("/: Is a directory", msg)
      assert.equal("invalid", code)
      assert.equal("EISDIR", raw)
    end)
  end)

  describe("dump", function()
    it("writes TRAFFIC.yaml exactly", function()
      local out = yaml.dump({ versions = { { name = "v1", weight = 50 }, { name = "v2", weight = 50 } } },
        { key_order = { "versions", "name", "weight" } })
      assert.equal("versions:\n- name: v1\n  weight: 50\n- name: v2\n  weight: 50\n", out)
    end)

    it("orders keys: key_order first, then numbers, then strings sorted", function()
      local out = yaml.dump(yaml.object { b = 1, a = 2, [10] = 3, [2] = 4, name = 5, [1.5] = 6 },
        { key_order = { "name", "zzz" } })
      assert.equal("name: 5\n1.5: 6\n2: 4\n10: 3\na: 2\nb: 1\n", out)
      assert.equal("a: 1\nb: 2\nc: 3\n", yaml.dump { c = 3, b = 2, a = 1 })
      assert.equal("null: 1\nfalse: 2\ntrue: 3\n0: 4\nx: 5\n",
        yaml.dump(yaml.object { [null] = 1, [false] = 2, [true] = 3, [0] = 4, x = 5 }))
    end)

    it("writes scalars", function()
      assert.equal("null\n", yaml.dump(null))
      assert.equal("null\n", yaml.dump(nil))
      assert.equal("true\n", yaml.dump(true))
      assert.equal("50\n", yaml.dump(50))
      assert.equal("50.5\n", yaml.dump(50.5))
      assert.equal("1.0\n", yaml.dump(1.0))
      assert.equal("0.1\n", yaml.dump(0.1))
      assert.equal("1e+300\n", yaml.dump(1e300))
      assert.equal(".inf\n", yaml.dump(math.huge))
      assert.equal("-.inf\n", yaml.dump(-math.huge))
      assert.equal(".nan\n", yaml.dump(0 / 0))
      assert.equal("hello\n", yaml.dump "hello")
      assert.equal("[]\n", yaml.dump(yaml.array()))
      assert.equal("{}\n", yaml.dump {})
      assert.equal("{}\n", yaml.dump(yaml.object()))
    end)

    it("starts with --- when asked", function()
      assert.equal("---\na: 1\n", yaml.dump({ a = 1 }, { document_start = true }))
    end)

    it("quotes strings that would read back as something else", function()
      local out = yaml.dump { a = "true", b = "50", c = "null", d = "", e = " x", f = "a: b", g = "#c", h = "~",
        i = "yes", j = "1.2.3", k = "-", l = "0x10", m = "x ", n = "<<", o = "[x]", p = "*a", q = "2024-01-01",
        r = "plain text", s = "v1" }
      assert.equal(table.concat({
        "a: 'true'", "b: '50'", "c: 'null'", "d: ''", "e: ' x'", "f: 'a: b'", "g: '#c'", "h: '~'", "i: 'yes'",
        "j: '1.2.3'", "k: '-'", "l: '0x10'", "m: 'x '", "'n': '<<'", "o: '[x]'", "p: '*a'", "q: '2024-01-01'",
        "r: plain text", "s: v1", "",
      }, "\n"), out)
    end)

    it("writes multi-line strings as literal blocks, or double-quoted", function()
      assert.equal("k: |-\n  line1\n  line2\n", yaml.dump { k = "line1\nline2" })
      assert.equal("k: |\n  line1\n  line2\n", yaml.dump { k = "line1\nline2\n" })
      assert.equal('k: "a\\n\\n"\n', yaml.dump { k = "a\n\n" })
      assert.equal('k: "trail \\nx"\n', yaml.dump { k = "trail \nx" })
    end)

    local round = {
      { versions = { { name = "v1", weight = 50 }, { name = "v2", weight = 0 } } },
      { a = "true", b = "50", c = "null", d = "", e = " lead", f = "trail ", g = "a: b", h = "# c", i = "x #y",
        j = "line1\nline2", k = "a\n\n", l = "\n", m = "  indented\nblock", n = "tab\there", o = "nul\0byte",
        p = "ctl\1x", q = "crlf\r\n", r = "é ü 日本", s = ("x"):rep(300), t = "'quoted'", u = '"dq"',
        v = "- item", w = "? key", x = "{a}", y = "&anchor", z = "!tag" },
      { ints = { 0, -1, math.maxinteger, math.mininteger }, floats = { 0.1, 1 / 3, 1.0, -2.5, 1e300, 5e-324, -0.0 } },
      { nested = { { { {} } } }, empty_a = yaml.array(), empty_o = yaml.object(), n = null, b = false },
      yaml.object { [1] = "one", [2] = "two", [true] = "t", [null] = "n", [1.5] = "f" },
      { [("k"):rep(200)] = 1, ["multi\nline key"] = 2, ["key: colon"] = 3, ["123"] = 4, ["true"] = 5 },
      { "a", { "b", { "c" } }, 1 },
    }
    for i, v in ipairs(round) do
      it("round-trips value " .. i, function()
        local out = yaml.dump(v)
        assert.equal("\n", out:sub(-1))
        local back, err = yaml.load(out)
        assert(back ~= nil, err)
        assert_same(v, back)
        assert.equal(out, yaml.dump(back))
      end)
    end

    it("round-trips random strings of YAML's special characters, as values and keys", function()
      local chars = { "a", " ", "\n", "\t", "\r", ":", "#", "-", "?", "'", '"', "\\", "[", "]", "{", "}", ",", "&",
        "*", "!", "|", ">", "%", "@", "`", "0", "1", ".", "e", "~", "\u{85}", "\u{2028}", "\u{FEFF}", "é", "\0",
        "\1", "<", "=" }
      math.randomseed(20240601)
      for _ = 1, 3000 do
        local t = {}
        for j = 1, math.random(0, 8) do t[j] = chars[math.random(#chars)] end
        local s = table.concat(t)
        local out = yaml.dump { v = s, list = { s }, map = yaml.object { [s] = 1 } }
        local back, err = yaml.load(out)
        assert(back, err)
        assert(back.v == s and back.list[1] == s and back.map[s] == 1, ("%q gave %q"):format(s, out))
      end
    end)

    it("round-trips what it loads, keeping empty kinds", function()
      local text = "a: []\nb: {}\nc:\n- {}\n- []\n"
      assert.equal(text, yaml.dump(yaml.load(text)))
    end)

    it("raises on values YAML cannot hold, naming where", function()
      assert.has_error(function() yaml.dump { a = { b = print } } end,
        "yaml.dump: cannot encode a function value (at a.b)")
      assert.has_error(function() yaml.dump { list = { 1, coroutine.create(print) } } end,
        "yaml.dump: cannot encode a thread value (at list[2])")
      local t = { x = {} }
      t.x.y = t
      assert.has_error(function() yaml.dump(t) end, "yaml.dump: cycle: a table contains itself (at x.y)")
      assert.has_error(function() yaml.dump { 1, 2, name = "x" } end,
        "yaml.dump: table has integer key 1 but is not an array with keys 1..n")
      assert.has_error(function() yaml.dump { [1] = 1, [3] = 3 } end,
        "yaml.dump: sparse array: 2 items but largest index 3")
      assert.has_error(function() yaml.dump { [true] = 1 } end,
        "yaml.dump: cannot encode a table key of type boolean true (object keys must be strings)")
      assert.has_error(function() yaml.dump(yaml.object { [{}] = 1 }) end,
        "yaml.dump: cannot encode a table key of type table")
      assert.has_error(function() yaml.dump(yaml.array { a = 1 }) end,
        "yaml.dump: table marked as an array has a key that is not an index (a string)")
      assert.has_error(function() yaml.dump { s = "bad\255utf8" } end,
        "yaml.dump: string is not valid UTF-8 (byte 4) (at s)")
    end)
  end)

  it("refuses to dump nesting deeper than max_depth", function()
    local t = {}
    local cur = t
    for _ = 1, 200 do
      cur[1] = {}
      cur = cur[1]
    end
    assert.has_error(function() yaml.dump(t) end,
      "yaml.dump: nesting deeper than 128 (at " .. ("[1]"):rep(128) .. ")")
    assert.has_error(function() yaml.dump({ { {} } }, { max_depth = 2 }) end, "yaml.dump: nesting deeper than 2 (at [1][1])")
    assert.equal("- - {}\n", yaml.dump({ { {} } }, { max_depth = 3 }))
    assert.has_error(function() yaml.dump({}, { key_order = "name" }) end)
  end)

  describe("shared conventions", function()
    it("has the same null as rollout.json", function()
      assert.equal(json.null, yaml.null)
      assert.equal("userdata", type(yaml.null))
      assert.equal(rawequal(json.null, yaml.null), true)
    end)

    it("marks tables with array() and object()", function()
      local t = {}
      assert.equal(t, yaml.array(t))
      assert.equal("array", kind(t))
      assert.equal("object", kind(yaml.object()))
      assert.equal(getmetatable(yaml.array()), getmetatable(json.array()))
      assert.equal(getmetatable(yaml.object()), getmetatable(json.object()))
      assert.equal("[]\n", yaml.dump(t))
      assert.equal("[]", json.encode(t))
      yaml.object(t)
      assert.equal("{}\n", yaml.dump(t))
      assert.has_error(function() yaml.array(setmetatable({}, {})) end)
      assert.has_error(function() yaml.array(5) end)
    end)

    it("reads what json.encode writes and back", function()
      local v = yaml.load(json.encode { a = { 1, 2.5, "x" }, b = json.null, c = {} })
      assert.equal(2.5, v.a[2])
      assert.equal(null, v.b)
      assert.equal('{"a":[1,2.5,"x"],"b":null,"c":{}}', json.encode(v))
    end)
  end)
end)
