-- cycle.lua — the binding's API end to end, run by lua51.t (LuaJIT, lua5.1)
-- and lua54.t (lua5.4): provisioning, a full call cycle routed by a Lua 5.4
-- policy inside the engine, timers on a manual clock (tick_for's share of
-- time too), the error conventions, the JSON helpers, API keys, the policy
-- tools (under budgets given too), signed policies, backups, sync_progress, and closing. Needs SB_LUA_T (this folder) and the module on LUA_CPATH.
local T = require "tap"
local sb = require "switchboard"

local HERE = assert(os.getenv("SB_LUA_T"), "SB_LUA_T not set")
local host = _VERSION .. (jit and (" / " .. jit.version) or "")
T.diag("host: " .. host .. ", module " .. sb._ABI)

local want_abi = _VERSION == "Lua 5.4" and "Lua 5.4 ABI" or "Lua 5.1 ABI"
T.is(sb._ABI, want_abi, "module built for the host's ABI (" .. want_abi .. ")")
T.is(sb.version(), sb._VERSION, "sb.version() is the linked library's version")
T.is(sb.strerror(sb.ENOTFOUND):match("^SB_ENOTFOUND"), "SB_ENOTFOUND", "sb.strerror names the code")
T.is(sb.strerror(2^40), "SB_E?: unknown error", "sb.strerror of a code past int's range")
-- Each code by name, as the engine's JSON "code" has it.
for _, c in ipairs{ "EINVAL", "ENOTFOUND", "EEXIST", "ESTATE", "EPOLICY", "EFULL", "ESTORE",
                    "ENOMEM", "EBUSY", "EAUTH", "ELIMIT", "ECRYPTO", "EVERSION", "EHOLD" } do
  T.is(sb.code_name(sb[c]), "SB_" .. c, "sb.code_name(sb." .. c .. ")")
end
T.is(sb.code_name(0), "SB_OK", "sb.code_name(0)")
T.is(sb.code_name(-1), "SB_E?", "sb.code_name of a number that is no code")
T.is(sb.code_name(2^40), "SB_E?", "sb.code_name of a number past int's range")
T.is(sb.redact("caller +44 20 7946 0001 or (030) 1234567, queue q7, 12 s"),
     "caller [number] or [number], queue q7, 12 s", "sb.redact reads numbers as [number]")
T.is(sb.redact("+12 +34"), "[number] [number]", "sb.redact: room for text that grows")
T.raises(function() sb.redact("a\0b") end, "NUL byte", "sb.redact refuses a NUL byte")

local now = 1767603600000 -- Monday 2026-01-05 09:00 UTC
local dir = T.tmpdir()
local eng, err = sb.open{ data_dir = dir, policy_dir = HERE .. "/policies", sync = "none",
                          clock = now, log = "buffer", seed = 7 }
if not T.ok(eng, "sb.open on a fresh data directory") then T.diag(err) T.done() end
T.like(tostring(eng), "^switchboard%.engine", "the engine prints as switchboard.engine")

local function advance(ms) now = now + ms eng:set_clock(now) end
local function find(actions, typ, call)
  for _, a in ipairs(actions) do
    if a.type == typ and (call == nil or a.call == call) then return a end
  end
end

