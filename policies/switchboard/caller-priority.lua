-- caller-priority: VIP callers ring the whole top tier at once; everybody
-- else gets the agent idle longest, until they have waited too long.
--
-- A caller is VIP when call.priority >= VIP_PRIORITY or the gateway set
-- attrs.vip = true. VIPs, and callers who have waited (call.waited) more than
-- ESCALATE_AFTER seconds, ring every available agent of the lowest tier
-- together. Everyone else rings the longest idle agent of any tier. A caller
-- who withheld the number (call.caller nil) is judged the same way: only the
-- priority, attrs.vip and the wait count, never the number.
--
-- Agents this call has rung (call.tried) come after those it has not, then
-- the fewer rings first: an agent who let it ring is not rung again while
-- another is free. A ring of the whole tier rings the lowest tier of the
-- agents rung fewest times for this call: after the top tier let a VIP's
-- call ring, the next tier rings before the top one again. When every free
-- agent has rung for it, the next ring waits until RETRY seconds after the
-- last one ended (call.since_last_ring) rather than ring again at once.
-- Knobs: VIP_PRIORITY, ESCALATE_AFTER, WAIT, MAX_RING, RETRY.
local VIP_PRIORITY = 50 -- priority from which a caller is VIP
local ESCALATE_AFTER = 120 -- seconds of waiting after which anyone rings all
local WAIT = 10 -- seconds before deciding again when nobody is available
local MAX_RING = 32 -- the most agents one ring decision may hold (the engine's limit)
local RETRY = 5 -- seconds after a ring ended before an agent this call rang rings again

---@type Policy
local P = {}

-- { wait = ... } until RETRY seconds after the call's last ring ended, when
-- the agents to ring have all rung for it (fewest > 0); nil otherwise.
local function held(call, fewest)
  local since = fewest > 0 and call.since_last_ring
  if since and since < RETRY then return { wait = math.ceil(RETRY - since) } end
  return nil
end

function P.route(call, agents, ctx)
  local tried = call.tried -- agent id -> rings of this call
  if call.priority >= VIP_PRIORITY or call.waited > ESCALATE_AFTER or call.attrs.vip == true then
    local ids, n, fewest, top = {}, 0, math.huge, math.huge
    for _, a in ipairs(agents) do
      local id, t = a.id, a.tier
      local rung = tried[id] or 0
      if rung < fewest or (rung == fewest and t < top) then
        fewest, top, n = rung, t, 0 -- rung less, or a lower tier: start the list again
      end
      if rung == fewest and t == top and n < MAX_RING then
        n = n + 1
        ids[n] = id
      end
    end
    if n == 0 then return { wait = WAIT } end
    local wait = held(call, fewest)
    if wait then return wait end
    for i = #ids, n + 1, -1 do ids[i] = nil end
    return { ring = ids }
  end

  local best, bn, most = nil, 0, -1
  for _, a in ipairs(agents) do
    local rung, idle = tried[a.id] or 0, a.idle_for
    if not best or rung < bn or (rung == bn and idle > most) then best, bn, most = a, rung, idle end
  end
  if not best then return { wait = WAIT } end
  return held(call, bn) or { ring = best.id }
end

return P
