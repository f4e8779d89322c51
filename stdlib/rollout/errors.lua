--- rollout.errors: the two kinds of error the stdlib raises.
--   refused: invalid input, refused before any change  -> exit code 2
--   failed:  a check or an operation failed            -> exit code 1
-- Both are tables {message=, exit=, kind=}; the host prints the message
-- without a traceback and exits with `exit` when one is not caught.
local errors = {}

--- The one vocabulary of error codes. Environment failures return
-- `nil, message, code[, raw]` (luv's convention): `code` is one of these,
-- `raw` the upstream reason it was mapped from ("ENOENT", "NotFound", an
-- HTTP status, a curl error name, a helm message) when there is one.
-- Errors raised by the stdlib carry the same code as `e.code`.
errors.codes = {
  not_found = "the object, file, release or version does not exist",
  exists = "it exists already",
  conflict = "a concurrent change or a field owned by another manager",
  invalid = "the request or the input is invalid",
  unauthorized = "no or bad credentials (HTTP 401)",
  forbidden = "not allowed (HTTP 403, EACCES, EPERM)",
  timeout = "a deadline passed",
  connect = "cannot connect (refused, unreachable, DNS)",
  tls = "TLS or certificate problem",
  unavailable = "the server is busy or down (HTTP 429/5xx after retries)",
  gone = "too old to resume (HTTP 410, an expired watch)",
  locked = "another rollout holds the lock",
  interrupted = "^C",
  io = "another operating-system error",
  protocol = "a malformed or unexpected answer",
  too_large = "over a size cap",
  failed = "a command ran and reported failure (non-zero exit)",
  other = "anything else",
}

local mt = { __tostring = function(e) return e.message end }

local function make(kind, code, message, extra)
  local e = { kind = kind, exit = code, message = message }
  for k, v in pairs(extra or {}) do e[k] = v end
  return setmetatable(e, mt)
end

function errors.refused(message, extra) return make("refused", 2, message, extra) end
function errors.failed(message, extra) return make("failed", 1, message, extra) end

--- Raises a refusal (exit 2).
function errors.refuse(message, extra) error(errors.refused(message, extra), 0) end
--- Raises a failure (exit 1).
function errors.fail(message, extra) error(errors.failed(message, extra), 0) end

--- True when e is one of ours, of the given kind (any kind when nil).
function errors.is(e, kind)
  return type(e) == "table" and getmetatable(e) == mt and (kind == nil or e.kind == kind)
end

--- The message of any error value.
function errors.message(e)
  if type(e) == "table" and e.message then return tostring(e.message) end
  return tostring(e)
end

--- The error a ^C raises: one value (the host's sentinel, sys.INTERRUPTED),
-- recognised by identity, never by the word in a message. It prints as
-- "interrupted"; e.message and e.code are "interrupted" too.
errors.INTERRUPTED = require("rollout.sys").INTERRUPTED

--- True when `e` is the error a ^C raises.
function errors.is_interrupt(e)
  return rawequal(e, errors.INTERRUPTED)
end

--- Runs f(...) and returns true, results... or false, error (like pcall) but
-- lets ^C through: a ^C must end the program.
function errors.pcall(f, ...)
  local res = table.pack(pcall(f, ...))
  if not res[1] and errors.is_interrupt(res[2]) then
    error(res[2], 0)
  end
  return table.unpack(res, 1, res.n)
end

--- An xpcall handler: our errors and ^C pass as they are; anything else (a
-- bug) gets its traceback, so re-raising it elsewhere keeps the place.
function errors.traceback(e)
  if errors.is(e) or errors.is_interrupt(e) then return e end
  if type(e) ~= "string" then return e end
  return debug.traceback(e, 2)
end

return errors
