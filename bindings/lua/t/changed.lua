-- changed.lua — eng:changed() and sb.defer_stop_signals(on), run by lua51.t
-- (LuaJIT, lua5.1) and lua54.t (lua5.4). changed: true after a call that
-- committed a change (a put, an offer, a status changed), false after a
-- read, a status set to the one it has, a refusal, bad input refused before
-- the engine, and sync; in a batch, each event's own. defer_stop_signals:
-- booleans only; with it on, the clock (which the engine calls inside each
-- write transaction) sees SIGTSTP, SIGTTIN and SIGTTOU blocked in the
-- thread's mask (/proc's SigBlk), with it off it does not; the mask is put
-- back as the call returns, and it is switched off before the script ends.
-- Needs SB_LUA_T (this folder) and the module on LUA_CPATH.
local sb = require "switchboard"
local T = require "tap"

local NOW = 1767603600000

-- Whether the calling thread has the three stop signals blocked: SIGTSTP,
-- SIGTTIN and SIGTTOU are signals 20 to 22, bits 19 to 21 of SigBlk (hex).
local function stops_blocked()
  local f = io.open("/proc/thread-self/status", "r") or io.open("/proc/self/status", "r")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  local hex = s:match("\nSigBlk:%s*(%x+)")
  if not hex then return nil end
  local low = tonumber(hex:sub(-6), 16) -- bits 0..23: exact in any Lua number
  return math.floor(low / 2 ^ 19) % 8 == 7
end

local seen = {}
local eng = assert(sb.open{ data_dir = T.tmpdir(), policy_dir = "policies", sync = "none",
                            log = "none",
                            clock = function()
                              seen[#seen + 1] = stops_blocked()
                              return NOW
                            end })

-- changed
T.is(eng:changed(), false, "changed() before any call: false")
T.three_agents(eng)
T.is(eng:changed(), true, "after a queue put: true")
assert(eng:agent_get("acme", "a1"))
T.is(eng:changed(), false, "after a read: false")
assert(eng:agent_put("acme", { id = "a9", status = "available",
                               devices = { softphone = "sip:a9@x" } }))
T.is(eng:changed(), true, "after an agent put: true")
assert(eng:submit("acme", { type = "agent_status", agent = "a9", status = "available" }))
T.is(eng:changed(), false, "an agent's status set to the one it has: false")
assert(eng:submit("acme", { type = "agent_status", agent = "a9", status = "paused" }))
T.is(eng:changed(), true, "set to another: true")
local r, _, code = eng:submit("acme", { type = "hangup", call = "nope" })
T.ok(r == nil and code == sb.ENOTFOUND, "a refused event: nil, message, ENOTFOUND")
T.is(eng:changed(), false, "and changed nothing: false")
assert(eng:submit("acme", { type = "offer", call = "c1", queue = "q", caller = "+442079460001" }))
T.is(eng:changed(), true, "after an offer: true")
r = eng:submit("acme", { type = "offer", call = "c2", queue = "q", caller = "not a number" })
T.ok(r == nil and not eng:changed(), "an offer refused: false")
assert(eng:agent_put("acme", { id = "a9", status = "available",
                               devices = { softphone = "sip:a9@x" } }))
r = eng:agent_put("acme", { id = "a9", status = "available", n = 0 / 0,
                           devices = { softphone = "sip:a9@x" } })
T.ok(r == nil and not eng:changed(),
     "a put refused before the engine (NaN): false, not the put before's true")
assert(eng:agent_put("acme", { id = "a9", status = "available",
                               devices = { softphone = "sip:a9@x" } }))
assert(eng:sync())
T.is(eng:changed(), false, "sync() changed nothing in the store: false")
local in_batch = {}
assert(eng:batch(function()
  assert(eng:submit("acme", { type = "agent_status", agent = "a9", status = "paused" }))
  in_batch[#in_batch + 1] = tostring(eng:changed())
  assert(eng:submit("acme", { type = "agent_status", agent = "a9", status = "paused" }))
  in_batch[#in_batch + 1] = tostring(eng:changed())
  assert(not eng:submit("acme", { type = "hangup", call = "nope" }))
  in_batch[#in_batch + 1] = tostring(eng:changed())
  assert(eng:submit("acme", { type = "hangup", call = "c1" }))
  in_batch[#in_batch + 1] = tostring(eng:changed())
end))
T.is(table.concat(in_batch, " "), "true false false true",
     "in a batch, each event's own: a change, the same status again, a refusal, a hangup")
T.is(eng:changed(), true, "the batch's commit leaves it as its last event left it")
T.raises(function() eng.changed(nil) end, "bad self", "eng.changed(nil) raises")

-- defer_stop_signals
T.raises(function() sb.defer_stop_signals(1) end,
         "bad argument #1 to 'switchboard.defer_stop_signals' %(boolean expected, got number%)",
         "defer_stop_signals(1) raises, naming the argument")
T.raises(function() sb.defer_stop_signals() end, "boolean expected, got no value",
         "defer_stop_signals() raises")
T.raises(function() sb.defer_stop_signals("on") end, "boolean expected, got string",
         "defer_stop_signals('on') raises")
local function only(v)
  if #seen == 0 then return false end
  for _, b in ipairs(seen) do
    if b ~= v then return false end
  end
  return true
end
if stops_blocked() == nil then
  T.ok(true, "# SKIP no SigBlk in /proc to read the signal mask from")
else
  seen = {}
  assert(eng:agent_put("acme", { id = "a8", status = "available",
                                 devices = { softphone = "sip:a8@x" } }))
  T.ok(only(false), "off (the default): a put runs with the stop signals unblocked")
  local okk, err = pcall(function()
    sb.defer_stop_signals(true)
    seen = {}
    assert(eng:agent_put("acme", { id = "a7", status = "available",
                                   devices = { softphone = "sip:a7@x" } }))
    T.ok(only(true), "on: a put runs with SIGTSTP, SIGTTIN and SIGTTOU blocked")
    seen = {}
    assert(eng:submit("acme", { type = "offer", call = "c3", queue = "q",
                                caller = "+442079460001" }))
    T.ok(only(true), "on: an offer too")
    T.is(stops_blocked(), false, "and the mask is put back as the call returns")
    T.is(eng:call_get("acme", "c3").state, "ringing", "calls work with it on")
  end)
  sb.defer_stop_signals(false)
  T.ok(okk, "the part with it on ran to the end " .. tostring(err or ""))
  seen = {}
  assert(eng:submit("acme", { type = "hangup", call = "c3" }))
  T.ok(only(false), "off again: nothing blocked")
end
eng:close()
T.done()
