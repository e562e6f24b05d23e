-- top-down (FreeSWITCH mod_callcenter): ring agents in position order,
-- starting from the top for every call. A call rings each agent once before
-- any agent twice: the agents it has rung fewest times (call.tried) come
-- first, then the lower position; once all have been tried the walk starts
-- again at the top. Only the lowest available tier rings. Knobs: WAIT.
local WAIT = 10 -- seconds before deciding again when nobody is available

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local tried = call.tried
  local best, bt, bn, bpos
  for _, a in ipairs(agents) do
    local t, n, pos = a.tier, tried[a.id] or 0, a.position
    if not best or t < bt or (t == bt and (n < bn or (n == bn and pos < bpos))) then
      best, bt, bn, bpos = a, t, n, pos
    end
  end
  if not best then return { wait = WAIT } end
  return { ring = best.id }
end

return P
