--- rollout.k8s: a Kubernetes API client. Policy in Lua (this module and
-- rollout.k8s.*), transport in C (rollout.http_session: keep-alive, TLS,
-- client credentials in C memory, ^C, deadlines).
--
--   k8s.client{kubeconfig =, context =, namespace =, in_cluster = true,
--              timeout = 30, exec_timeout = 10}
--       -> client | nil, message, code, raw          (rollout.k8s.config)
--
-- The client is an object whose metatable's __index is the plain table
-- k8s.Client of its methods:
--   client:namespace(), client:server(), client:context() (nil in-cluster),
--   client:source() -> {files =, kubeconfig =, context =, in_cluster =}
--   client:close() (also <close>)
--   client:get(kind, name [, {namespace =, timeout =}]) -> object
--   client:list(kind [, {namespace =, selector =, field_selector =,
--               all_namespaces =, limit =, timeout =}]) -> List object
--   client:apply(manifest [, {field_manager = "rollout", force = false,
--                dry_run = false, namespace =, timeout =}]) -> object
--   client:create(manifest [, opts]) / client:replace(manifest [, opts])
--   client:patch(kind, name, patch [, {type = "merge"|"strategic"|"json",
--                namespace =, field_manager =, dry_run =}]) -> object
--   client:delete(kind, name [, {namespace =, propagation =, dry_run =}])
--   client:request{method =, path =, query =, body =, content_type =,
--                  accept =, timeout =} -> {status, headers, body, object}
--   client:watch(kind, opts, fn)        (see below)
--   client:preferred_version(group) -> "v1" | nil, message, code, raw
--   client:pods(selector [, opts]), client:logs(pod [, opts]),
--   client:wait_rollout(name [, opts])  (rollout.k8s.workloads)
--   k8s.rollout_status(deployment) -> done, message, failed
--
-- kind: "Deployment", "deployments", "deployment", "deploy",
-- "apps/v1/deployments", "v1/pods"; the Istio and Gateway API kinds in the
-- version the cluster prefers (rollout.k8s.kinds).
--
-- Failures return nil, message, code, raw[, status]: code is one of
-- rollout.errors.codes (not_found, exists, conflict, invalid,
-- unauthorized, forbidden, gone, timeout, unavailable, connect, tls,
-- too_large, protocol, failed, other), raw the upstream reason ("NotFound",
-- "Conflict", ... "curl 7", "exit 1") and, for API errors, the Status
-- object as a fifth value. Messages are one line; API errors carry the
-- server's message. Misuse raises. ^C raises "interrupted".
--
-- Retries, as client-go's rest.Request (rest/with_retry.go checkWait): an
-- answer 429 or 5xx with a Retry-After header is sent again after that many
-- seconds, at most 10 times and within the call's timeout (API Priority
-- and Fairness answers 429 with Retry-After: apiserver
-- pkg/server/filters/maxinflight.go tooManyRequests). A 401 refreshes the
-- exec credential or re-reads the token file and is retried once.
--
-- watch(kind, {namespace =, selector =, field_selector =, all_namespaces =,
--              resource_version =, timeout =}, fn):
--   fn(type, object) is called for every ADDED, MODIFIED or DELETED event,
--   in order (BOOKMARKs only move the resourceVersion); it may use the
--   client. It stops the watch by returning true (or by closing the
--   client); an error it raises ends the watch (the stream is closed) and
--   is raised again; ^C raises "interrupted".
--   -> true, last resourceVersion   (fn returned true, `timeout` seconds
--                                    passed, or the server ended the watch)
--   -> nil, message, code, raw[, status]  (an ERROR event: code "gone" for
--                                    410 Expired; HTTP and transport errors)
local http_session = require "rollout.http_session"
local json = require "rollout.json"
local time = require "rollout.time"
local proc = require "rollout.proc"
local sys = require "rollout.sys"
local util = require "rollout.k8s.util"
local status = require "rollout.k8s.status"
local config = require "rollout.k8s.config"
local kinds = require "rollout.k8s.kinds"

