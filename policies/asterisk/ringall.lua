-- ringall (Asterisk app_queue): ring every available member at once; the
-- first to answer gets the call.
--
-- Penalties as in Asterisk: only the members with the lowest penalty among
-- those available ring; higher penalties ring only when no lower one is free.
-- Knobs: WAIT, MAX_RING.
local WAIT = 10 -- seconds before deciding again when nobody is available
local MAX_RING = 32 -- the most agents one ring decision may hold (the engine's limit)

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local ids, n, low = {}, 0, math.huge
  for _, a in ipairs(agents) do
    local p = a.penalty
    if p < low then low, n = p, 0 end -- a lower penalty: start the list again
    if p == low and n < MAX_RING then
      n = n + 1
      ids[n] = a.id
    end
  end
  if n == 0 then return { wait = WAIT } end
  for i = #ids, n + 1, -1 do ids[i] = nil end -- drop what a restart left behind
  return { ring = ids }
end

return P
