-- longest-idle: ring the available agent who has been idle longest.
--
-- The reference policy, and the one the benchmark runs: one pass over the
-- agents, no allocation besides the decision. Ties go to the agent listed
-- first. After a ring that went unanswered, agents this call has not rung
-- yet go first (the agent who just let it ring is often still the longest
-- idle). A first attempt, the common case, takes the lean loop: one field
-- read and one comparison per agent (each VM instruction also pays for the
-- sandbox's instruction budget, so the loop is kept short); call.tried is
-- read only after an unanswered ring. When every available agent has rung
-- for this call already, the next ring waits until RETRY seconds after the
-- last one ended, as app_queue's `retry` does: the agent who just let it ring
-- is not rung again at once. Knobs: WAIT, RETRY.
local WAIT = 10 -- seconds before deciding again when nobody is available
local RETRY = 5 -- seconds between rings of agents this call has rung already

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local best, most = nil, -1
  if call.attempts == 0 then
    for i = 1, #agents do
      local idle = agents[i].idle_for
      if idle > most then best, most = i, idle end
    end
    if not best then return { wait = WAIT } end
    return { ring = agents[best].id }
  end
  local tried, fresh = call.tried, false
  for i = 1, #agents do
    local a = agents[i]
    local idle = a.idle_for
    local new = not tried[a.id]
    if (new and not fresh) or (new == fresh and idle > most) then
      best, most, fresh = a, idle, new
    end
  end
  if not best then return { wait = WAIT } end
  local since = not fresh and call.since_last_ring
  if since and since < RETRY then return { wait = math.ceil(RETRY - since) } end
  return { ring = best.id }
end

return P
