--- Fuzz check for kubeconfig parsing: rollout.k8s.config.resolve on the
-- input as the one kubeconfig file (written to a private temp file; the
-- parser only reads: exec plugins are not run here). Resolved or refused
-- (nil, message, code) are both fine; a Lua error is a finding, and so is:
--   * a code outside rollout.errors.codes, or a message that is not a line;
--   * a secret of the input (a token, a password, key or certificate data)
--     in the message: secrets never appear in errors. A secret that is
--     also text the message has anyway is not one: the temp file's path,
--     the parser's own wording (a token "config" or "cluster"), or a
--     non-secret string of the input (a token equal to a cluster name);
--   * a resolved config without an http(s) server.
local kconfig = require "rollout.k8s.config"
local errors = require "rollout.errors"
local fs = require "rollout.fs"
local yaml = require "rollout.yaml"

local dir = assert(fs.mkdtemp("rollout-fuzz-kubeconfig-"))
local path = fs.join(dir, "config")

-- the parser's source: any text of its messages is in it
local SOURCE = (function()
  local file = assert(package.searchpath("rollout.k8s.config", package.path))
  return assert(fs.read(file))
end)()

-- every string under a secret key of the input (when it is YAML at all),
-- and every other string (keys and values) in plain
local SECRET = { token = true, password = true, ["client-key-data"] = true, ["client-certificate-data"] = true }
local function strings(doc, secret, plain, depth)
  if type(doc) ~= "table" or depth > 20 then return end
  for k, v in pairs(doc) do
    if type(k) == "string" then plain[#plain + 1] = k end
    if type(v) == "string" then
      if SECRET[k] and #v >= 6 then secret[#secret + 1] = v else plain[#plain + 1] = v end
    end
    strings(v, secret, plain, depth + 1)
  end
end

-- is s part of text the message would have whatever the secrets were?
local function said_anyway(s, plain)
  if SOURCE:find(s, 1, true) then return true end
  for _, p in ipairs(plain) do
    if p:find(s, 1, true) then return true end
  end
  return false
end

return function(data)
  assert(fs.write_atomic(path, data, { mode = tonumber("600", 8), fsync = false }))
  local ok, cfg, msg, code = xpcall(kconfig.resolve, errors.traceback, { kubeconfig = path })
  if not ok then error("resolve raised: " .. errors.message(cfg)) end
  if cfg == nil then
    if type(msg) ~= "string" or msg == "" then error("a refusal without a message") end
    if msg:find("\n", 1, true) then error("a message of several lines: " .. msg) end
    if not errors.codes[code] then error("code " .. tostring(code) .. " is not in rollout.errors.codes: " .. msg) end
    local secret, plain = {}, {}
    strings(yaml.load(data), secret, plain, 0)
    local shown = msg:gsub(path:gsub("%p", "%%%0"), "")
    for _, s in ipairs(secret) do
      if shown:find(s, 1, true) and not said_anyway(s, plain) then
        error("a secret of the input is in the message: " .. msg)
      end
    end
    return
  end
  if type(cfg) ~= "table" then error("resolve returned a " .. type(cfg)) end
  if type(cfg.server) ~= "string" or not cfg.server:match("^https?://") then
    error("resolved without an http(s) server: " .. tostring(cfg.server))
  end
end
