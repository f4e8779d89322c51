--- rollout.state: small JSON state files under the state directory, written
-- atomically, so separate rollout invocations share what is running.
local fs = require "rollout.fs"
local json = require "rollout.json"
local errors = require "rollout.errors"

local state = {}

--- Reads a JSON state file; a missing file gives `default` (or nil).
function state.read(path, default)
  local text, err, code = fs.read(path)
  if not text then
    if code == "ENOENT" then return default end
    errors.fail("cannot read state " .. err)
  end
  local v, derr = json.decode(text)
  if v == nil then
    errors.fail(string.format("state file %s is corrupt (%s); remove it to start afresh", path, derr))
  end
  return v
end

--- Writes a JSON state file atomically (pretty, sorted keys).
function state.write(path, value)
  local ok, err = fs.mkdir_p(fs.dirname(path))
  if not ok then errors.fail("cannot create " .. fs.dirname(path) .. ": " .. err) end
  ok, err = fs.write_atomic(path, json.encode(value, { pretty = true }) .. "\n", { mode = tonumber("600", 8) })
  if not ok then errors.fail("cannot write state " .. path .. ": " .. err) end
end

--- Takes the lock `path` for `what`; waits when `wait` (seconds or true).
-- Returns the lock (close it, or let it be collected).
function state.lock(path, what, wait)
  local ok, err = fs.mkdir_p(fs.dirname(path))
  if not ok then errors.fail("cannot create " .. fs.dirname(path) .. ": " .. err) end
  local opts = { what = what }
  if wait then
    opts.wait = true
    opts.timeout = type(wait) == "number" and wait or 600
  end
  local lock, lerr, code = fs.lock(path, opts)
  if not lock then
    if code == "locked" or code == "timeout" then
      errors.fail(lerr .. (wait and "" or "; try again when it is done, or pass --wait"), { code = code })
    end
    errors.fail("cannot lock " .. path .. ": " .. lerr)
  end
  return lock
end

return state
