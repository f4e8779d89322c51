--- rollout.config: where things are, and deployments/<service>/service.yaml.
--
-- The deployments directory is $ROLLOUT_DEPLOYMENTS, else ./deployments when
-- it exists, else the one shipped next to the stdlib (source tree or
-- $(PREFIX)/share/rollout). State lives in $ROLLOUT_STATE_DIR, else .rollout/
-- beside the deployments directory.
local fs = require "rollout.fs"
local sys = require "rollout.sys"
local yaml = require "rollout.yaml"
local weights = require "rollout.weights"
local errors = require "rollout.errors"
local S = require "rollout.schema"
local D = require "rollout.defaults"

local config = {}

function config.deployments_dir()
  local env = os.getenv("ROLLOUT_DEPLOYMENTS")
  if env and env ~= "" then return fs.realpath(env) or env end
  if fs.exists("deployments") then return fs.realpath("deployments") end
  return fs.join(sys.root or ".", "deployments")
end

--- The project directory: the parent of the deployments directory.
function config.project_dir()
  return fs.dirname(config.deployments_dir())
end

-- `path` absolute, with the symbolic links of its existing part resolved,
-- so that the same directory is always named the same way (HAProxy is found
-- again by the config path on its command line).
local function canonical(path)
  local real = fs.realpath(path)
  if real then return real end
  local parent, base = fs.dirname(path), fs.basename(path)
  if parent == path or base == "." or base == ".." then return path end
  return fs.join(canonical(parent), base)
end

function config.state_dir()
  local env = os.getenv("ROLLOUT_STATE_DIR")
  if env and env ~= "" then return canonical(env) end
  return canonical(fs.join(config.project_dir(), ".rollout"))
end

--- Refuses a service name that is not a DNS-1123 label: names reach paths,
-- manifests and command lines.
function config.check_name(name, what)
  if type(name) ~= "string" or not weights.is_name(name) then
    errors.refuse(string.format("%s name %s is not a DNS-1123 label (a-z, 0-9 and '-', at most 63)",
      what or "service", type(name) == "string" and string.format("%q", name) or tostring(name)))
  end
  return name
end

function config.service_dir(service)
  return fs.join(config.deployments_dir(), config.check_name(service))
end

local function dns_label(v)
  if weights.is_name(v) then return true end
  return false, string.format("%q is not a DNS-1123 label", v)
end

local function http_path(v)
  if v:sub(1, 1) == "/" and not v:find("[%s\"'#]") then return true end
  return false, string.format("must be a path starting with '/' without spaces or quotes (got %q)", v)
end

local function header_name(v)
  if v:match("^[A-Za-z0-9][A-Za-z0-9-]*$") then return true end
  return false, string.format("%q is not an HTTP header name", v)
end

local function nonempty(v)
  if #v > 0 then return true end
  return false, "must not be empty"
end

config.spec = S.object {
  fields = {
    name = S.string { required = true, check = dns_label },
    port = S.integer { min = 1, max = 65535, default = 8080 },
    health_path = S.string { default = "/healthz", check = http_path },
    probe_path = S.string { default = "/api/version", check = http_path },
    version_header = S.string { default = "x-version", check = header_name },
    version_field = S.string { default = "version", check = nonempty },
    served_by_header = S.string { default = "X-Served-By", check = header_name },
    target = S.string { one_of = { "local", "kubernetes" } },
    -- where the Prometheus of rollout.metrics.prometheus is and how to ask
    -- it (secrets only from files or the environment, never here)
    prometheus = S.object {
      default = {},
      fields = {
        url = S.string { check = function(v)
          if v:match("^https?://[^/@]+") and not v:match("^%a+://[^/]*@") then return true end
          return false, "must be an http(s) URL without credentials (got a value that is not)"
        end },
        timeout = S.number { min = 0.1, max = 600 },
        retries = S.integer { min = 0, max = 20 },
        max_retry_wait = S.number { min = 0, max = 3600 },
        bearer_token_file = S.string { check = nonempty },
        username = S.string { check = nonempty },
        password_file = S.string { check = nonempty },
        ca_file = S.string { check = nonempty },
        insecure_skip_verify = S.boolean {},
        scrape_interval = S.number { min = 0.1, max = 3600 },
        window = S.string { check = function(v)
          if v:match("^%d+[smhd]$") or v:match("^%d+ms$") then return true end
          return false, string.format("must be a Prometheus duration like 30s or 1m (got %q)", v)
        end },
        success_rate = S.number { min = 0, max = 1 },
        max_duration_ms = S.number { min = 0.001 },
      },
    },
    -- parameters of the strategies; checked by rollout.strategy against
    -- each strategy's own (file:line:col in its messages)
    strategy = S.any {},
    -- rollout.defaults for this service (start_timeout, api_timeout and
    -- wait_timeout are set in local: and kubernetes:)
    defaults = S.object {
      default = {},
      fields = {
        probe_concurrency = S.integer { min = 1, max = 1024 },
        probe_timeout = S.number { min = 0.01, max = 600 },
        probe_deadline = S.number { min = 0.1, max = 86400 },
        confirm_requests = S.integer { min = 10, max = 1000000 },
        confirm_timeout = S.number { min = 0.1, max = 3600 },
        confirm_pause = S.number { min = 0, max = 60 },
        unavailable_requests = S.integer { min = 1, max = 1000000 },
        health_timeout = S.number { min = 0.01, max = 600 },
        routable_timeout = S.number { min = 0.1, max = 3600 },
        stop_timeout = S.number { min = 0.1, max = 600 },
        gateway_timeout = S.number { min = 0.1, max = 600 },
        gateway_lock_timeout = S.number { min = 0, max = 3600 },
        exec_timeout = S.number { min = 0.1, max = 600 },
        remove_timeout = S.number { min = 0, max = 86400 },
      },
    },
    ["local"] = S.object {
      default = {},
      fields = {
        command = S.list { min = 1, item = S.string { check = nonempty } },
        env = S.map { item = S.string {}, default = {} },
        gateway_port = S.integer { min = 0, max = 65535, default = 0 },
        start_timeout = S.number { min = 0.1, max = 600, default = D.start_timeout },
      },
    },
    kubernetes = S.object {
      default = {},
      fields = {
        namespace = S.string { default = "default", check = dns_label },
        context = S.string {},
        chart = S.string { default = "deployments/chart" },
        image = S.object {
          default = {},
          fields = {
            repository = S.string { default = "ghcr.io/rollout-dev/microservice-1" },
            tag = S.string { default = "{version}" },
            pull_policy = S.string { default = "IfNotPresent", one_of = { "Always", "IfNotPresent", "Never" } },
          },
        },
        replicas = S.integer { min = 0, max = 1000, default = 1 },
        routing = S.string { default = "istio", one_of = { "istio", "gateway-api" } },
        normalize_weights = S.boolean { default = false },
        host = S.string {},
        gateway = S.string {},
        gateway_only = S.boolean { default = false },
        parent_ref = S.string {},
        endpoint = S.string {},
        wait_timeout = S.number { min = 1, max = 3600, default = D.wait_timeout },
        pending_grace = S.number { min = 0, max = 86400 },
        api_timeout = S.number { min = 1, max = 600, default = D.api_timeout },
        values = S.any {},
      },
    },
  },
}

