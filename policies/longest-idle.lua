-- longest-idle: ring the available agent who has been idle longest.
--
-- The reference policy, and the one the benchmark runs: one pass over the
-- agents, no allocation besides the decision. Ties go to the agent listed
-- first. Knobs: WAIT.
local WAIT = 10 -- seconds before deciding again when nobody is available

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local best, most = nil, -1
  for i = 1, #agents do
    local a = agents[i]
    local idle = a.idle_for
    if idle > most then best, most = a, idle end
  end
  if not best then return { wait = WAIT } end
  return { ring = best.id }
end

return P
