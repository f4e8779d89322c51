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

--- Takes the lock `path` for `what` (the locked thing, named in the message
-- another process gets); waits when `wait` (seconds or true). `holder`
-- says what this process does with it (shown to the others).
-- Returns the lock (close it, or let it be collected).
function state.lock(path, what, wait, holder)
  local ok, err = fs.mkdir_p(fs.dirname(path))
  if not ok then errors.fail("cannot create " .. fs.dirname(path) .. ": " .. err) end
  local opts = { what = what, holder = holder }
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

-- Locks this process holds, by path: { lock =, depth =, what = }.
local held = {}

--- Runs fn(...) holding the lock `path`, re-entrant within this process: a
-- script that took the service lock (state.hold) runs every target
-- operation inside it without waiting for itself.
function state.with_lock(path, what, wait, fn, ...)
  local h = held[path]
  if h then
    h.depth = h.depth + 1
  else
    h = { lock = state.lock(path, what, wait), depth = 1, what = what }
    held[path] = h
  end
  local res = table.pack(xpcall(fn, errors.traceback, ...))
  h.depth = h.depth - 1
  if h.depth == 0 then
    held[path] = nil
    h.lock:unlock()
  end
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

--- Takes the lock `path` for the rest of the process (or until
-- state.release): what a script does to hold a service for its whole run.
-- Re-entrant; returns true.
function state.hold(path, what, wait, holder)
  local h = held[path]
  if h then
    h.depth = h.depth + 1
  else
    held[path] = { lock = state.lock(path, what, wait, holder), depth = 1, what = what }
  end
  return true
end

--- Gives back one state.hold of `path`.
function state.release(path)
  local h = held[path]
  if not h then return false end
  h.depth = h.depth - 1
  if h.depth == 0 then
    held[path] = nil
    h.lock:unlock()
  end
  return true
end

--- True when this process holds the lock `path`.
function state.holds(path) return held[path] ~= nil end

return state