--- The largest service.yaml or TRAFFIC.yaml read (bytes).
config.MAX_FILE = 1024 * 1024

--- The gateway port ROLLOUT_GATEWAY_PORT asks for: nil when unset, else an
-- integer 1..65535 (anything else is refused naming the variable).
function config.gateway_port_env()
  local env = os.getenv("ROLLOUT_GATEWAY_PORT")
  if env == nil or env == "" then return nil end
  local n = env:match("^%s*(%d+)%s*$") and math.tointeger(tonumber(env))
  if not n or n < 1 or n > 65535 then
    errors.refuse(string.format("ROLLOUT_GATEWAY_PORT must be a port number between 1 and 65535 (got %q)", env))
  end
  return n
end

--- The services configured in the deployments directory (those with a
-- service.yaml), sorted.
function config.services()
  local dir = config.deployments_dir()
  local out = {}
  for _, name in ipairs(fs.exists(dir) and (fs.list(dir) or {}) or {}) do
    if weights.is_name(name) and fs.exists(fs.join(dir, name, "service.yaml")) then out[#out + 1] = name end
  end
  table.sort(out)
  return out
end

--- Checks the text of a service.yaml (`file` names it in messages) for the
-- service `service` (its name must match). Returns the config with defaults
-- filled, or raises a refusal (exit 2) naming file, line and field. No file
-- system access: config.load reads the file and adds where things are.
function config.parse(text, file, service)
  local doc, pos = yaml.load(text, { name = file, positions = true })
  if doc == nil then errors.refuse(pos) end
  if doc == yaml.null then
    errors.refuse(string.format("%s: is empty: a service needs at least \"name: %s\" (and local.command for the " ..
      "local target); see README, \"Service configuration\"", file, service), { file = file, field = "name" })
  end
  local cfg = S.check(doc, config.spec, { file = file, pos = pos })
  if cfg.name ~= service then
    S.refuse_at({ file = file, pos = pos }, doc, "name", "name",
      string.format("is %q but the directory is %q", cfg.name, service))
  end
  cfg.kubernetes.host = cfg.kubernetes.host or cfg.name
  -- every value of rollout.defaults, as this service has it
  local d = {}
  for k, v in pairs(D) do if type(v) == "number" then d[k] = v end end
  for k, v in pairs(cfg.defaults) do d[k] = v end
  d.start_timeout = cfg["local"].start_timeout or d.start_timeout
  d.api_timeout = cfg.kubernetes.api_timeout or d.api_timeout
  d.wait_timeout = cfg.kubernetes.wait_timeout or d.wait_timeout
  cfg.defaults = d
  cfg.positions = pos
  return cfg
end

--- Loads and checks deployments/<service>/service.yaml. Raises a refusal
-- (exit 2) naming file, line and field when it is missing or invalid.
function config.load(service)
  config.check_name(service)
  local dir = config.service_dir(service)
  local file = fs.join(dir, "service.yaml")
  local text, err, code = fs.read(file, { max = config.MAX_FILE })
  if not text then
    if code == "not_found" then
      local known = config.services()
      errors.refuse(string.format("%s: no such file: service %q has no configuration in %s%s (services: %s)",
        file, service, config.deployments_dir(), require("rollout.cli").suggest(service, known),
        #known > 0 and table.concat(known, ", ") or "none"))
    end
    errors.refuse(err)
  end
  local cfg = config.parse(text, file, service)
  cfg.dir, cfg.file = dir, file
  cfg.traffic_file = fs.join(dir, "TRAFFIC.yaml")
  cfg.project_dir = config.project_dir()
  return cfg
end

--- Expands {placeholders} in a string: unknown ones are refused.
function config.expand(s, vars, what)
  return (s:gsub("{([%w_]+)}", function(key)
    local v = vars[key]
    if v == nil then
      errors.refuse(string.format("%s: unknown placeholder {%s} in %q", what or "config", key, s))
    end
    return tostring(v)
  end))
end

return config
