--- rollout.k8s.workloads: Deployments and pods for rollouts, as methods of
-- the k8s client (installed by rollout.k8s).
--
--   k8s.rollout_status(deployment) -> done, message, failed
--       kubectl's rules (kubectl pkg/polymorphichelpers/rollout_status.go,
--       DeploymentStatusViewer.Status): nothing is decided before
--       status.observedGeneration has caught up with metadata.generation;
--       then a Progressing condition with reason ProgressDeadlineExceeded
--       fails; updatedReplicas < spec.replicas, replicas > updatedReplicas
--       (old replicas pending termination) or availableReplicas <
--       updatedReplicas keep waiting; else the rollout is complete.
--   client:pods(selector [, {namespace =, timeout =}]) -> {pod, ...}
--       selector: "app=x,version in (v1,v2)", {app = "x"} or nil (all)
--   client:logs(pod [, {namespace =, container =, tail = N, previous =}])
--       -> text
--   client:wait_rollout(deployment [, {namespace =, timeout = 300}])
--       -> true once k8s.rollout_status says complete
--       -> nil, "deployment NAME: A of R replicas available after Ts; pod
--          P: REASON: latest warning event", "timeout", "Timeout"
--       -> nil, "deployment NAME exceeded its progress deadline; ...",
--          "timeout", "ProgressDeadlineExceeded"
--       -> nil, message, code, raw for API and transport errors ("not_found"
--          when the Deployment does not exist or is deleted meanwhile)
--       It watches the Deployment (a get, then watches from its
--       resourceVersion; a 410 starts over), no polling.
local json = require "rollout.json"
local time = require "rollout.time"
local util = require "rollout.k8s.util"

local workloads = {}

local MAX_PODS_REPORTED = 3
local MAX_DETAIL = 300

local function tbl(x) return type(x) == "table" and x or {} end
local function int(x, def) return math.tointeger(x) or def end

--- See the module header. `deployment` is a Deployment object.
function workloads.rollout_status(d)
  local md, spec, st = tbl(d.metadata), tbl(d.spec), tbl(d.status)
  local name = md.name or "?"
  if int(md.generation, 0) <= int(st.observedGeneration, 0) then
    for _, c in ipairs(tbl(st.conditions)) do
      if type(c) == "table" and c.type == "Progressing" and c.reason == "ProgressDeadlineExceeded" then
        return false, string.format('deployment "%s" exceeded its progress deadline', name), true
      end
    end
    local want = int(spec.replicas, 1) -- the API server defaults spec.replicas to 1
    local updated, replicas, available = int(st.updatedReplicas, 0), int(st.replicas, 0), int(st.availableReplicas, 0)
    if updated < want then
      return false, string.format('Waiting for deployment "%s" rollout to finish: %d out of %d new replicas have been ' ..
        "updated...", name, updated, want)
    end
    if replicas > updated then
      return false, string.format('Waiting for deployment "%s" rollout to finish: %d old replicas are pending ' ..
        "termination...", name, replicas - updated)
    end
    if available < updated then
      return false, string.format('Waiting for deployment "%s" rollout to finish: %d of %d updated replicas are ' ..
        "available...", name, available, updated)
    end
    return true, string.format('deployment "%s" successfully rolled out', name)
  end
  return false, "Waiting for deployment spec update to be observed..."
end

--- A label selector string from {k = v} (sorted by key).
function workloads.selector(t)
  local keys = {}
  for k, v in pairs(t) do
    if type(k) ~= "string" or (type(v) ~= "string" and type(v) ~= "number") then
      error("selector tables map label names to strings", 3)
    end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  local out = {}
  for i, k in ipairs(keys) do out[i] = k .. "=" .. tostring(t[k]) end
  return table.concat(out, ",")
end

