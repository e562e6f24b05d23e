-- ring-progressively (FreeSWITCH mod_callcenter): ring the available agents
-- in tier, then position order, one more every STEP seconds, the earlier ones
-- ringing on (mode = "progressive"), until someone answers or the ring's
-- timeout runs out; the first MAX_RING of them. STEP is FreeSWITCH's
-- ring-progressively-delay. One long ring, as in FreeSWITCH: an agent who is
-- not free when its turn comes is skipped, one who is busy or rejects leaves
-- the others ringing, and an agent who rang to the end counts one no-answer.
-- When nobody answers the call comes back here and the ring starts again
-- from the top, without the agents who rang until DELAY is over.
--
-- An agent this call has rung is not offered it again until DELAY seconds
-- after the call's last ring ended (call.since_last_ring), as mod_callcenter's
-- busy-delay-time, no-answer-delay-time and reject-delay-time keep an agent
-- from calls: one delay for all three, as a policy does not see how a ring
-- ended. Other agents ring meanwhile (another tier's too); with only those
-- held back free, the call waits until the delay is over.
-- Knobs: WAIT, STEP, TIMEOUT, MAX_RING, DELAY.
local WAIT = 10 -- seconds before deciding again when nobody is available
local DELAY = 10 -- seconds an agent this call rang is held back (busy/no-answer/reject-delay-time)
local STEP = 10 -- seconds before the next agent joins (ring-progressively-delay)
local TIMEOUT = nil -- seconds the whole ring lasts; nil: the queue's ring_timeout
local MAX_RING = 32 -- the most agents one ring decision may hold (the engine's limit)

-- tier, then position, then id (so equal positions still sort the same way)
local function before(a, b)
  local ta, tb = a.tier, b.tier
  if ta ~= tb then return ta < tb end
  local pa, pb = a.position, b.position
  if pa ~= pb then return pa < pb end
  return a.id < b.id
end

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local since = call.since_last_ring
  local held = since and since < DELAY and call.tried -- agents held back, or false
  local list = agents -- ours to reorder
  if held then -- without the agents held back
    list = {}
    for _, a in ipairs(agents) do
      if not held[a.id] then list[#list + 1] = a end
    end
  end
  local n = #list
  if n == 0 then -- nobody free, or only agents held back
    return { wait = held and math.ceil(DELAY - since) or WAIT }
  end
  table.sort(list, before)
  if n > MAX_RING then n = MAX_RING end
  local ids = {}
  for i = 1, n do ids[i] = list[i].id end
  return { ring = ids, mode = "progressive", step = STEP, timeout = TIMEOUT }
end

return P
