-- longest-idle-agent (FreeSWITCH mod_callcenter): ring the agent of the
-- lowest available tier who has been idle longest; ties go to the lower
-- position. Knobs: WAIT.
local WAIT = 10 -- seconds before deciding again when nobody is available

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local best, bt, bi, bpos
  for _, a in ipairs(agents) do
    local t, idle, pos = a.tier, a.idle_for, a.position
    if not best or t < bt or (t == bt and (idle > bi or (idle == bi and pos < bpos))) then
      best, bt, bi, bpos = a, t, idle, pos
    end
  end
  if not best then return { wait = WAIT } end
  return { ring = best.id }
end

return P
