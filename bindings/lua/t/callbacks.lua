-- callbacks.lua — sb.open's clock and log functions, run by lua51.t (LuaJIT,
-- lua5.1) and lua54.t (lua5.4): the engine's time read from a Lua function
-- (offers, timers, eng:clock()), its log lines given to one (also those of
-- sb.open and of a policy), each run on the thread that called the engine;
-- a failing clock (an error, an error object, a value that is no time, a
-- yield, a call or a close of the engine from it) read as the system time
-- and said in the log, a failing log function's line dropped and said on
-- stderr (a child process), and the engine serving on with nothing held;
-- under oomhost, memory errors inside them.
-- Needs SB_LUA_T (this folder) and the module on LUA_CPATH.
local sb = require "switchboard"

local HERE = assert(os.getenv("SB_LUA_T"), "SB_LUA_T not set")
local NOW = 1767603600000 -- Monday 2026-01-05 09:00 UTC

-- The child: what goes to stderr, where the parent reads it. A failing clock
-- with the default log (stderr) is said once; a failing log function drops
-- its line, said each time.
if arg and arg[1] == "stderr-child" then
  local eng = assert(sb.open{ data_dir = arg[2], sync = "none",
                              clock = function() error("the clock is broken at +442079460001") end })
  for i = 1, 3 do assert(eng:account_put{ id = "s" .. i }) end
  eng:close()
  local calls = 0
  local other
  other = assert(sb.open{ data_dir = arg[2], sync = "none", policy_dir = HERE .. "/policies",
                          log = function(level, line)
                            calls = calls + 1
                            if calls == 1 then error("the log is full") end
                            if calls == 2 then other:stats() end
                          end })
  -- A second line: a policy's ctx.log, from routing an offer.
  assert(other:account_put{ id = "acme" })
  assert(other:agent_put("acme", { id = "bob", status = "available", devices = { softphone = "sip:bob@x" } }))
  assert(other:queue_put("acme", { id = "q", policy = "pick54", members = { { agent = "bob" } } }))
  assert(other:submit("acme", { type = "offer", call = "c1", queue = "q" }))
  io.stdout:write("log function calls ", calls, "\n")
  other:close()
  io.stdout:write("child done\n")
  os.exit(0)
end

local T = require "tap"
T.diag("host: " .. _VERSION .. (jit and (" / " .. jit.version) or ""))

