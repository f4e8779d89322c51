--- rollout.istio: the routing objects the Kubernetes target renders. It
-- moved to rollout.target.kubernetes.routing; this name stays for scripts
-- that use it.
return require "rollout.target.kubernetes.routing"
