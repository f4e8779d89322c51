--- rollout.strategy.journal: the durable record of a service's progressive
-- deliveries, in the state directory beside the target's own state:
--
--   services/<service>/rollout.json    the current (or last) strategy run:
--                                      phase, step, weights before it, the
--                                      last measurements, who runs it
--   services/<service>/journal.jsonl   every weight change, route change,
--                                      step, verdict and control action:
--                                      who, when, from, to, why (append-only)
--   services/<service>/control/        requests from other shells (promote,
--                                      abort, pause, resume), one file each,
--                                      consumed by the running strategy
--
-- A killed strategy leaves rollout.json as it was after its last completed
-- change, so running it again resumes there; `ops.lua status` reads it from
-- any shell.
local fs = require "rollout.fs"
local json = require "rollout.json"
local time = require "rollout.time"
local proc = require "rollout.proc"
local sys = require "rollout.sys"
local config = require "rollout.config"
local state = require "rollout.state"
local errors = require "rollout.errors"

local journal = {}

--- Phases of a run. Terminal ones end it.
journal.PHASES = { progressing = true, paused = true, promoting = true, succeeded = true, aborted = true,
                   failed = true }
journal.TERMINAL = { succeeded = true, aborted = true, failed = true }

-- How many measurements rollout.json keeps (the journal keeps them all).
journal.KEEP_MEASUREMENTS = 50

local function dir_of(service)
  return fs.join(config.state_dir(), "services", service)
end

function journal.paths(service)
  local d = dir_of(service)
  return { dir = d, run = fs.join(d, "rollout.json"), log = fs.join(d, "journal.jsonl"),
           control = fs.join(d, "control"), report = fs.join(d, "report.html") }
end

--- Who is acting: "user@host pid N".
function journal.who()
  local user = os.getenv("USER") or os.getenv("LOGNAME") or "someone"
  return string.format("%s@%s pid %d", user, sys.hostname() or "localhost", proc.pid())
end

-- The fields of a run that are lists (JSON arrays, even when empty).
local LISTS = { "answers", "measurements", "routes", "routes_before", "args" }

--- The current (or last) run of `service`, or nil.
function journal.load(service)
  local run = state.read(journal.paths(service).run, nil)
  if type(run) == "table" then
    for _, k in ipairs(LISTS) do
      if type(run[k]) == "table" then run[k] = json.array(run[k]) end
    end
  end
  return run
end

--- Writes the run atomically (stamping `updated`).
function journal.save(run)
  run.updated = time.wall()
  for _, k in ipairs(LISTS) do
    if type(run[k]) == "table" then run[k] = json.array(run[k]) end
  end
  state.write(journal.paths(run.service).run, run)
end

--- True when the run's owner process is alive (and is not this process).
function journal.owner_alive(run)
  local o = run and run.owner
  return o ~= nil and type(o.pid) == "number" and o.pid ~= proc.pid() and proc.alive(o.pid)
    and (o.boot == nil or o.boot == journal.boot_id())
end

--- An id of this boot, so a pid recycled after a reboot is not taken for
-- the owner.
function journal.boot_id()
  local b = fs.read("/proc/sys/kernel/random/boot_id")
  return b and b:match("^%s*(.-)%s*$") or nil
end

--- True when the run is not finished (progressing, paused or promoting).
function journal.active(run)
  return run ~= nil and not journal.TERMINAL[run.phase]
end

--- Appends an entry to the service's journal: { action =, from =, to =,
-- why =, ... }; `t` and `who` are added. Returns the entry.
function journal.append(service, entry)
  local p = journal.paths(service)
  local ok, err = fs.mkdir_p(p.dir, tonumber("700", 8))
  if not ok then errors.fail("cannot create " .. p.dir .. ": " .. err) end
  entry.t = entry.t or time.wall()
  entry.who = entry.who or journal.who()
  local line = json.encode(entry) .. "\n"
  local wok, werr = fs.append(p.log, line, { mode = tonumber("600", 8) })
  if not wok then errors.fail("cannot write the journal: " .. tostring(werr)) end
  return entry
end