-- Under oomhost (lua54.t): a memory error at each allocation in turn while
-- an offer is routed, its clock and log functions allocating too. An error
-- in them is caught where they run, never unwinding through the engine's C
-- frames: each engine closes, and another then writes (nothing left held).
if oom_after then
  local odir = T.tmpdir()
  local function open(extra)
    local o = { data_dir = odir, sync = "none", policy_dir = HERE .. "/policies", log = "none" }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(sb.open(o))
  end
  local setup = open()
  assert(setup:account_put{ id = "acme" })
  assert(setup:agent_put("acme", { id = "bob", status = "available", devices = { softphone = "sip:bob@x" } }))
  assert(setup:queue_put("acme", { id = "q", policy = "pick54", members = { { agent = "bob" } } }))
  setup:close()
  local function round(eng, k)
    assert(eng:submit("acme", { type = "offer", call = "o" .. k, queue = "q" }))
    assert(eng:submit("acme", { type = "abandon", call = "o" .. k }))
  end
  -- Rounds of a memory error after k allocations, k = 1, 2, ... until one
  -- runs through; seen(eng) after each, with memory again.
  local function rounds(log, seen)
    local raised = 0
    for k = 1, 20000 do
      local eng = open{ clock = function() return ({ NOW + k })[1] end, log = log }
      oom_after(k)
      local ok = pcall(round, eng, k)
      oom_after(0)
      pcall(eng.submit, eng, "acme", { type = "abandon", call = "o" .. k })
      if seen then seen(eng) end
      eng:close()
      if ok then return raised, k end
      raised = raised + 1
    end
    return raised
  end
  local chars = 0
  local raised, through = rounds(function(level, line) chars = chars + #(level .. ": " .. line) end)
  T.ok(through and raised > 20, "memory errors in " .. raised .. " rounds, then one ran through, " ..
       "the clock and log functions allocating")
  T.ok(chars > 0, "the log function was called")
  local clock_failed = 0
  raised, through = rounds("buffer", function(eng)
    for _, l in ipairs(eng:logs()) do
      if l.message:find("^the clock function raised: not enough memory") then clock_failed = clock_failed + 1 end
    end
  end)
  T.ok(through and clock_failed > 0, "the clock function failed for want of memory in " .. clock_failed ..
       " rounds: the system time read, the failure logged")
  local after = open()
  T.ok(after:account_put{ id = "after" }, "another engine writes: nothing was left held")
  after:close()
  T.cleanup()
  T.done()
end

local lines = {}
local function take()
  local l = lines
  lines = {}
  return l
end
local function line_like(ls, pattern)
  for _, l in ipairs(ls) do
    if l:find(pattern) then return l end
  end
end
local now = NOW
local behave = function() return now end
local dir = T.tmpdir()
local eng, err = sb.open{ data_dir = dir, policy_dir = HERE .. "/policies", sync = "none",
                          clock = function() return behave() end,
                          log = function(level, line)
                            lines[#lines + 1] = level .. " " .. line
                          end }
if not T.ok(eng, "sb.open with a clock function and a log function") then T.diag(err) T.done() end
T.ok(line_like(take(), "^warn policy warning: .*peek54%.lua:8: setting global variable"),
     "the log function gets the lines sb.open writes, with their level")
T.is(eng:clock(), now, "eng:clock() reads the clock function")
T.raises(function() eng:set_clock(1) end, "set_clock needs sb.open{clock = ms}",
         "eng:set_clock is for a manual clock only")

-- The engine's time is the function's: an offer's ring times out 20 s later.
assert(eng:account_put{ id = "acme" })
T.is(eng:account_get("acme").created_ms, now, "the account was made at the clock function's time")
assert(eng:agent_put("acme", { id = "bob", status = "available", devices = { softphone = "sip:bob@x" } }))
assert(eng:queue_put("acme", { id = "q", policy = "pick54", members = { { agent = "bob" } } }))
local acts = assert(eng:submit("acme", { type = "offer", call = "c1", queue = "q", caller = "+442079460001" }))
T.is(acts[1] and acts[1].type, "ring", "an offer rings bob")
T.is(eng:next_deadline(), now + 20000, "the ring times out 20 s after the function's time")
T.ok(line_like(take(), "^info .*runtime Lua 5%.4"), "a policy's ctx.log line reaches the log function")
now = now + 20000
acts = eng:tick()
T.ok(acts[1] and acts[1].type == "cancel", "moving the function's time fires the timeout")

-- The functions run on the thread that called the engine.
local clock_threads = {}
behave = function()
  clock_threads[#clock_threads + 1] = coroutine.running() or "main"
  return now
end
local co = coroutine.create(function() return eng:account_put{ id = "from_co" } end)
local okk, res = coroutine.resume(co)
T.ok(okk and type(res) == "table", "an engine call from a coroutine (" .. tostring(res) .. ")")
T.ok(#clock_threads > 0 and clock_threads[#clock_threads] == co,
     "the clock function ran on that coroutine")
clock_threads = {}
assert(eng:account_put{ id = "from_main" })
T.ok(#clock_threads > 0 and clock_threads[#clock_threads] ~= co,
     "and on the main thread for a call from there, not on the coroutine of the call before")

-- A clock function that fails: that reading is the system time, each
-- failure an error line in the log, and the call goes on.
local function failing(label, fn, pattern)
  behave = fn
  take()
  local before = os.time()
  local id = "f" .. tostring(#label)
  local r, m = eng:account_put{ id = id }
  local created = r and eng:account_get(id)
  created = created and created.created_ms
  -- The system time, not the script's clock (ten months before it): within a
  -- minute of os.time(), whose coarse clock can trail the engine's reading
  -- by more than a second on a loaded machine.
  if not T.ok(r ~= nil and created and created >= (before - 60) * 1000 and created <= (os.time() + 60) * 1000,
              "a clock function that " .. label .. ": the call goes on with the system time") then
    T.diag(m, created, before, os.time())
  end
  local got = take()
  local l = line_like(got, "^error the clock function " .. pattern .. ".*; this reading is the system time$")
  T.ok(l ~= nil, "... and the log function gets an error line saying so (" .. tostring(got[1]) .. ")")
  assert(eng:account_delete(id))
  return l
end
local l = failing("raises", function() error("the clock is broken at +442079460001") end,
                  "raised: .*callbacks%.lua:%d+: the clock is broken at %[number%]")
T.ok(l and not l:find("442079460001"), "a number in the error reads [number], as in the engine's lines")
failing("raises a table", function() error({}) end, "raised an error object that is a table")
failing("returns nothing", function() end,
        "returned nil, not a whole number of milliseconds from 0 to 2%^63 %- 1")
failing("returns a string", function() return "soon" end, "returned the string \"soon\"")
failing("returns a fraction", function() return 1.5 end, "returned 1%.5,")
failing("returns a negative time", function() return -1000 end, "returned %-1000,")
failing("returns NaN", function() return 0 / 0 end, "returned %-?nan,")
failing("calls the engine", function() return eng:stats() end,
        "raised: .*switchboard: the clock function may not call the engine %(it runs inside a call on it%)")
failing("closes the engine", function() eng:close() end,
        "raised: .*switchboard: the engine cannot be closed from its clock function")
T.ok(eng:account_get("acme"), "the engine is still open")
-- A yield cannot cross the engine's C frames: it fails as an error would.
behave = function()
  coroutine.yield("from the clock")
  return now
end
co = coroutine.create(function() return eng:account_put{ id = "yielded" } end)
okk, res = coroutine.resume(co)
T.ok(okk and type(res) == "table" and coroutine.status(co) == "dead",
     "a clock function that yields: the call is not suspended, it goes on (" .. tostring(res) .. ")")
T.ok(line_like(take(), "^error the clock function raised: .*yield"), "... and the failure is logged")

-- The log function may fail too (said on stderr; see the child below): the
-- engine goes on, and the next line reaches it.
behave = function() return now end
local log_calls = 0
do
  local other = assert(sb.open{ data_dir = T.tmpdir(), sync = "none", policy_dir = HERE .. "/policies",
                                log = function()
                                  log_calls = log_calls + 1
                                  error("the log is full")
                                end })
  T.ok(log_calls == 1 and other:account_put{ id = "acme" },
       "a log function that raises: sb.open goes on (" .. log_calls .. " calls)")
  other:close()
end
T.ok(eng:account_put{ id = "after" } and #take() == 0, "the first engine writes on, its clock read again")
-- Nothing is held by a failed function: another engine writes at once.
do
  local other = assert(sb.open{ data_dir = dir, sync = "none", log = "none" })
  T.ok(other:account_put{ id = "other" }, "another engine on the data directory writes")
  other:close()
end

-- The clock's failures with log = "buffer" go to the buffer; with "none",
-- nowhere.
do
  local bdir = T.tmpdir()
  local b = assert(sb.open{ data_dir = bdir, sync = "none", log = "buffer",
                            clock = function() return "later" end })
  assert(b:account_put{ id = "a" })
  local got = b:logs()
  T.ok(#got > 0 and got[#got].level == "error" and got[#got].message:find("^the clock function returned"),
       "log = \"buffer\": the clock's failure is an error line in eng:logs()")
  b:close()
end

-- A clock function that changes the event table eng:submit was given, then
-- collects: the engine reads the event as it was given (a copy), not
-- strings freed under it.
do
  local ev = { type = "offer", call = "uaf-" .. string.rep("x", 40), queue = "q" }
  behave = function()
    if ev.call then
      ev.call, ev.queue = nil, nil
      collectgarbage("collect")
      local junk = {}
      for i = 1, 2000 do junk[i] = string.rep("Z", 44) .. i end
    end
    return now
  end
  local acts, m = eng:submit("acme", ev)
  behave = function() return now end
  local got = eng:call_get("acme", "uaf-" .. string.rep("x", 40))
  T.ok(acts ~= nil and got ~= nil and got.queue == "q",
       "a clock function emptying the event table: the event goes in as given (" .. tostring(m) .. ")")
  if got then assert(eng:submit("acme", { type = "abandon", call = got.id })) end
end

-- Options of the wrong type raise, as sb.open's others do.
T.raises(function() sb.open{ data_dir = dir, clock = "now" } end,
         "switchboard.open: clock must be a number or a function", "clock = \"now\" raises")
T.raises(function() sb.open{ data_dir = dir, log = 2 } end,
         "switchboard.open: log must be a string or a function", "log = 2 raises")

-- stderr: a child process (this script again), its output read here.
local interp = arg and arg[-1]
if not interp or interp:find("oomhost") then
  T.ok(true, "# SKIP the stderr checks need the host interpreter to run a child")
else
  local p = assert(io.popen("'" .. interp .. "' '" .. HERE .. "/callbacks.lua' stderr-child '" ..
                            T.tmpdir() .. "' 2>&1"))
  local out = p:read("*a")
  p:close()
  local _, said = out:gsub("switchboard: the clock function raised: [^\n]*the clock is broken at %[number%]; " ..
                           "this reading is the system time %(said once", "")
  T.is(said, 1, "log = \"stderr\" (the default): a failing clock said on stderr once for three calls")
  T.ok(out:find("switchboard: the log function raised: [^\n]*the log is full; line dropped\n") ~= nil,
       "a log function that raises: its line dropped, said on stderr")
  T.ok(out:find("switchboard: the log function raised: [^\n]*may not call the engine[^\n]*; line dropped\n") ~= nil,
       "a log function that calls the engine: refused, said on stderr")
  T.ok(out:find("log function calls 2\n", 1, true) and out:find("child done\n", 1, true),
       "the log function is called again after it failed, and the child ran to its end")
  if not out:find("child done") then T.diag(out) end
end

eng:close()
T.cleanup()
T.done()
