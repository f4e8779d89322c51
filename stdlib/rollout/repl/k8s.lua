--- rollout.repl.k8s: the REPL's Kubernetes helpers (`rollout -i --target
-- kubernetes`). `require("rollout.repl.k8s")(env [, opts])` defines in env
-- (normally _G):
--
--   k8s              a client of the default kubeconfig ($KUBECONFIG), made on
--                    first use, so a REPL starts without a cluster: an object
--                    whose metatable's __index is a plain table of methods
--                    (every method of rollout.k8s's client, and the module's
--                    functions: k8s.client{...}, k8s.rollout_status(d)), so
--                    tab completion lists them
--   helm             the rollout.helm module
--   svc(name)        rollout.service(name) on the kubernetes target
--   pods([selector]) NAME READY STATUS AGE of the pods (label selector)
--   releases()       RELEASE REVISION STATUS CHART of the Helm releases
--   routes([service]) the routes rollout owns: rule, destination, weight, share
--                    (every VirtualService/HTTPRoute of the namespace without
--                    a service)
--   watch(kind [, selector [, {timeout =, count =}]])
--                    prints the changes of objects of `kind` (label selector)
--                    as compact lines, one per event ("12:01:02 MODIFIED
--                    Pod/web-v1-x (Running, 1/1 ready)"), until ^C (or
--                    `timeout` seconds, or `count` events); it is
--                    k8s:watch(kind, {selector =}, fn) - see rollout.k8s for
--                    the callback: fn(type, object), return true to stop,
--                    errors end the watch and are raised again
--
-- opts (for other clusters, and tests): kubeconfig =, context =, namespace =,
-- helm = {helm =, env =} (extra options of every helm call), out = a file
-- handle the tables are printed to (default io.stdout).
local ui = require "rollout.ui"
local routing = require "rollout.target.kubernetes.routing"
local time = require "rollout.time"
local errors = require "rollout.errors"

local function tbl(x) return type(x) == "table" and x or {} end

-- Seconds since the epoch of an RFC 3339 UTC time ("2026-11-26T20:37:50Z").
local function epoch(ts)
  if type(ts) ~= "string" then return nil end
  local y, mo, d, h, mi, s = ts:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)")
  if not y then return nil end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  -- days from civil (proleptic Gregorian), no time zone involved
  if mo <= 2 then y = y - 1 end
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (mo + (mo > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(s)
end

--- kubectl's age: 42s, 5m, 3h, 12d.
local function age(ts, now)
  local t = epoch(ts)
  if not t then return "?" end
  local s = math.max(0, math.floor((now or time.wall()) - t))
  if s < 120 then return s .. "s" end
  if s < 7200 then return (s // 60) .. "m" end
  if s < 172800 then return (s // 3600) .. "h" end
  return (s // 86400) .. "d"
end

-- A pod's STATUS as kubectl shows it: a waiting/terminated reason, else the phase.
local function pod_status(p)
  if tbl(p.metadata).deletionTimestamp then return "Terminating" end
  local st = tbl(p.status)
  for _, cs in ipairs(tbl(st.containerStatuses)) do
    local w = tbl(tbl(cs.state).waiting)
    if w.reason then return w.reason end
    local t = tbl(tbl(cs.state).terminated)
    if t.reason then return t.reason end
  end
  return st.phase or "Unknown"
end

local function pod_ready(p)
  local st = tbl(p.status)
  local n, ready = 0, 0
  for _, cs in ipairs(tbl(st.containerStatuses)) do
    n = n + 1
    if cs.ready then ready = ready + 1 end
  end
  if n == 0 then n = #tbl(tbl(p.spec).containers) end
  return string.format("%d/%d", ready, n)
end

return function(env, opts)
  env = env or _G
  opts = opts or {}
  local out = opts.out or io.stdout
  local function print_lines(lines)
    for _, l in ipairs(lines) do out:write(l, "\n") end
    out:flush()
  end
  local function say(text) out:write(text, "\n"); out:flush() end

  -- ------------------------------------------------------------ k8s --
  local k8s = require "rollout.k8s"
  local client
  local function connect()
    if client then return client end
    local c, err = k8s.client { kubeconfig = opts.kubeconfig, context = opts.context, namespace = opts.namespace }
    if not c then error("k8s: " .. tostring(err), 0) end
    client = c
    return c
  end
  -- the methods: each connects on first use and calls the client's own
  local proxy = {}
  local methods = {}
  for name, f in pairs(k8s.Client) do
    if type(f) == "function" and name:sub(1, 1) ~= "_" then
      methods[name] = function(self, ...)
        local c = connect()
        if rawequal(self, proxy) then return f(c, ...) end
        return f(self, ...)
      end
    end
  end
  for name, f in pairs(k8s) do
    if type(f) == "function" then methods[name] = f end
  end
  setmetatable(proxy, {
    __index = methods,
    __name = "rollout.k8s.client",
    __tostring = function()
      if not client then return "k8s client (connects on first use)" end
      local ok, ns = pcall(function() return client:namespace() end)
      local okc, ctx = pcall(function() return client:context() end)
      return string.format("k8s client (context %s, namespace %s)", okc and tostring(ctx) or "?",
        ok and tostring(ns) or "?")
    end,
  })
  env.k8s = proxy

  -- ----------------------------------------------------------- helm --
  local helm_ok, helm = pcall(require, "rollout.helm")
  -- ---------------------------------------------------------- watch --
  local function describe_obj(kind, o)
    local st = tbl(o.status)
    if kind == "Pod" then return string.format("%s, %s ready", pod_status(o), pod_ready(o)) end
    if kind == "Deployment" then
      return string.format("%s/%s ready, %s updated", tostring(st.readyReplicas or 0),
        tostring(tbl(o.spec).replicas or 1), tostring(st.updatedReplicas or 0))
    end
    return "resourceVersion " .. tostring(tbl(o.metadata).resourceVersion)
  end
  env.watch = function(kind, selector, limits)
    if type(kind) ~= "string" then error("watch(kind [, selector [, {timeout =, count =}]])", 2) end
    limits = limits or {}
    local c = connect()
    local n = 0
    local ok, err = c:watch(kind, { namespace = opts.namespace, selector = selector, timeout = limits.timeout },
      function(typ, o)
        local md = tbl(o.metadata)
        local k = o.kind or kind
        say(string.format("%s %-8s %s/%s (%s)", os.date("%H:%M:%S"), typ, k,
          (md.namespace and md.namespace ~= c:namespace()) and (md.namespace .. "/" .. tostring(md.name)) or
          tostring(md.name), describe_obj(k, o)))
        n = n + 1
        return limits.count ~= nil and n >= limits.count
      end)
    if not ok then error("watch: " .. tostring(err), 0) end
    return n
  end
  if helm_ok then env.helm = helm end
  local function helm_opts(t)
    for k, v in pairs(opts.helm or {}) do if t[k] == nil then t[k] = v end end
    if opts.kubeconfig and t.kubeconfig == nil then t.kubeconfig = opts.kubeconfig end
    if opts.context and t.kube_context == nil then t.kube_context = opts.context end
    return t
  end

  local function namespace()
    return opts.namespace or connect():namespace()
  end

  -- ------------------------------------------------------------ svc --
  env.svc = function(name)
    return require("rollout").service(name, { target = "kubernetes" })
  end

  -- ----------------------------------------------------------- pods --
  env.pods = function(selector)
    local c = connect()
    local list, err = c:list("Pod", { namespace = namespace(), selector = selector })
    if not list then error("pods: " .. tostring(err), 0) end
    local items = tbl(list.items)
    if #items == 0 then
      say(string.format("  no pods%s in %s", selector and (" matching " .. selector) or "", namespace()))
      return
    end
    local now = time.wall()
    local rows = {}
    for _, p in ipairs(items) do
      rows[#rows + 1] = { tbl(p.metadata).name or "?", pod_ready(p), pod_status(p),
                          age(tbl(p.metadata).creationTimestamp, now) }
    end
    table.sort(rows, function(a, b) return a[1] < b[1] end)
    print_lines(ui.table({ { title = "NAME" }, { title = "READY" }, { title = "STATUS" }, { title = "AGE", right = true } },
      rows))
  end

  -- ------------------------------------------------------- releases --
  env.releases = function()
    if not helm_ok then error("releases: " .. tostring(helm), 0) end
    local ns = opts.namespace or (client and client:namespace()) or nil
    local list, err = helm.list(helm_opts { namespace = ns })
    if not list then error("releases: " .. tostring(err), 0) end
    if #list == 0 then
      say("  no Helm releases" .. (ns and (" in " .. ns) or ""))
      return
    end
    local rows = {}
    for _, r in ipairs(list) do
      rows[#rows + 1] = { r.name, tostring(r.revision), r.status, r.chart }
    end
    table.sort(rows, function(a, b) return a[1] < b[1] end)
    print_lines(ui.table({ { title = "RELEASE" }, { title = "REVISION", right = true }, { title = "STATUS" },
                           { title = "CHART" } }, rows))
  end

  -- --------------------------------------------------------- routes --
  local function route_rows(obj, rows)
    local name = tbl(obj.metadata).name or "?"
    local kind = obj.kind or "?"
    local function add(rule, entries)
      local total = 0
      for _, e in ipairs(entries) do total = total + (e.weight or 0) end
      for _, e in ipairs(entries) do
        local share = #entries == 1 and e.weight == nil and "100.0%" or
          (total > 0 and ui.percent((e.weight or 0) / total) or "0.0%")
        rows[#rows + 1] = { kind .. "/" .. name, rule, e.dest, e.weight == nil and "-" or tostring(e.weight), share }
      end
    end
    if kind == "HTTPRoute" then
      for _, r in ipairs(tbl(tbl(obj.spec).rules)) do
        local conds = {}
        local matches = tbl(r.matches)
        -- a version rule repeats the strategy matches (precedence): its first match says it
        if type(r.name) == "string" and r.name:match("^version%-") then matches = { matches[1] } end
        for _, m in ipairs(matches) do
          for _, h in ipairs(tbl(tbl(m).headers)) do
            local cookies = h.name == "cookie" and h.type == "RegularExpression" and routing.parse_cookie_regex(h.value)
            if cookies then
              for cn, cv in pairs(cookies) do conds[#conds + 1] = string.format("cookie %s=%s", cn, cv) end
            else
              conds[#conds + 1] = string.format("%s: %s", h.name, h.value)
            end
          end
        end
        local entries = {}
        for _, b in ipairs(tbl(r.backendRefs)) do
          entries[#entries + 1] = { dest = "Service " .. tostring(b.name), weight = b.weight }
        end
        add(#conds > 0 and table.concat(conds, ", ") or "default", entries)
      end
    else
      for _, h in ipairs(tbl(tbl(obj.spec).http)) do
        local conds = {}
        for _, m in ipairs(tbl(h.match)) do
          for hname, sm in pairs(tbl(m.headers)) do
            local v = tbl(sm).exact or tbl(sm).prefix or tbl(sm).regex or "*"
            local cookies = hname == "cookie" and tbl(sm).regex and routing.parse_cookie_regex(sm.regex)
            if cookies then
              for cn, cv in pairs(cookies) do conds[#conds + 1] = string.format("cookie %s=%s", cn, cv) end
            else
              conds[#conds + 1] = string.format("%s: %s", hname, v)
            end
          end
        end
        table.sort(conds)
        if h.name == "default" and h.directResponse then
          rows[#rows + 1] = { kind .. "/" .. name, "default", string.format("(answers %s: no version has weight)",
            tostring(tbl(h.directResponse).status)), "-", "-" }
        end
        local entries = {}
        for _, d in ipairs(tbl(h.route)) do
          local dest = tbl(d.destination)
          entries[#entries + 1] = { dest = tostring(dest.host) .. (dest.subset and ("/" .. dest.subset) or ""),
                                    weight = d.weight }
        end
        add(#conds > 0 and table.concat(conds, ", ") or "default", entries)
      end
    end
  end

  env.routes = function(service)
    local c = connect()
    local objects = {}
    local ns = namespace()
    if service then
      local ok, cfg = errors.pcall(require("rollout.config").load, service)
      if ok then ns = opts.namespace or cfg.kubernetes.namespace end
      for _, kind in ipairs { "VirtualService", "HTTPRoute" } do
        local obj, err, code = c:get(kind, service, { namespace = ns })
        if obj then
          obj.kind = obj.kind or kind
          objects[#objects + 1] = obj
        elseif code ~= "not_found" then
          error("routes: " .. tostring(err), 0)
        end
      end
    else
      for _, kind in ipairs { "VirtualService", "HTTPRoute" } do
        local list, err, code = c:list(kind, { namespace = ns })
        if list then
          for _, o in ipairs(tbl(list.items)) do
            o.kind = o.kind or kind
            objects[#objects + 1] = o
          end
        elseif code ~= "not_found" then
          error("routes: " .. tostring(err), 0)
        end
      end
    end
    if #objects == 0 then
      say(string.format("  no routes%s in %s", service and (" for " .. service) or "", ns))
      return
    end
    local rows = {}
    for _, o in ipairs(objects) do route_rows(o, rows) end
    print_lines(ui.table({ { title = "ROUTE" }, { title = "MATCH" }, { title = "DESTINATION" },
                           { title = "WEIGHT", right = true }, { title = "SHARE", right = true } }, rows))
  end

  return env
end
