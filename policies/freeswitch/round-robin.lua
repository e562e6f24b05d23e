-- round-robin (FreeSWITCH mod_callcenter): ring the agent after the one who
-- was rung last, by position within the lowest available tier, wrapping
-- around to the lowest position.
--
-- The memory, per queue, is the position of the last agent rung
-- (ctx.set(<queue id>, position)), so the rotation carries on past agents who
-- are busy or paused now. Positions are expected to be unique within a tier;
-- agents sharing one are a single slot, taken by the lower id.
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
-- Knobs: WAIT, DELAY.
local WAIT = 10 -- seconds before deciding again when nobody is available
local DELAY = 10 -- seconds a missed ring holds its agent back (busy/no-answer/reject-delay-time)

-- Store keys are at most 64 bytes; a longer queue id keeps its two ends.
local function key_of(queue)
  if #queue <= 64 then return queue end
  return queue:sub(1, 32) .. queue:sub(-32)
end

-- true when agent (pos, id) comes before agent (bpos, bid); b may be absent
local function before(pos, id, bpos, bid)
  return not bpos or pos < bpos or (pos == bpos and id < bid)
end

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local key = key_of(call.queue)
  local last = ctx.get(key)
  if type(last) ~= "number" then last = -math.huge end
  local top = math.huge
  local first, fpos, after, apos -- lowest position; lowest above `last`
  local latest -- the largest missed_for of the agents held back: the first ready
  for _, a in ipairs(agents) do
    local missed = a.missed_for
    if missed and missed < DELAY then -- held back: counts for nothing
      if not latest or missed > latest then latest = missed end
    else
      local t = a.tier
      if t < top then top, first, fpos, after, apos = t, nil, nil, nil, nil end
      if t == top then
        local pos, id = a.position, a.id
        if before(pos, id, fpos, first) then first, fpos = id, pos end
        if pos > last and before(pos, id, apos, after) then after, apos = id, pos end
      end
    end
  end
  local pick, pos = after, apos
  if not pick then pick, pos = first, fpos end
  if not pick then -- nobody free, or only agents held back
    return { wait = latest and math.ceil(DELAY - latest) or WAIT }
  end
  ctx.set(key, pos)
  return { ring = pick }
end

return P
