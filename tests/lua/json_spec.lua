-- rollout.json: decode with cJSON, encode with our own writer.
local json = require "rollout.json"
local yaml = require "rollout.yaml"

local check = require "tests.helpers.check"
local same, assert_same, kind = check.same, check.assert_same, check.kind
local null = json.null

local function refused(text, opts)
  local v, msg, code = json.decode(text, opts)
  assert.is_nil(v)
  assert.equal("invalid", code)
  assert.is_string(msg)
  return msg
end

describe("rollout.json", function()
  describe("decode", function()
    it("reads every JSON type", function()
      local v = assert(json.decode '{"s": "x", "i": 50, "f": 50.5, "t": true, "n": null, "a": [1, "2"], "o": {"k": false}}')
      assert.equal("x", v.s)
      assert.equal(50, v.i)
      assert.equal(50.5, v.f)
      assert.is_true(v.t)
      assert.equal(null, v.n)
      assert_same({ 1, "2" }, v.a)
      assert.is_false(v.o.k)
    end)

    it("keeps integers as integers and the rest as floats", function()
      local v = json.decode "[0, -0, 50, -7, 1.0, 1e2, 1E2, 2.5e-1, 9223372036854775807, -9223372036854775808, 9223372036854775808, 12345678901234567890]"
      local types = {}
      for i, x in ipairs(v) do types[i] = math.type(x) end
      assert.same({ "integer", "integer", "integer", "integer", "float", "float", "float", "float", "integer",
        "integer", "float", "float" }, types)
      assert.equal(50, v[3])
      assert.equal(100.0, v[6])
      assert.equal(0.25, v[8])
      assert.equal(math.maxinteger, v[9])
      assert.equal(math.mininteger, v[10])
      assert.equal(2.0 ^ 63, v[11])
    end)

    it("matches numbers to their text even next to strings with digits", function()
      local v = json.decode '{"a\\"1": 2, "b": ["3", 4.0, "-5", -6], "7": {"8e1": 9}}'
      assert.equal(2, v['a"1'])
      assert_same({ "3", 4.0, "-5", -6 }, v.b)
      assert.equal(9, v["7"]["8e1"])
      assert.equal("integer", math.type(v["7"]["8e1"]))
    end)

    it("puts null in arrays without holes", function()
      local v = json.decode "[1, null, 3, null]"
      assert.equal(4, #v)
      assert.equal(null, v[2])
      assert.equal(null, v[4])
    end)

    it("decodes escapes and unicode", function()
      assert.equal('a"b\\c/d\b\f\n\r\t', json.decode '"a\\"b\\\\c\\/d\\b\\f\\n\\r\\t"')
      assert.equal("é", json.decode '"\\u00e9"')
      assert.equal("\u{1F600}", json.decode '"\\ud83d\\ude00"')
      assert.equal("日本", json.decode '"日本"')
    end)

    it("marks arrays and objects, even empty ones", function()
      local v = json.decode '{"a": [], "b": {}, "c": [1]}'
      assert.equal("object", kind(v))
      assert.equal("array", kind(v.a))
      assert.equal("object", kind(v.b))
      assert.equal("array", kind(v.c))
      assert.equal('{"a":[],"b":{},"c":[1]}', json.encode(v))
    end)

    it("keeps the last of duplicate keys", function()
      assert.equal(2, json.decode('{"a": 1, "a": 2}').a)
    end)

    it("reads scalars at the top and ignores surrounding whitespace and a BOM", function()
      assert.equal(5, json.decode " 5 \n")
      assert.equal("x", json.decode '"x"')
      assert.equal(null, json.decode "null")
      assert.is_false(json.decode "false")
      assert_same({ 1 }, json.decode "\239\187\191[1]")
    end)
  end)

  describe("decode errors", function()
    local cases = {
      { "[1,2", "line 1, column 5: unexpected end of input" },
      { '{\n  "versions": [\n    {"name": "v1"\n', "line 4, column 1: unexpected end of input" },
      { "", "line 1, column 1: empty input" },
      { "  \n ", "line 2, column 2: empty input" },
      { "[1,]", "line 1, column 4: syntax error near ']'" },
      { '{"a" 1}', "line 1, column 6: syntax error near '1}'" },
      { '{"a":1,}', "line 1, column 8: expected a string key near '}'" },
      { '{\n  "name": "v1",\n  "weight": 50,\n}\n', "line 4, column 1: expected a string key near '}'" },
      { "{1: 2}", "line 1, column 2: expected a string key near '1: 2}'" },
      { '{"a": x}', "line 1, column 7: syntax error near 'x}'" },
      { "[1 2]", "line 1, column 4: syntax error near '2]'" },
      { "[1] x", "line 1, column 5: unexpected text after the value near 'x'" },
      { '{"a":1}}', "line 1, column 8: unexpected text after the value near '}'" },
      { "tru", "line 1, column 1: syntax error near 'tru'" },
      { '"abc', "line 1, column 1: unterminated string near '\"abc'" },
      { '["ab\\q"]', "line 1, column 5: syntax error near '\\q\"]'" },
      { '["\\ud800"]', "line 1, column 3: syntax error near '\\ud800\"]'" },
      { '"a\nb"', "line 1, column 3: control character in a string" },
      { "[1,\1 2]", "line 1, column 4: control character" },
      { '["\\u0000"]', "line 1, column 3: \\u0000 is not supported in strings near '\\u0000\"]'" },
      { '["ok", "\255"]', "line 1, column 9: invalid UTF-8" },
      { '["é", x]', "line 1, column 7: syntax error near 'x]'" },
      { "[1]\0", "line 1, column 4: control character" },
    }
    for _, case in ipairs(cases) do
      it("refuses with " .. case[2], function()
        assert.equal(case[2], refused(case[1]))
      end)
    end

    it("prefixes messages with opts.name", function()
      assert.equal("response.json: line 1, column 5: unexpected end of input", refused("[1,2", { name = "response.json" }))
    end)

    it("refuses a 10,000-deep array as too deep, without crashing", function()
      local msg = refused(("["):rep(10000) .. ("]"):rep(10000))
      assert.equal("line 1, column 129: nesting deeper than 128 near '" .. ("["):rep(24) .. "'", msg)
      msg = refused(("["):rep(10000)) -- unclosed as well: depth comes first
      assert.matches("^line 1, column 129: nesting deeper than 128", msg)
      msg = refused(('{"a":'):rep(10000) .. "1" .. ("}"):rep(10000))
      assert.matches("^line 1, column 641: nesting deeper than 128", msg)
    end)

    it("honours max_depth, up to cJSON's own limit", function()
      assert.equal("table", type(json.decode(("["):rep(128) .. ("]"):rep(128))))
      assert_same({ { { 1 } } }, json.decode("[[[1]]]", { max_depth = 3 }))
      assert.matches("^line 1, column 4: nesting deeper than 3", refused("[[[[1]]]]", { max_depth = 3 }))
      assert.equal("table", type(json.decode(("["):rep(1000) .. ("]"):rep(1000), { max_depth = 1000 })))
      assert.matches("^line 1, column 1001: nesting deeper than 1000",
        refused(("["):rep(1001) .. ("]"):rep(1001), { max_depth = 1000 }))
      assert.has_error(function() json.decode("1", { max_depth = 1001 }) end,
        "option 'max_depth' must be between 1 and 1000 (got 1001)")
    end)

    it("refuses input larger than max_size up front", function()
      assert.equal("input is larger than 5 bytes (max_size)", refused("[1, 2]", { max_size = 5 }))
      assert.equal("x.json: input is larger than 5 bytes (max_size)", refused("[1, 2]", { max_size = 5, name = "x.json" }))
      assert_same({ 1 }, json.decode("[1]", { max_size = 3 }))
      assert.equal("input is larger than 16777216 bytes (max_size)", refused((" "):rep(16 * 1024 * 1024 + 1)))
    end)

    it("raises on misuse", function()
      assert.has_error(function() json.decode(nil) end)
      assert.has_error(function() json.decode(123) end)
      assert.has_error(function() json.decode("1", "opts") end)
      assert.has_error(function() json.decode("1", { max_size = -1 }) end)
    end)
  end)

  describe("encode", function()
    it("writes scalars", function()
      assert.equal("null", json.encode(null))
      assert.equal("null", json.encode(nil))
      assert.equal("true", json.encode(true))
      assert.equal("false", json.encode(false))
      assert.equal("50", json.encode(50))
      assert.equal("-9223372036854775808", json.encode(math.mininteger))
      assert.equal("9223372036854775807", json.encode(math.maxinteger))
      assert.equal("50.5", json.encode(50.5))
      assert.equal("1.0", json.encode(1.0))
      assert.equal("-0.0", json.encode(-0.0))
      assert.equal("0.1", json.encode(0.1))
      assert.equal("0.30000000000000004", json.encode(0.1 + 0.2))
      assert.equal("1e+300", json.encode(1e300))
      assert.equal('"x"', json.encode "x")
    end)

    it("escapes strings", function()
      assert.equal([["a\"b\\c/d\b\f\n\r\t\u0001\u001f"]], json.encode 'a"b\\c/d\b\f\n\r\t\1\31')
      assert.equal('"é 日本 \u{1F600}"', json.encode "é 日本 \u{1F600}")
      assert.equal('"\127"', json.encode "\127")
    end)

    it("writes NUL as \\u0000, which decode refuses (cJSON keeps C strings)", function()
      assert.equal('"a\\u0000b"', json.encode "a\0b")
      assert.equal("line 1, column 3: \\u0000 is not supported in strings near '\\u0000b\"'",
        refused(json.encode "a\0b"))
    end)

    it("writes empty tables as {} and marked ones by their kind", function()
      assert.equal("{}", json.encode {})
      assert.equal("[]", json.encode(json.array()))
      assert.equal("{}", json.encode(json.object()))
      assert.equal('{"a":[],"b":{}}', json.encode { a = json.array {}, b = {} })
      assert.equal("[1,2]", json.encode(json.array { 1, 2 }))
    end)

    it("sorts keys by default", function()
      assert.equal('{"a":1,"b":2,"c":{"x":null,"y":[true]}}', json.encode { c = { y = { true }, x = null }, b = 2, a = 1 })
      local unsorted = json.encode({ c = 3, b = 2, a = 1 }, { sort_keys = false })
      assert_same({ a = 1, b = 2, c = 3 }, setmetatable(json.decode(unsorted), nil))
    end)

    it("pretty-prints with two spaces", function()
      local out = json.encode({ versions = { { name = "v1", weight = 50 } }, empty = {}, list = json.array() },
        { pretty = true })
      assert.equal([[{
  "empty": {},
  "list": [],
  "versions": [
    {
      "name": "v1",
      "weight": 50
    }
  ]
}]], out)
    end)

    local round = {
      { versions = { { name = "v1", weight = 50 }, { name = "v2", weight = 0 } } },
      { 0.1, 1 / 3, 1.0, -2.5, 1e300, 5e-324, 2 ^ 53, 123456789.125, math.maxinteger, math.mininteger, 0 },
      { s = 'q"uo\\te', c = "\1\31\127", u = "é\u{10FFFF}", e = "" },
      { a = { b = { c = { json.array(), json.object() } } }, n = null, t = true },
    }
    for i, v in ipairs(round) do
      it("round-trips value " .. i, function()
        local out = json.encode(v)
        local back = assert(json.decode(out))
        assert_same(v, back)
        assert.equal(out, json.encode(back))
        assert_same(v, json.decode(json.encode(v, { pretty = true })))
      end)
    end

    it("raises on what JSON cannot hold, naming where", function()
      assert.has_error(function() json.encode(0 / 0) end, "json.encode: cannot encode NaN in JSON")
      assert.has_error(function() json.encode { x = { math.huge } } end, "json.encode: cannot encode inf in JSON (at x[1])")
      assert.has_error(function() json.encode { -math.huge } end, "json.encode: cannot encode -inf in JSON (at [1])")
      assert.has_error(function() json.encode { a = { b = print } } end,
        "json.encode: cannot encode a function value (at a.b)")
      assert.has_error(function() json.encode(io.stdout) end, "json.encode: cannot encode a userdata value")
      local t = { list = {} }
      t.list[1] = t
      assert.has_error(function() json.encode(t) end, "json.encode: cycle: a table contains itself (at list[1])")
      assert.has_error(function() json.encode { 1, 2, x = 3 } end,
        "json.encode: table has integer key 1 but is not an array with keys 1..n")
      assert.has_error(function() json.encode { [1] = 1, [5] = 5 } end,
        "json.encode: sparse array: 2 items but largest index 5")
      assert.has_error(function() json.encode(json.object { [1] = "x" }) end,
        "json.encode: object keys must be strings (got integer key 1)")
      assert.has_error(function() json.encode { [true] = 1 } end,
        "json.encode: cannot encode a table key of type boolean true (object keys must be strings)")
      assert.has_error(function() json.encode(json.array { 1, 2, x = 1 }) end,
        "json.encode: table marked as an array has a key that is not an index (a string)")
      assert.has_error(function() json.encode { ["k\255"] = 1 } end,
        'json.encode: string is not valid UTF-8 (byte 2) (at ["k\255"])')
      assert.has_error(function() json.encode { v = "\237\160\128" } end,
        "json.encode: string is not valid UTF-8 (byte 1) (at v)")
      assert.has_error(function() json.encode(1, "pretty") end)
    end)

    it("refuses nesting deeper than max_depth", function()
      local t = {}
      local cur = t
      for _ = 1, 10000 do
        cur.a = {}
        cur = cur.a
      end
      assert.has_error(function() json.encode(t) end,
        "json.encode: nesting deeper than 128 (at " .. ("a"):rep(128, ".") .. ")")
      assert.has_error(function() json.encode({ { {} } }, { max_depth = 2 }) end,
        "json.encode: nesting deeper than 2 (at [1][1])")
      assert.equal("[[{}]]", json.encode({ { {} } }, { max_depth = 3 }))
    end)
  end)

  describe("shared conventions", function()
    it("has one null, equal to yaml.null", function()
      assert.equal(yaml.null, json.null)
      assert.equal("userdata", type(json.null))
      assert.equal(null, json.decode("[null]")[1])
      assert.equal(yaml.null, json.decode("null"))
    end)

    it("marks tables with array() and object()", function()
      local t = { 1 }
      assert.equal(t, json.object(t) and json.array(t))
      assert.equal("array", kind(t))
      assert.equal("object", kind(json.object()))
      assert.has_error(function() json.object(setmetatable({}, { __index = {} })) end)
      assert.has_error(function() json.array "x" end)
    end)

    it("encodes what yaml.load reads", function()
      local v = yaml.load "a: []\nb: {}\nc: [1, 2.5, ~]\n"
      assert.equal('{"a":[],"b":{},"c":[1,2.5,null]}', json.encode(v))
    end)
  end)
end)
