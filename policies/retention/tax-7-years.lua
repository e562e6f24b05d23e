-- tax-7-years: billing records are kept for seven years (a legal
-- obligation), with the caller's numbers and personal attributes removed
-- after 30 days; records that bill nothing go after 30 days.
--
-- A record is billing-relevant when the call was answered, or when the
-- gateway marked it (attrs.billable = true, or an attrs.invoice). Anonymizing
-- keeps every billing field — times, talk time, queue, agent, outcome and
-- the non-personal attributes — and drops only the sealed ones. An erasure
-- request anonymizes a billing record (its fields must stay, the numbers
-- need not) and deletes any other record. Knobs: ANONYMIZE_AFTER, YEARS.
local ANONYMIZE_AFTER = 30 -- days the numbers are kept (disputes, call-backs)
local YEARS = 7
-- YEARS calendar years hold at most (YEARS + 3) // 4 leap days (29 February):
-- kept that long, a record is never deleted before its YEARS years are up.
local KEEP_DAYS = YEARS * 365 + (YEARS + 3) // 4
-- The reasons, made once: they say what YEARS says.
local OVER = (YEARS == 7 and "seven" or tostring(YEARS)) .. "-year tax retention over"
local KEPT = "tax: billing fields kept for " .. YEARS .. " years, numbers removed"
local ERASED = "tax: billing record kept " .. YEARS .. " years, numbers removed"

---@type Policy
local P = {}

local function billable(record)
  local attrs = record.attrs
  return record.outcome == "answered" or attrs.billable == true or attrs.invoice ~= nil
end

function P.retain(record, ctx)
  local age = record.age_days
  if not billable(record) then
    if age >= ANONYMIZE_AFTER then return { delete = true, reason = "not billing-relevant" } end
    return { keep = true, review_in_days = ANONYMIZE_AFTER - age, reason = "recent" }
  end
  if age >= KEEP_DAYS then
    return { delete = true, reason = OVER }
  end
  if age >= ANONYMIZE_AFTER then
    return {
      anonymize = true,
      review_in_days = KEEP_DAYS - age,
      reason = KEPT,
    }
  end
  return { keep = true, review_in_days = ANONYMIZE_AFTER - age, reason = "recent" }
end

function P.erase(record, request, ctx)
  if billable(record) then
    return { anonymize = true, reason = ERASED }
  end
  return { delete = true, reason = "erasure request" }
end

return P
