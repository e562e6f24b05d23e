-- top-down (FreeSWITCH mod_callcenter): ring agents in position order,
-- starting from the top for every call. A call rings each agent once before
-- any agent twice: the agents it has rung fewest times (call.tried) come
-- first, then the lower position; once all have been tried the walk starts
-- again at the top. Only the lowest available tier rings.
--
-- An agent this call has rung is not offered it again until DELAY seconds
-- after the call's last ring ended (call.since_last_ring), as mod_callcenter's
-- busy-delay-time, no-answer-delay-time and reject-delay-time keep an agent
-- from calls: one delay for all three, as a policy does not see how a ring
-- ended. Other agents ring meanwhile (another tier's too); with only those
-- held back free, the call waits until the delay is over.
-- Knobs: WAIT, DELAY.
local WAIT = 10 -- seconds before deciding again when nobody is available
local DELAY = 10 -- seconds an agent this call rang is held back (busy/no-answer/reject-delay-time)

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local since = call.since_last_ring
  local held = since and since < DELAY and call.tried -- agents held back, or false
  local tried = call.tried
  local best, bt, bn, bpos
  for _, a in ipairs(agents) do
    local t, n, pos = a.tier, tried[a.id] or 0, a.position
    if not (held and held[a.id])
      and (not best or t < bt or (t == bt and (n < bn or (n == bn and pos < bpos)))) then
      best, bt, bn, bpos = a, t, n, pos
    end
  end
  if not best then -- nobody free, or only agents held back
    return { wait = held and math.ceil(DELAY - since) or WAIT }
  end
  return { ring = best.id }
end

return P
