-- records.lua — call records and retention through the binding, run by
-- lua51.t (LuaJIT, lua5.1) and lua54.t (lua5.4): listing, access requests
-- (JSON and CSV), legal holds (placed, read, listed, released), sweeps with
-- a progress function, the audit log, erasure, aggregates, and their errors
-- (nil, message, code, field);
-- calls from withheld numbers (caller left out, "" or sb.null).
-- Run from the repository root (the stock policies in policies/).
local T = require "tap"
local sb = require "switchboard"

local now = 1767603600000 -- Monday 2026-01-05 09:00 UTC
local DAY = 86400000
local eng = assert(sb.open{ data_dir = T.tmpdir(), policy_dir = "policies", sync = "none",
                            clock = now, log = "none" })
local function advance(ms) now = now + ms eng:set_clock(now) end
local function ids(list)
  local out = {}
  for i, r in ipairs(list) do out[i] = r.id end
  return table.concat(out, ",")
end
local function fails(want_code, want_field, label, res, m, c, f)
  T.ok(res == nil and c == want_code and (want_field == nil or f == want_field),
       label .. " -> nil, " .. tostring(m) .. ", " .. tostring(c) .. ", " .. tostring(f))
end

-- acme deletes abandoned calls' records after 7 days and seals "name"; c1
-- answered and c2 abandoned from one number, c3 abandoned from another.
assert(eng:account_put{ id = "acme", retention = "retention/delete-abandoned-7-days",
                        personal_attrs = { "name" } })
for _, id in ipairs{ "alice", "bob" } do
  assert(eng:agent_put("acme", { id = id, status = "available", devices = { softphone = "sip:" .. id .. "@x" } }))
end
assert(eng:queue_put("acme", '{"id":"support","policy":"longest-idle","members":[{"agent":"alice"},{"agent":"bob"}]}'))
for _, c in ipairs{ { "c1", "+442079460001", true, { name = "Jane" } }, { "c2", "+442079460001", false },
                    { "c3", "+442079460002", false } } do
  advance(1000)
  local acts = assert(eng:submit("acme", { type = "offer", call = c[1], queue = "support", caller = c[2],
                                           attrs = c[4] }))
  advance(1000)
  if c[3] then
    assert(eng:submit("acme", { type = "ring_result", call = c[1], agent = acts[1].agent, outcome = "answered" }))
    advance(30000)
    assert(eng:submit("acme", { type = "hangup", call = c[1] }))
  else
    assert(eng:submit("acme", { type = "abandon", call = c[1] }))
  end
end

local l = eng:records_list("acme")
T.is(l and ids(l.records), "c3,c2,c1", "records_list: {records = ...}, newest first")
T.ok(l and l.records[1].caller == nil, "... without numbers")
l = eng:records_list("acme", { queue = "support", limit = 1 })
T.is(l and ids(l.records), "c3", "a query table (limit = 1)")
l = eng:records_list("acme", '{"limit":2}')
T.is(l and ids(l.records), "c3,c2", "a query as JSON text")
fails(sb.EINVAL, "colour", "an unknown query field", eng:records_list("acme", { colour = "red" }))