-- Provisioning: tables in, actions (a list, usually empty) out, and the
-- put's document, as Python's and Go's puts return it.
local r, rdoc = eng:account_put{ id = "acme", name = "Acme Ltd" }
T.ok(type(r) == "table" and #r == 0, "account_put returns an empty action list")
T.ok(type(rdoc) == "table" and rdoc.id == "acme" and rdoc.created == true and type(rdoc.created_ms) == "number",
     "... and the account's document: created, created_ms")
r, rdoc = eng:account_put{ id = "acme", name = "Acme Ltd" }
T.ok(rdoc and rdoc.created == false and rdoc.name == "Acme Ltd", "a second put: created false")
for i, id in ipairs{ "alice", "bob", "carol" } do
  T.ok(eng:agent_put("acme", { id = id, name = id:upper(), status = "available",
                               devices = { softphone = "sip:" .. id .. "@127.0.0.1:" .. (5070 + i) },
                               skills = { english = 5 } }), "agent_put " .. id)
  advance(1000)
end
T.ok(eng:queue_put("acme", '{"id":"support","policy":"pick54","ring_timeout":45,' ..
                   '"members":[{"agent":"alice"},{"agent":"bob"}]}'), "queue_put from a JSON string")
T.ok(eng:member_put("acme", "support", "carol", { tier = 1, position = 3 }), "member_put carol")
r, rdoc = eng:queue_put("acme", { id = "spare" })
T.ok(r and #r == 0 and rdoc and rdoc.id == "spare" and rdoc.created == true and rdoc.actions == nil,
     "queue_put: actions, and its document (created; no empty actions in it)")
r, rdoc = eng:agent_put("acme", { id = "carol", name = "CAROL", status = "available",
                                  devices = { softphone = "sip:carol@127.0.0.1:5073" }, skills = { english = 5 } })
T.ok(r and rdoc and rdoc.id == "carol" and rdoc.created == false, "agent_put of an agent there: created false")
T.ok(select(2, eng:member_put("acme", "spare", "carol")), "member_put: a document too")
assert(eng:queue_delete("acme", "spare"))
local q = eng:queue_get("acme", "support")
T.is(q and q.policy, "pick54", "queue_get returns the document as a table")
T.is(q and q.ring_timeout, 45, "with its numbers")
local agents = eng:agent_list("acme")
T.is(agents and #agents.agents, 3, "agent_list lists three agents")
local alice = eng:agent_get("acme", "alice")
T.is(alice and alice.status, "available", "agent_get: alice is available")
T.is(alice and alice.devices.softphone, "sip:alice@127.0.0.1:5071", "agent_get: her softphone URI")
-- C reads a string up to its first NUL byte: an id holding one would name
-- another agent ("alice\0zzz" is alice), so it is refused.
T.raises(function() eng:agent_delete("acme", "alice\0zzz") end, "NUL byte",
         "an id holding a NUL byte is refused")
T.is(eng:agent_get("acme", "alice") and "kept", "kept", "and alice is still there")

-- The call cycle. The policy is Lua 5.4-only code (<const>, //, |): routing
-- works from a 5.1 host only because the engine runs its own Lua 5.4.
advance(5000)
local acts = eng:submit("acme", { type = "offer", call = "c1", queue = "support",
                                  caller = "+442079460001", attrs = { want = "bob" } })
T.ok(type(acts) == "table", "offer accepted")
local ring = acts and find(acts, "ring", "c1")
T.is(ring and ring.agent, "bob", "the Lua 5.4 policy rings the agent asked for (bob)")
T.is(ring and ring.uri, "sip:bob@127.0.0.1:5072", "on his softphone URI")
T.is(ring and ring.device, "softphone", "device softphone")
T.is(ring and ring.timeout, 20, "for the 20 s the policy computed with // and | (queue says 45)")
T.is(ring and ring.account, "acme", "the action names its account")
local saw54
for _, l in ipairs(eng:logs()) do
  if l.message:find("runtime Lua 5.4 integer", 1, true) then saw54 = true end
end
T.ok(saw54, "the policy's ctx.log reports _VERSION 'Lua 5.4' and math.type(1) 'integer'")
T.is(eng:agent_get("acme", "bob").status, "reserved", "bob is reserved while ringing")

local dup, msg, code, field, dacts = eng:submit("acme", { type = "offer", call = "c1",
                                                           queue = "support",
                                                           caller = "+442079460001" })
T.ok(dup == nil and code == sb.EEXIST, "offering c1 again: nil, message, SB_EEXIST")
T.like(msg, "c1", "the message names the call")
T.is(field, "call", "and the field")
T.ok(type(dacts) == "table" and #dacts == 0,
     "and a fifth value: the actions it caused all the same, none")

advance(4000)
local ring1 = find(acts, "ring", "c1")
T.is(ring1 and ring1.attempt, 1, "the ring carries its attempt, 1")
do
  local r1, _, c1, f1 = eng:submit("acme", { type = "ring_result", call = "c1", agent = "bob",
                                              outcome = "answered", attempt = 1.5 })
  T.ok(r1 == nil and c1 == sb.EINVAL and f1 == "attempt",
       "a ring_result's attempt that is not a whole number: SB_EINVAL naming attempt")
  local r2, m2, c2, f2 = eng:submit("acme", { type = "ring_result", call = "c1", agent = "bob",
                                               outcome = "answered", attempt = 2 })
  T.ok(r2 == nil and c2 == sb.EINVAL and f2 == "attempt" and m2:find("never made", 1, true),
       "a ring_result for an attempt the call never had: SB_EINVAL naming attempt")
end
acts = eng:submit("acme", { type = "ring_result", call = "c1", agent = "bob", outcome = "answered",
                            attempt = ring1 and ring1.attempt })
T.ok(acts and find(acts, "connect", "c1"), "answered, giving the ring's attempt: connect")
T.is(eng:agent_get("acme", "bob").status, "on_call", "bob is on the call")
local live = eng:call_list("acme")
T.ok(live and #live.calls == 1 and live.calls[1].id == "c1" and live.calls[1].agent == "bob"
     and live.calls[1].caller == nil, "call_list: c1, connected to bob, without its numbers")
local none, _, ncode, nfield = eng:call_list("acme", "nosuch")
T.ok(none == nil and ncode == sb.ENOTFOUND and nfield == "queue",
     "call_list of a queue the account does not have: nil, SB_ENOTFOUND, field queue")
advance(60000)
acts = eng:submit("acme", '{"type":"hangup","call":"c1"}')
local fin = acts and find(acts, "end", "c1")
T.is(fin and fin.reason, "answered", "hangup given as JSON text ends the call as answered")
local c1 = eng:call_get("acme", "c1")
T.is(c1 and c1.outcome, "answered", "call_get: the record says answered")
T.is(c1 and c1.agent, "bob", "and names bob")
T.is(c1 and c1.talk, 60, "talk 60 s")
local pv = c1 and c1.policy_versions and c1.policy_versions[1]
T.is(pv and pv.policy, "pick54", "the record names the policy that decided")
T.ok(pv and type(pv.version) == "string" and #pv.version == 16, "and its version")
T.is(eng:agent_get("acme", "bob").stats.calls_taken, 1, "bob took one call")

-- Timers on the injected clock: a ring times out, the next agent rings.
advance(1000)
acts = eng:submit("acme", { type = "offer", call = "c2", queue = "support", caller = "+442079460002",
                            attrs = { want = "carol" } })
ring = acts and find(acts, "ring", "c2")
T.is(ring and ring.agent, "carol", "c2 rings carol")
local nd = eng:next_deadline()
T.ok(nd and nd <= now + 20000, "next_deadline is due by the ring timeout (" .. tostring(nd) .. ")")
advance(19999)
T.is(#eng:tick(), 0, "nothing fires a millisecond early")
advance(1)
acts = eng:tick()
T.ok(find(acts, "cancel", "c2"), "at the timeout tick cancels carol's ring")
ring = find(acts, "ring", "c2")
T.ok(ring ~= nil, "and rings again (" .. tostring(ring and ring.agent) .. ")")
acts = eng:submit("acme", { type = "abandon", call = "c2" })
T.is(acts and find(acts, "end", "c2") and find(acts, "end", "c2").reason, "abandoned",
     "abandon ends c2 as abandoned")
advance(3600 * 1000)
eng:tick() -- fires (or drops) whatever was left
T.is(eng:next_deadline(), nil, "an hour later no timer is left: next_deadline is nil")
T.raises(function() eng:set_clock(0/0) end, "must be a whole number", "set_clock refuses NaN")
T.raises(function() eng:set_clock(1e300) end, "must be a whole number", "set_clock refuses 1e300")

-- tick_for: timers fired for a share of time. With time to spare it fires
-- what tick fires and leaves nothing; calls whose policy costs a millisecond
-- or more, all waking at once, leave more with a 1 ms share.
local function due()
  local d = eng:next_deadline()
  return d ~= nil and d <= now
end
advance(1000)
acts = eng:submit("acme", { type = "offer", call = "c2f", queue = "support", caller = "+442079460002" })
local fring = acts and find(acts, "ring", "c2f")
T.ok(fring, "c2f rings " .. tostring(fring and fring.agent))
advance(20000)
local fmore
acts, fmore = eng:tick_for(60000)
T.ok(type(acts) == "table" and fring and find(acts, "cancel", "c2f")
     and find(acts, "cancel", "c2f").agent == fring.agent and find(acts, "ring", "c2f"),
     "tick_for(60000) at the ring timeout: the cancel and the next ring, as tick gives")
T.ok(fmore == false and not due(), "... with time to spare: more is false, no timer left due")
eng:submit("acme", { type = "abandon", call = "c2f" })
T.ok(eng:policy_put("acme", "slow", [[
local P = {}
function P.route(call, agents, ctx)
  local x = 0
  for i = 1, 150000 do x = x + i end
  return { wait = 1 }
end
return P
]]), "a policy that spins (a millisecond or so), then waits 1 s")
T.ok(eng:queue_put("acme", { id = "slow", policy = "slow" }), "queue slow, no agents, uses it")
for i = 1, 8 do
  assert(eng:submit("acme", { type = "offer", call = "s" .. i, queue = "slow", caller = "+442079460004" }))
end
advance(1000)
for _, bad in ipairs{ -1, 2^63, 1.5, 0/0, 1/0, "soon", false, math.mininteger or -2^63 } do
  T.raises(function() eng:tick_for(bad) end, "bad argument #1 .*tick_for",
           "tick_for(" .. tostring(bad) .. ") raises")
end
T.raises(function() eng:tick_for() end, "bad argument #1", "tick_for() without max_ms raises")
T.ok(due(), "... and fired nothing: the wake-ups are still due")
acts, fmore = eng:tick_for(1)
T.ok(type(acts) == "table" and fmore == true and due(), "tick_for(1): wake-ups left, more is true")
local calls = 0
while fmore and calls < 20 do
  fmore = select(2, eng:tick_for(1))
  calls = calls + 1
end
T.ok(fmore == false and not due(), "called again (" .. calls .. " more times) it fires the rest")
advance(1000)
fmore = select(2, eng:tick_for(0))
T.ok(fmore == false and not due(), "tick_for(0): no limit, every due wake-up fired at once")
-- Past the C argument's 32 bits a share counts as 2^32 - 1 ms, as sweep's
-- budget and the Python and Go bindings' do: not refused, and not wrapped
-- (2^32 + 1 as 1 ms would leave wake-ups due).
-- math.maxinteger (5.4; 5.1 and LuaJIT have no integers) is read as an
-- integer: as a double it would be 2^63, past the range, and raise.
for _, big in ipairs{ 2^32 + 1, 2^40, math.maxinteger or 2^53 } do
  advance(1000)
  local ok_, a, m = pcall(eng.tick_for, eng, big)
  T.ok(ok_ and type(a) == "table" and m == false and not due(),
       "tick_for(" .. string.format("%.0f", big) .. "): as 2^32 - 1 ms, every due wake-up fired")
end
for i = 1, 8 do eng:submit("acme", { type = "abandon", call = "s" .. i }) end

-- Agent status events, waiting calls served when an agent frees up.
for _, id in ipairs{ "alice", "bob", "carol" } do
  eng:submit("acme", { type = "agent_status", agent = id, status = "paused", reason = "lunch" })
end
T.is(eng:agent_get("acme", "alice").status, "paused", "agent_status pauses alice")
acts = eng:submit("acme", { type = "offer", call = "c3", queue = "support", caller = "+442079460003",
                            priority = 10 })
T.ok(acts and find(acts, "wait", "c3") and not find(acts, "ring"), "with everyone paused c3 waits")
local nr, _, ncode = eng:submit("acme", { type = "ring_result", call = "c3", agent = "bob",
                                          outcome = "answered" })
T.ok(nr == nil and ncode == sb.ESTATE, "a ring result for a call not ringing: SB_ESTATE")
acts = eng:submit("acme", { type = "agent_status", agent = "carol", status = "available" })
ring = acts and find(acts, "ring", "c3")
T.is(ring and ring.agent, "carol", "carol becoming available rings her for c3 at once")
eng:submit("acme", { type = "abandon", call = "c3" })
for _, id in ipairs{ "alice", "bob" } do
  eng:submit("acme", { type = "agent_status", agent = id, status = "available" })
end

-- Errors: engine failures are nil, message, code, field; misuse raises.
local function fails(want_code, want_field, label, res, m, c, f)
  T.ok(res == nil and c == want_code and (want_field == nil or f == want_field),
       label .. " -> nil, " .. tostring(m) .. ", " .. tostring(c) .. ", " .. tostring(f))
end
fails(sb.ENOTFOUND, "queue", "offer into an unknown queue",
      eng:submit("acme", { type = "offer", call = "x1", queue = "nope", caller = "+442079460009" }))
T.is(sb.code_name(select(3, eng:agent_get("acme", "nobody"))), "SB_ENOTFOUND",
     "a failure's code by name: sb.code_name(code)")
fails(sb.EINVAL, "caller", "a caller that is not E.164",
      eng:submit("acme", { type = "offer", call = "x1", queue = "support", caller = "12345" }))
fails(sb.EINVAL, "colour", "an unknown event field",
      eng:submit("acme", { type = "offer", call = "x1", queue = "support", caller = "+442079460009",
                           colour = "red" }))
T.is(select(2, eng:submit("acme", { type = "offer", call = "x1", queue = "support",
                                    caller = "+442079460009", colour = "red" })),
     "unknown field 'colour' for an offer event (expected call, queue, caller, called, "
       .. "priority, attrs)",
     "... in the words the engine gives the Python and Go bindings, naming what an offer takes")
fails(sb.EINVAL, "type", "an unknown event type", eng:submit("acme", { type = "launch" }))
T.is(select(2, eng:submit("acme", { type = "launch" })),
     "'type' must be offer, ring_result, hangup, abandon, transfer or agent_status",
     "... in the words the engine gives the Python and Go bindings")
T.is(select(2, eng:submit("acme", { type = "launch", colour = "red" })), "unknown field 'colour'",
     "a type that is none and a field no event takes: the field first, as the engine says it")
T.is(select(2, eng:submit("acme", { colour = "red" })), "unknown field 'colour'",
     "a field no event takes, with no type: as the engine says it")
fails(sb.EINVAL, "caller", "a field another event type takes (a ring_result's caller)",
      eng:submit("acme", { type = "ring_result", call = "x1", agent = "bob", outcome = "answered",
                           caller = "+442079460009" }))
fails(sb.EINVAL, "agent", "a hangup naming an agent",
      eng:submit("acme", { type = "hangup", call = "c2", agent = "bob" }))
do
  local _, m1 = eng:submit("acme", { type = "agent_status", agent = "bob", status = "paused",
                                     call = "c2" })
  local _, m2 = eng:submit("acme", '{"type":"agent_status","agent":"bob","status":"paused",'
                                   .. '"call":"c2"}')
  T.is(m1, "unknown field 'call' for an agent_status event (expected agent, status, reason)",
       "... said as the engine says it of JSON")
  T.is(m2, m1, "... word for word")
end
fails(sb.EINVAL, "status", "an agent_status without a status (not read as offline)",
      eng:submit("acme", { type = "agent_status", agent = "bob" }))
fails(sb.EINVAL, "outcome", "an unknown ring outcome",
      eng:submit("acme", { type = "ring_result", call = "x1", agent = "bob", outcome = "maybe" }))
fails(sb.EINVAL, "call", "a field of the wrong type",
      eng:submit("acme", { type = "hangup", call = 42 }))
fails(sb.EINVAL, nil, "malformed JSON text", eng:submit("acme", '{"type":"offer",'))
-- Numbers past what the engine's JSON holds (a C int64 for whole numbers):
-- the field named and what is wrong with it, as for any other bad value.
-- A float of either Lua (2^63, 1e30) that is whole is out of an integer
-- field's range, not "not an integer"; a JSON text's 10^30 too big.
do
  local r, m, c, f = eng:agent_put("acme", '{"id":"big","weight":1000000000000000000000000000000}')
  fails(sb.EINVAL, "weight", "an agent's weight of 10^30 in JSON text", r, m, c, f)
  T.like(tostring(m), "too big a number", "... said as too big, not malformed JSON")
  T.ok(eng:agent_get("acme", "big") == nil, "... and no agent made")
  r, m, c, f = eng:queue_put("acme", { id = "bq", ring_timeout = 2^63 })
  fails(sb.EINVAL, "ring_timeout", "a queue's ring_timeout of 2^63 (a float)", r, m, c, f)
  T.like(tostring(m), "between 1 and", "... said as out of its range (" .. tostring(m) .. ")")
  r, m, c, f = eng:queue_put("acme", { id = "bq", max_wait = 1e30 })
  fails(sb.EINVAL, "max_wait", "a queue's max_wait of 1e30", r, m, c, f)
  T.like(tostring(m), "between", "... said as out of its range (" .. tostring(m) .. ")")
  r, m, c, f = eng:submit("acme", '{"type":"offer","call":"x9","queue":"support",'
                                  .. '"attrs":{"vip":[1,-100000000000000000000]}}')
  fails(sb.EINVAL, "attrs.vip[1]", "an offer's attrs holding -10^20 in JSON text", r, m, c, f)
  T.like(tostring(m), "too small a number", "... said as too small")
end
fails(sb.ENOTFOUND, nil, "reading an unknown agent", eng:agent_get("acme", "zed"))
fails(sb.EINVAL, "devices.fax", "a bad agent document names the field",
      eng:agent_put("acme", { id = "zed", devices = { fax = "x" } }))
fails(sb.ESTATE, "call", "hangup of a call that has ended",
      eng:submit("acme", { type = "hangup", call = "c2" }))
T.ok(eng:call_get("acme", "x1") == nil, "and none of those created a call")

-- by: who ended a call (a hangup's or an abandon's), kept in its record as
-- ended_by; a ringing call the system ends is failed. What the engine
-- refuses of it comes back naming by, said as it says it of JSON.
advance(1000)
acts = eng:submit("acme", { type = "offer", call = "b1", queue = "support", caller = "+442079460005" })
local ering = acts and find(acts, "ring", "b1")
T.ok(ering, "b1 rings " .. tostring(ering and ering.agent))
advance(2000)
acts = eng:submit("acme", { type = "ring_result", call = "b1", agent = ering and ering.agent,
                            outcome = "answered" })
T.ok(acts and find(acts, "connect", "b1"), "b1 answered")
advance(30000)
acts = eng:submit("acme", { type = "hangup", call = "b1", by = "agent" })
T.is(acts and find(acts, "end", "b1") and find(acts, "end", "b1").reason, "answered",
     "a hangup by the agent ends b1 as answered")
local erec = eng:call_get("acme", "b1")
T.ok(erec and erec.outcome == "answered" and erec.ended_by == "agent",
     "b1's record: answered, ended_by agent")
acts = eng:submit("acme", { type = "offer", call = "b2", queue = "support", caller = "+442079460005" })
T.ok(acts and find(acts, "ring", "b2"), "b2 rings")
fails(sb.ESTATE, "by", "the agent hanging up a ringing call",
      eng:submit("acme", { type = "hangup", call = "b2", by = "agent" }))
fails(sb.EINVAL, "by", "an abandon by the agent",
      eng:submit("acme", { type = "abandon", call = "b2", by = "agent" }))
fails(sb.EINVAL, "by", "a by that is not a string",
      eng:submit("acme", { type = "hangup", call = "b2", by = 3 }))
for _, bad in ipairs{
  { "an unknown party", "by", { type = "hangup", call = "b2", by = "nobody" },
    '{"type":"hangup","call":"b2","by":"nobody"}' },
  { "a by on an offer", "by", { type = "offer", call = "b3", queue = "support", by = "caller" },
    '{"type":"offer","call":"b3","queue":"support","by":"caller"}' },
  { "an unknown ring outcome", "outcome",
    { type = "ring_result", call = "b2", agent = "bob", outcome = "maybe" },
    '{"type":"ring_result","call":"b2","agent":"bob","outcome":"maybe"}' },
} do
  local r1, m1, c1, f1 = eng:submit("acme", bad[3])
  local _, m2 = eng:submit("acme", bad[4])
  fails(sb.EINVAL, bad[2], bad[1], r1, m1, c1, f1)
  T.is(m1, m2, "... said as the engine says it of JSON")
end
T.is(eng:call_get("acme", "b2").state, "ringing", "b2 rings on after the refusals")
acts = eng:submit("acme", { type = "hangup", call = "b2", by = "system" })
T.ok(acts and find(acts, "cancel", "b2") and find(acts, "cancel", "b2").reason == "call failed"
     and find(acts, "end", "b2") and find(acts, "end", "b2").reason == "failed",
     "a hangup by the system of the ringing b2: its ring cancelled as 'call failed', ended failed")
erec = eng:call_get("acme", "b2")
T.ok(erec and erec.outcome == "failed" and erec.ended_by == "system",
     "b2's record: failed, ended_by system")
T.ok(select(2, eng:agent_put("acme", { id = "zed", devices = { softphone = "sip:z@x" },
                                       weight = 0 / 0 })):find("finite"),
     "NaN in a document is refused before it reaches the engine")
T.raises(function() eng:submit(nil, {}) end, "bad argument", "a missing account raises")
T.raises(function() eng:submit("acme", 42) end, "bad argument", "an event that is not a table raises")
T.raises(function() sb.open{ data_dir = dir, colour = "red" } end, "unknown option 'colour'",
         "sb.open refuses unknown options")
T.raises(function() sb.open{} end, "data_dir is required", "sb.open needs data_dir")
-- Values of the right type that sb.open does not take come back as nil,
-- message, code, field, as the engine's refusals do (map_size = 100), and
-- open nothing; wrong types raise. Numbers the engine's settings cannot hold
-- are refused, not converted (a NaN or 1e30 converted to an integer is
-- undefined behaviour in C).
local function refused(opts, field, pattern, name)
  local nodir = dir .. "-refused"
  opts.data_dir = nodir
  local okk, e, msg, code, f = pcall(sb.open, opts)
  if okk and e then e:close() end
  local r = T.ok(okk and e == nil and code == sb.EINVAL and f == field and type(msg) == "string"
                 and msg:find(pattern) ~= nil and not io.open(nodir .. "/data.mdb"), name)
  if not r then T.diag("  got: ", e, msg, code, f) end
end
for _, bad in ipairs{ { "map_size", 0/0 }, { "map_size", 1e30 }, { "policy_wall_ms", 1e30 },
                      { "seed", 1.5 }, { "quarantine_after", 1/0 }, { "clock", 0/0 } } do
  refused({ [bad[1]] = bad[2] }, bad[1], "^" .. bad[1] .. " must be a whole number",
          "sb.open{" .. bad[1] .. " = " .. tostring(bad[2]) .. "}: nil, message, sb.EINVAL, \""
          .. bad[1] .. "\"")
end
-- The range named exactly: a double's 2^64 - 1 is 2^64, which the message said.
for _, o in ipairs{ { "map_size", "18446744073709551615" }, { "seed", "18446744073709551615" },
                    { "policy_instructions", "18446744073709551615" },
                    { "policy_wall_ms", "9223372036854775807" }, { "clock", "9223372036854775807" } } do
  refused({ [o[1]] = -1 }, o[1], o[1] .. " must be a whole number from 0 to " .. o[2] .. " %(got %-1%)$",
          "sb.open{" .. o[1] .. " = -1}: from 0 to " .. o[2])
end
-- The two 32-bit bounds, a hook's milliseconds and the failures before
-- quarantine, count as 2^32 - 1 past it, as the Python and Go bindings take
-- them.
do
  local big = assert(sb.open{ data_dir = dir .. "-big", sync = "none", log = "none",
                              policy_wall_ms = 5e9, quarantine_after = 2^40 })
  T.ok(big, "sb.open{policy_wall_ms = 5e9, quarantine_after = 2^40}: opens, as 2^32 - 1")
  big:close()
  os.execute("rm -rf '" .. dir .. "-big'")
end
-- erasure_journal_days reaches the engine, whose range refuses 36601 (and 2^40,
-- held as 2^32 - 1) naming it.
for _, n in ipairs{ 36601, 2^40 } do
  refused({ erasure_journal_days = n }, "erasure_journal_days",
          "^erasure_journal_days must be 0 %(kept for good%) to 36600, not",
          "sb.open{erasure_journal_days = " .. string.format("%.0f", n) .. "}: the engine's range")
end
refused({ sync = "fast" }, "sync", "^sync must be group, sync, none or defer %(got 'fast'%)$",
        "sb.open{sync = \"fast\"}: nil, message, sb.EINVAL, \"sync\"")
refused({ log_level = "verbose" }, "log_level", "^log_level must be error, warn, info or debug",
        "sb.open{log_level = \"verbose\"}: nil, message, sb.EINVAL, \"log_level\"")
refused({ log = "loud" }, "log", "^log must be stderr, buffer or none",
        "sb.open{log = \"loud\"}: nil, message, sb.EINVAL, \"log\"")
refused({ map_size = 100 }, "map_size", "at least 64 KiB",
        "sb.open{map_size = 100}: the engine's refusal, alike")
refused({ map_size = 100, sync = "fast" }, "sync", "^sync must be",
        "sb.open with two bad values: the first checked named")
T.raises(function() sb.open{ data_dir = dir, sync = "fast", map_size = "big" } end,
         "map_size must be a number", "a wrong type raises, also beside a bad value")
T.raises(function() sb.open{ data_dir = dir, sync = 1 } end, "sync must be a string",
         "sb.open{sync = 1} raises (a wrong type)")

-- Policies: stored from the host, validated by the engine's Lua 5.4.
local src = T.read(HERE .. "/policies/pick54.lua")
local cases = { { name = "rings the wanted agent", call = { id = "k1", attrs = { want = "b" } },
                  agents = { { id = "a" }, { id = "b" } },
                  expect = { action = "ring", agents = { "b" }, timeout = 20 } } }
local p = eng:policy_put("acme", "mine", src, cases)
T.ok(p and p.name == "mine" and #p.version == 16, "policy_put with passing cases returns name and version")
local g = eng:policy_get("acme", "mine")
T.ok(g and g.source == "account" and g.code == src and g.version == p.version,
     "policy_get returns the upload with its code")
local stale, _, sc = eng:policy_put("acme", "mine", src .. "-- 2\n", nil, "")
T.ok(stale == nil and sc == sb.ESTATE, "policy_put with if_version \"\" over an upload: SB_ESTATE")
local nodel, _, dc = eng:policy_delete("acme", "mine", "0000000000000000")
T.ok(nodel == nil and dc == sb.ESTATE, "policy_delete with another if_version: SB_ESTATE")
local p2 = eng:policy_put("acme", "mine", src .. "-- 2\n")
local hist = eng:policy_versions("acme", "mine")
T.ok(hist and #hist.versions == 2 and hist.versions[1].version == p2.version and
     hist.versions[2].version == p.version, "policy_versions: the two uploads, newest first")
local old = eng:policy_version("acme", "mine", p.version)
T.ok(old and old.code == src, "policy_version: the first one's code")
local bad, _, bc = eng:policy_version("acme", "mine", "XYZ")
T.ok(bad == nil and bc == sb.EINVAL, "policy_version of a malformed version: SB_EINVAL")
local pg = eng:policy_versions("acme", "mine", 0, 1)
T.ok(pg and #pg.versions == 1 and eng:policy_versions("acme", "mine", pg.next).versions[1].version ==
     p.version, "policy_versions pages with before/next")
local fg = eng:policy_versions_forget("acme", "mine", p.version)
T.ok(fg and fg.forgotten == 1, "policy_versions_forget: the earlier version dropped")
p = eng:policy_put("acme", "mine", src)
local gone = eng:policy_delete("acme", "mine", p.version)
T.ok(gone and gone.deleted == true, "policy_delete deletes an upload no queue uses (if_version the one there)")
local nog, _, nc = eng:policy_get("acme", "mine")
T.ok(nog == nil and nc == sb.ENOTFOUND, "then policy_get finds none")
p = eng:policy_put("acme", "mine", src, cases)
local rep = sb.policy_test("pick54.lua", src, cases)
T.is(rep and rep.passed, 1, "sb.policy_test runs cases without an engine")
cases[1].expect.agents = { "a" }
local no, m2, c2, rep2 = sb.policy_test("pick54.lua", src, cases)
T.ok(no == nil and c2 == sb.EPOLICY and rep2 and rep2.failed == 1,
     "a failing case: nil, message, SB_EPOLICY, report (" .. tostring(m2) .. ")")
T.ok(sb.policy_check("ok.lua", src), "sb.policy_check accepts the policy")
-- A policy refused names the field source, as Python's PolicyError and Go's
-- Error give it (sb_policy_check's field).
do
  local no, msg, code, field = sb.policy_check("lint.lua", "x = 1\n" .. src)
  T.ok(no == nil and code == sb.EPOLICY and tostring(msg):find("lint.lua:1: ", 1, true) and field == "source",
       "sb.policy_check of a faulty policy: nil, message, sb.EPOLICY, \"source\" (" .. tostring(msg) ..
       ", " .. tostring(field) .. ")")
end
-- The budgets an engine would run them under (sb_policy_check_cfg,
-- sb_policy_test_cfg): 10,000 load instructions for a budget of 1,000.
do
  local slow = (src:gsub("  local want = call%.attrs%.want\n",
                         "  local n = 0\n  for i = 1, 20000 do n = n + i end\n%0", 1))
  local loop = "local n = 0\nfor i = 1, 20000 do n = n + i end\n" .. slow
  local want_b = { { name = "rings b", call = { id = "k1", attrs = { want = "b" } },
                     agents = { { id = "a" }, { id = "b" } },
                     expect = { action = "ring", agents = { "b" }, timeout = 20 } } }
  local tight = { policy_instructions = 1000 }
  T.ok(slow ~= src and sb.policy_check("loop.lua", loop), "sb.policy_check: a loop fits the default budgets")
  local no, msg, code = sb.policy_check("loop.lua", loop, tight)
  T.ok(no == nil and code == sb.EPOLICY and tostring(msg):find("instruction budget"),
       "... and not { policy_instructions = 1000 }: nil, message, sb.EPOLICY (" .. tostring(msg) .. ")")
  T.ok(sb.policy_check("loop.lua", loop, { policy_instructions = 0, policy_wall_ms = 0 }),
       "{ policy_instructions = 0 } (no budget) passes it")
  T.is(sb.policy_test("slow.lua", slow, want_b).passed, 1, "sb.policy_test: a slow route passes by default")
  local rep
  no, msg, code, rep = sb.policy_test("slow.lua", slow, want_b, tight)
  T.ok(no == nil and code == sb.EPOLICY and rep and rep.failed == 1
       and tostring(rep.cases[1].got.error):find("instruction budget"),
       "... and fails its case under { policy_instructions = 1000 } (" .. tostring(msg) .. ")")
  local function refused(what, field, pattern, ...)
    local r, m, c, f = ...
    T.ok(r == nil and c == sb.EINVAL and f == field and tostring(m):find(pattern) ~= nil,
         what .. ": nil, message, sb.EINVAL, \"" .. field .. "\" (" .. tostring(m) .. ")")
  end
  T.ok(sb.policy_check("loop.lua", loop, { policy_wall_ms = 2^40 }), "policy_wall_ms = 2^40: as 2^32 - 1")
  refused("sb.policy_check{ policy_wall_ms = -1 }", "policy_wall_ms",
          "^policy_wall_ms must be a whole number from 0 to 9223372036854775807 %(got %-1%)$",
          sb.policy_check("loop.lua", loop, { policy_wall_ms = -1 }))
  refused("sb.policy_test{ policy_memory = 1.5 }", "policy_memory", "^policy_memory must be a whole number",
          sb.policy_test("slow.lua", slow, want_b, { policy_memory = 1.5 }))
  T.raises(function() sb.policy_check("loop.lua", loop, { quarantine_after = 1 }) end,
           "switchboard.policy_check: unknown option 'quarantine_after'", "a setting that is no budget raises")
  T.raises(function() sb.policy_test("slow.lua", slow, want_b, { policy_instructions = "1000" }) end,
           "switchboard.policy_test: policy_instructions must be a number", "a budget of the wrong type raises")
  T.raises(function() sb.policy_check("loop.lua", loop, 1000) end,
           "bad argument #3 to 'switchboard.policy_check' %(table expected, got number%)",
           "budgets that are not a table raise")
  T.raises(function() sb.policy_test("slow.lua", slow, 7, tight) end,
           "bad argument #3 to 'switchboard.policy_test' %(table or JSON text expected, got number%)",
           "cases that are neither a table nor JSON text raise first")
end
local rl = eng:reload()
T.ok(type(rl) == "table" and rl.changed == 0, "reload re-reads the policy folder: {changed = 0}")
-- The reload's document, as Python's reload() and Go's ReloadReport give it:
-- what changed, and the warnings of a policy that loads all the same.
do
  local pdir = T.tmpdir()
  local function put(name, src)
    local f = assert(io.open(pdir .. "/" .. name .. ".lua", "w"))
    f:write(src)
    f:close()
  end
  put("p", "local P = {}\nfunction P.route(call, agents, ctx) return { wait = 1 } end\nreturn P\n")
  local re = assert(sb.open{ data_dir = T.tmpdir(), policy_dir = pdir, sync = "none", log = "none" })
  local first = re:reload()
  T.ok(first and first.changed == 0 and first.policies == nil, "nothing changed: changed 0, no policies")
  put("p", "local P = {}\nfunction P.route(call, agents, ctx) return { wait = 2 } end\nreturn P\n")
  put("lintme", "local P = {}\nfunction P.route(call, agents, ctx)\n" ..
                "  if call.attempts > 5 then retrun {} end\n  return { wait = 5 }\nend\nreturn P\n")
  local d = re:reload()
  local got = {}
  for _, x in ipairs(d and d.policies or {}) do got[#got + 1] = x.name .. ":" .. tostring(x.previous ~= nil) end
  table.sort(got)
  T.ok(d and d.changed == 2 and table.concat(got, " ") == "lintme:false p:true",
       "two changed: each with its version, p with the previous one (" .. table.concat(got, " ") .. ")")
  T.ok(d and d.warnings and #d.warnings == 1 and d.warnings[1]:find("lintme.lua:3: accessing undefined variable 'retrun'", 1, true),
       "and the warning of the policy that loads all the same")
  os.remove(pdir .. "/lintme.lua")
  d = re:reload()
  T.ok(d and d.changed == 1 and d.policies[1].name == "lintme" and d.policies[1].version == sb.null,
       "a policy removed: version null")
  re:close()
end

-- Signed policies: keys, signing and the check require_signed_policies makes.
do
  local keys, kerr = sb.policy_keygen()
  T.ok(keys and #keys.public_key == 64 and #keys.secret_key == 128 and
       keys.public_key:match("^%x+$") and keys.secret_key:match("^%x+$"),
       "sb.policy_keygen: a hex key pair (" .. tostring(kerr) .. ")")
  local signed = sb.policy_sign(src, keys.secret_key)
  T.ok(type(signed) == "string" and signed:sub(1, #src) == src and
       signed:find("\n%-%-@signature %x+%s*$") ~= nil, "sb.policy_sign appends the signature line")
  T.is(sb.policy_sign(signed, keys.secret_key), signed, "signing again replaces the line")
  T.is(sb.policy_verify(signed, keys.public_key), true, "sb.policy_verify: true with its public key")
  local other = assert(sb.policy_keygen())
  local function refused(source, key, want_code, want_field, want_msg, what)
    local r, msg, code, field = sb.policy_verify(source, key)
    T.ok(r == nil and code == want_code and field == want_field and
         type(msg) == "string" and msg:sub(1, #want_msg) == want_msg,
         "sb.policy_verify: " .. what .. ": nil, \"" .. tostring(msg) .. "\", " ..
         tostring(code) .. ", " .. tostring(field))
  end
  local notv = "the signature does not verify with the key"
  refused((signed:gsub("return", "return ", 1)), keys.public_key, sb.EPOLICY, "signature", notv,
          "a source changed after signing")
  refused(signed, other.public_key, sb.EPOLICY, "signature", notv, "another key's public key")
  refused(signed .. "x = 1\n", keys.public_key, sb.EPOLICY, "signature", "changed after signing",
          "text after the signature line")
  refused(src, keys.public_key, sb.EPOLICY, "signature", "unsigned", "an unsigned source")
  refused(signed, keys.secret_key, sb.EINVAL, "public_key", "the public key must be 64 hex",
          "a key that is not 64 hex characters")
  local no, msg, code, field = sb.policy_sign(src, "abc")
  T.ok(no == nil and code == sb.EINVAL and type(msg) == "string",
       "sb.policy_sign with a bad secret key: nil, message, sb.EINVAL (" .. tostring(msg) ..
       ", field " .. tostring(field) .. ")")
  T.raises(function() sb.policy_verify(signed, keys.public_key .. "\0") end, "NUL byte",
           "a key holding a NUL byte is refused")
  local sdir = T.tmpdir()
  local strict = assert(sb.open{ data_dir = sdir, sync = "none", log = "none",
                                 require_signed_policies = true, policy_public_key = keys.public_key })
  assert(strict:account_put{ id = "acme" })
  T.ok(strict:policy_put("acme", "mine", signed), "what sb.policy_sign made loads where signatures are required")
  local un, _, uc = strict:policy_put("acme", "plain", src)
  T.ok(un == nil and uc == sb.EPOLICY, "an unsigned one does not")
  strict:close()
end

-- API keys: listed by id, for an operator choosing which to revoke.
do
  local k1, k2 = assert(eng:apikey_create("acme")), assert(eng:apikey_create("acme"))
  T.ok(eng:apikey_verify("acme", k1.key) and eng:apikey_verify("acme", k2.key),
       "apikey_create twice: both keys verify")
  local l = eng:apikey_list("acme")
  local ids = {}
  for i, k in ipairs(l and l.keys or {}) do ids[i] = k.key_id end
  table.sort(ids)
  local want = { k1.key_id, k2.key_id }
  table.sort(want)
  T.is(table.concat(ids, ","), table.concat(want, ","), "apikey_list: { keys = { {key_id}... } }, the two ids")
  T.ok(l and l.keys[1].key == nil, "apikey_list: ids only, never the keys")
  T.ok(eng:apikey_revoke("acme", k1.key_id), "apikey_revoke the first")
  l = eng:apikey_list("acme")
  T.ok(l and #l.keys == 1 and l.keys[1].key_id == k2.key_id, "apikey_list after a revoke: the other alone")
  T.ok(eng:apikey_verify("acme", k2.key) and not eng:apikey_verify("acme", k1.key),
       "the revoked key fails, the other verifies")
  local none, msg, code, field = eng:apikey_list("nobody")
  T.ok(none == nil and code == sb.ENOTFOUND and field == "account",
       "apikey_list of an unknown account: nil, message, sb.ENOTFOUND, \"account\" (" .. tostring(msg) .. ")")
  assert(eng:apikey_revoke("acme", k2.key_id))
  l = eng:apikey_list("acme")
  T.ok(l and type(l.keys) == "table" and #l.keys == 0 and sb.json_encode(l.keys) == "[]",
       "apikey_list with none left: an empty list (an array: encodes as [])")
end

-- JSON helpers (the same conversions every call uses).
T.is(sb.json_encode({ b = 1, a = { 1, 2.5, "x", true, sb.null } }), '{"a":[1,2.5,"x",true,null],"b":1}',
     "json_encode: objects (sorted keys), lists, numbers, null")
T.is(sb.json_encode({}), "{}", "an empty table encodes as an object")
T.is(sb.json_encode({ d = 0.009, t = 1795885484.142 }), '{"d":0.009,"t":1795885484.142}',
     "json_encode: reals as written, not 0.0089999999999999993")
T.is(sb.json_encode(sb.array{}), "[]", "sb.array{} encodes as a list")
local d = sb.json_decode('{"l":[],"n":null,"i":3,"f":0.5}')
T.is(sb.json_encode(d.l), "[]", "a decoded empty list stays a list")
T.ok(d.n == sb.null and d.i == 3 and d.f == 0.5, "null decodes as sb.null; numbers as numbers")
T.ok(sb.json_encode({ 1, 2, x = 3 }) == nil, "a table mixing list items and fields is refused")
T.ok(sb.json_encode({ [1] = 1, [3] = 3 }) == nil, "a list with holes is refused")
-- {1, 2, nil, 4} has a border of 4 in the table constructor: its hole must
-- be refused too, not sent as null.
local holed = { 1, 2, nil, 4 }
local enc, emsg = sb.json_encode(holed)
T.ok(enc == nil and tostring(emsg):find("holes") ~= nil,
     "a list with a hole inside its border is refused (got " .. tostring(enc) .. ")")
T.ok(sb.json_encode({ 1, 2, nil }) == "[1,2]", "a trailing nil is no hole")
-- A key with a NUL byte would reach C as a shorter key, overwriting another.
enc, emsg = sb.json_encode({ ["a\0b"] = 1, a = 2 })
T.ok(enc == nil and tostring(emsg):find("NUL") ~= nil,
     "a key with a NUL byte is refused (got " .. tostring(enc) .. ")")
local cyc = {}
cyc.self = cyc
T.ok(sb.json_encode(cyc) == nil, "a cycle is refused, not followed forever")

-- Backups: a consistent copy of the data directory, without the master key.
local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end
local bdest = T.tmpdir() .. "/backup" -- does not exist yet: backup creates it
local bk, bmsg = eng:backup(bdest)
if not T.ok(type(bk) == "table" and bk.dir == bdest and type(bk.bytes) == "number" and bk.bytes > 0,
            "backup(dest) returns { dir = dest, bytes > 0 } (" .. tostring(bk and bk.bytes) .. ")") then
  T.diag(bmsg)
end
T.like(bk and bk.master_key, "^not copied", "and says the master key was not copied")
T.ok(exists(bdest .. "/data.mdb") and exists(bdest .. "/data.keys"), "data.mdb and data.keys are in the backup")
T.ok(exists(dir .. "/master.key") and not exists(bdest .. "/master.key"),
     "master.key is in the data directory, not in the backup")
fails(sb.EEXIST, "dest", "a second backup into the same directory", eng:backup(bdest))
fails(sb.EINVAL, "dest", "a backup into the data directory itself", eng:backup(dir))
fails(sb.EINVAL, "dest", "a backup into no directory", eng:backup(""))
T.raises(function() eng:backup() end, "bad argument", "backup without dest raises")
-- A NUL byte would reach C as a shorter path: a backup somewhere not asked for.
fails(sb.EINVAL, "dest", "a dest holding a NUL byte", eng:backup(bdest .. "-nul\0x"))
T.ok(not exists(bdest .. "-nul/data.mdb"), "and nothing was written at the path before the NUL")
do
  local copy = sb.open{ data_dir = bdest, key_file = dir .. "/master.key", sync = "none", log = "none" }
  local rec = copy and copy:call_get("acme", "c1")
  T.is(rec and rec.agent, "bob", "the backup opens with the data directory's master key, c1's record there")
  if copy then copy:close() end
end

-- sync_progress with sync = "defer": a commit is written but not durable
-- until the next commit's own sync covers it, or sync().
do
  local pdir = T.tmpdir()
  local d = assert(sb.open{ data_dir = pdir, sync = "defer", log = "none" })
  local w0 = d:sync_progress()
  assert(d:account_put{ id = "acme" })
  local w1, d1, o1 = d:sync_progress()
  T.ok(o1 == true and w1 > w0 and d1 < w1,
       "sync_progress after a deferred commit: written " .. tostring(w1) .. " grew, durable " ..
       tostring(d1) .. " below it")
  assert(d:agent_put("acme", { id = "alice", devices = { softphone = "sip:alice@x" } }))
  local w2, d2, o2 = d:sync_progress()
  T.ok(o2 == true and w2 > w1 and d2 >= w1,
       "the next commit's own sync made the one before durable (written " .. tostring(w2) ..
       ", durable " .. tostring(d2) .. ", first " .. tostring(w1) .. ")")
  T.is(d:sync(), true, "sync() after deferred commits")
  local w3, d3, o3 = d:sync_progress()
  T.ok(o3 == true and w3 == w2 and d3 >= w3,
       "after sync(): durable " .. tostring(d3) .. " reaches written " .. tostring(w3))
  d:close()
  T.raises(function() d:sync_progress() end, "closed", "sync_progress on a closed engine raises")
  -- Where a sync = "none" engine opened the directory first: not ordered,
  -- durable 0, and no failure.
  local udir = T.tmpdir()
  local none = assert(sb.open{ data_dir = udir, sync = "none", log = "none" })
  local def = assert(sb.open{ data_dir = udir, sync = "defer", log = "none" })
  assert(def:account_put{ id = "acme" })
  local uw, ud, uo = def:sync_progress()
  T.ok(uw ~= nil and uo == false and ud == 0,
       "a sync = \"none\" engine opened the directory first: not ordered, durable 0 (written " ..
       tostring(uw) .. ", durable " .. tostring(ud) .. ", ordered " .. tostring(uo) .. ")")
  def:close()
  none:close()
end

-- Pages of the lists, in id order: the items and next, the last id given,
-- while more follow (the next page's after). An account "gone" of its own,
-- evicted below with its live calls.
local function ids(list)
  local out = {}
  for i, x in ipairs(list or {}) do out[i] = x.id end
  return table.concat(out, " ")
end
do
  assert(eng:account_put{ id = "gone" })
  for _, a in ipairs{ "g3", "g1", "g2" } do
    assert(eng:agent_put("gone", { id = a, status = "available", devices = { softphone = "sip:" .. a .. "@x" } }))
  end
  assert(eng:queue_put("gone", { id = "gq2", members = { { agent = "g3" } } }))
  assert(eng:queue_put("gone", { id = "gq", members = { { agent = "g1" } } }))
  for i, q in ipairs{ "gq", "gq", "gq", "gq2" } do
    assert(eng:submit("gone", { type = "offer", call = "e" .. i, queue = q, caller = "+44207946001" .. i }))
  end
  local p, n = eng:agent_list_page("gone", nil, 2)
  T.ok(ids(p) == "g1 g2" and n == "g2", "agent_list_page(acct, nil, 2): g1 g2, next g2 (" .. ids(p) .. ", " ..
       tostring(n) .. ")")
  p, n = eng:agent_list_page("gone", n, 2)
  T.ok(ids(p) == "g3" and n == nil, "the page after g2: g3, and no next (" .. ids(p) .. ", " .. tostring(n) .. ")")
  p, n = eng:agent_list_page("gone")
  T.ok(ids(p) == "g1 g2 g3" and n == nil, "no after, no limit: all of them, no next")
  p, n = eng:agent_list_page("gone", "", 0)
  T.ok(ids(p) == "g1 g2 g3" and n == nil, "after \"\" and limit 0 alike")
  p, n = eng:agent_list_page("gone", "g3", 5)
  T.ok(p and #p == 0 and n == nil and sb.json_encode(p) == "[]", "after the last: an empty list (encoding as [])")
  local walked, after = {}, nil
  repeat
    local page, nxt = assert(eng:agent_list_page("gone", after, 1))
    walked[#walked + 1] = ids(page)
    after = nxt
  until not after
  T.is(table.concat(walked, "|"), "g1|g2|g3", "a walk one at a time meets each agent once")
  p, n = eng:queue_list_page("gone", nil, 1)
  T.ok(ids(p) == "gq" and n == "gq" and p[1].waiting == 2,
       "queue_list_page(acct, nil, 1): gq (two calls waiting, one ringing), next gq")
  p, n = eng:queue_list_page("gone", n, 1)
  T.ok(ids(p) == "gq2" and n == nil, "then gq2, no next")
  p, n = eng:call_list_page("gone", nil, nil, 2)
  T.ok(ids(p) == "e1 e2" and n == "e2", "call_list_page(acct, nil, nil, 2): e1 e2, next e2")
  p, n = eng:call_list_page("gone", nil, n, 2)
  T.ok(ids(p) == "e3 e4" and n == nil, "then e3 e4, no next (" .. ids(p) .. ", " .. tostring(n) .. ")")
  p, n = eng:call_list_page("gone", "gq", "e1", 1)
  T.ok(ids(p) == "e2" and n == "e2", "one queue's calls after e1, one at a time: e2, next e2")
  p, n = eng:call_list_page("gone", "gq2")
  T.ok(ids(p) == "e4" and n == nil and p[1].queue == "gq2", "call_list_page(acct, queue): that queue's")
  fails(sb.EINVAL, "after", "an after that is no id", eng:agent_list_page("gone", "no such id!", 1))
  fails(sb.EINVAL, "after", "a call page's after that is no id", eng:call_list_page("gone", nil, "a b"))
  fails(sb.ENOTFOUND, "account", "a page of an account that does not exist", eng:queue_list_page("nobody"))
  fails(sb.ENOTFOUND, "queue", "a page of a queue the account does not have",
        eng:call_list_page("gone", "nosuch", nil, 1))
  for _, bad in ipairs{ -1, 1.5, 0 / 0, "x" } do
    T.raises(function() eng:agent_list_page("gone", nil, bad) end, "bad argument #3 to 'agent_list_page'",
             "agent_list_page with limit " .. tostring(bad) .. " raises")
  end
  T.raises(function() eng:call_list_page("gone", nil, true) end,
           "bad argument #3 to 'call_list_page' %(string expected, got boolean%)",
           "call_list_page with a boolean for after raises")

  -- The iterators, as Python's agent_pages...: a page a loop turn.
  local function walk(it)
    local out = {}
    for page in it do out[#out + 1] = ids(page) end
    return table.concat(out, "|")
  end
  T.is(walk(eng:agent_pages("gone", 2)), "g1 g2|g3", "for page in eng:agent_pages(acct, 2): g1 g2, then g3")
  T.is(walk(eng:agent_pages("gone")), "g1 g2 g3", "agent_pages without a limit: pages of 1000")
  T.is(walk(eng:agent_pages("gone", 0)), "g1 g2 g3", "agent_pages(acct, 0): the whole list in one page")
  T.is(walk(eng:queue_pages("gone", 1)), "gq|gq2", "queue_pages(acct, 1): gq, then gq2")
  T.is(walk(eng:call_pages("gone", nil, 3)), "e1 e2 e3|e4", "call_pages(acct, nil, 3): e1 e2 e3, then e4")
  T.is(walk(eng:call_pages("gone", "gq", 1)), "e1|e2|e3", "call_pages(acct, queue, 1): that queue's, one a turn")
  local it = eng:agent_pages("gone", 3)
  local first, second, third = it(), it(), it()
  T.ok(ids(first) == "g1 g2 g3" and second == nil and third == nil,
       "a last page that is full is the last (no empty page after it), then nil for good")
  T.raises(function() walk(eng:agent_pages("nobody")) end,
           "switchboard: SB_ENOTFOUND: .*nobody.* %(field account%)",
           "a page the engine refuses raises in the loop (nil would end it as if the list were done)")
  T.raises(function() walk(eng:call_pages("gone", "nosuch")) end, "SB_ENOTFOUND: .*%(field queue%)",
           "call_pages of a queue the account does not have raises, naming the field")
  for _, bad in ipairs{ -1, 1.5, 0 / 0, "x" } do
    T.raises(function() eng:agent_pages("gone", bad) end, "bad argument #2 to 'agent_pages'",
             "agent_pages with limit " .. tostring(bad) .. " raises at the call")
  end
  T.raises(function() eng:call_pages("gone", true) end, "bad argument #2 to 'call_pages'",
           "call_pages with a boolean for the queue raises at the call")
end

-- account_evict: the account account_delete refuses while its calls are
-- live goes with them, each call's end coming back for the gateway.
do
  local no, _, dcode, dfield = eng:account_delete("gone")
  T.ok(no == nil and dcode == sb.ESTATE and dfield == "account",
       "account_delete of an account with live calls: nil, message, sb.ESTATE, \"account\"")
  local ends = eng:account_evict("gone")
  local got = {}
  for _, a in ipairs(ends or {}) do
    got[#got + 1] = a.type .. ":" .. a.call .. ":" .. tostring(a.queue) .. ":" .. tostring(a.reason) .. ":" .. a.account
  end
  table.sort(got)
  T.is(table.concat(got, " "), "end:e1:gq:account deleted:gone end:e2:gq:account deleted:gone " ..
       "end:e3:gq:account deleted:gone end:e4:gq2:account deleted:gone",
       "account_evict: an end action for each live call (reason \"account deleted\", its queue)")
  T.is(select(3, eng:account_get("gone")), sb.ENOTFOUND, "the account is gone")
  fails(sb.ENOTFOUND, "account", "account_evict of an account that does not exist", eng:account_evict("gone"))
  T.raises(function() eng:account_evict("gone\0x") end, "bad argument #1 to 'account_evict' %(holds a NUL byte%)",
           "account_evict of an id holding a NUL byte raises")
  assert(eng:account_put{ id = "idle" })
  local none = eng:account_evict("idle")
  T.ok(none and #none == 0 and select(3, eng:account_get("idle")) == sb.ENOTFOUND,
       "an account without live calls: evicted, no actions")
end

-- Stats, close, use after close, __gc.
local st = eng:stats()
T.ok(st and st.events.offer >= 4, "stats counts this handle's offers")
T.is(eng:closed(), false, "eng:closed() is false while the engine is open")
eng:close()
T.is(eng:closed(), true, "eng:closed() is true once closed, and does not raise")
T.raises(function() eng:agent_get("acme", "bob") end, "switchboard: the engine is closed$",
         "use after close raises \"the engine is closed\", as the other bindings say it")
eng:close()
T.ok(eng:closed(), "closing twice is harmless, still closed")
T.raises(function() eng.closed(42) end, "switchboard.engine expected", "closed() of something else raises")
do
  local again = assert(sb.open{ data_dir = dir, policy_dir = HERE .. "/policies", sync = "none", log = "none" })
  local rec = again:call_get("acme", "c1")
  T.is(rec and rec.agent, "bob", "reopened: the record persisted in LMDB")
  again = nil -- luacheck: ignore
  collectgarbage()
  collectgarbage()
end
T.ok(true, "an engine dropped without close is closed by the garbage collector")

T.cleanup()
T.done()
