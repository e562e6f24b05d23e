-- ring-all (FreeSWITCH mod_callcenter): ring every available agent of the
-- lowest tier at once; the first to answer gets the call. The next tier
-- rings only when nobody of a lower tier is available. Knobs: WAIT, MAX_RING.
local WAIT = 10 -- seconds before deciding again when nobody is available
local MAX_RING = 32 -- the most agents one ring decision may hold (the engine's limit)

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local ids, n, top = {}, 0, math.huge
  for _, a in ipairs(agents) do
    local t = a.tier
    if t < top then top, n = t, 0 end -- a lower tier: start the list again
    if t == top and n < MAX_RING then
      n = n + 1
      ids[n] = a.id
    end
  end
  if n == 0 then return { wait = WAIT } end
  for i = #ids, n + 1, -1 do ids[i] = nil end -- drop what a restart left behind
  return { ring = ids }
end

return P
