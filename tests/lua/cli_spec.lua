-- The rollout command line behaves like lua(1), with rollout's exit codes.
local proc = require "rollout.proc"
local fs = require "rollout.fs"
local fixture = require "tests.helpers.fixture"

local BIN = fixture.bin

local function run(argv, opts)
  opts = opts or {}
  local full = { BIN }
  for _, a in ipairs(argv) do full[#full + 1] = a end
  local res, err = proc.run { argv = full, stdin = opts.stdin, cwd = opts.cwd, env = opts.env, timeout = 30 }
  assert(res, err)
  return res
end

local tmp
setup(function() tmp = fs.mkdtemp("/tmp/rollout-cli-") end)
teardown(function() if tmp then fs.remove_tree(tmp) end end)

local function write(name, text)
  local path = fs.join(tmp, name)
  assert(fs.write_atomic(path, text))
  return path
end

describe("rollout command line", function()
  it("--version names rollout and Lua", function()
    local r = run { "--version" }
    assert.equal(0, r.status)
    assert.matches("^rollout %d+%.%d+%.%d+ %(Lua 5%.4%.%d+%)\n$", r.stdout)
  end)

  it("--help documents the exit codes on stdout", function()
    local r = run { "--help" }
    assert.equal(0, r.status)
    assert.matches("usage: rollout", r.stdout)
    assert.matches("0  success", r.stdout)
    assert.matches("2  usage error", r.stdout)
    assert.matches("%-%-target NAME", r.stdout)
  end)

  it("an unknown option is a usage error on stderr, exit 2", function()
    local r = run { "--frobnicate" }
    assert.equal(2, r.status)
    assert.equal("", r.stdout)
    assert.matches("unrecognized option '%-%-frobnicate'", r.stderr)
    assert.matches("usage:", r.stderr)
  end)

  it("-e runs code, in order, with -l", function()
    local r = run { "-e", "x = 1", "-l", "w=rollout.weights", "-e", "print(x + 1, w.percentages{v1=50,v2=50,v3=50})" }
    assert.equal(0, r.status)
    assert.equal("2\tv1=34 v2=33 v3=33\n", r.stdout)
  end)

  it("sets arg exactly like lua", function()
    local script = write("args.lua", "print(arg[-1] ~= nil, arg[0], #arg, ...)\nfor i = -2, #arg do io.write(tostring(arg[i]), ';') end print()")
    local mine = run { "-e", "", script, "a", "b c" }
    local lua = proc.run { argv = { "lua5.4", "-e", "", script, "a", "b c" }, timeout = 10 }
    assert.equal(0, mine.status)
    assert.equal(lua.stdout:gsub("lua5%.4", "X"), (mine.stdout:gsub(BIN:gsub("%p", "%%%0"), "X")))
    assert.matches("true\t" .. script:gsub("%p", "%%%0") .. "\t2\ta\tb c", mine.stdout)
  end)

  it("runs a script from stdin with -", function()
    local r = run({ "-", "x" }, { stdin = "print('from stdin', ...)" })
    assert.equal(0, r.status)
    assert.equal("from stdin\tx\n", r.stdout)
  end)

  it("runs stdin when it is not a terminal and no script is given", function()
    local r = run({}, { stdin = "print(1 + 1)" })
    assert.equal(0, r.status)
    assert.equal("2\n", r.stdout)
  end)

  it("a missing script is a usage error: message and exit 2", function()
    local r = run { fs.join(tmp, "nope.lua") }
    assert.equal(2, r.status)
    assert.matches("cannot open .*nope%.lua", r.stderr)
  end)

  it("a syntax error names file and line, exit 1", function()
    local script = write("bad.lua", "local x = 1\nx = = 2\n")
    local r = run { script }
    assert.equal(1, r.status)
    assert.matches(script:gsub("%p", "%%%0") .. ":2: unexpected symbol", r.stderr)
  end)

  it("an uncaught error prints file:line: message and a traceback, exit 1", function()
    local script = write("boom.lua", "local function f()\n  error('boom')\nend\nf()\n")
    local r = run { script }
    assert.equal(1, r.status)
    assert.matches("boom%.lua:2: boom", r.stderr)
    assert.matches("stack traceback:", r.stderr)
  end)

  it("honours os.exit(n)", function()
    assert.equal(7, run({ "-e", "os.exit(7)" }).status)
    assert.equal(0, run({ "-e", "os.exit(true)" }).status)
  end)

  it("a refusal exits 2 with its message and no traceback", function()
    local r = run { "-e", "error(require('rollout').refuse('TRAFFIC.yaml:3:5: versions[1].weight: must be an integer'))" }
    assert.equal(2, r.status)
    assert.equal("rollout: TRAFFIC.yaml:3:5: versions[1].weight: must be an integer\n", r.stderr)
  end)

  it("records --target and ROLLOUT_TARGET for the stdlib", function()
    assert.equal("kubernetes\n", run({ "--target", "kubernetes", "-e", "print(require('rollout.sys').target())" }).stdout)
    assert.equal("local\n", run({ "-e", "print(require('rollout.sys').target())" }, { env = { ROLLOUT_TARGET = "local" } }).stdout)
    assert.equal("x\n", run({ "--target=x", "-e", "print(require('rollout.sys').target())" }, { env = { ROLLOUT_TARGET = "local" } }).stdout)
  end)

  it("ROLLOUT_PATH directories come before the stdlib", function()
    local dir = fs.join(tmp, "lib")
    assert(fs.mkdir_p(fs.join(dir, "rollout")))
    assert(fs.write_atomic(fs.join(dir, "rollout", "extra.lua"), "return { hello = 'from ROLLOUT_PATH' }"))
    local r = run({ "-e", "print(require('rollout').extra.hello)" }, { env = { ROLLOUT_PATH = dir } })
    assert.equal("from ROLLOUT_PATH\n", r.stdout)
  end)

  it("bindings live in package.preload, not in globals", function()
    local r = run { "-e", "print(type(package.preload['rollout.yaml']), rawget(_G, 'rollout'), rawget(_G, 'yaml'))" }
    assert.equal("function\tnil\tnil\n", r.stdout)
  end)

  it("refuses a YAML alias bomb and a 10,000-deep JSON array without crashing", function()
    local bomb = { "a: &a [x, x, x, x, x, x, x, x, x]" }
    for i = 2, 9 do
      local prev, cur = string.char(96 + i - 1), string.char(96 + i)
      bomb[#bomb + 1] = string.format("%s: &%s [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]", cur, cur,
        prev, prev, prev, prev, prev, prev, prev, prev, prev)
    end
    local code = string.format([[
      local yaml, json = require "rollout.yaml", require "rollout.json"
      local v, err = yaml.load(%q)
      print(v == nil, err)
      local v2, err2 = json.decode(string.rep("[", 10000) .. string.rep("]", 10000))
      print(v2 == nil, err2)
    ]], table.concat(bomb, "\n"))
    local r = run { "-e", code }
    assert.equal(0, r.status)
    local l1, l2 = r.stdout:match("^([^\n]*)\n([^\n]*)\n$")
    assert.matches("^true\t", l1)
    assert.matches("^true\t.*nesting deeper than 128", l2)
  end)
end)

describe("^C", function()
  local time = require "rollout.time"

  local function start(code)
    local log = fs.join(tmp, "sigint-" .. tostring(time.now()):gsub("%.", "") .. ".log")
    local pid = assert(proc.spawn { argv = { BIN, "-e", code }, log = log })
    return pid, log
  end

  local wait_for = fixture.poll

  it("interrupts running Lua code with 'interrupted'", function()
    local pid, log = start([[io.stderr:write('ready\n') while true do end]])
    finally(function() if proc.alive(pid) then proc.kill(pid, "KILL") end end)
    assert.is_truthy(wait_for(function() return (fs.read(log) or ""):find("ready") end, 5))
    assert(proc.kill(pid, "INT"), fs.read(log))
    assert.is_true(wait_for(function() return not proc.alive(pid) end, 5))
    assert.matches("interrupted", fs.read(log))
  end)

  it("a second ^C ends the process even if the first was caught", function()
    local pid, log = start([[
      local ok, err = pcall(function() io.stderr:write('ready\n') while true do end end)
      io.stderr:write('caught: ', tostring(err), '\n')
      while true do end]])
    finally(function() if proc.alive(pid) then proc.kill(pid, "KILL") end end)
    assert.is_truthy(wait_for(function() return (fs.read(log) or ""):find("ready") end, 5))
    assert(proc.kill(pid, "INT"))
    assert.is_truthy(wait_for(function() return (fs.read(log) or ""):find("caught:") end, 5))
    assert.matches("caught: .*interrupted", fs.read(log))
    assert.is_true(proc.alive(pid))
    assert(proc.kill(pid, "INT"))
    assert.is_true(wait_for(function() return not proc.alive(pid) end, 5))
  end)

  it("a critical section finishes before the interrupt takes effect", function()
    local marker = fs.join(tmp, "critical-done")
    local pid, log = start(string.format([[
      local sys, time, fs = require "rollout.sys", require "rollout.time", require "rollout.fs"
      sys.critical(function()
        io.stderr:write('ready\n')
        local t = time.now() while time.now() - t < 0.5 do end
        fs.write_atomic(%q, "done")
      end)
      io.stderr:write('after\n')]], marker))
    finally(function() if proc.alive(pid) then proc.kill(pid, "KILL") end end)
    assert.is_truthy(wait_for(function() return (fs.read(log) or ""):find("ready") end, 5))
    assert(proc.kill(pid, "INT"))
    assert.is_true(wait_for(function() return not proc.alive(pid) end, 5))
    assert.equal("done", fs.read(marker))
    assert.matches("interrupted", fs.read(log))
    assert.is_nil((fs.read(log)):find("after", 1, true))
  end)
end)

describe("make install", function()
  it("installs a rollout that works outside the source tree", function()
    local prefix = fs.join(tmp, "prefix")
    local root = os.getenv("ROLLOUT_ROOT") or "."
    local r = proc.run { argv = { "make", "-s", "-C", root, "install-files", "PREFIX=" .. prefix,
                                  "BIN=" .. BIN }, timeout = 120 }
    assert(r, "make failed to run")
    assert.equal(0, r.status, r.stderr)
    local installed = fs.join(prefix, "bin", "rollout")
    local out = proc.run { argv = { installed, "-e", "local y = require 'rollout.yaml'; print(y.load('a: 1').a, require('rollout.sys').stdlib)" },
                           cwd = "/", timeout = 10 }
    assert.equal(0, out.status, out.stderr)
    assert.equal("1\t" .. fs.join(prefix, "share", "rollout") .. "\n", out.stdout)
    -- the stdlib, scripts and deployments came along
    assert.is_true(fs.exists(fs.join(prefix, "share", "rollout", "rollout", "verify.lua")))
    assert.is_true(fs.exists(fs.join(prefix, "share", "rollout", "scripts", "run_all.lua")))
    assert.is_true(fs.exists(fs.join(prefix, "share", "rollout", "deployments", "microservice-1", "service.yaml")))
  end)
end)
