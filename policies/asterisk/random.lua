-- random (Asterisk app_queue): ring a member chosen at random, each with the
-- same chance, among the members with the lowest penalty available.
--
-- Uses ctx.random, so the same engine seed, call and attempt pick the same
-- member (replays and tests are exact). Knobs: WAIT.
local WAIT = 10 -- seconds before deciding again when nobody is available

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local low, count = math.huge, 0
  for _, a in ipairs(agents) do -- pass 1: the lowest penalty and how many have it
    local p = a.penalty
    if p < low then
      low, count = p, 1
    elseif p == low then
      count = count + 1
    end
  end
  if count == 0 then return { wait = WAIT } end
  local k, pick = ctx.random(1, count), nil
  for _, a in ipairs(agents) do -- pass 2: the k-th of them
    if a.penalty == low then
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
