-- rollout.k8s against the fake Kubernetes API server (tests/fakes), on
-- 127.0.0.1 only. Every server a test starts is stopped by PID.
local k8s = require "rollout.k8s"
local json = require "rollout.json"
local yaml = require "rollout.yaml"
local proc = require "rollout.proc"
local fs = require "rollout.fs"
local time = require "rollout.time"
local fixture = require "tests.helpers.fixture"

local ROOT = assert(fs.realpath(fixture.root))
local SERVER = ROOT .. "/tests/fakes/kube_apiserver.py"
local PLUGIN = ROOT .. "/tests/fakes/bin/fake-exec-plugin"
local TOKEN = "tok-s3cr3t-7f3a9c21"
local BIN = fixture.bin

local function read(path)
  return fs.read(path) or ""
end

local function write(path, text)
  assert(fs.write_atomic(path, text, { fsync = false }))
end

-- Secrets that must never show up in a message or in tostring(client).
local SECRETS = {}

local function assert_clean(s)
  s = tostring(s)
  for _, secret in ipairs(SECRETS) do
    assert.is_nil(s:find(secret, 1, true), "a secret leaked into: " .. s)
  end
  assert.is_nil(s:find("PRIVATE KEY", 1, true), "key material leaked into: " .. s)
  assert.is_nil(s:find("BEGIN CERTIFICATE", 1, true), "a certificate leaked into: " .. s)
end

-- nil, message, code: one line, clean, the expected code.
local function assert_fails(code, pattern, ok, msg, got_code, got_raw)
  assert.is_nil(ok, "expected a failure, got " .. tostring(ok))
  assert.equal("string", type(msg))
  assert.equal(code, got_code, "message: " .. tostring(msg))
  assert.is_not_nil(require("rollout.errors").codes[got_code], "not in the vocabulary: " .. tostring(got_code))
  if got_raw ~= nil then assert_clean(tostring(got_raw)) end
  assert.is_nil(msg:find("\n"), "message is not one line: " .. msg)
  if pattern then assert.matches(pattern, msg, 1, true) end
  assert_clean(msg)
  return msg
end

local CERTS

-- Starts the fake API server on a free port; returns
-- {pid, port, url, dir, log, requests, kc, kcc, kce}.
local function start_server(args)
  local dir = fixture.tmpdir()
  local s = { dir = dir, log = dir .. "/server.log", requests = dir .. "/requests.jsonl",
    kc = dir .. "/kc", kcc = dir .. "/kc-cert", kce = dir .. "/kc-exec" }
  local argv = { "/usr/bin/python3", SERVER, "--port", "0", "--certs", CERTS, "--token", TOKEN,
    "--request-log", s.requests, "--kubeconfig-out", s.kc, "--kubeconfig-cert-out", s.kcc,
    "--kubeconfig-exec-out", s.kce, "--ready-delay", "0.2" }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  local ok, pid, port = pcall(fixture.start_server, { argv = argv, log = s.log, what = "the fake API server",
    ready = function(text) return text:match("listening on 127%.0%.0%.1:(%d+)") end })
  if not ok then
    fixture.remove(dir)
    error(pid)
  end
  s.pid, s.port = pid, tonumber(port)
  s.url = "https://127.0.0.1:" .. s.port
  return s
end

