--- A program under a real terminal: a private tmux server per session
-- (`tmux -L rollout-test-<pid>-<n>`, no config file), keys in, screen out.
--
--   local tmux = require "helpers.tmux"   (with tests/e2e on package.path)
--   local s = tmux.start { argv = { bin }, env = { HOME = dir } }
--   finally(function() s:close() end)
--   s:type("1+1"); s:key("Enter"); s:wait_line("2")
local proc = require "rollout.proc"
local sys = require "rollout.sys"
local fs = require "rollout.fs"
local fixture = require "tests.helpers.fixture"

local M = {}

--- How long a wait may take before it fails, in seconds before the
-- TIMEOUT_FACTOR scaling of fixture.poll (AddressSanitizer builds are
-- several times slower than plain ones).
M.timeout = tonumber(os.getenv("ROLLOUT_E2E_TIMEOUT")) or 15

local SIGCHLD = 17 -- Linux

local Session = {}
Session.__index = Session

local counter = 0

-- TMUX (set when the tests run inside tmux) would tie our private
-- servers to the outer one
local function run(argv)
  local r, err = proc.run { argv = argv, timeout = 10, env = { TMUX = false } }
  if not r then error(("%s: %s"):format(table.concat(argv, " "), tostring(err)), 3) end
  if r.status ~= 0 then
    error(("%s: exit %s: %s"):format(table.concat(argv, " "), tostring(r.status), r.stderr), 3)
  end
  return r.stdout
end

--- Runs a tmux command on this session's server; returns its stdout.
function Session:tmux(...)
  return run { "tmux", "-L", self.socket, "-f", "/dev/null", ... }
end

--- Starts opts.argv (a list) in a new detached session, opts.width x
-- opts.height (100 x 30), with the variables of opts.env set (false: unset).
-- Returns the session.
function M.start(opts)
  counter = counter + 1
  local self = setmetatable({
    socket = ("rollout-test-%d-%d"):format(sys.getpid(), counter),
    target = "repl",
  }, Session)
  local argv = { "new-session", "-d", "-s", self.target,
                 "-x", tostring(opts.width or 100), "-y", tostring(opts.height or 30),
                 "--", "/usr/bin/env" }
  local names = {}
  for k in pairs(opts.env or {}) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do -- false: unset
    if opts.env[k] == false then table.move({ "-u", k }, 1, 2, #argv + 1, argv) end
  end
  for _, k in ipairs(names) do
    if opts.env[k] then argv[#argv + 1] = k .. "=" .. opts.env[k] end
  end
  for _, a in ipairs(opts.argv) do argv[#argv + 1] = a end
  self:tmux(table.unpack(argv))
  self.started = true
  local ok, err = pcall(function()
    -- keep a finished program's pane, to read its exit status
    self:tmux("set-option", "-g", "remain-on-exit", "on")
    local info = self:tmux("display-message", "-p", "-t", self.target,
                           "#{pid} #{pane_pid} #{socket_path}")
    local server, pane, path = info:match("^(%d+) (%d+) (.-)%s*$")
    self.server_pid, self.pid, self.socket_path = tonumber(server), tonumber(pane), path
    assert(self.pid and self.server_pid, "no pids from tmux: " .. info)
  end)
  if not ok then
    self:close()
    error(err, 2)
  end
  return self
end

--- Types text literally (no key names: "end" is three letters, not End).
function Session:type(text)
  self:tmux("send-keys", "-t", self.target, "-l", text)
end

--- Sends keys by name: "Enter", "Tab", "Up", "C-c", "C-d".
function Session:key(...)
  self:tmux("send-keys", "-t", self.target, ...)
end

--- The visible screen as a list of lines, trailing blanks removed.
function Session:lines()
  local out = self:tmux("capture-pane", "-p", "-t", self.target)
  local lines = {}
  for line in (out .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = (line:gsub("%s+$", "")) end
  while #lines > 0 and lines[#lines] == "" do lines[#lines] = nil end
  return lines
end

function Session:screen()
  return table.concat(self:lines(), "\n")
end

--- Polls the screen until check(lines, screen) is true; fails with the
-- screen after the deadline.
function Session:wait(what, check, timeout)
  local lines, screen
  local ok = fixture.poll(function()
    lines = self:lines()
    screen = table.concat(lines, "\n")
    return check(lines, screen)
  end, timeout or M.timeout)
  if ok then return lines end
  error(("timed out waiting for %s; the screen:\n%s"):format(what, screen), 2)
end

--- Waits until a line of the screen equals `text` (after `after` lines, if
-- given: the count of lines seen before the action).
function Session:wait_line(text, after, timeout)
  return self:wait(("a line %q"):format(text), function(lines)
    for i = (after or 0) + 1, #lines do
      if lines[i] == text then return true end
    end
    return false
  end, timeout)
end

--- Waits until a line matches the Lua pattern (tmux shows tabs as spaces).
function Session:wait_match(pattern, after, timeout)
  return self:wait(("a line matching %q"):format(pattern), function(lines)
    for i = (after or 0) + 1, #lines do
      if lines[i]:find(pattern) then return true end
    end
    return false
  end, timeout)
end

--- Waits until the screen contains `text` (plain) after line `after`.
function Session:wait_text(text, after, timeout)
  return self:wait(("text %q"):format(text), function(lines)
    for i = (after or 0) + 1, #lines do
      if lines[i]:find(text, 1, true) then return true end
    end
    return false
  end, timeout)
end

--- Waits until the last line is the prompt `prompt` with nothing typed.
function Session:wait_prompt(prompt, timeout)
  prompt = prompt or ">"
  return self:wait(("the prompt %q"):format(prompt), function(lines)
    return lines[#lines] == prompt
  end, timeout)
end

--- Waits until the program has exited; returns its exit status, or nil
-- and the signal that ended it.
function Session:wait_exit(timeout)
  local status, signal
  self:wait("the program to exit", function()
    local out = self:tmux("display-message", "-p", "-t", self.target,
                          "#{pane_dead} #{pane_dead_status} #{pane_dead_signal}")
    local dead, st, sig = out:match("^(%d) (%d*) ?(%d*)")
    status, signal = tonumber(st), tonumber(sig)
    if dead == "1" and status == nil and signal == nil then
      -- tmux built with libutempter can miss the SIGCHLD of a pane that
      -- exits while utempter's handler is in (tmux/tmux#311): nudge it
      proc.kill(self.server_pid, SIGCHLD)
    end
    return dead == "1" and (status ~= nil or signal ~= nil)
  end, timeout)
  return status, signal
end

--- Stops the program (by pid) and the tmux server. Safe to call twice.
function Session:close()
  if not self.started then return end
  self.started = false
  pcall(run, { "tmux", "-L", self.socket, "kill-server" })
  for _, pid in ipairs { self.pid, self.server_pid } do
    if pid and proc.alive(pid) then proc.stop(pid, { timeout = 2, signal = "KILL" }) end
  end
  -- tmux leaves its socket behind
  if self.socket_path and self.socket_path:find(self.socket, 1, true) then
    fs.remove(self.socket_path)
  end
end

return M
