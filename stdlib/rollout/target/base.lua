--- rollout.target.base: the target interface, and what every target shares.
--
-- A target is where a service's versions run: rollout.target.local
-- (processes behind HAProxy) or rollout.target.kubernetes (Helm releases
-- behind Istio or Gateway API routes). rollout.service opens one per
-- service and forwards the interface to it (service.target_methods); a
-- script talks to the service, never to its target.
--
-- The interface (every target):
--   deploy(version, {restart=})        running, weight 0 (a weight it had is
--                                      kept); idempotent for a healthy one
--   set_weights(w, {write=, source=})  validate -> persist -> apply -> confirm;
--                                      -> {previous, weights, traffic[, applied]}
--   traffic()                          TRAFFIC.yaml: list (file order), text
--   versions()                         {name, weight, share, ready, gateway, ...}
--   health([version])                  {version, ok, detail, ...}: process or
--                                      pods, health path, routing
--   endpoint()                         the URL checks probe (or nil)
--   gateway_weights()                  the weights the gateway or route holds
--   remove_version(version, {force=})  drained first with force; -> {name, ...}
--   remove()                           every version, route and state
--   leftovers()                        what is left of the service (a list)
--   lock_file                          the service lock (svc:lock())
-- Optional (rollout.service refuses or falls back when a target has none):
--   set_routes(routes), routes()       strategy-owned routes (rollout.strategy.routes)
--   drift(), repair()                  where TRAFFIC.yaml, state and gateway
--                                      disagree, and bringing them together
--   exporter()                         the gateway's Prometheus exporter
--   gateway_counters()                 responses and 5xx per version of the
--                                      weighted route, as the gateway counts them
--
-- A target is made with base.new and a class from base.class, and shares
-- two flows, the same on both targets:
--   base.set_weights: normalize -> lock -> check (deployed, ready; not all
--     0) -> merge into TRAFFIC.yaml's list -> commit (the target's
--     transaction, a function it passes) -> result;
--   base.remove_version: deployed? no strategy route names it? drained
--     first (with force) -> removed from the target (a function it passes)
--     -> its TRAFFIC.yaml entry goes;
-- and inherits check_weights and traffic. For them a target provides:
--   locked(fn)                fn(arg) under the service lock
--   view(arg)                 what the decisions need, read under the lock
--                             (arg: what locked passed): a table with
--                             deployed = {v = truthy}, names = the deployed
--                             versions sorted, weights = {v = weight
--                             applied}, routes = the strategy routes
--   unready(view, version)    nil, or why a deployed version cannot take
--                             weight ("is not healthy (...)")
local fs = require "rollout.fs"
local errors = require "rollout.errors"
local config = require "rollout.config"
local traffic = require "rollout.traffic"
local state = require "rollout.state"

local base = {}

--- The methods targets inherit (see the header).
local Target = {}
base.Target = Target

