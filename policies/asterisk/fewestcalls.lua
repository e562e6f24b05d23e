-- fewestcalls (Asterisk app_queue): ring the member who has answered the
-- fewest calls (calls_taken).
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

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local since = call.since_last_ring
  local held = since and since < RETRY and call.tried -- members held back, or false
  local best, bp, bc, bpos
  for _, a in ipairs(agents) do
    local p, c, pos = a.penalty, a.calls_taken, a.position
    if not (held and held[a.id])
      and (not best or p < bp or (p == bp and (c < bc or (c == bc and pos < bpos)))) then
      best, bp, bc, bpos = a, p, c, pos
    end
  end
  if not best then -- nobody free, or only agents held back
    return { wait = held and math.ceil(RETRY - since) or WAIT }
  end
  return { ring = best.id }
end

return P
