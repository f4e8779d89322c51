--- rollout.routes: the routes a strategy owns beside the weights. It
-- moved to rollout.strategy.routes; this name stays for scripts that use it.
return require "rollout.strategy.routes"
