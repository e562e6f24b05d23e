-- delete-abandoned-7-days: records of abandoned calls are deleted after 7
-- days; every other record is kept for good.
--
-- An abandoned call is reviewed when written (kept, next review at day 7)
-- and deleted at day 7; other records are never reviewed again (keep with
-- no review date). An erasure request deletes the record, whatever it is.
-- Knobs: DAYS.
local DAYS = 7
-- The reasons, made once: they say what DAYS says.
local OLDER = "abandoned, older than " .. DAYS .. " days"
local KEPT = "abandoned, kept " .. DAYS .. " days"

---@type Policy
local P = {}

function P.retain(record, ctx)
  if record.outcome ~= "abandoned" then
    return { keep = true, reason = "not abandoned: kept" }
  end
  local age = record.age_days
  if age >= DAYS then return { delete = true, reason = OLDER } end
  return { keep = true, review_in_days = DAYS - age, reason = KEPT }
end

function P.erase(record, request, ctx)
  return { delete = true, reason = "erasure request" }
end

return P
