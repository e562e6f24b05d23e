-- wrandom (Asterisk app_queue): ring a member at random, weighted by penalty
-- the way Asterisk does it.
--
-- Each available member draws a number in [0, (penalty + 1) * 1000) and the
-- lowest draw rings. So penalty + 1 is how wide a member's range is: penalty
-- 0 is favoured, higher penalties ring less often but still can (of members
-- with penalties 0 and 1, the first wins 3 times in 4). As in Asterisk,
-- wrandom is the one strategy where penalty is only a weight: it does not
-- hold back the higher penalties while a lower one is free. Negative
-- penalties count as 0.
--
-- Uses ctx.random, so the same engine seed, call and attempt pick the same
-- member.
--
-- A member this call has rung is rung again only RETRY seconds after the
-- call's last ring ended (call.since_last_ring), as app_queue's `retry`:
-- members it has not rung ring at once; with only those it rang free, the
-- call waits until RETRY is over.
-- Knobs: WAIT, RETRY.
local WAIT = 10 -- seconds before deciding again when nobody is available
local RETRY = 5 -- seconds before a member this call rang is rung again (app_queue's retry)
local SCALE = 1000 -- width of a penalty-0 member's range, as in Asterisk

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local since = call.since_last_ring
  local held = since and since < RETRY and call.tried -- members held back, or false
  local best, low
  for _, a in ipairs(agents) do
    local p = a.penalty
    if p < 0 then p = 0 end
    local draw = ctx.random(0, (p + 1) * SCALE - 1)
    if not (held and held[a.id]) and (not best or draw < low) then best, low = a, draw end
  end
  if not best then -- nobody free, or only agents held back
    return { wait = held and math.ceil(RETRY - since) or WAIT }
  end
  return { ring = best.id }
end

return P
