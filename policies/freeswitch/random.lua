-- random (FreeSWITCH mod_callcenter): ring an agent of the lowest available
-- tier chosen at random, each with the same chance.
--
-- Uses ctx.random, so the same engine seed, call and attempt pick the same
-- agent (replays and tests are exact). Knobs: WAIT.
local WAIT = 10 -- seconds before deciding again when nobody is available

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local top, count = math.huge, 0
  for _, a in ipairs(agents) do -- pass 1: the lowest tier and its size
    local t = a.tier
    if t < top then
      top, count = t, 1
    elseif t == top then
      count = count + 1
    end
  end
  if count == 0 then return { wait = WAIT } end
  local k, pick = ctx.random(1, count), nil
  for _, a in ipairs(agents) do -- pass 2: the k-th agent of that tier
    if a.tier == top then
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