-- The Deployment's selector (matchLabels and matchExpressions) as a string.
local function deployment_selector(d)
  local sel = tbl(tbl(d.spec).selector)
  local parts = {}
  if next(tbl(sel.matchLabels)) then parts[1] = workloads.selector(sel.matchLabels) end
  for _, e in ipairs(tbl(sel.matchExpressions)) do
    if type(e) == "table" and type(e.key) == "string" then
      if e.operator == "Exists" then parts[#parts + 1] = e.key
      elseif e.operator == "DoesNotExist" then parts[#parts + 1] = "!" .. e.key
      elseif e.operator == "In" or e.operator == "NotIn" then
        parts[#parts + 1] = string.format("%s %s (%s)", e.key, e.operator == "In" and "in" or "notin",
          table.concat(tbl(e.values), ","))
      end
    end
  end
  return table.concat(parts, ",")
end

local function pod_ready(p)
  for _, c in ipairs(tbl(tbl(p.status).conditions)) do
    if type(c) == "table" and c.type == "Ready" and c.status == "True" then return true end
  end
  return false
end

-- Why a pod is not ready ("ImagePullBackOff", ...) and the message.
local function pod_reason(p)
  local st = tbl(p.status)
  for k = 1, 2 do
    local list = k == 1 and st.initContainerStatuses or st.containerStatuses
    for _, cs in ipairs(tbl(list)) do
      local state = tbl(cs.state)
      local w, t = tbl(state.waiting), tbl(state.terminated)
      if w.reason then return w.reason, w.message end
      if t.reason and not (k == 1 and t.reason == "Completed") then return t.reason, t.message end
      if tbl(state.running).startedAt and cs.ready == false then return "Running, not ready" end
    end
  end
  if st.reason then return st.reason, st.message end
  for _, c in ipairs(tbl(st.conditions)) do
    if type(c) == "table" and c.type == "PodScheduled" and c.status == "False" then return c.reason, c.message end
  end
  return st.phase or "not ready"
end

local function rv_less(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end

-- The most telling Warning event message for pod `name`: the latest
-- (lastTimestamp, then resourceVersion), preferring messages that are not
-- "Error: REASON".
local function pod_event(events, name)
  local best, best_ts, best_rv, best_plain
  for _, e in ipairs(tbl(events and events.items)) do
    local who, msg = tbl(e.involvedObject).name, e.message
    if who == name and type(msg) == "string" and msg ~= "" and (e.type == nil or e.type == "Warning") then
      local ts = e.lastTimestamp or e.eventTime or ""
      local rv = tbl(e.metadata).resourceVersion or ""
      local plain = msg:sub(1, 7) ~= "Error: "
      local later = best_ts == nil or ts > best_ts or (ts == best_ts and rv_less(best_rv, rv))
      if best == nil or (plain and not best_plain) or (plain == best_plain and later) then
        best, best_ts, best_rv, best_plain = msg, ts, rv, plain
      end
    end
  end
  return best
end

function workloads.install(k8s, Client, check)
  k8s.rollout_status = workloads.rollout_status

  function Client:pods(selector, opts)
    check(self)
    if selector ~= nil and type(selector) ~= "string" and type(selector) ~= "table" then
      error("bad argument #2 to 'pods' (selector string, table or nil expected)", 2)
    end
    if type(selector) == "table" then selector = workloads.selector(selector) end
    local list, err, code, raw, st = self:list("pods", { namespace = opts and opts.namespace, selector = selector,
      timeout = opts and opts.timeout })
    if not list then return nil, err, code, raw, st end
    return type(list.items) == "table" and list.items or json.array {}
  end

  function Client:logs(pod, opts)
    check(self)
    if type(pod) ~= "string" or pod == "" then error("bad argument #2 to 'logs' (pod name expected)", 2) end
    if opts ~= nil and type(opts) ~= "table" then error("bad argument #3 to 'logs' (table or nil expected)", 2) end
    opts = opts or {}
    local tail = opts.tail
    if tail ~= nil and (math.type(tail) ~= "integer" or tail < 0) then error("field 'tail' must be an integer >= 0", 2) end
    if opts.container ~= nil and type(opts.container) ~= "string" then error("field 'container' must be a string", 2) end
    local ns, timeout = self:_ns_of(opts), self:_timeout_of(opts)
    local r, err, code, raw = self._disco:resolve("pods")
    if not r then return nil, err, code, raw end
    local kinds = require "rollout.k8s.kinds"
    local q = util.query { { "container", opts.container }, { "previous", opts.previous and "true" or nil },
                           { "tailLines", tail and tostring(tail) or nil } }
    local rq = { method = "GET", path = kinds.path(r, ns, pod, "log"), query = q, accept = "text/plain, */*",
                 timeout = timeout }
    local res, a, b, c = self:_perform(rq)
    if not res then return nil, a, b, c end
    if res.status >= 200 and res.status < 300 then return res.body end
    return require("rollout.k8s.status").error(res.status, res.body, "GET " .. util.redact_url(a))
  end

  -- "deployment NAME: ..." for a rollout that did not complete.
  function Client:_rollout_report(d, name, ns, timeout, deadline)
    local spec, st = tbl(d.spec), tbl(d.status)
    local want, available = int(spec.replicas, 1), int(st.availableReplicas, 0)
    local updated, replicas = int(st.updatedReplicas, 0), int(st.replicas, 0)
    local parts = {}
    local head
    if deadline then
      head = string.format("deployment %s exceeded its progress deadline: %d of %d replicas available", name, available,
        want)
    else
      head = string.format("deployment %s: %d of %d replicas available after %ss", name, available, want,
        string.format("%g", timeout))
    end
    if updated < want or replicas > updated then
      head = head .. string.format(" (%d updated, %d old)", updated, replicas - updated)
    end
    parts[1] = head
    local t = math.min(timeout, 10)
    local pods = self:list("pods", { namespace = ns, selector = deployment_selector(d), timeout = t })
    local events = self:list("events", { namespace = ns, field_selector = "involvedObject.kind=Pod,type=Warning",
      timeout = t })
    local reported = 0
    if pods then
      for _, p in ipairs(tbl(pods.items)) do
        local pname = tbl(p.metadata).name
        if reported < MAX_PODS_REPORTED and pname and not pod_ready(p) and not tbl(p.metadata).deletionTimestamp then
          local reason, msg = pod_reason(p)
          local detail = pod_event(events, pname) or msg
          local line = string.format("pod %s: %s", pname, reason or "not ready")
          if type(detail) == "string" and detail ~= "" then line = line .. ": " .. util.one_line(detail, MAX_DETAIL) end
          parts[#parts + 1] = line
          reported = reported + 1
        end
      end
      if reported == 0 and #tbl(pods.items) == 0 then parts[#parts + 1] = "no pods match its selector" end
    end
    if reported == 0 then -- the Deployment's own failure conditions
      for _, c in ipairs(tbl(st.conditions)) do
        if type(c) == "table" and c.status == "False" and c.type ~= "Available" and type(c.message) == "string" then
          parts[#parts + 1] = util.one_line(c.message, MAX_DETAIL)
        end
      end
    end
    return table.concat(parts, "; ")
  end

  function Client:wait_rollout(name, opts)
    check(self)
    if type(name) ~= "string" or name == "" then
      error("bad argument #2 to 'wait_rollout' (deployment name must not be empty)", 2)
    end
    if opts ~= nil and type(opts) ~= "table" then error("bad argument #3 (table or nil expected)", 2) end
    opts = opts or {}
    local timeout = opts.timeout or 300
    if type(timeout) ~= "number" or not (timeout > 0) then error("field 'timeout' must be a number of seconds > 0", 2) end
    local ns = self:_ns_of(opts)
    local deadline = time.now() + timeout
    while true do
      local left = deadline - time.now()
      local d, err, code, raw, st = self:get("deployments", name, { namespace = ns,
        timeout = math.max(math.min(self._timeout, left), 1) })
      if not d then return nil, err, code, raw, st end
      local last, deleted = d, false
      local done, _, failed = workloads.rollout_status(d)
      local restart = false
      while not restart do
        if done then return true end
        if deleted then
          return nil, string.format("deployment %s was deleted while waiting for it", name), "not_found", "NotFound"
        end
        if failed then
          return nil, self:_rollout_report(last, name, ns, timeout, true), "timeout", "ProgressDeadlineExceeded"
        end
        left = deadline - time.now()
        if left <= 0 then return nil, self:_rollout_report(last, name, ns, timeout, false), "timeout", "Timeout" end
        local started = time.now()
        local ok, werr, wcode, wraw, wst = self:watch("deployments", { namespace = ns,
          field_selector = "metadata.name=" .. name, resource_version = tbl(last.metadata).resourceVersion,
          timeout = left }, function(typ, obj)
            if typ == "DELETED" then
              deleted = true
              return true
            end
            last = obj
            done, _, failed = workloads.rollout_status(obj)
            return done or failed
          end)
        if not ok then
          if wcode == "gone" then
            restart = true -- 410: get the object again
          else
            return nil, werr, wcode, wraw, wst
          end
        elseif not done and not failed and not deleted and time.now() - started < 1 then
          time.sleep(math.min(0.5, math.max(deadline - time.now(), 0))) -- a server that ends watches at once
        end
      end
    end
  end
end

return workloads
