-- longest-idle: ring the available agent who has been idle longest.
--
-- The reference policy, and the one the benchmark runs: one pass over the
-- agents, no allocation besides the decision. Ties go to the agent listed
-- first. After a ring that went unanswered, agents this call has not rung
-- yet go first (the agent who just let it ring is often still the longest
-- idle); call.tried is only read then, so a first attempt costs nothing
-- extra. Knobs: WAIT.
local WAIT = 10 -- seconds before deciding again when nobody is available

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local tried = call.attempts > 0 and call.tried or nil
  local best, most, fresh = nil, -1, false
  for i = 1, #agents do
    local a = agents[i]
    local idle = a.idle_for
    local new = not (tried and tried[a.id])
    if (new and not fresh) or (new == fresh and idle > most) then
      best, most, fresh = a, idle, new
    end
  end
  if not best then return { wait = WAIT } end
  return { ring = best.id }
end

return P
