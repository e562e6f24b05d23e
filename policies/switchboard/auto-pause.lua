-- auto-pause: pause agents who keep missing calls, and ring the longest idle
-- of the others.
--
-- An available agent whose consecutive unanswered rings (no_answers) reach
-- MAX_MISSES is paused with a reason saying so; the pause goes with whatever
-- the call gets (a ring, or a wait when nobody else is free). An agent comes
-- back by being set available again. Offenders are never rung, paused or
-- not. Knobs: MAX_MISSES, WAIT, MAX_PAUSE.
local MAX_MISSES = 3 -- consecutive unanswered rings that pause an agent
local WAIT = 10 -- seconds before deciding again when nobody is available
local MAX_PAUSE = 8 -- the most agents one decision may pause (the engine's limit)

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local best, most, pause = nil, -1, nil
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
      local idle = a.idle_for
      if idle > most then best, most = a, idle end
    end
  end
  if not best then return { wait = WAIT, pause = pause } end
  return { ring = best.id, pause = pause }
end

return P
