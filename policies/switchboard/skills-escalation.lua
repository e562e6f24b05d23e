-- skills-escalation: ring only agents who meet every skill level the call
-- asks for, and lower the bar the longer the caller waits.
--
-- The call's needs come from call.skills (skill -> minimum level, set by the
-- gateway as attrs.skills). Every STEP seconds of waiting (call.waited) each
-- required level drops by DROP, but never below FLOOR: with FLOOR = 1 the
-- agent must still have the skill, only at a lower level. Of those who
-- qualify, the best-skilled rings: the highest sum of their levels in the
-- required skills, then the longest idle, then the lower position. A call
-- without skills goes to the longest idle agent. When nobody qualifies the
-- call waits until the next step lowers the bar (or WAIT once it cannot
-- drop further); an agent freeing up decides sooner.
--
-- Agents this call has rung (call.tried) come after those it has not, then
-- the fewer rings first: an agent who let it ring is not rung again while
-- another who qualifies is free, however much better skilled. When everyone
-- who qualifies has rung for it, the next ring waits until RETRY seconds
-- after the last one ended (call.since_last_ring), or until the next step
-- lowers the bar if that comes sooner, rather than ring again at once.
-- Knobs: STEP, DROP, FLOOR, WAIT, RETRY.
local STEP = 30 -- seconds of waiting per step
local DROP = 1 -- levels each step takes off every requirement
local FLOOR = 1 -- no requirement drops below this (one that starts lower stays)
local WAIT = 30 -- seconds before deciding again once the bar is at its lowest
local RETRY = 5 -- seconds after a ring ended before an agent this call rang rings again

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local waited = call.waited
  local drop = (waited // STEP) * DROP
  local bar, any, lower = {}, false, false -- bar: skill -> level needed now
  for skill, level in pairs(call.skills) do
    level = tonumber(level) or FLOOR -- `true` or a name: the skill itself
    local need = level - drop
    if need < FLOOR then need = level < FLOOR and level or FLOOR end
    bar[skill], any = need, true
    if need > FLOOR then lower = true end -- another step would lower it
  end

  local tried = call.tried -- agent id -> rings of this call
  local best, bn, bs, bi, bpos
  for _, a in ipairs(agents) do
    local score, ok = 0, true
    if any then
      local has = a.skills -- a fresh table each read: read it once
      for skill, need in pairs(bar) do
        local level = tonumber(has[skill]) or 0
        if level < need then
          ok = false
          break
        end
        score = score + level
      end
    end
    if ok then
      local rung, idle, pos = tried[a.id] or 0, a.idle_for, a.position
      if not best or rung < bn or (rung == bn and (score > bs or (score == bs
          and (idle > bi or (idle == bi and pos < bpos))))) then
        best, bn, bs, bi, bpos = a, rung, score, idle, pos
      end
    end
  end

  local next_step = lower and math.ceil(STEP - waited % STEP) or nil
  local since = best and bn > 0 and call.since_last_ring
  if since and since < RETRY then -- only agents it rang qualify: hold them back
    local gap = math.ceil(RETRY - since)
    return { wait = next_step and next_step < gap and next_step or gap }
  end
  if best then return { ring = best.id } end
  return { wait = next_step or WAIT }
end

return P
