-- misuse.lua — the binding given what a gateway should not give it, run by
-- lua51.t (LuaJIT, lua5.1) and lua54.t (lua5.4): strings holding NUL bytes
-- in events and in sb.open's options, event numbers C cannot hold, options
-- of the wrong type, documents of the wrong type, and an engine inherited
-- across fork() (LuaJIT only: its FFI can fork). Each is refused with a clear
-- message and changes nothing. Run from the repository root.
local T = require "tap"
local sb = require "switchboard"

local now = 1767603600000 -- Monday 2026-01-05 09:00 UTC
local dir = T.tmpdir()
local eng = assert(sb.open{ data_dir = dir, policy_dir = "policies", sync = "none", clock = now,
                            log = "none" })
assert(eng:account_put{ id = "acme" })
assert(eng:agent_put("acme", { id = "alice", status = "paused", devices = { softphone = "sip:a@x" } }))
assert(eng:queue_put("acme", { id = "support", policy = "longest-idle", members = { { agent = "alice" } } }))
assert(eng:submit("acme", { type = "offer", call = "c1", queue = "support", caller = "+442079460001" }))

-- unpack's place, and nils kept (args.n, or the border of those given).
local unpack = table.unpack or unpack
local function unpack_args(args) return unpack(args, 1, args.n or #args) end

local function fails(want_code, want_field, label, res, m, c, f)
  local r = T.ok(res == nil and c == want_code and f == want_field,
                 label .. " -> nil, " .. tostring(m) .. ", " .. tostring(c) .. ", " .. tostring(f))
  return r, m
end
local function state(call)
  local c = eng:call_get("acme", call)
  return c and c.state
end
local waiting = state("c1")
T.ok(waiting ~= nil, "c1 is in progress (" .. tostring(waiting) .. ")")

-- Event tables: C reads a string up to its first NUL byte, so "c1\0x" would
-- name c1 and a key "call\0x" the field call. Both are refused.
local _, m = fails(sb.EINVAL, "call", "an event's call id holding a NUL byte",
                   eng:submit("acme", { type = "hangup", call = "c1\0x" }))
T.like(m, "NUL", "the message says why")
T.is(state("c1"), waiting, "and c1 was not hung up")
fails(sb.EINVAL, nil, "an event field name holding a NUL byte",
      eng:submit("acme", { type = "hangup", ["call\0x"] = "c1" }))
T.is(state("c1"), waiting, "and c1 was not hung up")
fails(sb.EINVAL, "type", "an event type holding a NUL byte",
      eng:submit("acme", { type = "hangup\0x", call = "c1" }))
fails(sb.EINVAL, "attrs", "attrs given as JSON text holding a NUL byte",
      eng:submit("acme", { type = "offer", call = "c2", queue = "support", caller = "+442079460002",
                           attrs = '{"language":"en"}\0junk' }))
T.is(state("c2"), nil, "and c2 was not offered")
-- attrs is a table, as the README says: JSON text (or a number) is refused,
-- field attrs, as Python's and Go's engine refuses a string ("'attrs' must
-- be a JSON object"), before it took the text as the attributes.
for _, bad in ipairs{ '{"language":"en"}', 42, true } do
  local _, bm = fails(sb.EINVAL, "attrs", "attrs given as a " .. type(bad),
      eng:submit("acme", { type = "offer", call = "c2", queue = "support", caller = "+442079460002",
                           attrs = bad }))
  T.like(bm, "^event field attrs must be a table %(a JSON object%), not a " .. type(bad), "... saying so")
  T.is(state("c2"), nil, "and c2 was not offered")
end
-- A table's string holding a NUL byte went to the engine as \u0000, which
-- refused it naming no field ("strings may not contain \u0000 (line 1
-- column 30)", of JSON text the gateway never wrote; in attrs, "'attrs' must
-- be a JSON object"). It is refused naming where it is; so is a string
-- that is not UTF-8.
_, m = fails(sb.EINVAL, "attrs.x_header", "an attribute holding a NUL byte",
             eng:submit("acme", { type = "offer", call = "c2", queue = "support", caller = "+442079460002",
                                  attrs = { language = "en", x_header = "a\0b" } }))
T.like(m, "NUL byte", "the message says why")
fails(sb.EINVAL, "attrs.tags[1]", "a nested attribute that is not UTF-8",
      eng:submit("acme", { type = "offer", call = "c2", queue = "support", caller = "+442079460002",
                           attrs = { tags = { "a", "J\246rg" } } }))
T.is(state("c2"), nil, "and c2 was not offered")
_, m = fails(sb.EINVAL, "name", "an account's name holding a NUL byte",
             eng:account_put{ id = "acme2", name = "Acme\0Ltd" })
T.like(m, "NUL byte", "the message says why")
T.is(eng:account_get("acme2"), nil, "and acme2 was not made")
fails(sb.EINVAL, "devices.softphone", "an agent's device holding a NUL byte",
      eng:agent_put("acme", { id = "bob", devices = { softphone = "sip:b@x\0y" } }))
fails(sb.EINVAL, "reason", "a hold's reason holding a NUL byte",
      eng:hold_place("acme", { number = "+442079460001", reason = "case\0 1" }))
T.is(#eng:hold_list("acme").holds, 0, "and no hold was placed")
T.is(sb.json_encode{ a = "x\0y" }, '{"a":"x\\u0000y"}', "sb.json_encode writes a NUL byte as \\u0000")

-- priority: a whole number, as the JSON event requires; NaN would be
-- undefined behaviour converted to C's int, 1.5 silently became 1.
for _, p in ipairs{ 1.5, 0 / 0, 1 / 0 } do
  local r, pm = fails(sb.EINVAL, "priority", "priority = " .. tostring(p),
                      eng:submit("acme", { type = "offer", call = "c3", queue = "support",
                                           caller = "+442079460003", priority = p }))
  T.like(pm, "integer", "the message asks for an integer")
  T.is(state("c3"), nil, "and c3 was not offered")
  if not r then break end
end
T.ok(eng:submit("acme", { type = "offer", call = "c4", queue = "support", caller = "+442079460004",
                          priority = 7 }), "a whole priority is taken")

-- Documents: a value that is neither a table nor JSON text is a wrong
-- argument type, raised like every other (README, "Errors").
T.raises(function() eng:account_put(42) end, "bad argument #1 .*table or JSON text expected, got number",
         "account_put(42) raises")
T.raises(function() eng:agent_put("acme") end, "bad argument #2 .*table or JSON text expected, got no value",
         "agent_put without a document raises")
T.raises(function() eng:queue_put("acme", true) end, "bad argument #2", "queue_put(acct, true) raises")
T.raises(function() eng:member_put("acme", "support", "alice", 5) end, "bad argument #4",
         "member_put with a number for its document raises")
T.ok(eng:member_put("acme", "support", "alice"), "member_put without a document still works")
T.raises(function() eng:records_list("acme", 5) end, "bad argument #2", "records_list with a number query raises")
T.raises(function() eng:hold_place("acme") end, "bad argument #2", "hold_place without a hold raises")
T.raises(function() eng:policy_put("acme", "p", "return {}", 5) end, "bad argument #4",
         "policy_put with a number for its cases raises")
T.raises(function() sb.policy_test("p.lua", "return {}") end, "bad argument #3",
         "sb.policy_test without cases raises")
-- Argument errors name the method however it is called: through pcall (no
-- caller to name it), as a tail call (LuaJIT keeps no frame for it) or
-- from a coroutine's start, Lua's own said "bad argument #2 to '?'". A
-- method's arguments count after self, as eng:tick_for(-1) shows them.
local named = {
  { "tick_for", { -1 }, "#1 to 'tick_for' %(expected a whole number of milliseconds" },
  { "tick_for", {}, "#1 to 'tick_for' %(number expected, got no value%)" },
  { "audit_list", { "acme", -1 }, "#2 to 'audit_list' %(expected an audit entry's seq, 0 %(from the first%) or more%)" },
  { "audit_list", { "acme", 0, 1.5 }, "#3 to 'audit_list' %(expected a whole number of entries, 0 %(1000%) or more%)" },
  { "audit_list", { "acme", 0, "x" }, "#3 to 'audit_list' %(number expected, got string%)" },
  { "aggregates", { "acme", nil, -1, n = 3 }, "#3 to 'aggregates' %(expected a whole number of milliseconds from 0" },
  { "sweep", { -1 }, "#1 to 'sweep' %(expected a whole number of milliseconds from 0" },
  { "sweep", { 0, 5 }, "#2 to 'sweep' %(function expected, got number%)" },
  { "agent_get", { "acme", nil, n = 2 }, "#2 to 'agent_get' %(string expected, got nil%)" },
  { "agent_get", { "acme\0x", "alice" }, "#1 to 'agent_get' %(holds a NUL byte%)" },
  { "submit", { "acme", 42 }, "#2 to 'submit' %(table expected, got number%)" },
  { "agent_put", { "acme" }, "#2 to 'agent_put' %(table or JSON text expected, got no value%)" },
  { "records_export", { "acme", "+442079460001", "xml" }, "#3 to 'records_export' %(invalid option 'xml'%)" },
  { "batch", { 5 }, "#1 to 'batch' %(function expected, got number%)" },
  { "backup", {}, "#1 to 'backup' %(string expected, got no value%)" },
  { "set_clock", { "soon" }, "#1 to 'set_clock' %(number expected, got string%)" },
}
for _, n in ipairs(named) do
  local name, args, want = n[1], n[2], n[3]
  local function call() return eng[name](eng, unpack_args(args)) end
  local label = "eng:" .. name .. "(" .. (args.n or #args) .. " arguments)"
  T.raises(function() return eng[name](eng, unpack_args(args)) end, want, label .. ", a tail call, names it")
  local okk, err = pcall(eng[name], eng, unpack_args(args))
  T.ok(not okk and tostring(err):find("^bad argument " .. want) ~= nil,
       label .. " through pcall names it: " .. tostring(err))
  okk, err = coroutine.resume(coroutine.create(call))
  T.ok(not okk and tostring(err):find("bad argument " .. want) ~= nil, label .. " in a coroutine names it")
end
T.raises(function() return eng.agent_get("acme", "alice") end,
         "calling 'agent_get' on bad self %(switchboard.engine expected, got string%)",
         "a method called with . instead of : says so")
local okk, err = pcall(sb.redact, nil)
T.ok(not okk and tostring(err):find("^bad argument #1 to 'switchboard.redact' %(string expected") ~= nil,
     "module functions are named too: " .. tostring(err))
okk, err = pcall(sb.strerror, "x")
T.ok(not okk and tostring(err):find("^bad argument #1 to 'switchboard.strerror' %(number expected") ~= nil,
     "sb.strerror(\"x\"): " .. tostring(err))

fails(sb.EINVAL, "attrs", "attrs = 5 is refused as a field of the event",
      eng:submit("acme", { type = "offer", call = "c5", queue = "support", caller = "+442079460005", attrs = 5 }))
local nr, nm = eng:agent_put("acme", { id = "zed", devices = { softphone = "sip:z@x" }, weight = 0 / 0 })
T.ok(nr == nil and tostring(nm):find("finite"), "a document that cannot be encoded is still nil, message")

-- sb.open: options holding a NUL byte would open another directory (or
-- read another mode); options of the wrong type are not guessed at.
local other = T.tmpdir()
T.raises(function() sb.open{ data_dir = other .. "/d\0x", log = "none" } end, "data_dir holds a NUL byte",
         "sb.open refuses a data_dir holding a NUL byte")
local f = io.open(other .. "/d/data.mdb", "rb")
T.ok(f == nil, "and opened nothing at the path before the NUL")
if f then f:close() end
T.raises(function() sb.open{ data_dir = dir, sync = "none\0x", log = "none" } end, "sync holds a NUL byte",
         "sb.open refuses sync = \"none\\0x\"")
T.raises(function() sb.open{ data_dir = dir, policy_dir = "policies\0x", log = "none" } end,
         "policy_dir holds a NUL byte", "sb.open refuses a policy_dir holding a NUL byte")
for _, v in ipairs{ "no", 0, "false" } do
  T.raises(function() sb.open{ data_dir = dir, require_signed_policies = v, log = "none" } end,
           "require_signed_policies must be a boolean",
           "sb.open refuses require_signed_policies = " .. string.format("%q", tostring(v)))
end
local e2 = sb.open{ data_dir = dir, require_signed_policies = false, log = "none" }
T.ok(e2 ~= nil, "require_signed_policies = false opens")
if e2 then e2:close() end

-- Options may come from an __index function (defaults, the environment):
-- the strings it makes are held by nothing else, and must stay alive until
-- sb.open has used them, though a later lookup collects garbage and reuses
-- the memory (before the fix, another directory was opened).
do
  local base = T.tmpdir()
  -- strings as long as the data directory's, left as garbage
  local function churn()
    local junk = {}
    for i = 1, 500 do junk[i] = base .. "/z" .. string.format("%05d", i) end
    return #junk
  end
  local opts = setmetatable({ log = "none" }, { __index = function(_, k)
    collectgarbage()
    churn()
    collectgarbage()
    if k == "data_dir" then return base .. "/" .. table.concat({ "wa", "nted" }) end
  end })
  local e3, e3err = sb.open(opts)
  T.ok(e3 ~= nil, "sb.open with data_dir from an __index function (" .. tostring(e3err) .. ")")
  if e3 then e3:close() end
  local made = io.open(base .. "/wanted/data.mdb", "rb")
  T.ok(made ~= nil, "the data directory asked for was opened")
  if made then made:close() end
  local p = io.popen("ls '" .. base .. "'")
  local list = p:read("*a"):gsub("%s+$", "")
  p:close()
  T.is(list, "wanted", "and no other")
end

-- An engine opened before fork() belongs to the parent (switchboard.h,
-- sb_open): the child may not use it, and dropping it there must not close
-- the parent's engine.
local okffi, ffi = pcall(require, "ffi")
if okffi and ffi.os == "Linux" then
  ffi.cdef [[ int fork(void); int waitpid(int pid, int *status, int options); void _exit(int status); ]]
  io.stdout:flush()
  local pid = ffi.C.fork()
  if pid == 0 then
    local code = 0
    local ok, err = pcall(eng.agent_get, eng, "acme", "alice")
    if ok or not tostring(err):find("another process") then code = code + 1 end
    ok, err = pcall(eng.submit, eng, "acme", { type = "hangup", call = "c1" })
    if ok or not tostring(err):find("another process") then code = code + 2 end
    if not pcall(eng.close, eng) then code = code + 4 end
    eng = nil -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    ffi.C._exit(code)
  end
  local st = ffi.new("int[1]")
  ffi.C.waitpid(pid, st, 0)
  local code = math.floor(st[0] / 256) % 256
  T.ok(code % 2 == 0, "in a child after fork(), using the parent's engine raises 'another process'")
  T.ok(math.floor(code / 2) % 2 == 0, "and so does an event (nothing reaches the parent's engine)")
  T.ok(math.floor(code / 4) % 2 == 0, "closing it there is harmless")
  T.is(state("c1"), waiting, "the parent's c1 is as it was")
  T.ok(eng:agent_get("acme", "alice") ~= nil, "and the parent's engine still works")
else
  T.ok(true, "# SKIP fork() needs LuaJIT's FFI")
end

-- The clock's range is 0 to 2^63 - 1, as the README says: math.maxinteger
-- taken whole (it went through a double, 2^63, and was refused).
if math.maxinteger then
  local far = assert(sb.open{ data_dir = T.tmpdir(), sync = "none", clock = math.maxinteger,
                              log = "none" })
  T.is(far:clock(), math.maxinteger, "sb.open{clock = math.maxinteger}: the clock reads it whole")
  T.ok(pcall(far.set_clock, far, math.maxinteger) and far:clock() == math.maxinteger,
       "set_clock(math.maxinteger) too")
  T.raises(function() far:set_clock(-1) end, "from 0", "set_clock(-1) still raises")
  far:close()
else
  T.ok(true, "# SKIP no integers in this Lua")
end

eng:close()
T.cleanup()
T.done()
