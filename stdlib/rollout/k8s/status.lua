--- rollout.k8s.status: API answers that are errors -> rollout's error
-- vocabulary (rollout.errors.codes) and one-line messages.
--
-- The code comes from the Status reason (k8s.io/apimachinery
-- pkg/apis/meta/v1/types.go, StatusReason*), else from the HTTP status
-- (k8s.io/apimachinery pkg/api/errors/errors.go, reasonForCode); `raw` is
-- that reason ("NotFound", "Conflict", ...).
local json = require "rollout.json"
local util = require "rollout.k8s.util"

local status = {}

-- StatusReason -> rollout code (k8s.io/apimachinery/pkg/apis/meta/v1/types.go)
local BY_REASON = {
  NotFound = "not_found",
  AlreadyExists = "exists",
  Conflict = "conflict",
  Invalid = "invalid",
  BadRequest = "invalid",
  MethodNotAllowed = "invalid",
  NotAcceptable = "invalid",
  UnsupportedMediaType = "invalid",
  Unauthorized = "unauthorized",
  Forbidden = "forbidden",
  Gone = "gone",
  Expired = "gone",
  Timeout = "timeout",
  ServerTimeout = "timeout",
  TooManyRequests = "unavailable",
  ServiceUnavailable = "unavailable",
  InternalError = "unavailable",
  RequestEntityTooLarge = "too_large",
}

-- HTTP status -> StatusReason (k8s.io/apimachinery/pkg/api/errors/errors.go
-- reasonForCode, plus the codes the API server answers with)
local REASON_FOR_CODE = {
  [400] = "BadRequest", [401] = "Unauthorized", [403] = "Forbidden", [404] = "NotFound",
  [405] = "MethodNotAllowed", [406] = "NotAcceptable", [409] = "Conflict", [410] = "Gone",
  [413] = "RequestEntityTooLarge", [415] = "UnsupportedMediaType", [422] = "Invalid",
  [429] = "TooManyRequests", [500] = "InternalError", [503] = "ServiceUnavailable", [504] = "Timeout",
}

--- The StatusReason for an HTTP status ("Unknown" when none).
function status.reason_for_code(code)
  return REASON_FOR_CODE[code] or "Unknown"
end

--- The rollout code for a reason and/or an HTTP status.
function status.code(reason, http_status)
  local c = reason and BY_REASON[reason]
  if c then return c end
  http_status = tonumber(http_status) or 0
  c = BY_REASON[REASON_FOR_CODE[http_status] or ""]
  if c then return c end
  if http_status == 429 or http_status >= 500 then return "unavailable" end
  if http_status >= 400 then return "invalid" end
  return "protocol"
end

--- nil, message, code, raw, status table for a non-2xx answer. `body` is
-- the answer's text; `where` is "METHOD url" (redacted) for answers that
-- are not a Status.
function status.error(http_status, body, where)
  local obj = (body and body ~= "") and json.decode(body, { max_size = 256 << 20 }) or nil
  if type(obj) == "table" and obj.kind == "Status" then
    local reason = type(obj.reason) == "string" and obj.reason ~= "" and obj.reason or nil
    local raw = reason or status.reason_for_code(http_status)
    local msg = type(obj.message) == "string" and obj.message ~= "" and util.one_line(obj.message)
      or string.format("%s: HTTP %d %s", where, http_status, raw)
    -- an admission webhook's denial has no reason (k8s.io/apiserver
    -- pkg/admission/plugin/webhook/errors/statuserror.go ToStatusErr): by code
    return nil, msg, status.code(reason, obj.code or http_status), raw, obj
  end
  local msg = string.format("%s: HTTP %d", where, http_status)
  if body and body ~= "" then msg = msg .. ": " .. util.one_line(body, 300) end
  local raw = status.reason_for_code(http_status)
  return nil, msg, status.code(nil, http_status), raw
end

return status
