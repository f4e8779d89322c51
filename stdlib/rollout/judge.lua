--- rollout.judge: the default judge of a progressive-delivery analysis. It
-- moved to rollout.strategy.judge; this name stays for scripts that use it.
return require "rollout.strategy.judge"
