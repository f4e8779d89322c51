-- Steady default-route traffic for end-to-end specs (what users would
-- send): `rollout tests/helpers/load.lua URL SECONDS [RATE]` sends about
-- RATE requests per second (default 400) in small batches to URL, for at
-- most SECONDS, then exits by itself. Started with proc.spawn and stopped
-- by its pid by the spec (also on failure).
local probe = require "rollout.probe"
local time = require "rollout.time"

local url, seconds, rate = arg[1], tonumber(arg[2] or ""), tonumber(arg[3] or "400")
assert(url and url:match("^http://127%.0%.0%.1:%d+/"), "usage: load.lua http://127.0.0.1:PORT/PATH SECONDS [RATE]")
assert(seconds and seconds > 0 and seconds <= 600, "SECONDS must be in (0, 600]")
local batch = 20
local deadline = time.now() + seconds
local sent = 0
local t0 = time.now()
while time.now() < deadline do
  probe.run { url = url, n = batch, concurrency = 2, timeout = 2 }
  sent = sent + batch
  -- pace: batch i is due at t0 + i * batch / rate
  local due = t0 + sent / rate
  local now = time.now()
  if due > now then time.sleep(math.min(due - now, deadline - now > 0 and deadline - now or 0)) end
end
