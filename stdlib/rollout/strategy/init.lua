--- rollout.strategy: progressive delivery as a Lua script.
--
--   local strategy = require "rollout.strategy"
--   return strategy.run("canary", { steps = { 5, 25, 100 }, interval = 10, count = 3 }, function(s)
--     for _, percent in ipairs(s.params.steps) do
--       s:step(percent .. "% to " .. s.version, function()
--         s:set_weights(s:with_share(percent))
--         if percent < 100 then s:analyze() end
--       end)
--     end
--     s:promote()
--   end, ...)
--
-- The script takes SERVICE VERSION [--name=value ...]: every parameter can
-- be overridden on the command line (--steps=10,20,50,100 --interval=1) and
-- in service.yaml (`strategy:` — for all strategies, or under the
-- strategy's name). Exit 0 = promoted, 1 = aborted or failed, 2 = refused
-- before any change, 130 = paused by ^C (run the same command to resume).
--
-- The verbs of a run `s`:
--   s:step(title, fn)          a numbered step; a resumed run skips those done
--   s:set_weights(w)           apply, confirm at the gateway, journal it
--   s:with_share(p)            weights giving the new version p% of the traffic,
--                              the other versions their relative weights of before
--   s:analyze([opts])          run the analysis (s.metrics); fail/error aborts,
--                              inconclusive pauses until promote/resume/abort
--   s:pause([reason | {duration =}])   wait for resume (or the duration)
--   s:header_route(name, version, match) / s:clear_route(name)
--   s:promote()                the new version gets all the traffic; done
--   s:abort(reason)            back to exactly the weights and routes of before
--   s:hook(name, fn)           before_step, after_step, on_pause, on_abort, on_promote
--
-- Durable and idempotent: the run lives in the state directory
-- (rollout.strategy.journal), so `ops.lua status/promote/abort/pause/resume` work
-- from another shell, and a killed run resumes where it stopped when the
-- same command runs again. The service is locked for the whole run.
local rollout = require "rollout"
local errors = require "rollout.errors"
local cli = require "rollout.cli"
local ui = require "rollout.ui"
local time = require "rollout.time"
local sys = require "rollout.sys"
local fs = require "rollout.fs"
local json = require "rollout.json"
local journal = require "rollout.strategy.journal"
local analysis = require "rollout.strategy.analysis"

local strategy = {}

-- The parameters every strategy has, with their defaults.
strategy.common = {
  interval = 10.0,        -- seconds between two looks of the analysis
  count = 3,              -- looks per analysis
  initial_delay = -1.0,   -- seconds before the first look of an analysis (-1: one interval,
                          -- so the new weights serve for an interval before they are judged)
  alpha = 0.01,           -- family-wise false-abort rate over the whole run
  max_error_increase = 0.01, -- a canary passes once its error rate is shown at most this much higher
  latency_tolerance = 0.25,  -- latency margin: canary <= (1 + tolerance) x baseline + slack
  latency_slack_ms = 0.1,    -- (set the slack to at least the timer's resolution of your service)
  no_data = "inconclusive",  -- what a look without data counts as
  on_inconclusive = "pause", -- pause | abort | promote
  max_pause = 0.0,           -- seconds a pause waits for a decision; 0 = forever
  baseline = "",             -- versions to compare with (default: those with weight)
  concurrency = require("rollout.defaults").probe_concurrency, -- connections of the active probes
  metrics = "probe",         -- default metrics: probe (the judge), prometheus, or both
}

local Abort = {}   -- the error value of s:abort (already handled)
Abort.__index = Abort
Abort.__tostring = function(a) return "aborted: " .. a.reason end

local Run = {}
Run.__index = Run
Run.__name = "rollout.strategy.run"

-- --------------------------------------------------------------- params --

local function coerce(name, default, value, where)
  local t = type(default)
  if t == "number" then
    local n = tonumber(value)
    if not n or n ~= n or n == math.huge or n == -math.huge then
      errors.refuse(string.format("%s: --%s needs a number (got %q)", where, name, tostring(value)))
    end
    if math.type(default) == "integer" then
      if n ~= math.floor(n) then
        errors.refuse(string.format("%s: --%s needs a whole number (got %q)", where, name, tostring(value)))
      end
      n = math.tointeger(n)
    end
    return n
  elseif t == "boolean" then
    if value == true or value == "true" or value == "1" or value == "yes" then return true end
    if value == false or value == "false" or value == "0" or value == "no" then return false end
    errors.refuse(string.format("%s: --%s needs true or false (got %q)", where, name, tostring(value)))
  elseif t == "table" then
    local list = {}
    if type(value) == "table" then
      list = value
    else
      for item in tostring(value):gmatch("[^,]+") do list[#list + 1] = item end
    end
    local out = {}
    local proto = default[1]
    for i, item in ipairs(list) do
      if type(proto) == "number" then
        local n = tonumber(item)
        if not n or n ~= n then
          errors.refuse(string.format("%s: --%s: item %d is not a number (got %q)", where, name, i, tostring(item)))
        end
        out[i] = math.tointeger(n) or n
      else
        out[i] = tostring(item)
      end
    end
    return out
  end
  return tostring(value)
end

local function param_names(params)
  local names = {}
  for k in pairs(params) do names[#names + 1] = (k:gsub("_", "-")) end
  table.sort(names)
  return names
end

--- The parameters of a run: defaults, then service.yaml's `strategy:`
-- block (its general keys, then those under the strategy's name), then
-- --name=value arguments. Unknown names and bad values are refused.
function strategy.params(name, defaults, cfg, args)
  local p = {}
  for k, v in pairs(strategy.common) do p[k] = v end
  for k, v in pairs(defaults or {}) do p[k] = v end
  local proto = {}
  for k, v in pairs(p) do proto[k] = v end
  local block = cfg and cfg.strategy
  local file = cfg and cfg.file or "service.yaml"
  local ctx = { file = file, pos = cfg and cfg.positions }
  local S = require "rollout.schema"
  if block ~= nil then
    if type(block) ~= "table" then S.refuse_at(ctx, nil, nil, "strategy", "must be a mapping of parameters") end
    -- keys that are another strategy's block (a mapping named like no
    -- parameter) are that strategy's to check
    local function skip(k, v)
      local key = tostring(k):gsub("-", "_")
      return k == name or key == name or (type(v) == "table" and #v == 0 and next(v) ~= nil and proto[key] == nil)
    end
    local function apply(tbl, where, top)
      for k, v in pairs(tbl) do
        if not (top and skip(k, v)) then
          local key = tostring(k):gsub("-", "_")
          if proto[key] == nil then
            S.refuse_at(ctx, tbl, k, where .. "." .. tostring(k), string.format("unknown strategy parameter%s (known: %s)",
              cli.suggest(key, param_names(proto)), table.concat(param_names(proto), ", ")))
          end
          local ok, val = pcall(coerce, k, proto[key], v, where)
          if not ok then S.refuse_at(ctx, tbl, k, where .. "." .. tostring(k), (errors.message(val):gsub("^.-: ", ""))) end
          p[key] = val
        end
      end
    end
    apply(block, "strategy", true)
    local own = block[name] or block[(name:gsub("_", "-"))]
    if own ~= nil then
      if type(own) ~= "table" then S.refuse_at(ctx, block, name, "strategy." .. name, "must be a mapping") end
      apply(own, "strategy." .. name, false)
    end
  end
  for k, v in pairs(args or {}) do
    local key = k:gsub("-", "_")
    if proto[key] == nil then
      errors.refuse(string.format("unknown option --%s%s (the %s strategy has: --%s)", k,
        cli.suggest(key, param_names(proto)), name, table.concat(param_names(proto), ", --")))
    end
    p[key] = coerce(k, proto[key], v, "command line")
  end
  if p.interval <= 0 then errors.refuse("--interval must be > 0 seconds") end
  if p.count < 1 then errors.refuse("--count must be >= 1") end
  if not (p.alpha > 0 and p.alpha < 0.5) then errors.refuse("--alpha must be between 0 and 0.5") end
  if not ({ pause = true, abort = true, promote = true })[p.on_inconclusive] then
    errors.refuse("--on-inconclusive must be pause, abort or promote")
  end
  if not ({ inconclusive = true, fail = true, pass = true })[p.no_data] then
    errors.refuse("--no-data must be inconclusive, fail or pass")
  end
  if not ({ probe = true, prometheus = true, both = true })[p.metrics] then
    errors.refuse("--metrics must be probe, prometheus or both")
  end
  return p
end

-- Splits "SERVICE VERSION --a=b --flag" into positional arguments and a
-- map of options; --json and --report=FILE are the engine's own.
local function split_args(list)
  local pos, opts = {}, {}
  local i = 1
  while i <= #list do
    local a = list[i]
    local k, v = a:match("^%-%-([%w%-_]+)=(.*)$")
    if k then
      opts[k] = v
    elseif a:match("^%-%-[%w%-_]+$") then
      local name = a:sub(3)
      local nxt = list[i + 1]
      if name == "json" or name == "wait" or name == "help" or name == "full" then
        opts[name] = true
      elseif nxt and not nxt:match("^%-%-") then
        opts[name] = nxt
        i = i + 1
      else
        opts[name] = "true"
      end
    elseif a == "--" then
      for j = i + 1, #list do pos[#pos + 1] = list[j] end
      break
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  return pos, opts
end

-- ---------------------------------------------------------------- output --

local function say(s, ...)
  if s.quiet then return end
  ui.print(...)
end

local function weights_text(w)
  local keys = {}
  for k in pairs(w or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. tostring(w[k]) end
  return table.concat(parts, " ")
end
strategy.weights_text = weights_text

local function copy(t)
  if type(t) ~= "table" then return t end
  local o = {}
  for k, v in pairs(t) do o[k] = copy(v) end
  return o
end

local function same_weights(a, b)
  for k, v in pairs(a or {}) do if (b[k] or 0) ~= v then return false end end
  for k, v in pairs(b or {}) do if (a[k] or 0) ~= v then return false end end
  return true
end
strategy.same_weights = same_weights

-- ------------------------------------------------------------ the run --

-- Saves the run (rollout.json) with ^C deferred.
function Run:save()
  journal.save(self.run)
end

function Run:log(entry)
  entry.run = self.run.id
  entry.step = entry.step or self.run.step
  journal.append(self.service.name, entry)
end

--- Registers a hook: before_step(s, n, title), after_step(s, n, title),
-- on_pause(s, reason), on_abort(s, reason), on_promote(s).
function Run:hook(name, fn)
  local known = { before_step = true, after_step = true, on_pause = true, on_abort = true, on_promote = true }
  if not known[name] then errors.refuse("unknown hook " .. tostring(name) .. " (before_step, after_step, " ..
    "on_pause, on_abort, on_promote)") end
  self.hooks[name] = self.hooks[name] or {}
  table.insert(self.hooks[name], fn)
end

function Run:call_hooks(name, ...)
  for _, fn in ipairs(self.hooks[name] or {}) do fn(self, ...) end
end

--- The weights now in effect (every deployed version).
function Run:current_weights()
  local w = {}
  for _, v in ipairs(self.service:versions()) do w[v.name] = v.weight or 0 end
  return w
end

--- Weights that give the new version `percent`% of the traffic and the
-- versions that had weight before the run their relative weights among
-- themselves (integers over a total of 1000). 100 gives everything to the
-- new version; 0 gives back the weights of before.
function Run:with_share(percent)
  if type(percent) ~= "number" or percent < 0 or percent > 100 then
    errors.fail("with_share: percent must be between 0 and 100 (got " .. tostring(percent) .. ")")
  end
  local before = self.run.weights_before
  local out = {}
  for v in pairs(before) do out[v] = 0 end
  if percent >= 100 then
    out[self.version] = 100
    return out
  end
  if percent <= 0 then return copy(before) end
  local total, others = 1000, {}
  local new = math.floor(percent * total / 100 + 0.5)
  local rest = total - new
  local sum = 0
  for v, w in pairs(before) do
    if v ~= self.version and w > 0 then others[v] = w; sum = sum + w end
  end
  if sum == 0 then out[self.version] = 100 return out end
  -- largest remainder, ties by name: exact integers summing to `rest`
  local parts, given = {}, 0
  for v, w in pairs(others) do
    local exact = rest * w / sum
    local base = math.floor(exact)
    parts[#parts + 1] = { v = v, base = base, frac = exact - base }
    given = given + base
  end
  table.sort(parts, function(a, b) if a.frac ~= b.frac then return a.frac > b.frac end return a.v < b.v end)
  for i = 1, rest - given do parts[i].base = parts[i].base + 1 end
  for _, p in ipairs(parts) do out[p.v] = math.tointeger(p.base) end
  out[self.version] = math.tointeger(new)
  return out
end

--- Applies weights (all versions; those not named get 0), confirms them
-- at the gateway and journals the change. The change and its record end
-- whole even on ^C.
function Run:set_weights(w, why)
  local from = self:current_weights()
  local res
  sys.critical(function()
    res = self.service:set_weights(w, { journal = false })
    self.run.weights = copy(res.weights)
    self:save()
    self:log { action = "set_weights", from = from, to = res.weights, why = why or self.run.step_title }
  end)
  local rows, total = {}, 0
  for _, e in ipairs(res.traffic) do total = total + e.weight end
  for _, e in ipairs(res.traffic) do
    rows[#rows + 1] = { name = e.name, weight = e.weight, share = total > 0 and e.weight / total or 0 }
  end
  if not self.quiet then ui.traffic(rows) end
  local ok, last, wrong = self.service:confirm(res.weights)
  if not ok then errors.fail(wrong.message) end
  self:sample_split(last)
  -- what the confirming sample saw, for reports (observed vs expected over time)
  self:log { action = "observed", observed = self.run.observed }
  return res
end

-- Keeps what the confirming sample saw (for reports): observed vs expected.
function Run:sample_split(res)
  if not res then return end
  local per = require("rollout.verify").per_version(res)
  local counts = {}
  for v, e in pairs(per) do counts[v] = e.routed end
  self.run.observed = { t = time.wall(), counts = counts, weights = copy(self.run.weights) }
end

--- Adds (or replaces) a route: requests matching `match` go to `version`
-- (see rollout.strategy.routes). Journalled; removed on abort and at the end.
function Run:header_route(name, version, match)
  local list = {}
  for _, r in ipairs(self.service:routes()) do
    if r.name ~= name then list[#list + 1] = r end
  end
  list[#list + 1] = { name = name, version = version, match = match }
  local from = self.service:routes()
  sys.critical(function()
    local now = self.service:set_routes(list)
    self.run.routes = now
    self:save()
    self:log { action = "route", from = from, to = now, why = "route " .. name .. " to " .. version }
  end)
  for _, line in ipairs(require("rollout.strategy.routes").describe(list)) do say(self, "  route " .. line) end
end

--- Removes the route `name` (all routes when nil).
function Run:clear_route(name)
  local list, from = {}, self.service:routes()
  for _, r in ipairs(from) do
    if name ~= nil and r.name ~= name then list[#list + 1] = r end
  end
  if #list == #from then return end
  sys.critical(function()
    local now = self.service:set_routes(list)
    self.run.routes = now
    self:save()
    self:log { action = "route", from = from, to = now, why = name and ("clear route " .. name) or "clear routes" }
  end)
end

-- ------------------------------------------------------------- control --

-- Records the answer to a control request where the requester reads it.
function Run:answer(req, result, message)
  self.run.answers = self.run.answers or {}
  table.insert(self.run.answers, { id = req.id, action = req.action, result = result, message = message })
  while #self.run.answers > 20 do table.remove(self.run.answers, 1) end
  self:save()
  self:log { action = "control", request = req.action, result = result, why = message, by = req.who }
end

--- Acts on pending control requests. Returns a directive for the caller:
-- nil (go on), "advance" (end this step now), "abort".
function Run:check_control()
  local directive
  for _, req in ipairs(journal.take_requests(self.service.name)) do
    local a = req.action
    if a == "abort" then
      self:answer(req, "ok", "aborting")
      directive = "abort"
      self.abort_reason = "aborted by " .. tostring(req.who)
    elseif a == "pause" then
      if self.run.phase == "paused" then
        self:answer(req, "noop", "already paused at step " .. self.run.step)
      else
        self:answer(req, "ok", "paused at step " .. self.run.step)
        self.pause_requested = "paused by " .. tostring(req.who)
      end
    elseif a == "resume" then
      if self.run.phase ~= "paused" and not self.pause_requested then
        self:answer(req, "noop", "not paused (" .. self.run.phase .. ")")
      else
        self:answer(req, "ok", "resumed at step " .. self.run.step)
        self.pause_requested = nil
        self.resume_requested = true
      end
    elseif a == "promote" then
      if req.full then
        self:answer(req, "ok", "promoting fully from step " .. self.run.step)
        self.full = true
        directive = directive or "advance"
      elseif (req.expect_step and req.expect_step ~= self.run.step) or self.promoted_step == self.run.step then
        -- sent twice (or late): one step per promote of a step
        self:answer(req, "noop", string.format("step %d is already promoted (now at step %d)",
          req.expect_step or self.run.step, self.run.step))
      else
        self:answer(req, "ok", "promoted step " .. self.run.step)
        self.promoted_step = self.run.step
        directive = directive or "advance"
      end
    else
      self:answer(req, "refused", "unknown action " .. tostring(a))
    end
  end
  if directive == "abort" then self:abort(self.abort_reason) end
  if self.pause_requested then
    local why = self.pause_requested
    self.pause_requested = nil
    local d = self:pause(why)
    if d then directive = d end
  end
  return directive
end

--- Waits `seconds`, acting on control requests. Returns false when the
-- current analysis should stop (promote of this step).
function Run:wait(seconds)
  local deadline = time.now() + seconds
  repeat
    if self:check_control() == "advance" then
      self.advance = true
      return false
    end
    local left = deadline - time.now()
    if left > 0 then time.sleep(math.min(0.1, left)) end
  until time.now() >= deadline
  if self:check_control() == "advance" then
    self.advance = true
    return false
  end
  return true
end

--- Pauses the run: phase paused until resume (or promote, or abort) from
-- another shell, or `opts.duration` seconds (a timed pause), or the
-- max_pause parameter. Returns "advance" when promoted while paused.
function Run:pause(opts)
  if type(opts) == "string" then opts = { reason = opts } end
  opts = opts or {}
  local reason = opts.reason or (opts.duration and string.format("pause of %gs", opts.duration)) or "paused"
  local prev = self.run.phase
  self.run.phase, self.run.pause_reason = "paused", reason
  self:save()
  self:log { action = "pause", why = reason }
  self:call_hooks("on_pause", reason)
  if opts.duration then
    say(self, string.format("  paused for %gs: %s", opts.duration, reason))
  else
    say(self, string.format("  paused: %s — resume, promote or abort with: rollout scripts/ops.lua resume|promote|abort %s",
      reason, self.service.name))
  end
  local limit = opts.duration or ((self.params.max_pause or 0) > 0 and self.params.max_pause) or nil
  local until_t = limit and time.now() + limit or math.huge
  local directive
  self.resume_requested = false
  while time.now() < until_t do
    local d = self:check_control()
    if d == "advance" then directive = "advance" break end
    if self.resume_requested then break end
    time.sleep(0.1)
  end
  if not self.resume_requested and directive == nil and limit and not opts.duration then
    -- max_pause ran out without a decision
    self:abort(string.format("no decision within max_pause (%gs) after: %s", limit, reason))
  end
  self.resume_requested = false
  self.run.phase, self.run.pause_reason = prev == "paused" and "progressing" or prev, nil
  self:save()
  self:log { action = "resume", why = directive and "promoted while paused" or "resumed" }
  return directive
end

-- ------------------------------------------------------------- steps --

--- A numbered step. A resumed run skips the steps it finished; the step
-- it stopped in runs again (its weights are applied again, idempotently).
function Run:step(title, fn)
  self.step_counter = self.step_counter + 1
  local n = self.step_counter
  if n < self.run.step then return end -- done before a crash / ^C
  if self.full then return end         -- promote --full skips the rest
  self.run.step, self.run.step_title = n, title
  self:save()
  ui.print("")
  ui.heading(string.format("Step %d%s: %s", n, self.total and ("/" .. self.total) or "", title))
  self:call_hooks("before_step", n, title)
  self:log { action = "step", step = n, why = title, phase = "started" }
  self.advance = false
  fn(self)
  self:call_hooks("after_step", n, title)
  self.run.step = n + 1
  self:save()
  self:log { action = "step", step = n, why = title, phase = "done", weights = copy(self.run.weights), good = true }
end

-- ---------------------------------------------------------- analysis --

--- The versions the canary is compared with: the `baseline` parameter, or
-- those that had weight before the run, with their weights.
function Run:baselines()
  local out = {}
  if self.params.baseline ~= "" then
    for v in tostring(self.params.baseline):gmatch("[^,%s]+") do out[v] = 1 end
    return out
  end
  for v, w in pairs(self.run.weights_before) do
    if v ~= self.version and w > 0 then out[v] = w end
  end
  return out
end

--- The default metrics: the canary's error rate and latency against the
-- baseline, from active probes through the version header; with
-- --metrics=prometheus, rollout.metrics.prometheus's request-success-rate
-- and request-duration instead (both: all four).
function Run:default_metrics()
  local p = self.params
  local delay = p.initial_delay < 0 and p.interval or p.initial_delay
  local prom = p.metrics ~= "probe" and require("rollout.metrics.prometheus").default_metrics(self) or {}
  if p.metrics == "prometheus" then return prom end
  local list = {
    analysis.metric { name = "error-rate", provider = analysis.providers.errors { max_increase = p.max_error_increase },
                      interval = p.interval, count = p.count, initial_delay = delay, no_data = p.no_data },
    analysis.metric { name = "latency", provider = analysis.providers.latency { tolerance = p.latency_tolerance,
                                                                                slack_ms = p.latency_slack_ms },
                      interval = p.interval, count = p.count, initial_delay = delay, no_data = p.no_data },
  }
  for _, m in ipairs(prom) do list[#list + 1] = m end
  return list
end

--- The sequential design of the run (rollout.strategy.judge.design), made at the
-- first analysis: the family-wise false-abort rate `alpha` over every look
-- the run plans (its analysed steps × count, and room for as many again
-- after a pause or a resume) of its judged metrics. A later analysis with
-- more judged metrics is warned about: the stated rate then grows with them.
function Run:make_design(metrics)
  local judged = 0
  for _, m in ipairs(metrics) do if m.judged and not m.dry_run then judged = judged + 1 end end
  if self.design then
    if judged > self.design.metrics then
      ui.warn(string.format("this analysis judges %d metrics, the run's design %d: its false-abort rate is " ..
        "%d/%d of the stated one", judged, self.design.metrics, judged, self.design.metrics))
    end
    return self.design
  end
  local judge = require "rollout.strategy.judge"
  local looks = strategy.planned_looks(self)
  self.design = judge.design { alpha = self.params.alpha, looks = 2 * looks, metrics = math.max(1, judged) }
  self.plan = strategy.plan(self)
  self.requests_per_look = self.plan.requests
  self.run.design = { alpha = self.params.alpha, looks = 2 * looks, metrics = math.max(1, judged),
                      requests = self.requests_per_look }
  self:save()
  if judged > 0 then -- (metrics of absolute thresholds, e.g. Prometheus's, need no probe and no design)
    say(self, string.format("  analysis: %d requests per version per look; %s", self.requests_per_look,
      self.design:describe()))
  end
  return self.design
end

--- Sets the metrics s:analyze() uses (default: s:default_metrics()).
function Run:analysis(metrics)
  self.metrics = metrics
end

--- Runs the analysis. Pass: returns. Fail or error: aborts the run.
-- Inconclusive: on_inconclusive (pause by default: resume runs it again,
-- promote goes on). opts: metrics =, count =, interval =, versions = (what
-- is judged: { canary =, baseline = {v = weight} }).
function Run:analyze(opts)
  opts = opts or {}
  local metrics = opts.metrics or self.metrics or self:default_metrics()
  self:make_design(metrics)
  if opts.count or opts.interval then
    local adjusted = {}
    for i, m in ipairs(metrics) do
      local d = {}
      for k, v in pairs(m) do d[k] = v end
      d.count, d.interval = opts.count or m.count, opts.interval or m.interval
      adjusted[i] = analysis.metric(d)
    end
    metrics = adjusted
  end
  while true do
    if self.advance or self.full then return "promoted" end
    local ctx = self:analysis_context(opts)
    say(self, string.format("  analysis: %s, %d look%s every %gs", self:metric_names(metrics), metrics[1] and
      metrics[1].count or 0, (metrics[1] and metrics[1].count or 0) == 1 and "" or "s", metrics[1] and metrics[1].interval or 0))
    local res = analysis.run(metrics, ctx)
    if res.stopped or self.advance then return "promoted" end
    if res.outcome == "pass" then
      ui.ok(string.format("analysis passed (%s)", self:metric_names(metrics)))
      return "pass"
    end
    -- the reason names the version and what was measured ("v3: error rate
    -- 5.1% vs baseline 0.0% (p=…)"); the metric and step follow
    local why = res.reason or res.outcome
    if why:sub(1, #ctx.canary + 2) ~= ctx.canary .. ": " then why = ctx.canary .. ": " .. why end
    local where = string.format("metric %s, step %d", res.metric or "?", self.run.step)
    if res.outcome == "fail" or res.outcome == "error" then
      self:abort(string.format("%s [%s%s]", why, where, res.outcome == "error" and ": provider errors" or ""))
    end
    -- inconclusive
    why = string.format("%s [%s]", why, where)
    local action = self.params.on_inconclusive
    if action == "abort" then self:abort("inconclusive: " .. why) end
    if action == "promote" then
      ui.warn("analysis inconclusive, going on (on_inconclusive = promote): " .. why)
      return "inconclusive"
    end
    if self:pause("analysis inconclusive: " .. why) == "advance" then return "promoted" end
    -- resumed: analyse again
  end
end

function Run:metric_names(metrics)
  local n = {}
  for _, m in ipairs(metrics) do n[#n + 1] = m.name .. (m.dry_run and " (dry run)" or "") end
  return table.concat(n, ", ")
end

-- What providers read: the service, the versions judged, the sequential
-- design, the shared active sampler, and the run's hooks for waiting and
-- recording.
function Run:analysis_context(opts)
  local canary = opts.canary or self.version
  local baseline = opts.baseline or self:baselines()
  local ctx = {
    service = self.service, canary = canary, baseline = baseline, run = self.run, params = self.params,
    design = self.design, step = self.run.step, vars = self:vars(),
    wait = function(s) return self:wait(s) end,
    record = function(m) self:record(m) end,
  }
  ctx.active = self:sampler(canary, baseline)
  return ctx
end

--- The variables of query templates: service, version (the canary),
-- baseline, interval.
function Run:vars()
  local b = {}
  for v in pairs(self:baselines()) do b[#b + 1] = v end
  table.sort(b)
  return { service = self.service.name, version = self.version, canary = self.version,
           baseline = table.concat(b, "|"), interval = string.format("%ds", math.max(1, math.ceil(self.params.interval))),
           namespace = (self.service.config.kubernetes or {}).namespace or "default" }
end

-- One active sampler per (canary, baseline) for the whole run: its data
-- accumulate over every look, as the sequential design expects.
function Run:sampler(canary, baseline)
  local key = canary .. "|" .. weights_text(baseline)
  self.samplers = self.samplers or {}
  if not self.samplers[key] then
    self.samplers[key] = analysis.sampler { service = self.service, canary = canary, baseline = baseline,
                                            n = self.requests_per_look, concurrency = self.params.concurrency,
                                            canary_headers = self.groups and self.groups.canary_headers,
                                            baseline_default = self.groups ~= nil }
  end
  return self.samplers[key]
end

--- A value as JSON can keep it: NaN and the infinities as the strings
-- "NaN", "+Inf", "-Inf" (as Prometheus writes them), tables copied that
-- way (depth-limited), functions and userdata as their type name.
function strategy.storable(v, depth)
  depth = depth or 0
  local t = type(v)
  if t == "number" then
    if v ~= v then return "NaN" end
    if v == math.huge then return "+Inf" end
    if v == -math.huge then return "-Inf" end
    return v
  elseif t == "table" then
    if depth > 8 then return "(nested too deep)" end
    local mt = getmetatable(v)
    if mt == json.null or v == json.null then return v end
    local o = {}
    for k, x in pairs(v) do
      if type(k) == "string" or math.type(k) == "integer" then o[k] = strategy.storable(x, depth + 1) end
    end
    if type(mt) == "table" and rawget(mt, "__jsontype") then setmetatable(o, mt) end
    return o
  elseif t == "string" or t == "boolean" or t == "nil" then
    return v
  end
  return "(" .. t .. ")"
end

--- Records a measurement: rollout.json keeps the last ones, the journal all.
function Run:record(m)
  local line = string.format("  %s %-12s %s", m.outcome == "pass" and ui.paint("✓", "green")
    or (m.outcome == "fail" or m.outcome == "error") and ui.paint("✗", "red") or ui.paint("·", "yellow"),
    m.metric, m.reason or m.outcome)
  say(self, line)
  local keep = { t = m.t, step = self.run.step, metric = m.metric, outcome = m.outcome, effect = m.effect,
                 value = strategy.storable(m.value), n = m.n, reason = m.reason, query = m.query,
                 p = strategy.storable(m.p), dry_run = m.dry_run, version = m.version,
                 stats = strategy.storable(m.stats), raw = strategy.storable(m.raw) }
  self.run.measurements = self.run.measurements or {}
  table.insert(self.run.measurements, keep)
  while #self.run.measurements > journal.KEEP_MEASUREMENTS do table.remove(self.run.measurements, 1) end
  self.run.looks = (self.run.looks or 0) + 1
  self:save()
  local entry = copy(keep)
  entry.action = "measurement"
  self:log(entry)
end

--- The route match of the `header` and `cookie` parameters ("NAME:VALUE"
-- each, "" for none): requests with either go to the new version.
function Run:match_from_params()
  local match = {}
  local function pair(param, what)
    local v = self.params[param]
    if v == nil or v == "" then return nil end
    local name, value = tostring(v):match("^([^:]+):(.+)$")
    if not name then
      errors.refuse(string.format("--%s must be NAME:VALUE (got %q)", param, tostring(v)))
    end
    return name, value, what
  end
  local hn, hv = pair("header")
  if hn then match[#match + 1] = { headers = { [hn] = hv } } end
  local cn, cv = pair("cookie")
  if cn then match[#match + 1] = { cookies = { [cn] = cv } } end
  if #match == 0 then errors.refuse("give --header=NAME:VALUE or --cookie=NAME:VALUE (or both)") end
  -- the analysis compares what the two groups get: the test group through
  -- the route, the others through the default route
  local h = {}
  if hn then h[hn] = hv else h.Cookie = cn .. "=" .. cv end
  self.groups = { canary_headers = h }
  return match
end

--- After a promotion: waits `delay` seconds (control requests and ^C
-- still work), then removes the versions that had traffic before the run
-- and have none now. -1 keeps them.
function Run:scale_down(delay)
  if delay == nil or delay < 0 then return end
  local old = {}
  for v, w in pairs(self.run.weights_before) do
    if v ~= self.version and w > 0 and (self.run.weights[v] or 0) == 0 then old[#old + 1] = v end
  end
  table.sort(old)
  if #old == 0 then return end
  say(self, string.format("  %s keep%s running for %gs (instant rollback: rollout scripts/ops.lua undo %s)",
    table.concat(old, ", "), #old == 1 and "s" or "", delay, self.service.name))
  self.run.scale_down = { versions = old, at = time.wall() + delay }
  self:save()
  local deadline = time.now() + delay
  while time.now() < deadline do
    journal.take_requests(self.service.name)
    time.sleep(math.min(0.2, math.max(0, deadline - time.now())))
  end
  -- an undo (or anything else) in the meantime gave them traffic: keep them
  local now = self:current_weights()
  for _, v in ipairs(old) do
    if (now[v] or 0) == 0 then
      self.service:remove_version(v)
      self:log { action = "scale_down", why = "removed " .. v .. " after the scale-down delay" }
      ui.ok(string.format("%s removed after the scale-down delay", v))
    end
  end
  self.run.scale_down = nil
  self:save()
end

--- Ends a run that changed no weights for good (e.g. an A/B test kept as
-- it was): the run's routes go, the run succeeded.
function Run:finish(message)
  self:restore_routes()
  self.run.phase, self.run.finished = "succeeded", time.wall()
  self:save()
  self:log { action = "finish", why = message, weights = copy(self.run.weights), good = true }
  journal.clear_requests(self.service.name)
  ui.ok(message)
end

-- --------------------------------------------------------- the ends --

--- Routes back to exactly what they were before the run.
function Run:restore_routes()
  local before = self.run.routes_before or {}
  local now = self.service:routes()
  -- compared as lists (an empty one may come back from JSON as {} or [])
  if json.encode(json.array(copy(now))) ~= json.encode(json.array(copy(before))) then
    local res = self.service:set_routes(before)
    self:log { action = "route", from = now, to = res, why = "restore the routes of before" }
  end
end

--- Aborts: restores exactly the weight vector and the routes of before the
-- run, confirms the weights at the gateway, marks the run aborted, runs
-- on_abort, and ends the run (exit 1). Safe to call more than once.
function Run:abort(reason)
  reason = reason or "aborted"
  if self.aborting then error(setmetatable({ reason = reason }, Abort), 0) end
  self.aborting = true
  ui.fail("aborting: " .. reason)
  local before = self.run.weights_before
  local ok, err = errors.pcall(function()
    sys.critical(function()
      local from = self:current_weights()
      self.run.phase, self.run.abort_reason = "aborted", reason
      self:restore_routes()
      local res = self.service:set_weights(before, { source = "the weights before the run", journal = false })
      self.run.weights = copy(res.weights)
      self:save()
      self:log { action = "abort", from = from, to = before, why = reason, weights = copy(before), good = true }
    end)
    local confirmed, _, wrong = self.service:confirm(before)
    if not confirmed then errors.fail("restoring the weights of before: " .. wrong.message) end
  end)
  if not ok then
    self.run.phase = "failed"
    self.run.abort_reason = reason .. "; the rollback failed: " .. errors.message(err)
    self:save()
    self:log { action = "failed", why = self.run.abort_reason }
    ui.fail(self.run.abort_reason)
  else
    ui.ok(string.format("back to the weights of before: %s (confirmed at the gateway)", weights_text(before)))
  end
  self.run.finished = time.wall()
  self:save()
  journal.clear_requests(self.service.name)
  self:call_hooks("on_abort", reason)
  error(setmetatable({ reason = reason }, Abort), 0)
end

--- Promotes: the new version gets all the traffic (the others stay
-- running at weight 0, for an instant rollback), the run's routes go, the
-- run succeeded.
function Run:promote(weights)
  if self.run.phase == "succeeded" then return end
  self.run.phase = "promoting"
  self:save()
  local target = weights or self:with_share(100)
  if not same_weights(self.run.weights or {}, target) or not same_weights(self:current_weights(), target) then
    ui.print("")
    ui.heading("Promoting " .. self.version)
    self:set_weights(target, "promote")
  end
  self:restore_routes()
  sys.critical(function()
    self.run.phase, self.run.finished = "succeeded", time.wall()
    self:save()
    self:log { action = "promote", to = copy(self.run.weights), weights = copy(self.run.weights), good = true,
               why = "promoted " .. self.version }
  end)
  journal.clear_requests(self.service.name)
  self:call_hooks("on_promote")
  ui.ok(string.format("%s promoted: %s", self.version, weights_text(self.run.weights)))
end

-- ------------------------------------------------------------- run() --

local function usage(name)
  return string.format("usage: rollout scripts/strategies/%s.lua SERVICE VERSION [--name=value ...] " ..
    "[--json] [--wait]", name)
end

local function who_runs(run)
  return string.format("a %s of %s (%s at step %s%s)", run.strategy, run.version, run.phase, tostring(run.step),
    run.step_title and (": " .. run.step_title) or "")
end
strategy.describe_run = who_runs

--- Runs a strategy script: `body(s)` with the verbs above. `name` names
-- the strategy (canary, blue_green, ...), `defaults` its parameters; the
-- rest are the script's arguments (SERVICE VERSION [--name=value ...]).
-- Ends the process (os.exit) unless `strategy.embedded` is set, in which
-- case it returns the exit code and the run.
function strategy.run(name, defaults, body, ...)
  local args = cli.args(...)
  local pos, opts = split_args(args)
  if opts.help then io.stdout:write(usage(name), "\n") os.exit(0) end
  local service_name, version = pos[1], pos[2]
  if not service_name or not version then errors.refuse("needs SERVICE and VERSION\n" .. usage(name)) end
  local json_out, wait = opts.json, opts.wait
  opts.json, opts.wait = nil, nil
  local report_file = opts.report
  opts.report = nil
  if json_out then ui.set_output(io.stderr) end
  require("rollout.config").check_name(version, "version")

  local svc = rollout.service(service_name, { wait = wait })
  local params = strategy.params(name, defaults, svc.config, opts)
  svc:lock(string.format("%s of %s", name, version))

  local s = setmetatable({ service = svc, version = version, params = params, name = name, hooks = {},
                           step_counter = 0, quiet = false }, Run)
  s.total = type(params.steps) == "table" and #params.steps or nil

  -- a run in the state directory: resume it, or refuse to start over it
  local prev = journal.load(service_name)
  local resumed = false
  if journal.active(prev) then
    if prev.strategy ~= name or prev.version ~= version then
      errors.refuse(string.format("%s is in the middle of %s: resume it (rollout scripts/ops.lua resume %s), " ..
        "or abort it (rollout scripts/ops.lua abort %s) first", service_name, who_runs(prev), service_name,
        service_name))
    end
    resumed = true
    s.run = prev
  end

  if not resumed then
    -- refused before any change (exit 2)
    local current = s:current_weights()
    local others = 0
    for v, w in pairs(current) do if v ~= version then others = others + w end end
    if current[version] == nil then
      s.needs_deploy = true
    end
    if others == 0 then
      errors.refuse(string.format("%s: no other version has traffic (%s): nothing to move traffic from " ..
        "(use update_traffic for a first version)", service_name, next(current) and weights_text(current) or "nothing deployed"))
    end
    if params.baseline ~= "" then
      for v in params.baseline:gmatch("[^,%s]+") do
        if current[v] == nil then errors.refuse(string.format("--baseline: %s is not deployed", v)) end
      end
    end
    s.run = {
      id = string.format("%s-%s-%d", os.date("!%Y%m%dT%H%M%S"), name, require("rollout.proc").pid()),
      service = service_name, strategy = name, version = version, target = svc.target_name,
      script = strategy.script_path(), args = args, params = params,
      phase = "progressing", step = 1, weights_before = current, weights = copy(current),
      routes_before = svc:routes(), started = time.wall(), measurements = {}, answers = {}, looks = 0,
    }
    journal.clear_requests(service_name)
  end
  s.run.owner = { pid = require("rollout.proc").pid(), boot = journal.boot_id(), who = journal.who() }
  s.run.params = params
  s.run.phase = s.run.phase == "paused" and "progressing" or s.run.phase
  s.run.pause_reason = nil
  s:save()
  if resumed then
    s:log { action = "resume", why = "the run started again (after a crash or ^C)" }
    ui.heading(string.format("Resuming the %s of %s %s at step %d (weights %s)", name, service_name, version,
      s.run.step, weights_text(s.run.weights)))
  else
    s:log { action = "start", why = string.format("%s of %s", name, version), weights = copy(s.run.weights_before),
            good = true, params = params }
    ui.heading(string.format("%s of %s %s (from %s)", name:gsub("_", "-"):gsub("^%l", string.upper), service_name,
      version, weights_text(s.run.weights_before)))
  end


  local t0 = time.now()
  local ok, err = xpcall(function()
    if s.needs_deploy and s.run.step == 1 then
      say(s, string.format("Deploying %s %s (weight 0)...", service_name, version))
      svc:deploy(version)
    end
    body(s)
    if s.run.phase ~= "succeeded" then s:promote() end
  end, errors.traceback)
  local code
  if ok then
    code = 0
  elseif getmetatable(err) == Abort then
    code = 1
  elseif errors.is_interrupt(err) then
    -- ^C: an orderly pause; every change before it ended whole
    s.run.phase, s.run.pause_reason = "paused", "interrupted (^C)"
    s.run.owner = nil
    s:save()
    s:log { action = "pause", why = "interrupted (^C)" }
    ui.print("")
    ui.fail(string.format("interrupted (^C) at step %d: paused with %s; run the same command (or " ..
      "rollout scripts/ops.lua resume %s) to go on, or abort it", s.run.step, weights_text(s.run.weights),
      service_name))
    code = 130
  else
    -- a step failed (an error, a refusal after changes began, a bug): roll back
    local msg = errors.message(err)
    local aok, aerr = pcall(s.abort, s, string.format("step %d failed: %s", s.run.step, msg))
    if not aok and getmetatable(aerr) ~= Abort then
      io.stderr:write("rollout: ", errors.message(aerr), "\n")
    end
    code = 1
  end
  s.run.duration = (s.run.duration or 0) + (time.now() - t0)
  if code ~= 130 then s.run.owner = nil end
  s:save()
  if report_file or true then
    local rok, rerr = pcall(function() strategy.write_report(s, report_file) end)
    if not rok then io.stderr:write("rollout: cannot write the report: ", errors.message(rerr), "\n") end
  end
  if json_out then
    io.stdout:write(json.encode(strategy.status_doc(s.run), { pretty = true }), "\n")
  end
  svc:unlock()
  if strategy.embedded then return code, s.run end
  os.exit(code)
end

--- The path of the strategy script being run (recorded so that resume and
-- retry can run it again): set by whoever loads it (ops.lua), else the
-- script rollout was started with.
function strategy.script_path()
  local p = strategy.script or (type(arg) == "table" and arg[0]) or nil
  return p and (fs.realpath(p) or p) or nil
end

--- True when `e` is the error value a run's abort raises.
function strategy.is_abort(e) return getmetatable(e) == Abort end

--- A Run for a saved run whose process is gone (what `ops.lua abort`
-- needs to roll it back here).
function strategy.attach(svc, run)
  return setmetatable({ service = svc, version = run.version, params = run.params or {}, name = run.strategy,
                        hooks = {}, step_counter = 0, run = run }, Run)
end

--- The traffic shares (%) at which a run analyses: its `steps` below 100
-- (a canary), else `analyses` looks at 0% (a preview, an A/B group).
function strategy.analysed_steps(s)
  local p = s.params
  local out = {}
  if type(p.steps) == "table" then
    for _, w in ipairs(p.steps) do if w < 100 then out[#out + 1] = w end end
  end
  if #out == 0 then
    for i = 1, math.max(1, p.analyses or 1) do out[i] = 0 end
  end
  return out
end

--- The looks a run plans for (the sequential design): its analysed steps
-- times `count`.
function strategy.planned_looks(s)
  return #strategy.analysed_steps(s) * s.params.count
end

--- Requests per version per look of the active probes (rollout.strategy.judge.plan:
-- a 5%-error canary caught before a weight above 20%, a good one passing
-- within the first step).
function strategy.plan(s)
  local judge = require "rollout.strategy.judge"
  local steps = strategy.analysed_steps(s)
  return judge.plan { steps = steps, intervals = s.params.count, design = s.design,
                      max_increase = s.params.max_error_increase }
end

--- The status of a run as a plain document (ops.lua status --json).
function strategy.status_doc(run)
  if not run then return { phase = "none" } end
  return {
    service = run.service, strategy = run.strategy, version = run.version, phase = run.phase,
    step = run.step, step_title = run.step_title, steps = run.params and type(run.params.steps) == "table"
      and #run.params.steps or json.null,
    weights = run.weights, weights_before = run.weights_before, routes = run.routes or json.array {},
    pause_reason = run.pause_reason or json.null, abort_reason = run.abort_reason or json.null,
    measurements = json.array(run.measurements or {}), started = run.started, updated = run.updated,
    finished = run.finished or json.null, owner = run.owner or json.null, id = run.id,
    observed = run.observed or json.null,
  }
end

--- Writes the HTML report of the run (rollout.report), to `file` when
-- given and always to the state directory's last report.
function strategy.write_report(s, file)
  local ok, report = pcall(require, "rollout.report")
  if not ok then return end
  local html = report.render_run(s.run, journal.history(s.service.name))
  local last = journal.paths(s.service.name).report
  fs.write_atomic(last, html)
  if file then
    local wok, err = fs.write_atomic(file, html)
    if not wok then errors.fail("cannot write " .. file .. ": " .. err) end
  end
end

return strategy
