--- rollout.k8s.config: which cluster, which credentials - the kubeconfig
-- as client-go reads it, or the in-cluster service account. Pure policy:
-- files are read here, nothing is sent anywhere.
--
--   config.resolve{kubeconfig =, context =, namespace =, in_cluster =}
--     -> cfg | nil, message, code, raw
--
-- cfg: {server, tls_server_name, insecure, ca (PEM), proxy, token,
--       token_file, cert, key (PEM), exec = {...} | nil, context, namespace,
--       in_cluster, source (what to name in messages), files (the
--       kubeconfig files read), explicit (the kubeconfig option, if given)}
--
-- Which files (client-go tools/clientcmd/loader.go, ClientConfigLoadingRules):
--   * opts.kubeconfig: that file only, and it must exist;
--   * else every file of $KUBECONFIG (':'-separated, duplicates dropped,
--     empty entries and missing files skipped), else ~/.kube/config;
--   * the files are merged: for clusters, contexts and users the first file
--     to define a name wins, the whole entry (a later file's entry of the
--     same name is ignored, even its other fields); current-context is the
--     first non-empty one; relative paths are relative to the file that
--     holds them;
--   * nothing found and KUBERNETES_SERVICE_HOST set: in-cluster
--     (client-go rest.InClusterConfig; kubectl falls back the same way).
--
-- What is refused, as client-go's validation refuses it
-- (tools/clientcmd/validation.go validateClusterInfo / validateAuthInfo):
-- certificate-authority together with certificate-authority-data,
-- client-certificate with client-certificate-data (and the key), a client
-- certificate without a key, token + username/password, exec together with
-- auth-provider, an exec without command or apiVersion, an exec of
-- apiVersion client.authentication.k8s.io/v1 without interactiveMode
-- (v1beta1 defaults to IfAvailable: tools/clientcmd/api/v1/defaults.go),
-- insecure-skip-tls-verify together with a CA (client-go transport:
-- "specifying a root certificates file with the insecure flag is not
-- allowed").
--
-- Credentials, in client-go's order: a static token (tokenFile wins over
-- token: tools/clientcmd/api/types.go, "the TokenFile will be periodically
-- read and the last successfully read value takes precedence over Token")
-- or client certificate, and only without them the exec plugin
-- (plugin/pkg/client/auth/exec/exec.go UpdateTransportConfig: "If a bearer
-- token is present ... we should assume the intention is to use the
-- provided token").
--
-- Every error is one line naming the file ("kubeconfig PATH: ...") and
-- never shows a credential. Codes: not_found (a file, context, cluster or
-- user that does not exist), forbidden (unreadable), invalid (anything the
-- rules above refuse).
local fs = require "rollout.fs"
local yaml = require "rollout.yaml"
local json = require "rollout.json"
local util = require "rollout.k8s.util"

local config = {}

config.SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
config.EXEC_V1 = "client.authentication.k8s.io/v1"
config.EXEC_V1BETA1 = "client.authentication.k8s.io/v1beta1"
local MAX_FILE = 16 << 20

local function is_null(v) return v == nil or v == json.null end

local function fail(what, code, raw, fmt, ...)
  return nil, what .. ": " .. string.format(fmt, ...), code, raw
end

local function dirname(path)
  local d = path:match("^(.*)/[^/]*$")
  if d == nil then return "." end
  if d == "" then return "/" end
  return d
end

local function resolve_path(dir, p)
  if p:sub(1, 1) == "/" or dir == nil then return p end
  return dir .. "/" .. p
end

-- ------------------------------------------------------------- loading

-- Reads and parses one kubeconfig. -> table | nil (missing) | false, msg, code, raw
local function load_file(path)
  local text, err, code, raw = fs.read(path)
  if not text then
    if raw == "ENOENT" then return nil end
    return false, "kubeconfig " .. tostring(err), code, raw
  end
  if #text > MAX_FILE then return false, "kubeconfig " .. path .. ": over 16 MiB", "too_large" end
  local doc, perr = yaml.load(text, { name = path })
  if doc == nil and perr then
    -- "invalid !!int value '...'" would quote a value: maybe a secret
    local head = perr:match("^(.-) value '")
    if head then return false, "kubeconfig " .. head .. " value (not shown)", "invalid", "yaml" end
    return false, "kubeconfig " .. perr, "invalid", "yaml"
  end
  if doc == nil or doc == json.null then doc = {} end
  if type(doc) ~= "table" then return false, "kubeconfig " .. path .. ": not a kubeconfig (expected a mapping)", "invalid" end
  return doc
end

-- The named entries of list `key` of doc, with their file's directory.
local function entries(doc, key, path, what)
  local list = doc[key]
  if is_null(list) then return {} end
  if type(list) ~= "table" then return nil, string.format("kubeconfig %s: %s must be a list", path, key) end
  local out = {}
  for i, e in ipairs(list) do
    if type(e) ~= "table" or type(e.name) ~= "string" then
      return nil, string.format("kubeconfig %s: %s[%d] has no name", path, key, i)
    end
    local body = e[what]
    if is_null(body) then body = {} end
    if type(body) ~= "table" then
      return nil, string.format("kubeconfig %s: %s %q must be a mapping", path, what, e.name)
    end
    out[#out + 1] = { name = e.name, body = body, file = path, dir = dirname(path) }
  end
  return out
end

--- The kubeconfig files to read: {paths}, explicit (bool).
function config.files(opts)
  if opts and opts.kubeconfig then return { opts.kubeconfig }, true end
  local env = os.getenv("KUBECONFIG")
  local out, seen = {}, {}
  if env and env ~= "" then
    for p in (env .. ":"):gmatch("([^:]*):") do
      if p ~= "" and not seen[p] then
        seen[p] = true
        out[#out + 1] = p
      end
    end
    return out, false
  end
  local home = os.getenv("HOME")
  if home and home ~= "" then out[1] = home .. "/.kube/config" end
  return out, false
end

--- Loads and merges the kubeconfig files (see the module's header).
-- -> merged {clusters = {name -> entry}, contexts, users, current,
--    files = {read}, names = {contexts = {...}, ...}} | nil (no file) |
--    false, message, code, raw
function config.load_merged(paths, explicit)
  local merged = { clusters = {}, contexts = {}, users = {}, files = {},
                   order = { clusters = {}, contexts = {}, users = {} } }
  for _, path in ipairs(paths) do
    local doc, err, code, raw = load_file(path)
    if doc == false then return false, err, code, raw end
    if doc == nil and explicit then
      return false, "kubeconfig " .. path .. ": No such file or directory", "not_found", "ENOENT"
    end
    if doc then
      merged.files[#merged.files + 1] = path
      for _, kind in ipairs { { "clusters", "cluster" }, { "contexts", "context" }, { "users", "user" } } do
        local list, lerr = entries(doc, kind[1], path, kind[2])
        if not list then return false, lerr, "invalid", "kubeconfig" end
        for _, e in ipairs(list) do
          if merged[kind[1]][e.name] == nil then -- the first file to set a map key wins
            merged[kind[1]][e.name] = e
            table.insert(merged.order[kind[1]], e.name)
          end
        end
      end
      local cur = doc["current-context"]
      if not is_null(cur) and type(cur) ~= "string" then
        return false, "kubeconfig " .. path .. ": current-context must be a string", "invalid", "kubeconfig"
      end
      if merged.current == nil and type(cur) == "string" and cur ~= "" then merged.current = cur end
    end
  end
  if #merged.files == 0 then return nil end
  return merged
end

-- ---------------------------------------------------------- validation

local function str_field(t, field, what)
  local v = t[field]
  if is_null(v) then return nil end
  if type(v) ~= "string" then return nil, string.format("%s%s must be a string", what, field) end
  return v
end

local function bool_field(t, field, what)
  local v = t[field]
  if is_null(v) then return false end
  if type(v) ~= "boolean" then return nil, string.format("%s%s must be true or false", what, field) end
  return v
end

-- Reads a PEM field: *-data (base64) or the file (relative to dir).
-- -> PEM | nil (absent) | false, message, code, raw
local function pem_field(t, owner, file_field, data_field, kind, dir)
  local data, err = str_field(t, data_field, owner)
  if err then return false, err, "invalid" end
  local file, ferr = str_field(t, file_field, owner)
  if ferr then return false, ferr, "invalid" end
  local what = kind == "CERTIFICATE" and "certificate" or "private key"
  if data and data ~= "" then
    local pem = util.base64_decode(data)
    if not pem then return false, owner .. data_field .. " is not valid base64", "invalid" end
    if not util.pem_has(pem, kind) then return false, owner .. data_field .. " holds no PEM " .. what, "invalid" end
    return pem
  end
  if file and file ~= "" then
    local path = resolve_path(dir, file)
    local text, rerr, code, raw = fs.read(path)
    if not text then
      return false, owner .. file_field .. " " .. tostring(rerr), code, raw
    end
    if not util.pem_has(text, kind) then
      return false, string.format("%s%s %s holds no PEM %s", owner, file_field, path, what), "invalid"
    end
    return text, path
  end
  return nil
end

--- A bearer token read from a file: trimmed; nil, why when unusable.
function config.read_token_file(path)
  local text, err, code, raw = fs.read(path)
  if not text then return nil, tostring(err), code, raw end
  text = text:gsub("^%s+", ""):gsub("%s+$", "")
  if text == "" or text:find("[\r\n%z]") then
    return nil, path .. " is empty or holds more than one line", "invalid"
  end
  return text
end

local function check_server(server, cluster)
  if server == nil or server == "" then return nil, string.format('cluster "%s" has no server', cluster) end
  if not server:match("^https?://") then
    return nil, string.format('cluster "%s": server must be an http(s) URL', cluster)
  end
  if server:find("[%s]") then
    return nil, string.format('cluster "%s": server must be a URL without spaces', cluster)
  end
  return (server:gsub("/+$", ""))
end

-- users[].user.exec -> the exec spec, or nil, message.
local function read_exec(ex, owner, dir)
  local command, e1 = str_field(ex, "command", owner .. "exec ")
  if e1 then return nil, e1 end
  if not command or command == "" then return nil, owner .. "exec has no command" end
  local api, e2 = str_field(ex, "apiVersion", owner .. "exec ")
  if e2 then return nil, e2 end
  if not api or api == "" then return nil, owner .. "exec has no apiVersion (use " .. config.EXEC_V1 .. ")" end
  if api ~= config.EXEC_V1 and api ~= config.EXEC_V1BETA1 then
    return nil, string.format('%sexec apiVersion "%s" is not supported (use %s or %s)', owner, api,
      config.EXEC_V1, config.EXEC_V1BETA1)
  end
  local hint, e3 = str_field(ex, "installHint", owner .. "exec ")
  if e3 then return nil, e3 end
  local mode, e4 = str_field(ex, "interactiveMode", owner .. "exec ")
  if e4 then return nil, e4 end
  if mode == nil or mode == "" then
    -- client-go tools/clientcmd/api/v1/defaults.go SetDefaults_ExecConfig:
    -- v1beta1 defaults to IfAvailable, v1 must say it (validation.go)
    if api == config.EXEC_V1BETA1 then
      mode = "IfAvailable"
    else
      return nil, owner .. "exec interactiveMode must be set (Never or IfAvailable) for " .. api ..
        ", as kubectl requires"
    end
  end
  if mode == "Always" then
    return nil, owner .. "exec interactiveMode is Always, but rollout runs plugins without a terminal"
  elseif mode ~= "Never" and mode ~= "IfAvailable" then
    return nil, string.format('%sexec interactiveMode "%s" is not Never, IfAvailable or Always', owner, mode)
  end
  local provide, e5 = bool_field(ex, "provideClusterInfo", owner .. "exec ")
  if e5 then return nil, e5 end
  local args = {}
  if not is_null(ex.args) then
    if type(ex.args) ~= "table" then return nil, owner .. "exec args must be a list of strings" end
    for i, a in ipairs(ex.args) do
      if type(a) ~= "string" then return nil, string.format("%sexec args[%d] must be a string", owner, i) end
      args[i] = a
    end
  end
  local env = {}
  if not is_null(ex.env) then
    if type(ex.env) ~= "table" then return nil, owner .. "exec env must be a list of {name, value}" end
    for i, e in ipairs(ex.env) do
      local ok = type(e) == "table" and type(e.name) == "string" and e.name ~= "" and not e.name:find("=", 1, true)
        and (is_null(e.value) or type(e.value) == "string")
      if not ok then
        return nil, string.format("%sexec env[%d] must be {name = NAME, value = string}", owner, i)
      end
      env[e.name] = is_null(e.value) and "" or e.value
    end
  end
  return {
    command = command:find("/", 1, true) and resolve_path(dir, command) or command,
    name = command:match("([^/]+)$") or command,
    api_version = api, install_hint = hint, interactive_mode = mode, provide_cluster_info = provide,
    args = args, env = env,
  }
end

-- ----------------------------------------------------------- in-cluster

--- The in-cluster service account (client-go rest.InClusterConfig):
-- https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, the token,
-- ca.crt and namespace of /var/run/secrets/kubernetes.io/serviceaccount
-- (or $ROLLOUT_K8S_SA_DIR).
function config.in_cluster(opts)
  local what = "in-cluster"
  local host, port = os.getenv("KUBERNETES_SERVICE_HOST"), os.getenv("KUBERNETES_SERVICE_PORT")
  local dir = os.getenv("ROLLOUT_K8S_SA_DIR")
  if not dir or dir == "" then dir = config.SA_DIR end
  if not host or host == "" or not port or port == "" then
    return fail(what, "invalid", "in-cluster", "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set")
  end
  if not port:match("^%d+$") or #port > 5 then
    return fail(what, "invalid", "in-cluster", 'KUBERNETES_SERVICE_PORT "%s" is not a port number', port)
  end
  if host:find("[/ @?#%[%]\\]") then
    return fail(what, "invalid", "in-cluster", 'KUBERNETES_SERVICE_HOST "%s" is not a host name', host)
  end
  local server = host:find(":", 1, true) and ("https://[" .. host .. "]:" .. port) or ("https://" .. host .. ":" .. port)
  local token_path = dir .. "/token"
  local token, terr, tcode, traw = config.read_token_file(token_path)
  if not token then
    if tcode == "invalid" then return fail(what, "invalid", nil, "token %s", terr) end
    return fail(what, tcode, traw, "token %s", terr)
  end
  local ca_path = dir .. "/ca.crt"
  local ca, cerr, ccode, craw = fs.read(ca_path)
  if not ca then return fail(what, ccode, craw, "certificate authority %s", tostring(cerr)) end
  if not util.pem_has(ca, "CERTIFICATE") then
    return fail(what, "invalid", nil, "certificate authority %s holds no PEM certificate", ca_path)
  end
  local ns = opts.namespace
  if not ns or ns == "" then
    local text = fs.read(dir .. "/namespace")
    ns = text and text:gsub("^%s+", ""):gsub("%s+$", "") or ""
    if ns == "" then ns = "default" end
  end
  return { server = server, ca = ca, token = token, token_file = token_path, namespace = ns, in_cluster = true,
           source = dir, files = {} }
end

-- ------------------------------------------------------------ resolve

local function names(merged, key)
  local out = {}
  for _, n in ipairs(merged.order[key]) do out[#out + 1] = n end
  return #out > 0 and table.concat(out, ", ") or "none"
end

--- See the module header.
function config.resolve(opts)
  opts = opts or {}
  if opts.in_cluster then return config.in_cluster(opts) end
  local paths, explicit = config.files(opts)
  local merged, merr, mcode, mraw = config.load_merged(paths, explicit)
  if merged == false then return nil, merr, mcode, mraw end
  local host = os.getenv("KUBERNETES_SERVICE_HOST")
  if merged == nil then
    if not explicit and host and host ~= "" then return config.in_cluster(opts) end
    if #paths == 0 then
      return nil, "no kubeconfig: KUBECONFIG and HOME are not set, and KUBERNETES_SERVICE_HOST is not set " ..
        "(not in a cluster)", "not_found", "ENOENT"
    end
    return nil, string.format("no kubeconfig: %s %s not exist, and KUBERNETES_SERVICE_HOST is not set (not in a cluster)",
      table.concat(paths, ", "), #paths == 1 and "does" or "do"), "not_found", "ENOENT"
  end
  local source = table.concat(merged.files, ":")
  local what = "kubeconfig " .. source
  local ctx_name = opts.context
  if ctx_name == nil or ctx_name == "" then
    ctx_name = merged.current
    if ctx_name == nil then
      return fail(what, "invalid", "kubeconfig", "no context given and current-context is not set (contexts: %s)",
        names(merged, "contexts"))
    end
  end
  local ctx = merged.contexts[ctx_name]
  if not ctx then
    return fail(what, "not_found", "kubeconfig", 'context "%s" not found (contexts: %s)', ctx_name,
      names(merged, "contexts"))
  end
  local c = ctx.body
  local cluster_name, e1 = str_field(c, "cluster", string.format('context "%s": ', ctx_name))
  if e1 then return fail(what, "invalid", "kubeconfig", "%s", e1) end
  if not cluster_name or cluster_name == "" then
    return fail(what, "invalid", "kubeconfig", 'context "%s" names no cluster', ctx_name)
  end
  local user_name, e2 = str_field(c, "user", string.format('context "%s": ', ctx_name))
  if e2 then return fail(what, "invalid", "kubeconfig", "%s", e2) end
  local ns, e3 = str_field(c, "namespace", string.format('context "%s": ', ctx_name))
  if e3 then return fail(what, "invalid", "kubeconfig", "%s", e3) end
  local cl = merged.clusters[cluster_name]
  if not cl then
    return fail(what, "not_found", "kubeconfig", 'cluster "%s" of context "%s" not found (clusters: %s)',
      cluster_name, ctx_name, names(merged, "clusters"))
  end
  local u
  if user_name and user_name ~= "" then
    u = merged.users[user_name]
    if not u then
      return fail(what, "not_found", "kubeconfig", 'user "%s" of context "%s" not found (users: %s)', user_name,
        ctx_name, names(merged, "users"))
    end
  end

  -- the cluster
  local out = { context = ctx_name, files = merged.files, source = source, explicit = explicit and paths[1] or nil }
  what = "kubeconfig " .. cl.file
  local owner = string.format('cluster "%s": ', cluster_name)
  local b = cl.body
  local server, se = str_field(b, "server", owner)
  if se then return fail(what, "invalid", "kubeconfig", "%s", se) end
  local okserver, serr = check_server(server, cluster_name)
  if not okserver then return fail(what, "invalid", "kubeconfig", "%s", serr) end
  out.server = okserver
  local insecure, ie = bool_field(b, "insecure-skip-tls-verify", owner)
  if ie then return fail(what, "invalid", "kubeconfig", "%s", ie) end
  -- client-go validation.go validateClusterInfo
  if not is_null(b["certificate-authority"]) and b["certificate-authority"] ~= "" and
     not is_null(b["certificate-authority-data"]) and b["certificate-authority-data"] ~= "" then
    return fail(what, "invalid", "kubeconfig",
      "%scertificate-authority-data and certificate-authority are both specified (kubectl refuses this too)", owner)
  end
  local ca, cerr, ccode, craw = pem_field(b, owner, "certificate-authority", "certificate-authority-data",
    "CERTIFICATE", cl.dir)
  if ca == false then return fail(what, ccode, craw, "%s", cerr) end
  if insecure and ca then
    return fail(what, "invalid", "kubeconfig",
      "%sa certificate authority together with insecure-skip-tls-verify is not allowed", owner)
  end
  out.ca, out.insecure = ca, insecure
  local tsn, te = str_field(b, "tls-server-name", owner)
  if te then return fail(what, "invalid", "kubeconfig", "%s", te) end
  if tsn and tsn ~= "" then
    if tsn:find("[%s/:@%[%]?#]") then
      return fail(what, "invalid", "kubeconfig", "%stls-server-name %q is not a host name", owner, tsn)
    end
    out.tls_server_name = tsn
  end
  local proxy, pe = str_field(b, "proxy-url", owner)
  if pe then return fail(what, "invalid", "kubeconfig", "%s", pe) end
  if proxy and proxy ~= "" then
    -- client-go tools/clientcmd/client_config.go parseProxyURL: http, https, socks5
    if not (proxy:match("^https?://[^%s]+$") or proxy:match("^socks5://[^%s]+$")) then
      return fail(what, "invalid", "kubeconfig", "%sproxy-url must be an http, https or socks5 URL", owner)
    end
    out.proxy = proxy
  end
  out.cluster_config = nil
  for _, ext in ipairs(type(b.extensions) == "table" and b.extensions or {}) do
    if type(ext) == "table" and ext.name == "client.authentication.k8s.io/exec" then
      out.cluster_config = ext.extension
    end
  end

  -- the user
  if u then
    what = "kubeconfig " .. u.file
    owner = string.format('user "%s": ', user_name)
    local ub = u.body
    if not is_null(ub["auth-provider"]) then
      if not is_null(ub.exec) then
        return fail(what, "invalid", "kubeconfig", "%sauth-provider cannot be provided in combination with an exec plugin",
          owner)
      end
      local nm = type(ub["auth-provider"]) == "table" and ub["auth-provider"].name or "?"
      return fail(what, "invalid", "kubeconfig", '%sauth-provider "%s" is not supported; use an exec credential plugin',
        owner, tostring(nm))
    end
    local token, t1 = str_field(ub, "token", owner)
    if t1 then return fail(what, "invalid", "kubeconfig", "%s", t1) end
    local token_file, t2 = str_field(ub, "tokenFile", owner)
    if t2 then return fail(what, "invalid", "kubeconfig", "%s", t2) end
    local username = str_field(ub, "username", owner)
    local password = str_field(ub, "password", owner)
    if token and token ~= "" and ((username and username ~= "") or (password and password ~= "")) then
      return fail(what, "invalid", "kubeconfig",
        "%smore than one authentication method found (token, basicAuth), only one is allowed", owner)
    end
    if token and token ~= "" then
      if token:find("[\r\n%z]") then return fail(what, "invalid", "kubeconfig", "%stoken holds a line break", owner) end
      out.token = token
    end
    if token_file and token_file ~= "" then
      local path = resolve_path(u.dir, token_file)
      local ftok, ferr, fcode, fraw = config.read_token_file(path)
      if ftok then
        out.token = ftok -- the file's token wins over token
      elseif not out.token then
        if fcode == "invalid" then
          return fail(what, "invalid", "kubeconfig", "%stokenFile %s", owner, ferr)
        end
        return fail(what, fcode, fraw, "%stokenFile %s", owner, ferr)
      end
      out.token_file = path
    end
    for _, pair in ipairs { { "client-certificate", "client-certificate-data" }, { "client-key", "client-key-data" } } do
      if not is_null(ub[pair[1]]) and ub[pair[1]] ~= "" and not is_null(ub[pair[2]]) and ub[pair[2]] ~= "" then
        return fail(what, "invalid", "kubeconfig", "%s%s and %s are both specified (kubectl refuses this too)", owner,
          pair[2], pair[1])
      end
    end
    local cert, xerr, xcode, xraw = pem_field(ub, owner, "client-certificate", "client-certificate-data",
      "CERTIFICATE", u.dir)
    if cert == false then return fail(what, xcode, xraw, "%s", xerr) end
    local key, kerr, kcode, kraw = pem_field(ub, owner, "client-key", "client-key-data", "PRIVATE KEY", u.dir)
    if key == false then return fail(what, kcode, kraw, "%s", kerr) end
    if (cert ~= nil) ~= (key ~= nil) then
      return fail(what, "invalid", "kubeconfig", "%s%s without %s", owner,
        cert and "client-certificate" or "client-key", cert and "client-key" or "client-certificate")
    end
    out.cert, out.key = cert, key
    if not is_null(ub.exec) then
      if type(ub.exec) ~= "table" then return fail(what, "invalid", "kubeconfig", "%sexec must be a mapping", owner) end
      local spec, eerr = read_exec(ub.exec, owner, u.dir)
      if not spec then return fail(what, "invalid", "kubeconfig", "%s", eerr) end
      -- static credentials outrank the plugin (client-go exec.go UpdateTransportConfig)
      if not out.token and not out.cert then out.exec = spec end
      out.exec_ignored = out.exec == nil
    end
  end
  local opt_ns = opts.namespace
  out.namespace = (opt_ns and opt_ns ~= "") and opt_ns or (ns and ns ~= "" and ns) or "default"
  return out
end

--- KUBERNETES_EXEC_INFO for the plugin (client-go pkg/apis/clientauthentication/v1
-- types.go ExecCredential, Cluster): spec.interactive = false, and
-- spec.cluster when provideClusterInfo is set.
function config.exec_info(cfg)
  local spec = { interactive = false }
  if cfg.exec.provide_cluster_info then
    local cl = { server = cfg.server }
    if cfg.tls_server_name then cl["tls-server-name"] = cfg.tls_server_name end
    if cfg.insecure then cl["insecure-skip-tls-verify"] = true end
    if cfg.ca then cl["certificate-authority-data"] = util.base64_encode(cfg.ca) end
    if cfg.proxy then cl["proxy-url"] = cfg.proxy end
    if cfg.cluster_config ~= nil then cl.config = cfg.cluster_config end
    spec.cluster = cl
  end
  return json.encode { apiVersion = cfg.exec.api_version, kind = "ExecCredential", spec = spec }
end

return config
