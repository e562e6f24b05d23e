-- by-language: the agent idle longest among those who speak the caller's
-- language (attrs.language, from the X-Language SIP header; skill level >= 1);
-- when none of them is free, the agent idle longest of all. Agents this call
-- has already rung (busy, no answer) come after everyone it has not. Ties go
-- to the lower position. The Kamailio example's queues use it.
local WAIT = 10 -- seconds before deciding again when nobody is free

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local lang, tried = call.attrs.language, call.tried
  local best, bt, bs, bi, bp
  for i = 1, #agents do
    local a = agents[i]
    local t = tried[a.id] or 0
    local s = (lang and (a.skills[lang] or 0) >= 1) and 1 or 0
    local idle, pos = a.idle_for, a.position
    if not best or t < bt or (t == bt and (s > bs or (s == bs and
        (idle > bi or (idle == bi and pos < bp))))) then
      best, bt, bs, bi, bp = a, t, s, idle, pos
    end
  end
  if not best then return { wait = WAIT } end
  return { ring = best.id, device = "softphone" }
end

return P
