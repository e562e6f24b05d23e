-- ring-all (FreeSWITCH mod_callcenter): ring every available agent of the
-- lowest tier at once; the first to answer gets the call. The next tier
-- rings only when nobody of a lower tier is available.
--
-- An agent this call has rung is not offered it again until DELAY seconds
-- after the call's last ring ended (call.since_last_ring), as mod_callcenter's
-- busy-delay-time, no-answer-delay-time and reject-delay-time keep an agent
-- from calls: one delay for all three, as a policy does not see how a ring
-- ended. Other agents ring meanwhile (another tier's too); with only those
-- held back free, the call waits until the delay is over.
-- Knobs: WAIT, MAX_RING, DELAY.
local WAIT = 10 -- seconds before deciding again when nobody is available
local DELAY = 10 -- seconds an agent this call rang is held back (busy/no-answer/reject-delay-time)
local MAX_RING = 32 -- the most agents one ring decision may hold (the engine's limit)

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local since = call.since_last_ring
  local held = since and since < DELAY and call.tried -- agents held back, or false
  local ids, n, top = {}, 0, math.huge
  for _, a in ipairs(agents) do
    if not (held and held[a.id]) then -- one held back counts for nothing
      local t = a.tier
      if t < top then top, n = t, 0 end -- a lower tier: start the list again
      if t == top and n < MAX_RING then
        n = n + 1
        ids[n] = a.id
      end
    end
  end
  if n == 0 then -- nobody free, or only agents held back
    return { wait = held and math.ceil(DELAY - since) or WAIT }
  end
  for i = #ids, n + 1, -1 do ids[i] = nil end -- drop what a restart left behind
  return { ring = ids }
end

return P
