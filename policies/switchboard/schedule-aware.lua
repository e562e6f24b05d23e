-- schedule-aware: ring only agents inside one of their schedule windows now
-- (on_schedule), the one idle longest, on the desk phone when the current
-- window allows it ("landline" in devices_now) and otherwise on the mobile.
--
-- The mobile is chosen even when the window lists other devices: an agent on
-- schedule but away from the desk should still be reached. An agent with
-- neither device usable gets the engine's default device. When nobody is on
-- schedule the call waits WAIT seconds (windows open with the clock, not
-- with an agent freeing up). Knobs: DESK, AWAY, WAIT.
local DESK = "landline" -- device while the window allows it
local AWAY = "mobile" -- device otherwise
local WAIT = 30 -- seconds before deciding again when nobody is on schedule

---@type Policy
local P = {}

function P.route(call, agents, ctx)
  local best, most = nil, -1
  for _, a in ipairs(agents) do
    if a.on_schedule then
      local idle = a.idle_for
      if idle > most then best, most = a, idle end
    end
  end
  if not best then return { wait = WAIT } end

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
