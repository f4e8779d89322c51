--- rollout.metrics.prometheus: analysis metrics from a Prometheus server.
--
--   local prometheus = require "rollout.metrics.prometheus"
--   s:analysis {
--     prometheus.success_rate { threshold = 0.99 },   -- Flagger's request-success-rate
--     prometheus.duration_p99 { max_ms = 500 },       -- Flagger's request-duration
--     analysis.metric { name = "5xx", provider = prometheus.provider {
--       query = 'sum(rate(my_errors_total{version="{{version}}"}[{{window}}]))' },
--       failure = function(v) return v > 1 end },
--   }
--
-- Where Prometheus is (prometheus.settings): $PROMETHEUS_URL, else
-- service.yaml's `prometheus: {url: ...}`, else the Prometheus rollout
-- started for the state directory (`ops.lua prometheus start SERVICE`,
-- rollout.metrics.prometheus_server). Credentials: a bearer token
-- ($PROMETHEUS_BEARER_TOKEN or `bearer_token_file`) or basic auth
-- (`username` with $PROMETHEUS_PASSWORD or `password_file`), a CA file;
-- they are sent, never printed, never put in a message or a measurement.
--
-- The HTTP API (prometheus/prometheus docs/querying/api.md, and
-- web/api/v1/api.go for the status codes): POST /api/v1/query (query=,
-- time=, timeout=) and /api/v1/query_range (query=, start=, end=, step=)
-- answer {"status": "success", "data": {"resultType": "vector" | "scalar" |
-- "matrix" | "string", "result": ...}, "warnings": [...]} or
-- {"status": "error", "errorType": "bad_data" (400) | "execution" (422) |
-- "timeout" | "canceled" (503) | "internal" (500) | "not_found" (404),
-- "error": "..."}. Sample values are strings, written by Go's
-- strconv.AppendFloat: "0.25", "1e-07", "NaN", "+Inf", "-Inf".
--
-- A query's answer maps to a measurement explicitly (prometheus.value):
--   * a vector of one sample, or a scalar: its value;
--   * several series: an error, unless the metric says how to reduce them
--     (reduce = "sum" | "avg" | "min" | "max");
--   * a matrix (a range query, or a range selector): the points of each
--     series are reduced by `over_time` ("last" | "avg" | "min" | "max" |
--     "sum"; required when there is more than one point), then the series
--     as above;
--   * an empty vector or matrix: no data (the metric's no_data policy);
--   * NaN and ±Inf: passed on as numbers; analysis.evaluate never compares
--     them (the metric's on_nan policy);
--   * a string, an error answer, bad JSON: a provider error (retried at the
--     interval; consecutive_error_limit in a row end the analysis).
-- Every measurement records the resolved query and the raw answer
-- (trimmed to RAW_MAX bytes).
--
-- Retries: 429 and 5xx answers and transport failures (refused
-- connection, timeout) are retried `retries` times within one
-- measurement, after the answer's Retry-After (seconds or an HTTP date,
-- RFC 9110 §10.2.3) when it gives one, else after 0.25 s, 0.5 s, 1 s...;
-- a Retry-After beyond `max_retry_wait` is not waited for (an error now,
-- the analysis tries again at its interval). 4xx answers are not retried.
local http = require "rollout.http"
local json = require "rollout.json"
local time = require "rollout.time"
local fs = require "rollout.fs"
local errors = require "rollout.errors"

local M = {}

M.RAW_MAX = 2048
M.DEFAULTS = { timeout = 10, retries = 3, max_retry_wait = 30, scrape_interval = 15 }

-- ------------------------------------------------------------ helpers --

local function urlencode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function form(params)
  local keys = {}
  for k in pairs(params) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = urlencode(k) .. "=" .. urlencode(params[k]) end
  return table.concat(parts, "&")
end

--- The URL without userinfo, query or fragment: what messages may show.
function M.safe_url(url)
  local scheme, rest = tostring(url):match("^(%a[%w+.-]*://)(.*)$")
  if not scheme then return "(not a URL)" end
  rest = rest:gsub("[?#].*$", "")
  local authority, path = rest:match("^([^/]*)(.*)$")
  authority = authority:gsub("^.*@", "")
  return scheme .. authority .. path
end

local function trim_raw(body)
  if body == nil then return nil end
  if #body <= M.RAW_MAX then return body end
  return body:sub(1, M.RAW_MAX) .. string.format("... (%d bytes in all)", #body)
end

local function read_secret(path, what)
  local text, err = fs.read(path)
  if not text then errors.refuse(string.format("prometheus.%s: cannot read %s: %s", what, path, tostring(err))) end
  return (text:gsub("%s+$", ""))
end

local function base64(s)
  return require("rollout.k8s.util").base64_encode(s)
end

--- Days since 1970-01-01 of a civil date (proleptic Gregorian).
local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8, Sep = 9, Oct = 10,
                 Nov = 11, Dec = 12 }

--- Seconds to wait from a Retry-After value (delay-seconds or an
-- IMF-fixdate, RFC 9110 §10.2.3), given the wall clock `now`; nil when it
-- is neither.
function M.retry_after(value, now)
  if value == nil then return nil end
  value = tostring(value):match("^%s*(.-)%s*$")
  if value:match("^%d+$") then return tonumber(value) end
  local d, mon, y, hh, mm, ss = value:match("^%a+, (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if not d or not MONTHS[mon] then return nil end
  local t = days_from_civil(tonumber(y), MONTHS[mon], tonumber(d)) * 86400 + tonumber(hh) * 3600
    + tonumber(mm) * 60 + tonumber(ss)
  return math.max(0, t - (now or time.wall()))
end

--- A sample value as Prometheus writes it -> a number (NaN and ±Inf
-- included), or nil.
function M.number(s)
  if type(s) == "number" then return s end
  if type(s) ~= "string" then return nil end
  if s == "NaN" then return 0 / 0 end
  if s == "+Inf" or s == "Inf" then return math.huge end
  if s == "-Inf" then return -math.huge end
  return tonumber(s)
end

local function fmt(v)
  if v ~= v then return "NaN" end
  if v == math.huge then return "+Inf" end
  if v == -math.huge then return "-Inf" end
  if math.type(v) == "integer" then return tostring(v) end
  return string.format("%.6g", v)
end

-- ------------------------------------------------------------- client --

local Client = {}
Client.__index = Client
Client.__name = "rollout.metrics.prometheus.client"
Client.__tostring = function(c) return "Prometheus at " .. c.url .. (c.auth and (" (" .. c.auth .. ")") or "") end

-- the Authorization header of each client, out of sight of printers
local secrets = setmetatable({}, { __mode = "k" })

--- A client for one Prometheus. opts: url (required), timeout (seconds per
-- request, 10), retries (3), max_retry_wait (30), bearer_token or
-- bearer_token_file, username with password or password_file, ca_file,
-- insecure_skip_verify.
function M.client(opts)
  opts = opts or {}
  local url = opts.url
  if type(url) ~= "string" or not url:match("^https?://[^/]") then
    errors.refuse(string.format("prometheus: url must be an http(s) URL (got %s)",
      type(url) == "string" and M.safe_url(url) or tostring(url)))
  end
  if url:match("^%a+://[^/]*@") then
    errors.refuse("prometheus: put credentials in username/password_file or bearer_token_file, not in the URL")
  end
  local c = setmetatable({
    url = (url:gsub("[?#].*$", ""):gsub("/+$", "")),
    timeout = opts.timeout or M.DEFAULTS.timeout,
    retries = opts.retries or M.DEFAULTS.retries,
    max_retry_wait = opts.max_retry_wait or M.DEFAULTS.max_retry_wait,
    ca_file = opts.ca_file, verify = not opts.insecure_skip_verify,
    scrape_interval = opts.scrape_interval or M.DEFAULTS.scrape_interval,
    source = opts.source,
  }, Client)
  for _, f in ipairs { "timeout", "max_retry_wait" } do
    if type(c[f]) ~= "number" or c[f] <= 0 or c[f] ~= c[f] then
      errors.refuse(string.format("prometheus: %s must be seconds > 0", f))
    end
  end
  if math.type(c.retries) ~= "integer" or c.retries < 0 then errors.refuse("prometheus: retries must be an integer >= 0") end
  local token = opts.bearer_token
  if opts.bearer_token_file then token = read_secret(opts.bearer_token_file, "bearer_token_file") end
  local password = opts.password
  if opts.password_file then password = read_secret(opts.password_file, "password_file") end
  if token and token ~= "" and opts.username then
    errors.refuse("prometheus: give a bearer token or basic auth (username), not both")
  end
  if token and token ~= "" then
    secrets[c] = "Bearer " .. token
    c.auth = "bearer token"
  elseif opts.username then
    secrets[c] = "Basic " .. base64(opts.username .. ":" .. (password or ""))
    c.auth = "basic auth as " .. opts.username
  end
  return c
end

-- What a failed request is, for messages: never the URL's secrets, the
-- headers or the request body.
local function status_text(res)
  local doc = json.decode(res.body or "")
  if type(doc) == "table" and doc.status == "error" then
    return string.format("HTTP %d, %s: %s", res.status, tostring(doc.errorType), tostring(doc.error)), doc
  end
  local body = (res.body or ""):gsub("%s+", " "):sub(1, 200)
  return string.format("HTTP %d%s", res.status, body ~= "" and (": " .. body) or "")
end

--- One API request (POST form, or GET without params), with the retries
-- above. Returns the decoded document and the raw body, or nil, message,
-- { kind = "transport" | "http" | "api" | "decode", raw = body, status = }.
function Client:request(path, params, opts)
  opts = opts or {}
  local headers = { Accept = "application/json" }
  if secrets[self] then headers.Authorization = secrets[self] end
  local body
  if params then
    body = form(params)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
  end
  local where = string.format("Prometheus at %s%s", self.url, path)
  local attempt, last = 0, nil
  while true do
    local res, err, code = http.request { url = self.url .. path, method = params and "POST" or "GET",
      headers = headers, body = body, timeout = self.timeout, connect_timeout = math.min(self.timeout, 5),
      verify = self.verify, ca_file = self.ca_file, max_body = 64 * 1024 * 1024 }
    local retry, wait, why = false, nil, nil
    if not res then
      why = string.format("%s: %s", where, tostring(err):gsub("^%u+ %S+: ", ""))
      last = { kind = "transport", code = code }
      retry = code == "connect" or code == "timeout" or code == "other"
    elseif res.status == 429 or res.status >= 500 then
      why = string.format("%s: %s", where, (status_text(res)))
      last = { kind = "http", status = res.status, raw = trim_raw(res.body) }
      retry = true
      wait = M.retry_after(res.headers["retry-after"])
      if wait and wait > self.max_retry_wait then
        return nil, string.format("%s (Retry-After %gs is beyond max_retry_wait %gs)", why, wait,
          self.max_retry_wait), last
      end
    else
      local doc, derr = json.decode(res.body or "")
      if type(doc) ~= "table" then
        return nil, string.format("%s: HTTP %d, not a Prometheus answer (%s): %s", where, res.status,
          tostring(derr or "not a JSON object"), (res.body or ""):gsub("%s+", " "):sub(1, 120)),
          { kind = "decode", status = res.status, raw = trim_raw(res.body) }
      end
      if doc.status == "error" or res.status >= 300 then
        return nil, string.format("%s: %s", where, (status_text(res))),
          { kind = "api", status = res.status, raw = trim_raw(res.body), error_type = doc.errorType }
      end
      if doc.status ~= "success" then
        return nil, string.format("%s: HTTP %d, an answer without status success: %s", where, res.status,
          (res.body or ""):sub(1, 120)), { kind = "decode", status = res.status, raw = trim_raw(res.body) }
      end
      return doc, res.body
    end
    if not retry or attempt >= (opts.retries or self.retries) then
      if attempt > 0 then why = string.format("%s (after %d attempts)", why, attempt + 1) end
      return nil, why, last
    end
    attempt = attempt + 1
    time.sleep(wait or math.min(0.25 * 2 ^ (attempt - 1), 4))
  end
end

--- An instant query. opts.time (unix seconds). Returns data, raw body or
-- nil, message, info.
function Client:query(q, opts)
  opts = opts or {}
  local params = { query = q, timeout = string.format("%ds", math.max(1, math.floor(self.timeout))) }
  if opts.time then params.time = string.format("%.3f", opts.time) end
  local doc, raw, info = self:request("/api/v1/query", params)
  if not doc then return nil, raw, info end
  return doc.data, raw, doc.warnings
end

--- A range query: opts.start, opts["end"] (unix seconds, default now),
-- opts.step (seconds).
function Client:query_range(q, opts)
  local stop = opts["end"] or time.wall()
  local params = { query = q, start = string.format("%.3f", opts.start), ["end"] = string.format("%.3f", stop),
                   step = string.format("%g", opts.step), timeout = string.format("%ds", math.max(1, math.floor(self.timeout))) }
  local doc, raw, info = self:request("/api/v1/query_range", params)
  if not doc then return nil, raw, info end
  return doc.data, raw, doc.warnings
end

--- True when the server answers 200 on /-/ready, else nil, message.
function Client:ready()
  local headers = {}
  if secrets[self] then headers.Authorization = secrets[self] end
  local res, err = http.request { url = self.url .. "/-/ready", headers = headers, timeout = math.min(self.timeout, 2),
                                  connect_timeout = 1, verify = self.verify, ca_file = self.ca_file }
  if not res then return nil, err end
  if res.status ~= 200 then return nil, "Prometheus is not ready (HTTP " .. res.status .. ")" end
  return true
end

--- The active scrape targets: { {url =, health = "up" | "down" | "unknown", last_error =}, ... }.
function Client:targets()
  local doc, err = self:request("/api/v1/targets", nil, { retries = 0 })
  if not doc then return nil, err end
  local out = {}
  for _, t in ipairs(type(doc.data) == "table" and doc.data.activeTargets or {}) do
    out[#out + 1] = { url = t.scrapeUrl, health = t.health, last_error = t.lastError, job = t.scrapePool }
  end
  return out
end

-- ----------------------------------------------------- answer -> value --

local REDUCERS = {
  sum = function(xs) local s = 0 for _, x in ipairs(xs) do s = s + x end return s end,
  avg = function(xs) local s = 0 for _, x in ipairs(xs) do s = s + x end return s / #xs end,
  min = function(xs) local m = xs[1] for _, x in ipairs(xs) do if x < m then m = x end end return m end,
  max = function(xs) local m = xs[1] for _, x in ipairs(xs) do if x > m then m = x end end return m end,
}
local OVER_TIME = { last = function(xs) return xs[#xs] end, sum = REDUCERS.sum, avg = REDUCERS.avg,
                    min = REDUCERS.min, max = REDUCERS.max }
M.REDUCE = { "avg", "max", "min", "sum" }
M.OVER_TIME = { "avg", "last", "max", "min", "sum" }

-- a reduction where any NaN gives NaN (min/max would otherwise depend on
-- the order of the series)
local function reduce_with(f, xs)
  for _, x in ipairs(xs) do if x ~= x then return 0 / 0 end end
  return f(xs)
end

local function labels_text(metric)
  local keys = {}
  for k in pairs(type(metric) == "table" and metric or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = string.format('%s="%s"', k, tostring(metric[k])) end
  return "{" .. table.concat(parts, ",") .. "}"
end

--- Maps the `data` of a query answer to a measurement:
--   { value =, n = (samples or series used), series = } or
--   { no_data = true, reason = } or nil, message (an error).
-- opts.reduce: how several series become one value; opts.over_time: how
-- the points of a matrix series become one.
function M.value(data, opts)
  opts = opts or {}
  if type(data) ~= "table" then return nil, "the answer has no data" end
  local rt, result = data.resultType, data.result
  if rt == "scalar" or rt == "string" then
    if type(result) ~= "table" or result[2] == nil then return nil, "a " .. rt .. " answer without a value" end
    if rt == "string" then
      return nil, string.format("the query gives a string (%q), not a number", tostring(result[2]):sub(1, 80))
    end
    local v = M.number(result[2])
    if v == nil then return nil, string.format("the scalar %q is not a number", tostring(result[2])) end
    return { value = v, n = 1, series = 0 }
  end
  if rt ~= "vector" and rt ~= "matrix" then return nil, "an answer of unknown type " .. tostring(rt) end
  if type(result) ~= "table" then return nil, "a " .. rt .. " answer without a result list" end
  if #result == 0 then
    return { no_data = true, reason = rt == "vector" and "the query gives an empty vector (no series matched, or " ..
      "none had samples in the window)" or "the query gives no series in the range" }
  end
  local values, points = {}, 0
  for i, s in ipairs(result) do
    if rt == "vector" then
      local v = type(s.value) == "table" and M.number(s.value[2]) or nil
      if v == nil then return nil, string.format("series %d %s has no numeric value", i, labels_text(s.metric)) end
      values[i] = v
      points = points + 1
    else
      local pts = {}
      for j, p in ipairs(type(s.values) == "table" and s.values or {}) do
        local v = type(p) == "table" and M.number(p[2]) or nil
        if v == nil then return nil, string.format("point %d of series %s is not a number", j, labels_text(s.metric)) end
        pts[j] = v
      end
      if #pts == 0 then return nil, string.format("series %s has no points", labels_text(s.metric)) end
      if #pts > 1 and not opts.over_time then
        return nil, string.format("the range gives %d points per series (series %s): say how to reduce them " ..
          "(over_time = %s)", #pts, labels_text(s.metric), table.concat(M.OVER_TIME, " | "))
      end
      values[i] = #pts == 1 and pts[1] or reduce_with(OVER_TIME[opts.over_time], pts)
      points = points + #pts
    end
  end
  if #values > 1 then
    if not opts.reduce then
      local names = {}
      for i = 1, math.min(3, #result) do names[i] = labels_text(result[i].metric) end
      return nil, string.format("the query gives %d series (%s%s), not one: aggregate them in the query " ..
        "(sum, max, ...) or say how to reduce them (reduce = %s)", #values, table.concat(names, ", "),
        #result > 3 and ", ..." or "", table.concat(M.REDUCE, " | "))
    end
    return { value = reduce_with(REDUCERS[opts.reduce], values), n = points, series = #values, reduced = opts.reduce }
  end
  return { value = values[1], n = points, series = 1 }
end

-- ----------------------------------------------------------- templates --

M.VARS = { "service", "version", "canary", "baseline", "interval", "window", "namespace" }

--- The {{name}} placeholders of a query template.
function M.placeholders(template)
  local out = {}
  for name in template:gmatch("{{%s*([%w_]+)%s*}}") do out[#out + 1] = name end
  return out
end

--- Expands {{name}} placeholders with `vars` (the values are written
-- inside PromQL strings: backslashes and double quotes are escaped).
-- Raises for an unknown name.
function M.expand(template, vars)
  return (template:gsub("{{%s*([%w_]+)%s*}}", function(name)
    local v = vars[name]
    if v == nil then
      error(string.format("unknown placeholder {{%s}} in the query (known: %s)", name,
        table.concat(M.VARS, ", ")), 0)
    end
    return (tostring(v):gsub('[\\"]', "\\%0"))
  end))
end

--- Parses a Prometheus duration ("30s", "1m", "1h30m", "500ms") or a
-- number of seconds -> seconds, or nil.
function M.seconds(d)
  if type(d) == "number" then return d end
  if type(d) ~= "string" or d == "" then return nil end
  local units = { ms = 0.001, s = 1, m = 60, h = 3600, d = 86400, w = 604800, y = 31536000 }
  local total, rest = 0, d
  while rest ~= "" do
    local n, u, tail = rest:match("^(%d+)(ms)(.*)$")
    if not n then n, u, tail = rest:match("^(%d+)([smhdwy])(.*)$") end
    if not n then return nil end
    total = total + tonumber(n) * units[u]
    rest = tail
  end
  return total
end

local function duration_text(seconds)
  return string.format("%ds", math.max(1, math.ceil(seconds)))
end

-- ------------------------------------------------------------ settings --

local function state_server(service)
  local ok, server = pcall(require, "rollout.metrics.prometheus_server")
  if not ok then return nil end
  local s = server.managed(require("rollout.config").state_dir())
  local info = s:info()
  if info and s:pid() then return info end
  return nil
end

--- Where the Prometheus of a service is and how to reach it:
-- $PROMETHEUS_URL, else service.yaml's prometheus.url, else the
-- Prometheus rollout started in the state directory. Returns the client
-- options (with `source`), or nil and why there is none.
function M.settings(service)
  local cfg = service and service.config and service.config.prometheus or {}
  local o = {}
  for k, v in pairs(cfg) do o[k] = v end
  local env = os.getenv("PROMETHEUS_URL")
  if env and env ~= "" then
    o.url, o.source = env, "PROMETHEUS_URL"
  elseif o.url and o.url ~= "" then
    o.source = (service.config.file or "service.yaml") .. ": prometheus.url"
  else
    local managed = state_server(service)
    if not managed then
      return nil, "no Prometheus to ask: set PROMETHEUS_URL or prometheus.url in service.yaml, or start one for " ..
        "the local gateway (rollout scripts/ops.lua prometheus start " .. tostring(service and service.name) .. ")"
    end
    o.url, o.source = managed.url, "the Prometheus rollout started (" .. managed.dir .. ")"
    o.scrape_interval = managed.scrape_interval
  end
  local token = os.getenv("PROMETHEUS_BEARER_TOKEN")
  if token and token ~= "" and not o.bearer_token_file then o.bearer_token = token end
  local password = os.getenv("PROMETHEUS_PASSWORD")
  if password and password ~= "" and o.username and not o.password_file then o.password = password end
  if not o.ca_file then
    local ca = os.getenv("PROMETHEUS_CA_FILE")
    if ca and ca ~= "" then o.ca_file = ca end
  end
  return o
end

--- The client for a service (cached on the service object).
function M.for_service(service)
  if service and service._prometheus then return service._prometheus end
  local o, why = M.settings(service)
  if not o then return nil, why end
  local c = M.client(o)
  if service then service._prometheus = c end
  return c
end

-- ------------------------------------------------------------ provider --

-- The variables of a query: the run's (service, version, canary,
-- baseline, interval, namespace), the `window` of rate()s, and extras.
local function query_vars(ctx, client, opts)
  local v = {}
  for k, x in pairs(ctx.vars or {}) do v[k] = x end
  local svc = ctx.service
  v.service = v.service or (svc and svc.name)
  v.version = v.version or ctx.canary
  v.canary = v.canary or ctx.canary
  if not v.baseline and type(ctx.baseline) == "table" then
    local b = {}
    for name in pairs(ctx.baseline) do b[#b + 1] = name end
    table.sort(b)
    v.baseline = table.concat(b, "|")
  end
  v.namespace = v.namespace or (svc and svc.config and svc.config.kubernetes and svc.config.kubernetes.namespace)
    or "default"
  local interval = M.seconds(v.interval) or (ctx.params and ctx.params.interval) or 10
  v.interval = v.interval or duration_text(interval)
  -- rate() needs two samples in its window: at least 4 scrape intervals
  local window = opts.window or (svc and svc.config and svc.config.prometheus and svc.config.prometheus.window)
  v.window = window and (type(window) == "number" and duration_text(window) or window)
    or duration_text(math.max(interval, 4 * (client and client.scrape_interval or M.DEFAULTS.scrape_interval)))
  for k, x in pairs(opts.vars or {}) do v[k] = x end
  return v
end

local function check_template(t, extra)
  local known = {}
  for _, n in ipairs(M.VARS) do known[n] = true end
  for k in pairs(extra or {}) do known[k] = true end
  for _, name in ipairs(M.placeholders(t)) do
    if not known[name] then
      errors.refuse(string.format("prometheus query: unknown placeholder {{%s}} (known: %s)", name,
        table.concat(M.VARS, ", ")))
    end
  end
end

--- A provider: opts.query (a template, or function(ctx) -> template),
-- opts.range = { duration = "5m" | seconds, step = "15s" | seconds } for a
-- range query (needs over_time), opts.reduce, opts.over_time,
-- opts.client (else the service's Prometheus, prometheus.for_service),
-- opts.window, opts.vars (more placeholders), opts.label and opts.format
-- (function(value) -> text) for the measurement's reason.
function M.provider(opts)
  opts = opts or {}
  if type(opts.query) == "string" then
    check_template(opts.query, opts.vars)
  elseif type(opts.query) ~= "function" then
    errors.refuse("prometheus.provider needs a query (a PromQL template, or a function(ctx) returning one)")
  end
  local function one_of(field, list)
    local v = opts[field]
    if v == nil then return end
    for _, x in ipairs(list) do if x == v then return end end
    errors.refuse(string.format("prometheus.provider: %s must be %s (got %s)", field, table.concat(list, ", "),
      tostring(v)))
  end
  one_of("reduce", M.REDUCE)
  one_of("over_time", M.OVER_TIME)
  if opts.range then
    if type(opts.range) ~= "table" or not M.seconds(opts.range.duration) or not M.seconds(opts.range.step)
        or M.seconds(opts.range.step) <= 0 then
      errors.refuse("prometheus.provider: range needs a duration and a step (e.g. { duration = \"5m\", step = \"15s\" })")
    end
    if not opts.over_time then
      errors.refuse("prometheus.provider: a range query gives many points per series: say how to reduce them " ..
        "(over_time = " .. table.concat(M.OVER_TIME, " | ") .. ")")
    end
  end
  return {
    kind = "prometheus",
    measure = function(self, ctx, m)
      local client = opts.client
      if not client then
        local why
        client, why = M.for_service(ctx.service)
        if not client then return { error = true, reason = why } end
      end
      local template = opts.query
      if type(template) == "function" then template = template(ctx, client) end
      local vars = query_vars(ctx, client, opts)
      local ok, q = pcall(M.expand, template, vars)
      if not ok then return { error = true, reason = "the query template: " .. errors.message(q) } end
      local data, raw, extra
      if opts.range then
        local now = time.wall()
        data, raw, extra = client:query_range(q, { start = now - M.seconds(opts.range.duration), ["end"] = now,
                                                   step = M.seconds(opts.range.step) })
      else
        data, raw, extra = client:query(q)
      end
      if not data then
        return { error = true, reason = raw, query = q, raw = type(extra) == "table" and extra.raw or nil }
      end
      local meas, err = M.value(data, opts)
      local out = meas or { error = true, reason = err }
      out.query, out.raw = q, trim_raw(raw)
      out.version = ctx.canary
      if type(extra) == "table" and #extra > 0 then out.warnings = extra end
      if meas and not meas.no_data then
        local label = opts.label or "value"
        local text = opts.format and opts.format(meas.value) or fmt(meas.value)
        local notes = {}
        if meas.series > 1 then notes[#notes + 1] = string.format("%s of %d series", meas.reduced, meas.series) end
        if opts.condition then notes[#notes + 1] = "required: " .. opts.condition end
        out.reason = string.format("%s: %s %s%s", tostring(ctx.canary), label, text,
          #notes > 0 and (" (" .. table.concat(notes, "; ") .. ")") or "")
      elseif meas then
        out.reason = string.format("%s: %s", tostring(ctx.canary), meas.reason)
      else
        out.reason = string.format("%s: %s", tostring(ctx.canary), err)
      end
      return out
    end,
  }
end

-- ------------------------------------------------------ shipped metrics --

-- The shipped queries, per target. On the local target they read HAProxy's
-- built-in exporter (haproxy addons/promex/README: per server,
-- haproxy_server_http_responses_total{proxy=,server=,code="1xx".."5xx"|"other"}
-- and haproxy_server_response_time_average_seconds, the average of the
-- last 1024 requests; 2.6 exports no latency histogram). A version is the
-- server named after it in two backends: be_SERVICE (the weighted default
-- route: users' traffic) and be_SERVICE__VERSION (header and strategy
-- routes: A/B groups, blue-green previews, the active probes); the
-- queries read both, i.e. every response the version gave through the
-- gateway. On Kubernetes they read Istio's standard metrics
-- (istio.io docs/reference/config/metrics: istio_requests_total and
-- istio_request_duration_milliseconds_bucket, labels reporter,
-- destination_service_name, destination_service_namespace,
-- destination_version, response_code), as reported by the destination's
-- sidecar, like Flagger's built-in checks. A version with no request in
-- the window gives an empty vector (the `> 0` and `and on()` guards):
-- no data, never 0/0 = NaN.
M.QUERIES = {
  ["local"] = {
    success_rate = 'sum(rate(haproxy_server_http_responses_total{proxy=~"be_{{service}}|be_{{service}}__{{version}}",' ..
      'server="{{version}}",code!="5xx"}[{{window}}]))\n/\n' ..
      '(sum(rate(haproxy_server_http_responses_total{proxy=~"be_{{service}}|be_{{service}}__{{version}}",' ..
      'server="{{version}}"}[{{window}}])) > 0)',
    duration = 'max(max_over_time(haproxy_server_response_time_average_seconds{proxy=~"be_{{service}}|' ..
      'be_{{service}}__{{version}}",server="{{version}}"}[{{window}}])) * 1000\n' ..
      'and on() (sum(rate(haproxy_server_http_responses_total{proxy=~"be_{{service}}|be_{{service}}__{{version}}",' ..
      'server="{{version}}"}[{{window}}])) > 0)',
    duration_label = "response time (worst 1024-request average in the window; HAProxy exports no histogram)",
  },
  kubernetes = {
    success_rate = 'sum(rate(istio_requests_total{reporter="destination",destination_service_namespace="{{namespace}}",' ..
      'destination_service_name="{{service}}",destination_version="{{version}}",response_code!~"5.."}[{{window}}]))\n/\n' ..
      '(sum(rate(istio_requests_total{reporter="destination",destination_service_namespace="{{namespace}}",' ..
      'destination_service_name="{{service}}",destination_version="{{version}}"}[{{window}}])) > 0)',
    duration = 'histogram_quantile({{quantile}}, sum by (le) (rate(istio_request_duration_milliseconds_bucket{' ..
      'reporter="destination",destination_service_namespace="{{namespace}}",destination_service_name="{{service}}",' ..
      'destination_version="{{version}}"}[{{window}}])))\n' ..
      'and on() (sum(rate(istio_request_duration_milliseconds_count{reporter="destination",' ..
      'destination_service_namespace="{{namespace}}",destination_service_name="{{service}}",' ..
      'destination_version="{{version}}"}[{{window}}])) > 0)',
    duration_label = "p99 request duration",
  },
}

local function target_of(ctx, opts)
  local t = opts.target or (ctx.service and ctx.service.target_name) or "local"
  if not M.QUERIES[t] then error("no shipped Prometheus query for the " .. tostring(t) .. " target", 0) end
  return t
end

-- The analysis.metric fields a constructor passes through.
local PASS = { "interval", "count", "initial_delay", "failure_limit", "inconclusive_limit",
               "consecutive_error_limit", "consecutive_success_limit", "no_data", "on_nan", "dry_run" }

local function metric(opts, def)
  local analysis = require "rollout.strategy.analysis"
  for _, k in ipairs(PASS) do if opts[k] ~= nil then def[k] = opts[k] end end
  return analysis.metric(def)
end

local function pct(v) return v == v and string.format("%.2f%%", 100 * v) or fmt(v) end

--- Flagger's request-success-rate: the share of the new version's
-- responses that are not 5xx over the window, at least `threshold`
-- (0.99). opts: name, threshold, target ("local" | "kubernetes", default
-- the service's), query (your own template), window, client, and the
-- analysis.metric fields (interval, count, no_data, on_nan, ...).
function M.success_rate(opts)
  opts = opts or {}
  local threshold = opts.threshold or 0.99
  if type(threshold) ~= "number" or threshold < 0 or threshold > 1 then
    errors.refuse("prometheus.success_rate: threshold must be a fraction between 0 and 1 (e.g. 0.99)")
  end
  local condition = string.format("at least %s", pct(threshold))
  return metric(opts, {
    name = opts.name or "request-success-rate",
    provider = M.provider {
      query = opts.query or function(ctx) return M.QUERIES[target_of(ctx, opts)].success_rate end,
      client = opts.client, window = opts.window, label = "request success rate", format = pct,
      condition = condition, reduce = opts.reduce,
    },
    success = function(v) return v >= threshold end,
  })
end

--- Flagger's request-duration: the new version's p99 request duration in
-- ms over the window, at most `max_ms` (500). On Kubernetes it is the p99
-- of Istio's histogram; on the local target HAProxy 2.6 exports no
-- histogram, and it is the worst 1024-request average response time
-- HAProxy reported in the window (say so in a report; rollout's own
-- latency judge has the real quantiles). opts as success_rate, and
-- quantile (0.99, Istio).
function M.duration_p99(opts)
  opts = opts or {}
  local max_ms = opts.max_ms or 500
  if type(max_ms) ~= "number" or max_ms <= 0 then errors.refuse("prometheus.duration_p99: max_ms must be > 0") end
  local quantile = opts.quantile or 0.99
  return metric(opts, {
    name = opts.name or "request-duration",
    provider = M.provider {
      query = opts.query or function(ctx) return M.QUERIES[target_of(ctx, opts)].duration end,
      client = opts.client, window = opts.window, reduce = opts.reduce,
      vars = { quantile = tostring(quantile) },
      label = opts.label or "request duration", condition = string.format("at most %g ms", max_ms),
      format = function(v) return v == v and string.format("%.1f ms", v) or fmt(v) end,
    },
    success = function(v) return v <= max_ms end,
  })
end

--- The two shipped metrics for a strategy run `s` (strategy.lua's
-- default_metrics with --metrics=prometheus): thresholds from
-- service.yaml's prometheus block (success_rate, max_duration_ms), the
-- pace and policies from the run's parameters.
function M.default_metrics(s)
  local p = s.params
  local cfg = s.service.config.prometheus or {}
  local delay = p.initial_delay < 0 and p.interval or p.initial_delay
  local common = { interval = p.interval, count = p.count, initial_delay = delay, no_data = p.no_data }
  local a, b = {}, {}
  for k, v in pairs(common) do a[k], b[k] = v, v end
  a.threshold = cfg.success_rate
  b.max_ms = cfg.max_duration_ms
  return { M.success_rate(a), M.duration_p99(b) }
end

return M