--- Every journal entry of the service, oldest first (a torn last line, from
-- a crash mid-write, is skipped).
function journal.history(service)
  local text = fs.read(journal.paths(service).log) or ""
  local out = {}
  for line in text:gmatch("[^\n]+") do
    local ok, e = pcall(json.decode, line)
    if ok and type(e) == "table" then out[#out + 1] = e end
  end
  return out
end

-- The entries `undo` may return to: weights known good at the edges of a
-- change — before a run, after it (promote, abort, finish), a confirmed
-- update_traffic, an undo. (Steps within a run are good too, but undo goes
-- back over a whole run, as a rollback to the previous release does.)
journal.UNDO_POINTS = { start = true, promote = true, abort = true, finish = true, update_traffic = true,
                        undo = true }

--- The undo points of the journal, oldest first: { index =, entry = }.
function journal.undo_points(service)
  local out = {}
  for i, e in ipairs(journal.history(service)) do
    if e.good and journal.UNDO_POINTS[e.action] and type(e.weights) == "table" then
      out[#out + 1] = { index = i, entry = e }
    end
  end
  return out
end

local function same(a, b)
  for k, v in pairs(a or {}) do if (b[k] or 0) ~= v then return false end end
  for k, v in pairs(b or {}) do if (a[k] or 0) ~= v then return false end end
  return true
end

--- What `undo` returns to from the weights `current`: the undo point before
-- the one that set them (following earlier undos back, so that repeated
-- undos walk back instead of bouncing). `usable(weights)` says whether
-- its versions are still deployed. Returns the point { index =, entry = }
-- or nil.
function journal.undo_target(service, current, usable)
  local points = journal.undo_points(service)
  local limit = math.huge
  for i = #points, 1, -1 do
    local p = points[i]
    if same(p.entry.weights, current) then
      limit = p.entry.restored or p.index
      break
    end
  end
  for i = #points, 1, -1 do
    local p = points[i]
    if p.index < limit and not same(p.entry.weights, current) and (not usable or usable(p.entry.weights)) then
      return p
    end
  end
  return nil
end

--- Forgets a service that was removed: its run, journal, control
-- requests and last report, then its state directory when nothing else is
-- left in it.
function journal.forget(service)
  local p = journal.paths(service)
  for _, f in ipairs { p.run, p.log, p.report } do
    if fs.exists(f) then fs.remove(f) end
  end
  if fs.exists(p.control) then fs.remove_tree(p.control) end
  if fs.exists(p.dir) and #(fs.list(p.dir) or { "?" }) == 0 then fs.remove(p.dir) end
end

-- ------------------------------------------------------------- control --

--- Files a control request for the running strategy: { action =, ... }.
-- Returns its id (the file name, which orders requests).
function journal.request(service, req)
  local p = journal.paths(service)
  local ok, err = fs.mkdir_p(p.control, tonumber("700", 8))
  if not ok then errors.fail("cannot create " .. p.control .. ": " .. err) end
  local id = string.format("%017.6f-%d", time.wall(), proc.pid())
  req.id, req.who, req.t = id, journal.who(), time.wall()
  ok, err = fs.write_atomic(fs.join(p.control, id .. ".json"), json.encode(req) .. "\n",
    { mode = tonumber("600", 8) })
  if not ok then errors.fail("cannot file the request: " .. err) end
  return id
end

--- The pending control requests, oldest first (each removed from the
-- directory as it is returned: a request is acted on once).
function journal.take_requests(service)
  local p = journal.paths(service)
  if not fs.exists(p.control) then return {} end
  local out = {}
  for _, name in ipairs(fs.list(p.control) or {}) do
    if name:match("%.json$") then
      local path = fs.join(p.control, name)
      local text = fs.read(path)
      fs.remove(path)
      local ok, req = pcall(json.decode, text or "")
      if ok and type(req) == "table" then out[#out + 1] = req end
    end
  end
  table.sort(out, function(a, b) return tostring(a.id) < tostring(b.id) end)
  return out
end

--- Drops requests nobody will act on (a run that ended).
function journal.clear_requests(service)
  local p = journal.paths(service)
  if fs.exists(p.control) then fs.remove_tree(p.control) end
end

--- Waits (up to `timeout` s) until the run has answered request `id`;
-- returns the answer { id =, result =, message = } or nil.
function journal.wait_answer(service, id, timeout)
  local deadline = time.now() + (timeout or 15)
  repeat
    local run = journal.load(service)
    for _, a in ipairs(run and run.answers or {}) do
      if a.id == id then return a end
    end
    if run and not journal.owner_alive(run) then return nil end
    time.sleep(0.05)
  until time.now() > deadline
  return nil
end

return journal
