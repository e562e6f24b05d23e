-- linear (Asterisk app_queue): ring members in the queue's order (position),
-- starting from the first for every call. A call rings each member once
-- before any member twice: the members it has rung fewest times
-- (call.tried) come first, then the lower position. So the first attempt
-- rings the top member, a failed ring moves on down the list, and once every
-- member has been tried the walk starts again at the top.
--
-- Lowest penalty first, as in Asterisk.
--
-- A member this call has rung is rung again only RETRY seconds after the
-- call's last ring ended (call.since_last_ring), as app_queue's `retry`:
-- members it has not rung ring at once; with only those it rang free, the
-- call waits until RETRY is over.
-- Knobs: WAIT, RETRY.
local WAIT = 10 -- seconds before deciding again when nobody is available
local RETRY = 5 -- seconds before a member this call rang is rung again (app_queue's retry)

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local since = call.since_last_ring
  local held = since and since < RETRY and call.tried -- members held back, or false
  local tried = call.tried
  local best, bp, bn, bpos
  for _, a in ipairs(agents) do
    local p, n, pos = a.penalty, tried[a.id] or 0, a.position
    if not (held and held[a.id])
      and (not best or p < bp or (p == bp and (n < bn or (n == bn and pos < bpos)))) then
      best, bp, bn, bpos = a, p, n, pos
    end
  end
  if not best then -- nobody free, or only agents held back
    return { wait = held and math.ceil(RETRY - since) or WAIT }
  end
  return { ring = best.id }
end

return P
