-- leastrecent (Asterisk app_queue): ring the member whose last call ended
-- longest ago; a member who never took a call (last_call = nil) comes first.
--
-- Lowest penalty first, as in Asterisk. Ties go to the lower position.
--
-- A member this call has rung is rung again only RETRY seconds after the
-- call's last ring ended (call.since_last_ring), as app_queue's `retry`:
-- members it has not rung ring at once; with only those it rang free, the
-- call waits until RETRY is over.
-- Knobs: WAIT, RETRY.
local WAIT = 10 -- seconds before deciding again when nobody is available
local RETRY = 5 -- seconds before a member this call rang is rung again (app_queue's retry)
local NEVER = -math.huge -- last_call of a member who never took a call

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local since = call.since_last_ring
  local held = since and since < RETRY and call.tried -- members held back, or false
  local best, bp, bl, bpos
  for _, a in ipairs(agents) do
    local p, l, pos = a.penalty, a.last_call or NEVER, a.position
    if not (held and held[a.id])
      and (not best or p < bp or (p == bp and (l < bl or (l == bl and pos < bpos)))) then
      best, bp, bl, bpos = a, p, l, pos
    end
  end
  if not best then -- nobody free, or only agents held back
    return { wait = held and math.ceil(RETRY - since) or WAIT }
  end
  return { ring = best.id }
end

return P
