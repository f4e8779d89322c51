-- The Helm chart deployments/chart. There is no helm here, so the chart is
-- rendered by a deliberately tiny evaluator of the Go-template subset its
-- templates use (below), the result is loaded with rollout.yaml and checked
-- against the apps/v1 Deployment essentials, and compared with what the
-- fake helm (tests/fakes/bin/helm) renders from the same values: equal to
-- its manifest, and a subset of the Deployment it applied to the fake API
-- server (which adds defaults). So the chart and the fake cannot drift apart.
--
-- The evaluator knows: text with {{ }} actions and {{- -}} trimming,
-- {{/* comments */}}, define/include, if/with/range (range $k, $v := map)
-- with else and end, pipelines, (sub pipelines), .Field chains on dot, $ and
-- $variables, string/number/true/false/nil literals, and the functions
-- quote, default, required, include, toYaml, indent, nindent. Anything else
-- is an error ("unsupported ..."): a template that grows beyond the subset
-- fails here instead of being rendered wrongly.
local yaml = require "rollout.yaml"
local json = require "rollout.json"
local helm = require "rollout.helm"
local proc = require "rollout.proc"
local http = require "rollout.http"
local fs = require "rollout.fs"
local fixture = require "tests.helpers.fixture"

local ROOT = os.getenv("ROLLOUT_ROOT") or "."
local CHART = ROOT .. "/deployments/chart"
local FAKE = ROOT .. "/tests/fakes/bin/helm"
local TOKEN = "tok-1"
local NULL = yaml.null

-- ---------------------------------------------------------------------------
-- the Go-template subset

local T = {}

local function fail(msg, level) error("template: " .. msg, (level or 1) + 1) end

