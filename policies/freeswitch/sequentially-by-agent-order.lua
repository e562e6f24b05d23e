-- sequentially-by-agent-order (FreeSWITCH mod_callcenter): ring every
-- available agent one after another (mode = "sequence"), in tier order and
-- by position within a tier, each for the ring timeout; the first MAX_RING
-- of them. Knobs: WAIT, TIMEOUT, MAX_RING.
local WAIT = 10 -- seconds before deciding again when nobody is available
local TIMEOUT = nil -- seconds each agent rings; nil: the queue's ring_timeout
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
  return { ring = ids, mode = "sequence", timeout = TIMEOUT }
end

return P