local k8s = {}

k8s.DEFAULT_TIMEOUT = 30
k8s.DEFAULT_EXEC_TIMEOUT = 10
k8s.TOKEN_FILE_TTL = 60 -- client-go transport/token_source.go re-reads a token file every minute
k8s.MAX_RETRIES = 10     -- client-go rest/request.go: maxRetries 10
k8s.USER_AGENT = "rollout/" .. (sys.version or "0")
k8s.MAX_BODY = 256 << 20

local Client = {}
k8s.Client = Client

local MT = { __index = Client, __name = "rollout.k8s.client" }

local function is_client(c) return getmetatable(c) == MT end

local function check(c)
  if not is_client(c) then error("bad self: a k8s client expected, got " .. type(c), 3) end
  if c._closed then error("attempt to use a closed k8s client", 3) end
  return c
end

MT.__tostring = function(c)
  if c._closed then return "k8s client (closed)" end
  if c._in_cluster then
    return string.format('k8s client (in-cluster, server %s, namespace "%s")', c._server_shown, c._ns)
  end
  return string.format('k8s client (context "%s", server %s, namespace "%s")', c._context or "", c._server_shown,
    c._ns)
end
MT.__close = function(c) if is_client(c) then c:close() end end

local function positive(v, field, def)
  if v == nil then return def end
  if type(v) ~= "number" or not (v > 0) then error("field '" .. field .. "' must be a number of seconds > 0", 3) end
  return v
end

local function opt_string(t, field)
  local v = t and t[field]
  if v ~= nil and type(v) ~= "string" then
    error(string.format("field '%s' must be a string (got %s)", field, type(v)), 4)
  end
  return v
end

--- See the module header.
function k8s.client(opts)
  if opts ~= nil and type(opts) ~= "table" then error("bad argument #1 to 'client' (table expected)", 2) end
  opts = opts or {}
  for _, f in ipairs { "kubeconfig", "context", "namespace" } do opt_string(opts, f) end
  if opts.in_cluster ~= nil and type(opts.in_cluster) ~= "boolean" then
    error("field 'in_cluster' must be a boolean", 2)
  end
  local timeout = positive(opts.timeout, "timeout", k8s.DEFAULT_TIMEOUT)
  local exec_timeout = positive(opts.exec_timeout, "exec_timeout", k8s.DEFAULT_EXEC_TIMEOUT)
  local cfg, err, code, raw = config.resolve(opts)
  if not cfg then return nil, err, code, raw end
  local session = http_session.new {
    ca_data = cfg.ca, insecure = cfg.insecure, cert_data = cfg.cert, key_data = cfg.key, token = cfg.token,
    tls_server_name = cfg.tls_server_name, proxy = cfg.proxy, user_agent = k8s.USER_AGENT,
    connect_timeout = math.min(timeout, 10), max_body = k8s.MAX_BODY,
  }
  local c = setmetatable({
    _session = session, _server = cfg.server, _server_shown = util.redact_url(cfg.server):gsub("/$", ""),
    _ns = cfg.namespace, _context = cfg.context, _in_cluster = cfg.in_cluster or false,
    _timeout = timeout, _exec_timeout = exec_timeout, _source = { files = cfg.files, kubeconfig = cfg.explicit,
      context = cfg.context, in_cluster = cfg.in_cluster or false, dir = cfg.in_cluster and cfg.source or nil },
    _token_file = cfg.token_file, _token_read_at = time.now(), _static_token = cfg.token ~= nil,
    _exec = cfg.exec, _exec_info = cfg.exec and config.exec_info(cfg) or nil, _cred_valid = false,
  }, MT)
  c._disco = kinds.discovery(function(path) return c:_discover(path) end)
  -- the server URL for messages keeps no userinfo
  if cfg.server:match("^%a+://[^/]*@") then c._server_shown = util.redact_url(cfg.server):gsub("/$", "") end
  return c
end

