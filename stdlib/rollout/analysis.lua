--- rollout.analysis: metrics, measurements and their verdicts. It
-- moved to rollout.strategy.analysis; this name stays for scripts that use it.
return require "rollout.strategy.analysis"
