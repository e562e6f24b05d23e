-- schedule-aware: ring only agents inside one of their schedule windows now
-- (on_schedule), the one idle longest, on the desk phone when the current
-- window allows it ("landline" in devices_now) and otherwise on the mobile.
--
-- The mobile is chosen even when the window lists other devices: an agent on
-- schedule but away from the desk should still be reached. An agent with
-- neither device usable gets the engine's default device. When nobody is on
-- schedule the call waits WAIT seconds (windows open with the clock, not
-- with an agent freeing up).
--
-- Agents this call has rung (call.tried) come after those it has not, then
-- the fewer rings first: an agent who let it ring is not rung again while
-- another on schedule is free. When everyone on schedule has rung for it,
-- the next ring waits until RETRY seconds after the last one ended
-- (call.since_last_ring) rather than ring again at once.
-- Knobs: DESK, AWAY, WAIT, RETRY.
local DESK = "landline" -- device while the window allows it
local AWAY = "mobile" -- device otherwise
local WAIT = 30 -- seconds before deciding again when nobody is on schedule
local RETRY = 5 -- seconds after a ring ended before an agent this call rang rings again

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local tried = call.tried -- agent id -> rings of this call
  local best, bn, most = nil, 0, -1
  for _, a in ipairs(agents) do
    if a.on_schedule then
      local rung, idle = tried[a.id] or 0, a.idle_for
      if not best or rung < bn or (rung == bn and idle > most) then
        best, bn, most = a, rung, idle
      end
    end
  end
  if not best then return { wait = WAIT } end
  local since = bn > 0 and call.since_last_ring
  if since and since < RETRY then -- only agents it rang are on schedule: hold them back
    return { wait = math.ceil(RETRY - since) }
  end

  local devices, device = best.devices, nil
  if devices[DESK] then
    for _, d in ipairs(best.devices_now) do
      if d == DESK then
        device = DESK
        break
      end
    end
  end
  if not device and devices[AWAY] then device = AWAY end
  return { ring = best.id, device = device }
end

return P
