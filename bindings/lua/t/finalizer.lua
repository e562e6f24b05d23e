-- finalizer.lua — Lua code run by the garbage collector in the middle of an
-- engine method, run by lua51.t (LuaJIT, lua5.1) and lua54.t (lua5.4). A
-- finalizer (__gc of a gateway's own object) may close the engine, or call
-- it, while a method converts its arguments or builds its answer from the
-- engine's result. The method's answer must stay whole, a close must take
-- effect (once the answer is built), and nothing may crash: before the fix,
-- lua5.4 read the freed result and died with SIGSEGV. The collector is made
-- to step on almost every allocation so that this happens often; the count
-- of finalizers run inside a method is reported. Run from the repository root.
local T = require "tap"
local sb = require "switchboard"

local now = 1767603600000
local dir = T.tmpdir()
local N = 40
local function open()
  return assert(sb.open{ data_dir = dir, policy_dir = "policies", sync = "none", log = "none",
                         clock = now })
end
do
  local eng = open()
  T.three_agents(eng)
  eng:close()
end

-- Two settings, as each catches what the other may miss: (pause, step).
local SETTING = { { 50, 400 }, { 0, 1000 } }
local setting = SETTING[1]
local function aggressive()
  if _VERSION == "Lua 5.4" then
    collectgarbage("incremental", setting[1], setting[2])
  else
    collectgarbage("setpause", setting[1])
    collectgarbage("setstepmul", setting[2])
  end
end
local function normal()
  if _VERSION == "Lua 5.4" then
    collectgarbage("incremental", 200, 100)
  else
    collectgarbage("setpause", 200)
    collectgarbage("setstepmul", 200)
  end
end
local garbage_with = T.garbage_with

local in_call = false
local function closed(ok, err) return not ok and tostring(err):find("engine is closed") end
for k, set in ipairs(SETTING) do
  setting = set
  local tag = string.format(" (collector pause %d, step %d)", set[1], set[2])
  -- 1. A finalizer closes the engine. Each round offers a call, reads an
  -- agent by a number id (converted to a string: an allocation before the
  -- engine is used) and fails to read an unknown one (the failure's message
  -- and field pushed from the result).
  local during, wrong, still_open = 0, {}, 0
  aggressive()
  local last
  for i = 1, N do
    local eng = open()
    if last then eng:submit("acme", { type = "abandon", call = last }) end
    local ran_inside = false
    garbage_with(function()
      if in_call then ran_inside = true end
      eng:close()
    end)
    in_call = true
    local ok1, acts = pcall(eng.submit, eng, "acme", { type = "offer", call = "f" .. k .. "-" .. i, queue = "q",
                                                        caller = "+442079460001" })
    local ok2, r2, m2, c2, f2 = pcall(eng.agent_get, eng, "acme", 1000 + i)
    local ok3, r3 = pcall(eng.queue_get, eng, "acme", "q")
    in_call = false
    last = "f" .. k .. "-" .. i
    -- each answer is whole, or the call found the engine closed already
    if not (closed(ok1, acts) or (ok1 and type(acts) == "table" and acts[1] and acts[1].call == last)) then
      wrong[#wrong + 1] = "submit: " .. tostring(acts)
    end
    if not (closed(ok2, r2) or (ok2 and r2 == nil and c2 == sb.ENOTFOUND and f2 == "agent"
                                and tostring(m2):find(tostring(1000 + i), 1, true))) then
      wrong[#wrong + 1] = "agent_get: " .. tostring(r2) .. " " .. tostring(m2) .. " " .. tostring(f2)
    end
    if not (closed(ok3, r3) or (ok3 and type(r3) == "table" and r3.id == "q")) then
      wrong[#wrong + 1] = "queue_get: " .. tostring(r3)
    end
    if ran_inside then
      during = during + 1
      if pcall(eng.clock, eng) then still_open = still_open + 1 end
    end
    eng:close()
  end
  normal()
  collectgarbage()
  T.diag("finalizers closing the engine inside a method: " .. during .. " of " .. N .. tag)
  T.is(#wrong, 0, "a finalizer closing the engine mid-method leaves every answer whole" .. tag .. " (" ..
       tostring(wrong[1]) .. ")")
  T.is(still_open, 0, "and the close takes effect once the method returns" .. tag)

  -- 2. A finalizer calls the engine while a method builds its answer from the
  -- engine's result: each must get its own answer.
  local eng = open()
  local inner_bad, reentered = 0, 0
  wrong = {}
  aggressive()
  for i = 1, N do
    garbage_with(function()
      if in_call then reentered = reentered + 1 end
      local st = eng:stats()
      if type(st) ~= "table" or type(st.events) ~= "table" then inner_bad = inner_bad + 1 end
      local nope, _, code = eng:call_get("acme", "nope")
      if nope ~= nil or code ~= sb.ENOTFOUND then inner_bad = inner_bad + 1 end
    end)
    in_call = true
    local acts = eng:submit("acme", { type = "offer", call = "g" .. k .. "-" .. i, queue = "q",
                                      caller = "+442079460001" })
    local q = eng:queue_get("acme", "q")
    in_call = false
    if not (type(acts) == "table" and acts[1] and acts[1].call == "g" .. k .. "-" .. i) then
      wrong[#wrong + 1] = "submit: " .. tostring(acts and acts[1] and acts[1].call)
    end
    if not (type(q) == "table" and q.id == "q") then wrong[#wrong + 1] = "queue_get" end
    eng:submit("acme", { type = "abandon", call = "g" .. k .. "-" .. i })
  end
  normal()
  collectgarbage()
  T.diag("finalizers calling the engine inside a method: " .. reentered .. " of " .. N .. tag)
  T.is(#wrong, 0, "a finalizer calling the engine mid-method leaves the method's answer whole" .. tag .. " (" ..
       tostring(wrong[1]) .. ")")
  T.is(inner_bad, 0, "and gets whole answers itself" .. tag)
  eng:close()
end

T.cleanup()
T.done()
