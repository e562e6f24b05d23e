-- agent-with-fewest-calls (FreeSWITCH mod_callcenter): ring the agent of the
-- lowest available tier who has answered the fewest calls (calls_taken);
-- ties go to the lower position. Knobs: WAIT.
local WAIT = 10 -- seconds before deciding again when nobody is available

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local best, bt, bc, bpos
  for _, a in ipairs(agents) do
    local t, c, pos = a.tier, a.calls_taken, a.position
    if not best or t < bt or (t == bt and (c < bc or (c == bc and pos < bpos))) then
      best, bt, bc, bpos = a, t, c, pos
    end
  end
  if not best then return { wait = WAIT } end
  return { ring = best.id }
end

return P
