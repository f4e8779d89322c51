--- rollout.state: small JSON state files under the state directory, written
-- atomically, so separate rollout invocations share what is running.
--
-- The state directory is private: created 0700, and refused (exit 2) when it
-- is owned by another user, writable by group or others, or holds a
-- symbolic link, a FIFO or a device (state.check_dir). State files are read
-- without following links and written by rename, which replaces a link
-- instead of writing through it.
local fs = require "rollout.fs"
local json = require "rollout.json"
local errors = require "rollout.errors"

local state = {}

local PRIVATE = tonumber("700", 8)

--- The largest state file read (bytes).
state.MAX_FILE = 16 * 1024 * 1024

--- Reads a JSON state file; a missing file gives `default` (or nil). A
-- symbolic link or a non-regular file there is refused (exit 2).
function state.read(path, default)
  local text, err, code, raw = fs.read(path, { nofollow = true, max = state.MAX_FILE })
  if not text then
    if code == "not_found" then return default end
    if raw == "ELOOP" or raw == "EINVAL" then -- a symbolic link, a special file
      errors.refuse(string.format("state file %s; rollout does not follow links or read special files in its " ..
        "state directory: remove it", err), { code = "invalid" })
    end
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
  local ok, err = fs.mkdir_p(fs.dirname(path), PRIVATE)
  if not ok then errors.fail("cannot create " .. fs.dirname(path) .. ": " .. err) end
  ok, err = fs.write_atomic(path, json.encode(value, { pretty = true }) .. "\n", { mode = tonumber("600", 8) })
  if not ok then errors.fail("cannot write state " .. err) end
end

--- Takes the lock `path` for `what` (the locked thing, named in the message
-- another process gets); waits when `wait` (seconds or true). `holder`
-- says what this process does with it (shown to the others).
-- Returns the lock (close it, or let it be collected).
function state.lock(path, what, wait, holder)
  local ok, err = fs.mkdir_p(fs.dirname(path), PRIVATE)
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

-- How deep and how many entries check_dir looks at (a state directory has
-- services/<name>/logs/<file>: depth 3).
local CHECK_DEPTH, CHECK_ENTRIES = 6, 20000

local function octal(mode) return string.format("%04o", mode) end

--- Refuses (exit 2, nothing changed) a state directory rollout must not
-- use: not a directory, owned by another user, writable by group or
-- others; or one holding a symbolic link, a FIFO, a device, or an entry
-- owned by someone else (a planted link would redirect a write; HAProxy,
-- which opens its files there itself, is protected the same way). Sockets
-- (HAProxy's) are allowed. A missing directory is fine (it is created
-- 0700). `dir` should be absolute.
function state.check_dir(dir)
  local me = require("rollout.sys").euid()
  local top, err, code = fs.stat(dir)
  if not top then
    if code == "not_found" then return true end
    errors.fail("cannot inspect the state directory " .. err)
  end
  if top.type == "link" then
    local real = fs.realpath(dir)
    top = real and fs.stat(real)
    if not top then errors.refuse(string.format("state directory %s is a dangling symbolic link", dir)) end
  end
  local function refuse(fmt, ...)
    errors.refuse(string.format("state directory %s: " .. fmt, dir, ...) ..
      " (rollout keeps pids, ports, logs and the gateway's sockets there; use a private directory: " ..
      "ROLLOUT_STATE_DIR)", { code = "forbidden" })
  end
  if top.type ~= "directory" then refuse("is %s, not a directory", top.kind) end
  if top.uid ~= me then refuse("is owned by uid %d, not by you (uid %d)", top.uid, me) end
  local function writers(mode)
    local g, o = mode & tonumber("020", 8) ~= 0, mode & tonumber("002", 8) ~= 0
    return g and o and "group and others" or g and "its group" or "others"
  end
  if top.mode & tonumber("022", 8) ~= 0 then
    refuse("is writable by %s (mode %s): chmod go-w it", writers(top.mode), octal(top.mode))
  end
  local seen = 0
  local function walk(path, rel, depth)
    local names = fs.list(path)
    if not names then return end
    for _, name in ipairs(names) do
      seen = seen + 1
      if seen > CHECK_ENTRIES then return end
      local p, r = fs.join(path, name), rel == "" and name or (rel .. "/" .. name)
      local st = fs.stat(p)
      if st then
        if st.type == "link" then
          refuse("%s is a symbolic link (to %s): rollout does not follow links there; remove it", r,
            fs.readlink(p) or "?")
        end
        if st.uid ~= me then refuse("%s is owned by uid %d, not by you (uid %d)", r, st.uid, me) end
        if st.type == "directory" then
          if st.mode & tonumber("022", 8) ~= 0 then
            refuse("%s is writable by %s (mode %s): chmod go-w it", r, writers(st.mode), octal(st.mode))
          end
          if depth < CHECK_DEPTH then walk(p, r, depth + 1) end
        elseif st.type == "other" and st.kind ~= "a socket" then
          refuse("%s is %s: remove it", r, st.kind)
        end
      end
    end
  end
  walk(dir, "", 1)
  return true
end

return state
