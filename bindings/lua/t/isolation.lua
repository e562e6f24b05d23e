-- isolation.lua — the host's Lua (5.1, LuaJIT or 5.4) and the engine's own
-- Lua 5.4 live in one process as two runtimes with separate states: neither
-- sees the other's globals, errors raised in one are reported to the other as
-- values, the host keeps working while the engine builds and rebuilds its
-- states, and the host's memory is not the engine's. (The symbol side — which
-- object every lua_* call binds to — is checked by the .t driver with nm and
-- LD_DEBUG=bindings.) Needs SB_LUA_T and the module on LUA_CPATH.
local T = require "tap"
local sb = require "switchboard"

local HERE = assert(os.getenv("SB_LUA_T"), "SB_LUA_T not set")
local now = 1767603600000

-- Which shared objects are mapped: the engine's Lua must be inside the module.
local function mapped()
  local f = io.open("/proc/self/maps")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end
local maps = mapped()
if maps then
  T.ok(maps:find("switchboard.so", 1, true) ~= nil, "the module is mapped")
  T.ok(not maps:find("liblua5.4.so", 1, true), "no liblua5.4.so is loaded: the engine's Lua 5.4 is private to the module")
  T.ok(not maps:find("libswitchboard.so", 1, true), "no libswitchboard.so is loaded either")
end

-- Snapshot of the host's globals and standard library.
host_secret = "bob" -- luacheck: ignore (a host global the policy must not see)
local function snapshot()
  local s = {}
  for k, v in pairs(_G) do s[k] = v end
  for _, lib in ipairs{ "string", "table", "math", "coroutine", "os", "io" } do
    for k, v in pairs(_G[lib]) do s[lib .. "." .. k] = v end
  end
  return s
end
local before = snapshot()
local strmeta = getmetatable("").__index

local dir = T.tmpdir()
local eng = assert(sb.open{ data_dir = dir, policy_dir = HERE .. "/policies", sync = "none",
                            clock = now, log = "buffer" })
assert(eng:account_put{ id = "acme" })
for i, id in ipairs{ "alice", "bob", "carol" } do
  assert(eng:agent_put("acme", { id = id, status = "available",
                                 devices = { softphone = "sip:" .. id .. "@127.0.0.1:" .. (5070 + i) } }))
end
local members = { { agent = "alice" }, { agent = "bob" }, { agent = "carol" } }
assert(eng:queue_put("acme", { id = "peek", policy = "peek54", members = members }))
assert(eng:queue_put("acme", { id = "boom", policy = "boom", members = members }))

local function find(actions, typ, call)
  for _, a in ipairs(actions or {}) do
    if a.type == typ and (call == nil or a.call == call) then return a end
  end
