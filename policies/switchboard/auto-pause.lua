-- auto-pause: pause agents who keep missing calls, and ring the longest idle
-- of the others.
--
-- An available agent whose consecutive unanswered rings (no_answers) reach
-- MAX_MISSES is paused with a reason saying so; the pause goes with whatever
-- the call gets (a ring, or a wait when nobody else is free). An agent comes
-- back by being set available again. Offenders are never rung, paused or
-- not.
--
-- Of the others, agents this call has rung (call.tried) come after those it
-- has not, then the fewer rings first: an agent who let it ring is not rung
-- again while another is free. When everyone else free has rung for it, the
-- next ring waits until RETRY seconds after the last one ended
-- (call.since_last_ring) rather than ring again at once; the pauses go with
-- that wait.
-- Knobs: MAX_MISSES, WAIT, MAX_PAUSE, RETRY.
local MAX_MISSES = 3 -- consecutive unanswered rings that pause an agent
local WAIT = 10 -- seconds before deciding again when nobody is available
local MAX_PAUSE = 8 -- the most agents one decision may pause (the engine's limit)
local RETRY = 5 -- seconds after a ring ended before an agent this call rang rings again

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local tried = call.tried -- agent id -> rings of this call
  local best, bn, most, pause = nil, 0, -1, nil
  for _, a in ipairs(agents) do
    local misses = a.no_answers
    if misses >= MAX_MISSES then
      pause = pause or {}
      if #pause < MAX_PAUSE then -- the rest are paused by the next decisions
        pause[#pause + 1] = {
          agent = a.id,
          reason = string.format("%d calls unanswered in a row", misses),
        }
      end
    else
      local rung, idle = tried[a.id] or 0, a.idle_for
      if not best or rung < bn or (rung == bn and idle > most) then
        best, bn, most = a, rung, idle
      end
    end
  end
  if not best then return { wait = WAIT, pause = pause } end
  local since = bn > 0 and call.since_last_ring
  if since and since < RETRY then -- only agents it rang are left: hold them back
    return { wait = math.ceil(RETRY - since), pause = pause }
  end
  return { ring = best.id, pause = pause }
end

return P
