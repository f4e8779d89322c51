-- rollout.config: service.yaml parsing and validation (config.parse, on
-- which config.load stands). Cases found by the fuzzer
-- (tests/fuzz/service_config.lua) included.
local config = require "rollout.config"
local errors = require "rollout.errors"

local FILE = "deployments/microservice-1/service.yaml"

local function refusal(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, "expected a refusal")
  assert.is_true(errors.is(err, "refused"), "expected a refusal, got: " .. tostring(err))
  assert.equal(2, err.exit)
  return err.message
end

describe("rollout.config.parse", function()
  it("fills the defaults", function()
    local cfg = config.parse("name: microservice-1\n", FILE, "microservice-1")
    assert.equal(8080, cfg.port)
    assert.equal("/healthz", cfg.health_path)
    assert.equal("x-version", cfg.version_header)
    assert.equal(8080, config.parse("name: microservice-1\nlocal:\n  command: [x]\n", FILE, "microservice-1").port)
    assert.equal(10, config.parse("name: microservice-1\nlocal:\n  command: [x]\n", FILE, "microservice-1")["local"].start_timeout)
    assert.equal("microservice-1", cfg.kubernetes.host)
    local k = config.parse("name: microservice-1\nkubernetes: {}\n", FILE, "microservice-1").kubernetes
    assert.equal("istio", k.routing)
    assert.equal("default", k.namespace)
  end)

  it("reads the shipped service.yaml", function()
    local f = assert(io.open((os.getenv("ROLLOUT_ROOT") or ".") .. "/deployments/microservice-1/service.yaml"))
    local text = f:read("a")
    f:close()
    local cfg = config.parse(text, FILE, "microservice-1")
    assert.equal("{root}/services/microservice-1/microservice-1", cfg["local"].command[1])
  end)

  it("refuses an empty file as a missing name, not with a crash (fuzz finding)", function()
    local empty = FILE .. ': is empty: a service needs at least "name: microservice-1" (and local.command for ' ..
      'the local target); see README, "Service configuration"'
    assert.equal(empty, refusal(config.parse, "", FILE, "microservice-1"))
    assert.equal(empty, refusal(config.parse, "# TODO\n", FILE, "microservice-1"))
    assert.equal(empty, refusal(config.parse, "# TODO\n~\n", FILE, "microservice-1"))
    assert.equal(FILE .. ":1:1: name: is required", refusal(config.parse, "port: 8080\n", FILE, "microservice-1"))
  end)

  it("locates a document that is not a mapping (fuzz finding)", function()
    assert.equal(FILE .. ":1:1: must be a mapping, not the string \"microservice-1\"",
      refusal(config.parse, "microservice-1\n", FILE, "microservice-1"))
    assert.equal(FILE .. ":1:1: must be a mapping, not a list",
      refusal(config.parse, "- name: microservice-1\n", FILE, "microservice-1"))
  end)

  it("refuses an empty item of local.command (fuzz finding)", function()
    -- was accepted with a hole: argv[1] was nil when the version started
    assert.equal(FILE .. ":3:13: local.command[1]: must be a string, not null (an empty item)",
      refusal(config.parse, "name: microservice-1\nlocal:\n  command: [~, a]\n", FILE, "microservice-1"))
    assert.equal(FILE .. ":5:4: local.command[2]: must be a string, not null (an empty item)",
      refusal(config.parse, "name: microservice-1\nlocal:\n  command:\n  - a\n  -\n", FILE, "microservice-1"))
  end)

  it("refuses a name that is not the directory's, at the name", function()
    assert.equal(FILE .. ":2:7: name: is \"other\" but the directory is \"microservice-1\"",
      refusal(config.parse, "port: 1\nname: other\n", FILE, "microservice-1"))
  end)
end)
