--- Fuzz check for service.yaml validation: rollout.config.parse (the
-- schema in stdlib/rollout/config.lua on rollout.schema). Accepted or
-- refused (a rollout.errors refusal, exit 2, naming the file, and
-- file:line:col when the text is YAML that loads) are both fine; any other
-- error is a finding. What is accepted must hold the schema's promises.
local config = require "rollout.config"
local errors = require "rollout.errors"
local weights = require "rollout.weights"

local F = require "fuzz_common"

local NAME = "deployments/microservice-1/service.yaml"
local SERVICE = "microservice-1"

local function expect(cond, what)
  if not cond then error("accepted config: " .. what, 2) end
end

-- What the schema promises of an accepted config. Defaults are filled for
-- the fields of sections that are present (an absent section is {}: the
-- targets fall back themselves), so the fields of local and kubernetes are
-- checked when they are there.
local function check_cfg(cfg)
  expect(cfg.name == SERVICE, "name")
  expect(math.type(cfg.port) == "integer" and cfg.port >= 1 and cfg.port <= 65535, "port")
  for _, f in ipairs { "health_path", "probe_path" } do
    expect(type(cfg[f]) == "string" and cfg[f]:sub(1, 1) == "/" and not cfg[f]:find("[%s\"'#]"), f)
  end
  expect(type(cfg.version_header) == "string" and cfg.version_header:match("^[%w][%w-]*$"), "version_header")
  expect(type(cfg.version_field) == "string" and #cfg.version_field > 0, "version_field")
  expect(cfg.target == nil or cfg.target == "local" or cfg.target == "kubernetes", "target")
  local lc = cfg["local"]
  expect(type(lc) == "table", "local")
  if lc.command ~= nil then
    expect(type(lc.command) == "table" and #lc.command >= 1, "local.command")
    for _, a in ipairs(lc.command) do expect(type(a) == "string" and #a > 0, "local.command item") end
  end
  for k, v in pairs(lc.env or {}) do expect(type(k) == "string" and type(v) == "string", "local.env entry") end
  local gp, st = lc.gateway_port, lc.start_timeout
  expect(gp == nil or (math.type(gp) == "integer" and gp >= 0 and gp <= 65535), "gateway_port")
  expect(st == nil or (type(st) == "number" and st >= 0.1 and st <= 600), "start_timeout")
  local kc = cfg.kubernetes
  expect(type(kc) == "table" and type(kc.host) == "string", "kubernetes.host")
  expect(kc.namespace == nil or weights.is_name(kc.namespace), "kubernetes.namespace")
  expect(kc.replicas == nil or (math.type(kc.replicas) == "integer" and kc.replicas >= 0 and kc.replicas <= 1000), "replicas")
  expect(kc.routing == nil or kc.routing == "istio" or kc.routing == "gateway-api", "routing")
  expect(kc.image == nil or type(kc.image) == "table", "image")
  local wt = kc.wait_timeout
  expect(wt == nil or (type(wt) == "number" and wt >= 1 and wt <= 3600), "wait_timeout")
  -- every value of rollout.defaults, a finite number >= 0
  expect(type(cfg.defaults) == "table", "defaults")
  for k, v in pairs(require "rollout.defaults") do
    if type(v) == "number" then
      local x = cfg.defaults[k]
      expect(type(x) == "number" and x == x and x >= 0 and x < math.huge, "defaults." .. k)
    end
  end
end

return function(data)
  local ok, cfg = xpcall(config.parse, errors.traceback, data, NAME, SERVICE)
  if not ok then
    F.check_refusal(cfg, NAME, data)
    return
  end
  check_cfg(cfg)
end
