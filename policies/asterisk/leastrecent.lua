-- leastrecent (Asterisk app_queue): ring the member whose last call ended
-- longest ago; a member who never took a call (last_call = nil) comes first.
--
-- Lowest penalty first, as in Asterisk. Ties go to the lower position.
-- Knobs: WAIT.
local WAIT = 10 -- seconds before deciding again when nobody is available
local NEVER = -math.huge -- last_call of a member who never took a call

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local best, bp, bl, bpos
  for _, a in ipairs(agents) do
    local p, l, pos = a.penalty, a.last_call or NEVER, a.position
    if not best or p < bp or (p == bp and (l < bl or (l == bl and pos < bpos))) then
      best, bp, bl, bpos = a, p, l, pos
    end
  end
  if not best then return { wait = WAIT } end
  return { ring = best.id }
end

return P
