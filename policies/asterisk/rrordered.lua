-- rrordered (Asterisk app_queue): round robin with memory in the queue's
-- member order. Remembers, per queue, the position of the last member rung
-- and rings the available member with the next higher position, wrapping
-- around to the lowest.
--
-- The memory is a position, not an agent, so the rotation carries on past a
-- member who is busy, paused or removed (as Asterisk's rrpos does). Positions
-- are expected to be unique within a queue; members sharing one are a single
-- slot, taken by the lower id. Lowest penalty first, as in Asterisk.
--
-- A member this call has rung is rung again only RETRY seconds after the
-- call's last ring ended (call.since_last_ring), as app_queue's `retry`:
-- members it has not rung ring at once; with only those it rang free, the
-- call waits until RETRY is over.
-- Knobs: WAIT, RETRY.
local WAIT = 10 -- seconds before deciding again when nobody is available
local RETRY = 5 -- seconds before a member this call rang is rung again (app_queue's retry)

-- Store keys are at most 64 bytes; a longer queue id keeps its two ends.
local function key_of(queue)
  if #queue <= 64 then return queue end
  return queue:sub(1, 32) .. queue:sub(-32)
end

-- true when member (pos, id) comes before member (bpos, bid); b may be absent
local function before(pos, id, bpos, bid)
  return not bpos or pos < bpos or (pos == bpos and id < bid)
end

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local since = call.since_last_ring
  local held = since and since < RETRY and call.tried -- members held back, or false
  local key = key_of(call.queue)
  local last = ctx.get(key)
  if type(last) ~= "number" then last = -math.huge end
  local low = math.huge
  local first, fpos, after, apos -- lowest position; lowest above `last`
  for _, a in ipairs(agents) do
    if not (held and held[a.id]) then -- one held back counts for nothing
      local p = a.penalty
      if p < low then low, first, fpos, after, apos = p, nil, nil, nil, nil end
      if p == low then
        local pos, id = a.position, a.id
        if before(pos, id, fpos, first) then first, fpos = id, pos end
        if pos > last and before(pos, id, apos, after) then after, apos = id, pos end
      end
    end
  end
  local pick, pos = after, apos
  if not pick then pick, pos = first, fpos end
  if not pick then -- nobody free, or only agents held back
    return { wait = held and math.ceil(RETRY - since) or WAIT }
  end
  ctx.set(key, pos)
  return { ring = pick }
end

return P
