-- ring-progressively (FreeSWITCH mod_callcenter): ring the available agents
-- in tier, then position order, one more every STEP seconds, the earlier ones
-- ringing on (mode = "progressive"), until someone answers or the ring's
-- timeout runs out; the first MAX_RING of them. STEP is FreeSWITCH's
-- ring-progressively-delay. One long ring, as in FreeSWITCH: an agent who is
-- not free when its turn comes is skipped, one who is busy or rejects leaves
-- the others ringing, and an agent who rang to the end counts one no-answer.
-- When nobody answers the call comes back here and the ring starts again
-- from the top. Knobs: WAIT, STEP, TIMEOUT, MAX_RING.
local WAIT = 10 -- seconds before deciding again when nobody is available
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
  local n = #agents
  if n == 0 then return { wait = WAIT } end
  table.sort(agents, before) -- the list is ours to reorder
  if n > MAX_RING then n = MAX_RING end
  local ids = {}
  for i = 1, n do ids[i] = agents[i].id end
  return { ring = ids, mode = "progressive", step = STEP, timeout = TIMEOUT }
end

return P
