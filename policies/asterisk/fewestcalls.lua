-- fewestcalls (Asterisk app_queue): ring the member who has answered the
-- fewest calls (calls_taken).
--
-- Lowest penalty first, as in Asterisk. Ties go to the lower position.
-- Knobs: WAIT.
local WAIT = 10 -- seconds before deciding again when nobody is available

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local best, bp, bc, bpos
  for _, a in ipairs(agents) do
    local p, c, pos = a.penalty, a.calls_taken, a.position
    if not best or p < bp or (p == bp and (c < bc or (c == bc and pos < bpos))) then
      best, bp, bc, bpos = a, p, c, pos
    end
  end
  if not best then return { wait = WAIT } end
  return { ring = best.id }
end

return P
