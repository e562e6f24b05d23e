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
-- Knobs: STEP, DROP, FLOOR, WAIT.
local STEP = 30 -- seconds of waiting per step
local DROP = 1 -- levels each step takes off every requirement
local FLOOR = 1 -- no requirement drops below this (one that starts lower stays)
local WAIT = 30 -- seconds before deciding again once the bar is at its lowest

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local drop = (call.waited // STEP) * DROP
  local bar, any, lower = {}, false, false -- bar: skill -> level needed now
  for skill, level in pairs(call.skills) do
    level = tonumber(level) or FLOOR -- `true` or a name: the skill itself
    local need = level - drop
    if need < FLOOR then need = level < FLOOR and level or FLOOR end
    bar[skill], any = need, true
    if need > FLOOR then lower = true end -- another step would lower it
  end

  local best, bs, bi, bpos
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
      local idle, pos = a.idle_for, a.position
      if not best or score > bs or (score == bs and (idle > bi or (idle == bi and pos < bpos))) then
        best, bs, bi, bpos = a, score, idle, pos
      end
    end
  end

  if best then return { ring = best.id } end
  if lower then return { wait = math.ceil(STEP - call.waited % STEP) } end
  return { wait = WAIT }
end

return P
