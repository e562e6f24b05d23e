-- agent-with-least-talk-time (FreeSWITCH mod_callcenter): ring the agent of
-- the lowest available tier with the least time on calls (talk_time); ties
-- go to the lower position. Knobs: WAIT.
local WAIT = 10 -- seconds before deciding again when nobody is available

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local best, bt, bs, bpos
  for _, a in ipairs(agents) do
    local t, s, pos = a.tier, a.talk_time, a.position
    if not best or t < bt or (t == bt and (s < bs or (s == bs and pos < bpos))) then
      best, bt, bs, bpos = a, t, s, pos
    end
  end
  if not best then return { wait = WAIT } end
  return { ring = best.id }
end

return P
