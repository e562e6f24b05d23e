-- rrmemory (Asterisk app_queue): round robin with memory. Remembers, per
-- queue, the last member rung and rings the next one after it, wrapping
-- around; members who are busy now are simply passed over.
--
-- Asterisk walks rrmemory members in the order of its member container, not
-- the configured order (that is rrordered). Switchboard's stable equivalent
-- is the agent id: the rotation runs in id order, and the memory is the id of
-- the last agent rung (ctx.set(<queue id>, id)). Lowest penalty first, as in
-- Asterisk.
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

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local since = call.since_last_ring
  local held = since and since < RETRY and call.tried -- members held back, or false
  local key = key_of(call.queue)
  local last = ctx.get(key)
  if type(last) ~= "string" then last = "" end -- "" sorts before every id
  local low, first, after = math.huge, nil, nil
  for _, a in ipairs(agents) do
    if not (held and held[a.id]) then -- one held back counts for nothing
      local p = a.penalty
      if p < low then low, first, after = p, nil, nil end
      if p == low then
        local id = a.id
        if not first or id < first then first = id end
        if id > last and (not after or id < after) then after = id end
      end
    end
  end
  local pick = after or first
  if not pick then -- nobody free, or only agents held back
    return { wait = held and math.ceil(RETRY - since) or WAIT }
  end
  ctx.set(key, pick)
  return { ring = pick }
end

return P