local function requests(s)
  local out = {}
  for line in read(s.requests):gmatch("[^\n]+") do out[#out + 1] = json.decode(line) end
  return out
end

local function count_writes(s)
  local n = 0
  for _, r in ipairs(requests(s)) do
    if r.method == "POST" or r.method == "PUT" or r.method == "PATCH" or r.method == "DELETE" then n = n + 1 end
  end
  return n
end

-- A kubeconfig with one context "test" (cluster and user tables as given).
local function kubeconfig(path, cluster, user, opts)
  opts = opts or {}
  local cfg = {
    apiVersion = "v1", kind = "Config", ["current-context"] = opts.current or "test",
    clusters = { { name = "test", cluster = cluster } },
    contexts = { { name = "test", context = { cluster = "test", user = "test", namespace = opts.namespace } },
      { name = "other", context = { cluster = "test", user = "test" } } },
    users = { { name = "test", user = user or {} } },
  }
  write(path, yaml.dump(cfg))
  return path
end

local function deployment(name, labels, image, replicas)
  local sel = {}
  for k, v in pairs(labels) do sel[k] = v end
  return {
    apiVersion = "apps/v1", kind = "Deployment",
    metadata = { name = name, labels = labels },
    spec = {
      replicas = replicas or 1,
      selector = { matchLabels = sel },
      template = { metadata = { labels = labels },
        spec = { containers = { { name = "app", image = image or "example/app:v1" } } } },
    },
  }
end

local function configmap(name, labels, data)
  return { apiVersion = "v1", kind = "ConfigMap", metadata = { name = name, labels = labels },
    data = data or { k = "v" } }
end

describe("rollout.k8s", function()
  local srv, dir, ca_data, cert_data, key_data

  setup(function()
    dir = fixture.tmpdir()
    CERTS = dir .. "/certs"
    local r = assert(proc.run { argv = { "bash", ROOT .. "/tests/fakes/make_certs.sh", CERTS }, timeout = 60 })
    assert(r.status == 0, "make_certs.sh failed: " .. r.stderr)
    srv = start_server()
    local kc = assert(yaml.load_file(srv.kc))
    ca_data = kc.clusters[1].cluster["certificate-authority-data"]
    local kcc = assert(yaml.load_file(srv.kcc))
    cert_data = kcc.users[1].user["client-certificate-data"]
    key_data = kcc.users[1].user["client-key-data"]
    local key_pem = read(CERTS .. "/client.key")
    local cert_pem = read(CERTS .. "/client.crt")
    SECRETS = { TOKEN, key_data:sub(1, 40), key_data:sub(-40), cert_data:sub(30, 70),
      key_pem:match("\n([^\n]+)\n"), cert_pem:match("\n([^\n]+)\n"), "exec-tok-", "file-tok-",
      "yaml-hidden-tok" }
  end)

  teardown(function()
    fixture.stop_all(srv)
    fixture.remove(dir)
  end)

  describe("configuration", function()
    it("connects with a token kubeconfig and reports its context", function()
      local c = assert(k8s.client { kubeconfig = srv.kc })
      assert.equal("default", c:namespace())
      assert.equal(srv.url, c:server())
      assert.equal("fake", c:context())
      local s = tostring(c)
      assert.matches('context "fake"', s, 1, true)
      assert.matches(srv.url, s, 1, true)
      assert_clean(s)
      local ns = assert(c:get("Namespace", "default"))
      assert.equal("default", ns.metadata.name)
      local reqs = requests(srv)
      local last = reqs[#reqs]
      assert.equal("/api/v1/namespaces/default", last.path)
      assert.equal("rollout-token", last.user)
      assert.matches("^rollout/", last.user_agent)
      c:close()
      assert.equal("k8s client (closed)", tostring(c))
    end)

    it("connects with a client certificate (data) and with certificate files", function()
      local c = assert(k8s.client { kubeconfig = srv.kcc })
      assert(c:get("Namespace", "default"))
      local reqs = requests(srv)
      assert.equal("rollout-test", reqs[#reqs].user)
      assert_clean(tostring(c))
      -- the same with files, CA from a file too, relative to the kubeconfig
      local d = fixture.tmpdir()
      finally(function() fixture.remove(d) end)
      for _, f in ipairs { "ca.crt", "client.crt", "client.key" } do write(d .. "/" .. f, read(CERTS .. "/" .. f)) end
      kubeconfig(d .. "/kc", { server = srv.url, ["certificate-authority"] = "ca.crt" },
        { ["client-certificate"] = "client.crt", ["client-key"] = d .. "/client.key" }, { namespace = "kube-system" })
      c = assert(k8s.client { kubeconfig = d .. "/kc" })
      assert.equal("kube-system", c:namespace())
      assert.equal("test", c:context())
      local cm = c:list("ConfigMap")
      assert.equal("ConfigMapList", cm.kind)
      reqs = requests(srv)
      assert.equal("/api/v1/namespaces/kube-system/configmaps", reqs[#reqs].path)
      assert.equal("rollout-test", reqs[#reqs].user)
    end)

    it("uses the CA from data and from a file, and refuses an untrusted CA with 'tls'", function()
      local d = fixture.tmpdir()
      finally(function() fixture.remove(d) end)
      kubeconfig(d .. "/data", { server = srv.url, ["certificate-authority-data"] = ca_data }, { token = TOKEN })
      assert(assert(k8s.client { kubeconfig = d .. "/data" }):get("Namespace", "default"))
      kubeconfig(d .. "/file", { server = srv.url, ["certificate-authority"] = CERTS .. "/ca.crt" }, { token = TOKEN })
      assert(assert(k8s.client { kubeconfig = d .. "/file" }):get("Namespace", "default"))
      kubeconfig(d .. "/untrusted", { server = srv.url, ["certificate-authority"] = CERTS .. "/untrusted-ca.crt" },
        { token = TOKEN })
      local c = assert(k8s.client { kubeconfig = d .. "/untrusted" })
      local before = #requests(srv)
      local msg = assert_fails("tls", srv.url, c:get("Namespace", "default"))
      assert.matches("GET", msg, 1, true)
      assert.equal(before, #requests(srv)) -- nothing reached the server's handler
    end)

    it("refuses a client certificate from an untrusted CA with 'Unauthorized'", function()
      local d = fixture.tmpdir()
      finally(function() fixture.remove(d) end)
      kubeconfig(d .. "/kc", { server = srv.url, ["certificate-authority-data"] = ca_data },
        { ["client-certificate"] = CERTS .. "/untrusted-client.crt", ["client-key"] = CERTS .. "/untrusted-client.key" })
      local c = assert(k8s.client { kubeconfig = d .. "/kc" })
      assert_fails("unauthorized", "Unauthorized", c:get("Namespace", "default"))
      -- and a wrong token
      kubeconfig(d .. "/tok", { server = srv.url, ["certificate-authority-data"] = ca_data }, { token = "wrong" })
      c = assert(k8s.client { kubeconfig = d .. "/tok" })
      local ok, msg, code, raw, status = c:get("Namespace", "default")
      assert_fails("unauthorized", "Unauthorized", ok, msg, code)
      assert.equal("Unauthorized", raw)
      assert.equal(401, status.code)
    end)

    it("skips TLS verification only when the kubeconfig says insecure-skip-tls-verify", function()
      local d = fixture.tmpdir()
      finally(function() fixture.remove(d) end)
      -- no CA at all: the system's CAs do not know the test CA
      kubeconfig(d .. "/verify", { server = srv.url }, { token = TOKEN })
      local c = assert(k8s.client { kubeconfig = d .. "/verify" })
      assert_fails("tls", nil, c:get("Namespace", "default"))
      kubeconfig(d .. "/false", { server = srv.url, ["insecure-skip-tls-verify"] = false }, { token = TOKEN })
      c = assert(k8s.client { kubeconfig = d .. "/false" })
      assert_fails("tls", nil, c:get("Namespace", "default"))
      kubeconfig(d .. "/insecure", { server = srv.url, ["insecure-skip-tls-verify"] = true }, { token = TOKEN })
      c = assert(k8s.client { kubeconfig = d .. "/insecure" })
      assert.equal("default", assert(c:get("Namespace", "default")).metadata.name)
      -- a CA together with the insecure flag is refused, as kubectl does
      kubeconfig(d .. "/both", { server = srv.url, ["insecure-skip-tls-verify"] = true,
        ["certificate-authority-data"] = ca_data }, { token = TOKEN })
      assert_fails("invalid", "insecure-skip-tls-verify", k8s.client { kubeconfig = d .. "/both" })
    end)

    it("reads the context, the namespace option and $KUBECONFIG defaults", function()
      local c = assert(k8s.client { kubeconfig = srv.kc, namespace = "team-x" })
      assert.equal("team-x", c:namespace())
      local d = fixture.tmpdir()
      finally(function() fixture.remove(d) end)
      kubeconfig(d .. "/kc", { server = srv.url, ["certificate-authority-data"] = ca_data }, { token = TOKEN },
        { namespace = "ns-a" })
      c = assert(k8s.client { kubeconfig = d .. "/kc", context = "other" })
      assert.equal("other", c:context())
      assert.equal("default", c:namespace()) -- the context "other" has no namespace
      -- $KUBECONFIG (a ':' list: the first file) in a child process
      local script = [[
        local c, err = require("rollout.k8s").client{}
        print(c and (c:context() .. " " .. c:namespace()) or err)
      ]]
      local r = assert(proc.run { argv = { BIN, "-e", script }, timeout = 20,
        env = { KUBECONFIG = d .. "/kc:" .. srv.kc, KUBERNETES_SERVICE_HOST = false } })
      assert.equal(0, r.status, r.stderr)
      assert.equal("test ns-a\n", r.stdout)
    end)

    it("refuses broken kubeconfigs with one-line 'config' errors naming the cause and the file", function()
      local d = fixture.tmpdir()
      finally(function() fixture.remove(d) end)
      local msg = assert_fails("not_found", "kubeconfig " .. d .. "/missing",
        k8s.client { kubeconfig = d .. "/missing" })
      assert.matches("No such file", msg, 1, true)

      msg = assert_fails("not_found", nil, k8s.client { kubeconfig = srv.kc, context = "nope" })
      assert.equal("kubeconfig " .. srv.kc .. ': context "nope" not found (contexts: fake)', msg)

      local kc = kubeconfig(d .. "/kc", { server = srv.url, ["certificate-authority-data"] = ca_data }, { token = TOKEN })
      msg = assert_fails("not_found", nil, k8s.client { kubeconfig = kc, context = "nope" })
      assert.equal("kubeconfig " .. kc .. ': context "nope" not found (contexts: test, other)', msg)

      kubeconfig(d .. "/ca", { server = srv.url, ["certificate-authority"] = d .. "/no-such-ca.crt" }, { token = TOKEN })
      msg = assert_fails("not_found", "kubeconfig " .. d .. "/ca: ", k8s.client { kubeconfig = d .. "/ca" })
      assert.matches('cluster "test": certificate-authority ' .. d .. "/no-such-ca.crt: No such file", msg, 1, true)

      kubeconfig(d .. "/b64", { server = srv.url, ["certificate-authority-data"] = "!!not*base64!!" }, { token = TOKEN })
      msg = assert_fails("invalid", "kubeconfig " .. d .. "/b64: ", k8s.client { kubeconfig = d .. "/b64" })
      assert.matches("certificate-authority-data is not valid base64", msg, 1, true)

      kubeconfig(d .. "/keyb64", { server = srv.url, ["certificate-authority-data"] = ca_data },
        { ["client-certificate-data"] = cert_data, ["client-key-data"] = "AAA%%%" })
      msg = assert_fails("invalid", "client-key-data is not valid base64", k8s.client { kubeconfig = d .. "/keyb64" })
      assert.matches('user "test"', msg, 1, true)

      kubeconfig(d .. "/nokey", { server = srv.url, ["certificate-authority-data"] = ca_data },
        { ["client-certificate-data"] = cert_data })
      assert_fails("invalid", "client-certificate without client-key", k8s.client { kubeconfig = d .. "/nokey" })

      kubeconfig(d .. "/notpem", { server = srv.url, ["certificate-authority-data"] = cert_data:sub(1, 20) },
        { token = TOKEN })
      assert_fails("invalid", "holds no PEM certificate", k8s.client { kubeconfig = d .. "/notpem" })

      write(d .. "/nocluster", yaml.dump { apiVersion = "v1", kind = "Config", ["current-context"] = "c",
        contexts = { { name = "c", context = { cluster = "gone", user = "u" } } },
        clusters = { { name = "k", cluster = { server = srv.url } } }, users = {} })
      msg = assert_fails("not_found", nil, k8s.client { kubeconfig = d .. "/nocluster" })
      assert.equal("kubeconfig " .. d .. '/nocluster: cluster "gone" of context "c" not found (clusters: k)', msg)

      write(d .. "/nouser", yaml.dump { apiVersion = "v1", kind = "Config", ["current-context"] = "c",
        contexts = { { name = "c", context = { cluster = "k", user = "u" } } },
        clusters = { { name = "k", cluster = { server = srv.url } } }, users = {} })
      assert_fails("not_found", 'user "u" of context "c" not found (users: none)', k8s.client { kubeconfig = d .. "/nouser" })

      write(d .. "/nocurrent", yaml.dump { apiVersion = "v1", kind = "Config",
        contexts = { { name = "c", context = { cluster = "k" } } },
        clusters = { { name = "k", cluster = { server = srv.url } } } })
      assert_fails("invalid", "current-context is not set (contexts: c)", k8s.client { kubeconfig = d .. "/nocurrent" })

      write(d .. "/tagged", "apiVersion: v1\nusers:\n- name: u\n  user:\n    token: !!int yaml-hidden-tok\n")
      assert_fails("invalid", "kubeconfig " .. d .. "/tagged:5:", k8s.client { kubeconfig = d .. "/tagged" })

      write(d .. "/bad.yaml", "clusters: [\n  - name: x\n")
      msg = assert_fails("invalid", "kubeconfig " .. d .. "/bad.yaml:", k8s.client { kubeconfig = d .. "/bad.yaml" })

      kubeconfig(d .. "/tokfile", { server = srv.url, ["certificate-authority-data"] = ca_data },
        { tokenFile = "missing-token" })
      assert_fails("not_found", "tokenFile " .. d .. "/missing-token: No such file",
        k8s.client { kubeconfig = d .. "/tokfile" })

      kubeconfig(d .. "/exec", { server = srv.url }, { exec = { command = "x", apiVersion = "client.authentication.k8s.io/v1alpha1" } })
      assert_fails("invalid", 'exec apiVersion "client.authentication.k8s.io/v1alpha1" is not supported',
        k8s.client { kubeconfig = d .. "/exec" })

      kubeconfig(d .. "/provider", { server = srv.url }, { ["auth-provider"] = { name = "gcp" } })
      assert_fails("invalid", 'auth-provider "gcp" is not supported', k8s.client { kubeconfig = d .. "/provider" })
    end)

    it("raises on misuse", function()
      assert.has_error(function() k8s.client "x" end)
      assert.has_error(function() k8s.client { timeout = -1 } end)
      assert.has_error(function() k8s.client { kubeconfig = 42 } end)
      local c = assert(k8s.client { kubeconfig = srv.kc })
      assert.has_error(function() c:get(1, "x") end)
      assert.has_error(function() c:get("pods") end)
      assert.has_error(function() c:get("pods", "") end)
      assert.has_error(function() c:get("pods", "x", "ns") end)
      assert.has_error(function() c:list("pods", { namespace = 3 }) end)
      assert.has_error(function() c:apply("not a table") end)
      assert.has_error(function() c:patch("pods", "x", { a = 1 }, { type = "bogus" }) end)
      assert.has_error(function() c:delete("pods", "x", { propagation = "Later" }) end)
      assert.has_error(function() c:watch("pods", {}, "not a function") end)
      assert.has_error(function() c:request { path = "no-slash" } end)
      assert.has_error(function() c:request { path = "/api?x=1" } end)
      assert.has_error(function() c:logs("p", { tail = -1 }) end)
      assert.has_error(function() c.get(io.stdout, "pods", "x") end)
      c:close()
      c:close() -- idempotent
      local ok, err = pcall(c.get, c, "pods", "x")
      assert.is_false(ok)
      assert.matches("attempt to use a closed k8s client", err)
      ok, err = pcall(c.namespace, c)
      assert.is_false(ok)
      assert.matches("closed", err)
      -- to-be-closed
      do
        local c2 <close> = assert(k8s.client { kubeconfig = srv.kc })
        assert(c2:get("Namespace", "default"))
      end
    end)

    it("fails with 'connect' on a closed port, naming the server URL", function()
      local port = fixture.free_port()
      local d = fixture.tmpdir()
      finally(function() fixture.remove(d) end)
      kubeconfig(d .. "/kc", { server = "https://127.0.0.1:" .. port, ["certificate-authority-data"] = ca_data },
        { token = TOKEN })
      local c = assert(k8s.client { kubeconfig = d .. "/kc" })
      local t0 = time.now()
      local msg = assert_fails("connect", "https://127.0.0.1:" .. port .. "/api/v1/namespaces/default/pods",
        c:list("pods"))
      assert.is_true(time.now() - t0 < fixture.timeout(2))
      assert.matches("^GET ", msg)
    end)

    it("keeps the connection alive between requests", function()
      local c = assert(k8s.client { kubeconfig = srv.kc })
      local hex = string.format("%04X", srv.port)
      local function sockets()
        local n = 0
        for line in io.lines("/proc/net/tcp") do
          local lport, rport = line:match("^%s*%d+: %x+:(%x+) %x+:(%x+)")
          if rport == hex and lport ~= hex then n = n + 1 end
        end
        return n
      end
      collectgarbage("collect") -- earlier clients close their connections now
      local before = sockets()
      for _ = 1, 15 do assert(c:get("Namespace", "default")) end
      assert(c:list("pods"))
      -- one new client socket (established) for 16 requests, not 16 (TIME_WAIT)
      assert.equal(before + 1, sockets())
    end)
  end)

  describe("kubeconfig as client-go reads it", function()
    local function run_child(script, env)
      local r = assert(proc.run { argv = { BIN, "-e", script }, timeout = 20, env = env })
      assert.equal(0, r.status, r.stderr)
      return r.stdout
    end

    it("merges a $KUBECONFIG list: missing files skipped, the first to set a name wins", function()
      local d = fixture.tmpdir()
      finally(function() fixture.remove(d) end)
      -- a.yaml: current-context and the user; b.yaml: the cluster, a context "other" and a
      -- user of the same name as a.yaml's (ignored: a.yaml set it first)
      write(d .. "/a.yaml", yaml.dump { apiVersion = "v1", kind = "Config", ["current-context"] = "merged",
        contexts = { { name = "merged", context = { cluster = "c", user = "u", namespace = "from-a" } } },
        users = { { name = "u", user = { token = TOKEN } } } })
      write(d .. "/b.yaml", yaml.dump { apiVersion = "v1", kind = "Config", ["current-context"] = "other",
        clusters = { { name = "c", cluster = { server = srv.url, ["certificate-authority-data"] = ca_data } } },
        contexts = { { name = "other", context = { cluster = "c", user = "u" } },
                     { name = "merged", context = { cluster = "nope", user = "nope" } } },
        users = { { name = "u", user = { token = "wrong-token-from-b" } } } })
      local script = [[
        local c, err, code = require("rollout.k8s").client{}
        if not c then print("ERR", code, err) return end
        local src = c:source()
        local ns, msg = c:get("Namespace", "default")
        print(c:context(), c:namespace(), table.concat(src.files, ","), ns and "ok" or msg)
      ]]
      local out = run_child(script, { KUBECONFIG = d .. "/missing.yaml:" .. d .. "/a.yaml:" .. d .. "/b.yaml:" ..
        d .. "/a.yaml", KUBERNETES_SERVICE_HOST = false })
      assert.equal(string.format("merged\tfrom-a\t%s/a.yaml,%s/b.yaml\tok\n", d, d), out)
      -- nothing in the list exists: said so, one line
      out = run_child(script, { KUBECONFIG = d .. "/x:" .. d .. "/y", KUBERNETES_SERVICE_HOST = false })
      assert.equal(1, out:find("ERR\tnot_found\tno kubeconfig: " .. d .. "/x, " .. d .. "/y do not exist", 1, true), out)
      -- an explicit kubeconfig must exist (loader.go: ExplicitPath)
      assert_fails("not_found", "No such file", k8s.client { kubeconfig = d .. "/missing.yaml" })
    end)

    it("refuses what kubectl refuses: exec without interactiveMode, both CA fields, both certificate fields", function()
      local d = fixture.tmpdir()
      finally(function() fixture.remove(d) end)
      kubeconfig(d .. "/mode", { server = srv.url, ["certificate-authority-data"] = ca_data },
        { exec = { apiVersion = "client.authentication.k8s.io/v1", command = PLUGIN } })
      assert_fails("invalid", "exec interactiveMode must be set", k8s.client { kubeconfig = d .. "/mode" })
      kubeconfig(d .. "/ca2", { server = srv.url, ["certificate-authority-data"] = ca_data,
        ["certificate-authority"] = CERTS .. "/ca.crt" }, { token = TOKEN })
      assert_fails("invalid", "certificate-authority-data and certificate-authority are both specified",
        k8s.client { kubeconfig = d .. "/ca2" })
      kubeconfig(d .. "/cert2", { server = srv.url, ["certificate-authority-data"] = ca_data },
        { ["client-certificate-data"] = cert_data, ["client-certificate"] = CERTS .. "/client.crt",
          ["client-key-data"] = key_data })
      assert_fails("invalid", "client-certificate-data and client-certificate are both specified",
        k8s.client { kubeconfig = d .. "/cert2" })
      kubeconfig(d .. "/basic", { server = srv.url, ["certificate-authority-data"] = ca_data },
        { token = TOKEN, username = "u", password = "p" })
      assert_fails("invalid", "more than one authentication method", k8s.client { kubeconfig = d .. "/basic" })
      -- v1beta1 defaults interactiveMode to IfAvailable
      kubeconfig(d .. "/beta", { server = srv.url, ["certificate-authority-data"] = ca_data },
        { exec = { apiVersion = "client.authentication.k8s.io/v1beta1", command = PLUGIN,
          env = { { name = "FAKE_EXEC_TOKEN", value = TOKEN } } } })
      assert(assert(k8s.client { kubeconfig = d .. "/beta" }):get("Namespace", "default"))
    end)

    it("uses a static token before an exec plugin, and a tokenFile before a token", function()
      local d = fixture.tmpdir()
      finally(function() fixture.remove(d) end)
      kubeconfig(d .. "/both", { server = srv.url, ["certificate-authority-data"] = ca_data },
        { token = TOKEN, exec = { apiVersion = "client.authentication.k8s.io/v1", command = PLUGIN,
          interactiveMode = "Never", env = { { name = "FAKE_EXEC_COUNT_FILE", value = d .. "/count" },
                                             { name = "FAKE_EXEC_TOKEN", value = "exec-tok-unused" } } } })
      local c = assert(k8s.client { kubeconfig = d .. "/both" })
      assert(c:get("Namespace", "default"))
      assert.equal("rollout-token", requests(srv)[#requests(srv)].user)
      assert.is_false(fs.exists(d .. "/count"), "the plugin ran")
      -- a client certificate outranks the plugin too
      kubeconfig(d .. "/cert", { server = srv.url, ["certificate-authority-data"] = ca_data },
        { ["client-certificate-data"] = cert_data, ["client-key-data"] = key_data,
          exec = { apiVersion = "client.authentication.k8s.io/v1", command = PLUGIN, interactiveMode = "Never",
                   env = { { name = "FAKE_EXEC_COUNT_FILE", value = d .. "/count" } } } })
      assert(assert(k8s.client { kubeconfig = d .. "/cert" }):get("Namespace", "default"))
      assert.equal("rollout-test", requests(srv)[#requests(srv)].user)
      assert.is_false(fs.exists(d .. "/count"), "the plugin ran")
      -- token + tokenFile: the file's token is used
      write(d .. "/tok", TOKEN .. "\n")
      kubeconfig(d .. "/tf", { server = srv.url, ["certificate-authority-data"] = ca_data },
        { token = "file-tok-stale", tokenFile = "tok" })
      assert(assert(k8s.client { kubeconfig = d .. "/tf" }):get("Namespace", "default"))
      assert.equal("rollout-token", requests(srv)[#requests(srv)].user)
      -- a tokenFile that cannot be read falls back to the token
      kubeconfig(d .. "/tf2", { server = srv.url, ["certificate-authority-data"] = ca_data },
        { token = TOKEN, tokenFile = "no-such-token-file" })
      assert(assert(k8s.client { kubeconfig = d .. "/tf2" }):get("Namespace", "default"))
    end)
  end)

  describe("tls-server-name", function()
    local s2, d

    setup(function()
      -- a server whose certificate names only kube.internal (not 127.0.0.1)
      d = fixture.tmpdir()
      local certs = d .. "/certs"
      assert(fs.mkdir_p(certs))
      for _, f in ipairs { "ca.crt", "ca.key", "client.crt", "client.key" } do
        write(certs .. "/" .. f, read(CERTS .. "/" .. f))
      end
      local r = assert(proc.run { argv = { "bash", ROOT .. "/tests/fakes/make_certs.sh", certs }, timeout = 60,
        env = { SERVER_SAN = "DNS:kube.internal" } })
      assert(r.status == 0, r.stderr)
      local saved = CERTS
      CERTS = certs
      local ok, res = pcall(start_server)
      CERTS = saved
      assert(ok, res)
      s2 = res
    end)

    teardown(function()
      fixture.stop_all(s2)
      fixture.remove(d)
    end)

    it("verifies the server's certificate against tls-server-name, also in the exec plugin's cluster info", function()
      local k = fixture.tmpdir()
      finally(function() fixture.remove(k) end)
      kubeconfig(k .. "/plain", { server = s2.url, ["certificate-authority-data"] = ca_data }, { token = TOKEN })
      local msg = assert_fails("tls", nil, assert(k8s.client { kubeconfig = k .. "/plain" }):get("Namespace", "default"))
      assert.matches(s2.url, msg, 1, true)
      kubeconfig(k .. "/named", { server = s2.url, ["certificate-authority-data"] = ca_data,
        ["tls-server-name"] = "kube.internal" }, { token = TOKEN })
      local c = assert(k8s.client { kubeconfig = k .. "/named" })
      assert.equal("default", assert(c:get("Namespace", "default")).metadata.name)
      assert.equal(s2.url, c:server())
      kubeconfig(k .. "/wrong", { server = s2.url, ["certificate-authority-data"] = ca_data,
        ["tls-server-name"] = "other.internal" }, { token = TOKEN })
      assert_fails("tls", nil, assert(k8s.client { kubeconfig = k .. "/wrong" }):get("Namespace", "default"))
      -- the exec plugin is told the name (client.authentication.k8s.io/v1 Cluster.TLSServerName)
      kubeconfig(k .. "/exec", { server = s2.url, ["certificate-authority-data"] = ca_data,
        ["tls-server-name"] = "kube.internal" }, { exec = { apiVersion = "client.authentication.k8s.io/v1",
          command = PLUGIN, interactiveMode = "Never", provideClusterInfo = true,
          env = { { name = "FAKE_EXEC_TOKEN", value = TOKEN }, { name = "FAKE_EXEC_INFO_FILE", value = k .. "/info" } } } })
      assert(assert(k8s.client { kubeconfig = k .. "/exec" }):get("Namespace", "default"))
      local info = assert(json.decode(read(k .. "/info")))
      assert.equal("kube.internal", info.spec.cluster["tls-server-name"])
      assert.equal(s2.url, info.spec.cluster.server)
      assert.is_false(info.spec.interactive)
    end)
  end)

  describe("Retry-After (API Priority and Fairness)", function()
    local function throttle(spec)
      local r = assert(assert(k8s.client { kubeconfig = srv.kc }):request { method = "POST", path = "/_fake/throttle",
        body = spec })
      assert.equal(200, r.status)
    end

    it("sends a request again after a 429 or 5xx with Retry-After, as long as the server asks", function()
      local c = assert(k8s.client { kubeconfig = srv.kc })
      assert(c:get("Namespace", "default"))
      local n = #requests(srv)
      throttle { count = 2, code = 429, retry_after = 1 }
      local t0 = time.now()
      assert.equal("default", assert(c:get("Namespace", "default")).metadata.name)
      local took = time.now() - t0
      assert.is_true(took >= 1.9, "took " .. took)
      local codes = {}
      for i, r in ipairs(requests(srv)) do if i > n + 1 then codes[#codes + 1] = r.code end end
      assert.same({ 429, 429, 200 }, codes)
      -- a 503 with Retry-After, for a write (server-side apply) too
      n = #requests(srv)
      throttle { count = 1, code = 503, retry_after = 1 }
      assert(c:apply(configmap("retried", { app = "retry" })))
      codes = {}
      for i, r in ipairs(requests(srv)) do if i > n + 1 then codes[#codes + 1] = r.method .. " " .. r.code end end
      assert.same({ "PATCH 503", "PATCH 201" }, codes)
    end)

    it("gives up with 'unavailable' after 10 retries, without Retry-After at once, and within the timeout", function()
      local c = assert(k8s.client { kubeconfig = srv.kc, timeout = 20 })
      assert(c:get("Namespace", "default"))
      local n = #requests(srv)
      throttle { count = 50, code = 429, retry_after = 0 }
      local ok, msg, code, raw = c:get("Namespace", "default")
      assert_fails("unavailable", "HTTP 429", ok, msg, code)
      assert.equal("TooManyRequests", raw)
      assert.matches("Too many requests, please try again later.", msg, 1, true)
      assert.equal(n + 1 + 11, #requests(srv)) -- the first try and 10 retries
      -- no Retry-After: no retry
      throttle { count = 1, code = 503, retry_after = json.null }
      n = #requests(srv)
      assert_fails("unavailable", nil, c:get("Namespace", "default"))
      assert.equal(n + 1, #requests(srv))
      -- a Retry-After beyond the call's timeout is not waited for
      throttle { count = 1, code = 429, retry_after = 30 }
      local t0 = time.now()
      assert_fails("unavailable", nil, c:get("Namespace", "default", { timeout = 2 }))
      assert.is_true(time.now() - t0 < fixture.timeout(2))
      throttle { count = 0 }
    end)
  end)

  describe("rollout status, as kubectl decides it", function()
    local function dep(gen, observed, status, conditions)
      local st = { observedGeneration = observed, conditions = conditions }
      for k, v in pairs(status or {}) do st[k] = v end
      return { metadata = { name = "web", generation = gen }, spec = { replicas = 2 }, status = st }
    end

    it("decides nothing before observedGeneration catches up", function()
      local deadline = { { type = "Progressing", status = "False", reason = "ProgressDeadlineExceeded" } }
      local done, msg, failed = k8s.rollout_status(dep(3, 2, { replicas = 2, updatedReplicas = 2,
        availableReplicas = 2 }, deadline))
      assert.is_false(done)
      assert.is_nil(failed) -- a stale condition is not a failure yet
      assert.equal("Waiting for deployment spec update to be observed...", msg)
      done, msg, failed = k8s.rollout_status(dep(3, 3, {}, deadline))
      assert.is_false(done)
      assert.is_true(failed)
      assert.equal('deployment "web" exceeded its progress deadline', msg)
    end)

    it("waits for new replicas, old ones to go and updated ones to be available; surge is complete", function()
      local function st(s) return select(2, k8s.rollout_status(dep(2, 2, s))) end
      assert.equal('Waiting for deployment "web" rollout to finish: 1 out of 2 new replicas have been updated...',
        st { replicas = 3, updatedReplicas = 1, availableReplicas = 2 })
      assert.equal('Waiting for deployment "web" rollout to finish: 1 old replicas are pending termination...',
        st { replicas = 3, updatedReplicas = 2, availableReplicas = 2 })
      assert.equal('Waiting for deployment "web" rollout to finish: 1 of 2 updated replicas are available...',
        st { replicas = 2, updatedReplicas = 2, availableReplicas = 1 })
      -- available above updated (kubectl: not an exact equality) is complete
      local done, msg = k8s.rollout_status(dep(2, 2, { replicas = 2, updatedReplicas = 2, availableReplicas = 3 }))
      assert.is_true(done)
      assert.equal('deployment "web" successfully rolled out', msg)
    end)
  end)

  describe("exec credential plugins", function()
    local function exec_kubeconfig(path, env, extra)
      local e = {}
      for k, v in pairs(env or {}) do e[#e + 1] = { name = k, value = v } end
      table.sort(e, function(a, b) return a.name < b.name end)
      local exec = { apiVersion = "client.authentication.k8s.io/v1", command = PLUGIN, args = {},
        env = e, interactiveMode = "Never" }
      for k, v in pairs(extra or {}) do exec[k] = v end
      if #e == 0 then exec.env = nil end
      return kubeconfig(path, { server = srv.url, ["certificate-authority-data"] = ca_data }, { exec = exec })
    end

    local function count(path)
      return tonumber(read(path):match("%d+")) or 0
    end

    it("gets a token from the plugin and caches it", function()
      local d = fixture.tmpdir()
      finally(function() fixture.remove(d) end)
      -- the server's own exec kubeconfig works
      local c0 = assert(k8s.client { kubeconfig = srv.kce })
      assert(c0:get("Namespace", "default"))
      exec_kubeconfig(d .. "/kc", { FAKE_EXEC_TOKEN = TOKEN, FAKE_EXEC_COUNT_FILE = d .. "/count",
        FAKE_EXEC_REQUIRE_INFO = "1" })
      local c = assert(k8s.client { kubeconfig = d .. "/kc" })
      assert.equal(0, count(d .. "/count")) -- not run before the first request
      for _ = 1, 5 do assert(c:get("Namespace", "default")) end
      assert(c:list("pods"))
      assert.equal(1, count(d .. "/count"))
      assert_clean(tostring(c))
      -- v1beta1 too
      exec_kubeconfig(d .. "/beta", { FAKE_EXEC_TOKEN = TOKEN, FAKE_EXEC_REQUIRE_INFO = "1" },
        { apiVersion = "client.authentication.k8s.io/v1beta1", interactiveMode = "IfAvailable" })
      assert(assert(k8s.client { kubeconfig = d .. "/beta" }):get("Namespace", "default"))
      -- provideClusterInfo: the plugin still gets a valid KUBERNETES_EXEC_INFO
      exec_kubeconfig(d .. "/info", { FAKE_EXEC_TOKEN = TOKEN, FAKE_EXEC_REQUIRE_INFO = "1" },
        { provideClusterInfo = true })
      assert(assert(k8s.client { kubeconfig = d .. "/info" }):get("Namespace", "default"))
    end)

    it("runs the plugin again once the credential has expired", function()
      local d = fixture.tmpdir()
      finally(function() fixture.remove(d) end)
      exec_kubeconfig(d .. "/kc", { FAKE_EXEC_TOKEN = TOKEN, FAKE_EXEC_COUNT_FILE = d .. "/count",
        FAKE_EXEC_LIFETIME = "3" })
      local c = assert(k8s.client { kubeconfig = d .. "/kc" })
      assert(c:get("Namespace", "default"))
      assert(c:get("Namespace", "default"))
      assert.equal(1, count(d .. "/count"))
      time.sleep(3.2)
      assert(c:get("Namespace", "default"))
      assert.equal(2, count(d .. "/count"))
      assert(c:get("Namespace", "default"))
      assert.equal(2, count(d .. "/count"))
      -- an already expired credential is used once, then refreshed
      exec_kubeconfig(d .. "/expired", { FAKE_EXEC_TOKEN = TOKEN, FAKE_EXEC_COUNT_FILE = d .. "/count2",
        FAKE_EXEC_LIFETIME = "0" })
      c = assert(k8s.client { kubeconfig = d .. "/expired" })
      assert(c:get("Namespace", "default"))
      assert(c:get("Namespace", "default"))
      assert.equal(2, count(d .. "/count2"))
    end)

    it("reports a failing plugin in one line with code 'auth'", function()
      local d = fixture.tmpdir()
      finally(function() fixture.remove(d) end)
      exec_kubeconfig(d .. "/kc", { FAKE_EXEC_FAIL = "1" })
      local c = assert(k8s.client { kubeconfig = d .. "/kc" })
      local n = #requests(srv)
      local msg = assert_fails("failed", nil, c:get("Namespace", "default"))
      assert.equal("exec plugin fake-exec-plugin failed (exit 1): fake-exec-plugin: unable to obtain a token: "
        .. "the identity provider is unavailable", msg)
      assert.equal(n, #requests(srv)) -- no request without a credential
      exec_kubeconfig(d .. "/kc2", { FAKE_EXEC_FAIL = "1", FAKE_EXEC_FAIL_MESSAGE = "first line\nsecond line" })
      msg = assert_fails("failed", nil, assert(k8s.client { kubeconfig = d .. "/kc2" }):list("pods"))
      assert.equal("exec plugin fake-exec-plugin failed (exit 1): first line", msg)
      -- a plugin that is not installed: the install hint
      kubeconfig(d .. "/missing", { server = srv.url, ["certificate-authority-data"] = ca_data },
        { exec = { apiVersion = "client.authentication.k8s.io/v1", command = "no-such-plugin-xyz",
          installHint = "install it with: apt install xyz", interactiveMode = "Never" } })
      msg = assert_fails("not_found", "exec plugin no-such-plugin-xyz", assert(k8s.client { kubeconfig = d .. "/missing" })
        :get("Namespace", "default"))
      assert.matches("install it with: apt install xyz", msg, 1, true)
      -- a plugin whose output is not an ExecCredential
      kubeconfig(d .. "/echo", { server = srv.url, ["certificate-authority-data"] = ca_data },
        { exec = { apiVersion = "client.authentication.k8s.io/v1", command = "echo", args = { "exec-tok-secret" },
          interactiveMode = "Never" } })
      msg = assert_fails("protocol", "exec plugin echo: ", assert(k8s.client { kubeconfig = d .. "/echo" })
        :get("Namespace", "default"))
    end)

    it("kills a hanging plugin after exec_timeout", function()
      local d = fixture.tmpdir()
      finally(function() fixture.remove(d) end)
      exec_kubeconfig(d .. "/kc", { FAKE_EXEC_HANG = "1", FAKE_EXEC_COUNT_FILE = d .. "/count" })
      local c = assert(k8s.client { kubeconfig = d .. "/kc", exec_timeout = 1 })
      local t0 = time.now()
      local msg = assert_fails("timeout", "timed out", c:get("Namespace", "default"))
      local took = time.now() - t0
      assert.is_true(took >= 0.9 and took < fixture.timeout(3), "took " .. took)
      assert.matches("exec plugin fake-exec-plugin timed out after 1s", msg, 1, true)
      assert.equal(1, count(d .. "/count"))
    end)
  end)

  describe("credential rotation", function()
    local s2, tdir, tokens

    local function count(path)
      return tonumber(read(path):match("%d+")) or 0
    end

    setup(function()
      tdir = fixture.tmpdir()
      tokens = tdir .. "/tokens.csv"
      write(tokens, "nobody,nobody,0\n")
      s2 = start_server { "--token-file", tokens }
    end)

    teardown(function()
      fixture.stop_all(s2)
      fixture.remove(tdir)
    end)

    it("runs the plugin again after a 401, once", function()
      local d = fixture.tmpdir()
      finally(function() fixture.remove(d) end)
      write(tokens, "exec-tok-1,alice,1\n")
      kubeconfig(d .. "/kc", { server = s2.url, ["certificate-authority-data"] = ca_data },
        { exec = { apiVersion = "client.authentication.k8s.io/v1", command = PLUGIN, interactiveMode = "Never",
          env = { { name = "FAKE_EXEC_TOKEN", value = "exec-tok-{n}" },
            { name = "FAKE_EXEC_COUNT_FILE", value = d .. "/count" },
            { name = "FAKE_EXEC_LIFETIME", value = "none" } } } })
      local c = assert(k8s.client { kubeconfig = d .. "/kc" })
      assert(c:get("Namespace", "default"))
      assert(c:get("Namespace", "default"))
      assert.equal(1, count(d .. "/count"))
      -- the server revokes exec-tok-1 and accepts exec-tok-2
      write(tokens, "exec-tok-2,bob,2\n")
      assert(c:get("Namespace", "default"))
      assert.equal(2, count(d .. "/count"))
      local reqs = requests(s2)
      assert.equal("bob", reqs[#reqs].user)
      assert.equal(json.null, reqs[#reqs - 1].user) -- the 401
      assert.equal(401, reqs[#reqs - 1].code)
      -- nothing accepts the next token: one retry, then Unauthorized
      write(tokens, "someone-else,carol,3\n")
      local n = #requests(s2)
      assert_fails("unauthorized", "Unauthorized", c:get("Namespace", "default"))
      assert.equal(3, count(d .. "/count"))
      assert.equal(n + 2, #requests(s2))
    end)

    it("re-reads a tokenFile after a 401", function()
      local d = fixture.tmpdir()
      finally(function() fixture.remove(d) end)
      write(tokens, "file-tok-1,dave,1\n")
      write(d .. "/token", "file-tok-1\n")
      kubeconfig(d .. "/kc", { server = s2.url, ["certificate-authority-data"] = ca_data }, { tokenFile = "token" })
      local c = assert(k8s.client { kubeconfig = d .. "/kc" })
      assert(c:get("Namespace", "default"))
      assert.equal("dave", requests(s2)[#requests(s2)].user)
      -- the token is rotated: the file and the server change
      write(tokens, "file-tok-2,erin,2\n")
      write(d .. "/token", "file-tok-2\n")
      assert(c:get("Namespace", "default"))
      local reqs = requests(s2)
      assert.equal("erin", reqs[#reqs].user)
      assert.equal(401, reqs[#reqs - 1].code)
      assert_clean(tostring(c))
    end)
  end)

  describe("in-cluster configuration", function()
    it("reads the service account directory (ROLLOUT_K8S_SA_DIR)", function()
      local d = fixture.tmpdir()
      finally(function() fixture.remove(d) end)
      local sa = d .. "/sa"
      assert(fs.mkdir_p(sa))
      write(sa .. "/token", TOKEN .. "\n")
      write(sa .. "/ca.crt", read(CERTS .. "/ca.crt"))
      write(sa .. "/namespace", "team-a\n")
      local script = [[
        local k8s = require "rollout.k8s"
        local forced = os.getenv("K8S_SPEC_FORCE") == "1"
        local c, err, code = k8s.client{ in_cluster = forced or nil }
        if not c then print("ERR", code, err) return end
        local ns, msg = c:get("Namespace", "default")
        print(tostring(c), tostring(c:context()), c:namespace(), ns and ns.metadata.name or msg)
      ]]
      local env = { KUBERNETES_SERVICE_HOST = "127.0.0.1", KUBERNETES_SERVICE_PORT = tostring(srv.port),
        ROLLOUT_K8S_SA_DIR = sa, KUBECONFIG = false, HOME = d }
      local r = assert(proc.run { argv = { BIN, "-e", script }, env = env, timeout = 20 })
      assert.equal(0, r.status, r.stderr)
      assert.equal(('k8s client (in-cluster, server %s, namespace "team-a")\tnil\tteam-a\tdefault\n'):format(srv.url),
        r.stdout)
      assert_clean(r.stdout)
      local reqs = requests(srv)
      assert.equal("rollout-token", reqs[#reqs].user)
      -- in_cluster = true wins over a kubeconfig
      env.KUBECONFIG = srv.kcc
      env.K8S_SPEC_FORCE = "1"
      r = assert(proc.run { argv = { BIN, "-e", script }, env = env, timeout = 20 })
      assert.equal(0, r.status, r.stderr)
      assert.matches("^k8s client %(in%-cluster", r.stdout)
      -- a missing token
      fs.remove(sa .. "/token")
      r = assert(proc.run { argv = { BIN, "-e", script }, env = env, timeout = 20 })
      assert.equal("ERR\tnot_found\tin-cluster: token " .. sa .. "/token: No such file or directory\n", r.stdout)
      -- no service host
      env.KUBERNETES_SERVICE_HOST = false
      r = assert(proc.run { argv = { BIN, "-e", script }, env = env, timeout = 20 })
      assert.matches("ERR\tinvalid\tin-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set",
        r.stdout, 1, true)
    end)
  end)

  describe("resources", function()
    local c

    setup(function()
      c = assert(k8s.client { kubeconfig = srv.kc })
    end)

    teardown(function()
      if c then c:close() end
    end)

    it("gets objects by Kind, plural, short name and group/version/resource", function()
      assert(c:create(configmap("cfg-get", { app = "get" })))
      for _, kind in ipairs { "ConfigMap", "configmaps", "configmap", "cm", "v1/configmaps" } do
        local o = assert(c:get(kind, "cfg-get"))
        assert.equal("cfg-get", o.metadata.name)
        assert.equal("v", o.data.k)
      end
      assert(c:get("Namespace", "kube-system"))
      local svc = assert(c:get("Service", "kubernetes", { namespace = "default" }))
      assert.equal("kubernetes", svc.metadata.name)
      local ok, msg, code, raw, status = c:get("deployments", "nope")
      assert_fails("not_found", nil, ok, msg, code)
      assert.equal("NotFound", raw)
      assert.equal('deployments.apps "nope" not found', msg)
      assert.equal("Status", status.kind)
      assert.equal(404, status.code)
      assert_fails("not_found", 'virtualservices.networking.istio.io "x" not found',
        c:get("networking.istio.io/v1/virtualservices", "x"))
      assert_fails("not_found", 'httproutes.gateway.networking.k8s.io "x" not found', c:get("HTTPRoute", "x"))
      -- an unknown kind: discovery, cached
      local n = #requests(srv)
      assert_fails("not_found", 'the server doesn\'t have a resource type "Widget"', c:get("Widget", "x"))
      local after = #requests(srv)
      assert.is_true(after > n + 1, "discovery requests")
      assert_fails("not_found", nil, c:get("Widget", "x"))
      assert.equal(after, #requests(srv))
      assert_fails("not_found", nil, c:get("example.com/v1/widgets", "x"))
    end)

    it("lists with label and field selectors", function()
      for _, v in ipairs { "v1", "v2", "v3" } do
        assert(c:apply(configmap("sel-" .. v, { app = "sel", version = v })))
      end
      assert(c:apply(configmap("sel-other", { app = "other", version = "v1" })))
      local function names(list)
        local out = {}
        for _, item in ipairs(list.items) do out[#out + 1] = item.metadata.name end
        table.sort(out)
        return table.concat(out, ",")
      end
      local l = assert(c:list("configmaps", { selector = "app=sel,version in (v1,v2)" }))
      assert.equal("ConfigMapList", l.kind)
      assert.equal("sel-v1,sel-v2", names(l))
      assert.equal("sel-v3", names(assert(c:list("cm", { selector = "app=sel,version notin (v1,v2)" }))))
      assert.equal("sel-v2", names(assert(c:list("cm", { selector = "app", field_selector = "metadata.name=sel-v2" }))))
      assert.equal("", names(assert(c:list("cm", { selector = "app=none" }))))
      assert.equal("", names(assert(c:list("cm", { selector = "app=sel", namespace = "kube-system" }))))
      local all = assert(c:list("cm", { selector = "app=sel", all_namespaces = true }))
      assert.equal("sel-v1,sel-v2,sel-v3", names(all))
      local reqs = requests(srv)
      assert.equal("/api/v1/configmaps", reqs[#reqs].path)
      assert.equal("labelSelector=app%3Dsel", reqs[#reqs].query)
      assert_fails("invalid", nil, c:list("cm", { selector = "app in (" }))
    end)

    it("applies with one server-side apply request: create, update, conflict, force", function()
      local d = deployment("web-apply", { app = "web", version = "v1" })
      local before = count_writes(srv)
      local o = assert(c:apply(d))
      assert.equal(before + 1, count_writes(srv))
      local reqs = requests(srv)
      local last = reqs[#reqs]
      assert.equal("PATCH", last.method)
      assert.equal("/apis/apps/v1/namespaces/default/deployments/web-apply", last.path)
      assert.equal("application/apply-patch+yaml", last.content_type)
      assert.equal("rollout", last.field_manager)
      assert.equal("fieldManager=rollout", last.query)
      assert.equal(201, last.code)
      assert.equal("web-apply", o.metadata.name)
      assert.equal("rollout", o.metadata.managedFields[1].manager)
      -- re-apply changes the object
      d.spec.replicas = 2
      o = assert(c:apply(d))
      assert.equal(2, o.spec.replicas)
      assert.equal(before + 2, count_writes(srv))
      -- another manager changing rollout's field: Conflict, nothing changed
      local theirs = deployment("web-apply", { app = "web", version = "v1" }, nil, 5)
      local ok, msg, code = c:apply(theirs, { field_manager = "kubectl" })
      assert_fails("conflict", nil, ok, msg, code)
      assert.equal('Apply failed with 1 conflict: conflict with "rollout": .spec.replicas', msg)
      assert.equal(before + 3, count_writes(srv))
      assert.equal(2, assert(c:get("Deployment", "web-apply")).spec.replicas)
      -- force wins
      o = assert(c:apply(theirs, { field_manager = "kubectl", force = true }))
      assert.equal(5, o.spec.replicas)
      reqs = requests(srv)
      assert.equal("fieldManager=kubectl&force=true", reqs[#reqs].query)
      assert.equal(before + 4, count_writes(srv))
      -- dry run: answered, not stored
      theirs.spec.replicas = 7
      o = assert(c:apply(theirs, { field_manager = "kubectl", dry_run = true }))
      assert.equal(7, o.spec.replicas)
      assert.equal(5, assert(c:get("deployments", "web-apply")).spec.replicas)
      -- a manifest in another namespace goes there
      local cm = configmap("cfg-ns", { app = "ns" })
      cm.metadata.namespace = "kube-public"
      assert(c:apply(cm))
      assert(c:get("cm", "cfg-ns", { namespace = "kube-public" }))
      -- bad manifests
      assert_fails("invalid", "manifest has no kind", c:apply { apiVersion = "v1", metadata = { name = "x" } })
      assert_fails("invalid", "ConfigMap manifest has no metadata.name", c:apply { apiVersion = "v1", kind = "ConfigMap" })
      assert_fails("invalid", nil, c:apply(configmap("Not_A_Name", {})))
      assert_fails("not_found", 'no matches for kind "Widget" in version "example.com/v1"',
        c:apply { apiVersion = "example.com/v1", kind = "Widget", metadata = { name = "w" } })
    end)

    it("patches (merge, json, strategic) and replaces with a resourceVersion", function()
      assert(c:create(configmap("cfg-patch", { app = "patch" }, { a = "1" })))
      local o = assert(c:patch("cm", "cfg-patch", { data = { b = "2" } }))
      assert.equal("1", o.data.a)
      assert.equal("2", o.data.b)
      local reqs = requests(srv)
      assert.equal("application/merge-patch+json", reqs[#reqs].content_type)
      o = assert(c:patch("cm", "cfg-patch", { { op = "replace", path = "/data/a", value = "9" } }, { type = "json" }))
      assert.equal("9", o.data.a)
      assert_fails("invalid", nil, c:patch("cm", "cfg-patch", { { op = "test", path = "/data/a", value = "0" } },
        { type = "json" }))
      o = assert(c:patch("ConfigMap", "cfg-patch", '{"metadata":{"labels":{"x":"y"}}}', { type = "strategic" }))
      assert.equal("y", o.metadata.labels.x)
      assert_fails("not_found", nil, c:patch("cm", "no-such-cm", { data = {} }))
      -- replace: PUT with the current resourceVersion, Conflict with a stale one
      local stale = assert(c:get("cm", "cfg-patch"))
      local fresh = assert(c:get("cm", "cfg-patch"))
      fresh.data.a = "10"
      o = assert(c:replace(fresh))
      assert.equal("10", o.data.a)
      stale.data.a = "11"
      local ok, msg, code = c:replace(stale)
      assert_fails("conflict", "the object has been modified", ok, msg, code)
      assert.equal("10", assert(c:get("cm", "cfg-patch")).data.a)
      assert_fails("exists", 'configmaps "cfg-patch" already exists', c:create(configmap("cfg-patch", {})))
    end)

    it("deletes, then reports NotFound", function()
      assert(c:apply(configmap("cfg-del", { app = "del" })))
      local st = assert(c:delete("configmap", "cfg-del", { propagation = "Background" }))
      assert.equal("Status", st.kind)
      assert.equal("Success", st.status)
      local reqs = requests(srv)
      assert.equal("DELETE", reqs[#reqs].method)
      assert.equal("propagationPolicy=Background", reqs[#reqs].query)
      assert_fails("not_found", 'configmaps "cfg-del" not found', c:get("cm", "cfg-del"))
      assert_fails("not_found", 'configmaps "cfg-del" not found', c:delete("cm", "cfg-del"))
      -- deleting a pod returns the pod
      assert(c:apply(deployment("del-dep", { app = "del-dep" })))
      assert(c:wait_rollout("del-dep", { timeout = 10 }))
      local pod = c:pods("app=del-dep")[1]
      local gone = assert(c:delete("pods", pod.metadata.name))
      assert.equal(pod.metadata.name, gone.metadata.name)
      assert(c:delete("deployments", "del-dep", { propagation = "Foreground" }))
    end)

    it("gives raw access with request{}", function()
      local r = assert(c:request { path = "/version" })
      assert.equal(200, r.status)
      assert.equal("v1.32.4", r.object.gitVersion)
      assert.matches("application/json", r.headers["content-type"])
      r = assert(c:request { method = "GET", path = "/api/v1/namespaces/default/configmaps",
        query = { labelSelector = "app=sel", limit = 1 } })
      assert.equal(1, #r.object.items)
      r = assert(c:request { method = "POST", path = "/api/v1/namespaces/default/configmaps",
        body = configmap("cfg-raw", {}) })
      assert.equal(201, r.status)
      r = assert(c:request { method = "GET", path = "/api/v1/namespaces/default/configmaps/cfg-missing" })
      assert.equal(404, r.status) -- a response, not an error
      assert.equal("NotFound", r.object.reason)
      r = assert(c:request { path = "/healthz", accept = "text/plain" })
      assert.equal("ok", r.body)
      -- long queries (the query string is built in pieces)
      local values = {}
      for i = 1, 300 do values[i] = "v" .. i end
      local sel = "version in (" .. table.concat(values, ",") .. ")"
      r = assert(c:request { path = "/api/v1/namespaces/default/configmaps",
        query = { labelSelector = sel, fieldSelector = { "metadata.name=sel-v2" } } })
      assert.equal(200, r.status)
      assert.equal(1, #r.object.items)
      assert.equal(2, #assert(c:list("cm", { selector = "app=sel," .. sel .. ",version!=v3" })).items)
    end)
  end)

  describe("403", function()
    it("reports Forbidden with the server's message", function()
      local s2 = start_server { "--forbid", "get:deployments", "--forbid", "*:secrets:kube-system" }
      finally(function() fixture.stop(s2) end)
      local c = assert(k8s.client { kubeconfig = s2.kc })
      local ok, msg, code, raw, status = c:get("Deployment", "web")
      assert_fails("forbidden", nil, ok, msg, code)
      assert.equal("Forbidden", raw)
      assert.equal('deployments.apps "web" is forbidden: User "rollout-token" cannot get resource "deployments" '
        .. 'in API group "apps" in the namespace "default"', msg)
      assert.equal(403, status.code)
      assert(c:list("deployments")) -- list is allowed
      assert_fails("forbidden", 'cannot list resource "secrets" in API group "" in the namespace "kube-system"',
        c:list("secrets", { namespace = "kube-system" }))
    end)
  end)

  describe("watch", function()
    local c

    setup(function()
      c = assert(k8s.client { kubeconfig = srv.kc })
    end)

    teardown(function()
      if c then c:close() end
    end)

    it("streams events to the callback until it returns true", function()
      assert(c:apply(configmap("w-1", { app = "watch" })))
      local events = {}
      local ok, rv = c:watch("configmaps", { selector = "app=watch", timeout = 10 }, function(type, obj)
        events[#events + 1] = type .. " " .. obj.metadata.name
        if #events == 1 then
          -- the client can be used from the callback
          assert(c:create(configmap("w-2", { app = "watch" })))
        end
        return obj.metadata.name == "w-2"
      end)
      assert.is_true(ok)
      assert.equal("ADDED w-1,ADDED w-2", table.concat(events, ","))
      assert.equal(assert(c:get("cm", "w-2")).metadata.resourceVersion, rv)
      -- from that resourceVersion: only later changes
      assert(c:patch("cm", "w-1", { data = { k = "changed" } }))
      assert(c:delete("cm", "w-2"))
      events = {}
      local rv2
      ok, rv2 = c:watch("cm", { selector = "app=watch", resource_version = rv, timeout = 10 }, function(type, obj)
        events[#events + 1] = type .. " " .. obj.metadata.name
        return type == "DELETED"
      end)
      assert.is_true(ok)
      assert.equal("MODIFIED w-1,DELETED w-2", table.concat(events, ","))
      assert.is_true(tonumber(rv2) > tonumber(rv))
    end)

    it("returns true and the last resourceVersion at the timeout", function()
      local list = assert(c:list("cm"))
      local t0 = time.now()
      local called = 0
      local ok, rv = c:watch("cm", { selector = "app=nothing-matches", resource_version = list.metadata.resourceVersion,
        timeout = 1 }, function() called = called + 1 end)
      local took = time.now() - t0
      assert.is_true(ok)
      assert.equal(list.metadata.resourceVersion, rv)
      assert.equal(0, called)
      assert.is_true(took >= 0.9 and took < fixture.timeout(3), "took " .. took)
    end)

    it("reports a 410 ERROR event as 'Expired'", function()
      local rv = assert(c:list("cm")).metadata.resourceVersion
      assert(c:apply(configmap("w-3", { app = "watch-410" })))
      local r = assert(c:request { method = "POST", path = "/_fake/compact" })
      assert.equal(200, r.status)
      local called = 0
      local ok, msg, code, raw, status = c:watch("cm", { resource_version = rv, timeout = 5 }, function()
        called = called + 1
      end)
      assert_fails("gone", "too old resource version", ok, msg, code)
      assert.equal("Expired", raw)
      assert.equal(410, status.code)
      assert.equal(0, called)
    end)

    it("reports HTTP errors and raises the callback's errors after cleanup", function()
      assert_fails("not_found", nil, c:watch("Widget", {}, function() end))
      local ok, err = pcall(c.watch, c, "namespaces", { timeout = 5 }, function() error("boom from callback") end)
      assert.is_false(ok)
      assert.matches("boom from callback", err)
      -- still usable
      assert(c:get("Namespace", "default"))
      local bad = assert(k8s.client { kubeconfig = srv.kc, namespace = "default" })
      local d = fixture.tmpdir()
      finally(function() fixture.remove(d) end)
      kubeconfig(d .. "/kc", { server = srv.url, ["certificate-authority-data"] = ca_data }, { token = "wrong" })
      bad = assert(k8s.client { kubeconfig = d .. "/kc" })
      assert_fails("unauthorized", nil, bad:watch("pods", { timeout = 2 }, function() end))
      -- closing the client from the callback ends the watch
      local c2 = assert(k8s.client { kubeconfig = srv.kc })
      local n = 0
      assert.is_true((c2:watch("namespaces", { timeout = 5 }, function()
        n = n + 1
        c2:close()
      end)))
      assert.equal(1, n)
    end)

    it("raises 'interrupted' on ^C and stops the stream", function()
      local d = fixture.tmpdir()
      local pid
      finally(function()
        fixture.stop_all(pid)
        fixture.remove(d)
      end)
      local script = ([[
        local c = assert(require("rollout.k8s").client{ kubeconfig = %q })
        local ok, err = pcall(c.watch, c, "pods", { timeout = 60 }, function()
          local f = assert(io.open(%q, "w")); f:write("1"); f:close()
        end)
        print("result", ok, err)
        print("usable", c:get("Namespace", "default") ~= nil)
      ]]):format(srv.kc, d .. "/ready")
      pid = assert(proc.spawn { argv = { BIN, "-e", script }, log = d .. "/out.log" })
      -- the handshake: the callback has run, the stream is open
      fixture.wait(function() return fs.exists(d .. "/ready") end, 10, "the watch to start")
      local t0 = time.now()
      assert(proc.kill(pid, "INT"))
      fixture.wait(function() return not proc.alive(pid) end, 5, "the interrupted watch to end")
      assert.is_true(time.now() - t0 < fixture.timeout(2))
      local out = read(d .. "/out.log")
      assert.matches("result\tfalse\t[^\n]*interrupted", out)
      assert.matches("usable\ttrue", out)
    end)
  end)

  describe("rollouts", function()
    local c

    setup(function()
      c = assert(k8s.client { kubeconfig = srv.kc })
    end)

    teardown(function()
      if c then c:close() end
    end)

    it("waits for a Deployment to complete, with a watch", function()
      assert(c:apply(deployment("microservice-1-v1", { app = "microservice-1", version = "v1" }, "example/m:v1", 2)))
      local n = #requests(srv)
      local t0 = time.now()
      assert.is_true(c:wait_rollout("microservice-1-v1", { timeout = 20 }))
      assert.is_true(time.now() - t0 < fixture.timeout(10))
      local d = assert(c:get("deployments", "microservice-1-v1"))
      assert.equal(2, d.status.availableReplicas)
      -- a get and watches, no polling
      local gets, watches = 0, 0
      for i, r in ipairs(requests(srv)) do
        if i > n then
          if r.params and r.params.watch then watches = watches + 1 elseif r.method == "GET" then gets = gets + 1 end
        end
      end
      assert.is_true(watches >= 1, "watches " .. watches)
      assert.is_true(gets <= 2, "gets " .. gets)
      -- complete already: true at once
      assert.is_true(c:wait_rollout("microservice-1-v1", { timeout = 5 }))
      local pods = c:pods { app = "microservice-1", version = "v1" }
      assert.equal(2, #pods)
      assert.equal(2, #c:pods("app=microservice-1,version in (v1)"))
      assert.equal(0, #c:pods("app=microservice-1", { namespace = "kube-system" }))
      assert_fails("not_found", 'deployments.apps "nope" not found', c:wait_rollout("nope", { timeout = 2 }))
    end)

    it("reports ImagePullBackOff when a :broken image never becomes available", function()
      assert(c:apply(deployment("microservice-1-v9", { app = "microservice-1", version = "v9" },
        "example/microservice-1:broken")))
      local t0 = time.now()
      local ok, msg, code = c:wait_rollout("microservice-1-v9", { timeout = 3 })
      local took = time.now() - t0
      assert_fails("timeout", "deployment microservice-1-v9: 0 of 1 replicas available after 3s; pod microservice-1-v9-",
        ok, msg, code)
      assert.matches(": ImagePullBackOff: Failed to pull image \"example/microservice-1:broken\"", msg, 1, true)
      assert.is_true(took >= 2.9 and took < fixture.timeout(6), "took " .. took)
    end)

    it("reads pod logs", function()
      local pod = c:pods("app=microservice-1,version=v1")[1]
      local text = assert(c:logs(pod.metadata.name))
      assert.is_true(#text > 0)
      local one = assert(c:logs(pod.metadata.name, { tail = 1, container = "app" }))
      local _, lines = one:gsub("\n", "")
      assert.equal(1, lines)
      assert.equal(text:match("([^\n]*)\n$"), one:match("^([^\n]*)"))
      assert_fails("not_found", nil, c:logs("no-such-pod"))
      local broken = c:pods("app=microservice-1,version=v9")[1]
      assert_fails("invalid", "is waiting to start", c:logs(broken.metadata.name))
    end)
  end)
end)
