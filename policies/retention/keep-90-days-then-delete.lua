-- keep-90-days-then-delete: keep every call record for 90 days, then delete
-- it.
--
-- A record is reviewed when it is written (age 0: kept, next review when it
-- turns 90 days old) and then once more, when it is deleted. An erasure
-- request deletes the record at once. Records under a legal hold are kept
-- whatever this returns (the engine overrides the decision and looks again
-- daily). Knobs: DAYS.
local DAYS = 90 -- days a record is kept
-- The reasons, made once: they say what DAYS says.
local KEPT = "kept for " .. DAYS .. " days"
local OLDER = "older than " .. DAYS .. " days"

---@type Policy
local P = {}

function P.retain(record, ctx)
  local age = record.age_days
  if age < DAYS then
    return { keep = true, review_in_days = DAYS - age, reason = KEPT }
  end
  return { delete = true, reason = OLDER }
end

function P.erase(record, request, ctx)
  return { delete = true, reason = "erasure request" }
end

return P
