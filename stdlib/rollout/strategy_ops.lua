--- rollout.strategy_ops: status, promote, abort, pause, resume, retry, undo
-- and history of strategy runs. It moved to rollout.strategy.ops; this name
-- stays for scripts that use it.
return require "rollout.strategy.ops"