function Client:namespace() return check(self)._ns end
function Client:server() return check(self)._server_shown end
function Client:context() check(self); return self._context end

--- Where the configuration came from (no credentials): {files = {paths
-- read}, kubeconfig = the kubeconfig option or nil, context =, in_cluster =}.
-- helm is given the same (rollout.helm options kubeconfig/kube_context).
function Client:source()
  check(self)
  local s = self._source
  return { files = { table.unpack(s.files or {}) }, kubeconfig = s.kubeconfig, context = s.context,
           in_cluster = s.in_cluster }
end

function Client:close()
  if not is_client(self) then error("bad self: a k8s client expected", 2) end
  if self._closed then return end
  self._closed = true
  if self._session then self._session:close() end
  self._session = nil
end

-- --------------------------------------------------------- credentials

-- Runs the exec credential plugin (client.authentication.k8s.io v1 or
-- v1beta1, client-go plugin/pkg/client/auth/exec/exec.go): argv (never a
-- shell), the kubeconfig's env plus KUBERNETES_EXEC_INFO, no stdin, killed
-- after exec_timeout. The answer must be an ExecCredential of the same
-- apiVersion with status.token or status.clientCertificateData +
-- clientKeyData; it is cached until shortly before expirationTimestamp (10%
-- of its lifetime, at most 30 s early; without one, until a 401).
function Client:_run_exec()
  local ex = self._exec
  local name = ex.name
  local function afail(code, raw, fmt, ...)
    return nil, "exec plugin " .. name .. string.format(fmt, ...), code, raw
  end
  local env = {}
  for k, v in pairs(ex.env) do env[k] = v end
  env.KUBERNETES_EXEC_INFO = self._exec_info
  local argv = { ex.command }
  for _, a in ipairs(ex.args) do argv[#argv + 1] = a end
  local r, err, code, raw = proc.run { argv = argv, env = env, timeout = self._exec_timeout, max_output = 1 << 20 }
  if not r then
    if code == "timeout" then
      return afail("timeout", "timeout", " timed out after %ss (killed)", string.format("%g", self._exec_timeout))
    end
    if raw == "ENOENT" or raw == "EACCES" then
      local msg = string.format(": cannot run %s: %s", ex.command,
        raw == "ENOENT" and "executable not found" or "permission denied")
      if ex.install_hint then msg = msg .. " (" .. (util.first_line(ex.install_hint) or "") .. ")" end
      return afail(code, raw, "%s", msg)
    end
    return afail(code, raw, ": %s", tostring(err))
  end
  if r.status == nil then
    return afail("failed", "signal " .. tostring(r.signal), " failed (signal %s): %s", tostring(r.signal),
      util.first_line(r.stderr) or "(nothing on stderr)")
  end
  if r.status ~= 0 then
    return afail("failed", "exit " .. r.status, " failed (exit %d): %s", r.status,
      util.first_line(r.stderr) or "(nothing on stderr)")
  end
  -- the output holds the credential: never quoted
  local cred = json.decode(r.stdout)
  if type(cred) ~= "table" then
    return afail("protocol", "ExecCredential", ": the output is not JSON (an ExecCredential was expected)")
  end
  if cred.kind ~= "ExecCredential" then
    return afail("protocol", "ExecCredential", ": the output is not an ExecCredential (kind)")
  end
  if cred.apiVersion ~= ex.api_version then
    return afail("protocol", "ExecCredential", ": the output's apiVersion is not %s", ex.api_version)
  end
  local st = type(cred.status) == "table" and cred.status or nil
  if not st then return afail("protocol", "ExecCredential", ": the ExecCredential has no status") end
  local token = type(st.token) == "string" and st.token ~= "" and st.token or nil
  local cert = type(st.clientCertificateData) == "string" and st.clientCertificateData ~= "" and
    st.clientCertificateData or nil
  local key = type(st.clientKeyData) == "string" and st.clientKeyData ~= "" and st.clientKeyData or nil
  if not token and not (cert and key) then
    return afail("protocol", "ExecCredential", ": the ExecCredential has neither status.token nor " ..
      "status.clientCertificateData and status.clientKeyData")
  end
  if token and token:find("[\r\n%z]") then
    return afail("protocol", "ExecCredential", ": the ExecCredential's token holds a line break")
  end
  if (cert ~= nil) ~= (key ~= nil) then
    return afail("protocol", "ExecCredential", ": the ExecCredential has only one of clientCertificateData and " ..
      "clientKeyData")
  end
  if cert and (not util.pem_has(cert, "CERTIFICATE") or not util.pem_has(key, "PRIVATE KEY")) then
    return afail("protocol", "ExecCredential", ": the ExecCredential's certificate or key is not PEM")
  end
  local expiry
  if type(st.expirationTimestamp) == "string" then
    expiry = util.rfc3339(st.expirationTimestamp)
    if not expiry then
      return afail("protocol", "ExecCredential", ": the ExecCredential's expirationTimestamp is not RFC 3339")
    end
  end
  self._session:set_credentials { token = token or false, cert_data = cert or false, key_data = key or false }
  self._cred_valid = true
  self._cred_expiry = expiry
  local now = time.wall()
  self._cred_margin = (expiry and expiry > now) and math.min((expiry - now) * 0.1, 30) or 0
  return true
end

-- Fresh credentials before a request.
function Client:_auth()
  if self._token_file and time.now() - self._token_read_at >= k8s.TOKEN_FILE_TTL then
    -- a file that cannot be read keeps the last token (client-go
    -- transport/token_source.go cachingTokenSource)
    local tok = config.read_token_file(self._token_file)
    if tok then self._session:set_credentials { token = tok } end
    self._token_read_at = time.now()
  end
  if self._exec then
    local fresh = self._cred_valid
    if fresh and self._cred_expiry and time.wall() + self._cred_margin >= self._cred_expiry then fresh = false end
    if not fresh then
      local ok, err, code, raw = self:_run_exec()
      if not ok then return nil, err, code, raw end
    end
  end
  return true
end

-- After a 401: true when something can be refreshed (and a retry may help).
function Client:_invalidate()
  local any = false
  if self._exec then
    self._cred_valid = false
    any = true
  end
  if self._token_file then
    self._token_read_at = -math.huge
    any = true
  end
  return any
end

-- ------------------------------------------------------------ requests

local function headers_for(accept, ctype)
  local h = { Accept = accept or "application/json" }
  if ctype then h["Content-Type"] = ctype end
  return h
end

-- One API request with credentials, the 401 refresh and the Retry-After
-- retries. -> the transport's answer {status, headers, body} | nil, msg, code, raw
function Client:_perform(rq)
  local url = self._server .. rq.path .. ((rq.query and rq.query ~= "") and ("?" .. rq.query) or "")
  local deadline = time.now() + rq.timeout
  local refreshed, attempts = false, 0
  while true do
    local ok, err, code, raw = self:_auth()
    if not ok then return nil, err, code, raw end
    if self._closed then error("attempt to use a closed k8s client", 0) end
    local left = math.max(deadline - time.now(), 0.001)
    local res, rerr, rcode, rraw = self._session:request {
      method = rq.method, url = url, headers = headers_for(rq.accept, rq.body and (rq.content_type or "application/json")),
      body = rq.body, timeout = left,
    }
    if not res then return nil, rerr, rcode, rraw end
    if res.status == 401 and not refreshed and self:_invalidate() then
      refreshed = true
    elseif (res.status == 429 or res.status >= 500) and attempts < k8s.MAX_RETRIES then
      local wait = tonumber(res.headers["retry-after"] or "")
      if not wait or math.type(wait) ~= "integer" or wait + time.now() >= deadline then return res, url end
      attempts = attempts + 1
      if wait > 0 then time.sleep(wait) end
    else
      return res, url
    end
  end
end

-- The usual result: 2xx -> the decoded object (true when empty); else the
-- Status error.
function Client:_result(rq, res, url)
  local where = rq.method .. " " .. util.redact_url(url)
  if res.status >= 200 and res.status < 300 then
    if res.body == "" then return true end
    local obj, err = json.decode(res.body, { max_size = k8s.MAX_BODY })
    if obj == nil then return nil, where .. ": the answer is not JSON: " .. tostring(err), "protocol", "json" end
    return obj
  end
  return status.error(res.status, res.body, where)
end

function Client:_call(rq)
  local res, a, b, c = self:_perform(rq)
  if not res then return nil, a, b, c end
  return self:_result(rq, res, a)
end

-- Discovery GETs: decoded | false for a 404.
function Client:_discover(path)
  local res, a, b, c = self:_perform { method = "GET", path = path, timeout = self._timeout }
  if not res then return nil, a, b, c end
  if res.status == 404 then return false end
  return self:_result({ method = "GET" }, res, a)
end

local function check_opts(opts, n)
  if opts ~= nil and type(opts) ~= "table" then
    error(string.format("bad argument #%d (table or nil expected, got %s)", n, type(opts)), 3)
  end
  return opts or {}
end

local function check_name(v, n, what)
  if type(v) ~= "string" then error(string.format("bad argument #%d (%s: string expected, got %s)", n, what, type(v)), 3) end
  if v == "" then error(string.format("bad argument #%d (%s must not be empty)", n, what), 3) end
  return v
end

function Client:_ns_of(opts)
  local ns = opt_string(opts, "namespace")
  if ns == "" then error("field 'namespace' must not be empty", 3) end
  return ns or self._ns
end

function Client:_timeout_of(opts)
  local t = opts.timeout
  if t == nil then return self._timeout end
  if type(t) ~= "number" or not (t > 0) then error("field 'timeout' must be a number of seconds > 0", 3) end
  return t
end

local function opt_bool(opts, field)
  local v = opts[field]
  if v ~= nil and type(v) ~= "boolean" then error(string.format("field '%s' must be a boolean", field), 4) end
  return v == true
end

--- The resource of a kind argument (discovery when needed).
function Client:resource(kind)
  check(self)
  check_name(kind, 2, "kind")
  return self._disco:resolve(kind)
end

--- The version of an API group the cluster prefers ("v1" for the core).
function Client:preferred_version(group)
  check(self)
  if type(group) ~= "string" then error("bad argument #2 (group: string expected)", 2) end
  return self._disco:version_of(group)
end

function Client:get(kind, name, opts)
  check(self)
  check_name(kind, 2, "kind")
  check_name(name, 3, "name")
  opts = check_opts(opts, 4)
  local ns, timeout = self:_ns_of(opts), self:_timeout_of(opts)
  local r, err, code, raw = self._disco:resolve(kind)
  if not r then return nil, err, code, raw end
  return self:_call { method = "GET", path = kinds.path(r, ns, name), timeout = timeout }
end

function Client:list(kind, opts)
  check(self)
  check_name(kind, 2, "kind")
  opts = check_opts(opts, 3)
  local ns, timeout = self:_ns_of(opts), self:_timeout_of(opts)
  local sel, fsel = opt_string(opts, "selector"), opt_string(opts, "field_selector")
  if opt_bool(opts, "all_namespaces") then ns = nil end
  local limit = opts.limit
  if limit ~= nil and (math.type(limit) ~= "integer" or limit < 0) then
    error("field 'limit' must be a whole number >= 0", 2)
  end
  local r, err, code, raw = self._disco:resolve(kind)
  if not r then return nil, err, code, raw end
  local q = util.query { { "labelSelector", sel ~= "" and sel or nil }, { "fieldSelector", fsel ~= "" and fsel or nil },
                         { "limit", (limit and limit > 0) and tostring(limit) or nil } }
  return self:_call { method = "GET", path = kinds.path(r, ns), query = q, timeout = timeout }
end

-- apiVersion, kind, metadata.name/namespace of a manifest.
local function manifest_meta(m, need_name)
  local api, kind = m.apiVersion, m.kind
  local md = type(m.metadata) == "table" and m.metadata or {}
  if type(api) ~= "string" or api == "" then return nil, "manifest has no apiVersion", "invalid", "manifest" end
  if type(kind) ~= "string" or kind == "" then return nil, "manifest has no kind", "invalid", "manifest" end
  local name = type(md.name) == "string" and md.name or nil
  if need_name and (not name or name == "") then
    return nil, kind .. " manifest has no metadata.name", "invalid", "manifest"
  end
  local ns = type(md.namespace) == "string" and md.namespace ~= "" and md.namespace or nil
  return { api = api, kind = kind, name = name, ns = ns }
end

local function write_query(opts, default_manager, allow_force)
  local fm = opt_string(opts, "field_manager")
  if fm == "" then error("field 'field_manager' must not be empty", 4) end
  fm = fm or default_manager
  local force = allow_force and opt_bool(opts, "force")
  local dry = opt_bool(opts, "dry_run")
  return util.query { { "dryRun", dry and "All" or nil }, { "fieldManager", fm }, { "force", force and "true" or nil } }
end

function Client:_write(m, opts, mode)
  check(self)
  if type(m) ~= "table" then error(string.format("bad argument #2 (manifest table expected, got %s)", type(m)), 3) end
  opts = check_opts(opts, 3)
  local meta, err, code, raw = manifest_meta(m, mode ~= "create")
  if not meta then return nil, err, code, raw end
  local ns = meta.ns or self:_ns_of(opts)
  local timeout = self:_timeout_of(opts)
  local query = write_query(opts, mode == "apply" and "rollout" or nil, mode == "apply")
  local r
  r, err, code, raw = self._disco:resolve_gvk(meta.api, meta.kind)
  if not r then return nil, err, code, raw end
  local body = json.encode(m)
  return self:_call {
    method = mode == "apply" and "PATCH" or mode == "create" and "POST" or "PUT",
    path = kinds.path(r, ns, mode ~= "create" and meta.name or nil), query = query, body = body,
    content_type = mode == "apply" and "application/apply-patch+yaml" or "application/json", timeout = timeout,
  }
end

--- Server-side apply: one PATCH (application/apply-patch+yaml) with
-- fieldManager (default "rollout"), force and dryRun as asked.
function Client:apply(m, opts) return self:_write(m, opts, "apply") end
function Client:create(m, opts) return self:_write(m, opts, "create") end
function Client:replace(m, opts) return self:_write(m, opts, "replace") end

local PATCH_TYPES = { merge = "application/merge-patch+json", strategic = "application/strategic-merge-patch+json",
                      json = "application/json-patch+json" }

function Client:patch(kind, name, patch, opts)
  check(self)
  check_name(kind, 2, "kind")
  check_name(name, 3, "name")
  if type(patch) ~= "table" and type(patch) ~= "string" then
    error("bad argument #4 (table or JSON string expected)", 2)
  end
  opts = check_opts(opts, 5)
  local ns, timeout = self:_ns_of(opts), self:_timeout_of(opts)
  local ptype = opt_string(opts, "type") or "merge"
  local ctype = PATCH_TYPES[ptype]
  if not ctype then
    error(string.format('field \'type\' must be "merge", "strategic" or "json" (got "%s")', ptype), 2)
  end
  local query = write_query(opts, nil, false)
  local r, err, code, raw = self._disco:resolve(kind)
  if not r then return nil, err, code, raw end
  return self:_call { method = "PATCH", path = kinds.path(r, ns, name), query = query, timeout = timeout,
                      body = type(patch) == "table" and json.encode(patch) or patch, content_type = ctype }
end

local PROPAGATION = { Background = true, Foreground = true, Orphan = true }

function Client:delete(kind, name, opts)
  check(self)
  check_name(kind, 2, "kind")
  check_name(name, 3, "name")
  opts = check_opts(opts, 4)
  local ns, timeout = self:_ns_of(opts), self:_timeout_of(opts)
  local prop = opt_string(opts, "propagation")
  if prop and not PROPAGATION[prop] then
    error(string.format('field \'propagation\' must be "Background", "Foreground" or "Orphan" (got "%s")', prop), 2)
  end
  local r, err, code, raw = self._disco:resolve(kind)
  if not r then return nil, err, code, raw end
  local q = util.query { { "dryRun", opt_bool(opts, "dry_run") and "All" or nil }, { "propagationPolicy", prop } }
  return self:_call { method = "DELETE", path = kinds.path(r, ns, name), query = q, timeout = timeout }
end

--- A raw request: {status, headers, body, object = decoded JSON or nil};
-- any HTTP status is an answer, not an error.
function Client:request(rq)
  check(self)
  if type(rq) ~= "table" then error("bad argument #2 (table expected)", 2) end
  local method = rq.method or "GET"
  if type(method) ~= "string" or not method:match("^[%w!#$%%&'*+.^_`|~-]+$") then
    error("field 'method' must be an HTTP method name", 2)
  end
  local path = rq.path
  if type(path) ~= "string" then error("field 'path' must be a string (got " .. type(path) .. ")", 2) end
  if path:sub(1, 1) ~= "/" or path:find("[%s?#%z]") then
    error("field 'path' must start with '/' and hold no spaces, '?' or '#' (use 'query')", 2)
  end
  local pieces = {}
  if rq.query ~= nil then
    if type(rq.query) ~= "table" then error("field 'query' must be a table (got " .. type(rq.query) .. ")", 2) end
    for k, v in pairs(rq.query) do
      if type(k) ~= "string" then error("query keys must be strings", 2) end
      if type(v) == "table" then
        for i, x in ipairs(v) do
          if type(x) ~= "string" and type(x) ~= "number" then
            error(string.format("query.%s[%d] must be a string or a number", k, i), 2)
          end
          pieces[#pieces + 1] = { k, tostring(x) }
        end
      elseif type(v) == "boolean" then
        pieces[#pieces + 1] = { k, v and "true" or "false" }
      elseif type(v) == "string" or type(v) == "number" then
        pieces[#pieces + 1] = { k, tostring(v) }
      else
        error("query." .. k .. " must be a string, a number, a boolean or a list", 2)
      end
    end
  end
  local body = rq.body
  if type(body) == "table" then body = json.encode(body)
  elseif body ~= nil and type(body) ~= "string" then
    error("field 'body' must be a string or a table (got " .. type(body) .. ")", 2)
  end
  for _, f in ipairs { "content_type", "accept" } do
    local v = opt_string(rq, f)
    if v and v:find("[\r\n]") then error("fields 'content_type' and 'accept' must not hold CR or LF", 2) end
  end
  local res, url_or_err, code, raw = self:_perform { method = method, path = path, query = util.query(pieces),
    body = body, content_type = rq.content_type, accept = rq.accept, timeout = self:_timeout_of(rq) }
  if not res then return nil, url_or_err, code, raw end
  local out = { status = res.status, headers = res.headers, body = res.body }
  local ct = res.headers["content-type"]
  if res.body ~= "" and ct and ct:find("json", 1, true) then out.object = json.decode(res.body, { max_size = k8s.MAX_BODY }) end
  return out
end

-- ---------------------------------------------------------------- watch

-- Opens the watch stream: credentials, 401 refresh, Retry-After retries.
-- -> stream | nil, message, code, raw[, status]
function Client:_open_stream(path, query, timeout)
  local url = self._server .. path .. "?" .. query
  local refreshed, attempts = false, 0
  local deadline = time.now() + timeout
  while true do
    local ok, err, code, raw = self:_auth()
    if not ok then return nil, err, code, raw end
    local st, serr, scode, sraw = self._session:stream {
      method = "GET", url = url, headers = { Accept = "application/json" },
      timeout = math.max(math.min(self._timeout, deadline - time.now()), 0.001),
    }
    if not st then return nil, serr, scode, sraw end
    local s = st:status()
    if s == 200 then return st end
    local body = st:rest(math.max(deadline - time.now(), 1)) or ""
    local headers = st:headers()
    st:close()
    if s == 401 and not refreshed and self:_invalidate() then
      refreshed = true
    elseif (s == 429 or s >= 500) and attempts < k8s.MAX_RETRIES and
           math.type(tonumber(headers["retry-after"] or "")) == "integer" and
           tonumber(headers["retry-after"]) + time.now() < deadline then
      attempts = attempts + 1
      time.sleep(tonumber(headers["retry-after"]))
    else
      return status.error(s, body, "GET " .. util.redact_url(url))
    end
  end
end

--- See the module header.
function Client:watch(kind, opts, fn)
  check(self)
  check_name(kind, 2, "kind")
  opts = check_opts(opts, 3)
  if type(fn) ~= "function" then error("bad argument #4 to 'watch' (function expected, got " .. type(fn) .. ")", 2) end
  local ns = self:_ns_of(opts)
  local sel, fsel = opt_string(opts, "selector"), opt_string(opts, "field_selector")
  if opt_bool(opts, "all_namespaces") then ns = nil end
  local rv = opts.resource_version
  if math.type(rv) == "integer" then rv = tostring(rv)
  elseif rv ~= nil and type(rv) ~= "string" then
    error("field 'resource_version' must be a string (got " .. type(rv) .. ")", 2)
  end
  local timeout = opts.timeout
  if timeout ~= nil and (type(timeout) ~= "number" or not (timeout > 0)) then
    error("field 'timeout' must be a number of seconds > 0", 2)
  end
  local r, err, code, raw = self._disco:resolve(kind)
  if not r then return nil, err, code, raw end
  local path = kinds.path(r, ns)
  local q = util.query { { "watch", "1" }, { "labelSelector", sel ~= "" and sel or nil },
                         { "fieldSelector", fsel ~= "" and fsel or nil }, { "resourceVersion", rv ~= "" and rv or nil },
                         { "timeoutSeconds", timeout and tostring(math.max(1, math.ceil(math.min(timeout, 2e9)))) or nil } }
  local deadline = timeout and (time.now() + timeout) or math.huge
  local st <close>, serr, scode, sraw, sobj = self:_open_stream(path, q, math.min(self._timeout, timeout or self._timeout))
  if not st then return nil, serr, scode, sraw, sobj end
  local last = rv
  while true do
    if self._closed then return true, last end
    local left = deadline - time.now()
    if left <= 0 then return true, last end
    local line, lerr, lcode, lraw = st:read(math.min(left, 1))
    if line == nil then
      if lerr then return nil, lerr, lcode, lraw end
      return true, last -- the server ended the watch (timeoutSeconds)
    end
    if line and line:find("%S") then
      local ev, derr = json.decode(line, { max_size = 64 << 20 })
      if type(ev) ~= "table" then
        return nil, "watch " .. path .. ": an event is not JSON: " .. tostring(derr), "protocol", "json"
      end
      local typ, obj = ev.type, ev.object
      if type(typ) ~= "string" or type(obj) ~= "table" then
        return nil, "watch " .. path .. ": an event has no type or object", "protocol", "event"
      end
      if typ == "ERROR" then
        local c = math.tointeger(obj.code) or 0
        local reason = type(obj.reason) == "string" and obj.reason ~= "" and obj.reason or status.reason_for_code(c)
        local msg = type(obj.message) == "string" and obj.message ~= "" and util.one_line(obj.message) or
          "watch ERROR event"
        return nil, msg, c == 410 and "gone" or status.code(reason, c), reason, obj
      end
      local md = type(obj.metadata) == "table" and obj.metadata or {}
      if type(md.resourceVersion) == "string" then last = md.resourceVersion end
      if typ ~= "BOOKMARK" then
        if fn(typ, obj) == true then return true, last end
      end
    end
  end
end

-- ------------------------------------------------------------ workloads

local workloads = require "rollout.k8s.workloads"
workloads.install(k8s, Client, check)

return k8s
