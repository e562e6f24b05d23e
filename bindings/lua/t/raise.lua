-- raise.lua — methods ended half way by a Lua error, run by lua51.t (LuaJIT,
-- lua5.1: a finalizer's error, which those versions raise in whatever code
-- the collection step interrupted) and by lua54.t under oomhost (Lua 5.4: a
-- memory error at each allocation of the methods in turn; t/oomhost.c). The
-- error reaches the caller, and the engine still closes: eng:close() then
-- releases its files (at once in Lua 5.4; in 5.1 once the collector has run).
-- Before the fix, a method ended that way left the engine marked busy for
-- good: close waited for ever, and data.mdb stayed open until the process
-- ended. Run from the repository root.
local T = require "tap"
local sb = require "switchboard"

local now = 1767603600000
local dir = T.tmpdir()
local function open()
  return assert(sb.open{ data_dir = dir, policy_dir = "policies", sync = "none", log = "none",
                         clock = now })
end

-- Files this process has open on the data directory's data.mdb.
local function data_fds()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("*l"):match("^(%d+)")
  f:close()
  local p = assert(io.popen("ls -l /proc/" .. pid .. "/fd 2>/dev/null"))
  local n = 0
  for line in p:lines() do
    if line:find(dir .. "/data.mdb", 1, true) then n = n + 1 end
  end
  p:close()
  return n
end

do
  local eng = open()
  T.three_agents(eng)
  eng:close()
end
T.is(data_fds(), 0, "a closed engine leaves data.mdb closed (the check itself)")

-- Methods of each kind: an event table converted, a document pushed back,
-- actions pushed back, a bad argument found after the engine was taken.
local function methods(eng, k)
  eng:submit("acme", { type = "offer", call = "c" .. k, queue = "q", caller = "+442079460001" })
  eng:account_list()
  eng:agent_put("acme", { id = "a1", status = "available", devices = { softphone = "sip:a1@x" } })
  eng:call_get("acme", "c" .. k)
  eng:records_list("acme", { limit = 5 })
  eng:submit("acme", { type = "hangup", call = "c" .. k, bogus = true })
end

if oom_after then
  -- Lua 5.4: every allocation of the methods fails in turn, until one round
  -- runs through.
  local rounds, raised, stuck, first, through = 0, 0, 0, nil, false
  for k = 1, 20000 do
    local eng = open()
    oom_after(k)
    local ok, err = pcall(methods, eng, k)
    oom_after(0)
    rounds = k
    if ok then
      through = true
    else
      raised = raised + 1
      if not tostring(err):find("memory") then
        T.diag("round " .. k .. ": " .. tostring(err))
      end
    end
    eng:close()
    if data_fds() ~= 0 then
      stuck = stuck + 1
      first = first or k
    end
    if through then break end
  end
  T.ok(through, "a round ran through with enough memory (" .. rounds .. " rounds)")
  T.ok(raised > 50, "memory errors ended methods half way in " .. raised .. " rounds")
  T.is(stuck, 0, "eng:close() after each released data.mdb at once" ..
       (first and (" (first left open in round " .. first .. ")") or ""))
  collectgarbage()
  collectgarbage()
  T.is(data_fds(), 0, "and nothing is left open after a collection")
elseif _VERSION == "Lua 5.1" then
  -- A finalizer's error, raised wherever the collector steps; the collector
  -- steps on almost every allocation. LuaJIT's compiler is off here: a
  -- finalizer's error raised inside a compiled loop crashes LuaJIT itself,
  -- without this module (a plain Lua loop of allocations does it).
  if jit then jit.off() end
  local armed = false
  local function garbage_with_error()
    T.garbage_with(function() if armed then error("finalizer error") end end)
  end
  local rounds, raised, stuck, first = 200, 0, 0, nil
  for k = 1, rounds do
    local eng = open()
    local ok, err = pcall(function()
      collectgarbage("setpause", 0)
      collectgarbage("setstepmul", 1000)
      armed = true
      for i = 1, 20 do
        garbage_with_error()
        methods(eng, k * 100 + i)
      end
    end)
    armed = false
    collectgarbage("setpause", 200)
    collectgarbage("setstepmul", 200)
    if not ok then
      raised = raised + 1
      if not tostring(err):find("finalizer error") then T.diag("round " .. k .. ": " .. tostring(err)) end
    end
    pcall(eng.close, eng)
    collectgarbage()
    collectgarbage()
    if data_fds() ~= 0 then
      stuck = stuck + 1
      first = first or k
    end
  end
  T.ok(raised > 0, "finalizer errors ended " .. raised .. " of " .. rounds .. " rounds half way")
  T.is(stuck, 0, "eng:close() and a collection after each released data.mdb" ..
       (first and (" (first left open in round " .. first .. ")") or ""))
else
  T.ok(true, "# SKIP Lua 5.4 raises neither a finalizer's error nor (without oomhost) a memory error")
end
T.done()
