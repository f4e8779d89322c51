--- rollout.helm: Helm releases through the helm CLI. helm runs as an argv
-- (never a shell) through rollout.proc.run, with a deadline; its JSON
-- output (-o json) is decoded with rollout.json.
--
--   helm.version([opts]) -> "v3.21.4"
--   helm.install{release=, chart=, namespace=, values={...}, wait=true,
--                timeout=300, create_namespace=true, atomic=false,
--                reuse_values=false, ...}
--     -> the release (`helm upgrade --install ... -o json`, decoded)
--   helm.upgrade = helm.install
--   helm.uninstall{release=, namespace=, wait=false, timeout=300, ...} -> true
--   helm.list{namespace= | all_namespaces=true, filter=, all=false,
--             pending=false, ...}
--     -> array of {name, namespace, revision, updated, status, chart,
--        app_version}. Without all or pending, helm shows only deployed and
--        failed releases (helm pkg/action/list.go SetStateMask): a release
--        left pending-install/-upgrade/-rollback by a killed helm is hidden.
--   helm.status{release=, namespace=, ...} -> the release
--   helm.history{release=, namespace=, max=, ...} -> array of {revision,
--        updated, status, chart, app_version, description}
--   helm.rollback{release=, revision=, namespace=, wait=false, timeout=300,
--        ...} -> true  (revision nil or 0: the previous one, as helm)
--   helm.get_values{release=, namespace=, all=false, ...} -> values table
--     ({} when the release has no user-supplied values)
--   helm.pending(status) -> true for "pending-install", "pending-upgrade",
--     "pending-rollback" (helm pkg/release/status.go IsPending)
--
-- Options every function takes: helm= (the binary; default $ROLLOUT_HELM,
-- else "helm" on PATH), env= (extra environment for helm, as proc.run's:
-- NAME = value, or false to remove), timeout= (seconds), margin= (seconds
-- helm may take beyond timeout before it is killed), kubeconfig=,
-- kube_context=. install, uninstall and rollback pass timeout to helm
-- (--timeout, for --wait and hooks; default 300) and kill helm after
-- timeout + margin (default margin 30); the other commands kill it after
-- timeout (default 60) + margin (default 0). The Kubernetes target passes
-- the kubeconfig its API client resolved (kubeconfig, or the same
-- $KUBECONFIG list in env) and the resolved context, so helm and rollout
-- talk to the same cluster as the same user.
--
-- Errors: misuse raises - wrong types, unknown options, a release name that
-- is not helm's DNS-1123 form of at most 53 characters, a namespace that is
-- not a DNS-1123 label; all checked before anything runs. Environment
-- failures return nil, message, code, raw (rollout.errors.codes):
--   not_found  helm is not installed (raw "ENOENT"); uninstall, status,
--              history, rollback, get_values of a missing release (raw:
--              helm's text, "release: not found")
--   conflict   helm says "another operation (install/upgrade/rollback) is
--              in progress" (helm pkg/action/action.go errPending): the
--              release is pending-* (raw: helm's text)
--   timeout    helm did not finish in time: its process group was stopped
--              (SIGTERM, then SIGKILL) and reaped (raw "timeout")
--   failed     helm exited non-zero (the message is its "Error: ..." text;
--              raw "exit N"), the chart path does not exist or is no chart
--   protocol   its output is not the JSON expected (raw "json")
--   not_found, forbidden, io  the values file could not be written (raw:
--              the errno name)
-- ^C stops helm and raises "interrupted".
--
-- Values (they may hold secrets) never reach the command line: they are
-- written as JSON (which is YAML) to a file of mode 0600 in a private
-- directory (mode 0700, under $TMPDIR or /tmp) given with --values, and
-- both are removed as soon as helm has finished, whether the call returns,
-- fails or raises (a to-be-closed variable; only a SIGKILL of rollout
-- itself can leave them). install passes --reset-values (or --reuse-values
-- with reuse_values = true), so an upgrade renders exactly the values
-- given, not the previous release's.
--
-- The command line: string flags are written --flag=value (a value can
-- never be read as a flag), the chart path is made absolute, names are
-- validated. `--atomic` is what helm v3 calls it (helm v4 still accepts it,
-- deprecated, for --rollback-on-failure). Some helm versions leave `chart`
-- out of `helm status -o json`: read the chart from install's answer.
local proc = require "rollout.proc"
local fs = require "rollout.fs"
local json = require "rollout.json"

local helm = {}

local INSTALL_URL = "https://helm.sh/docs/intro/install/"
local WRITE_TIMEOUT, QUERY_TIMEOUT, WRITE_MARGIN = 300, 60, 30
local MAX_SECONDS = 7 * 86400
local MSG_MAX = 4096
local JSON_MAX = 256 << 20

local COMMON = { helm = true, env = true, timeout = true, margin = true, kubeconfig = true, kube_context = true }

-- ------------------------------------------------------------- options

local function check_keys(fn, opts, extra)
  for k in pairs(opts) do
    if type(k) ~= "string" then error(string.format("helm.%s: option keys must be strings (got %s)", fn, type(k)), 4) end
    if not COMMON[k] and not extra[k] then error(string.format("helm.%s: unknown option '%s'", fn, k), 4) end
  end
end

local function opt_string(h, field, required)
  local v = rawget(h.opts, field)
  if v == nil then
    if required then error(string.format("helm.%s: option '%s' is required", h.fn, field), 4) end
    return nil
  end
  if type(v) ~= "string" then
    error(string.format("helm.%s: option '%s' must be a string (got %s)", h.fn, field, type(v)), 4)
  end
  if v == "" then error(string.format("helm.%s: option '%s' must not be empty", h.fn, field), 4) end
  if v:find("\0", 1, true) then error(string.format("helm.%s: option '%s' contains a NUL byte", h.fn, field), 4) end
  return v
end

local function opt_bool(h, field, def)
  local v = rawget(h.opts, field)
  if v == nil then return def end
  if type(v) ~= "boolean" then
    error(string.format("helm.%s: option '%s' must be a boolean (got %s)", h.fn, field, type(v)), 4)
  end
  return v
end

local function opt_seconds(h, field, def, positive)
  local v = rawget(h.opts, field)
  if v == nil then return def end
  if type(v) ~= "number" then
    error(string.format("helm.%s: option '%s' must be a number of seconds (got %s)", h.fn, field, type(v)), 4)
  end
  if not (positive and v > 0 or (not positive and v >= 0)) or not (v <= MAX_SECONDS) then
    error(string.format("helm.%s: option '%s' must be a number of seconds %s 0 and at most %d", h.fn, field,
      positive and "above" or "from", MAX_SECONDS), 4)
  end
  return v
end

-- helm's release names (chartutil.ValidateReleaseName): DNS-1123 labels
-- joined by dots, at most 53 characters. Namespaces: one label, <= 63.
local function valid_dns(s, max, dots)
  if #s == 0 or #s > max then return false end
  if s:find("[^a-z0-9.-]") then return false end
  if not dots and s:find(".", 1, true) then return false end
  for part in (s .. "."):gmatch("([^.]*)%.") do
    if not part:match("^[a-z0-9]$") and not part:match("^[a-z0-9][a-z0-9-]*[a-z0-9]$") then return false end
  end
  return true
end

local function opt_release(h)
  local r = rawget(h.opts, "release")
  if type(r) ~= "string" then
    error(string.format("helm.%s: option 'release' must be a string (got %s)", h.fn, type(r)), 4)
  end
  if not valid_dns(r, 53, true) then
    error(string.format('helm.%s: invalid release name "%s": it must be at most 53 characters of a-z, 0-9, \'-\' ' ..
      "and '.', start and end with a letter or digit (DNS-1123)", h.fn, r), 4)
  end
  return r
end

local function opt_namespace(h)
  local ns = rawget(h.opts, "namespace")
  if ns == nil then return nil end
  if type(ns) ~= "string" then
    error(string.format("helm.%s: option 'namespace' must be a string (got %s)", h.fn, type(ns)), 4)
  end
  if not valid_dns(ns, 63, false) then
    error(string.format('helm.%s: invalid namespace "%s": it must be at most 63 characters of a-z, 0-9 and \'-\', ' ..
      "start and end with a letter or digit (DNS-1123 label)", h.fn, ns), 4)
  end
  return ns
end

-- The call: options every function shares, argv starting with the binary.
local function begin(fn, opts, extra, timeout, margin)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then error(string.format("bad argument #1 to 'helm.%s' (table expected)", fn), 3) end
  check_keys(fn, opts, extra)
  local h = { fn = fn, opts = opts }
  local bin, from = opt_string(h, "helm"), "opts.helm"
  if not bin then
    bin, from = os.getenv("ROLLOUT_HELM"), "ROLLOUT_HELM"
    if not bin or bin == "" then bin, from = "helm", nil end
  end
  h.bin, h.bin_from = bin, from
  local env = rawget(opts, "env")
  if env ~= nil and type(env) ~= "table" then
    error(string.format("helm.%s: option 'env' must be a table (got %s)", fn, type(env)), 3)
  end
  h.env = env
  h.timeout = opt_seconds(h, "timeout", timeout, true)
  h.margin = opt_seconds(h, "margin", margin, false)
  h.kubeconfig = opt_string(h, "kubeconfig")
  h.kube_context = opt_string(h, "kube_context")
  h.argv = { bin }
  return h
end

local function arg(h, s) h.argv[#h.argv + 1] = s end

local function kube_flags(h)
  if h.kubeconfig then arg(h, "--kubeconfig=" .. h.kubeconfig) end
  if h.kube_context then arg(h, "--kube-context=" .. h.kube_context) end
end

-- Go duration for --timeout: whole seconds, else milliseconds.
local function timeout_flag(h)
  local ms = math.ceil(h.timeout * 1000)
  if ms % 1000 == 0 then arg(h, string.format("--timeout=%ds", ms // 1000))
  else arg(h, string.format("--timeout=%dms", ms)) end
end

-- ----------------------------------------------------------- running

local function cut(s)
  if #s > MSG_MAX - 4 then return s:sub(1, MSG_MAX - 4) .. "..." end
  return s
end

--- The meaningful part of helm's stderr: from the first "Error: " line
-- (without that prefix) to the first blank line, leaving out cobra's
-- "Usage:" and "Run 'helm --help'" lines; without such a line, the end of
-- stderr. Warnings before the error are dropped.
function helm.error_text(err)
  local out, started = {}, false
  for line in (err .. "\n"):gmatch("([^\n]*)\n") do
    if not started then
      if line:sub(1, 7) == "Error: " then
        started = true
        out[1] = line:sub(8)
      end
    else
      if line:match("^[ \t\r]*$") then break end
      if line:sub(1, 6) ~= "Usage:" and line:sub(1, 5) ~= "Run '" then out[#out + 1] = line end
    end
  end
  local text
  if started then
    text = cut(table.concat(out, "\n"))
  else
    text = err:gsub("[\n \r]+$", "")
    if #text > MSG_MAX - 8 then text = "..." .. text:sub(-(MSG_MAX - 8)) end
    text = text:gsub("^[\n ]+", "")
  end
  return (text:gsub("[\n \r]+$", ""))
end

local function fmt_seconds(s)
  local t = string.format("%.3f", s):gsub("0+$", ""):gsub("%.$", "")
  return t
end

local PENDING_TEXT = "another operation (install/upgrade/rollback) is in progress"

-- Runs argv. -> stdout | nil, message, code, raw. `tmp` (or nil) is a
-- to-be-closed holder the caller releases.
local function run(h)
  local r, err, code, raw = proc.run { argv = h.argv, env = h.env, timeout = h.timeout + h.margin }
  if not r then
    if code == "timeout" then
      return nil, string.format("%s did not finish within %ss (timeout %ss + margin %ss): helm was stopped", h.what,
        fmt_seconds(h.timeout + h.margin), fmt_seconds(h.timeout), fmt_seconds(h.margin)), "timeout", "timeout"
    end
    if raw == "ENOENT" or raw == "EACCES" or raw == "ENOTDIR" or raw == "ENOEXEC" then
      if not h.bin_from then
        return nil, "helm is not installed (looked for it on PATH): see " .. INSTALL_URL, "not_found", raw
      end
      if not h.bin:find("/", 1, true) then
        return nil, string.format("helm is not installed (looked for '%s' on PATH, from %s): see %s", h.bin,
          h.bin_from, INSTALL_URL), "not_found", raw
      end
      return nil, string.format("helm is not installed at '%s' (from %s): %s; see %s", h.bin, h.bin_from,
        tostring(err or raw), INSTALL_URL), "not_found", raw
    end
    return nil, string.format("%s: %s", h.what, tostring(err or "cannot run helm")), "failed", raw
  end
  if r.status ~= 0 then
    local text = helm.error_text(r.stderr or "")
    if r.status == nil then
      return nil, string.format("%s: helm was killed by signal %s%s%s", h.what, tostring(r.signal),
        text ~= "" and ": " or "", text), "failed", "signal " .. tostring(r.signal)
    end
    if text == "" then
      return nil, string.format("%s: helm exited with status %d and printed no error", h.what, r.status), "failed",
        "exit " .. r.status
    end
    local code2, raw = "failed", "exit " .. r.status
    if h.notfound_ok and text:find("release: not found", 1, true) then code2, raw = "not_found", text end
    if text:find(PENDING_TEXT, 1, true) then code2, raw = "conflict", text end
    return nil, string.format("%s: %s", h.what, text), code2, raw
  end
  return r.stdout
end

local function decode(h, out)
  local v, err = json.decode(out, { max_size = JSON_MAX, name = h.what .. " output" })
  if v == nil and err then
    return nil, string.format("%s: its output is not the JSON expected (%s); it began: '%s'", h.what, err,
      out:sub(1, 120)), "protocol", "json"
  end
  return v
end

-- --------------------------------------------------------- functions

function helm.version(opts)
  local h = begin("version", opts, {}, QUERY_TIMEOUT, 0)
  arg(h, "version")
  arg(h, "--short")
  h.what = "helm version"
  local out, err, code, raw = run(h)
  if not out then return nil, err, code, raw end
  out = out:gsub("^[ \n]+", "")
  if not out:match("^v%d") then
    return nil, string.format("helm version: unexpected output '%s'", out:sub(1, 120)), "protocol", "version"
  end
  return (out:match("^([^+\n \r]*)"))
end

-- The chart path: must exist; a directory must hold Chart.yaml.
local function chart_path(h, chart)
  local real, err = fs.realpath(chart)
  local st = real and fs.stat(real)
  if not real or not st then
    local why = tostring(err or ""):match(": ([^:]+)$") or tostring(err)
    return nil, string.format("helm.%s: chart '%s' not found: %s", h.fn, chart, why), "failed", "chart"
  end
  if st.type == "directory" then
    if not fs.exists(real .. "/Chart.yaml") then
      return nil, string.format("helm.%s: '%s' is not a chart: it has no Chart.yaml", h.fn, chart), "failed", "chart"
    end
  elseif st.type ~= "file" then
    return nil, string.format("helm.%s: chart '%s' is neither a directory nor a packaged chart", h.fn, chart),
      "failed", "chart"
  end
  return real
end

-- A private directory and file holding the values; removed by __close.
local function values_file(text)
  local base = os.getenv("TMPDIR")
  if not base or base == "" then base = "/tmp" end
  local holder = setmetatable({}, { __close = function(self)
    if self.file then fs.remove(self.file) end
    if self.dir then fs.remove(self.dir) end
    self.file, self.dir = nil, nil
  end, __gc = function(self)
    if self.file then fs.remove(self.file) end
    if self.dir then fs.remove(self.dir) end
  end })
  local dir, err, code, raw = fs.mkdtemp(base .. "/rollout-helm-") -- mode 0700 (mkdtemp(3))
  if not dir then return holder, err, code, raw end
  holder.dir = dir
  local file = dir .. "/values.json"
  local ok, werr, wcode, wraw = fs.write_atomic(file, text, { mode = tonumber("600", 8), fsync = false })
  if not ok then return holder, werr, wcode, wraw end
  holder.file = file
  return holder
end

local INSTALL_KEYS = { release = true, chart = true, namespace = true, values = true, wait = true,
                       create_namespace = true, atomic = true, reuse_values = true }

function helm.install(opts)
  local h = begin("install", opts, INSTALL_KEYS, WRITE_TIMEOUT, WRITE_MARGIN)
  local release, ns = opt_release(h), opt_namespace(h)
  local chart = opt_string(h, "chart", true)
  local wait, create_ns = opt_bool(h, "wait", true), opt_bool(h, "create_namespace", true)
  local atomic, reuse = opt_bool(h, "atomic", false), opt_bool(h, "reuse_values", false)
  local values = rawget(h.opts, "values")
  local text
  if type(values) == "table" then
    local mt = getmetatable(values)
    if #values > 0 or (type(mt) == "table" and mt.__jsontype == "array") then
      error("helm.install: option 'values' must be a table of named values, not a list", 2)
    end
    text = json.encode(values) -- raises on what JSON cannot hold: misuse
  elseif values ~= nil then
    error(string.format("helm.install: option 'values' must be a table (got %s)", type(values)), 2)
  end
  h.what = "helm upgrade " .. release
  local path, perr, pcode, praw = chart_path(h, chart)
  if not path then return nil, perr, pcode, praw end
  for _, a in ipairs { "upgrade", "--install", release, path } do arg(h, a) end
  if ns then arg(h, "--namespace=" .. ns) end
  if create_ns then arg(h, "--create-namespace") end
  arg(h, reuse and "--reuse-values" or "--reset-values")
  if wait then arg(h, "--wait") end
  if atomic then arg(h, "--atomic") end
  timeout_flag(h)
  arg(h, "--output=json")
  kube_flags(h)
  local holder, werr, wcode, wraw
  if text then holder, werr, wcode, wraw = values_file(text) end
  local tmp <close> = holder
  if werr then
    local base = os.getenv("TMPDIR")
    return nil, string.format("helm.install: cannot write the values file in %s: %s",
      (base and base ~= "") and base or "/tmp", tostring(werr):match(": ([^:]+)$") or tostring(werr)),
      wcode, wraw
  end
  if tmp then arg(h, "--values=" .. tmp.file) end
  local out, err, code, raw = run(h)
  if tmp then getmetatable(tmp).__close(tmp) end -- as soon as helm has finished
  if not out then return nil, err, code, raw end
  return decode(h, out)
end
helm.upgrade = helm.install

function helm.uninstall(opts)
  local h = begin("uninstall", opts, { release = true, namespace = true, wait = true }, WRITE_TIMEOUT, WRITE_MARGIN)
  local release, ns = opt_release(h), opt_namespace(h)
  local wait = opt_bool(h, "wait", false)
  h.what, h.notfound_ok = "helm uninstall " .. release, true
  arg(h, "uninstall")
  arg(h, release)
  if ns then arg(h, "--namespace=" .. ns) end
  if wait then arg(h, "--wait") end
  timeout_flag(h)
  kube_flags(h)
  local out, err, code, raw = run(h)
  if not out then return nil, err, code, raw end
  return true
end

function helm.list(opts)
  local h = begin("list", opts, { namespace = true, all_namespaces = true, filter = true, all = true, pending = true },
    QUERY_TIMEOUT, 0)
  local ns = opt_namespace(h)
  local all_ns = opt_bool(h, "all_namespaces", false)
  local filter = opt_string(h, "filter")
  local all, pending = opt_bool(h, "all", false), opt_bool(h, "pending", false)
  if ns and all_ns then error("helm.list: options 'namespace' and 'all_namespaces' exclude each other", 2) end
  h.what = "helm list"
  arg(h, "list")
  arg(h, "--output=json")
  if ns then arg(h, "--namespace=" .. ns) end
  if all_ns then arg(h, "--all-namespaces") end
  if filter then arg(h, "--filter=" .. filter) end
  if all then arg(h, "--all") end
  if pending then arg(h, "--pending") end
  kube_flags(h)
  local out, err, code, raw = run(h)
  if not out then return nil, err, code, raw end
  return decode(h, out)
end

function helm.status(opts)
  local h = begin("status", opts, { release = true, namespace = true }, QUERY_TIMEOUT, 0)
  local release, ns = opt_release(h), opt_namespace(h)
  h.what, h.notfound_ok = "helm status " .. release, true
  for _, a in ipairs { "status", release, "--output=json" } do arg(h, a) end
  if ns then arg(h, "--namespace=" .. ns) end
  kube_flags(h)
  local out, err, code, raw = run(h)
  if not out then return nil, err, code, raw end
  return decode(h, out)
end

function helm.history(opts)
  local h = begin("history", opts, { release = true, namespace = true, max = true }, QUERY_TIMEOUT, 0)
  local release, ns = opt_release(h), opt_namespace(h)
  local max = rawget(h.opts, "max")
  if max ~= nil and (math.type(max) ~= "integer" or max < 1) then
    error("helm.history: option 'max' must be an integer >= 1", 2)
  end
  h.what, h.notfound_ok = "helm history " .. release, true
  for _, a in ipairs { "history", release, "--output=json" } do arg(h, a) end
  if max then arg(h, "--max=" .. max) end
  if ns then arg(h, "--namespace=" .. ns) end
  kube_flags(h)
  local out, err, code, raw = run(h)
  if not out then return nil, err, code, raw end
  return decode(h, out)
end

function helm.rollback(opts)
  local h = begin("rollback", opts, { release = true, namespace = true, revision = true, wait = true },
    WRITE_TIMEOUT, WRITE_MARGIN)
  local release, ns = opt_release(h), opt_namespace(h)
  local revision = rawget(h.opts, "revision")
  if revision ~= nil and (math.type(revision) ~= "integer" or revision < 0) then
    error("helm.rollback: option 'revision' must be an integer >= 0", 2)
  end
  local wait = opt_bool(h, "wait", false)
  h.what, h.notfound_ok = "helm rollback " .. release, true
  arg(h, "rollback")
  arg(h, release)
  if revision and revision > 0 then arg(h, tostring(revision)) end
  if ns then arg(h, "--namespace=" .. ns) end
  if wait then arg(h, "--wait") end
  timeout_flag(h)
  kube_flags(h)
  local out, err, code, raw = run(h)
  if not out then return nil, err, code, raw end
  return true
end

function helm.get_values(opts)
  local h = begin("get_values", opts, { release = true, namespace = true, all = true }, QUERY_TIMEOUT, 0)
  local release, ns = opt_release(h), opt_namespace(h)
  local all = opt_bool(h, "all", false)
  h.what, h.notfound_ok = "helm get values " .. release, true
  for _, a in ipairs { "get", "values", release, "--output=json" } do arg(h, a) end
  if all then arg(h, "--all") end
  if ns then arg(h, "--namespace=" .. ns) end
  kube_flags(h)
  local out, err, code, raw = run(h)
  if not out then return nil, err, code, raw end
  local v, derr, dcode, draw = decode(h, out)
  if v == nil and derr then return nil, derr, dcode, draw end
  if v == nil or v == json.null then return json.object {} end
  if type(v) ~= "table" then
    return nil, string.format("%s: expected a JSON object, got a %s", h.what, type(v)), "protocol", "json"
  end
  return v
end

local PENDING = { ["pending-install"] = true, ["pending-upgrade"] = true, ["pending-rollback"] = true }

--- Is a release status one of helm's pending states (a helm operation
-- under way, or killed before it finished)?
function helm.pending(st) return PENDING[st] == true end

return helm
