--- Fuzz check for kubeconfig parsing: rollout.k8s.config.resolve on the
-- input as the one kubeconfig file (written to a private temp file; the
-- parser only reads: exec plugins are not run here). Resolved or refused
-- (nil, message, code) are both fine; a Lua error is a finding, and so is:
--   * a code outside rollout.errors.codes, or a message that is not a line;
--   * a secret of the input (a token, a password, key or certificate data)
--     in the message: secrets never appear in errors;
--   * a resolved config without an http(s) server.
local kconfig = require "rollout.k8s.config"
local errors = require "rollout.errors"
local fs = require "rollout.fs"
local yaml = require "rollout.yaml"

local dir = assert(fs.mkdtemp("rollout-fuzz-kubeconfig-"))
local path = fs.join(dir, "config")

-- every string under a secret key of the input (when it is YAML at all)
local SECRET = { token = true, password = true, ["client-key-data"] = true, ["client-certificate-data"] = true }
local function secrets(doc, out, depth)
  if type(doc) ~= "table" or depth > 20 then return out end
  for k, v in pairs(doc) do
    if SECRET[k] and type(v) == "string" and #v >= 6 then out[#out + 1] = v end
    secrets(v, out, depth + 1)
  end
  return out
end

return function(data)
  assert(fs.write_atomic(path, data, { mode = tonumber("600", 8), fsync = false }))
  local ok, cfg, msg, code = xpcall(kconfig.resolve, errors.traceback, { kubeconfig = path })
  if not ok then error("resolve raised: " .. errors.message(cfg)) end
  if cfg == nil then
    if type(msg) ~= "string" or msg == "" then error("a refusal without a message") end
    if msg:find("\n", 1, true) then error("a message of several lines: " .. msg) end
    if not errors.codes[code] then error("code " .. tostring(code) .. " is not in rollout.errors.codes: " .. msg) end
    local doc = yaml.load(data)
    for _, s in ipairs(secrets(doc, {}, 0)) do
      if msg:find(s, 1, true) then error("a secret of the input is in the message: " .. msg) end
    end
    return
  end
  if type(cfg) ~= "table" then error("resolve returned a " .. type(cfg)) end
  if type(cfg.server) ~= "string" or not cfg.server:match("^https?://") then
    error("resolved without an http(s) server: " .. tostring(cfg.server))
  end
end
