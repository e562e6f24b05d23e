-- ringall (Asterisk app_queue): ring every available member at once; the
-- first to answer gets the call.
--
-- Penalties as in Asterisk: only the members with the lowest penalty among
-- those available ring; higher penalties ring only when no lower one is free.
--
-- A member this call has rung is rung again only RETRY seconds after the
-- call's last ring ended (call.since_last_ring), as app_queue's `retry`:
-- members it has not rung ring at once; with only those it rang free, the
-- call waits until RETRY is over.
-- Knobs: WAIT, MAX_RING, RETRY.
local WAIT = 10 -- seconds before deciding again when nobody is available
local RETRY = 5 -- seconds before a member this call rang is rung again (app_queue's retry)
local MAX_RING = 32 -- the most agents one ring decision may hold (the engine's limit)

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local since = call.since_last_ring
  local held = since and since < RETRY and call.tried -- members held back, or false
  local ids, n, low = {}, 0, math.huge
  for _, a in ipairs(agents) do
    if not (held and held[a.id]) then -- one held back counts for nothing
      local p = a.penalty
      if p < low then low, n = p, 0 end -- a lower penalty: start the list again
      if p == low and n < MAX_RING then
        n = n + 1
        ids[n] = a.id
      end
    end
  end
  if n == 0 then -- nobody free, or only agents held back
    return { wait = held and math.ceil(RETRY - since) or WAIT }
  end
  for i = #ids, n + 1, -1 do ids[i] = nil end -- drop what a restart left behind
  return { ring = ids }
end

return P
