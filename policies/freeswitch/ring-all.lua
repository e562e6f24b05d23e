-- ring-all (FreeSWITCH mod_callcenter): ring every available agent of the
-- lowest tier at once; the first to answer gets the call. The next tier
-- rings only when nobody of a lower tier is available.
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
-- Knobs: WAIT, MAX_RING, DELAY.
local WAIT = 10 -- seconds before deciding again when nobody is available
local DELAY = 10 -- seconds a missed ring holds its agent back (busy/no-answer/reject-delay-time)
local MAX_RING = 32 -- the most agents one ring decision may hold (the engine's limit)

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local ids, n, top = {}, 0, math.huge
  local latest -- the largest missed_for of the agents held back: the first ready
  for _, a in ipairs(agents) do
    local missed = a.missed_for
    if missed and missed < DELAY then -- held back: counts for nothing
      if not latest or missed > latest then latest = missed end
    else
      local t = a.tier
      if t < top then top, n = t, 0 end -- a lower tier: start the list again
      if t == top and n < MAX_RING then
        n = n + 1
        ids[n] = a.id
      end
    end
  end
  if n == 0 then -- nobody free, or only agents held back
    return { wait = latest and math.ceil(DELAY - latest) or WAIT }
  end
  for i = #ids, n + 1, -1 do ids[i] = nil end -- drop what a restart left behind
  return { ring = ids }
end

return P
