-- The custom strategy of README's guide ("Write your own"), run as written:
-- the block between the markers is extracted and run against real demo
-- processes behind HAProxy, once promoted, once aborted by its own metric.
local fs = require "rollout.fs"
local json = require "rollout.json"
local local_env = require "tests.helpers.local_env"

local SVC = local_env.service

local function guide_script()
  local readme = assert(fs.read(fs.join(local_env.root, "README.md")))
  local block = readme:match("<!%-%- begin custom strategy %-%->%s*```lua\n(.-)```%s*<!%-%- end custom strategy %-%->")
  assert(block, "README has no custom strategy block between the markers")
  return block
end

describe("README's custom strategy", function()
  local env, script
  before_each(function()
    env = local_env.new()
    for _, v in ipairs { "v1", "v2", "v3" } do assert.equal(0, env:ops("start", SVC, v).status) end
    assert.equal(0, env:lua([[require("rollout").service("microservice-1"):set_weights { v1 = 70, v2 = 30 }]]).status)
    script = fs.join(env.dir, "careful.lua")
    assert(fs.write_atomic(script, guide_script()))
  end)
  after_each(function() env:cleanup() end)

  it("promotes a good version through its steps", function()
    local r = env:rollout { script, SVC, "v3", "--gate=false", "--interval=0.5", "--max-p99-ms=1000", "--json" }
    assert.equal(0, r.status, r.stdout .. r.stderr)
    local doc = json.decode(r.stdout)
    assert.equal("succeeded", doc.phase)
    assert.same({ v1 = 0, v2 = 0, v3 = 100 }, doc.weights)
    assert.matches("Step 3/4: 20%% to v3", r.stderr)
    assert.matches("p99%-limit", r.stderr)
  end)

  it("rolls back on its own metric and tells the team", function()
    local r = env:rollout { script, SVC, "v3", "--gate=false", "--interval=0.5", "--max-p99-ms=0.0001" }
    assert.equal(1, r.status, r.stdout .. r.stderr)
    assert.matches("tell the team: v3 was rolled back: ", r.stderr)
    assert.matches("%[metric p99%-limit, step 1%]", r.stdout)
    local st = env:state_json()
    assert.equal(70, st.versions.v1.weight)
    assert.equal(0, st.versions.v3.weight)
  end)

  it("waits at the gate for a person, then goes on", function()
    local proc = require "rollout.proc"
    local log = fs.join(env.dir, "careful.log")
    local pid = assert(proc.spawn { argv = { local_env.bin, script, SVC, "v3", "--interval=0.5", "--max-p99-ms=1000",
                                             "--steps=10,100", "--latency-tolerance=1" }, log = log, env = env.env, cwd = local_env.root })
    env:track(pid)
    assert(local_env.wait(function() return (fs.read(log) or ""):find("waits for a person", 1, true) end, 60),
      fs.read(log))
    local s = json.decode(env:ops("status", SVC, "--json").stdout)
    assert.equal("paused", s.phase)
    assert.equal(10, math.floor(100 * s.weights.v3 / (s.weights.v1 + s.weights.v2 + s.weights.v3) + 0.5))
    assert.equal(0, env:ops("promote", SVC).status)
    assert(local_env.wait(function() return not proc.alive(pid) end, 60), fs.read(log))
    assert.equal("succeeded", json.decode(env:ops("status", SVC, "--json").stdout).phase)
  end)
end)
