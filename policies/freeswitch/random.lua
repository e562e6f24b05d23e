-- random (FreeSWITCH mod_callcenter): ring an agent of the lowest available
-- tier chosen at random, each with the same chance.
--
-- Uses ctx.random, so the same engine seed, call and attempt pick the same
-- agent (replays and tests are exact).
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
  local top, count = math.huge, 0
  for _, a in ipairs(agents) do -- pass 1: the lowest tier and its size
    if not (held and held[a.id]) then
      local t = a.tier
      if t < top then
        top, count = t, 1
      elseif t == top then
        count = count + 1
      end
    end
  end
  if count == 0 then -- nobody free, or only agents held back
    return { wait = held and math.ceil(DELAY - since) or WAIT }
  end
  local k, pick = ctx.random(1, count), nil
  for _, a in ipairs(agents) do -- pass 2: the k-th agent of that tier
    if a.tier == top and not (held and held[a.id]) then
      k = k - 1
      if k == 0 then
        pick = a
        break
      end
    end
  end
  return { ring = pick.id }
end

return P
