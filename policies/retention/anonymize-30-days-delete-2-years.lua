-- anonymize-30-days-delete-2-years: keep records whole for 30 days, then
-- anonymize them (the numbers and personal attributes go, times, queue,
-- agent, outcome and the other attributes stay), and delete them at two
-- years.
--
-- Reviews: at writing (age 0: kept until day 30), at day 30 (anonymized,
-- next review at two years), at two years (deleted). An erasure request
-- anonymizes the record at once: what is left is not personal data, and the
-- statistics it carries keep their detail until the record's two years are
-- up. Knobs: ANONYMIZE_AFTER, DELETE_AFTER.
local ANONYMIZE_AFTER = 30 -- days
local DELETE_AFTER = 730 -- days (two years)
-- The reasons, made once: they say what the knobs say.
local OLD = "older than " .. (DELETE_AFTER == 730 and "two years" or DELETE_AFTER .. " days")
local ANONYMIZED = "older than " .. ANONYMIZE_AFTER .. " days: numbers removed"

---@type Policy
local P = {}

function P.retain(record, ctx)
  local age = record.age_days
  if age >= DELETE_AFTER then
    return { delete = true, reason = OLD }
  end
  if age >= ANONYMIZE_AFTER then
    return {
      anonymize = true,
      review_in_days = DELETE_AFTER - age,
      reason = ANONYMIZED,
    }
  end
  return { keep = true, review_in_days = ANONYMIZE_AFTER - age, reason = "recent" }
end

function P.erase(record, request, ctx)
  return { anonymize = true, reason = "erasure request: numbers removed" }
end

return P