-- Splits a template into text and action items, applying the trim markers.
local function lex(src)
  local items, pos = {}, 1
  while true do
    local s = src:find("{{", pos, true)
    if not s then
      items[#items + 1] = { kind = "text", text = src:sub(pos) }
      return items
    end
    local text = src:sub(pos, s - 1)
    local i = s + 2
    if src:sub(i, i) == "-" and src:sub(i + 1, i + 1):match("%s") then
      text = text:gsub("%s+$", "")
      i = i + 1
    end
    items[#items + 1] = { kind = "text", text = text }
    -- the closing braces, skipping string literals and comments
    local j, e = i, nil
    while j <= #src do
      local c = src:sub(j, j)
      if c == '"' then
        j = j + 1
        while j <= #src and src:sub(j, j) ~= '"' do
          if src:sub(j, j) == "\\" then j = j + 1 end
          j = j + 1
        end
      elseif c == "`" then
        j = src:find("`", j + 1, true) or fail("unterminated raw string")
      elseif src:sub(j, j + 1) == "/*" then
        j = (src:find("*/", j + 2, true) or fail("unterminated comment")) + 1
      elseif src:sub(j, j + 1) == "}}" then
        e = j
        break
      end
      j = j + 1
    end
    if not e then fail("unclosed action") end
    local inner = src:sub(i, e - 1)
    pos = e + 2
    if inner:match("%s%-$") then
      inner = inner:sub(1, -2)
      pos = src:find("[^%s]", pos) or #src + 1
    end
    if not inner:match("^%s*/%*.-%*/%s*$") then -- a comment renders nothing
      items[#items + 1] = { kind = "action", src = inner }
    end
  end
end

-- Tokens of one action.
local function tokens(src)
  local toks, i = {}, 1
  while i <= #src do
    local c = src:sub(i, i)
    if c:match("%s") then
      i = i + 1
    elseif c == '"' then
      local j, out = i + 1, {}
      while true do
        local d = src:sub(j, j)
        if d == "" then fail("unterminated string") end
        if d == '"' then break end
        if d == "\\" then
          local n = src:sub(j + 1, j + 1)
          out[#out + 1] = ({ n = "\n", t = "\t", ['"'] = '"', ["\\"] = "\\" })[n] or fail("unsupported escape \\" .. n)
          j = j + 2
        else
          out[#out + 1] = d
          j = j + 1
        end
      end
      toks[#toks + 1] = { t = "str", v = table.concat(out) }
      i = j + 1
    elseif c == "`" then
      local j = src:find("`", i + 1, true)
      toks[#toks + 1] = { t = "str", v = src:sub(i + 1, j - 1) }
      i = j + 1
    elseif src:sub(i, i + 1) == ":=" then
      toks[#toks + 1] = { t = ":=" }
      i = i + 2
    elseif c == "|" or c == "(" or c == ")" or c == "," then
      toks[#toks + 1] = { t = c }
      i = i + 1
    elseif c:match("[%-%d]") and src:sub(i):match("^%-?%d") then
      local num = src:match("^%-?%d+%.?%d*", i)
      toks[#toks + 1] = { t = "num", v = tonumber(num) }
      i = i + #num
    elseif c == "." or c == "$" then
      local word = src:match("^[%$%.][%w_%.]*", i)
      local base, rest
      if c == "$" then
        base, rest = word:match("^(%$[%w_]*)(.*)$")
      else
        base, rest = ".", word
      end
      local path = {}
      for f in rest:gmatch("[^%.]+") do path[#path + 1] = f end
      if rest ~= "" and rest ~= "." and not rest:match("^%.[%a_]") then fail("bad field '" .. word .. "'") end
      toks[#toks + 1] = { t = "field", base = base, path = path, src = word }
      i = i + #word
    elseif c:match("[%a_]") then
      local word = src:match("^[%w_]+", i)
      toks[#toks + 1] = { t = "ident", v = word }
      i = i + #word
    else
      fail("unexpected '" .. c .. "' in {{" .. src .. "}}")
    end
  end
  return toks
end

-- pipeline := [$a [, $b] :=] command { | command };  command := operand+
local function parse_pipeline(toks, pos, stop)
  local pipe = { cmds = {} }
  if toks[pos] and toks[pos].t == "field" and toks[pos].base ~= "." then
    local k = pos
    local vars = { toks[k].base }
    if toks[k + 1] and toks[k + 1].t == "," and toks[k + 2] and toks[k + 2].t == "field" then
      vars[2] = toks[k + 2].base
      k = k + 2
    end
    if toks[k + 1] and toks[k + 1].t == ":=" then
      pipe.vars = vars
      pos = k + 2
    end
  end
  local cmd = {}
  while toks[pos] and toks[pos].t ~= stop do
    local tk = toks[pos]
    if tk.t == "|" then
      if #cmd == 0 then fail("empty command") end
      pipe.cmds[#pipe.cmds + 1] = cmd
      cmd = {}
      pos = pos + 1
    elseif tk.t == "(" then
      local sub
      sub, pos = parse_pipeline(toks, pos + 1, ")")
      if not toks[pos] then fail("missing )") end
      cmd[#cmd + 1] = { t = "pipe", v = sub }
      pos = pos + 1
    elseif tk.t == "str" or tk.t == "num" or tk.t == "field" or tk.t == "ident" then
      cmd[#cmd + 1] = tk
      pos = pos + 1
    else
      fail("unexpected '" .. tk.t .. "'")
    end
  end
  if #cmd == 0 then fail("empty pipeline") end
  pipe.cmds[#pipe.cmds + 1] = cmd
  return pipe, pos
end

local BLOCKS = { ["if"] = true, with = true, range = true, define = true }

-- Builds the tree: {kind = "text"|"out"|"if"|"with"|"range", ...}; defines
-- go into `defines`.
local function parse(src, defines)
  local items, idx = lex(src), 1
  local function list(closers)
    local nodes = {}
    while idx <= #items do
      local it = items[idx]
      idx = idx + 1
      if it.kind == "text" then
        if it.text ~= "" then nodes[#nodes + 1] = { kind = "text", text = it.text } end
      else
        local toks = tokens(it.src)
        local head = toks[1] and toks[1].t == "ident" and toks[1].v
        if head == "end" or head == "else" then
          if not closers then fail("unexpected {{" .. head .. "}}") end
          return nodes, head
        elseif BLOCKS[head] then
          local node = { kind = head }
          if head == "define" then
            if not (toks[2] and toks[2].t == "str") or toks[3] then fail("define needs one name") end
            local body, closer = list(true)
            if closer ~= "end" then fail("{{else}} in define") end
            defines[toks[2].v] = body
          else
            node.pipe = parse_pipeline(toks, 2)
            if node.pipe.vars and head ~= "range" then fail("variables only in range") end
            local closer
            node.body, closer = list(true)
            if closer == "else" then
              node.alt, closer = list(true)
              if closer ~= "end" then fail("else if is not supported") end
            end
            if not closer then fail("missing {{end}} for " .. head) end
            nodes[#nodes + 1] = node
          end
        elseif head == "template" or head == "block" or head == "break" or head == "continue" then
          fail("unsupported action '" .. head .. "'")
        else
          local pipe = parse_pipeline(toks, 1)
          if pipe.vars then fail("unsupported variable assignment") end
          nodes[#nodes + 1] = { kind = "out", pipe = pipe }
        end
      end
    end
    if closers then return nodes, nil end
    return nodes
  end
  return list(false)
end

-- Go's notion of empty (if, with, default).
local function truthy(v)
  if v == nil or v == NULL or v == false or v == 0 or v == "" then return false end
  if type(v) == "table" then return next(v) ~= nil end
  return true
end

local function shortest(d)
  for p = 15, 17 do
    local s = ("%." .. p .. "g"):format(d)
    if tonumber(s) == d then return s end
  end
  return ("%.17g"):format(d)
end

-- How {{ value }} prints it (helm prints a missing value as "").
local function printed(v)
  if v == nil or v == NULL then return "" end
  if type(v) == "string" then return v end
  if type(v) == "boolean" then return tostring(v) end
  if math.type(v) == "integer" then return ("%d"):format(v) end
  if type(v) == "number" then
    if v == math.floor(v) and math.abs(v) < 1e21 then return ("%.0f"):format(v) end
    return shortest(v)
  end
  fail("cannot print a " .. type(v))
end

local function go_quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local named = { ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r", ['"'] = '\\"', ["\\"] = "\\\\" }
    return named[c] or ("\\x%02x"):format(c:byte())
  end) .. '"'
end

local function indent(n, s)
  local pad = (" "):rep(n)
  return pad .. s:gsub("\n", "\n" .. pad)
end

local render_nodes

local FUNCS = {
  quote = function(_, v) return v == nil and "" or go_quote(printed(v)) end,
  default = function(_, d, v) if truthy(v) then return v end return d end,
  required = function(_, msg, v)
    if v == nil or v == NULL or v == "" then error({ required = msg }) end
    return v
  end,
  include = function(env, name, data)
    local body = env.defines[name] or fail("no template \"" .. tostring(name) .. "\"")
    local out = {}
    render_nodes(body, { defines = env.defines, root = env.root, dot = data, vars = {} }, out)
    return table.concat(out)
  end,
  toYaml = function(_, v)
    if v == nil or v == NULL then return "null" end
    return (yaml.dump(v):gsub("\n$", ""))
  end,
  indent = function(_, n, s) return indent(n, printed(s)) end,
  nindent = function(_, n, s) return "\n" .. indent(n, printed(s)) end,
}

local function lookup(env, tk)
  local v
  if tk.base == "." then
    v = env.dot
  elseif tk.base == "$" then
    v = env.root
  else
    local found = false
    for i = #env.vars, 1, -1 do
      if env.vars[i].name == tk.base then v, found = env.vars[i].value, true break end
    end
    if not found then fail("undefined variable " .. tk.base) end
  end
  for _, f in ipairs(tk.path) do
    if v == nil or v == NULL then fail("nil pointer evaluating " .. tk.src) end
    if type(v) ~= "table" then fail("can't evaluate field " .. f .. " in " .. tk.src) end
    v = v[f]
  end
  return v
end

local eval_pipeline

local function operand(env, tk)
  if tk.t == "str" or tk.t == "num" then return tk.v end
  if tk.t == "field" then return lookup(env, tk) end
  if tk.t == "pipe" then return eval_pipeline(env, tk.v) end
  if tk.t == "ident" then
    if tk.v == "true" then return true end
    if tk.v == "false" then return false end
    if tk.v == "nil" then return nil end
  end
  fail("unsupported operand '" .. tostring(tk.v) .. "'")
end

local function command(env, cmd, prev, has_prev)
  local head = cmd[1]
  if head.t == "ident" and not ({ ["true"] = 1, ["false"] = 1, ["nil"] = 1 })[head.v] then
    local fn = FUNCS[head.v] or fail("unsupported function '" .. head.v .. "'")
    local args = {}
    for i = 2, #cmd do args[i - 1] = operand(env, cmd[i]) end
    local n = #cmd - 1
    if has_prev then
      n = n + 1
      args[n] = prev
    end
    return fn(env, table.unpack(args, 1, n))
  end
  if #cmd > 1 or has_prev then fail("can't give arguments to a non-function") end
  return operand(env, head)
end

eval_pipeline = function(env, pipe)
  local v, has = nil, false
  for _, cmd in ipairs(pipe.cmds) do
    v = command(env, cmd, v, has)
    has = true
  end
  return v
end

render_nodes = function(nodes, env, out)
  for _, n in ipairs(nodes) do
    if n.kind == "text" then
      out[#out + 1] = n.text
    elseif n.kind == "out" then
      out[#out + 1] = printed(eval_pipeline(env, n.pipe))
    elseif n.kind == "if" or n.kind == "with" then
      local v = eval_pipeline(env, n.pipe)
      if truthy(v) then
        local inner = env
        if n.kind == "with" then inner = { defines = env.defines, root = env.root, dot = v, vars = env.vars } end
        render_nodes(n.body, inner, out)
      elseif n.alt then
        render_nodes(n.alt, env, out)
      end
    elseif n.kind == "range" then
      local v = eval_pipeline(env, n.pipe)
      if v ~= nil and v ~= NULL and type(v) ~= "table" then fail("range can't iterate over " .. tostring(v)) end
      local keys = {}
      for k in pairs(v or {}) do keys[#keys + 1] = k end
      local is_list = #keys > 0 and #keys == #(v or {})
      table.sort(keys, function(a, b)
        if type(a) == type(b) then return a < b end
        return type(a) == "number"
      end)
      if #keys == 0 and n.alt then render_nodes(n.alt, env, out) end
      for _, k in ipairs(keys) do
        local vars = setmetatable({}, { __index = env.vars })
        for i, x in ipairs(env.vars) do vars[i] = x end
        local names = n.pipe.vars or {}
        if #names == 2 then
          vars[#vars + 1] = { name = names[1], value = is_list and k - 1 or k }
          vars[#vars + 1] = { name = names[2], value = v[k] }
        elseif #names == 1 then
          vars[#vars + 1] = { name = names[1], value = v[k] }
        end
        render_nodes(n.body, { defines = env.defines, root = env.root, dot = v[k], vars = vars }, out)
      end
    end
  end
end

-- Renders `src` with `data` as dot; defines from `helpers` texts.
function T.render(src, data, helpers)
  local defines = {}
  for _, h in ipairs(helpers or {}) do parse(h, defines) end
  local nodes = parse(src, defines)
  local out = {}
  local ok, err = pcall(render_nodes, nodes, { defines = defines, root = data, dot = data, vars = {} }, out)
  if not ok then
    if type(err) == "table" and err.required then return nil, err.required end
    error(err, 0)
  end
  return table.concat(out)
end

-- ---------------------------------------------------------------------------
-- the chart

local function read(path) return assert(fs.read(path)) end

-- chartutil.CoalesceValues: user values over the chart's defaults; maps
-- merge, null deletes a default.
local function coalesce(user, defaults)
  local out = {}
  for k, v in pairs(defaults or {}) do out[k] = v end
  for k, v in pairs(user or {}) do
    if v == NULL then
      out[k] = nil
    elseif type(v) == "table" and type(out[k]) == "table" and #v == 0 and next(out[k]) ~= nil and #out[k] == 0 then
      out[k] = coalesce(v, out[k])
    else
      out[k] = v
    end
  end
  return out
end

local chart_meta = assert(yaml.load(read(CHART .. "/Chart.yaml")))
local chart_defaults = assert(yaml.load(read(CHART .. "/values.yaml")))
local helpers_src = read(CHART .. "/templates/_helpers.tpl")

local function render_chart(file, release, namespace, values)
  local data = {
    Values = coalesce(values, chart_defaults),
    Release = { Name = release, Namespace = namespace, Service = "Helm", IsInstall = true },
    Chart = { Name = chart_meta.name, Version = chart_meta.version, AppVersion = chart_meta.appVersion },
  }
  return T.render(read(CHART .. "/templates/" .. file), data, { helpers_src })
end

-- The rendered deployment.yaml as one loaded YAML document.
local function render_deployment(release, namespace, values)
  local text, err = render_chart("deployment.yaml", release, namespace, values)
  if not text then return nil, err end
  local docs = assert(yaml.load_all(text, { name = "deployment.yaml" }))
  assert.equal(1, #docs, "deployment.yaml must render exactly one document")
  return docs[1], text
end

-- Every field of `want` is in `got` with the same value (lists: same length).
local function subset(want, got, path)
  path = path or ""
  if type(want) ~= "table" then
    assert(want == got, ("%s: expected %s, got %s"):format(path, tostring(want), tostring(got)))
    return
  end
  assert(type(got) == "table", path .. ": expected a table, got " .. tostring(got))
  if #want > 0 then assert(#want == #got, ("%s: expected %d items, got %d"):format(path, #want, #got)) end
  for k, v in pairs(want) do subset(v, got[k], path .. "." .. tostring(k)) end
end

local function find(list, pred)
  for _, x in ipairs(list or {}) do if pred(x) then return x end end
end

-- The API reference essentials of an apps/v1 Deployment (and the schema
-- the fake helm documents).
local function check_essentials(dep, release, want)
  assert.equal("apps/v1", dep.apiVersion)
  assert.equal("Deployment", dep.kind)
  assert.equal(release, dep.metadata.name)
  assert.equal(want.app, dep.metadata.labels.app)
  assert.equal(want.version, dep.metadata.labels.version)
  assert.equal(want.replicas, dep.spec.replicas)
  local sel = dep.spec.selector.matchLabels
  assert.same({ app = want.app, version = want.version }, sel)
  local tlabels = dep.spec.template.metadata.labels
  for k, v in pairs(sel) do assert.equal(v, tlabels[k], "selector label " .. k .. " not on the pod template") end
  assert.equal(want.app, tlabels.app)
  assert.equal(want.version, tlabels.version)
  local containers = dep.spec.template.spec.containers
  assert.equal(1, #containers)
  local c = containers[1]
  assert.equal(want.app, c.name)
  assert.is_true(#c.name <= 63 and c.name:match("^[a-z0-9][-a-z0-9]*$") ~= nil and c.name:match("%-$") == nil,
    "container name " .. c.name .. " is not a DNS-1123 label")
  assert.equal(want.image, c.image)
  assert.equal(want.pullPolicy, c.imagePullPolicy)
  assert.equal(1, #c.ports)
  assert.same({ name = "http", containerPort = want.port, protocol = "TCP" }, c.ports[1])
  for _, probe in ipairs { c.readinessProbe, c.livenessProbe } do
    assert.equal(want.health, probe.httpGet.path)
    assert.equal("http", probe.httpGet.port)
    assert.equal(2, probe.periodSeconds)
    assert.equal(3, probe.failureThreshold)
  end
  assert.equal(5, c.livenessProbe.initialDelaySeconds)
  local env = {}
  for _, e in ipairs(c.env) do env[#env + 1] = e.name .. "=" .. e.value end
  assert.same(want.env, env)
  assert.same(want.resources, c.resources)
end

-- ---------------------------------------------------------------------------

describe("the template subset evaluator", function()
  local function r(src, data, helpers) return T.render(src, data or {}, helpers) end

  it("trims with {{- and -}}, drops comments", function()
    assert.equal("a b c", r("a  {{- \" b \" -}}  c"))
    assert.equal("x\ny", r("x\n{{/* gone */}}y"))
    assert.equal("xy", r("x\n  {{- /* gone */ -}}\n  y"))
    assert.equal("-3", r("{{-3}}"))
  end)

  it("reads fields, quotes, defaults, requires", function()
    local d = { Values = { a = { b = "v" }, n = 8080, e = "", z = 0, t = true } }
    assert.equal("v", r("{{ .Values.a.b }}", d))
    assert.equal("8080", r("{{ .Values.n }}", d))
    assert.equal('"8080"', r("{{ .Values.n | quote }}", d))
    assert.equal('"a\\"b\\\\c"', r([[{{ "a\"b\\c" | quote }}]], d))
    assert.equal("d", r('{{ .Values.missing | default "d" }}', d))
    assert.equal("d", r('{{ .Values.e | default "d" }}', d))
    assert.equal("d", r('{{ .Values.z | default "d" }}', d))
    assert.equal("v", r('{{ .Values.a.b | default "d" }}', d))
    assert.equal("v", r('{{ .Values.missing | default .Values.e | default .Values.a.b }}', d))
    assert.equal("v", r('{{ default "d" (.Values.a.b) }}', d))
    assert.equal("", r("{{ .Values.missing }}", d))
    assert.equal("true", r("{{ .Values.t }}", d))
    local text, err = r('{{ required "need e" .Values.e }}', d)
    assert.is_nil(text)
    assert.equal("need e", err)
    assert.has_error(function() r("{{ .Values.missing.x }}", d) end)
  end)

  it("includes defines, indents, blocks, ranges over maps in key order", function()
    local helpers = { '{{- define "two" -}}\nl1: {{ .x }}\nl2: 2\n{{- end }}' }
    assert.equal("k:\n  l1: 1\n  l2: 2", r('k:{{ include "two" . | nindent 2 }}', { x = 1 }, helpers))
    assert.equal("  a\n  b", r("{{ .s | indent 2 }}", { s = "a\nb" }))
    assert.equal("none", r("{{ with .m }}{{ toYaml . }}{{ else }}none{{ end }}", { m = {} }))
    assert.equal("a: 1", r("{{ with .m }}{{ toYaml . }}{{ else }}none{{ end }}", { m = { a = 1 } }))
    assert.equal("yes", r("{{ if .b }}yes{{ else }}no{{ end }}", { b = true }))
    assert.equal("no", r("{{ if .b }}yes{{ else }}no{{ end }}", { b = false }))
    assert.equal("a=1;b=x;", r("{{ range $k, $v := .m }}{{ $k }}={{ $v }};{{ end }}", { m = { b = "x", a = 1 } }))
    assert.equal("0:p 1:q ", r("{{ range $i, $v := .l }}{{ $i }}:{{ . }} {{ end }}", { l = { "p", "q" } }))
    assert.equal("R", r("{{ with .m }}{{ $.r }}{{ end }}", { m = { 1 }, r = "R" }))
  end)

  it("refuses what it does not know instead of guessing", function()
    assert.has_error(function() r("{{ .x | upper }}", { x = "a" }) end, nil)
    local ok, err = pcall(r, "{{ .x | upper }}", { x = "a" })
    assert.is_false(ok)
    assert.matches("unsupported function 'upper'", err)
    ok, err = pcall(r, '{{ template "x" . }}')
    assert.matches("unsupported action 'template'", err)
    ok, err = pcall(r, "{{ $x := 1 }}")
    assert.matches("unsupported variable assignment", err)
    ok, err = pcall(r, "{{ if .a }}x")
    assert.matches("missing {{end}}", err, 1, true)
    ok, err = pcall(r, '{{ include "nope" . }}')
    assert.matches('no template "nope"', err, 1, true)
  end)
end)

describe("the chart", function()
  it("is an apiVersion v2 chart rollout-service 0.1.0 with an appVersion", function()
    assert.equal("v2", chart_meta.apiVersion)
    assert.equal("rollout-service", chart_meta.name)
    assert.equal("0.1.0", chart_meta.version)
    assert.is_string(chart_meta.appVersion)
    assert.equal("application", chart_meta.type)
  end)

  it("has the values schema of the fake helm, and says routing is rollout's", function()
    assert.same({
      service = "", version = "",
      image = { repository = "", tag = "", pullPolicy = "IfNotPresent" },
      replicaCount = 1, port = 8080, healthPath = "/healthz", env = {}, resources = {},
    }, chart_defaults)
    local text = read(CHART .. "/values.yaml")
    assert.matches("owned by rollout itself", text, 1, true)
    for _, kind in ipairs { "Service", "DestinationRule", "VirtualService", "HTTPRoute" } do
      assert.matches(kind, text, 1, true)
    end
  end)

  it("holds templates for one Deployment and nothing else", function()
    local files = assert(fs.list(CHART .. "/templates"))
    assert.same({ "NOTES.txt", "_helpers.tpl", "deployment.yaml" }, files)
    local _, text = render_deployment("web-v1", "apps", { service = "web", version = "v1" })
    local kinds = {}
    for k in text:gmatch("\nkind: (%w+)") do kinds[#kinds + 1] = k end
    for k in text:gmatch("^kind: (%w+)") do kinds[#kinds + 1] = k end
    assert.same({ "Deployment" }, kinds)
    for _, routing in ipairs { "kind: Service", "DestinationRule", "VirtualService", "HTTPRoute" } do
      assert.is_nil(text:find(routing, 1, true))
    end
    local notes = assert(render_chart("NOTES.txt", "web-v1", "apps", { service = "web", version = "v1" }))
    assert.matches("web v1 is deployed as Deployment web-v1 in namespace apps", notes, 1, true)
  end)

  it("renders the minimal values into the Deployment essentials", function()
    local dep = assert(render_deployment("microservice-1-v1", "default", { service = "microservice-1", version = "v1" }))
    check_essentials(dep, "microservice-1-v1", {
      app = "microservice-1", version = "v1", replicas = 1, image = "microservice-1:v1", pullPolicy = "IfNotPresent",
      port = 8080, health = "/healthz", resources = nil,
      env = { "SERVICE_NAME=microservice-1", "SERVICE_VERSION=v1", "PORT=8080" },
    })
    assert.equal("rollout-service-0.1.0", dep.metadata.labels["helm.sh/chart"])
    assert.is_nil(dep.spec.template.spec.containers[1].resources)
    assert.is_nil(dep.metadata.namespace) -- helm sets it from --namespace
  end)

  it("renders every value of the schema", function()
    local dep = assert(render_deployment("shop-v3", "apps", {
      service = "shop", version = "v3",
      image = { repository = "registry.local/shop", tag = "3.0.1", pullPolicy = "Always" },
      replicaCount = 3, port = 9090, healthPath = "/ready",
      env = { LOG_LEVEL = "debug", A_FIRST = "1", COUNT = 5 },
      resources = { limits = { cpu = "200m", memory = "128Mi" }, requests = { cpu = "100m" } },
    }))
    check_essentials(dep, "shop-v3", {
      app = "shop", version = "v3", replicas = 3, image = "registry.local/shop:3.0.1", pullPolicy = "Always",
      port = 9090, health = "/ready",
      resources = { limits = { cpu = "200m", memory = "128Mi" }, requests = { cpu = "100m" } },
      env = { "SERVICE_NAME=shop", "SERVICE_VERSION=v3", "PORT=9090", "A_FIRST=1", "COUNT=5", "LOG_LEVEL=debug" },
    })
  end)

  it("falls back to the chart name, then to app, for the service", function()
    local dep = assert(render_deployment("x-v2", "default", { version = "v2" }))
    assert.equal("rollout-service", dep.metadata.labels.app)
    assert.equal("rollout-service:v2", dep.spec.template.spec.containers[1].image)
    dep = assert(render_deployment("legacy-v1", "default", { app = "legacy", version = "v1" }))
    assert.equal("legacy", dep.spec.template.spec.containers[1].name)
    assert.equal("legacy:v1", dep.spec.template.spec.containers[1].image)
  end)

  it("refuses to render without a version", function()
    local dep, err = render_deployment("web", "default", { service = "web" })
    assert.is_nil(dep)
    assert.equal("values.version is required", err)
    dep, err = render_deployment("web", "default", { service = "web", version = "" })
    assert.is_nil(dep)
    assert.equal("values.version is required", err)
  end)
end)

describe("the chart and the fake helm", function()
  local tmp, server, kubeconfig, api_base

  setup(function()
    tmp = assert(fs.mkdtemp("rollout-chart-spec-"))
    kubeconfig = tmp .. "/kubeconfig"
    local log = tmp .. "/server.log"
    local port
    server, port = fixture.start_server { argv = { "/usr/bin/python3", ROOT .. "/tests/fakes/kube_apiserver.py",
      "--port", "0", "--certs", tmp .. "/certs", "--token", TOKEN, "--ready-delay", "0.1",
      "--kubeconfig-out", kubeconfig }, log = log, what = "the fake API server",
      ready = function(text) return text:match("listening on 127%.0%.0%.1:(%d+)") end }
    api_base = "https://127.0.0.1:" .. port
  end)

  teardown(function()
    if server then proc.stop(server, { timeout = 5 }) end
    if tmp then fs.remove_tree(tmp) end
  end)

  local function fake_install(release, values)
    return helm.install { helm = FAKE, release = release, chart = CHART, namespace = "charts", values = values,
      wait = false, kubeconfig = kubeconfig, timeout = 60,
      env = { HELM_FAKE_STATE = tmp .. "/state", HELM_FAKE_FAIL = false, HELM_FAKE_HANG = false,
        HELM_FAKE_LOG = false } }
  end

  local function api_deployment(name)
    local r = assert(http.request { url = api_base .. "/apis/apps/v1/namespaces/charts/deployments/" .. name,
      ca_file = tmp .. "/certs/ca.crt", headers = { Authorization = "Bearer " .. TOKEN }, timeout = 10 })
    assert.equal(200, r.status, r.body)
    return assert(json.decode(r.body))
  end

  local cases = {
    { "minimal", "microservice-1-v1", { service = "microservice-1", version = "v1" } },
    { "every value", "shop-v3", {
      service = "shop", version = "v3",
      image = { repository = "registry.local/shop", tag = "3.0.1", pullPolicy = "Always" },
      replicaCount = 3, port = 9090, healthPath = "/ready",
      env = { LOG_LEVEL = "debug", A_FIRST = "1", COUNT = 5 },
      resources = { limits = { cpu = "200m", memory = "128Mi" }, requests = { cpu = "100m" } } } },
    { "no service", "anon-v2", { version = "v2", replicaCount = 0 } },
    { "app instead of service", "legacy-v1", { app = "legacy", version = "v1", image = { tag = "latest" } } },
    { "null deletes a default", "nulls-v1", { service = "nulls", version = "v1", resources = json.null,
      env = { ONLY = "one" } } },
  }

  for _, case in ipairs(cases) do
    local what, release, values = case[1], case[2], case[3]
    it("render the same Deployment: " .. what, function()
      local mine = assert(render_deployment(release, "charts", values))
      local rel, msg = fake_install(release, values)
      assert.is_nil(msg, msg)
      -- the fake's manifest, exactly
      local manifest = rel.manifest:gsub("^%-%-%-\n# Source: [^\n]*\n", "")
      local theirs = assert(yaml.load(manifest))
      assert.same(theirs, mine)
      -- what the fake applied: every field of ours, the server's defaults besides
      local live = api_deployment(release)
      subset(mine, live, release)
      assert.equal("Helm", live.metadata.labels["app.kubernetes.io/managed-by"])
      assert.equal(release, live.metadata.annotations["meta.helm.sh/release-name"])
      -- and the essentials field by field, both ways
      local c, lc = mine.spec.template.spec.containers[1], live.spec.template.spec.containers[1]
      for _, f in ipairs { "name", "image", "imagePullPolicy" } do assert.equal(c[f], lc[f], f) end
      assert.same(c.env, lc.env)
      assert.same(c.ports[1].containerPort, lc.ports[1].containerPort)
      assert.same(mine.spec.selector, live.spec.selector)
      assert.same(mine.spec.template.metadata.labels, live.spec.template.metadata.labels)
      assert.equal(mine.spec.replicas, live.spec.replicas)
      if c.resources then
        assert.same(c.resources, lc.resources)
      else -- the server defaults it to {}
        assert.is_nil(next(lc.resources or {}))
      end
    end)
  end

  it("both refuse values without a version", function()
    local _, err = render_deployment("nover-v1", "charts", { service = "nover" })
    assert.equal("values.version is required", err)
    local rel, msg, code = fake_install("nover-v1", { service = "nover" })
    assert.is_nil(rel)
    assert.equal("failed", code)
    assert.matches("values.version is required", msg, 1, true)
  end)
end)
