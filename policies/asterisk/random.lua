-- random (Asterisk app_queue): ring a member chosen at random, each with the
-- same chance, among the members with the lowest penalty available.
--
-- Uses ctx.random, so the same engine seed, call and attempt pick the same
-- member (replays and tests are exact).
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
  local low, count = math.huge, 0
  for _, a in ipairs(agents) do -- pass 1: the lowest penalty and how many have it
    if not (held and held[a.id]) then
      local p = a.penalty
      if p < low then
        low, count = p, 1
      elseif p == low then
        count = count + 1
      end
    end
  end
  if count == 0 then -- nobody free, or only agents held back
    return { wait = held and math.ceil(RETRY - since) or WAIT }
  end
  local k, pick = ctx.random(1, count), nil
  for _, a in ipairs(agents) do -- pass 2: the k-th of them
    if a.penalty == low and not (held and held[a.id]) then
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
