--- rollout.defaults: the built-in timeouts, sample sizes and pacing of
-- the service checks and the targets, in one place (the statistics of a
-- verdict are rollout.verify.defaults). A service changes them in its
-- service.yaml, `defaults:` (checked by rollout.config, file:line errors;
-- README, "Service configuration"); start_timeout, api_timeout and
-- wait_timeout are set where they apply, as local.start_timeout and
-- kubernetes.api_timeout / kubernetes.wait_timeout. Times are in seconds.
--
--   local d = require("rollout.defaults").of(cfg)   -- a service's values
--   d.probe_timeout
local defaults = {
  -- probes (svc:probe and the checks on it)
  probe_concurrency = 32,     -- connections a probe keeps open
  probe_timeout = 2,          -- one request
  probe_deadline = 120,       -- a whole probe
  -- after a weight change (svc:confirm)
  confirm_requests = 200,     -- requests per confirming sample
  confirm_timeout = 10,       -- until the new weights must be in effect
  confirm_pause = 0.05,       -- between two confirming samples
  unavailable_requests = 200, -- requests of svc:check_unavailable
  -- the local target
  start_timeout = 10,         -- local.start_timeout: a new version answers its health path
  health_timeout = 1,         -- one health-path request
  routable_timeout = 10,      -- the gateway routes to a new version
  stop_timeout = 5,           -- a stopped process exits before SIGKILL
  gateway_timeout = 10,       -- HAProxy starts or reloads
  gateway_lock_timeout = 30,  -- another rollout's change of the gateway ends
  -- the kubernetes target
  api_timeout = 30,           -- kubernetes.api_timeout: one API request
  exec_timeout = 10,          -- a kubeconfig exec credential plugin (at most api_timeout)
  wait_timeout = 300,         -- kubernetes.wait_timeout: a release rolls out
  remove_timeout = 120,       -- remove: the pods are gone (at most wait_timeout)
}

--- The values of a loaded service config (rollout.config.load): its
-- `defaults:` over the built-in ones. Without a config, the built-in ones.
function defaults.of(cfg)
  return type(cfg) == "table" and type(cfg.defaults) == "table" and cfg.defaults or defaults
end

return defaults
