-- caller-priority: VIP callers ring the whole top tier at once; everybody
-- else gets the agent idle longest, until they have waited too long.
--
-- A caller is VIP when call.priority >= VIP_PRIORITY or the gateway set
-- attrs.vip = true. VIPs, and callers who have waited (call.waited) more than
-- ESCALATE_AFTER seconds, ring every available agent of the lowest tier
-- together. Everyone else rings the longest idle agent of any tier. A caller
-- who withheld the number (call.caller nil) is judged the same way: only the
-- priority, attrs.vip and the wait count, never the number.
-- Knobs: VIP_PRIORITY, ESCALATE_AFTER, WAIT, MAX_RING.
local VIP_PRIORITY = 50 -- priority from which a caller is VIP
local ESCALATE_AFTER = 120 -- seconds of waiting after which anyone rings all
local WAIT = 10 -- seconds before deciding again when nobody is available
local MAX_RING = 32 -- the most agents one ring decision may hold (the engine's limit)

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  if call.priority >= VIP_PRIORITY or call.waited > ESCALATE_AFTER or call.attrs.vip == true then
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
    for i = #ids, n + 1, -1 do ids[i] = nil end
    return { ring = ids }
  end

  local best, most = nil, -1
  for _, a in ipairs(agents) do
    local idle = a.idle_for
    if idle > most then best, most = a, idle end
  end
  if not best then return { wait = WAIT } end
  return { ring = best.id }
end

return P