-- records_pages: records_list page after page, each from the last record of
-- the one before (Python's records_pages, Go's RecordsPages).
local function walk(it, key)
  local out = {}
  for page in it do
    local t = {}
    for i, r in ipairs(page) do t[i] = r[key or "id"] end
    out[#out + 1] = table.concat(t, ",")
  end
  return table.concat(out, "|")
end
local all = eng:records_list("acme").records
T.is(walk(eng:records_pages("acme", { limit = 1 })), "c3|c2|c1", "records_pages(acct, {limit = 1}): a record a turn")
T.is(walk(eng:records_pages("acme", '{"limit":2}')), "c3,c2|c1", "records_pages with JSON text: two, then one")
T.is(walk(eng:records_pages("acme", { limit = 3 })), "c3,c2,c1", "a full last page, no empty page after it")
T.is(walk(eng:records_pages("acme")), "c3,c2,c1", "records_pages(acct): pages of 100")
local q = { limit = 1, before_ms = all[1].ended_ms, before_id = all[1].id }
T.is(walk(eng:records_pages("acme", q)), "c2|c1", "from a cursor of its own")
T.ok(q.before_id == all[1].id and q.limit == 1, "... and the caller's query table is left as it was")
T.is(walk(eng:records_pages("acme", { queue = "support", from_ms = all[1].ended_ms + 1 })), "",
     "no record: one empty page")
T.raises(function() walk(eng:records_pages("acme", { queue = "nosuch" })) end,
         "switchboard: SB_ENOTFOUND: .*%(field queue%)", "a queue never had raises in the loop, naming the field")
T.raises(function() eng:records_pages("acme", 7) end, "bad argument #2 to 'records_pages'",
         "a query that is neither a table nor text raises at the call")
T.raises(function() eng:records_pages("acme", "[1]") end, "bad argument #2 to 'records_pages'",
         "JSON text that is no object raises at the call")

-- retention_preview: the sweep eight days on, told, nothing done.
local pv = eng:retention_preview("acme", { in_days = 8 })
T.ok(pv and pv.reviewed == 2 and pv.deleted == 2 and pv.done == true and
     table.concat(pv.samples.deleted, ",") == "c2,c3", "retention_preview: the two abandoned calls due would go")
T.is(ids(eng:records_list("acme").records), "c3,c2,c1", "... and all three records are still there")
pv = eng:retention_preview("acme", '{"policy":"mine","source":"return {retain = function() return {keep = true} end}"}')
T.ok(pv and pv.kept == 3 and pv.source == "given", "a source not stored, as JSON text")
fails(sb.EINVAL, "in_days", "a negative in_days", eng:retention_preview("acme", { in_days = -1 }))

local x = eng:records_export("acme", "+44 20 7946 0001")
T.is(x and x.number, "+442079460001", "records_export: the number, normalized")
T.is(x and ids(x.records), "c1,c2", "... its two records")
T.ok(x and x.records[1].caller == "+442079460001" and x.records[1].personal_attrs.name == "Jane",
     "... decrypted: the number and the personal attribute")
x = eng:records_export("acme", "+442079460001", "csv")
T.ok(x and x.count == 2 and x.csv:find("^id,role,caller,") and select(2, x.csv:gsub("\r\n", "")) == 3,
     "format \"csv\": a header line and a line per record")
fails(sb.EINVAL, "number", "a number that is not E.164", eng:records_export("acme", "12345"))
T.raises(function() eng:records_export("acme", "+442079460001", "xml") end, "invalid option",
         "an unknown format raises")

local h = eng:hold_place("acme", { id = "h1", call = "c2", reason = "litigation" })
T.ok(h and h.id == "h1" and h.kind == "call" and h.call == "c2" and h.created_ms == now,
     "hold_place: the hold")
fails(sb.EEXIST, nil, "the same hold id again", eng:hold_place("acme", '{"id":"h1","call":"c1","reason":"x"}'))
fails(sb.EINVAL, nil, "a hold that covers nothing", eng:hold_place("acme", { reason = "x" }))
-- A range needs both bounds, as sb_hold_place and Python and Go take it.
fails(sb.EINVAL, "to_ms", "a range hold with from_ms alone",
      eng:hold_place("acme", { from_ms = 1767571200000, reason = "x" }))
fails(sb.EINVAL, "from_ms", "a range hold with to_ms alone",
      eng:hold_place("acme", { to_ms = 1767571200000, reason = "x" }))
local hl = eng:hold_list("acme")
T.is(hl and #hl.holds, 1, "hold_list: {holds = ...}")
local hg = eng:hold_get("acme", "h1")
T.ok(hg and hl and sb.json_encode(hg) == sb.json_encode(hl.holds[1]), "hold_get: the hold, as hold_list gives it")
fails(sb.ENOTFOUND, "hold", "hold_get of an id the account has no hold of", eng:hold_get("acme", "h2"))
fails(sb.ENOTFOUND, "account", "hold_get in an unknown account", eng:hold_get("nobody", "h1"))
T.raises(function() eng:hold_get("acme") end, "bad argument #2 to 'hold_get' %(string expected, got no value%)",
         "hold_get without an id raises")
T.raises(function() eng:hold_get("acme", "h1\0x") end, "bad argument #2 to 'hold_get' %(holds a NUL byte%)",
         "hold_get of an id holding a NUL byte raises")
fails(sb.EHOLD, nil, "deleting an account under a hold", eng:account_delete("acme"))
fails(sb.EHOLD, nil, "evicting an account under a hold", eng:account_evict("acme"))
T.ok(eng:account_get("acme") ~= nil, "and it is still there")

advance(8 * DAY)
local seen, inner = {}, {}
local sw = eng:sweep(0, function(done, total)
  seen[#seen + 1] = done .. "/" .. total
  inner[#inner + 1] = eng:stats().events.offer -- the engine, from the progress function
end)
T.ok(sw and sw.reviewed == 2 and sw.deleted == 1 and sw.overridden == 1 and sw.done == true,
     "sweep: c3 deleted, c2's deletion overridden by the hold")
-- One transaction holds both records unless the machine stalls the sweep past
-- its transaction's time (a loaded machine): then more, each reporting.
local rising = #seen > 0
for i = 1, #seen do
  local d, t = seen[i]:match("^(%d+)/(%d+)$")
  rising = rising and t == "2" and (i == 1 or tonumber(d) >= tonumber(seen[i - 1]:match("^%d+")))
end
T.ok(rising and seen[#seen] == "2/2", "progress(done, total) after each transaction, ending at 2/2: "
     .. table.concat(seen, " "))
T.is(inner[1], 3, "and it may call the engine")
sw = eng:sweep()
T.is(sw and sw.reviewed, 0, "a second sweep finds nothing due")
-- A budget past 2^32 - 1 counts as that: math.maxinteger too (5.4), read as
-- an integer (as a double it would be 2^63, past the range); 2^53, a whole
-- float, in every version. A negative or fractional one raises.
for _, big in ipairs{ math.maxinteger or 2^53, 2^53 } do
  local ok_, r = pcall(eng.sweep, eng, big)
  T.ok(ok_ and type(r) == "table" and r.reviewed == 0,
       "sweep(" .. string.format("%.0f", big) .. "): a budget of 2^32 - 1 ms (" .. tostring(r) .. ")")
end
for _, bad in ipairs{ -1, 1.5, 2^63 } do
  T.raises(function() eng:sweep(bad) end, "bad argument #1 to 'sweep' %(expected a whole number of milliseconds from 0%)",
           "sweep(" .. tostring(bad) .. ") raises")
end
if math.mininteger then
  T.raises(function() eng:sweep(math.mininteger) end, "bad argument #1 to 'sweep'", "sweep(math.mininteger) raises")
end
local calls = 0
T.raises(function() eng:sweep(1000, function() calls = calls + 1 error("from progress") end) end,
         "from progress", "an error in progress is raised once the sweep has returned")
T.is(calls, 1, "and progress is not called again after it")
T.ok(eng:stats(), "the engine serves on")
T.raises(function() eng:sweep(0, 42) end, "bad argument", "a progress that is not a function raises")
-- Closing the engine from progress would free it under the sweep, which
-- carries on with it (a use after free): refused, and raised once the sweep
-- has returned, like any error in progress.
T.raises(function() eng:sweep(0, function() eng:close() end) end, "while it sweeps",
         "eng:close() in progress is refused (the sweep still uses the engine)")
T.ok(eng:stats() and tostring(eng):find("closed") == nil, "and the engine stays open and serves on")

local log = eng:audit_list("acme")
local got = {}
for i, e in ipairs(log and log.entries or {}) do got[i] = e.seq .. ":" .. e.action .. ":" .. (e.call or "") end
T.is(table.concat(got, " "), "1:access_request: 2:access_request: 3:hold_placed:c2 4:keep:c2 5:delete:c3",
     "audit_list: the two access requests (the refused ones have none), the hold, the overridden deletion, the deletion")
T.ok(log and log.entries[1].source == "access" and
     log.entries[1].reason == "access request: 2 records disclosed as JSON" and
     log.entries[2].reason == "access request: 2 records disclosed as CSV",
     "... each access request's saying how many records it disclosed, and how")
T.ok(log and log.next == 5 and log.entries[4].overridden == true and log.entries[4].decision == "delete",
     "with next, and the override marked")
local page = eng:audit_list("acme", 1, 1)
T.ok(page and #page.entries == 1 and page.entries[1].seq == 2 and page.next == 2, "audit_list(after, limit)")
-- audit_pages: audit_list page after page until no entry is left (Python's
-- audit_pages, Go's AuditPages).
T.is(walk(eng:audit_pages("acme", 0, 1), "seq"), "1|2|3|4|5", "audit_pages(acct, 0, 1): an entry a turn")
T.is(walk(eng:audit_pages("acme", nil, 2), "seq"), "1,2|3,4|5", "audit_pages(acct, nil, 2): two, two, then one")
T.is(walk(eng:audit_pages("acme"), "seq"), "1,2,3,4,5", "audit_pages(acct): pages of 1000, no empty page after")
T.is(walk(eng:audit_pages("acme", 3, 1), "seq"), "4|5", "audit_pages from after 3")
local it = eng:audit_pages("acme", 5)
local p1, p2 = it(), it()
T.ok(p1 and #p1 == 0 and p2 == nil, "after the last entry: one empty page, then nil")
T.raises(function() walk(eng:audit_pages("nobody")) end, "SB_ENOTFOUND: .*%(field account%)",
         "an account that does not exist raises in the loop")
for _, bad in ipairs{ -1, 1.5, "x" } do
  T.raises(function() eng:audit_pages("acme", 0, bad) end, "bad argument #3 to 'audit_pages'",
           "audit_pages with limit " .. tostring(bad) .. " raises at the call")
end

local er = eng:erase("acme", "+442079460001")
T.ok(er and er.deleted == 1 and er.kept == 1 and er.failed == 0 and
     er.reasons["keep: legal hold h1: litigation"] == 1, "erase: c1 deleted, c2 kept under the hold")
local rel = eng:hold_release("acme", "h1")
T.ok(rel and rel.id == "h1" and rel.released == true, "hold_release: the hold, released")
hl = eng:hold_list("acme")
T.is(hl and #hl.holds, 0, "hold_list is empty")
fails(sb.ENOTFOUND, "hold", "hold_get of the released hold", eng:hold_get("acme", "h1"))
fails(sb.ENOTFOUND, "hold", "releasing it again", eng:hold_release("acme", "h1"))

local ag = eng:aggregates("acme")
T.ok(ag and #ag.days == 2 and ag.days[1].queue == sb.null and ag.days[2].queue == "support" and
     ag.days[1].offered == 3 and ag.days[1].answered == 1 and ag.days[1].abandoned == 2,
     "aggregates: the account's row (queue = sb.null) and the queue's")
local day = 1767571200000 -- 2026-01-05 00:00 UTC
ag = eng:aggregates("acme", "support", day, day + DAY)
T.is(ag and #ag.days, 1, "one queue, one day")
ag = eng:aggregates("acme", nil, day + DAY, day + 2 * DAY)
T.is(ag and #ag.days, 0, "a day without calls: none")
fails(sb.ENOTFOUND, "queue", "an unknown queue", eng:aggregates("acme", "nope"))
fails(sb.ENOTFOUND, "account", "another account", eng:erase("other", "+442079460001"))
T.raises(function() eng:aggregates("acme", nil, -1) end, "bad argument", "a negative time raises")
ag = eng:aggregates("acme", nil, day, math.maxinteger or 2^53)
T.ok(ag and #ag.days == 2, "to_ms math.maxinteger (2^53 without integers): every day from day on")

-- Calls from withheld numbers: the caller left out, "" or sb.null (null in
-- the JSON events); the record is found by the number dialled alone.
for i, how in ipairs{ { "left out" }, { "\"\"", "" }, { "sb.null", sb.null } } do
  local acts, m = eng:submit("acme", { type = "offer", call = "w" .. i, queue = "support", caller = how[2] })
  T.ok(acts and acts[1] and acts[1].type == "ring",
       "an offer with the caller " .. how[1] .. " is a withheld call, and rings (" .. tostring(m) .. ")")
  assert(eng:submit("acme", { type = "abandon", call = "w" .. i }))
end
fails(sb.EINVAL, "caller", "caller = sb.null on a ring_result is still a field it does not take",
      eng:submit("acme", { type = "ring_result", call = "w1", agent = "alice", outcome = "busy",
                           caller = sb.null }))
local acts = assert(eng:submit("acme", '{"type":"offer","call":"w4","queue":"support","caller":null,' ..
                                       '"called":"+442079469001"}'))
local c = eng:call_get("acme", "w4")
T.ok(c and c.caller == nil and c.called == "+442079469001", "call_get: no caller, the number dialled")
assert(eng:submit("acme", { type = "ring_result", call = "w4", agent = acts[1].agent, outcome = "answered" }))
assert(eng:submit("acme", { type = "hangup", call = "w4" }))
x = eng:records_export("acme", "+442079469001")
T.ok(x and ids(x.records) == "w4" and x.records[1].role == "called" and x.records[1].caller == sb.null,
     "records_export of the number dialled: role called, caller sb.null")
local res, m, code, field = eng:submit("acme", { type = "offer", call = "w5", queue = "support",
                                                 caller = "anonymous" })
T.ok(res == nil and code == sb.EINVAL and field == "caller" and m:find("withheld", 1, true),
     "caller 'anonymous': nil, a message saying to leave it out, sb.EINVAL, caller (" .. tostring(m) .. ")")
local er2 = eng:erase("acme", "+442079469001")
T.is(er2 and er2.deleted, 1, "erase of the number dialled deletes the withheld call's record")

eng:close()
T.raises(function() eng:sweep() end, "closed", "sweep after close raises")
T.cleanup()
T.done()