--- A target object of `class` (whose __index leads to base.Target) for a
-- loaded service config: cfg, name, opts, target (its name), state_dir,
-- dir (the service's directory there) and lock_file.
function base.new(class, kind, cfg, opts)
  local t = setmetatable({ cfg = cfg, name = cfg.name, opts = opts or {}, target = kind }, class)
  t.state_dir = config.state_dir()
  t.dir = fs.join(t.state_dir, "services", cfg.name)
  t.lock_file = fs.join(t.dir, "lock")
  return t
end

--- A class for a target: its methods first, then base.Target's.
function base.class()
  local class = setmetatable({}, { __index = Target })
  class.__index = class
  return class
end

-- ------------------------------------------------------------- helpers --

--- The sorted keys of a table.
function base.sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

--- "v1=50 v2=0" for `map`, over `names` (default: its keys, sorted; a
-- name missing from the map shows 0).
function base.weights_text(map, names)
  local parts = {}
  for _, v in ipairs(names or base.sorted_keys(map or {})) do
    parts[#parts + 1] = v .. "=" .. tostring((map or {})[v] or 0)
  end
  return table.concat(parts, " ")
end

--- "v1, v2", or "none".
function base.names_text(names)
  return #names > 0 and table.concat(names, ", ") or "none"
end

-- ------------------------------------------------------------- weights --

--- Runs fn(...) holding the service lock (re-entrant within one call chain).
function Target:with_lock(fn, ...)
  return state.with_lock(self.lock_file, self.name, self.opts.wait, fn, ...)
end

--- The desired weights: TRAFFIC.yaml as a list (file order) and its bytes.
function Target:traffic()
  return traffic.load(self.cfg.traffic_file)
end

--- Checks a new weight list against what runs (`view`, see the header):
-- a positive weight needs a deployed version that can take it, and not
-- every weight may be 0. Raises a refusal naming `source` and the version;
-- returns the weights of every deployed version ({v = weight}, 0 when the
-- list does not name it).
function Target:check_weights(list, view, source)
  local map, any = {}, false
  for _, v in ipairs(view.names) do map[v] = 0 end
  for _, e in ipairs(list) do
    if e.weight > 0 then
      any = true
      local why = not view.deployed[e.name] and ("is not deployed (deployed: " .. base.names_text(view.names) .. ")")
        or self:unready(view, e.name)
      if why then
        errors.refuse(string.format("%s: version %s has weight %d but %s", source, e.name, e.weight, why))
      end
    end
    if view.deployed[e.name] then map[e.name] = e.weight end
  end
  if not any then
    errors.refuse(source .. ": all weights are 0: at least one version must receive traffic")
  end
  return map
end

--- The flow of a target's set_weights(w, opts): validate → commit (write
-- TRAFFIC.yaml, apply to the gateway or route, confirm it holds them).
-- `w` is {v1 = 50, ...} or a TRAFFIC-style list; deployed versions not named
-- get 0. On invalid input nothing changes (refusal, exit 2). opts.source
-- names the input in messages; opts.write = false is for commit: apply
-- without writing TRAFFIC.yaml. commit(view, map, previous, new_list,
-- old_text) makes the change whole or not at all and returns what the
-- target reports in effect (or nothing). Returns { previous = {..},
-- weights = {..} (every deployed version), traffic = (TRAFFIC.yaml's new
-- list), applied = (commit's answer) }.
function base.set_weights(t, w, opts, commit)
  opts = opts or {}
  local source = opts.source or "weights"
  local list = traffic.normalize(w, source)
  return t:locked(function(arg)
    local view = t:view(arg)
    local map = t:check_weights(list, view, source)
    local previous = {}
    for v, x in pairs(view.weights) do previous[v] = x end
    local old_list, old_text = t:traffic()
    local new_list = traffic.merge(old_list, list, function(v) return view.deployed[v] ~= nil end, view.names)
    local applied = commit(view, map, previous, new_list, old_text)
    return { previous = previous, weights = map, traffic = new_list, applied = applied }
  end)
end

-- ------------------------------------------------------------- removal --

--- The flow of a target's remove_version(version, opts): refused when the
-- version is not deployed, when a strategy route sends requests to it, or
-- while it has weight unless opts.force (then it is drained first, if
-- another version can take its traffic); then remove(view) takes it off
-- the target and returns the result, and its TRAFFIC.yaml entry goes.
function base.remove_version(t, version, opts, remove)
  opts = opts or {}
  return t:locked(function(arg)
    local view = t:view(arg)
    if not view.deployed[version] then
      errors.refuse(string.format("%s has no version %s (deployed: %s)", t.name, version,
        base.names_text(view.names)))
    end
    for _, r in ipairs(view.routes or {}) do
      if r.version == version then
        local what = require("rollout.strategy.routes").describe({ r })[1]:gsub("^[^:]*: ", "")
        errors.refuse(string.format("%s is the version of route %s (%s): change or clear the routes first " ..
          "(set_routes)", version, r.name, what))
      end
    end
    local weight = view.weights[version] or 0
    if weight > 0 then
      if not opts.force then
        errors.refuse(string.format("%s still has weight %d: set it to 0 first (or force)", version, weight))
      end
      local rest, others = {}, 0
      for _, v in ipairs(view.names) do
        if v ~= version then
          rest[v] = view.weights[v] or 0
          others = others + rest[v]
        end
      end
      if others == 0 then
        errors.refuse(string.format("%s is the last version of %s serving traffic: give another version " ..
          "weight first (update_traffic or set_weights), then delete it", version, t.name))
      end
      rest[version] = 0
      t:set_weights(rest)
      view = t:view()
    end
    local res = remove(view)
    local list = t:traffic()
    local kept = {}
    for _, e in ipairs(list) do if e.name ~= version then kept[#kept + 1] = e end end
    if #kept ~= #list then traffic.save(t.cfg.traffic_file, kept) end
    return res
  end)
end

return base
