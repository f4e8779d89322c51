--- rollout.journal: the durable record of a service's progressive deliveries. It
-- moved to rollout.strategy.journal; this name stays for scripts that use it.
return require "rollout.strategy.journal"
