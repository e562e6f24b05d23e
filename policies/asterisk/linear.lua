-- linear (Asterisk app_queue): ring members in the queue's order (position),
-- starting from the first for every call. A call rings each member once
-- before any member twice: the members it has rung fewest times
-- (call.tried) come first, then the lower position. So the first attempt
-- rings the top member, a failed ring moves on down the list, and once every
-- member has been tried the walk starts again at the top.
--
-- Lowest penalty first, as in Asterisk. Knobs: WAIT.
local WAIT = 10 -- seconds before deciding again when nobody is available

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local tried = call.tried
  local best, bp, bn, bpos
  for _, a in ipairs(agents) do
    local p, n, pos = a.penalty, tried[a.id] or 0, a.position
    if not best or p < bp or (p == bp and (n < bn or (n == bn and pos < bpos))) then
      best, bp, bn, bpos = a, p, n, pos
    end
  end
  if not best then return { wait = WAIT } end
  return { ring = best.id }
end

return P