end
local function logs_matching(pattern)
  local out = {}
  for _, l in ipairs(eng:logs()) do
    if l.message:find(pattern) then out[#out + 1] = l.message end
  end
  return out
end
local n = 0
local function cycle(queue, attrs)
  n = n + 1
  local id = "k" .. n
  now = now + 1000
  eng:set_clock(now)
  local acts, err = eng:submit("acme", { type = "offer", call = id, queue = queue,
                                         caller = "+442079460001", attrs = attrs })
  local ring = find(acts, "ring", id)
  if not ring then return nil, err end
  assert(eng:submit("acme", { type = "ring_result", call = id, agent = ring.agent, outcome = "answered" }))
  assert(eng:submit("acme", { type = "hangup", call = id }))
  return ring.agent, id
end

-- 1. Globals: the policy cannot see the host's, the host never sees the policy's.
local agent = cycle("peek")
T.is(agent, "alice", "the policy did not see the host global host_secret='bob' (rang alice)")
local peek = logs_matching("peek:")
T.like(peek[1], "peek: nil", "the policy's own log: host_secret is nil in the engine's Lua")
T.like(peek[1], "jit: nil", "the policy sees no LuaJIT 'jit' table, even under LuaJIT")
T.like(peek[1], "Lua 5%.4", "the policy runs on Lua 5.4")
T.is(rawget(_G, "engine_global"), nil, "a global the policy tried to set is not in the host")
local after = snapshot()
local changed = {}
for k, v in pairs(before) do if after[k] ~= v then changed[#changed + 1] = k end end
for k in pairs(after) do if before[k] == nil then changed[#changed + 1] = k end end
T.is(#changed, 0, "the host's globals and standard library are untouched (" .. table.concat(changed, ",") .. ")")
T.ok(getmetatable("").__index == strmeta, "the host's string metatable is untouched")
T.is(("abc"):upper(), "ABC", "and string methods work in the host")

-- 2. Errors cross as values, with the policy's file:line.
local ok1, msg, code = eng:policy_put("acme", "broken", "local P = {}\nfunction P.route(c)\n  return {\nend\nreturn P\n")
T.ok(ok1 == nil and code == sb.EPOLICY, "a policy that does not compile: nil, message, SB_EPOLICY")
T.like(msg, "^broken%.lua:4:", "the compile error reaches the host with file:line (" .. tostring(msg) .. ")")
local who, id = cycle("boom")
T.ok(who ~= nil, "a policy failing at run time still routes: the fallback rang " .. tostring(who))
local fails = logs_matching("policy failure")
T.like(fails[1], "boom%.lua:7: boom at " .. tostring(id), "the run-time error reaches the host's log with file:line")
local rec = eng:call_get("acme", id)
T.ok(rec ~= nil, "the failed decision's call has a record")
local ok2, e2 = pcall(error, "host error")
T.like(e2, "host error", "the host's own error handling is unaffected after engine-side errors")
T.ok(not ok2, "pcall in the host still catches")
local ok3, e3 = pcall(function() return eng:submit("acme", 42) end)
T.ok(not ok3 and tostring(e3):find("bad argument"), "a host error raised inside the module unwinds the host's way")
T.ok(select(1, cycle("peek")) ~= nil, "and the engine works after the host unwound through the module")

-- 3. Interleaving: host coroutines suspended across engine calls, reloads that
--    build fresh Lua 5.4 states, host garbage collections in between.
local results = {}
local function worker(k)
  return coroutine.create(function()
    for j = 1, 5 do
      local a = cycle("peek")
      results[#results + 1] = a
      coroutine.yield(j)
      local t = {}
      for x = 1, 200 do t[x] = { k, j, x } end -- host garbage
    end
    return "done"
  end)
end
local cos = { worker(1), worker(2), worker(3) }
local gen0 = eng:stats().policy.generation
local live = #cos
local rounds = 0
while live > 0 do
  rounds = rounds + 1
  live = 0
  for _, co in ipairs(cos) do
    if coroutine.status(co) ~= "dead" then
      local okc, err = coroutine.resume(co)
      if not okc then T.diag("coroutine: " .. tostring(err)) end
      live = live + 1
    end
  end
  assert(eng:reload())
  collectgarbage("collect")
end
T.is(#results, 15, "15 call cycles from three interleaved host coroutines")
local allok = true
for _, a in ipairs(results) do allok = allok and a == "alice" end
T.ok(allok, "every one routed by the policy, through " .. rounds .. " reloads and host GCs")
T.ok(eng:stats().policy.generation >= gen0, "the engine rebuilt its policy states meanwhile")

-- 4. Memory: the engine's Lua states are not the host's heap.
collectgarbage("collect")
local host_kb = collectgarbage("count")
for i = 1, 10 do
  local src = T.read(HERE .. "/policies/pick54.lua"):gsub("WAIT <const> = 5", "WAIT <const> = " .. i)
  assert(eng:policy_put("acme", "p" .. i, src))
  assert(eng:queue_put("acme", { id = "q" .. i, policy = "p" .. i, members = members }))
  cycle("q" .. i)
end
collectgarbage("collect")
local grew = collectgarbage("count") - host_kb
local engine_mem = eng:stats().policy.memory_bytes
T.ok(grew < 256, string.format("10 more policies in the engine grew the host's heap by %.0f KB only", grew))
T.ok(type(engine_mem) == "number" and engine_mem > 0,
     "the engine accounts its own Lua memory: " .. tostring(engine_mem) .. " bytes")

-- 5. LuaJIT: compiled host code calling into the module in a hot loop.
if jit then
  T.ok(jit.status(), "LuaJIT's JIT compiler is on")
  local okn = 0
  for _ = 1, 300 do
    if cycle("peek") then okn = okn + 1 end
  end
  T.is(okn, 300, "300 call cycles from a hot (JIT-compiled) host loop")
end

-- 6. Two engines, two sets of states, in one host.
local dir2 = T.tmpdir()
local eng2 = assert(sb.open{ data_dir = dir2, policy_dir = HERE .. "/policies", sync = "none", log = "none" })
assert(eng2:account_put{ id = "acme" })
T.ok(eng2:agent_get("acme", "alice") == nil, "a second engine on another data directory shares nothing")
eng2:close()
T.ok(select(1, cycle("peek")) == "alice", "the first engine is unaffected by the second's close")

eng:close()
T.cleanup()
T.done()
