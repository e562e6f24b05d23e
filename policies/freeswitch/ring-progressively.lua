-- ring-progressively (FreeSWITCH mod_callcenter): ring agents in tier and
-- position order, the earlier ones again as more are added.
--
-- Switchboard decides again after each ring round that nobody answered, with
-- call.attempts one higher, so progression maps onto attempts: a round rings
-- the first attempts + 1 agents together (1, then 2, then 3...), each round
-- for STEP seconds. FreeSWITCH's ring-progressively-delay is STEP. Unlike
-- FreeSWITCH's one long ring, each round is a ring of its own: the agents of
-- the last round are cancelled and rung again, and a round that times out
-- counts as a no-answer for each agent in it.
-- Knobs: WAIT, STEP, MAX_RING.
local WAIT = 10 -- seconds before deciding again when nobody is available
local STEP = nil -- seconds a round rings before one more agent joins; nil: the queue's ring_timeout
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
  local k = call.attempts + 1
  if k > n then k = n end
  if k > MAX_RING then k = MAX_RING end
  table.sort(agents, before) -- the list is ours to reorder
  local ids = {}
  for i = 1, k do ids[i] = agents[i].id end
  return { ring = ids, timeout = STEP }
end

return P
