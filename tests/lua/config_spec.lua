-- rollout.config: service.yaml parsing and validation (config.parse, on
-- which config.load stands). Cases found by the fuzzer
-- (tests/fuzz/service_config.lua) included.
local config = require "rollout.config"

local FILE = "deployments/microservice-1/service.yaml"

local refusal = require("tests.helpers.check").refusal

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

  it("gives every value of rollout.defaults, service.yaml's defaults: over the built-in ones", function()
    local defaults = require "rollout.defaults"
    local cfg = config.parse("name: microservice-1\n", FILE, "microservice-1")
    for k, v in pairs(defaults) do
      if type(v) == "number" then assert.equal(v, cfg.defaults[k], k) end
    end
    assert.is_true(rawequal(cfg.defaults, defaults.of(cfg)))
    assert.is_true(rawequal(defaults, defaults.of(nil)))
    cfg = config.parse("name: microservice-1\ndefaults:\n  probe_timeout: 5\n  confirm_requests: 400\n" ..
      "local:\n  start_timeout: 20\nkubernetes:\n  wait_timeout: 60\n", FILE, "microservice-1")
    assert.equal(5, cfg.defaults.probe_timeout)
    assert.equal(400, cfg.defaults.confirm_requests)
    assert.equal(defaults.probe_concurrency, cfg.defaults.probe_concurrency)
    -- the three that have a home of their own are read from it
    assert.equal(20, cfg.defaults.start_timeout)
    assert.equal(60, cfg.defaults.wait_timeout)
    assert.equal(defaults.api_timeout, cfg.defaults.api_timeout)
  end)

  it("refuses a bad defaults: entry at its line, naming the field", function()
    assert.matches("^" .. FILE:gsub("%p", "%%%0") .. ":3:17: defaults%.probe_timout: unknown field %(known: " ..
      "confirm_pause, ", refusal(config.parse, "name: microservice-1\ndefaults:\n  probe_timout: 5\n", FILE,
      "microservice-1"))
    assert.equal(FILE .. ":3:21: defaults.confirm_requests: must be >= 10 (got 2)",
      refusal(config.parse, "name: microservice-1\ndefaults:\n  confirm_requests: 2\n", FILE, "microservice-1"))
    assert.equal(FILE .. ":3:17: defaults.stop_timeout: must be a finite number, not NaN (not a number)",
      refusal(config.parse, "name: microservice-1\ndefaults:\n  stop_timeout: .nan\n", FILE, "microservice-1"))
    assert.equal(FILE .. ":3:18: defaults.start_timeout: unknown field (known: confirm_pause, confirm_requests, " ..
      "confirm_timeout, exec_timeout, gateway_lock_timeout, gateway_timeout, health_timeout, probe_concurrency, " ..
      "probe_deadline, probe_timeout, remove_timeout, routable_timeout, stop_timeout, unavailable_requests)",
      refusal(config.parse, "name: microservice-1\ndefaults:\n  start_timeout: 5\n", FILE, "microservice-1"))
  end)

  it("refuses a name that is not the directory's, at the name", function()
    assert.equal(FILE .. ":2:7: name: is \"other\" but the directory is \"microservice-1\"",
      refusal(config.parse, "port: 1\nname: other\n", FILE, "microservice-1"))
  end)
end)
