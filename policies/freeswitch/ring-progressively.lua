-- ring-progressively (FreeSWITCH mod_callcenter): ring the available agents
-- in tier, then position order, one more every STEP seconds, the earlier ones
-- ringing on (mode = "progressive"), until someone answers or the ring's
-- timeout runs out; the first MAX_RING of them. STEP is FreeSWITCH's
-- ring-progressively-delay. One long ring, as in FreeSWITCH: an agent who is
-- not free when its turn comes is skipped, one who is busy or rejects leaves
-- the others ringing, and an agent who rang to the end counts one no-answer.
-- When nobody answers the call comes back here and the ring starts again
-- from the top, without the agents who let it go until DELAY after each
-- one's miss: the ring's end for those who rang to it, a busy or reject when
-- it came; one whose turn never came did not ring and is not held back.
--
-- An agent who let a ring go (no answer, busy, rejected or timed out, on any
-- call: a.missed_for) is offered no call until DELAY seconds after that ring
-- ended, as mod_callcenter's busy-delay-time, no-answer-delay-time and
-- reject-delay-time hold the agent back (its ready_time), for every call:
-- one delay for all three, as a policy does not see how a ring ended. Other
-- agents ring meanwhile (another tier's too); with only agents held back
-- free, the call waits until the first of them is ready.
--
-- Nothing is held back per call besides: a ring of this call that an agent
-- let go is that agent's miss already, and a ring that ended otherwise
-- (another agent answered, the caller hung up, a transfer, the queue's max
-- wait, the agent's own pause or log-off) was not let go, and
-- mod_callcenter delays only busy, no-answer and reject. Holding the agents
-- this call rang until DELAY after the call's last ring would only keep one
-- whose own miss came earlier (on an earlier attempt, or busy while others
-- rang on) longer than its delay.
-- Knobs: WAIT, STEP, TIMEOUT, MAX_RING, DELAY.
local WAIT = 10 -- seconds before deciding again when nobody is available
local DELAY = 10 -- seconds a missed ring holds its agent back (busy/no-answer/reject-delay-time)
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
  local list = {} -- the agents not held back
  local latest -- the largest missed_for of the agents held back: the first ready
  for _, a in ipairs(agents) do
    local missed = a.missed_for
    if missed and missed < DELAY then -- held back
      if not latest or missed > latest then latest = missed end
    else
      list[#list + 1] = a
    end
  end
  local n = #list
  if n == 0 then -- nobody free, or only agents held back
    return { wait = latest and math.ceil(DELAY - latest) or WAIT }
  end
  table.sort(list, before)
  if n > MAX_RING then n = MAX_RING end
  local ids = {}
  for i = 1, n do ids[i] = list[i].id end
  return { ring = ids, mode = "progressive", step = STEP, timeout = TIMEOUT }
end

return P
